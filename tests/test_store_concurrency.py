"""Two connections to one kiosk database: the patrons' thread and the outbox worker's thread.

The crash test (tests/test_crash.py) runs the worker thread beside the patrons. A write
transaction takes the write lock from its start (BEGIN IMMEDIATE), so another connection's commit
makes it wait (busy_timeout) instead of failing with "database is locked".
"""

import datetime as dt
import threading

from kiosk.store import Store


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
            # The worker waits for this transaction's write lock (this wait runs out, harmlessly).
            committed.wait(0.2)
            db["alarms"].insert({"kind": "forced-open", "slot": 4, "at": now.isoformat()})
        thread.join(10)
        assert sorted(a["kind"] for a in patrons.alarms()) == ["forced-open", "phantom-loan"]
