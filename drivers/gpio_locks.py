"""Lockers on the Pi's own GPIO: one relay per lock, one door switch per door, and optionally an
occupancy sensor per locker, all named by BCM number, through gpiozero.

gpiozero is imported only here, when the config chooses `driver = "gpio"`, and its pin factory
comes from the config: "rpigpio" (RPi.GPIO, Pi 1-4), "lgpio" (the Pi 5, or any Pi on a recent
kernel) or "mock" (gpiozero's mock pins, for tests and bench work). A factory object may be passed
instead of a name (the tests give each bank its own `MockFactory`).

Nothing runs on a background thread: `poll()` (called from the kiosk's loop, about 30 times a
second) reads the door and occupancy switches, debounces them on the injected clock, and ends
unlock pulses. gpiozero's edge callbacks and `bounce_time` would start threads of their own, so
plain `InputDevice`s are read instead.

Fail secure: every relay is off when the bank is built, at `start()`, at `close()`, and whenever a
pin cannot be read or written. `close()` releases only this bank's own pins (never the factory,
whose close would be a global `GPIO.cleanup()`).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.base import DeviceError, Emit, Health
from drivers.doors import DoorWatch

log = logging.getLogger("kiosk.locks.gpio")

_EPSILON = 1e-6  # clock readings are floats: 1000.0 + 0.05 - 1000.0 < 0.05

PIN_FACTORIES = {
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
    "lgpio": "gpiozero.pins.lgpio:LGPIOFactory",
    "mock": "gpiozero.pins.mock:MockFactory",
}


class GpioLockError(DeviceError, ValueError):
    """The GPIO lock bank cannot be built as configured (a pin missing, reused or refused)."""


@dataclass(frozen=True)
class LockerPins:
    relay_bcm_pin: int
    door_bcm_pin: int
    occupancy_bcm_pin: int = -1  # -1: no occupancy sensor in this locker


def _pins(entry: Any) -> LockerPins:
    if isinstance(entry, LockerPins):
        return entry
    if isinstance(entry, Mapping):
        return LockerPins(**{k: int(v) for k, v in entry.items()})
    # A config section object with the same field names.
    return LockerPins(int(entry.relay_bcm_pin), int(entry.door_bcm_pin),
                      int(getattr(entry, "occupancy_bcm_pin", -1)))


def make_pin_factory(factory: Any) -> Any:
    """A gpiozero pin factory from its config name (or the factory itself)."""
    if not isinstance(factory, str):
        return factory
    try:
        target = PIN_FACTORIES[factory]
    except KeyError:
        raise GpioLockError(f"no pin factory named {factory!r} (known: {', '.join(PIN_FACTORIES)})") from None
    module_name, _, class_name = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)()
    except Exception as exc:  # RPi.GPIO raises RuntimeError off a Pi, lgpio an OSError without /dev/gpiochip
        raise DeviceError(f"GPIO pin factory {factory!r} is not usable here: {exc}") from exc


class GpioLockBank:
    """Lockers 1..slots on GPIO relays and switches; locker N is `lockers[N-1]`."""

    polls_itself = False

    def __init__(
        self, *, slots: int, lockers: Sequence[Any], pin_factory: Any = "rpigpio",
        relay_active_high: bool = False, unlock_mode: str = "pulse", pulse_s: float = 0.5,
        door_pull_up: bool = True, door_open_level: str = "high",
        occupancy_pull_up: bool = True, occupied_level: str = "low",
        debounce_s: float = 0.05, jam_check_s: float = 0.0, left_open_s: float = 60.0,
        clock: Any = None,
    ) -> None:
        pins = [_pins(entry) for entry in lockers]
        if len(pins) != slots:
            raise GpioLockError(f"{slots} lockers, but pins are given for {len(pins)}")
        if unlock_mode not in ("pulse", "hold"):
            raise GpioLockError(f"unlock_mode must be 'pulse' or 'hold', not {unlock_mode!r}")
        if door_open_level not in ("high", "low") or occupied_level not in ("high", "low"):
            raise GpioLockError("door_open_level and occupied_level are 'high' or 'low'")
        used: dict[int, str] = {}
        for slot, p in enumerate(pins, start=1):
            for role, pin in (("relay", p.relay_bcm_pin), ("door", p.door_bcm_pin), ("occupancy", p.occupancy_bcm_pin)):
                if pin == -1 and role == "occupancy":
                    continue
                if pin in used:
                    raise GpioLockError(f"BCM {pin} is used twice: locker {slot} {role} and {used[pin]}")
                used[pin] = f"locker {slot} {role}"
        self.slots = slots
        self.unlock_mode = unlock_mode
        self.pulse_s = pulse_s
        self.debounce_s = debounce_s
        self._relay_active_high = relay_active_high
        self._door_open_level = 1 if door_open_level == "high" else 0
        self._occupied_level = 1 if occupied_level == "high" else 0
        self._clock = clock
        self._pins = {slot: p for slot, p in enumerate(pins, start=1)}
        self.watch = DoorWatch(self._pins, left_open_s=left_open_s, jam_check_s=jam_check_s)
        self._pulse_until: dict[int, float] = {}
        self._candidate: dict[tuple[str, int], tuple[bool, float]] = {}
        self._fault = ""
        self.started = False
        self._closed = False
        self.pin_factory = make_pin_factory(pin_factory)
        self._relays: dict[int, Any] = {}
        self._doors: dict[int, Any] = {}
        self._occupancy: dict[int, Any] = {}
        from gpiozero import InputDevice, OutputDevice  # only when this adapter is chosen

        try:
            for slot, p in self._pins.items():
                # initial_value=False: the relay is off (the lock locked) from the first instant.
                self._relays[slot] = OutputDevice(p.relay_bcm_pin, active_high=relay_active_high,
                                                  initial_value=False, pin_factory=self.pin_factory)
                self._doors[slot] = InputDevice(p.door_bcm_pin, pull_up=door_pull_up,
                                                pin_factory=self.pin_factory)
                if p.occupancy_bcm_pin != -1:
                    self._occupancy[slot] = InputDevice(p.occupancy_bcm_pin, pull_up=occupancy_pull_up,
                                                        pin_factory=self.pin_factory)
        except Exception as exc:
            # A half-built bank closes what it already opened, and says which pin failed.
            self._close_devices()
            raise GpioLockError(f"GPIO lock bank: locker {slot}: {exc}") from exc

    def _now(self) -> float:
        return self._clock.monotonic() if self._clock is not None else time.monotonic()

    def _check(self, slot: int) -> None:
        if slot not in self._pins:
            raise DeviceError(f"there is no locker {slot} (this bank has 1..{self.slots})")

    # -- lifecycle

    def start(self, emit: Emit) -> None:
        """Every relay off (fail secure), then the doors' starting state."""
        if self._closed:
            raise DeviceError("the GPIO lock bank is closed")
        self._all_off()
        now = self._now()
        for slot in self._pins:
            self.watch.locked(slot, now)
        try:
            for slot in self._pins:
                self.watch.door(slot, self._read_door(slot), now)
                if slot in self._occupancy:
                    self.watch.occupancy(slot, self._read_occupancy(slot), now)
        except Exception as exc:  # noqa: BLE001 - a pin that cannot be read is a fault, not a crash
            self._trip(f"cannot read the door switches: {exc}")
        for slot in self.watch.open_doors():
            log.warning("locker %d's door is open at start", slot)
        self.watch.set_emit(emit)
        self.started = True

    def close(self) -> None:
        """Every relay off, then release this bank's pins. Idempotent."""
        if self._closed:
            return
        self._all_off()
        self.watch.set_emit(None)
        self._close_devices()
        self._closed = True
        self.started = False

    def __enter__(self) -> GpioLockBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_devices(self) -> None:
        for devices in (self._relays, self._doors, self._occupancy):
            for device in devices.values():
                try:
                    device.close()
                except Exception:  # noqa: BLE001 - close the rest
                    log.exception("a GPIO pin did not close cleanly")

    # -- locks

    def unlock(self, slot: int) -> None:
        self._check(slot)
        if self._fault:
            raise DeviceError(f"locker {slot} is out of service: {self._fault}")
        now = self._now()
        try:
            self._relays[slot].on()
        except Exception as exc:  # noqa: BLE001
            self._trip(f"relay of locker {slot} (BCM {self._pins[slot].relay_bcm_pin}) failed: {exc}")
            raise DeviceError(f"locker {slot} did not unlock: {exc}") from exc
        if self.unlock_mode == "pulse":
            self._pulse_until[slot] = now + self.pulse_s
        self.watch.unlocked(slot, now)

    def lock(self, slot: int) -> None:
        self._check(slot)
        self._pulse_until.pop(slot, None)
        try:
            self._relays[slot].off()
        except Exception as exc:  # noqa: BLE001
            self._trip(f"relay of locker {slot} failed: {exc}")
            raise DeviceError(f"locker {slot} did not lock: {exc}") from exc
        self.watch.locked(slot, self._now())

    def is_open(self, slot: int) -> bool:
        self._check(slot)
        return self.watch.is_open(slot)

    def is_energised(self, slot: int) -> bool:
        """Whether this locker's relay is on (its lock released) right now."""
        self._check(slot)
        return bool(self._relays[slot].value)

    def out_of_service(self) -> dict[int, str]:
        return {slot: self._fault for slot in self._pins} if self._fault else {}

    def occupied(self, slot: int) -> bool | None:
        """What the locker's occupancy sensor sees (None where there is none)."""
        self._check(slot)
        return self.watch.occupied(slot) if slot in self._occupancy else None

    # -- the loop

    def poll(self) -> None:
        """End pulses that are due, read the switches (debounced), run the door timers."""
        if not self.started:
            return
        now = self._now()
        for slot, until in list(self._pulse_until.items()):
            if now + _EPSILON >= until:
                del self._pulse_until[slot]
                try:
                    self._relays[slot].off()
                except Exception as exc:  # noqa: BLE001
                    self._trip(f"relay of locker {slot} failed: {exc}")
        try:
            for slot in self._pins:
                is_open = self._stable("door", slot, self._read_door(slot), self.watch.is_open(slot), now)
                if is_open is not None:
                    self.watch.door(slot, is_open, now)
                if slot in self._occupancy:
                    known = bool(self.watch.occupied(slot))
                    occupied = self._stable("occupancy", slot, self._read_occupancy(slot), known, now)
                    if occupied is not None:
                        self.watch.occupancy(slot, occupied, now)
        except Exception as exc:  # noqa: BLE001
            self._trip(f"cannot read the switches: {exc}")
            return
        self.watch.tick(now)

    def _stable(self, kind: str, slot: int, reading: bool, accepted: bool, now: float) -> bool | None:
        """A reading that differs from the accepted state counts once it has held for debounce_s."""
        key = (kind, slot)
        if reading == accepted:
            self._candidate.pop(key, None)
            return None
        if self.debounce_s <= 0:
            return reading
        seen = self._candidate.get(key)
        if seen is None or seen[0] != reading:
            self._candidate[key] = (reading, now)
            return None
        if now - seen[1] + _EPSILON >= self.debounce_s:
            del self._candidate[key]
            return reading
        return None

    def _read_door(self, slot: int) -> bool:
        return int(self._doors[slot].pin.state) == self._door_open_level

    def _read_occupancy(self, slot: int) -> bool:
        return int(self._occupancy[slot].pin.state) == self._occupied_level

    def _all_off(self) -> None:
        self._pulse_until.clear()
        for slot, relay in self._relays.items():
            try:
                relay.off()
            except Exception:  # noqa: BLE001 - switch off every other relay regardless
                log.exception("relay of locker %d did not switch off", slot)

    def _trip(self, reason: str) -> None:
        """On any doubt: every relay off, every locker out of service until the bank is rebuilt."""
        if not self._fault:
            log.error("GPIO lock bank fault, all relays off: %s", reason)
        self._fault = reason
        self._all_off()

    # -- health

    def health(self) -> Health:
        if self._closed:
            return Health(False, "closed")
        if not self.started:
            return Health(False, "not started")
        if self._fault:
            return Health(False, f"{self._fault} (every locker out of service)")
        return Health(True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("fault" if self._fault else ("started" if self.started else "built"))
        released = [slot for slot in self._relays if not self._closed and self._relays[slot].value]
        return (f"<GpioLockBank slots={self.slots} {state} unlock={self.unlock_mode} "
                f"released={released} open={self.watch.open_doors()}>")
