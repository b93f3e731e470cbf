"""USB NFC readers through `nfcpy`: Sony RC-S380 (PaSoRi), PN533-based readers (SCL3711 and
others), ACR122U. ISO/IEC 14443 type A and B cards and FeliCa.

`ContactlessFrontend.connect()` is called with reader/writer targets 106A, 106B and 212F and a
`terminate` callback that lets it sense once per call, so the reader thread gets control back
after every sense cycle (a poll with a timeout, never a wait for a card that may not come). The
card is identified at discovery (`on-discover` returns False), before any activation, so every
card type gives its UID, MIFARE Classic included, which nfcpy cannot activate:

- type A: the UID nfcpy gathered over the cascade levels (`sdd_res`, no cascade tag, no BCC);
- type B: the PUPI (4 bytes of SENSB_RES);
- FeliCa: the IDm (8 bytes of SENSF_RES).

`connect()` answers False when the device failed (nfcpy turns the USB error of an unplugged
reader into that): the reader is then marked unavailable, closed, and opened again with back-off
until it is plugged back in.
"""

from __future__ import annotations

import errno
from typing import Any

from drivers.base import DeviceError
from drivers.card_polling import BadRead, PollingCardReader, ReaderGone

DEFAULT_TARGETS = ("106A", "106B", "212F")


def target_uid(target: Any) -> bytes:
    """The identifier of a card as nfcpy discovered it (a RemoteTarget)."""
    brty = target.brty
    if brty.endswith("A"):
        uid = bytes(target.sdd_res or b"")
        if len(uid) not in (4, 7, 10):
            raise BadRead(f"type A UID of {len(uid)} bytes")
        return uid
    if brty.endswith("B"):
        res = bytes(target.sensb_res or b"")
        if len(res) < 12 or res[0] != 0x50:
            raise BadRead("malformed type B answer (SENSB_RES)")
        return res[1:5]
    if brty.endswith("F"):
        res = bytes(target.sensf_res or b"")
        if len(res) < 17 or res[0] != 0x01:
            raise BadRead("malformed FeliCa answer (SENSF_RES)")
        return res[1:9]
    raise BadRead(f"unexpected target type {brty}")


class NfcReader(PollingCardReader):
    """A USB (or serial) NFC reader at nfcpy path `nfc_path`: "usb", "usb:054c:06c1",
    "usb:001:004", "tty:USB0:pn532"."""

    name = "NFC card reader"

    def __init__(self, *, nfc_path: str = "usb", targets: tuple[str, ...] = DEFAULT_TARGETS, **loop: Any) -> None:
        super().__init__(**loop)
        if not nfc_path:
            raise ValueError("nfc_path is empty: use \"usb\" or \"usb:VENDOR:PRODUCT\"")
        self.nfc_path = nfc_path
        self.targets = tuple(targets)
        self._clf: Any = None

    def _describe(self) -> str:
        return f"NFC card reader ({self.nfc_path})"

    def _open(self) -> None:
        try:
            import nfc  # only here
        except ImportError as exc:
            raise DeviceError(f"{exc.name or exc} is not installed: pip install '.[pi]'") from None

        try:
            self._clf = nfc.ContactlessFrontend(self.nfc_path)
        except OSError as exc:
            if "libusb" in str(exc):
                raise DeviceError("libusb-1.0 is missing: apt-get install libusb-1.0-0") from None
            if exc.errno == errno.ENODEV:
                # nfcpy also says this of a reader that is there but answers garbage
                raise DeviceError(f"no NFC reader found at {self.nfc_path!r}, or none that answers properly: "
                                  "plugged in? (the kiosk's user needs its udev rule, see README)") from None
            raise

    def _release(self) -> None:
        clf, self._clf = self._clf, None
        if clf is not None:
            try:
                clf.close()
            except Exception:  # an unplugged reader may fail to close; it is gone anyway
                pass

    def _read(self) -> bytes | None:
        found: list[Any] = []
        calls = 0

        def on_discover(target: Any) -> bool:
            found.append(target)
            return False  # no activation: the UID is all the kiosk needs

        def terminate() -> bool:
            nonlocal calls
            calls += 1  # True from the second call on: one sense cycle per connect()
            return calls > 1 or bool(found) or self._stop.is_set()

        options = {
            "targets": list(self.targets),
            "on-discover": on_discover,
            "iterations": 1,
            "interval": self.poll_interval_s,
            "beep-on-connect": False,  # feedback is the kiosk's (screen, LED, buzzer)
        }
        result = self._clf.connect(rdwr=options, terminate=terminate)
        if result is False:
            raise ReaderGone("the NFC reader stopped answering (unplugged?)")
        if not found:
            return None
        return target_uid(found[0])
