"""Simulated devices for the demo and the tests: driven by hand, inspected afterwards.

They are chosen explicitly in the config (`driver = "simulated"`), never as a fallback when real
hardware is missing.
"""

from __future__ import annotations

import time
from typing import Any

from drivers.base import CardRead, CodeRead, DeviceError, Emit, Health
from drivers.doors import DoorWatch, slot_ranges


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
    `open_door()` / `close_door()`; a locked door can still be opened (that is a forced door).

    Like the real banks it reports its doors through a `DoorWatch` (left open, forced, jammed,
    occupancy) and can be made to fail: `jam(slot)` (the lock no longer releases),
    `fail(slots, reason)` (out of service, as a lock board that stops answering), `put_item()` /
    `take_item()` (its occupancy sensors, with `occupancy=True`)."""

    polls_itself = False

    def __init__(self, *, slots: int = 24, clock: Any = None, left_open_s: float = 60.0,
                 jam_check_s: float = 0.0, occupancy: bool = False) -> None:
        if slots < 1:
            raise ValueError("a lock bank needs at least one locker")
        self.slots = slots
        self._clock = clock
        self._emit: Emit = _noop
        self._locked = {n: True for n in range(1, slots + 1)}
        self._open = {n: False for n in range(1, slots + 1)}
        self._items = {n: False for n in range(1, slots + 1)}
        self.has_occupancy = occupancy
        self._jammed: set[int] = set()
        self._broken: dict[int, str] = {}
        self.watch = DoorWatch(self._locked, left_open_s=left_open_s, jam_check_s=jam_check_s)
        self.history: list[tuple[str, int]] = []  # ("unlock" | "lock", slot), in order
        self.last_unlocked: int | None = None
        self.started = False

    def _now(self) -> float:
        return self._clock.monotonic() if self._clock is not None else time.monotonic()

    def _check(self, slot: int) -> None:
        if slot not in self._locked:
            raise DeviceError(f"there is no locker {slot} (this bank has 1..{self.slots})")

    def start(self, emit: Emit) -> None:
        self._emit = emit
        now = self._now()
        for slot in self._locked:  # fail secure: everything locked at start
            self._locked[slot] = True
            self.watch.locked(slot, now)
            self.watch.door(slot, self._open[slot], now)  # the starting state, no event
            if self.has_occupancy:
                self.watch.occupancy(slot, self._items[slot], now)
        self.watch.set_emit(emit)
        self.started = True

    def unlock(self, slot: int) -> None:
        self._check(slot)
        if slot in self._broken:
            raise DeviceError(f"locker {slot} is out of service: {self._broken[slot]}")
        if slot not in self._jammed:
            self._locked[slot] = False
        self.last_unlocked = slot
        self.history.append(("unlock", slot))
        self.watch.unlocked(slot, self._now())

    def lock(self, slot: int) -> None:
        self._check(slot)
        self._locked[slot] = True
        self.history.append(("lock", slot))
        self.watch.locked(slot, self._now())

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
            self.watch.door(slot, True, self._now())

    def close_door(self, slot: int) -> None:
        self._check(slot)
        if self._open[slot]:
            self._open[slot] = False
            self.watch.door(slot, False, self._now())

    def put_item(self, slot: int) -> None:
        self._check(slot)
        self._items[slot] = True
        if self.has_occupancy:
            self.watch.occupancy(slot, True, self._now())

    def take_item(self, slot: int) -> None:
        self._check(slot)
        self._items[slot] = False
        if self.has_occupancy:
            self.watch.occupancy(slot, False, self._now())

    def jam(self, slot: int, jammed: bool = True) -> None:
        """From now on this lock does not release when unlocked (or does again)."""
        self._check(slot)
        (self._jammed.add if jammed else self._jammed.discard)(slot)

    def fail(self, slots: list[int] | range, reason: str = "the simulated lock board does not answer") -> None:
        """These lockers go out of service, as if their lock board stopped answering."""
        for slot in slots:
            self._check(slot)
            self._broken[slot] = reason

    def repair(self) -> None:
        self._broken.clear()

    def out_of_service(self) -> dict[int, str]:
        return dict(self._broken)

    def occupied(self, slot: int) -> bool | None:
        """What the occupancy sensor sees (None without sensors)."""
        self._check(slot)
        return self.watch.occupied(slot) if self.has_occupancy else None

    def poll(self) -> None:
        now = self._now()
        for slot in self._jammed:
            # The simulated lock knows its bolt did not move: a jam is seen at once.
            if self.watch.released(slot) and self._locked[slot]:
                self.watch.jammed(slot, now)
        self.watch.tick(now)

    def unlocked(self) -> list[int]:
        return [slot for slot, locked in self._locked.items() if not locked]

    def close(self) -> None:
        if self.started:
            for slot in self._locked:  # fail secure: everything locked at exit
                self._locked[slot] = True
        self.watch.set_emit(None)
        self._emit, self.started = _noop, False

    def health(self) -> Health:
        if not self.started:
            return Health(False, "not started")
        if self._broken:
            reasons = sorted(set(self._broken.values()))
            return Health(False, f"{'; '.join(reasons)} (lockers {slot_ranges(self._broken)} out of service)")
        return Health(True)

    def __repr__(self) -> str:
        return f"<SimLockBank slots={self.slots} unlocked={self.unlocked()} open={[s for s, o in self._open.items() if o]}>"

