"""What a lock bank makes of its sensors: the same door events for every kind of lock hardware.

Each adapter (simulated, GPIO relays, RS-485 lock boards) reads its own sensors and tells a
`DoorWatch` what it saw and what it did (unlock, lock, a door reading, an occupancy reading). The
watch turns that into the lock bank's events:

| event | when |
|---|---|
| `opened` / `closed` | a door's sensor changed (reported to the app as `DoorChanged`) |
| `left-open` | a door has been open for `left_open_s` (once per opening) |
| `forced-open` | a door opened although its lock was not released |
| `jammed` | `jam_check_s` after an unlock the door has still not opened (only where the door's sensor tells a released lock: spring-loaded doors, a lock's own hook switch) |
| `occupied` / `vacated` | an occupancy sensor (infrared, a switch under the shelf) changed |

A lock counts as released from `unlocked()` until `locked()` or until its door has opened and
closed again (a latch lock re-latches when the door shuts). The watch never reads a clock: every
call carries the time, from the bank's injected clock.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.base import DoorAlarm, DoorChanged, Emit, OccupancyChanged

_EPSILON = 1e-6  # clock readings are floats: 1000.0 + 0.05 - 1000.0 < 0.05

KINDS = ("opened", "closed", "left-open", "forced-open", "jammed", "occupied", "vacated")


@dataclass(frozen=True)
class LockEvent:
    kind: str  # one of KINDS
    slot: int
    at: float  # the bank's clock (monotonic seconds)


def _noop(event: object) -> None:
    return None


class DoorWatch:
    """Door, lock and occupancy state of every locker of one bank, and the events it implies.

    Thread-safe: a bank may feed it from a polling thread while the app unlocks from its own.
    """

    def __init__(self, slots: Iterable[int], *, left_open_s: float = 60.0, jam_check_s: float = 0.0,
                 history: int = 500) -> None:
        self.left_open_s = left_open_s
        self.jam_check_s = jam_check_s
        self._emit: Emit = _noop
        self._lock = threading.RLock()
        self._open: dict[int, bool | None] = {slot: None for slot in slots}  # None: not read yet
        self._opened_at: dict[int, float] = {}
        self._warned: set[int] = set()
        self._released: dict[int, float] = {}  # slot -> when it was unlocked
        self._was_opened: set[int] = set()  # released slots whose door has opened since
        self._jam_reported: set[int] = set()
        self._occupied: dict[int, bool | None] = {slot: None for slot in self._open}
        self.events: collections.deque[LockEvent] = collections.deque(maxlen=history)

    def set_emit(self, emit: Emit | None) -> None:
        self._emit = emit or _noop

    # -- what the bank did

    def unlocked(self, slot: int, at: float) -> None:
        with self._lock:
            self._released[slot] = at
            self._was_opened.discard(slot)
            self._jam_reported.discard(slot)

    def locked(self, slot: int, at: float) -> None:
        with self._lock:
            self._released.pop(slot, None)
            self._was_opened.discard(slot)

    def released(self, slot: int) -> bool:
        with self._lock:
            return slot in self._released

    # -- what the sensors said

    def door(self, slot: int, is_open: bool, at: float) -> None:
        """A (debounced) door reading. The first reading of a door is its starting state: no
        event, but a door found open starts the left-open timer."""
        with self._lock:
            before = self._open[slot]
            self._open[slot] = is_open
            if before is None:
                if is_open:
                    self._opened_at[slot] = at
                return
            if before == is_open:
                return
            if is_open:
                self._opened_at[slot] = at
                self._warned.discard(slot)
                self._record("opened", slot, at)
                if slot in self._released:
                    self._was_opened.add(slot)
                else:
                    self._record("forced-open", slot, at)
                self._emit(DoorChanged(slot, True))
            else:
                self._opened_at.pop(slot, None)
                if slot in self._was_opened:
                    # The latch caught the door again: it is locked whatever the app does next.
                    self._released.pop(slot, None)
                    self._was_opened.discard(slot)
                self._record("closed", slot, at)
                self._emit(DoorChanged(slot, False))

    def occupancy(self, slot: int, occupied: bool, at: float) -> None:
        with self._lock:
            before = self._occupied[slot]
            self._occupied[slot] = occupied
            if before is None or before == occupied:
                return
            self._record("occupied" if occupied else "vacated", slot, at)
            self._emit(OccupancyChanged(slot, occupied))

    def tick(self, at: float) -> None:
        """Timers: doors left open, unlocks that did not open their door."""
        with self._lock:
            for slot, since in list(self._opened_at.items()):
                if slot not in self._warned and at - since + _EPSILON >= self.left_open_s:
                    self._warned.add(slot)
                    self._record("left-open", slot, at)
                    self._emit(DoorAlarm(slot, "door-left-open"))
            if self.jam_check_s > 0:
                for slot, since in list(self._released.items()):
                    if self._open[slot] is False and at - since + _EPSILON >= self.jam_check_s:
                        self.jammed(slot, at)

    def jammed(self, slot: int, at: float) -> None:
        """The lock of this released locker did not move: from the door (see `tick`) or from a
        sensor on the bolt itself. Reported once per unlock, and never after the door opened."""
        with self._lock:
            if slot in self._released and slot not in self._was_opened and slot not in self._jam_reported:
                self._jam_reported.add(slot)
                self._record("jammed", slot, at)
                self._emit(DoorAlarm(slot, "lock-jammed"))

    # -- what is known

    def is_open(self, slot: int) -> bool:
        with self._lock:
            return bool(self._open[slot])

    def known(self, slot: int) -> bool:
        with self._lock:
            return self._open[slot] is not None

    def occupied(self, slot: int) -> bool | None:
        with self._lock:
            return self._occupied[slot]

    def open_doors(self) -> list[int]:
        with self._lock:
            return [slot for slot, is_open in self._open.items() if is_open]

    def kinds(self, slot: int | None = None) -> list[str]:
        """The events so far (of one locker), oldest first: for tests and the self-test."""
        with self._lock:
            return [e.kind for e in self.events if slot is None or e.slot == slot]

    def _record(self, kind: str, slot: int, at: float) -> None:
        self.events.append(LockEvent(kind, slot, at))


def slot_ranges(slots: Iterable[int]) -> str:
    """1, 2, 3, 7 -> "1-3, 7": lockers named the way staff read them."""
    ordered = sorted(set(slots))
    parts: list[str] = []
    start = prev = None
    for slot in ordered + [None]:  # type: ignore[list-item]
        if start is None:
            start = prev = slot
        elif slot is not None and slot == prev + 1:
            prev = slot
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = slot
    return ", ".join(parts)
