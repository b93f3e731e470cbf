"""The shell around the session: effects really executed against the store and simulated devices."""

import sqlite3
import time

import pytest

from drivers.base import DeviceError
from kiosk import session as s
from kiosk.app import build, sip2_settings
from kiosk.config import Config, LibrarySection, Sip2Section
from kiosk.rules import Reason
from kiosk.store import StoreError
from steps import choose, login, open_and_close, sip2_kiosk
from test_offline_limits import enter_pin
from test_sip2_client import SILENT, ScriptedServer

MEMBER = "11110100000001"


@pytest.fixture
def kiosk(tmp_path, clock):
    k = build(Config(), clock=clock, db_path=tmp_path / "kiosk.db")
    k.start()
    yield k
    k.close()


def test_unlock_happens_only_after_the_door_job_is_on_disk(kiosk, monkeypatch):
    seen = []
    original = kiosk.devices.locks.unlock

    def unlock(slot):
        rows = sqlite3.connect(kiosk.store.path).execute(
            "SELECT slot FROM door_jobs WHERE state = 'pending'").fetchall()
        seen.append(rows)  # read through another connection: committed, not merely written
        original(slot)

    monkeypatch.setattr(kiosk.devices.locks, "unlock", unlock)
    login(kiosk)
    choose(kiosk, "EM0000000003")
    assert seen == [[(3,)]]


def test_store_failure_before_the_unlock_keeps_the_door_locked(kiosk, monkeypatch):
    login(kiosk)

    def broken(*args, **kwargs):
        raise StoreError("database write failed: database or disk is full")

    monkeypatch.setattr(kiosk.store, "begin_door_job", broken)
    choose(kiosk, "EM0000000003")
    assert kiosk.devices.locks.history == []
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason.value == "store-fault"


def test_a_database_error_on_a_read_is_a_message_not_a_crash(kiosk, monkeypatch):
    login(kiosk)

    def broken(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(kiosk.store, "shelf", broken)
    kiosk.tap("borrow")
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason.value == "store-fault"


def test_a_lock_that_fails_to_open_cancels_and_alarms(kiosk, monkeypatch):
    login(kiosk)

    def jammed(slot):
        raise DeviceError("no answer from the lock board")

    monkeypatch.setattr(kiosk.devices.locks, "unlock", jammed)
    choose(kiosk, "EM0000000003")
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason.value == "lock-fault"
    assert kiosk.store.pending_door_jobs() == []
    assert [a["kind"] for a in kiosk.store.alarms()] == ["lock-fault"]
    assert kiosk.store.slot_contents(3) == "EM0000000003"


def test_failure_to_record_keeps_the_job_for_staff(kiosk, monkeypatch):
    login(kiosk)
    choose(kiosk, "EM0000000003")
    kiosk.devices.locks.open_door(3)
    kiosk.pump()

    def broken(*a, **k):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(kiosk.store, "_add_outbox", broken)
    kiosk.devices.locks.close_door(3)
    kiosk.pump()
    assert kiosk.state.screen == "error"
    assert kiosk.devices.locks.is_locked(3)
    assert [j["item"] for j in kiosk.store.pending_door_jobs()] == ["EM0000000003"]
    assert "record-failed" in [a["kind"] for a in kiosk.store.alarms()]


def test_restart_records_a_loan_whose_door_had_opened(tmp_path, clock):
    path = tmp_path / "kiosk.db"
    k = build(Config(), clock=clock, db_path=path)
    k.start()
    login(k)
    choose(k, "EM0000000003")
    k.devices.locks.open_door(3)
    k.pump()
    k.store.close()  # power cut: the process dies with the door open, nothing more is written
    again = build(Config(), clock=clock, db_path=path)
    again.start()
    try:
        assert again.store.open_loan("EM0000000003")["member_id"] == MEMBER
        assert again.store.pending_door_jobs() == []
        assert "recovered-door-job" in [a["kind"] for a in again.store.alarms()]
        assert again.devices.locks.unlocked() == []  # every door locked at start
        [event] = again.store.outbox()  # one loan event (the local library needs no sending)
        assert event["kind"] == "checkout" and event["item"] == "EM0000000003"
    finally:
        again.close()


def test_restart_cancels_a_job_whose_door_never_opened(tmp_path, clock):
    path = tmp_path / "kiosk.db"
    k = build(Config(), clock=clock, db_path=path)
    k.start()
    login(k)
    choose(k, "EM0000000003")
    k.store.close()
    again = build(Config(), clock=clock, db_path=path)
    again.start()
    try:
        assert again.store.open_loan("EM0000000003") is None
        assert again.store.pending_door_jobs() == []
        assert again.store.slot_contents(3) == "EM0000000003"
        assert "EM0000000003" in [line.item for line in again.store.shelf()]
    finally:
        again.close()


def test_close_locks_every_door_and_is_idempotent(kiosk):
    login(kiosk)
    choose(kiosk, "EM0000000003")
    assert kiosk.devices.locks.unlocked() == [3]
    kiosk.close()
    assert kiosk.devices.locks.unlocked() == []
    kiosk.close()


def test_outbox_event_carries_time_sync_and_boot(kiosk, clock):
    clock.is_synced = False
    login(kiosk)
    choose(kiosk, "EM0000000003")
    kiosk.devices.locks.open_door(3)
    kiosk.devices.locks.close_door(3)
    kiosk.pump()
    [event] = kiosk.store.outbox()
    assert event["clock_synced"] == 0
    assert event["created_at"].startswith("2026-11-02T10:00")


def test_seed_runs_once(tmp_path, clock):
    path = tmp_path / "kiosk.db"
    build(Config(), clock=clock, db_path=path).close()
    k = build(Config(), clock=clock, db_path=path)
    try:
        assert k.store.db["items"].count == 100
        assert k.store.db["loans"].count == 7
    finally:
        k.close()


def test_logs_never_show_card_numbers_or_pins(kiosk, caplog):
    caplog.set_level("DEBUG")
    login(kiosk, "DEADBEEF")
    login(kiosk)
    choose(kiosk, "EM0000000003")
    text = caplog.text
    assert "DEADBEEF" not in text and MEMBER not in text and "1234" not in text


def test_a_failing_frame_resets_to_idle_and_relocks(kiosk, monkeypatch):
    login(kiosk)
    choose(kiosk, "EM0000000003")
    assert kiosk.devices.locks.unlocked() == [3]
    kiosk._reset_after_failure()
    assert kiosk.state.screen == "idle" and kiosk.state.member is None
    assert kiosk.devices.locks.unlocked() == []
    assert kiosk.store.pending_door_jobs() == []


def test_an_unexpected_error_in_an_effect_is_a_message(kiosk, monkeypatch):
    login(kiosk)

    def bug(*args):
        raise KeyError("oops")

    monkeypatch.setattr(kiosk.library, "check_out", bug)
    choose(kiosk, "EM0000000003")
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason.value == "system-fault"
    assert kiosk.devices.locks.history == []


def test_a_failing_frame_with_the_door_open_still_records_the_loan(kiosk):
    login(kiosk)
    choose(kiosk, "EM0000000003")
    kiosk.devices.locks.open_door(3)
    kiosk.pump()
    kiosk._reset_after_failure()
    assert kiosk.store.open_loan("EM0000000003")["member_id"] == MEMBER
    assert "recovered-door-job" in [a["kind"] for a in kiosk.store.alarms()]


def test_a_kiosk_that_is_its_own_library_offers_a_book_again_after_a_crash_while_deciding(tmp_path, clock,
                                                                                           monkeypatch):
    """The process dies while the kiosk (its own library) decides a loan: nothing was lent
    anywhere, so after the restart the book is on offer again and nothing waits to be sent."""
    path = tmp_path / "kiosk.db"
    k = build(Config(), clock=clock, db_path=path)
    k.start()
    login(k)

    class Crash(BaseException):
        pass

    def die(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(k.library, "check_out", die)
    with pytest.raises(Crash):
        choose(k, "EM0000000003")
    k.store.close()
    again = build(Config(), clock=clock, db_path=path)
    again.start()
    try:
        assert again.store.asking_door_jobs() == []
        assert "EM0000000003" in [line.item for line in again.store.shelf()]
        assert again.store.outbox() == []
    finally:
        again.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_database_puts_the_kiosk_out_of_service_and_keeps_the_file(tmp_path, clock, damage):
    path = tmp_path / "kiosk.db"
    k = build(Config(), clock=clock, db_path=path)
    k.start()
    login(k)
    choose(k, "EM0000000003")
    k.devices.locks.open_door(3)
    k.devices.locks.close_door(3)
    k.pump()
    k.close()
    good = path.read_bytes()
    broken = b"\x00garbage, not a database" * 200 if damage == "garbage" else good[: len(good) // 2]
    path.write_bytes(broken)
    again = build(Config(), clock=clock, db_path=path)
    again.start()
    try:
        assert again.out_of_service and "kiosk.db" in again.out_of_service
        again.devices.card_reader.present(bytes.fromhex("04A1B2C3"))
        again.pump()
        assert again.state.screen == "error" and again.state.notice.reason.value == "out-of-service"
        again.tap("return")
        assert again.state.notice.reason.value == "out-of-service"
        assert any(n.startswith("database:") for n in again.status().notices)  # staff are told
        assert again.devices.locks.unlocked() == []
    finally:
        again.close()
    assert path.read_bytes() == broken  # kept exactly as found, for a technician


def test_a_card_reader_that_cannot_be_set_up_leaves_barcode_login_working(tmp_path, clock, monkeypatch):
    from drivers import registry

    real = registry.create

    def create(kind, name, **options):
        if kind == "card_reader":
            raise ImportError("No module named 'nfc'")  # the package is missing on this image
        return real(kind, name, **options)

    monkeypatch.setattr(registry, "create", create)
    k = build(Config(), clock=clock, db_path=tmp_path / "kiosk.db")
    k.start()
    try:
        (notice,) = k.status().notices
        assert notice.startswith("card_reader:") and "No module named 'nfc'" in notice  # staff see why
        k.devices.scanner.show(MEMBER)  # a phone's member barcode
        k.pump()
        assert k.state.screen == "pin"
    finally:
        k.close()


def test_the_log_is_folded_in_while_nobody_is_at_the_kiosk(kiosk, clock, monkeypatch):
    folds = []
    monkeypatch.setattr(kiosk.store, "checkpoint", lambda: folds.append(kiosk.state.screen))
    login(kiosk)
    clock.advance(61)
    kiosk.tick()
    assert folds == []  # never while a patron is here
    kiosk.tap("logout")
    kiosk.tick()
    assert folds == ["idle"]
    kiosk.tick()
    assert folds == ["idle"]  # at most once a minute


def test_stopping_the_kiosk_does_not_wait_on_a_library_that_never_answers(tmp_path, clock):
    """The library takes the connection and never answers, and the keep-alive is waiting on it
    when the kiosk is told to stop (systemd allows 10 s before it kills the kiosk). The doors
    are locked and the stop is recorded at once: the request in flight is cut short, not waited
    for until its timeout, nor for the background threads to give up on it."""
    with ScriptedServer(SILENT, SILENT, SILENT, SILENT) as server:  # takes the connection, never answers
        config = Config(library=LibrarySection(backend="sip2", seed="demo"),
                        sip2=Sip2Section(response_timeout_s=8.0, connect_timeout_s=1.0, keepalive_s=60))
        settings = sip2_settings(config, host="127.0.0.1", port=server.port, password="pw")
        k = build(config, clock=clock, db_path=tmp_path / "kiosk.db", sip2=settings)
        k.start()
        clock.advance(120)  # quiet past keepalive_s: the keep-alive goes out
        k.start_background(every_s=0.01, sync_every_s=60)
        assert server.got_request.wait(5)  # the keep-alive now waits on the library
        started = time.perf_counter()
        k.close()
        took = time.perf_counter() - started
    assert k.devices.locks.unlocked() == []
    # A close that waits takes at least the 5 s it joins each background thread for (the
    # response timeout is 8 s); one that cuts the request short takes milliseconds. 4 s sits
    # between the two with room for a slow or loaded machine.
    assert took < 4.0, f"stopping took {took:.1f} s with a library that does not answer"


def wait(k, clock, seconds):
    """`seconds` go by at the kiosk, a second at a time, with nobody touching the screen."""
    for _ in range(int(seconds)):
        clock.advance(1)
        k.pump()
        k.tick()


# --------------------------------------------------------------------------- walking away


def test_a_patron_who_walked_away_with_the_door_open_is_signed_out_once_a_passerby_shuts_it(kiosk, clock):
    """The patron takes the book and leaves with the door open; ten minutes later someone else
    shuts it. The loan is recorded and the receipt closes by itself, and then the kiosk signs the
    absent member out: nobody has touched the screen for ten minutes, and a door shut is no touch
    of theirs, so the next person cannot borrow on their card from the menu."""
    login(kiosk)
    choose(kiosk, "EM0000000003")
    kiosk.devices.locks.open_door(3)
    kiosk.pump()
    wait(kiosk, clock, 600)
    kiosk.devices.locks.close_door(3)
    kiosk.pump()
    assert kiosk.state.screen == "receipt"
    assert kiosk.store.open_loan("EM0000000003")["member_id"] == MEMBER
    wait(kiosk, clock, 21)
    assert kiosk.state.screen == "idle" and kiosk.state.member is None


def test_a_patron_who_walked_away_before_opening_the_door_is_signed_out_on_time(kiosk, clock):
    """The patron confirms a loan and leaves without opening the door. The door times out after
    30 s and the kiosk says so; that is no touch of the patron's, so 90 s after their last one
    they are signed out as usual."""
    login(kiosk)
    choose(kiosk, "EM0000000003")
    wait(kiosk, clock, 90)
    assert kiosk.state.member is None
    assert kiosk.store.open_loan("EM0000000003") is None


# --------------------------------------------------------------------------- doors


def test_a_door_shut_after_its_unlock_is_recorded_even_when_its_opening_went_unseen(kiosk, clock):
    """The patron opens the door and takes the book so quickly that the door sensor reports only
    the door shutting. The door was unlocked and has been shut: the book left, so the loan is
    recorded and the patron gets a receipt, and staff are told the sensor missed the opening."""
    login(kiosk)
    choose(kiosk, "EM0000000003")
    assert kiosk.state.screen == "open-door" and kiosk.state.door == "unlocked"
    kiosk.feed(s.DoorClosed(slot=3, at=clock.monotonic()))
    assert kiosk.state.screen == "receipt"
    assert kiosk.store.open_loan("EM0000000003")["member_id"] == MEMBER
    assert kiosk.devices.locks.is_locked(3)
    assert "door-opening-unseen" in [a["kind"] for a in kiosk.store.alarms()]


def spring_open_after_a_loan(kiosk):
    """A loan empties locker 3, and then its door springs open again and stays open (staff get a
    forced-open alarm)."""
    login(kiosk)
    choose(kiosk, "EM0000000003")
    open_and_close(kiosk, 3)
    kiosk.tap("logout")
    kiosk.devices.locks.open_door(3)
    kiosk.pump()
    assert "forced-open" in [a["kind"] for a in kiosk.store.alarms()]


def test_a_return_goes_to_an_empty_locker_whose_door_is_shut_not_one_standing_open(kiosk, clock):
    """Two lockers are empty, and the door of one of them stands open. A patron returns a book
    without signing in: the kiosk sends it to the other one, where nothing slips in or out
    unseen, and once its door is shut the return is recorded."""
    spring_open_after_a_loan(kiosk)
    kiosk.store.put_in_slot(24, None, clock.now())  # its book taken out: a second empty locker
    kiosk.devices.scanner.show("EM0000000025")  # 박지훈's
    kiosk.pump()
    assert kiosk.state.screen == "open-door" and kiosk.state.job.slot == 24
    open_and_close(kiosk, 24)
    assert kiosk.state.screen == "receipt"
    assert kiosk.store.slot_contents(24) == "EM0000000025"
    assert kiosk.store.open_loan("EM0000000025") is None
    assert kiosk.store.slot_contents(3) is None


def test_a_return_with_no_empty_locker_but_one_standing_open_is_refused(kiosk):
    """The only empty locker is one whose door stands open. A patron who brings a book back is
    told there is no empty locker; no door is unlocked, and the book stays on their loans."""
    spring_open_after_a_loan(kiosk)
    kiosk.devices.scanner.show("EM0000000025")
    kiosk.pump()
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason is Reason.NO_EMPTY_LOCKER
    assert kiosk.devices.locks.unlocked() == []
    assert kiosk.store.pending_door_jobs() == []
    assert kiosk.store.open_loan("EM0000000025") is not None
    assert kiosk.store.slot_contents(3) is None


def test_a_book_in_a_locker_whose_door_stands_open_is_not_offered_for_loan(kiosk):
    """The door of locker 5 has been forced open with its book still inside. A member who comes
    to borrow is not offered that book (nothing would tell the kiosk when it is taken), and
    choosing it anyway opens nothing and records nothing."""
    kiosk.devices.locks.open_door(5)
    kiosk.pump()
    login(kiosk)
    kiosk.tap("borrow")
    assert kiosk.state.screen == "borrow"
    assert "EM0000000005" not in [line.item for line in kiosk.state.shelf]
    kiosk.tap("item:EM0000000005")
    kiosk.tap("confirm")
    assert kiosk.state.job is None and kiosk.devices.locks.unlocked() == []
    assert kiosk.store.slot_contents(5) == "EM0000000005"
    assert kiosk.store.open_loan("EM0000000005") is None


# --------------------------------------------------------------------------- one visit


@pytest.mark.parametrize("library", ["local", "sip2"])
def test_returning_a_book_while_signed_in_frees_room_to_borrow(tmp_path, clock, request, library):
    """A member at the loan limit (박지훈: 5 loans) signs in, returns one of his books, and taps
    "계속 이용하기": he may borrow again at once, with the kiosk's own records and with the
    library system alike, which now count 4 loans."""
    if library == "local":
        k = build(Config(), clock=clock, db_path=tmp_path / "kiosk.db")
        k.start()
    else:
        k = sip2_kiosk(tmp_path, clock, request.getfixturevalue("ils"))
    try:
        k.store.put_in_slot(24, None, clock.now())  # one empty locker, as after a loan
        login(k, uid="04A1B2C5")
        assert k.state.screen == "menu"
        k.tap("return")
        k.devices.scanner.show("EM0000000025")
        k.pump()
        assert k.state.screen == "open-door", k.state.notice
        open_and_close(k, k.state.job.slot)
        assert k.state.screen == "receipt"
        assert k.store.open_loan("EM0000000025") is None
        k.tap("confirm")
        assert k.state.screen == "menu"
        k.tap("borrow")
        assert k.state.screen == "borrow", k.state.notice
    finally:
        k.close()


def test_my_loans_opened_again_while_the_library_does_not_answer_never_shows_the_old_list(tmp_path, clock, ils):
    """A member borrows a book, looks at my loans, then returns the book at once. The network
    drops and they open my loans again: the kiosk says the library cannot be reached, and does
    not show the list from before as if it were current, with the book just returned and a
    renew button beside it."""
    k = sip2_kiosk(tmp_path, clock, ils)
    try:
        login(k)
        choose(k, "EM0000000003")
        open_and_close(k, 3)
        k.tap("confirm")
        k.tap("my-loans")
        assert [line.item for line in k.state.loans] == ["EM0000000003"]
        k.tap("cancel")
        k.tap("return")
        k.devices.scanner.show("EM0000000003")
        k.pump()
        open_and_close(k, k.state.job.slot)
        assert k.state.screen == "receipt" and k.store.open_loan("EM0000000003") is None
        k.tap("confirm")
        ils.faults.down = True
        k.tap("my-loans")
        assert k.state.loans == ()
        assert k.state.notice.reason is Reason.ILS_UNAVAILABLE
    finally:
        k.close()


# --------------------------------------------------------------------------- signing in


def test_three_wrong_pins_are_explained_in_the_language_the_patron_chose(kiosk):
    """A patron switches to English on the idle screen, taps their card and types a wrong PIN
    three times. The screen that says the PIN is now locked is in English too."""
    kiosk.tap("lang")
    assert kiosk.state.lang == "en"
    kiosk.devices.card_reader.present(bytes.fromhex("04A1B2C3"))
    kiosk.pump()
    assert kiosk.state.screen == "pin" and kiosk.state.lang == "en"
    for _ in range(3):
        enter_pin(kiosk, "9999")
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason is Reason.PIN_LOCKED
    assert kiosk.state.lang == "en"


def test_the_same_phone_barcode_read_again_keeps_the_pin_typed_so_far(kiosk, clock):
    """A member signs in with the barcode on their phone, and while they type their PIN the
    phone dips out of the camera's view and back. It is the same sign-in: the digits typed so
    far stay, and the next one completes the PIN."""
    kiosk.devices.scanner.show(MEMBER)
    kiosk.pump()
    assert kiosk.state.screen == "pin"
    for d in "123":
        kiosk.tap(f"pin:{d}")
    clock.advance(3)
    kiosk.devices.scanner.show(MEMBER)
    kiosk.pump()
    kiosk.tap("pin:4")
    assert kiosk.state.pin == "1234"
    kiosk.tap("pin-ok")
    assert kiosk.state.screen == "menu"
