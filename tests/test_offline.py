"""Lending while the library system is unreachable: the real kiosk, the real SIP2 client and the
demo ILS over loopback, which is cut off (`down`) and brought back; the outbox then replays.
"""

import datetime as dt

import pytest

from kiosk.rules import Reason
from steps import choose, ils_loans, ils_log, login, open_and_close, sip2_kiosk

GOOD = "11110100000001"
GOOD_CARD, FINED_CARD, NEW_CARD = "04A1B2C3", "04A1B2C4", "04A1B2CB"  # NEW: member 9, never seen here


@pytest.fixture
def kiosk(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)
    yield k
    k.close()


def seen_online(k, uid=GOOD_CARD):
    """The member logs in once while the library answers: the kiosk caches their standing."""
    login(k, uid=uid)
    assert k.state.screen == "menu" and not k.state.member.offline
    k.tap("logout")


def borrow(k, item, slot):
    choose(k, item)
    assert k.state.screen == "open-door", k.state.notice
    open_and_close(k, slot)
    assert k.state.screen == "receipt"
    k.tap("confirm")


def test_a_member_seen_online_borrows_while_the_ils_is_down_and_it_is_replayed(kiosk, ils, clock):
    seen_online(kiosk)
    ils.faults.down = True
    clock.advance(60)
    login(kiosk)
    assert kiosk.state.screen == "menu" and kiosk.state.member.offline
    assert kiosk.status().offline  # the header says so
    borrow(kiosk, "EM0000000003", 3)
    [event] = kiosk.store.outbox("pending")
    assert event["kind"] == "checkout" and "EM0000000003" not in ils_loans(ils)
    due = kiosk.store.open_loan("EM0000000003")["due"]
    assert due == (clock.now().date() + dt.timedelta(days=14)).isoformat()
    lent_at = clock.now()

    clock.advance(3 * 3600)
    ils.faults.down = False
    report = kiosk.sync_now()
    assert report.delivered == 1 and report.dead == 0
    loan = ils_loans(ils)["EM0000000003"]
    assert loan["patron"] == GOOD and loan["renewals"] == 0
    assert loan["checked_out_at"].startswith(lent_at.isoformat(timespec="seconds"))  # the original date
    assert loan["due"].startswith(due)  # the due date the patron was given
    [checkout] = [e for e in ils_log(ils, "EM0000000003")]
    assert checkout["no_block"] and checkout["action"] == "checkout"


def test_offline_lending_stops_at_the_offline_limit(kiosk, ils):
    seen_online(kiosk)
    ils.faults.down = True
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    borrow(kiosk, "EM0000000004", 4)
    choose(kiosk, "EM0000000005")
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason is Reason.OFFLINE_LIMIT and kiosk.state.notice.detail("limit") == "2"
    assert kiosk.devices.locks.unlocked() == []


def test_the_librarys_verdict_at_the_last_online_login_holds_offline(kiosk, ils):
    seen_online(kiosk, FINED_CARD)  # member 2: unpaid fines
    ils.faults.down = True
    login(kiosk, uid=FINED_CARD)
    kiosk.tap("borrow")
    assert kiosk.state.screen == "error" and kiosk.state.notice.reason is Reason.FINES


def test_offline_the_pin_is_checked_against_the_cache(kiosk, ils):
    seen_online(kiosk)
    ils.faults.down = True
    login(kiosk, pin="9999")
    assert kiosk.state.screen == "pin" and kiosk.state.notice.reason is Reason.WRONG_PIN
    kiosk.tap("cancel")
    login(kiosk, pin="1234")
    assert kiosk.state.screen == "menu"


def test_a_member_never_seen_online_may_return_but_not_borrow(kiosk, ils):
    ils.faults.down = True
    login(kiosk, uid=NEW_CARD)
    assert kiosk.state.screen == "menu"
    kiosk.tap("borrow")
    assert kiosk.state.screen == "error" and kiosk.state.notice.reason is Reason.OFFLINE_NEW_MEMBER


def test_unknown_members_may_borrow_one_item_when_configured(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils, unknown_members="one-item")
    try:
        ils.faults.down = True
        login(k, uid=NEW_CARD)
        borrow(k, "EM0000000003", 3)
        choose(k, "EM0000000004")
        assert k.state.notice.reason is Reason.OFFLINE_LIMIT and k.state.notice.detail("limit") == "1"
        k.tap("confirm")
        k.tap("logout")
        ils.faults.down = False
        assert k.sync_now().delivered == 1
        assert ils_loans(ils)["EM0000000003"]["patron"] == "11110100000009"  # the card's owner
    finally:
        k.close()


def test_offline_lending_can_be_switched_off(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils, allowed=False)
    try:
        seen_online(k)
        ils.faults.down = True
        login(k)
        k.tap("borrow")
        assert k.state.screen == "error" and k.state.notice.reason is Reason.OFFLINE_NO_LENDING
    finally:
        k.close()


def test_a_stale_cache_is_not_trusted(kiosk, ils, clock):
    seen_online(kiosk)
    ils.faults.down = True
    clock.advance(31 * 86400)  # cache_days = 30
    login(kiosk)
    kiosk.tap("borrow")
    assert kiosk.state.notice.reason is Reason.OFFLINE_NEW_MEMBER


def test_a_return_is_always_accepted_offline_even_of_a_book_the_kiosk_never_saw(kiosk, ils):
    login(kiosk)
    borrow(kiosk, "EM0000000001", 1)  # every locker is full at the start: empty one
    kiosk.tap("logout")
    ils.faults.down = True
    kiosk.tap("return")
    kiosk.devices.scanner.show("EM0000000026")  # the library's book, on loan to member 3
    kiosk.pump()
    assert kiosk.state.screen == "open-door", kiosk.state.notice
    open_and_close(kiosk, kiosk.devices.locks.last_unlocked)
    assert kiosk.state.screen == "receipt"
    assert [e["kind"] for e in kiosk.store.outbox("pending")] == ["checkin"]
    ils.faults.down = False
    assert kiosk.sync_now().delivered == 1
    assert "EM0000000026" not in ils_loans(ils)


def test_a_loan_made_offline_survives_a_power_cut_and_is_replayed_once(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)
    seen_online(k)
    ils.faults.down = True
    login(k)
    borrow(k, "EM0000000003", 3)
    k.power_cut()
    again = sip2_kiosk(tmp_path, clock, ils)
    try:
        ils.faults.down = False
        assert again.sync_now().delivered == 1
        assert again.sync_now().delivered == 0  # nothing twice
        assert ils_loans(ils)["EM0000000003"]["renewals"] == 0
    finally:
        again.close()


def test_the_outbox_worker_is_woken_when_the_library_answers_again(kiosk, ils):
    seen_online(kiosk)
    ils.faults.down = True
    login(kiosk)
    assert kiosk.library.offline and not kiosk._sync_wake.is_set()
    kiosk.tap("logout")
    ils.faults.down = False
    kiosk.library.online_library.client.next_attempt_at = None  # its back-off has run out
    kiosk.library.keep_alive()  # the background probe
    assert not kiosk.library.offline and kiosk._sync_wake.is_set()


def test_after_delivery_no_member_number_is_left_on_the_device(kiosk, ils, tmp_path):
    seen_online(kiosk)
    ils.faults.down = True
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    kiosk.tap("logout")
    ils.faults.down = False
    assert kiosk.sync_now().delivered == 1
    kiosk.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("kiosk.db*") if not p.name.endswith(".key"))
    for secret in (GOOD, GOOD_CARD):  # (the PIN is never stored: only a keyed check of it)
        assert secret.encode() not in raw, secret
    # ...yet the kiosk still knows whose loan it is, by the keyed hash
    loan = kiosk.store.open_loan("EM0000000003")
    assert loan["member_id"] == "" and loan["member_key"] == kiosk.store.key_of(GOOD)


def test_undelivered_events_keep_what_the_replay_needs(kiosk, ils):
    seen_online(kiosk)
    ils.faults.down = True
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    [event] = kiosk.store.outbox("pending")
    assert event["member_id"] == GOOD_CARD  # the card the library knows the member by


def test_retention_is_enforced(kiosk, ils, clock):
    seen_online(kiosk)
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    kiosk.tap("logout")
    assert kiosk.store.outbox("delivered")
    clock.advance(31 * 86400)
    deleted = kiosk.store.purge(clock.now(), delivered_days=30, cache_days=30)
    assert deleted["outbox"] == 1 and deleted["member_cache"] == 1 and deleted["door_jobs"] >= 1
    assert kiosk.store.outbox() == [] and kiosk.store.cached_member(GOOD_CARD) is None


def test_events_from_an_unsynchronised_clock_are_flagged_and_not_dated(kiosk, ils, clock):
    seen_online(kiosk)
    ils.faults.down = True
    clock.is_synced = False
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    assert kiosk.store.queue_status()["unsynced_clock"] == 1
    clock.is_synced = True
    clock.advance(86400)
    ils.faults.down = False
    assert kiosk.sync_now().delivered == 1
    [entry] = ils_log(ils, "EM0000000003")
    assert entry["transaction_date"].startswith(clock.now().date().isoformat())  # the replay's own time


def test_a_replay_the_ils_refuses_is_a_dead_letter_until_staff_resolve_it(kiosk, ils, clock):
    seen_online(kiosk)
    ils.faults.down = True
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    kiosk.tap("logout")
    ils.faults.down = False
    # meanwhile the library's records say another member has this copy (a desk mistake)
    kiosk.library.online_library.client.next_attempt_at = None
    assert kiosk.library.client.checkout("11110100000009", "EM0000000003").ok
    report = kiosk.sync_now()
    assert report.dead == 1
    [dead] = kiosk.store.outbox("dead")
    assert "on loan" in dead["last_error"]
    assert ils_loans(ils)["EM0000000003"]["patron"] == "11110100000009"  # nothing overwritten
    assert kiosk.store.resolve_event(dead["seq"], "checked at the desk", clock.now())
    assert kiosk.store.outbox("dead") == []


def test_after_a_power_cut_the_locker_audit_takes_back_a_loan_whose_record_was_lost(
        tmp_path, clock, ils, monkeypatch):
    # The kiosk's checkout reached the library, then the power went before the door opened, and
    # the power cut undid the kiosk's note of it (written without waiting for the disk).
    k = sip2_kiosk(tmp_path, clock, ils)
    assert k.library.client.checkout(GOOD, "EM0000000003").ok
    k.power_cut()
    monkeypatch.setattr("kiosk.app.boot_id", lambda: "the next boot")
    again = sip2_kiosk(tmp_path, clock, ils)  # the audit runs at start, before any patron
    try:
        assert "EM0000000003" not in ils_loans(ils)  # the book never left its locker
        assert [a["slot"] for a in again.store.alarms() if a["kind"] == "phantom-loan-taken-back"] == [3]
        assert not again.store.locker_audit_due()
    finally:
        again.close()
    third = sip2_kiosk(tmp_path, clock, ils)  # after a clean stop there is nothing to audit
    try:
        assert not third.store.locker_audit_due()
    finally:
        third.close()


def test_the_audit_waits_while_the_library_is_down_and_spares_books_on_their_way(
        tmp_path, clock, ils, monkeypatch):
    k = sip2_kiosk(tmp_path, clock, ils)
    login(k)
    borrow(k, "EM0000000001", 1)
    k.tap("logout")
    ils.faults.down = True
    k.tap("return")
    k.devices.scanner.show("EM0000000001")  # back in locker 1; its checkin waits in the outbox
    k.pump()
    open_and_close(k, 1)
    k.power_cut()
    monkeypatch.setattr("kiosk.app.boot_id", lambda: "the next boot")
    again = sip2_kiosk(tmp_path, clock, ils)  # the library is still down at start
    try:
        assert again.sync_now().stopped.startswith("the library is unavailable for the locker audit")
        assert again.store.locker_audit_due()
        ils.faults.down = False
        again.library.client.next_attempt_at = None
        report = again.sync_now()
        assert report.delivered == 1  # the return, not the audit, settles EM0000000001
        assert not [a for a in again.store.alarms() if a["kind"].startswith("phantom")]
    finally:
        again.close()


def test_a_crash_of_the_process_alone_needs_no_audit(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)
    k.power_cut()  # same boot: every write of the dead process is still there
    again = sip2_kiosk(tmp_path, clock, ils)
    try:
        assert not again.store.locker_audit_due()
    finally:
        again.close()


def test_the_locker_audit_leaves_a_loan_made_since_it_began(tmp_path, clock, ils, monkeypatch):
    k = sip2_kiosk(tmp_path, clock, ils)
    try:
        worker = k._new_worker()
        listed = worker._store.locker_books()  # the audit lists the lockers' books...
        login(k)
        borrow(k, "EM0000000003", 3)  # ...a patron borrows one of them, online...
        real = worker._store.locker_books
        monkeypatch.setattr(worker._store, "locker_books", lambda slot=None: listed if slot is None else real(slot))
        assert worker.audit_lockers() == 0  # ...and the audit reaches it: not its business now
        worker.close()
        assert ils_loans(ils)["EM0000000003"]["patron"] == GOOD
    finally:
        k.close()


@pytest.mark.parametrize("card", [GOOD_CARD, FINED_CARD])
def test_offline_a_card_only_ever_seen_without_its_pin_is_not_trusted(tmp_path, clock, ils, card):
    k = sip2_kiosk(tmp_path, clock, ils, unknown_members="one-item")
    try:
        k.devices.card_reader.present(bytes.fromhex(card))  # tapped online, then walked away at the PIN
        k.pump()
        k.tap("cancel")
        ils.faults.down = True
        login(k, uid=card, pin="0000")  # not its PIN: nothing here can tell
        if card == FINED_CARD:  # the library's verdict still holds
            k.tap("borrow")
            assert k.state.screen == "error" and k.state.notice.reason is Reason.FINES
        else:  # judged as a card never seen: one book at most
            borrow(k, "EM0000000003", 3)
            choose(k, "EM0000000004")
            assert k.state.notice.reason is Reason.OFFLINE_LIMIT and k.state.notice.detail("limit") == "1"
    finally:
        k.close()
