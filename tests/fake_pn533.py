"""A PN533 NFC reader (an SCM SCL3711) behind a fake USB transport, for nfcpy's own driver.

`Pn533World.install(monkeypatch)` replaces `nfc.clf.transport.USB`, the class through which
nfcpy finds USB readers and moves bytes to and from them. Everything above it is nfcpy's own
code: `nfc.clf.device.connect` picks the pn533 driver by vendor and product id, the driver
initialises the chip (diagnose line test, firmware version, RF configuration, registers), and
ContactlessFrontend senses through InListPassiveTarget. The fake chip answers host frames
(`00 00 FF LEN LCS D4 CMD … DCS 00`, normal and extended) with an ACK frame and a response
frame, as the PN533 firmware does, for the card in its field: type A (ATQA, SAK, UID), type B
(ATQB, then DESELECT and WUPB) or FeliCa (POL_RES). Unplugged, every transfer fails with the
IOError(ENODEV) that nfcpy's libusb transport raises.
"""

from __future__ import annotations

import errno
import os
import struct

import nfc.clf.device
import nfc.clf.transport

SOF = b"\x00\x00\xff"
ACK = b"\x00\x00\xff\x00\xff\x00"
VID, PID = 0x04E6, 0x5591  # SCM SCL3711, a PN533 reader


def _frame(data: bytes) -> bytes:
    if len(data) < 254:
        head = SOF + bytes([len(data), (256 - len(data)) & 0xFF])
    else:
        length = struct.pack(">H", len(data))
        head = SOF + b"\xff\xff" + length + bytes([(256 - sum(length)) & 0xFF])
    return head + data + bytes([(256 - sum(data)) & 0xFF, 0])


class Pn533World:
    VID, PID = VID, PID
    manufacturer_name, product_name = "SCM Micro", "SCL3711-NFC&RW"

    def __init__(self) -> None:
        self.plugged = True
        self.card: tuple[str, bytes] | None = None  # ("A" | "B" | "F", UID / PUPI / IDm)
        self.garbage_uid: bytes | None = None  # a type A answer with an impossible UID length
        self.field = False
        self.commands: list[int] = []  # every command code the host sent
        self.transports: list[object] = []
        self.garble = False  # True: every response frame arrives with a wrong checksum (a bad cable)

    def tap(self, kind: str, identifier: bytes) -> None:
        self.card = (kind, identifier)

    def remove(self) -> None:
        self.card = None

    @property
    def senses(self) -> int:
        return self.commands.count(0x4A)

    def install(self, monkeypatch) -> "Pn533World":
        world = self
        real_access = os.access

        class FakeUSB:
            TYPE = "USB"
            manufacturer_name, product_name = world.manufacturer_name, world.product_name

            @classmethod
            def find(cls, path: str):
                if not path.startswith("usb"):
                    return None
                parts = path.split(":")[1:]
                if not world.plugged or (parts and int(parts[0], 16) != world.VID) or \
                        (len(parts) > 1 and int(parts[1], 16) != world.PID):
                    return []
                return [(world.VID, world.PID, 1, 4)]

            def __init__(self, bus: int, dev: int) -> None:
                if not world.plugged:
                    raise IOError(errno.ENODEV, os.strerror(errno.ENODEV))
                self.replies: list[bytes] = []
                self.closed = False
                world.transports.append(self)

            def _alive(self) -> None:
                if not world.plugged or self.closed:
                    raise IOError(errno.ENODEV, os.strerror(errno.ENODEV))

            def write(self, frame, timeout=0) -> None:
                self._alive()
                self.replies.extend(world.answer(bytes(frame)))

            def read(self, timeout=0):
                self._alive()
                if not self.replies:
                    raise IOError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
                return bytearray(self.replies.pop(0))

            def close(self) -> None:
                self.closed = True

        def access(path, mode, *args, **kwargs):
            if str(path).startswith("/dev/bus/usb/"):
                return True  # the udev rule of the README gives the kiosk the device
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(nfc.clf.transport, "USB", FakeUSB)
        monkeypatch.setattr(nfc.clf.device.os, "access", access)
        return self

    # -- the chip's firmware

    def answer(self, frame: bytes) -> list[bytes]:
        if frame == ACK:
            return []  # a soft reset, or the host cancelling a command
        if frame.startswith(SOF + b"\xff\xff"):
            length = struct.unpack(">H", frame[5:7])[0]
            data = frame[8:8 + length]
        else:
            data = frame[5:5 + frame[3]]
        if data[0] != 0xD4 or sum(data + frame[len(frame) - 2:len(frame) - 1]) & 0xFF:
            return [ACK, _frame(b"\x7f")]  # error frame: the chip could not read the command
        command, args = data[1], data[2:]
        self.commands.append(command)
        reply = _frame(bytes([0xD5, command + 1]) + self.run(command, args))
        if self.garble:
            reply = reply[:-2] + bytes([reply[-2] ^ 0x5A]) + reply[-1:]
        return [ACK, reply]

    def run(self, command: int, args: bytes) -> bytes:
        if command == 0x00:  # Diagnose: the line test echoes its data
            return args
        if command == 0x02:  # GetFirmwareVersion: PN533 v2.7
            return b"\x33\x02\x07\x07"
        if command == 0x32:  # RFConfiguration
            if args[0] == 0x01:
                self.field = bool(args[1] & 0x01)
            return b""
        if command == 0x12:  # SetParameters
            return b""
        if command == 0x06:  # ReadRegister
            addresses = [struct.unpack(">H", args[i:i + 2])[0] for i in range(0, len(args), 2)]
            if any(a >= 0xA000 for a in addresses):
                return b"\x01"  # no EEPROM on this board
            return b"\x00" + bytes(self.register(a) for a in addresses)
        if command == 0x08:  # WriteRegister
            return b"\x00"
        if command == 0x4A:  # InListPassiveTarget
            self.field = True
            return self.list_target(args[1])
        if command == 0x42:  # InCommunicateThru: DESELECT, then WUPB
            if args[:1] == b"\xc2":
                return b"\x00\xc2"
            if args[:1] == b"\x05" and self.card and self.card[0] == "B":
                return b"\x00" + self.atqb(self.card[1])
            return b"\x01"  # timeout
        return b"\x00"

    def register(self, address: int) -> int:
        if address == 0x6339:  # CIU_FIFOData: the SENS_REQ is still there when nothing answered
            return 0x26
        if address == 0x6304:  # CIU_TxControl: the field
            return 0x83 if self.field else 0x80
        return 0x80 if address == 0x6303 else 0x00

    @staticmethod
    def atqb(pupi: bytes) -> bytes:
        return b"\x50" + pupi + b"\x00\x00\x00\x00" + b"\x00\x81\x81"  # ISO 14443-4 compliant

    def list_target(self, brty: int) -> bytes:
        if brty == 0 and self.garbage_uid is not None:
            return b"\x01\x01\x00\x44\x00" + bytes([len(self.garbage_uid)]) + self.garbage_uid
        if self.card is None:
            return b"\x00"
        kind, ident = self.card
        if brty == 0 and kind == "A":
            sak = 0x08 if len(ident) == 4 else 0x00
            return b"\x01\x01" + b"\x00\x44" + bytes([sak, len(ident)]) + ident  # ATQA sent LSB first
        if brty == 3 and kind == "B":
            return b"\x01\x01" + self.atqb(ident) + b"\x01\x00"
        if brty in (1, 2) and kind == "F":
            return b"\x01\x01" + bytes([18, 0x01]) + ident + bytes.fromhex("0120220427674eff")
        return b"\x00"
