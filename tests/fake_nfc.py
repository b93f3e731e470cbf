"""A fake nfcpy chipset driver: nfcpy's own ContactlessFrontend (open, connect, sense) runs on it.

`NfcWorld.install(monkeypatch)` replaces `nfc.clf.device.connect` (which finds a USB reader and
loads its driver) with one that returns a `FakeDevice` while the reader is plugged in. The fake
device answers nfcpy's sense calls (`sense_tta`, `sense_ttb`, `sense_ttf`) as RC-S380 and PN533
drivers do: a RemoteTarget with SENS_RES/SEL_RES and the whole UID for type A, SENSB_RES for
type B, SENSF_RES for FeliCa, or None. Unplugging makes every call raise the IOError(ENODEV)
that nfcpy's USB transport raises.
"""

from __future__ import annotations

import errno

import nfc
import nfc.clf
import nfc.clf.device


class NfcWorld:
    def __init__(self) -> None:
        self.plugged = True
        self.card: tuple[str, bytes] | None = None  # ("A" | "B" | "F", identifier)
        self.garbage: nfc.clf.RemoteTarget | None = None  # a target nfcpy hands over as found
        self.opened: list[str] = []  # paths opened
        self.devices: list[FakeDevice] = []
        self.senses = 0

    def install(self, monkeypatch) -> "NfcWorld":
        def connect(path: str):
            if not self.plugged or not path.startswith("usb"):
                return None
            self.opened.append(path)
            device = FakeDevice(self)
            self.devices.append(device)
            return device

        monkeypatch.setattr(nfc.clf.device, "connect", connect)
        return self

    def tap(self, kind: str, identifier: bytes) -> None:
        self.card = (kind, identifier)

    def remove(self) -> None:
        self.card = None


class FakeDevice:
    """What nfcpy's ContactlessFrontend needs of a chipset driver (nfc.clf.device.Device)."""

    vendor_name, product_name, chipset_name, path = "Sony", "RC-S380/P", "NFC Port-100 v1.11", "usb:001:004"

    def __init__(self, world: NfcWorld) -> None:
        self.world = world
        self.closed = False

    def __str__(self) -> str:
        return f"{self.vendor_name} {self.product_name} {self.chipset_name} at {self.path}"

    def _alive(self) -> None:
        if not self.world.plugged or self.closed:
            raise IOError(errno.ENODEV, "No such device")

    def mute(self) -> None:
        self._alive()

    def close(self) -> None:
        self.closed = True

    def turn_on_led_and_buzzer(self) -> None:
        pass

    def turn_off_led_and_buzzer(self) -> None:
        pass

    def _card(self, kind: str):
        self._alive()
        self.world.senses += 1
        if self.world.garbage is not None and self.world.garbage.brty.endswith(kind):
            return self.world.garbage
        if self.world.card is None or self.world.card[0] != kind:
            return None
        return self.world.card[1]

    def sense_tta(self, target):
        uid = self._card("A")
        if isinstance(uid, nfc.clf.RemoteTarget) or uid is None:
            return uid
        sak = b"\x08" if len(uid) == 4 else b"\x00"  # MIFARE Classic; Ultralight/NTAG
        return nfc.clf.RemoteTarget(target.brty, sens_res=bytearray(b"\x44\x00"), sel_res=bytearray(sak),
                                    sdd_res=bytearray(uid))

    def sense_ttb(self, target):
        pupi = self._card("B")
        if isinstance(pupi, nfc.clf.RemoteTarget) or pupi is None:
            return pupi
        return nfc.clf.RemoteTarget(target.brty, sensb_res=bytearray(b"\x50" + pupi + b"\x00\x00\x00\x00\x00\x81\x81"))

    def sense_ttf(self, target):
        idm = self._card("F")
        if isinstance(idm, nfc.clf.RemoteTarget) or idm is None:
            return idm
        pmm = bytes.fromhex("0120220427674eff")
        return nfc.clf.RemoteTarget(target.brty, sensf_res=bytearray(b"\x01" + idm + pmm + b"\x00\x03"))
