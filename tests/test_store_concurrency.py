"""Two connections to one kiosk database: the patrons' thread and the outbox worker's thread.

The crash test (tests/test_crash.py) runs the worker thread beside the patrons, and its workload
log shows checkouts refused with "database write failed: database is locked" within
milliseconds, although every connection waits up to 5 s for a lock (busy_timeout). This is the
smallest case of it.
"""

import datetime as dt
import threading

import pytest

from kiosk.store import Store


@pytest.mark.xfail(strict=True, reason=(
    "Store.transaction() begins a deferred transaction: once it has read (sqlite-utils' insert "
    "reads the schema first), a commit by another connection makes its first write fail at once "
    "with SQLITE_BUSY ('database is locked'); busy_timeout cannot help a stale snapshot. "
    "BEGIN IMMEDIATE for write transactions (as Store.claim_many does) makes it wait instead"))
def test_a_write_waits_for_another_connections_commit_instead_of_failing(tmp_path):
    now = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    with Store(tmp_path / "kiosk.db") as patrons, Store(tmp_path / "kiosk.db") as worker:
        committed = threading.Event()

        def worker_commits():
            worker.record_alarm("phantom-loan", 3, now)
            committed.set()

        with patrons.transaction() as db:
            db.execute("SELECT COUNT(*) FROM alarms").fetchone()
            thread = threading.Thread(target=worker_commits)
            thread.start()
            # Today the worker commits at once; a transaction that holds the write lock from its
            # start makes it wait for this one instead (then this wait runs out, harmlessly).
            committed.wait(0.2)
            db["alarms"].insert({"kind": "forced-open", "slot": 4, "at": now.isoformat()})
        thread.join(10)
        assert sorted(a["kind"] for a in patrons.alarms()) == ["forced-open", "phantom-loan"]
