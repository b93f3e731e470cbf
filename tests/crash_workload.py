"""The crash test's workload: a kiosk that lends and takes back books until it is killed.

Run by tests/test_crash.py as a child process with the venv's python:

    python tests/crash_workload.py KIOSK_DB HOST PORT

It imports the kiosk once and then waits on standard input. Each line `run SEED START_S` forks
a fresh process that does what a kiosk's process does after a power cut: builds the kiosk on the
database file, starts it (which runs the recovery of interrupted door jobs), and then serves
patrons (borrow, return, walk away from an unlocked door) while its outbox worker thread drains
the outbox (and now and then the patrons' thread too), with the wall clock at START_S seconds
after the scenarios' Monday 10:00. The parent kills that process with SIGKILL whenever it likes; a share of the runs kill themselves
in the middle of a write transaction (aim_a_kill), where the parent's timer rarely lands.
Forking from an already-imported process keeps a restart at a few milliseconds (a fresh
interpreter needs about a second for the imports), so that hundreds of kills fit in seconds;
everything the kiosk had in memory is still gone, because each run starts from the database alone.

This process writes `ready`, then for each run `pid PID` when it has forked and `exit PID STATUS`
once that process has ended and been reaped (so its pid is dead for the outbox's claim check).
The workload itself reports nothing: the parent inspects the database afterwards.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import random
import sys
import traceback
from pathlib import Path

from kiosk import demo
from kiosk.app import DEMO_SIP_PASSWORD, build, sip2_settings
from kiosk.clock import FakeClock
from kiosk.config import Config, LibrarySection, Sip2Section

START = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=9), "KST"))
PATRONS = [demo.MEMBERS[i] for i in (0, 8, 9, 10)]  # in good standing
ACTIONS_PER_RUN = 15  # then the run ends by itself (each action moves the clock at most 31 s)

def config() -> Config:
    return Config(library=LibrarySection(backend="sip2", seed="demo"),
                  sip2=Sip2Section(response_timeout_s=0.5, connect_timeout_s=0.5, backoff_initial_s=1,
                                   backoff_max_s=4))


def open_kiosk(db: Path, host: str, port: int, clock: FakeClock):
    settings = sip2_settings(config(), host=host, port=port, password=DEMO_SIP_PASSWORD)
    return build(config(), clock=clock, db_path=db, sip2=settings)


def sync(k) -> None:
    """Deliver what the outbox holds now, in this thread (as `kiosk sync --once` does)."""
    k.sync_now()


def _idle(k, clock: FakeClock) -> None:
    for _ in range(3):
        s = k.state
        if s.screen == "idle" and not s.door and not s.busy:
            return
        k.tap("logout" if s.member is not None else "cancel")
        k.tap("confirm")
    clock.advance(100)
    k.tick()


def _to_the_door(k, clock: FakeClock, rng: random.Random) -> int | None:
    patron = rng.choice(PATRONS)
    k.devices.card_reader.present(bytes.fromhex(patron.card_uid))
    k.pump()
    for digit in patron.pin:
        k.tap(f"pin:{digit}")
    k.tap("pin-ok")
    if k.state.screen != "menu":
        return None
    k.tap("borrow")
    if k.state.screen != "borrow" or not k.state.shelf:
        return None
    line = rng.choice(k.state.shelf)
    k.tap(f"item:{line.item}")
    k.tap("confirm")
    return k.state.job.slot if k.state.screen == "open-door" and k.state.job else None


def borrow(k, clock: FakeClock, rng: random.Random) -> None:
    slot = _to_the_door(k, clock, rng)
    if slot is not None:
        k.devices.locks.open_door(slot)
        k.pump()
        k.devices.locks.close_door(slot)
        k.pump()


def walk_away(k, clock: FakeClock, rng: random.Random) -> None:
    if _to_the_door(k, clock, rng) is not None:
        clock.advance(31)  # the door relocks unopened: the library's loan is taken back
        k.tick()


def give_back(k, clock: FakeClock, rng: random.Random) -> None:
    out = [row[0] for row in k.store.db.execute(
        "SELECT item FROM loans WHERE returned_at IS NULL AND event_id IS NOT NULL ORDER BY id")]
    if not out:
        return
    k.tap("return")
    k.devices.scanner.show(rng.choice(out))
    k.pump()
    if k.state.screen == "open-door" and k.state.job is not None:
        slot = k.state.job.slot
        k.devices.locks.open_door(slot)
        k.pump()
        k.devices.locks.close_door(slot)
        k.pump()


AIMED_SHARE = 0.4  # of runs that kill themselves in the middle of a write (see aim_a_kill)


def aim_a_kill(rng: random.Random) -> None:
    """SIGKILL this process as the N-th write statement (N drawn from `rng`) of any of its
    database connections starts: always inside a transaction, as the write lock is taken first.
    The parent's timer lands mid-write only now and then; these runs die there for certain."""
    import signal

    import kiosk.store as store_module

    target, writes = rng.randrange(1, 40), [0]
    real = store_module.connect

    def trace(statement: str) -> None:
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes[0] += 1
            if writes[0] == target:
                os.kill(os.getpid(), signal.SIGKILL)

    def connect(path):
        conn = real(path)
        conn.set_trace_callback(trace)
        return conn

    store_module.connect = connect


def run(db: Path, host: str, port: int, seed: int, start_s: float) -> None:
    rng = random.Random(seed)
    if rng.random() < AIMED_SHARE:
        aim_a_kill(rng)
    clock = FakeClock(START + dt.timedelta(seconds=start_s))
    k = open_kiosk(db, host, port, clock)
    k.start()  # locks everything and settles what the last process left half done
    # The outbox worker's thread, draining alongside the patrons as in `kiosk run`.
    k.start_background(every_s=3600, sync_every_s=0.005)
    # ... and now and then the patrons' thread drains it too: two senders in one process.
    actions = [borrow, borrow, borrow, give_back, give_back, walk_away, lambda k, c, r: sync(k)]
    for _ in range(ACTIONS_PER_RUN):
        rng.choice(actions)(k, clock, rng)
        _idle(k, clock)
        clock.advance(rng.uniform(1, 20))
    k.close()


def warm_up(host: str, port: int) -> None:
    """Import here, once, what a run would import lazily (the SIP2 client, the offline library,
    the outbox worker, sqlite-utils' plugins, the IDNA codec for the host name): a kiosk built on
    a scratch database, never connected. A run then costs its own work, not imports."""
    import encodings.idna  # noqa: F401
    import shutil
    import tempfile

    import sync.outbox  # noqa: F401

    scratch = Path(tempfile.mkdtemp(prefix="kiosk-warm-up-"))
    try:
        open_kiosk(scratch / "kiosk.db", host, port, FakeClock(START)).close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def serve(db: Path, host: str, port: int) -> None:
    """The fork server: one fresh kiosk process per `run` line."""
    warm_up(host, port)
    gc.freeze()  # the forked runs share these pages instead of copying them for the collector
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] != "run":
            continue
        seed, start_s = int(words[1]), float(words[2])
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                run(db, host, port, seed, start_s)
            except BaseException:  # noqa: BLE001 - report it, the parent fails the test
                traceback.print_exc()
                sys.stderr.flush()
                status = 1
            os._exit(status)
        out.write(f"pid {pid}\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        out.write(f"exit {pid} {status}\n")
        out.flush()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, format="%(process)d %(name)s: %(message)s")
    serve(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
