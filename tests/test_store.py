"""The store through the real SQLite library, on disk (WAL needs a file)."""

import datetime as dt
from dataclasses import replace
import sqlite3

import pytest

from kiosk.clock import FakeClock
from kiosk.local_library import seed_demo
from kiosk.session import DoorJob
from kiosk.store import MIGRATIONS, Stamp, Store, StoreError

NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
MEMBER = "11110100000001"


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "kiosk.db") as st:
        seed_demo(st, FakeClock(NOW), 24)
        yield st


def loan_job(slot=3, item="EM0000000003"):
    return DoorJob("job-1", "loan", slot, item, "작별하지 않는다", MEMBER, dt.date(2026, 11, 16))


def stamp():
    return Stamp(NOW, True, "boot-1")


def test_every_connection_is_wal_and_full(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_migrations_are_recorded_and_idempotent(tmp_path):
    path = tmp_path / "k.db"
    Store(path).close()
    with Store(path) as again:
        assert again.schema_version() == len(MIGRATIONS)


def test_a_newer_database_is_refused_with_advice(tmp_path):
    path = tmp_path / "k.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this kiosk"):
        Store(path)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "k.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(path)


def test_seed(store):
    assert store.slot_contents(1) == "EM0000000001"
    assert store.slot_contents(24) == "EM0000000024"
    assert len(store.shelf()) == 24
    assert store.count_open_loans("11110100000003") == 5
    assert store.empty_slot() is None


def test_loan_and_outbox_in_one_transaction(store):
    store.begin_door_job(loan_job(), NOW)
    event_id = store.record_loan(loan_job(), stamp())
    loan = store.open_loan("EM0000000003")
    assert loan["member_id"] == MEMBER and loan["event_id"] == event_id
    assert store.slot_contents(3) is None
    [event] = store.outbox("pending")
    assert event["event_id"] == event_id and event["kind"] == "checkout"
    assert event["clock_synced"] == 1 and event["boot_id"] == "boot-1"
    assert '"due": "2026-11-16"' in event["payload"]


def test_failure_between_loan_and_outbox_leaves_neither(store, monkeypatch):
    store.begin_door_job(loan_job(), NOW)

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_add_outbox", broken)
    with pytest.raises(StoreError):
        store.record_loan(loan_job(), stamp())
    assert store.open_loan("EM0000000003") is None
    assert store.outbox() == []
    assert store.slot_contents(3) == "EM0000000003"
    assert [j["id"] for j in store.pending_door_jobs()] == ["job-1"]  # still there to settle
    monkeypatch.undo()
    store.record_loan(loan_job(), stamp())  # and it can be recorded afterwards
    assert len(store.outbox()) == 1


def test_a_door_job_is_recorded_once(store):
    store.begin_door_job(loan_job(), NOW)
    store.record_loan(loan_job(), stamp())
    with pytest.raises(StoreError, match="not pending"):
        store.record_loan(loan_job(), stamp())
    assert len(store.outbox()) == 1


def test_a_cancelled_job_records_nothing(store):
    store.begin_door_job(loan_job(), NOW)
    store.cancel_door_job("job-1", "door-timeout", NOW)
    with pytest.raises(StoreError):
        store.record_loan(loan_job(), stamp())
    assert store.open_loan("EM0000000003") is None


def test_a_locker_with_a_pending_job_is_not_offered(store):
    store.begin_door_job(loan_job(), NOW)
    assert 3 not in [line.slot for line in store.shelf()]


def test_return_fills_the_locker_and_closes_the_loan(store):
    store.begin_door_job(loan_job(), NOW)
    store.record_loan(loan_job(), stamp())
    assert store.empty_slot() == 3
    back = DoorJob("job-2", "return", 3, "EM0000000003", "작별하지 않는다", None)
    store.begin_door_job(back, NOW)
    assert store.empty_slot() is None  # the locker is promised to the return
    store.record_return(back, stamp())
    assert store.open_loan("EM0000000003") is None
    assert store.slot_contents(3) == "EM0000000003"
    kinds = [e["kind"] for e in store.outbox()]
    assert kinds == ["checkout", "checkin"]


def test_what_a_power_cut_must_not_undo_is_committed_waiting_for_the_disk(store):
    """A door's opening, a loan and a return are committed with synchronous=FULL (the commit
    returns once the disk has it), so a power cut right after cannot undo them; what comes
    before a door opens is committed without waiting (nothing has moved yet). A process that
    dies loses neither kind, so only the commits themselves can show this."""
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    store.begin_door_job(loan_job(), NOW)
    store.note_door_opened("job-1", NOW)
    store.record_loan(loan_job(), stamp())
    back = DoorJob("job-2", "return", 3, "EM0000000003", "작별하지 않는다", None)
    store.begin_door_job(back, NOW)
    store.note_door_opened("job-2", NOW)
    store.record_return(back, stamp())
    store._conn.set_trace_callback(None)

    level, at_commit, writes = "FULL", [], []  # the connection starts FULL (Store's connect)
    for text in statements:
        upper = " ".join(text.split()).upper()
        if upper.startswith("PRAGMA SYNCHRONOUS="):
            level = upper.split("=", 1)[1]
        elif upper.startswith(("INSERT", "UPDATE")):
            writes.append(upper)
        elif upper == "COMMIT":
            at_commit.append((level, writes))
            writes = []

    def level_of(fragment):
        return [lvl for lvl, done in at_commit if any(fragment in w for w in done)]

    assert level_of("UPDATE DOOR_JOBS SET OPENED_AT") == ["FULL", "FULL"]
    assert level_of('INTO "LOANS"') == ["FULL"] and level_of('INTO "RETURNS"') == ["FULL"]
    assert level_of('INTO "DOOR_JOBS"') == ["NORMAL", "NORMAL"]  # the intent: before anything moved


def test_loans_of_marks_overdue(store):
    lines = store.loans_of("11110100000008", dt.date(2026, 11, 2))
    assert [line.overdue for line in lines] == [True]


def test_committed_data_survives_reopening(tmp_path):
    path = tmp_path / "k.db"
    with Store(path) as st:
        seed_demo(st, FakeClock(NOW), 24)
        st.begin_door_job(loan_job(), NOW)
        st.record_loan(loan_job(), stamp())
    with Store(path) as st:
        assert st.open_loan("EM0000000003")["member_id"] == MEMBER
        assert st.integrity_ok()


def test_a_loan_the_library_already_recorded_is_not_queued_again(store):
    store.begin_door_job(replace(loan_job(), ils_done=True), NOW)
    store.record_loan(replace(loan_job(), ils_done=True), stamp())
    [event] = store.outbox()
    assert event["state"] == "delivered" and event["delivered_at"] == NOW.isoformat()
    assert store.outbox("pending") == []


def test_delivered_and_dead_letters(store):
    job = DoorJob("job-r", "return", 1, "EM0000000001", "채식주의자")
    store.put_in_slot(1, None, NOW)
    store.begin_door_job(job, NOW)
    event_id = store.record_return(job, stamp())
    store.mark_dead(event_id, "반납 처리할 수 없습니다", NOW)
    [event] = store.outbox()
    assert event["state"] == "dead" and "반납 처리할 수 없습니다" in event["last_error"]
    store.mark_delivered(event_id, NOW)  # a dead letter stays dead until staff act
    assert store.outbox()[0]["state"] == "dead"


def test_a_locker_kept_for_staff_leaves_the_shelf_and_takes_no_returns(store):
    store.hold_for_staff(1, "예약 도서: 직원이 회수", NOW)
    assert 1 not in [line.slot for line in store.shelf()]
    assert store.staff_slots() == [{"slot": 1, "item": "EM0000000001", "staff_note": "예약 도서: 직원이 회수"}]
    store.put_in_slot(2, None, NOW)
    store.hold_for_staff(2, "x", NOW)
    store.put_in_slot(5, None, NOW)
    assert store.empty_slot() == 5


def test_a_version_1_database_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    MIGRATIONS[0](db)
    db["items"].insert({"item": "EM0000000001", "title": "채식주의자", "author": "한강"})
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with Store(path) as st:
        assert st.schema_version() == len(MIGRATIONS)
        assert st.item("EM0000000001").title == "채식주의자"
        assert "ils_done" in st.db["door_jobs"].columns_dict
