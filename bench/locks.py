"""Lock banks: what they cost the kiosk's loop, and how fast they notice things.

    python bench/locks.py

- GPIO: one `poll()` of 24 lockers (door switch and occupancy sensor each) on gpiozero's mock
  pins, as the kiosk's loop calls it every frame; the mock pins stand in for RPi.GPIO/lgpio,
  whose reads cost a few microseconds more each on a Pi.
- CU16: a status poll of two boards through pyserial and a pseudo-terminal to simulated boards
  (the pty is far faster than 19200 baud: on the wire a 5-byte request and a 9-byte reply take
  7.3 ms per board); the unlock round trip; how long a board that stops answering takes to be put
  out of service with the default settings (3 polls, 2 retries, 0.2 s timeout).
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from gpiozero.pins.mock import MockFactory  # noqa: E402

from cu16_board import FakeBoard, PtyBus  # noqa: E402
from drivers.cu16 import Cu16LockBank  # noqa: E402
from drivers.gpio_locks import GpioLockBank  # noqa: E402


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def figures(name: str, samples: list[float], unit: float = 1e-6, label: str = "µs") -> None:
    samples = sorted(samples)
    p50 = statistics.median(samples) / unit
    p95 = samples[int(len(samples) * 0.95) - 1] / unit
    print(f"  {name:<44} p50 {p50:8.1f} {label}   p95 {p95:8.1f} {label}")


def gpio() -> None:
    factory = MockFactory()
    pins = iter(range(2, 28))
    lockers = []
    for _ in range(8):  # 8 lockers x 3 pins = 24 pins of the 26 usable
        lockers.append({"relay_bcm_pin": next(pins), "door_bcm_pin": next(pins), "occupancy_bcm_pin": next(pins)})
    bank = GpioLockBank(slots=8, lockers=lockers, pin_factory=factory, debounce_s=0.05)
    for locker in lockers:
        factory.pin(locker["door_bcm_pin"]).drive_low()  # doors shut
    bank.start(lambda e: None)
    figures("GPIO poll, 8 lockers x (door + occupancy)", timed(bank.poll, 5000))
    per_locker = statistics.median(timed(bank.poll, 5000)) / 8
    print(f"  {'GPIO poll per locker':<44} {per_locker * 1e6:8.2f} µs  (24 lockers: "
          f"{per_locker * 24 * 1e3:.3f} ms of a 33 ms frame)")
    bank.close()


def cu16() -> None:
    tmp = tempfile.TemporaryDirectory(prefix="bench-cu16-")
    folder = Path(tmp.name)
    boards = [FakeBoard(0), FakeBoard(1)]
    bus = PtyBus(folder, boards)
    bank = Cu16LockBank(slots=32, port=str(bus.path), boards=[0, 1], background=False)
    bank.start(lambda e: None)
    figures("CU16 status poll, 2 boards over a pty", timed(bank.poll, 300), 1e-3, "ms")
    slots = iter(list(range(1, 33)) * 10)
    figures("CU16 unlock round trip", timed(lambda: bank.unlock(next(slots)), 300), 1e-3, "ms")
    boards[1].silent = True
    t = time.perf_counter()
    polls = 0
    while bank.health().available:
        bank.poll()
        polls += 1
    print(f"  {'CU16 silent board out of service after':<44} {time.perf_counter() - t:8.2f} s   ({polls} polls)")
    bank.close()
    bus.close()
    tmp.cleanup()


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)  # the silent board's own log lines
    print("lock banks")
    gpio()
    cu16()
