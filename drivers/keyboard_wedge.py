"""USB keyboard-wedge readers through `evdev`: card readers (and, with `KeyDecoder`, HID barcode
scanners) that "type" what they read, followed by Enter.

The device is opened by its stable `/dev/input/by-id/...-event-kbd` path and grabbed
(EVIOCGRAB), so its keystrokes reach only the kiosk: never the console, a login prompt or the
UI. `KeyDecoder` turns its key events into text lines (a US layout, with Shift; the keypad too);
it needs no evdev import, so any key-event source can use it (the HID barcode scanner reuses
it). Unplugging the reader marks it unavailable; it is grabbed again when it comes back.

A card reader types the UID as hex or as a decimal number, in reading order or reversed (the
common 10-digit "card number" is the reversed 4 bytes in decimal); `wedge_format` and
`wedge_byte_order` say which, and the typed text is turned back into the plain UID bytes, so a
card gives the same member here as on an MFRC522 or an NFC reader.
"""

from __future__ import annotations

import select
from typing import Any

from drivers.base import DeviceError
from drivers.card_polling import BadRead, PollingCardReader, ReaderGone
from kiosk.identifiers import parse_uid_text

EV_KEY = 0x01
KEY_UP, KEY_DOWN, KEY_HOLD = 0, 1, 2
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_CAPSLOCK = 42, 54, 58
KEY_ENTER, KEY_KPENTER = 28, 96

# Linux input key codes (linux/input-event-codes.h) -> (plain, with Shift), US layout.
_KEYS: dict[int, tuple[str, str]] = {
    2: ("1", "!"), 3: ("2", "@"), 4: ("3", "#"), 5: ("4", "$"), 6: ("5", "%"), 7: ("6", "^"),
    8: ("7", "&"), 9: ("8", "*"), 10: ("9", "("), 11: ("0", ")"), 12: ("-", "_"), 13: ("=", "+"),
    15: ("\t", "\t"), 26: ("[", "{"), 27: ("]", "}"), 39: (";", ":"), 40: ("'", '"'), 41: ("`", "~"),
    43: ("\\", "|"), 51: (",", "<"), 52: (".", ">"), 53: ("/", "?"), 57: (" ", " "),
    55: ("*", "*"), 71: ("7", "7"), 72: ("8", "8"), 73: ("9", "9"), 74: ("-", "-"), 75: ("4", "4"),
    76: ("5", "5"), 77: ("6", "6"), 78: ("+", "+"), 79: ("1", "1"), 80: ("2", "2"), 81: ("3", "3"),
    82: ("0", "0"), 83: (".", "."), 98: ("/", "/"),
}
for _row, _start in (("qwertyuiop", 16), ("asdfghjkl", 30), ("zxcvbnm", 44)):
    for _i, _ch in enumerate(_row):
        _KEYS[_start + _i] = (_ch, _ch.upper())


class KeyDecoder:
    """Key events in, text lines out. Feed every event; `feed()` returns a line when Enter ends
    one. Shift (either) and Caps Lock are followed; keys with no character are counted in
    `unknown_keys` and ignored; a line longer than `max_length` is dropped whole and counted in
    `overflows` (a stuck key, or a scanner gone mad), so it never reaches the patron."""

    def __init__(self, *, max_length: int = 256) -> None:
        self.max_length = max_length
        self._chars: list[str] = []
        self._shift: set[int] = set()
        self._caps = False
        self._overflow = False
        self.unknown_keys = 0
        self.overflows = 0

    def feed(self, type_: int, code: int, value: int) -> str | None:
        """One input event (type, code, value); the finished line, or None."""
        if type_ != EV_KEY:
            return None  # EV_SYN, EV_MSC (scan codes), LEDs
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            if value == KEY_UP:
                self._shift.discard(code)
            else:
                self._shift.add(code)
            return None
        if value != KEY_DOWN:
            return None  # key up; auto-repeat (a held key) types nothing more
        if code == KEY_CAPSLOCK:
            self._caps = not self._caps
            return None
        if code in (KEY_ENTER, KEY_KPENTER):
            line, overflow = "".join(self._chars), self._overflow
            self._chars.clear()
            self._overflow = False
            return None if overflow else line
        pair = _KEYS.get(code)
        if pair is None:
            self.unknown_keys += 1
            return None
        shifted = bool(self._shift)
        if pair[0].isalpha() and self._caps:
            shifted = not shifted
        if len(self._chars) >= self.max_length:
            if not self._overflow:
                self.overflows += 1
            self._overflow = True
            self._chars.clear()
            return None
        if not self._overflow:
            self._chars.append(pair[1] if shifted else pair[0])
        return None

    def feed_event(self, event: Any) -> str | None:
        """Feed an evdev InputEvent (anything with .type, .code, .value)."""
        return self.feed(event.type, event.code, event.value)

    def reset(self) -> None:
        """Forget a half-typed line (the device went away in the middle of it)."""
        self._chars.clear()
        self._shift.clear()
        self._overflow = False


def open_input(evdev: Any, path: str, *, grab: bool) -> Any:
    """An evdev input device, grabbed so that its keys reach the kiosk only (closed again if the
    grab fails: another program holds it)."""
    device = evdev.InputDevice(path)
    try:
        if grab:
            device.grab()
    except OSError:
        device.close()
        raise
    return device


def read_lines(device: Any, decoder: KeyDecoder, timeout_s: float) -> list[str]:
    """The text lines the device's waiting key events complete (waits up to `timeout_s`)."""
    lines: list[str] = []
    try:
        ready, _, _ = select.select([device.fd], [], [], timeout_s)
        if ready:
            for event in device.read():
                line = decoder.feed_event(event)
                if line is not None:
                    lines.append(line)
    except BlockingIOError:
        pass
    return lines


class KeyboardWedgeReader(PollingCardReader):
    """A keyboard-wedge card reader at `evdev_path` (best a /dev/input/by-id/ path)."""

    name = "keyboard-wedge card reader"
    read_waits = True  # _read waits for keys itself (select with the poll interval)

    def __init__(
        self, *, evdev_path: str, wedge_format: str = "decimal", wedge_byte_order: str = "reversed",
        grab: bool = True, max_line: int = 64, **loop: Any,
    ) -> None:
        super().__init__(**loop)
        if not evdev_path:
            raise ValueError("evdev_path is empty: name the reader's /dev/input/by-id/…-event-kbd")
        if wedge_format not in ("hex", "decimal") or wedge_byte_order not in ("as-read", "reversed"):
            raise ValueError("wedge_format is \"hex\" or \"decimal\"; wedge_byte_order \"as-read\" or \"reversed\"")
        self.evdev_path = evdev_path
        self.wedge_format, self.wedge_byte_order = wedge_format, wedge_byte_order
        self.grab = grab
        self.decoder = KeyDecoder(max_length=max_line)
        self._device: Any = None
        self._lines: list[str] = []
        self._overflows = 0  # of the decoder's, already reported

    def _describe(self) -> str:
        return f"keyboard-wedge card reader ({self.evdev_path})"

    def _open(self) -> None:
        try:
            import evdev  # only here
        except ImportError as exc:
            raise DeviceError(f"{exc.name or exc} is not installed: pip install '.[pi]'") from None

        self._device = open_input(evdev, self.evdev_path, grab=self.grab)
        self.decoder.reset()
        self._lines.clear()

    def _release(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            try:
                if self.grab:
                    device.ungrab()
            except OSError:
                pass  # unplugged: nothing left to ungrab
            try:
                device.close()
            except OSError:
                pass

    def _read(self) -> bytes | None:
        if not self._lines:
            try:
                self._lines.extend(read_lines(self._device, self.decoder, self.poll_interval_s))
            except OSError as exc:
                raise ReaderGone(f"{self._describe()} went away ({exc.strerror or exc}): unplugged?") from None
            if self.decoder.overflows > self._overflows:
                self._overflows = self.decoder.overflows
                raise BadRead(f"a typed line longer than {self.decoder.max_length} characters")
        if not self._lines:
            return None
        line = self._lines.pop(0)
        try:
            return parse_uid_text(line, fmt=self.wedge_format, byte_order=self.wedge_byte_order)
        except ValueError:
            raise BadRead(f"a typed line that is no card UID ({len(line)} characters)") from None
