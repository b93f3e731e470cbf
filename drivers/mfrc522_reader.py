"""MFRC522 card reader on SPI, through the `mfrc522` package (RPi.GPIO and spidev underneath).

The package's `read()` / `read_id()` block until a card comes, and `read_id()` folds the check
byte (BCC) into its number. This adapter uses only its non-blocking building blocks
(`MFRC522_Anticoll`, `MFRC522_ToCard`, `CalulateCRC`, `AntennaOn/Off`, the register access),
polled on the reader thread, and reports the plain UID bytes:

- WUPA (not REQA), so a card halted after the last read answers again and a card held on the
  reader is seen at every poll (one tap, thanks to the debouncer) instead of every other poll;
  sent with a short transceive of its own that stops at the chip's timer (the package's loop
  ignores the timer and reads ComIrqReg 2,000 times when no card answers);
- anticollision and SELECT per cascade level (0x93, 0x95, 0x97), so 7- and 10-byte UIDs
  (MIFARE Ultralight, NTAG, DESFire) read whole; the cascade tag 0x88 is dropped;
- the BCC of every level and the CRC_A of every SAK are checked: a mismatch is a bad read;
- HLTA at the end, so the next WUPA starts from a known card state.

The chip is checked at every poll (VersionReg, and TModeReg still holding what MFRC522_Init
wrote): a loose wire or a chip that lost power marks the reader unavailable, and it is reset
and initialised again by itself.

GPIO: the numbering mode is claimed as BCM once per process (`drivers.gpio_mode`), and only
this reader's reset pin is cleaned up on close. The package's `Close_MFRC522()` is never called:
it runs a global `GPIO.cleanup()`.
"""

from __future__ import annotations

from typing import Any

from drivers.base import DeviceError
from drivers.card_polling import BadRead, PollingCardReader, ReaderGone
from drivers.gpio_mode import claim_bcm, release

PICC_WUPA = 0x52
PICC_HLTA = 0x50
CASCADE_TAG = 0x88
SELECT_CODES = (0x93, 0x95, 0x97)  # cascade levels 1, 2, 3
SAK_UID_INCOMPLETE = 0x04
ERROR_COLLISION = 0x08
TMODE_AFTER_INIT = 0x8D  # what MFRC522_Init writes to TModeReg
IRQ_READS_MAX = 1000  # ComIrqReg reads before giving up on the timer (15 ms is ~300 on a Pi)


def crc_a(data: bytes) -> bytes:
    """ISO/IEC 14443-3 CRC_A, least significant byte first (as sent on air)."""
    crc = 0x6363
    for byte in data:
        byte ^= crc & 0xFF
        byte ^= (byte << 4) & 0xFF
        crc = (crc >> 8) ^ (byte << 8) ^ (byte << 3) ^ (byte >> 4)
    return bytes((crc & 0xFF, crc >> 8))


def bcc(data: bytes) -> int:
    """The block check character of an anticollision answer: XOR of its 4 UID bytes."""
    value = 0
    for byte in data:
        value ^= byte
    return value


class Mfrc522Reader(PollingCardReader):
    """An MFRC522 module on the Pi's SPI bus (`spi_bus`, `spi_device`), reset pin `rst_bcm_pin`."""

    name = "MFRC522 card reader"

    def __init__(
        self, *, spi_bus: int = 0, spi_device: int = 0, spi_speed_hz: int = 1_000_000, rst_bcm_pin: int = 25,
        **loop: Any,
    ) -> None:
        super().__init__(**loop)
        self.spi_bus, self.spi_device = spi_bus, spi_device
        self.spi_speed_hz, self.rst_bcm_pin = spi_speed_hz, rst_bcm_pin
        self._chip: Any = None
        self._gpio: Any = None
        self._pin_claimed = False
        self._field_off = False

    def _describe(self) -> str:
        return f"MFRC522 card reader (SPI {self.spi_bus}.{self.spi_device})"

    # -- opening and closing

    def _open(self) -> None:
        try:  # only here: RPi.GPIO raises RuntimeError on anything but a Pi
            import RPi.GPIO as GPIO
            from mfrc522 import MFRC522
        except ImportError as exc:
            raise DeviceError(f"{exc.name or exc} is not installed: pip install '.[pi]'") from None
        except RuntimeError as exc:
            raise DeviceError(f"RPi.GPIO cannot run here ({exc}); on a Raspberry Pi 5 install rpi-lgpio, "
                              "which provides RPi.GPIO there") from None

        self._gpio = GPIO
        claim_bcm(GPIO, self._describe())
        try:
            # The package sets the reset pin up as an output and drives it high (chip running).
            self._pin_claimed = True
            chip = MFRC522(bus=self.spi_bus, device=self.spi_device, spd=self.spi_speed_hz,
                           pin_mode=GPIO.BCM, pin_rst=self.rst_bcm_pin)
        except FileNotFoundError:
            raise DeviceError(f"no /dev/spidev{self.spi_bus}.{self.spi_device}: enable SPI "
                              "(raspi-config, or dtparam=spi=on in config.txt)") from None
        # Each construction adds a log handler to the package's logger; keep one.
        del chip.logger.handlers[1:]
        self._chip = chip
        self._field_off = False  # MFRC522_Init switched the antenna on
        self._check_chip()

    def _release(self) -> None:
        chip, self._chip = self._chip, None
        if chip is not None:
            try:
                chip.AntennaOff()
            except Exception:  # the chip may be the thing that failed
                pass
            try:
                chip.spi.close()
            except Exception:
                pass
        if self._pin_claimed and self._gpio is not None:
            self._pin_claimed = False
            try:
                self._gpio.cleanup(self.rst_bcm_pin)  # our pin only, never a global cleanup()
            except Exception:
                pass
            release(self._describe())

    def _check_chip(self) -> None:
        chip = self._chip
        try:
            version = chip.Read_MFRC522(chip.VersionReg)
            tmode = chip.Read_MFRC522(chip.TModeReg)
        except OSError as exc:
            raise ReaderGone(f"the MFRC522 does not answer on SPI: {exc}") from None
        if version in (0x00, 0xFF):
            raise ReaderGone(f"the MFRC522 does not answer on SPI (VersionReg reads 0x{version:02X}): "
                             "check its wiring and 3.3 V power")
        if tmode != TMODE_AFTER_INIT:
            raise ReaderGone("the MFRC522 lost its settings (a power dip?); initialising it again")

    # -- reading

    def _read(self) -> bytes | None:
        self._check_chip()
        chip = self._chip
        try:
            if self._field_off:
                chip.AntennaOn()
                self._field_off = False
            if self._transceive([PICC_WUPA], last_bits=7) is None:
                return None  # no card (or none that answers)
            try:
                uid = self._select_cascade()
            except BadRead:
                self._reset_field()
                raise
            if uid is None:
                self._reset_field()
            else:
                self._halt()
            return uid
        except OSError as exc:
            raise ReaderGone(f"SPI transfer failed: {exc}") from None

    def _reset_field(self) -> None:
        """A read that failed half-way leaves the card in the middle of its state machine, where
        it ignores WUPA: switch the field off until the next poll, so it starts afresh."""
        self._chip.AntennaOff()
        self._field_off = True

    def _select_cascade(self) -> bytes | None:
        chip = self._chip
        uid = b""
        for level, code in enumerate(SELECT_CODES, start=1):
            if level == 1:
                status, data = chip.MFRC522_Anticoll()  # the package's own: 0x93 0x20, BCC checked
            else:
                status, data = self._anticoll(code)
            data = bytes(data)
            if status != chip.MI_OK:
                if chip.Read_MFRC522(chip.ErrorReg) & ERROR_COLLISION:
                    raise BadRead("two cards at once")
                if len(data) == 5 and bcc(data[:4]) != data[4]:
                    raise BadRead(f"wrong check byte (BCC) at cascade level {level}")
                if data:
                    raise BadRead(f"anticollision answer of {len(data)} bytes at cascade level {level}")
                return None  # the card left in the middle of the read: not a tap
            sak = self._select(code, data)
            if sak is None:
                return None
            if sak & SAK_UID_INCOMPLETE:
                if data[0] != CASCADE_TAG:
                    raise BadRead(f"SAK says the UID goes on, but no cascade tag at level {level}")
                uid += data[1:4]
                continue
            return uid + data[:4]
        raise BadRead("UID longer than three cascade levels")

    def _anticoll(self, code: int) -> tuple[int, list[int]]:
        chip = self._chip
        chip.Write_MFRC522(chip.BitFramingReg, 0x00)
        status, data, _bits = chip.MFRC522_ToCard(chip.PCD_TRANSCEIVE, [code, 0x20])
        if status == chip.MI_OK and (len(data) != 5 or bcc(bytes(data[:4])) != data[4]):
            status = chip.MI_ERR
        return status, data

    def _select(self, code: int, data: bytes) -> int | None:
        """SELECT one cascade level; the SAK, or None when the card did not answer."""
        chip = self._chip
        frame = [code, 0x70, *data[:5]]
        frame += chip.CalulateCRC(frame)
        status, answer, bits = chip.MFRC522_ToCard(chip.PCD_TRANSCEIVE, frame)
        if status != chip.MI_OK or not answer:
            return None
        answer = bytes(answer)
        if bits != 24 or len(answer) != 3:
            raise BadRead(f"SAK of {bits} bits")
        if crc_a(answer[:1]) != answer[1:]:
            raise BadRead("wrong CRC on the SAK")
        return answer[0]

    def _halt(self) -> None:
        chip = self._chip
        frame = [PICC_HLTA, 0x00]
        frame += chip.CalulateCRC(frame)
        self._transceive(frame)  # a halted card does not answer

    def _transceive(self, frame: list[int], last_bits: int = 0) -> list[int] | None:
        """Send a frame and return what came back, or None after the chip's timer ran out.

        The package's MFRC522_ToCard waits for an answer by reading ComIrqReg 2,000 times and
        does not look at the timer interrupt, so every poll without a card (and every HLTA,
        which is never answered) costs 2,000 SPI transfers: on a Pi about a tenth of a second
        of a core, ten times a second. This stops at TimerIRq (15 ms, set by MFRC522_Init).
        A collision (two cards answering WUPA at once) still counts as an answer."""
        chip = self._chip
        write, read = chip.Write_MFRC522, chip.Read_MFRC522
        write(chip.CommandReg, chip.PCD_IDLE)
        write(chip.CommIrqReg, 0x7F)  # bit 7 clear: clear every interrupt request bit
        write(chip.FIFOLevelReg, 0x80)  # flush the FIFO
        for byte in frame:
            write(chip.FIFODataReg, byte)
        write(chip.BitFramingReg, last_bits)
        write(chip.CommandReg, chip.PCD_TRANSCEIVE)
        write(chip.BitFramingReg, 0x80 | last_bits)  # StartSend
        answered = False
        for _ in range(IRQ_READS_MAX):
            irq = read(chip.CommIrqReg)
            if irq & 0x30:  # RxIRq or IdleIRq
                answered = True
                break
            if irq & 0x01:  # TimerIRq: nothing came back in time
                break
        write(chip.BitFramingReg, last_bits)
        write(chip.CommandReg, chip.PCD_IDLE)
        if not answered:
            return None
        if read(chip.ErrorReg) & ERROR_COLLISION:
            return [ERROR_COLLISION]  # several cards: the anticollision that follows says so
        return [read(chip.FIFODataReg) for _ in range(read(chip.FIFOLevelReg))]
