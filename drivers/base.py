"""The device Protocols and the events devices report.

Devices know nothing of sessions or clocks: they report what they saw through the `emit`
callback given to `start()` (from their own thread, for real hardware), and the application
turns those reports into session events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Union


class DeviceError(Exception):
    """A device failed in a way its adapter could not hide."""


@dataclass(frozen=True)
class CardRead:
    uid: bytes  # the plain UID, as read from the card


@dataclass(frozen=True)
class CodeRead:
    text: str
    symbology: str = ""  # "QRCODE", "CODE128", "CODE39", "EAN13", or "" when unknown


@dataclass(frozen=True)
class DoorChanged:
    slot: int
    open: bool


@dataclass(frozen=True)
class DoorAlarm:
    """Something about a locker that staff must know, seen by the lock bank itself."""

    slot: int
    kind: str  # "door-left-open" (any door, however it opened), "lock-jammed" (unlocked, never opened)


@dataclass(frozen=True)
class OccupancyChanged:
    """An occupancy sensor (infrared, a shelf switch) saw something arrive in or leave a locker."""

    slot: int
    occupied: bool


DeviceEvent = Union[CardRead, CodeRead, DoorChanged, DoorAlarm, OccupancyChanged]
Emit = Callable[[DeviceEvent], None]


@dataclass(frozen=True)
class Health:
    available: bool
    reason: str = ""  # why not, in words a technician can act on


class CardReader(Protocol):
    def start(self, emit: Emit) -> None: ...
    def close(self) -> None: ...
    def health(self) -> Health: ...


class BarcodeScanner(Protocol):
    def start(self, emit: Emit) -> None: ...
    def close(self) -> None: ...
    def health(self) -> Health: ...


class LockBank(Protocol):
    """Lockers numbered 1..slots, each with a lock and a door sensor. Locked is the safe state."""

    slots: int

    def start(self, emit: Emit) -> None:
        """Lock every locker (fail secure) and begin reporting door changes."""

    def unlock(self, slot: int) -> None:
        """Release this locker's lock; DeviceError when it cannot (or is out of service)."""

    def lock(self, slot: int) -> None: ...
    def is_open(self, slot: int) -> bool: ...

    def poll(self) -> None:
        """Read the sensors once and run the timers (pulse ends, doors left open, jams). The app
        calls it from its loop, unless the bank has `polls_itself` (its own thread)."""

    def out_of_service(self) -> dict[int, str]:
        """Lockers that cannot be used now (their board does not answer), with the reason."""

    def occupied(self, slot: int) -> bool | None:
        """What the locker's occupancy sensor sees now; None where there is no sensor."""

    def close(self) -> None:
        """Lock every locker and release the hardware. Idempotent."""

    def health(self) -> Health: ...


class Unavailable:
    """Stands in for a device whose adapter could not be built (a pin factory that is not usable
    on this machine, a pin another program holds): the kiosk runs without it and says why,
    instead of not starting at all. As a lock bank, every locker is out of service."""

    polls_itself = True

    def __init__(self, kind: str, reason: str, *, slots: int = 0) -> None:
        self.kind = kind
        self.reason = reason
        self.slots = slots

    def start(self, emit: Emit) -> None:
        raise DeviceError(self.reason)

    def unlock(self, slot: int) -> None:
        raise DeviceError(f"locker {slot} is out of service: {self.reason}")

    def lock(self, slot: int) -> None:
        return None

    def is_open(self, slot: int) -> bool:
        return False

    def poll(self) -> None:
        return None

    def signal(self, kind: str) -> None:
        return None

    def out_of_service(self) -> dict[int, str]:
        return {slot: self.reason for slot in range(1, self.slots + 1)}

    def close(self) -> None:
        return None

    def health(self) -> Health:
        return Health(False, self.reason)

    def __repr__(self) -> str:
        return f"<Unavailable {self.kind}: {self.reason}>"
