"""Power cuts at random moments: a kiosk process killed with SIGKILL hundreds of times.

The workload (tests/crash_workload.py, a child process) lends, takes back and returns books
through the demo ILS that this test runs on loopback, and drains its outbox; this test kills it
5–60 ms after each start, at whatever it was doing (an fsync, a SIP2 exchange, the recovery of
the previous kill), and starts it again; a share of the runs die in the middle of a write
transaction instead, at a statement drawn at random (crash_workload.aim_a_kill). For stretches the ILS is cut off, so the kiosk lends
offline and queues. Afterwards the kiosk's database must be intact, every loan whose door had
opened must be recorded, and after one more start and a sync with the ILS healthy, the ILS must
hold exactly the kiosk's loans, with no renewal.

KIOSK_CRASH_KILLS sets the number of kills (default 300; e.g. 1000 for a longer run).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.clock import FakeClock
from sync.demo_ils import Behaviour, DemoIls, seed_demo
from sync_checks import query, all_problems, integrity, scratch_folder

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import crash_workload as workload  # noqa: E402 - the same module the child runs

KILLS = int(os.environ.get("KIOSK_CRASH_KILLS", "300"))
ROUND_S = 600  # each run's wall clock starts this much after the previous one's


class _Lines:
    """Lines from the workload's standard output, each read with a deadline."""

    def __init__(self, stream) -> None:
        self._fd = stream.fileno()
        self._buffer = b""
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)

    def read(self, timeout_s: float | None) -> str | None:
        """The next line, or None if none came within `timeout_s` (None: wait as long as it takes)."""
        while b"\n" not in self._buffer:
            if not self._poll.poll(None if timeout_s is None else max(0, int(timeout_s * 1000))):
                return None
            chunk = os.read(self._fd, 4096)
            if not chunk:
                raise EOFError("the workload's fork server has exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


@pytest.fixture
def folder(tmp_path):
    path = scratch_folder(tmp_path)
    yield path
    if not os.environ.get("KIOSK_TEST_KEEP"):  # keep the databases to look at them afterwards
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def library(folder):
    clock = FakeClock(workload.START)
    path = folder / "ils.db"
    seed_demo(path, clock)
    with DemoIls(path, clock=clock, behaviour=Behaviour(repeat_checkout="renewal")) as ils:
        ils.start()
        ils.db_path, ils.clock = path, clock
        yield ils


def test_kills_at_random_moments_lose_and_duplicate_nothing(tmp_path, folder, library):
    db = folder / "kiosk.db"
    host, port = library.address
    # The kiosk's first start (the demo lockers, the device key) is not what this test is about.
    workload.open_kiosk(db, host, port, FakeClock(workload.START)).close()
    log = tmp_path / "workload.log"
    rng = random.Random(int(os.environ.get("KIOSK_CRASH_SEED", "4")))
    with open(log, "w") as errors:
        server = subprocess.Popen([sys.executable, str(HERE / "crash_workload.py"), str(db), host, str(port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True)
    lines = _Lines(server.stdout)
    kills = runs = failures = aimed = 0
    try:
        assert lines.read(60) == "ready", log.read_text()
        while kills < KILLS:
            runs += 1
            if rng.random() < 0.08:  # a stretch with the network down, or back up
                library.faults.down = not library.faults.down
            library.clock.advance(ROUND_S)
            server.stdin.write(f"run {rng.randrange(2**32)} {runs * ROUND_S}\n")
            server.stdin.flush()
            kind, pid = lines.read(30).split()
            assert kind == "pid"
            ended = lines.read(rng.uniform(0.005, 0.060))
            ended_by_itself = ended is not None
            if ended is None:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass  # it had just finished by itself
                ended = lines.read(30)
            word, ended_pid, status = ended.split()
            assert (word, ended_pid) == ("exit", pid)
            status = int(status)
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            if killed and ended_by_itself:  # in the middle of a write (crash_workload.aim_a_kill)
                aimed += 1
                kills += 1
            if status != 0 and not killed:
                failures += 1
        assert failures == 0, f"{failures} run(s) of the workload failed by themselves:\n{log.read_text()[-4000:]}"
        assert aimed >= KILLS // 5, f"only {aimed} of {kills} kills landed in the middle of a write"
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    assert integrity(db) == "ok"
    # One more start, with the library healthy for good, and a sync until nothing is left.
    library.faults.reset()
    library.clock.advance(ROUND_S)
    clock = FakeClock(workload.START + dt.timedelta(seconds=(runs + 1) * ROUND_S))
    k = workload.open_kiosk(db, host, port, clock)
    try:
        k.start()
        for _ in range(5):
            clock.advance(600)
            workload.sync(k)
    finally:
        k.close()
    assert integrity(db) == "ok"
    problems = all_problems(db, library.db_path)
    assert problems == [], f"after {kills} kills in {runs} runs:\n" + "\n".join(problems)
    loans = len(query(db, "SELECT 1 FROM loans WHERE event_id IS NOT NULL"))
    assert loans >= 5, f"the workload hardly lent anything ({loans} loans in {runs} runs): {log.read_text()[-2000:]}"
