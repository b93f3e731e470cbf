"""`kiosk selftest`: the technician's check of the devices the config names.

It builds the devices exactly as the kiosk would, starts them, and then, one device at a time,
waits (bounded) for a card tap and a barcode, pulses the chosen locks and watches each door's
sensor, and lists every door sensor. Every check ends PASS or FAIL with a detail a technician can
act on; the table is printed and the exit status is 1 when anything failed.

Simulated devices (chosen in the config, as in the shipped one) are driven by the self-test
itself, so `kiosk selftest` runs unattended on a machine without hardware and in the tests.
"""

from __future__ import annotations

import dataclasses
import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from drivers.base import CardRead, CodeRead, DeviceError, DoorAlarm, DoorChanged
from kiosk.identifiers import mask

DEVICES = ("card_reader", "scanner", "locks", "indicator")
ALIASES = {"indicator": "indicator", "led": "indicator", "buzzer": "indicator",
           "card": "card_reader", "card-reader": "card_reader", "card_reader": "card_reader", "reader": "card_reader",
           "scanner": "scanner", "barcode": "scanner", "camera": "scanner",
           "locks": "locks", "lock": "locks", "doors": "locks", "all": "all"}
SIM_CARD = bytes.fromhex("04A1B2C3")  # the demo's first member card
SIM_CODE = ("EM0000000001", "CODE128")  # the label of the demo's first book


@dataclass(frozen=True)
class Check:
    device: str
    check: str
    ok: bool
    detail: str = ""


def _simulated(device: Any) -> bool:
    return type(device).__module__ == "drivers.simulated"


def build(config: Any, kinds: Iterable[str], clock: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The chosen devices, built as the kiosk builds them (`kiosk.app.build_devices`), each on
    its own so that one adapter that cannot be built does not hide the others. Returns the
    devices and, for those that could not be built, why."""
    from kiosk.app import build_devices

    devices: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for kind in kinds:
        # Every other device simulated (and never started): only this one touches hardware.
        others = {f.name: type(getattr(config.devices, f.name))()
                  for f in dataclasses.fields(config.devices) if f.name != kind}
        only = dataclasses.replace(config, devices=dataclasses.replace(config.devices, **others))
        try:
            devices[kind] = getattr(build_devices(only, clock), kind)
        except Exception as exc:  # noqa: BLE001 - DeviceError, ImportError, a library's own error
            failures[kind] = f"{type(exc).__name__}: {exc}"
    return devices, failures


class SelfTest:
    """One run over some devices. `prompt` tells the technician what to do next; `monotonic`
    bounds every wait (real time: a person is doing something)."""

    def __init__(self, devices: dict[str, Any], *, failures: dict[str, str] | None = None,
                 timeout_s: float = 20.0, prompt: Callable[[str], None] = print,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.devices = devices
        self.sleep = sleep
        self.failures = failures or {}
        self.timeout_s = timeout_s
        self.prompt = prompt
        self.monotonic = monotonic
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.results: list[Check] = []
        self._started: list[tuple[str, Any]] = []

    def _add(self, device: str, check: str, ok: bool, detail: str = "") -> bool:
        self.results.append(Check(device, check, ok, detail))
        return ok

    def run(self, kinds: Iterable[str] = DEVICES, slots: Iterable[int] = (1,)) -> list[Check]:
        kinds = list(kinds)
        try:
            for name in DEVICES:
                if name in self.failures and name in kinds:
                    self._add(name, "build", False, self.failures[name])
                elif name in kinds and name in self.devices:
                    self._start(name)
            for name, device in self._started:
                if name == "card_reader":
                    self._card(device)
                elif name == "scanner":
                    self._code(device)
                elif name == "locks":
                    self._locks(device, list(slots))
                elif name == "indicator":
                    self._indicator(device)
        finally:
            self.close()
        return self.results

    def close(self) -> None:
        """Close what was started, in reverse (the lock bank locks everything as it closes)."""
        while self._started:
            name, device = self._started.pop()
            try:
                device.close()
            except Exception as exc:  # noqa: BLE001 - close the others regardless
                self._add(name, "close", False, str(exc))

    def _start(self, name: str) -> None:
        device = self.devices[name]
        kind = type(device).__name__ + (" (simulated: driven by the self-test)" if _simulated(device) else "")
        try:
            device.start(self.inbox.put)
        except Exception as exc:  # noqa: BLE001 - DeviceError, or a library's own error
            self._add(name, "start", False, f"{kind}: {exc}")
            return
        self._started.append((name, device))
        self._add(name, "start", True, kind)
        health = device.health()
        self._add(name, "health", health.available, health.reason or "available")

    def _poll(self) -> None:
        locks = self.devices.get("locks")
        if any(device is locks for _, device in self._started) and not getattr(locks, "polls_itself", True):
            locks.poll()

    def _wait(self, match: Callable[[Any], bool], timeout_s: float | None = None) -> Any:
        """The first report that matches, or None after the timeout; others are kept aside."""
        deadline = self.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            self._poll()
            try:
                report = self.inbox.get_nowait()
            except queue.Empty:
                remaining = deadline - self.monotonic()
                if remaining <= 0:
                    return None
                try:
                    report = self.inbox.get(timeout=min(0.02, remaining))
                except queue.Empty:
                    continue
            if match(report):
                return report

    def _card(self, reader: Any) -> None:
        self.prompt(f"Tap a card on the card reader (within {self.timeout_s:g} s)…")
        if _simulated(reader):
            reader.present(SIM_CARD)
        began = self.monotonic()
        read = self._wait(lambda r: isinstance(r, CardRead))
        if read is None:
            self._add("card_reader", "card read", False,
                      f"no card read within {self.timeout_s:g} s (is it wired, and the card one it reads?)")
            return
        uid = read.uid.hex().upper()
        self._add("card_reader", "card read", True,
                  f"UID {mask(uid)} ({len(read.uid)} bytes) after {self.monotonic() - began:.1f} s")

    def _code(self, scanner: Any) -> None:
        self.prompt(f"Show a barcode to the scanner (within {self.timeout_s:g} s)…")
        if _simulated(scanner):
            scanner.show(*SIM_CODE)
        began = self.monotonic()
        read = self._wait(lambda r: isinstance(r, CodeRead))
        if read is None:
            self._add("scanner", "barcode", False, f"nothing decoded within {self.timeout_s:g} s")
            return
        self._add("scanner", "barcode", True,
                  f"{read.symbology or 'a code'} of {len(read.text)} characters ({mask(read.text)}) "
                  f"after {self.monotonic() - began:.1f} s")

    def _locks(self, bank: Any, slots: list[int]) -> None:
        self._poll()
        for slot in slots:
            self._pulse(bank, slot)
        self._poll()
        out = bank.out_of_service() if hasattr(bank, "out_of_service") else {}
        open_doors = [n for n in range(1, bank.slots + 1) if n not in out and bank.is_open(n)]
        detail = f"{bank.slots} lockers: " + (f"open {', '.join(map(str, open_doors))}" if open_doors else "all closed")
        if out:
            detail += f"; out of service {len(out)}: {sorted(set(out.values()))[0]}"
        self._add("locks", "door sensors", not out and not open_doors, detail)

    def _pulse(self, bank: Any, slot: int) -> None:
        check = f"locker {slot}"
        if not 1 <= slot <= bank.slots:
            self._add("locks", check, False, f"there is no locker {slot} (1..{bank.slots})")
            return
        was_open = bank.is_open(slot)
        self.prompt(f"Locker {slot}: unlocking; open its door, then close it (within {self.timeout_s:g} s)…")
        began = self.monotonic()
        try:
            bank.unlock(slot)
        except DeviceError as exc:
            self._add("locks", check, False, f"did not unlock: {exc}")
            return
        try:
            if _simulated(bank):
                bank.open_door(slot)
            opened = was_open or self._wait(lambda r: (isinstance(r, DoorChanged) and r.slot == slot and r.open)
                                            or (isinstance(r, DoorAlarm) and r.slot == slot and r.kind == "lock-jammed"))
            if isinstance(opened, DoorAlarm):
                self._add("locks", check, False, "unlocked, but the door did not open: the lock may be jammed")
                return
            if not opened:
                self._add("locks", check, False, f"unlocked, but its door sensor saw no opening within "
                                                 f"{self.timeout_s:g} s (check the switch and its wiring)")
                return
            opened_after = self.monotonic() - began
            if _simulated(bank):
                bank.close_door(slot)
            closed = self._wait(lambda r: isinstance(r, DoorChanged) and r.slot == slot and not r.open)
            if closed is None:
                self._add("locks", check, False, f"door opened after {opened_after:.1f} s but was not seen "
                                                 f"closing within {self.timeout_s:g} s")
                return
            self._add("locks", check, True, f"door opened after {opened_after:.1f} s, closed after "
                                            f"{self.monotonic() - began:.1f} s" + (" (it was open before)" if was_open else ""))
        finally:
            try:
                bank.lock(slot)
            except DeviceError as exc:
                self._add("locks", f"locker {slot} lock", False, str(exc))


    def _indicator(self, indicator: Any) -> None:
        self.prompt("Watch the LED and listen to the buzzer: read, unlock, error…")
        for kind in ("read", "unlock", "error"):
            indicator.signal(kind)
            until = self.monotonic() + 1.0
            while self.monotonic() < until and not getattr(indicator, "polls_itself", True):
                indicator.poll()
                self.sleep(0.01)  # a person is watching: the patterns play in real time
        health = indicator.health()
        self._add("indicator", "signals", health.available,
                  health.reason or "read, unlock and error played (check by eye and ear)")


def kinds_for(device: str, config: Any) -> list[str]:
    """The devices `kiosk selftest DEVICE` tests; "all" includes the indicator when fitted."""
    kind = ALIASES[device]
    if kind != "all":
        return [kind]
    return [k for k in DEVICES if k != "indicator" or config.devices.indicator.driver != "none"]


def table(results: list[Check]) -> str:
    """The pass/fail table, one line per check, and a count."""
    rows = [("DEVICE", "CHECK", "RESULT", "DETAIL")] + [
        (r.device, r.check, "PASS" if r.ok else "FAIL", r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3] for row in rows]
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(line.rstrip() for line in lines)
