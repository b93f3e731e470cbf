"""A fake `spidev` and `RPi.GPIO` for the MFRC522 tests: the SPI side answers like the chip.

`FakeChip` keeps the MFRC522's registers as the `mfrc522` package (and our adapter) drive them:
the FIFO and its level, CommandReg (Idle, Transceive, CalcCRC, SoftReset), BitFramingReg's
StartSend and TxLastBits, ComIrqReg and DivIrqReg with their set/clear-by-bit7 writes, ErrorReg,
ControlReg's RxLastBits, the CRC coprocessor, VersionReg. A Transceive hands the FIFO to the
`FakeCard` in the field (if any), which follows ISO/IEC 14443-3: IDLE, READY per cascade level,
ACTIVE, HALT; REQA/WUPA, anticollision and SELECT for cascade levels 1-3, HLTA. Cards can be
told to lie (a wrong BCC, a wrong CRC on the SAK) or to leave in the middle of a read.

So in the tests the `mfrc522` package's own register code and the adapter's run unchanged.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

from drivers.mfrc522_reader import crc_a

COMMAND, COM_IRQ, DIV_IRQ, ERROR, FIFO_DATA, FIFO_LEVEL, CONTROL, BIT_FRAMING = 0x01, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x0C, 0x0D
TX_CONTROL, CRC_H, CRC_L, TMODE, VERSION = 0x14, 0x21, 0x22, 0x2A, 0x37
IDLE, CALC_CRC, TRANSCEIVE, SOFT_RESET = 0x00, 0x03, 0x0C, 0x0F
SELECTS = (0x93, 0x95, 0x97)


@dataclass
class FakeCard:
    uid: bytes
    sak: int = 0x08  # MIFARE Classic 1K; 0x00 for Ultralight/NTAG
    atqa: bytes = b"\x04\x00"
    bad_bcc: bool = False  # answers anticollision with a wrong check byte
    bad_crc: bool = False  # answers SELECT with a wrong CRC_A
    leave_after_atqa: bool = False  # taken away right after answering WUPA
    state: str = "IDLE"
    level: int = 1
    present: bool = True
    answered: list[str] = field(default_factory=list)

    def levels(self) -> list[bytes]:
        u = self.uid
        if len(u) == 4:
            return [u]
        if len(u) == 7:
            return [b"\x88" + u[:3], u[3:]]
        if len(u) == 10:
            return [b"\x88" + u[:3], b"\x88" + u[3:6], u[6:]]
        raise ValueError("UIDs have 4, 7 or 10 bytes")

    def respond(self, frame: bytes, last_bits: int) -> bytes | None:
        if not self.present:
            return None
        if last_bits == 7 and len(frame) == 1:  # a short frame: REQA or WUPA
            if frame[0] == 0x26 and self.state == "IDLE" or frame[0] == 0x52 and self.state in ("IDLE", "HALT"):
                self.state, self.level = "READY", 1
                self.answered.append("ATQA")
                if self.leave_after_atqa:
                    self.present = False
                return self.atqa
            self.state = "IDLE"
            return None
        levels = self.levels()
        if self.state == "READY" and len(frame) == 2 and frame == bytes((SELECTS[self.level - 1], 0x20)):
            part = levels[self.level - 1]
            check = part[0] ^ part[1] ^ part[2] ^ part[3]
            self.answered.append(f"ANTICOLL{self.level}")
            return part + bytes([check ^ 0xFF if self.bad_bcc else check])
        if self.state == "READY" and len(frame) == 9 and frame[:2] == bytes((SELECTS[self.level - 1], 0x70)):
            part = levels[self.level - 1]
            check = part[0] ^ part[1] ^ part[2] ^ part[3]
            if frame[2:7] != part + bytes([check]) or crc_a(frame[:7]) != frame[7:]:
                self.state = "IDLE"
                return None
            self.answered.append(f"SELECT{self.level}")
            if self.level < len(levels):
                sak = 0x04
                self.level += 1
            else:
                sak = self.sak
                self.state = "ACTIVE"
            crc = crc_a(bytes([sak]))
            return bytes([sak]) + (bytes([crc[0] ^ 0x5A, crc[1]]) if self.bad_crc else crc)
        if frame[:2] == b"\x50\x00" and len(frame) == 4 and crc_a(frame[:2]) == frame[2:] and self.state == "ACTIVE":
            self.state = "HALT"
            self.answered.append("HALT")
            return None
        self.state = "IDLE"
        return None


class FakeChip:
    """The MFRC522 at the other end of the SPI bus."""

    def __init__(self, version: int = 0x92) -> None:
        self.version = version
        self.regs = [0] * 64
        self.fifo: list[int] = []
        self.card: FakeCard | None = None
        self.collision = False  # two cards in the field at once
        self.wired = True  # False: a loose wire, every read gives 0x00
        self.spi_error = False  # True: every transfer raises OSError
        self.transfers = 0

    # what a person does
    def tap(self, card: FakeCard) -> FakeCard:
        card.state, card.level, card.present = "IDLE", 1, True
        self.card = card
        return card

    def remove(self) -> None:
        self.card = None

    def power_dip(self) -> None:
        """The chip resets itself: every register back to its reset value."""
        self._reset()

    # the SPI side
    def xfer2(self, data: list[int]) -> list[int]:
        self.transfers += 1
        if self.spi_error:
            raise OSError(5, "Input/output error")
        address, value = data[0], data[1]
        reg = (address >> 1) & 0x3F
        if address & 0x80:
            return [0, self._read(reg) if self.wired else 0x00]
        if self.wired:
            self._write(reg, value)
        return [0, 0]

    def _reset(self) -> None:
        self.regs = [0] * 64
        self.regs[CONTROL] = 0x10
        self.fifo.clear()

    def _read(self, reg: int) -> int:
        if reg == FIFO_DATA:
            return self.fifo.pop(0) if self.fifo else 0
        if reg == FIFO_LEVEL:
            return len(self.fifo)
        if reg == VERSION:
            return self.version
        return self.regs[reg]

    def _write(self, reg: int, value: int) -> None:
        if reg in (COM_IRQ, DIV_IRQ):  # bit 7 says whether the marked bits are set or cleared
            if value & 0x80:
                self.regs[reg] |= value & 0x7F
            else:
                self.regs[reg] &= ~value & 0x7F
        elif reg == FIFO_LEVEL:
            if value & 0x80:
                self.fifo.clear()
        elif reg == FIFO_DATA:
            if len(self.fifo) < 64:
                self.fifo.append(value)
        elif reg == ERROR or reg == VERSION:
            pass  # read-only
        elif reg == COMMAND:
            self.regs[COMMAND] = value
            command = value & 0x0F
            if command == SOFT_RESET:
                self._reset()
            elif command == CALC_CRC:
                crc = crc_a(bytes(self.fifo))
                self.fifo.clear()
                self.regs[CRC_L], self.regs[CRC_H] = crc[0], crc[1]
                self.regs[DIV_IRQ] |= 0x04
        elif reg == TX_CONTROL:
            self.regs[reg] = value
            if not value & 0x03 and self.card is not None:  # field off: the card loses power
                self.card.state, self.card.level = "IDLE", 1
        elif reg == BIT_FRAMING:
            self.regs[BIT_FRAMING] = value & 0x7F
            if value & 0x80 and self.regs[COMMAND] & 0x0F == TRANSCEIVE:
                self._transceive(value & 0x07)
        else:
            self.regs[reg] = value

    def _transceive(self, last_bits: int) -> None:
        frame = bytes(self.fifo)
        self.fifo.clear()
        self.regs[ERROR] = 0
        self.regs[CONTROL] &= ~0x07
        self.regs[COM_IRQ] |= 0x40  # TxIRq: sent
        if self.collision and frame[:1] in (b"\x93", b"\x95", b"\x97") and frame[1:2] == b"\x20":
            self.fifo.extend(b"\x04\xff\x13")
            self.regs[ERROR] = 0x08  # CollErr
            self.regs[COM_IRQ] |= 0x20 | 0x02  # RxIRq, ErrIRq
            return
        field_on = self.regs[TX_CONTROL] & 0x03
        answer = self.card.respond(frame, last_bits) if self.card is not None and field_on else None
        if answer is None:
            self.regs[COM_IRQ] |= 0x01  # TimerIRq: nothing came back in time
            return
        self.fifo.extend(answer)
        self.regs[COM_IRQ] |= 0x20  # RxIRq


class FakeGPIO(types.ModuleType):
    """RPi.GPIO as far as the MFRC522 adapter and the package use it; records what was done."""

    BCM, BOARD, OUT, IN, HIGH, LOW = 11, 10, 0, 1, 1, 0

    def __init__(self) -> None:
        super().__init__("RPi.GPIO")
        self.mode: int | None = None
        self.pins: dict[int, int] = {}  # pin -> direction, while set up
        self.levels: dict[int, int] = {}
        self.cleanups: list[object] = []  # the argument of every cleanup() call (None: all pins)

    def getmode(self) -> int | None:
        return self.mode

    def setmode(self, mode: int) -> None:
        if self.mode is not None and self.mode != mode:
            raise ValueError("A different mode has already been set!")
        self.mode = mode

    def setwarnings(self, flag: bool) -> None:
        pass

    def setup(self, pin: int, direction: int, **_: object) -> None:
        if self.mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        self.pins[pin] = direction

    def output(self, pin: int, value: int) -> None:
        if self.pins.get(pin) != self.OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        self.levels[pin] = value

    def cleanup(self, channel: object = None) -> None:
        self.cleanups.append(channel)
        if channel is None:
            self.pins.clear()
            self.mode = None
        else:
            for pin in channel if isinstance(channel, (list, tuple)) else [channel]:
                self.pins.pop(pin, None)


class FakeSpidev(types.ModuleType):
    """spidev with one chip per (bus, device); a bus without a chip is a missing /dev/spidevB.D."""

    def __init__(self) -> None:
        super().__init__("spidev")
        self.chips: dict[tuple[int, int], FakeChip] = {}
        fake = self

        class SpiDev:
            def __init__(self) -> None:
                self.chip: FakeChip | None = None
                self.max_speed_hz = 0
                self.closed = False

            def open(self, bus: int, device: int) -> None:
                if (bus, device) not in fake.chips:
                    raise FileNotFoundError(2, "No such file or directory")
                self.chip = fake.chips[(bus, device)]

            def xfer2(self, data: list[int]) -> list[int]:
                if self.chip is None or self.closed:
                    raise OSError(9, "Bad file descriptor")
                return self.chip.xfer2(list(data))

            def close(self) -> None:
                self.closed = True

        self.SpiDev = SpiDev


def install(monkeypatch) -> tuple[FakeGPIO, FakeSpidev]:
    """Put fake RPi.GPIO and spidev in sys.modules, and make `mfrc522` import afresh over them."""
    gpio, spidev = FakeGPIO(), FakeSpidev()
    rpi = types.ModuleType("RPi")
    rpi.GPIO = gpio
    monkeypatch.setitem(sys.modules, "RPi", rpi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    monkeypatch.setitem(sys.modules, "spidev", spidev)
    for name in [n for n in sys.modules if n == "mfrc522" or n.startswith("mfrc522.")]:
        monkeypatch.delitem(sys.modules, name)
    return gpio, spidev
