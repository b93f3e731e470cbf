"""Disk work per checkout: fsyncs and bytes written, from the card tap to the receipt.

A kiosk's SD card wears with every write, and every fsync is a wait a patron may feel. This runs
N checkouts (card tap, PIN, borrow, choose, confirm, door opened, door closed, logout) through a
kiosk built with kiosk.app.build on the demo config, with the local backend and with the sip2
backend against a demo ILS in another process (so that only the kiosk's own disk work counts),
in a child process traced by strace. Each checkout is followed by the return of the same book
(to keep the lockers full), which is not counted: the child marks each checkout's start and end
with a harmless access() of a marker path that strace records in order with the fsyncs, and
reads its own /proc/self/io (write_bytes: what reached the block layer; wchar: what was handed
to write()) around each checkout.

Targets (issue 4): ≤ 2 fsyncs and ≤ 32 KB written per checkout.

    python bench/io_per_checkout.py [--checkouts N] [--page-size BYTES]

--page-size is a what-if: the kiosk's database file is made with that page size (a WAL frame is
one whole page, so small changes cost a page each).

Without strace (Debian: apt-get install strace) it says so and prints the bytes only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARK = "/nonexistent-io-bench-mark/"
SYSCALLS = "fsync,fdatasync,sync_file_range,syncfs,access,faccessat,faccessat2"
_CALL = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(?:<\.\.\. )?(\w+)\((.*)$")


def read_io() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        key, _, value = line.partition(":")
        values[key.strip()] = int(value)
    return values


def mark(what: str) -> None:
    os.access(MARK + what, os.F_OK)  # seen by strace, does nothing else


# -- the child: a kiosk doing checkouts


def child(backend: str, checkouts: int, folder: Path, host: str, port: int, page_size: int | None) -> None:
    import sqlite3
    import time

    from kiosk.app import DEMO_SIP_PASSWORD, build, sip2_settings
    from kiosk.clock import FakeClock
    from kiosk.config import Config, LibrarySection

    clock = FakeClock()
    config = Config(library=LibrarySection(backend=backend, seed="demo"))
    settings = None
    if backend == "sip2":
        settings = sip2_settings(config, host=host, port=port, password=DEMO_SIP_PASSWORD)
    if page_size:  # what-if: the database file made with another page size before the kiosk opens it
        conn = sqlite3.connect(folder / "kiosk.db")
        conn.execute(f"PRAGMA page_size={page_size}")
        conn.execute("CREATE TABLE what_if (x)")
        conn.execute("DROP TABLE what_if")
        conn.commit()
        conn.close()
    kiosk = build(config, clock=clock, db_path=folder / "kiosk.db", sip2=settings)
    kiosk.start()
    locks = kiosk.devices.locks
    totals = {"write_bytes": 0, "wchar": 0, "syscw": 0}
    seconds = 0.0

    def checkout(n: int) -> None:
        item, slot = f"EM{n % 24 + 1:010d}", n % 24 + 1
        kiosk.devices.card_reader.present(bytes.fromhex("04A1B2C3"))
        kiosk.pump()
        for key in ("pin:1", "pin:2", "pin:3", "pin:4", "pin-ok", "borrow", f"item:{item}", "confirm"):
            kiosk.tap(key)
        assert kiosk.state.screen == "open-door", kiosk.state.screen
        locks.open_door(slot)
        locks.close_door(slot)
        kiosk.pump()
        assert kiosk.state.screen == "receipt", kiosk.state.screen
        kiosk.tap("logout")

    def give_back(n: int) -> None:
        item, slot = f"EM{n % 24 + 1:010d}", n % 24 + 1
        kiosk.tap("return")
        kiosk.devices.scanner.show(item)
        kiosk.pump()
        locks.open_door(slot)
        locks.close_door(slot)
        kiosk.pump()
        kiosk.tap("confirm")
        assert kiosk.state.screen == "idle", kiosk.state.screen

    try:
        checkout(0)  # warm up: first-time costs (schema pages, the ILS login) are not a checkout's
        give_back(0)
        for n in range(1, checkouts + 1):
            before = read_io()
            started = time.perf_counter()
            mark(f"begin-{n}")
            checkout(n)
            mark(f"end-{n}")
            seconds += time.perf_counter() - started
            after = read_io()
            for key in totals:
                totals[key] += after[key] - before[key]
            give_back(n)
    finally:
        kiosk.close()
    print(json.dumps({"checkouts": checkouts, "seconds": seconds, **totals}))


# -- the parent: start the demo ILS, trace the child, count


def count_syncs(trace: Path) -> tuple[int, int, dict[str, int]]:
    """(syncs inside checkouts, syncs in the whole run, inside checkouts by call name)."""
    inside = whole = 0
    by_name: dict[str, int] = {}
    depth = 0
    for line in trace.read_text(errors="replace").splitlines():
        found = _CALL.match(line)
        if found is None or "resumed>" in line:
            continue
        name, args = found.group(2), found.group(3)
        if name in ("access", "faccessat", "faccessat2"):
            if MARK + "begin-" in args:
                depth = 1
            elif MARK + "end-" in args:
                depth = 0
            continue
        whole += 1
        if depth:
            inside += 1
            by_name[name] = by_name.get(name, 0) + 1
    return inside, whole, by_name


def run(backend: str, checkouts: int, strace: str | None, page_size: int | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="io-bench-"))
    ils = None
    host, port = "127.0.0.1", 0
    try:
        if backend == "sip2":
            from kiosk.clock import FakeClock
            from sync.demo_ils import DemoIls, seed_demo

            seed_demo(folder / "demo-ils.db", FakeClock())
            ils = DemoIls(folder / "demo-ils.db", clock=FakeClock()).start()
            host, port = ils.address
        command = [sys.executable, str(Path(__file__).resolve()), "--child", backend, "--checkouts", str(checkouts),
                   "--folder", str(folder), "--host", host, "--port", str(port)]
        if page_size:
            command += ["--page-size", str(page_size)]
        trace = folder / "strace.txt"
        if strace:
            command = [strace, "-f", "-qq", "-e", f"trace={SYSCALLS}", "-o", str(trace)] + command
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
        if done.returncode != 0:
            raise SystemExit(f"the {backend} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        if strace:
            figures["syncs"], figures["syncs_whole_run"], figures["by_name"] = count_syncs(trace)
        return figures
    finally:
        if ils is not None:
            ils.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkouts", type=int, default=50)
    parser.add_argument("--page-size", type=int, help="what-if: the kiosk's database made with this page size")
    parser.add_argument("--child", choices=("local", "sip2"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.checkouts, args.folder, args.host, args.port, args.page_size)
        return

    strace = shutil.which("strace")
    n = args.checkouts
    print(f"disk work per checkout (card tap → receipt → logout), {n} checkouts, kiosk store on disk "
          f"(WAL, synchronous=FULL); targets: ≤ 2 fsyncs, ≤ 32 KB written")
    if args.page_size:
        print(f"  WHAT-IF: the kiosk's database made with page_size={args.page_size} "
              f"(instead of the page size the store chooses for a new file)")
    if strace is None:
        print("  strace is not installed (Debian: apt-get install strace): fsyncs are not counted, bytes only")
    for backend, label in (("local", "the kiosk decides alone"), ("sip2", "through the demo ILS (SIP2, loopback)")):
        f = run(backend, n, strace, args.page_size)
        line = (f"  {label:40s} write_bytes {f['write_bytes'] / n / 1024:6.1f} KB"
                f"   wchar {f['wchar'] / n / 1024:6.1f} KB"
                f"   write calls {f['syscw'] / n:5.1f}")
        if strace:
            names = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(f["by_name"].items()))
            line += f"   fsyncs {f['syncs'] / n:5.2f}  ({names or 'none'})"
        print(line + f"   {f['seconds'] / n * 1e3:6.1f} ms")
    print("  (write_bytes: bytes the kernel sent to the block layer for this process; wchar: bytes given to write(),")
    print("   including the WAL and any log; fsyncs: fsync/fdatasync/sync_file_range/syncfs calls during checkouts)")


if __name__ == "__main__":
    main()
