"""A fake evdev input device fed from a recorded stream of InputEvents.

`EvdevWorld.install(monkeypatch)` replaces `evdev.InputDevice`: opening a path that is plugged in
gives a `FakeInputDevice` with a real file descriptor (a pipe, so `select()` works as on a real
device) and real `evdev.InputEvent` objects; an unplugged path raises FileNotFoundError on open
and OSError(ENODEV) on read, as the kernel does.

`typed(text)` records what a USB keyboard-wedge reader sends for a line of text: for every key
an MSC_SCAN, the key down, SYN, the key up, SYN, with Left Shift around shifted characters, then
Enter. Key codes come from evdev's own table (`evdev.ecodes`).
"""

from __future__ import annotations

import errno
import os

import evdev
from evdev import ecodes

_SHIFTED = {"!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8", "(": "9", ")": "0",
            "_": "MINUS", "+": "EQUAL", ":": "SEMICOLON", "?": "SLASH", ">": "DOT", "<": "COMMA"}
_PLAIN = {"-": "MINUS", "=": "EQUAL", ";": "SEMICOLON", "/": "SLASH", ".": "DOT", ",": "COMMA", " ": "SPACE"}


def _key(name: str) -> int:
    return ecodes.ecodes["KEY_" + name]


def typed(text: str, *, enter: str = "ENTER", t0: float = 1700000000.0) -> list[evdev.InputEvent]:
    """The events of a reader typing `text` and Enter, 8 ms a key."""
    events: list[evdev.InputEvent] = []
    now = t0

    def emit(type_: int, code: int, value: int) -> None:
        sec, usec = int(now), int(round((now - int(now)) * 1e6))
        events.append(evdev.InputEvent(sec, usec, type_, code, value))

    def press(code: int) -> None:
        nonlocal now
        emit(ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70000 + code)
        emit(ecodes.EV_KEY, code, 1)
        emit(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
        now += 0.004
        emit(ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70000 + code)
        emit(ecodes.EV_KEY, code, 0)
        emit(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
        now += 0.004

    for ch in text:
        shift = ch.isupper() or ch in _SHIFTED
        name = _SHIFTED.get(ch) or _PLAIN.get(ch) or ch.upper()
        if shift:
            emit(ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 1)
        press(_key(name))
        if shift:
            emit(ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 0)
    press(_key(enter))
    return events


class EvdevWorld:
    def __init__(self) -> None:
        self.plugged: set[str] = set()
        self.devices: list[FakeInputDevice] = []
        self.grabbed_elsewhere = False
        self.queued: list[evdev.InputEvent] = []  # sent before any device was opened

    def install(self, monkeypatch) -> "EvdevWorld":
        world = self

        def open_device(path: str) -> "FakeInputDevice":
            if path not in world.plugged:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
            device = FakeInputDevice(world, path)
            world.devices.append(device)
            if world.queued:
                device.pending, world.queued = world.queued, []
                os.write(device._w, b"x")
            return device

        monkeypatch.setattr(evdev, "InputDevice", open_device)
        return self

    @property
    def device(self) -> "FakeInputDevice":
        return self.devices[-1]

    def send(self, events: list[evdev.InputEvent]) -> None:
        if not self.devices:
            self.queued.extend(events)
            return
        self.device.pending.extend(events)
        os.write(self.device._w, b"x")

    def unplug(self, path: str) -> None:
        self.plugged.discard(path)
        for device in self.devices:
            if device.path == path and not device.closed:
                os.write(device._w, b"x")  # a real fd becomes readable (and fails) on unplug

    def close_all(self) -> None:
        for device in self.devices:
            device.close()


class FakeInputDevice:
    def __init__(self, world: EvdevWorld, path: str) -> None:
        self.world, self.path = world, path
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.pending: list[evdev.InputEvent] = []
        self.grabbed = False
        self.closed = False
        self.name = "Card Reader Keyboard"

    @property
    def fd(self) -> int:
        return self._r

    def fileno(self) -> int:
        return self._r

    def grab(self) -> None:
        if self.world.grabbed_elsewhere:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed = True

    def ungrab(self) -> None:
        if self.path not in self.world.plugged:
            raise OSError(errno.ENODEV, "No such device")
        self.grabbed = False

    def read(self):
        if self.path not in self.world.plugged:
            raise OSError(errno.ENODEV, "No such device")
        try:
            os.read(self._r, 4096)
        except BlockingIOError:
            pass
        if not self.pending:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        events, self.pending = self.pending, []
        return iter(events)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._r)
            os.close(self._w)
