"""A Sony RC-S380 (NFC Port-100) behind the fake USB transport, for nfcpy's own rcs380 driver.

The RC-S380 leaves ISO 14443 to the host: nfcpy sends every REQA, anticollision and SELECT
itself through InCommRF, with InSetProtocol saying whether the chip adds and checks CRC_A and
how many bits the last byte has. So the type A card here is the same ISO 14443-3 card as in
the MFRC522 tests (`fake_mfrc522.FakeCard`: its states, cascade levels, BCC and CRC), and the
fake chip only frames: the Port-100 extended frames (`00 00 FF FF FF LEN_LO LEN_HI LCS D6 CMD
… DCS 00`), ACKs, the RF switch (a card loses power when the field goes off), CRC added and
checked, and the 4-byte status of InCommRF (RECEIVE_TIMEOUT when nothing answered).
"""

from __future__ import annotations

import struct

from drivers.mfrc522_reader import crc_a
from fake_mfrc522 import FakeCard
from fake_pn533 import ACK, Pn533World

TIMEOUT = struct.pack("<L", 0x80)  # RECEIVE_TIMEOUT_ERROR
CRC_ERROR = struct.pack("<L", 0x04)


def _frame(data: bytes) -> bytes:
    length = struct.pack("<H", len(data))
    return b"\x00\x00\xff\xff\xff" + length + bytes([(256 - sum(length)) & 0xFF]) + data + \
        bytes([(256 - sum(data)) & 0xFF, 0])


class Rcs380World(Pn533World):
    VID, PID = 0x054C, 0x06C1
    manufacturer_name, product_name = "SONY", "RC-S380/P"

    def __init__(self) -> None:
        super().__init__()
        self.protocol = {"add_crc": 0, "check_crc": 0, "last_byte_bit_count": 8}
        self.a_card: FakeCard | None = None

    @property
    def senses(self) -> int:  # SENS_REQ (type A), SENSB_REQ, SENSF_REQ sent
        return self.rf_frames

    def tap(self, kind: str, identifier: bytes) -> None:
        super().tap(kind, identifier)
        self.a_card = FakeCard(identifier, sak=0x08 if len(identifier) == 4 else 0x00) if kind == "A" else None

    def remove(self) -> None:
        super().remove()
        self.a_card = None

    def answer(self, frame: bytes) -> list[bytes]:
        if frame == ACK:
            return []
        length = struct.unpack("<H", frame[5:7])[0]
        data = frame[8:8 + length]
        if frame[3:5] != b"\xff\xff" or data[0] != 0xD6 or (sum(data) + frame[8 + length]) & 0xFF:
            return [ACK, b"\x00\x00\xff\xff\xff"]  # an error frame
        command, args = data[1], data[2:]
        self.commands.append(command)
        return [ACK, _frame(bytes([0xD7, command + 1]) + self.run(command, args))]

    rf_frames = 0
    _KEYS = ("initial_guard_time", "add_crc", "check_crc", "multi_card", "add_parity", "check_parity",
             "bitwise_anticoll", "last_byte_bit_count")

    def run(self, command: int, args: bytes) -> bytes:
        if command == 0x20:  # GetFirmwareVersion: 1.11
            return b"\x11\x01"
        if command == 0x22:  # GetPDDataVersion
            return b"\x00\x01"
        if command == 0x06:  # SwitchRF
            self.field = bool(args[0])
            if not self.field and self.a_card is not None:
                self.a_card.state, self.a_card.level = "IDLE", 1  # no field, no power
            return b"\x00"
        if command == 0x02:  # InSetProtocol: (key, value) pairs
            for i in range(0, len(args) - 1, 2):
                if args[i] < len(self._KEYS):
                    self.protocol[self._KEYS[args[i]]] = args[i + 1]
            return b"\x00"
        if command == 0x04:  # InCommRF: timeout (2 bytes, little-endian), then the frame
            self.field = True
            return self.comm_rf(args[2:])
        return b"\x00"  # SetCommandType, InSetRF, …

    def comm_rf(self, frame: bytes) -> bytes:
        if frame[:1] in (b"\x26", b"\x52") or frame[:1] == b"\x05" or frame[1:2] == b"\x00":
            self.rf_frames += 1  # a poll: SENS_REQ, SENSB_REQ or SENSF_REQ
        if frame[:1] == b"\x05" and len(frame) == 3:  # SENSB_REQ
            if self.card and self.card[0] == "B":
                return b"\x00" * 5 + self.atqb(self.card[1])
            return TIMEOUT + b"\x00"
        if len(frame) == 6 and frame[:2] == b"\x06\x00":  # SENSF_REQ, with its length byte
            if self.card and self.card[0] == "F":
                return b"\x00" * 5 + bytes([18, 0x01]) + self.card[1] + bytes.fromhex("0120220427674eff")
            return TIMEOUT + b"\x00"
        if self.a_card is None and self.garbage_uid is not None:  # a card that talks nonsense
            if frame[:1] == b"\x26":
                return b"\x00" * 5 + b"\x44\x00"
            if frame == b"\x93\x20":
                return b"\x00" * 5 + self.garbage_uid[:4] + b"\x00"  # its BCC is wrong
            return TIMEOUT + b"\x00"
        if self.a_card is None:
            return TIMEOUT + b"\x00"
        on_air = frame + crc_a(frame) if self.protocol["add_crc"] else frame
        bits = self.protocol["last_byte_bit_count"] % 8
        reply = self.a_card.respond(on_air, 7 if bits == 7 else 0)
        if reply is None:
            return TIMEOUT + b"\x00"
        if self.protocol["check_crc"]:
            if len(reply) < 3 or crc_a(reply[:-2]) != reply[-2:]:
                return CRC_ERROR + b"\x00"
            reply = reply[:-2]
        return b"\x00" * 5 + reply
