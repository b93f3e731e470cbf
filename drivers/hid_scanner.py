"""A USB HID barcode scanner (a "keyboard" that types each code and Enter) through evdev.

The scanner is opened by its stable `/dev/input/by-id/...-event-kbd` path and grabbed
(EVIOCGRAB), so what it types reaches only the kiosk, never a console or the UI. Its key events
become text with `KeyDecoder` (the keyboard-wedge card readers' decoder: US layout, Shift, Caps
Lock, the keypad); what a line must be to reach the kiosk, the debounce, the counting of junk
and the reopening after an unplug are `LineScanner`'s. Set the scanner to a US keyboard layout
and an Enter suffix (most are, out of the box).
"""

from __future__ import annotations

from typing import Any

from drivers.keyboard_wedge import KeyDecoder, open_input, read_lines
from drivers.line_scanner import DeviceGone, LineScanner, import_or_explain

MAX_KEYS = 512  # characters typed without Enter before the line is junk


class HidScanner(LineScanner):
    """Barcodes typed by a USB HID scanner. Options come from `[devices.scanner]`."""

    bad_line_hint = "set it to a US keyboard layout with an Enter suffix"

    def __init__(self, *, evdev_path: str, grab: bool = True, poll_interval_s: float = 0.1, **common: Any) -> None:
        super().__init__(**common)
        if not evdev_path:
            raise ValueError("evdev_path is empty: name the scanner's /dev/input/by-id/…-event-kbd")
        self.evdev_path, self.grab, self.poll_interval_s = evdev_path, grab, poll_interval_s
        self._evdev = import_or_explain("evdev", "pi")
        self.decoder = KeyDecoder(max_length=MAX_KEYS)
        self._device: Any = None
        self._overflows = 0

    def describe(self) -> str:
        return f"HID barcode scanner {self.evdev_path}"

    def _open_hint(self) -> str:
        return "is it plugged in, and is the kiosk's user in the 'input' group?"

    def _open(self) -> None:
        self._device = open_input(self._evdev, self.evdev_path, grab=self.grab)
        self.decoder.reset()

    def _release(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        try:
            if self.grab:
                device.ungrab()
        except OSError:
            pass  # unplugged: nothing left to ungrab
        device.close()

    def _read(self) -> list[str]:
        try:
            lines = read_lines(self._device, self.decoder, self.poll_interval_s)
        except OSError as exc:
            self.decoder.reset()
            raise DeviceGone(exc.strerror or str(exc)) from None
        while self._overflows < self.decoder.overflows:  # a stuck key, or a scanner gone mad
            self._overflows += 1
            self.counts["lines"] += 1
            self._count("too_long", f"over {MAX_KEYS} keys without Enter")
        return lines
