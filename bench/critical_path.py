"""The checkout critical path: from the card tap to the unlock command, through the real store.

Simulated devices, the real SQLite store (WAL, synchronous=FULL) on this disk, no display. A
patron's own time (typing the PIN, choosing the book) is not counted: each figure is the time the
kiosk itself spends between the first event and the unlock. Also: the time from the patron's
last tap ("confirm") to the unlock, which includes committing the door job (one fsync).
Measured twice in the same run: the kiosk deciding alone (local backend), and through the demo
ILS over SIP2 on loopback (63 at login and PIN, 11 checkout before the unlock).

    python bench/critical_path.py [--loans N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.app import DemoLibrarySystem, build  # noqa: E402
from kiosk.clock import FakeClock  # noqa: E402
from kiosk.config import Config, LibrarySection  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(loans: int, backend: str) -> dict[str, list[float]]:
    tmp = tempfile.mkdtemp(prefix="kiosk-bench-")
    clock = FakeClock()
    config = Config(library=LibrarySection(backend=backend, seed="demo"))
    ils = DemoLibrarySystem(config, clock, Path(tmp)) if backend == "sip2" else None
    kiosk = build(config, clock=clock, db_path=Path(tmp) / "kiosk.db", sip2=ils.settings if ils else None)
    kiosk.start()
    locks = kiosk.devices.locks
    total, confirm = [], []
    try:
        for n in range(loans):
            item = f"EM{(n % 24) + 1:010d}"
            slot = (n % 24) + 1
            unlocked_at: list[float] = []
            real_unlock = locks.unlock
            locks.unlock = lambda s, _r=real_unlock: (unlocked_at.append(time.perf_counter()), _r(s))
            busy = 0.0
            t = time.perf_counter()
            kiosk.devices.card_reader.present(bytes.fromhex("04A1B2C3"))
            kiosk.pump()
            for key in ("pin:1", "pin:2", "pin:3", "pin:4", "pin-ok", "borrow", f"item:{item}"):
                kiosk.tap(key)
            busy += time.perf_counter() - t
            t = time.perf_counter()
            kiosk.tap("confirm")
            busy += unlocked_at[0] - t
            confirm.append(unlocked_at[0] - t)
            total.append(busy)
            locks.unlock = real_unlock
            assert kiosk.state.screen == "open-door", kiosk.state
            # finish the loan, then return the book so the lockers stay full
            locks.open_door(slot)
            locks.close_door(slot)
            kiosk.pump()
            kiosk.tap("logout")
            kiosk.tap("return")
            kiosk.devices.scanner.show(item)
            kiosk.pump()
            locks.open_door(slot)
            locks.close_door(slot)
            kiosk.pump()
            kiosk.tap("confirm")
            assert kiosk.state.screen == "idle", kiosk.state
    finally:
        kiosk.close()
        if ils is not None:
            ils.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"card tap → unlock (kiosk time)": total, "confirm → unlock": confirm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=200)
    args = parser.parse_args()
    print(f"checkout critical path, {args.loans} loans, real store on disk (WAL, synchronous=FULL)")
    for backend, label in (("local", "the kiosk decides alone"), ("sip2", "through the demo ILS (SIP2, loopback)")):
        results = run(args.loans, backend)
        print(f" {label}")
        for name, values in results.items():
            ms = [v * 1000 for v in values]
            print(f"  {name:32s} p50 {statistics.median(ms):6.2f} ms   p95 {percentile(ms, 95):6.2f} ms   "
                  f"max {max(ms):6.2f} ms")


if __name__ == "__main__":
    main()
