"""Process start to the first idle frame, headless (SDL dummy driver), as a fresh process.

Measured twice: the first boot (the demo seed fills an empty database) and a normal boot (the
database exists). Each figure is the median of several runs. With the shipped config this
includes starting the demo ILS, as `kiosk demo` does.

    python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import os, sys, time
os.environ["SDL_VIDEODRIVER"] = "dummy"
from pathlib import Path
from kiosk.app import DemoLibrarySystem, build
from kiosk.clock import SystemClock
from kiosk.config import load
from ui.display import Display
config = load(sys.argv[2])
clock = SystemClock()
# As `kiosk demo` does: the demo ILS starts beside the kiosk when the config uses SIP2.
ils = DemoLibrarySystem(config, clock, Path(sys.argv[1]).parent) if config.library.backend == "sip2" else None
display = Display(width=config.ui.width, height=config.ui.height, headless=True)
kiosk = build(config, clock=clock, db_path=sys.argv[1], display=display, sip2=ils.settings if ils else None)
kiosk.start()
frame = kiosk.render()
assert frame.screen == "idle"
print(time.time(), flush=True)
kiosk.close()
if ils:
    ils.close()
"""


def one(db: Path) -> float:
    start = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, str(db), str(ROOT / "config.toml")],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1]) - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kiosk-bench-", dir=ROOT / "bench"))
    try:
        first = []
        for n in range(args.runs):
            first.append(one(tmp / f"first-{n}.db"))
        normal = [one(tmp / "first-0.db") for _ in range(args.runs)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"process start to first idle frame, headless, {args.runs} runs each")
    print(f"  first boot (seeds the database)  median {statistics.median(first):.2f} s   max {max(first):.2f} s")
    print(f"  normal boot                      median {statistics.median(normal):.2f} s   max {max(normal):.2f} s")


if __name__ == "__main__":
    main()
