"""Simulated devices for the demo and the tests: driven by hand, inspected afterwards.

They are chosen explicitly in the config (`driver = "simulated"`), never as a fallback when real
hardware is missing.
"""

from __future__ import annotations

from drivers.base import CardRead, CodeRead, DeviceError, DoorChanged, Emit, Health


def _noop(event: object) -> None:
    return None


class SimCardReader:
    """A card reader that reads whatever card `present()` is given."""

    def __init__(self) -> None:
        self._emit: Emit = _noop
        self.started = False
        self.reads: list[bytes] = []

    def start(self, emit: Emit) -> None:
        self._emit, self.started = emit, True

    def present(self, uid: bytes) -> None:
        """A patron taps a card with this UID."""
        if not self.started:
            raise DeviceError("the simulated card reader is not started")
        self.reads.append(uid)
        self._emit(CardRead(uid))

    def close(self) -> None:
        self._emit, self.started = _noop, False

    def health(self) -> Health:
        return Health(True) if self.started else Health(False, "not started")

    def __repr__(self) -> str:
        return f"<SimCardReader started={self.started} reads={len(self.reads)}>"


class SimScanner:
    """A barcode scanner that reads whatever `show()` is given (a phone screen, a book label)."""

    def __init__(self) -> None:
        self._emit: Emit = _noop
        self.started = False
        self.reads: list[str] = []

    def start(self, emit: Emit) -> None:
        self._emit, self.started = emit, True

    def show(self, text: str, symbology: str = "") -> None:
        if not self.started:
            raise DeviceError("the simulated scanner is not started")
        self.reads.append(text)
        self._emit(CodeRead(text, symbology))

    def close(self) -> None:
        self._emit, self.started = _noop, False

    def health(self) -> Health:
        return Health(True) if self.started else Health(False, "not started")

    def __repr__(self) -> str:
        return f"<SimScanner started={self.started} reads={len(self.reads)}>"


class SimLockBank:
    """Lockers with locks and door switches. A person opens and closes doors with
    `open_door()` / `close_door()`; a locked door can still be opened (that is a forced door)."""

    def __init__(self, *, slots: int = 24) -> None:
        if slots < 1:
            raise ValueError("a lock bank needs at least one locker")
        self.slots = slots
        self._emit: Emit = _noop
        self._locked = {n: True for n in range(1, slots + 1)}
        self._open = {n: False for n in range(1, slots + 1)}
        self.history: list[tuple[str, int]] = []  # ("unlock" | "lock", slot), in order
        self.last_unlocked: int | None = None
        self.started = False

    def _check(self, slot: int) -> None:
        if slot not in self._locked:
            raise DeviceError(f"there is no locker {slot} (this bank has 1..{self.slots})")

    def start(self, emit: Emit) -> None:
        self._emit = emit
        for slot in self._locked:  # fail secure: everything locked at start
            self._locked[slot] = True
        self.started = True

    def unlock(self, slot: int) -> None:
        self._check(slot)
        self._locked[slot] = False
        self.last_unlocked = slot
        self.history.append(("unlock", slot))

    def lock(self, slot: int) -> None:
        self._check(slot)
        self._locked[slot] = True
        self.history.append(("lock", slot))

    def is_locked(self, slot: int) -> bool:
        self._check(slot)
        return self._locked[slot]

    def is_open(self, slot: int) -> bool:
        self._check(slot)
        return self._open[slot]

    def open_door(self, slot: int) -> None:
        self._check(slot)
        if not self._open[slot]:
            self._open[slot] = True
            self._emit(DoorChanged(slot, True))

    def close_door(self, slot: int) -> None:
        self._check(slot)
        if self._open[slot]:
            self._open[slot] = False
            self._emit(DoorChanged(slot, False))

    def unlocked(self) -> list[int]:
        return [slot for slot, locked in self._locked.items() if not locked]

    def close(self) -> None:
        if self.started:
            for slot in self._locked:  # fail secure: everything locked at exit
                self._locked[slot] = True
        self._emit, self.started = _noop, False

    def health(self) -> Health:
        return Health(True) if self.started else Health(False, "not started")

    def __repr__(self) -> str:
        return f"<SimLockBank slots={self.slots} unlocked={self.unlocked()} open={[s for s, o in self._open.items() if o]}>"
