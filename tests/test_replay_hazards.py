"""What the outbox, and the kiosk's own sends, must get right when things go wrong on the way: an
answer lost, a refusal, a hold caught by a checkin, a write that fails, events that must keep
their order, a damaged record. The kiosk and the worker run against the demo ILS over loopback."""

import random
from contextlib import closing

import pytest

from drivers.base import DeviceError
from kiosk.rules import Reason
from kiosk.staff import event_view
from kiosk.store import UNKNOWN_SETTLE_S, StoreError
from steps import BOOT, choose, ils_loans, ils_log, login, open_and_close, queue_loan, sip2_kiosk
from sync.demo_ils import Behaviour, HeldRequest, place_hold
from sync.outbox import WORKER_FAILURES_TO_DEAD_LETTER, OutboxWorker
from sync.sip2.client import Client
from sync.sip2.results import CheckinResult
from test_offline import GOOD
from test_outbox import offline_loan, offline_return

WAITING = "11110100000009"  # member 9, who reserves books
AT_LIMIT = "11110100000003"  # member 3: at the library's limit of 5 loans
STRANGER = "EM9999999999"  # looks like one of the library's barcodes; no copy of the library


@pytest.fixture
def kiosk(tmp_path, clock, ils):
    with closing(sip2_kiosk(tmp_path, clock, ils)) as k:
        yield k


def offered(k) -> list[str]:
    return [line.item for line in k.store.shelf()]


def empty_locker_1(k):
    """Member 1 borrows the book in locker 1 and leaves: locker 1 is free for a return."""
    login(k)
    choose(k, "EM0000000001")
    open_and_close(k, 1)
    k.tap("logout")


def start_return(k, item):
    k.tap("return")
    k.devices.scanner.show(item)
    k.pump()


def lend_with_the_answer_lost(k, ils, item="EM0000000003"):
    """Member 1 borrows `item`; the library lends it, but its answer is cut short, so the door
    stays shut and the loan is to be taken back."""
    login(k)
    ils.faults.drop_after = 10
    choose(k, item)
    assert k.devices.locks.unlocked() == []


def busy_once(monkeypatch, store):
    """The next write that marks events delivered fails (the database busy, the disk full)."""
    real = store.mark_delivered_many
    calls = []

    def fail_first(event_ids, at):
        calls.append(event_ids)
        if len(calls) == 1:
            raise StoreError("database write failed: database is locked")
        return real(event_ids, at)

    monkeypatch.setattr(store, "mark_delivered_many", fail_first)


def jammed(slot):
    """The lock board does not answer: the locker's door does not open."""
    raise DeviceError("no answer from the lock board")


def refuse_checkin(self, item, **kw):
    """The library refuses a checkin (as Koha does for one it blocks; the words are its own)."""
    return CheckinResult(ok=False, screen_messages=("Checkin blocked",))


def next_boot(monkeypatch):
    """The kiosk starts again after a power cut: the Pi has booted again."""
    monkeypatch.setattr("kiosk.app.boot_id", lambda: "the next boot")
    monkeypatch.setattr("kiosk.store.boot_id", lambda: "the next boot")


def phantom_loan_then_power_cut(tmp_path, clock, ils, monkeypatch, item="EM0000000003"):
    """The library lent `item` to member 1 and the kiosk's note of it was lost in a power cut:
    the library has a loan of a book that never left its locker. The Pi boots again."""
    k = sip2_kiosk(tmp_path, clock, ils)
    assert k.library.client.checkout(GOOD, item).ok
    k.power_cut()
    next_boot(monkeypatch)


def started_before_the_library_answers(tmp_path, clock, ils):
    """A kiosk that starts while the library does not answer (the site's router boots slower
    than the Pi); a minute later the library answers, and member 1 signs in online."""
    ils.faults.down = True
    k = sip2_kiosk(tmp_path, clock, ils)
    ils.faults.down = False
    clock.advance(60)
    k.library.client.next_attempt_at = None
    login(k)
    assert k.state.screen == "menu" and not k.state.member.offline
    return k


def hold_the_take_back_after_its_look(monkeypatch, ils, item="EM0000000003") -> HeldRequest:
    """Once the library has answered the next item information (17) about `item`, it sits on the
    request that follows (the take-back's checkin) until the test lets it land."""
    held = HeldRequest()
    real_17 = Client.item_information

    def then_hold_the_checkin(self, asked, *args, **kwargs):
        facts = real_17(self, asked, *args, **kwargs)
        if asked == item:
            monkeypatch.setattr(Client, "item_information", real_17)
            ils.faults.hold_next = held
        return facts

    monkeypatch.setattr(Client, "item_information", then_hold_the_checkin)
    return held


def borrow_if_offered(k, item, slot) -> bool:
    """The patron at the screen asks to borrow `item`, and takes it if its locker `slot` opens."""
    choose(k, item)
    lent = k.state.screen == "open-door"
    if lent:
        open_and_close(k, slot)
    return lent


def let_land(held: HeldRequest):
    """The library carries out the request it was sitting on."""
    held.release()
    assert held.carried_out.wait(10)


def test_a_lost_item_information_answer_is_not_taken_for_the_loan_going_through(worker, store, client, ils,
                                                                                clock):
    """A loan made offline, of a copy the library shows on loan to another member (a mistake at
    the desk), is a dead letter for staff. Before replaying it the kiosk asks for the item's
    information (17); if that answer is lost, only the question went out: the loan has still not
    reached the library, and it stays a dead letter. It is not taken for delivered, which would
    leave member 1 with a book the library never heard they borrowed."""
    offline_loan(store, clock)  # lent offline to member 1
    assert client.checkout(WAITING, "EM0000000003").ok  # the library's records say member 9 has it
    client.connect()
    ils.faults.drop_after = 5  # the worker's 17 is answered, the answer cut short
    worker.drain()
    clock.advance(120)
    worker.drain(retry_now=True)
    [event] = store.outbox()
    checkouts = [e for e in ils_log(ils, "EM0000000003") if e["action"] == "checkout"]
    assert len(checkouts) == 1  # the desk's only: the kiosk's checkout was never sent
    assert event["state"] == "dead", event["last_error"]
    assert ils_loans(ils)["EM0000000003"]["patron"] == WAITING


def test_a_return_of_a_copy_the_library_does_not_know_is_a_dead_letter_and_not_lent(kiosk, ils, clock):
    """Offline, every return is accepted, even of a copy that is not the library's. When the
    library then refuses its checkin as an unknown item, the return is a dead letter for staff,
    and the stranger's book in the locker is not offered for lending under its barcode."""
    empty_locker_1(kiosk)
    ils.faults.down = True
    start_return(kiosk, STRANGER)
    assert kiosk.state.screen == "open-door"  # offline, every return is accepted
    open_and_close(kiosk, 1)
    ils.faults.down = False
    clock.advance(60)
    kiosk.sync_now()
    [event] = [e for e in kiosk.store.outbox() if e["item"] == STRANGER]
    assert event["state"] == "dead", event["last_error"]
    assert STRANGER not in offered(kiosk)


def test_a_resolved_return_of_a_copy_the_library_does_not_know_is_not_lent(kiosk, ils, clock):
    """Offline, a patron returns a book that is not the library's into locker 1, and its
    checkin is a dead letter. Staff take the stranger's book out and settle the event by hand
    (`kiosk queue resolve ID`). The locker's "book" is still not offered for lending: it is
    none of the library's, and the locker may well be empty."""
    empty_locker_1(kiosk)
    ils.faults.down = True
    start_return(kiosk, STRANGER)
    open_and_close(kiosk, 1)
    ils.faults.down = False
    clock.advance(60)
    kiosk.sync_now()
    [dead] = kiosk.store.outbox("dead")
    assert kiosk.store.resolve_event(dead["seq"], "took the stranger's book to the desk", clock.now())
    kiosk.sync_now()
    assert STRANGER not in offered(kiosk)


def test_a_book_once_kept_for_staff_can_be_returned_here_again(kiosk, ils, clock):
    """EM0000000026 comes back into locker 1 while the library holds it for member 9, so the
    locker is kept for staff. Staff take it out and member 9 collects it at the desk. Two weeks
    later member 9 returns it here, and the kiosk opens a locker for it: the book is not still
    taken to be in locker 1, and locker 1 does not stay out of use."""
    empty_locker_1(kiosk)
    start_return(kiosk, "EM0000000026")
    open_and_close(kiosk, 1)
    kiosk.tap("confirm")
    assert [row["slot"] for row in kiosk.store.staff_slots()] == [1]
    assert kiosk.library.client.checkout(WAITING, "EM0000000026").ok  # collected at the desk
    assert ils_loans(ils)["EM0000000026"]["patron"] == WAITING
    clock.advance(14 * 86400)
    kiosk.sync_now()
    start_return(kiosk, "EM0000000026")  # member 9 brings it back
    assert kiosk.state.screen == "open-door", kiosk.state.notice


def test_a_reserved_book_whose_checkin_answer_was_lost_goes_to_staff(kiosk, ils, clock):
    """A returned book reserved for another member, whose checkin answer is lost on the way:
    once the kiosk has settled the checkin (the library shows the book on its hold shelf), the
    locker is kept for staff and the book is not lent to the next patron."""
    empty_locker_1(kiosk)
    start_return(kiosk, "EM0000000026")  # on loan to member 3, reserved by member 9
    assert kiosk.state.screen == "open-door"
    ils.faults.drop_after = 10  # the library checks it in (the hold caught, alert=Y); the answer is cut
    open_and_close(kiosk, 1)
    assert kiosk.state.screen == "receipt"
    assert "EM0000000026" not in ils_loans(ils)  # it landed
    [_] = kiosk.store.outbox("unknown")
    clock.advance(120)  # settled
    assert kiosk.sync_now().delivered == 1
    assert kiosk.library.client.item_information("EM0000000026").circulation_status == "08"  # hold shelf
    assert "EM0000000026" not in offered(kiosk)
    assert [row["slot"] for row in kiosk.store.staff_slots()] == [1]


def test_a_queued_take_back_that_catches_a_hold_sends_the_locker_to_staff(kiosk, ils, clock):
    """A loan whose answer was lost is taken back later. If someone reserved the copy meanwhile,
    the library's checkin catches the hold (alert=Y): the locker goes to staff, and the book is
    not offered to the next patron."""
    lend_with_the_answer_lost(kiosk, ils)
    place_hold(ils.db_path, "EM0000000003", WAITING, clock=clock)  # someone reserves the copy meanwhile
    clock.advance(120)
    assert kiosk.sync_now().delivered == 1  # the take-back: checked in, the hold caught
    assert "EM0000000003" not in ils_loans(ils)
    assert kiosk.library.client.item_information("EM0000000003").circulation_status == "08"
    assert "EM0000000003" not in offered(kiosk)
    assert [row["slot"] for row in kiosk.store.staff_slots()] == [3]


def test_an_immediate_take_back_that_catches_a_hold_sends_the_locker_to_staff(kiosk, ils, clock, monkeypatch):
    """The same when the loan is taken back at once: the library lent, someone reserved the copy
    at that moment, and the locker's lock did not open."""
    login(kiosk)
    real_checkout = kiosk.library.client.checkout

    def lend_then_someone_reserves(*args, **kwargs):
        result = real_checkout(*args, **kwargs)
        place_hold(ils.db_path, "EM0000000003", WAITING, clock=clock)
        return result

    monkeypatch.setattr(kiosk.library.client, "checkout", lend_then_someone_reserves)
    monkeypatch.setattr(kiosk.devices.locks, "unlock", jammed)
    choose(kiosk, "EM0000000003")  # lent, the lock fails: taken back at once
    assert "EM0000000003" not in ils_loans(ils)
    assert kiosk.library.client.item_information("EM0000000003").circulation_status == "08"
    assert "EM0000000003" not in offered(kiosk)
    assert [row["slot"] for row in kiosk.store.staff_slots()] == [3]


def test_a_failed_delivered_mark_does_not_hold_up_the_items_later_events(worker, store, ils, clock, monkeypatch):
    """When the write that marks a sent event delivered fails once (the database busy, the disk
    full), the event is settled later and the item's next events still go: the loan made
    offline and the return after it both reach the library within the day, without waiting for
    the kiosk to be restarted."""
    offline_loan(store, clock)  # lent offline
    clock.advance(600)
    offline_return(store, clock, "EM0000000003")  # and brought back
    busy_once(monkeypatch, store)
    with pytest.raises(StoreError):  # the sync loop logs it and drains again later
        worker.drain()
    assert "EM0000000003" in ils_loans(ils)  # the checkout reached the library
    for _ in range(5):  # the sync loop keeps going, for a day
        clock.advance(3 * 3600)
        worker.drain(retry_now=True)
    states = [(e["kind"], e["state"]) for e in store.outbox()]
    assert states == [("checkout", "delivered"), ("checkin", "delivered")]


def test_a_returned_book_whose_delivered_mark_failed_is_offered_again(kiosk, ils, clock, monkeypatch):
    """The same for a return the kiosk checks in itself, at the door: the failed write is no
    failure for the patron, who gets a receipt, and the checkin is settled later, so the book
    is offered again while the kiosk runs on."""
    empty_locker_1(kiosk)
    start_return(kiosk, "EM0000000001")
    busy_once(monkeypatch, kiosk.store)
    open_and_close(kiosk, 1)
    assert kiosk.state.screen == "receipt"
    assert "EM0000000001" not in ils_loans(ils)  # the library has it back
    for _ in range(5):
        clock.advance(3 * 3600)
        kiosk.sync_now()
    assert [e["state"] for e in kiosk.store.outbox() if e["kind"] == "checkin"] == ["delivered"]
    assert "EM0000000001" in offered(kiosk)


def test_a_book_whose_take_back_is_a_dead_letter_is_not_offered_again(kiosk, ils, clock, monkeypatch):
    """When the library refuses to take back a loan whose door never opened, the take-back is a
    dead letter for staff and the library still has the book on loan to the member. Until staff
    have settled it, the book is not offered again: borrowed once more, the library would renew
    that loan (a repeated checkout is a renewal) and the kiosk would take it for a fresh one."""
    lend_with_the_answer_lost(kiosk, ils)
    [_] = kiosk.store.outbox("unknown")
    clock.advance(120)
    monkeypatch.setattr(Client, "checkin", refuse_checkin)  # the library refuses the take-back
    kiosk.sync_now()
    monkeypatch.undo()
    assert [e["kind"] for e in kiosk.store.outbox("dead")] == ["checkin"]
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 0  # the loan the library still has
    assert "EM0000000003" not in [item for _, item in kiosk.store.locker_books()]
    assert "EM0000000003" not in offered(kiosk)


def test_resolving_a_refused_take_back_does_not_lend_the_book_onto_the_loan_still_at_the_library(
        kiosk, ils, clock, monkeypatch):
    """A loan whose answer was lost is to be taken back; the library refuses, so the take-back
    is a dead letter and the library still has EM0000000003 on loan to member 1, although the
    book never left locker 3. Staff settle it by hand (`kiosk queue resolve ID`) without the
    loan having ended at the library. Before the book is lent again the kiosk asks the library
    about it: member 1 borrowing it here is then no renewal of that loan at the library taken
    for a fresh one at the kiosk."""
    lend_with_the_answer_lost(kiosk, ils)
    kiosk.tap("logout")
    clock.advance(120)
    monkeypatch.setattr(Client, "checkin", refuse_checkin)
    kiosk.sync_now()
    monkeypatch.undo()
    [dead] = kiosk.store.outbox("dead")
    assert ils_loans(ils)["EM0000000003"]["patron"] == GOOD
    assert kiosk.store.resolve_event(dead["seq"], "member 1 has it", clock.now())
    kiosk.sync_now()
    login(kiosk)
    borrow_if_offered(kiosk, "EM0000000003", 3)
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 0


def test_a_return_and_the_next_loan_reach_the_library_in_the_order_they_happened(store, client, ils, clock):
    """Member 3, at the library's limit, returns a book and then borrows another while the
    library is down. The return reaches the library first even while it is waiting out a
    back-off and the loan is not, so a library that does not honour no-block (Evergreen, FOLIO)
    does not refuse the loan at the limit, which would make it a dead letter."""
    ils.behaviour = Behaviour(no_block="ignored")
    slow = OutboxWorker(store, client, clock, backoff_initial_s=60, backoff_max_s=600, rng=random.Random(2),
                        boot=BOOT)
    offline_return(store, clock, "EM0000000025", slot=1)  # member 3 brings one back
    clock.advance(60)
    queue_loan(store, clock, "EM0000000003", AT_LIMIT, slot=3, boot=BOOT)  # and borrows another
    ils.faults.down = True
    slow.drain()  # the library is down: the checkin backs off, the checkout waits as it was
    ils.faults.down = False
    client.next_attempt_at = None  # the client's own back-off is over: the library answers
    report = slow.drain()  # the periodic drain (not woken by the kiosk)
    clock.advance(3600)
    slow.drain()
    log = sorted(ils_log(ils, "EM0000000025") + ils_log(ils, "EM0000000003"), key=lambda e: e["at"])
    assert report.dead == 0
    assert [(e["action"], e["item"]) for e in log] == [("checkin", "EM0000000025"), ("checkout", "EM0000000003")]


def test_queue_show_of_a_damaged_dead_letter_shows_it(worker, store, clock):
    """An event whose record is damaged (its payload torn) becomes a dead letter for staff to
    look at; `kiosk queue show ID` then shows that record as it is instead of failing on it."""
    offline_loan(store, clock)
    with store.transaction() as db:
        db.execute("UPDATE outbox SET payload = '{\"due\": \"2026-11-16\", \"slot\": 3'")  # torn
    assert worker.drain().dead == 1
    [row] = store.outbox("dead")
    view = event_view(row, full=True)  # what `kiosk queue show ID` prints
    assert view["id"] == row["seq"]
    assert '"slot": 3' in str(view["payload"])


def test_an_unanswered_take_back_is_not_resent_before_it_could_have_landed(kiosk, ils, clock, monkeypatch):
    """The library lends a book but its locker does not open, so the loan is taken back at once;
    the library sits on that checkin past the kiosk's timeout. The take-back waits out its
    settling time before it is asked about or sent again, and the book stays off the shelf
    meanwhile: otherwise the next patron could borrow it, and the first checkin, landing late,
    would check their new loan in (the patron has the book, the library shows it returned)."""
    monkeypatch.setattr(kiosk.devices.locks, "unlock", jammed)
    login(kiosk)
    held = hold_the_take_back_after_its_look(monkeypatch, ils)
    choose(kiosk, "EM0000000003")  # lent, the lock fails: taken back, the checkin unanswered
    assert kiosk.state.notice.reason is Reason.LOCK_FAULT
    assert held.arrived.wait(10)
    monkeypatch.undo()  # the lock board answers again
    kiosk.tap("logout")
    clock.advance(5)
    kiosk.sync_now()  # the worker's next round
    login(kiosk)  # the same member, or anyone, asks for the book
    lent = borrow_if_offered(kiosk, "EM0000000003", 3)
    let_land(held)  # the first take-back lands now
    assert not lent or "EM0000000003" in ils_loans(ils), "lent, but the library shows the book returned"


def test_an_unanswered_take_back_by_the_locker_audit_does_not_land_on_a_new_loan(tmp_path, clock, ils,
                                                                                 monkeypatch):
    """The same for the locker audit after a power cut: it finds a loan of a book that never left
    its locker, and the library sits on its checkin. The take-back is queued to settle and the
    book stays off the shelf until it has: a patron who borrowed it meanwhile would have the new
    loan checked in by the audit's checkin, landing late."""
    phantom_loan_then_power_cut(tmp_path, clock, ils, monkeypatch)
    held = hold_the_take_back_after_its_look(monkeypatch, ils)
    with closing(sip2_kiosk(tmp_path, clock, ils)) as k:  # up long enough: the audit runs at start
        assert held.arrived.wait(10)
        clock.advance(5)
        k.library.client.next_attempt_at = None
        login(k)
        lent = borrow_if_offered(k, "EM0000000003", 3)
        let_land(held)
        assert not lent or "EM0000000003" in ils_loans(ils), "lent, but the library shows the book returned"


def test_a_book_whose_phantom_loan_is_refused_back_before_the_audit_is_not_lent(tmp_path, clock, ils,
                                                                                 monkeypatch):
    """After a power cut the library holds a loan of a book that never left its locker, and the
    library does not answer as the kiosk starts, so the locker audit waits. Once it answers,
    member 1 asks for that book before the audit has reached it: the kiosk asks the library to
    take its loan back first, and the library refuses. The book is then not lent: the library
    would take the checkout for a renewal of the loan it still has."""
    phantom_loan_then_power_cut(tmp_path, clock, ils, monkeypatch)
    monkeypatch.setattr(Client, "checkin", refuse_checkin)
    with closing(started_before_the_library_answers(tmp_path, clock, ils)) as k:
        assert k.store.locker_audit_pending()  # the audit waited: no answer at the start
        lent = borrow_if_offered(k, "EM0000000003", 3)
        assert not lent, k.state.screen
        assert ils_loans(ils)["EM0000000003"]["renewals"] == 0


def test_a_phantom_loan_the_audit_could_not_take_back_keeps_the_book_off_the_shelf(tmp_path, clock, ils,
                                                                                   monkeypatch):
    """The locker audit at start finds a loan of a book that never left its locker, and the
    library refuses to take it back. Staff are told (an alarm) and the book is not offered,
    even once the library takes checkins again: borrowed, the library would renew that loan."""
    phantom_loan_then_power_cut(tmp_path, clock, ils, monkeypatch)
    real_checkin = Client.checkin
    monkeypatch.setattr(Client, "checkin", refuse_checkin)
    k = sip2_kiosk(tmp_path, clock, ils)  # up long enough: the audit runs at start
    monkeypatch.setattr(Client, "checkin", real_checkin)  # the library takes checkins again
    with closing(k):
        assert [a["kind"] for a in k.store.alarms()] == ["phantom-loan"]
        assert "EM0000000003" not in offered(k)
        login(k)
        borrow_if_offered(k, "EM0000000003", 3)
        assert ils_loans(ils)["EM0000000003"]["renewals"] == 0


def test_a_damaged_date_in_one_event_does_not_hold_up_the_rest_of_the_queue(worker, store, ils, clock):
    """An event whose record reads well but holds a date that is not one (a number) is a dead
    letter for staff; the loans queued after it, of other books, still reach the library."""
    queue_loan(store, clock, "EM0000000003", GOOD, slot=3)
    queue_loan(store, clock, "EM0000000004", GOOD, slot=4)
    with store.transaction() as db:  # valid JSON, an object: only the dates' type is wrong
        db.execute("""UPDATE outbox SET payload = '{"transaction_date": 20261102, "due": 20261116, "slot": 3}'
                      WHERE item = 'EM0000000003'""")
    for _ in range(10):  # ten minutes of the worker waking up every minute
        worker.drain()
        clock.advance(61)
    states = {e["item"]: e["state"] for e in store.outbox()}
    assert states == {"EM0000000003": "dead", "EM0000000004": "delivered"}
    assert "EM0000000004" in ils_loans(ils)


def test_an_event_the_kiosk_keeps_failing_on_becomes_a_dead_letter_and_the_rest_go(worker, store, ils, clock,
                                                                                   monkeypatch):
    """When the kiosk's own code fails on one event (a bug, not the library), the event may have
    gone out, so it is tried again only after its settling time; after the last try it is a dead
    letter for staff, saying the kiosk failed on it. The loans queued after it, of other books,
    wait no longer than those tries: then they reach the library."""
    for n in (3, 4, 5):
        queue_loan(store, clock, f"EM000000000{n}", GOOD, slot=n)
    real = worker._deliver
    tries = []

    def fail_on_one(event, unsure):
        if event["item"] == "EM0000000003":
            tries.append(event["seq"])
            raise RuntimeError("a bug of the kiosk's own")
        return real(event, unsure)

    monkeypatch.setattr(worker, "_deliver", fail_on_one)
    worker.drain()
    for n in range(2, WORKER_FAILURES_TO_DEAD_LETTER + 1):
        worker.drain()  # before its settling time: not tried again
        assert len(tries) == n - 1
        clock.advance(UNKNOWN_SETTLE_S + 1)
        worker.drain()
        assert len(tries) == n
    worker.drain()  # the next round, at once
    events = {e["item"]: e for e in store.outbox()}
    failed = events.pop("EM0000000003")
    assert failed["state"] == "dead" and len(tries) == WORKER_FAILURES_TO_DEAD_LETTER
    assert f"the kiosk failed on it {WORKER_FAILURES_TO_DEAD_LETTER} times (RuntimeError" in failed["last_error"]
    assert {item: e["state"] for item, e in events.items()} == {"EM0000000004": "delivered",
                                                                 "EM0000000005": "delivered"}
    assert "EM0000000004" in ils_loans(ils) and "EM0000000005" in ils_loans(ils)
