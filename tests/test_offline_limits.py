"""Offline limits that hold: against a wall clock set back, a card first used offline and only then
seen online, and a found card's PIN tried over and over while the library system is down.
The real kiosk, the real SIP2 client and the demo ILS over loopback, cut off and brought back."""

import datetime as dt
import sqlite3

import sqlite_utils

from kiosk.rules import Reason
from kiosk.store import MIGRATIONS, Store
from steps import ils_loans, login, open_and_close, sip2_kiosk
from sync.demo_ils import Behaviour
from test_replay_hazards import borrow_if_offered
from ui.i18n import reason_text

GOOD = "11110100000001"
GOOD_CARD, NEW_CARD = "04A1B2C3", "04A1B2CB"  # NEW: member 9, never seen at this kiosk


def try_to_borrow(k, item, slot, uid=GOOD_CARD):
    """Log in, ask for `item`, take it if the kiosk opens its door; whether it was lent, and
    the refusal if not."""
    login(k, uid=uid)
    why = None
    for button in ("borrow", f"item:{item}", "confirm"):  # as steps.choose, minding each refusal
        k.tap(button)
        why = why or k.state.notice
    lent = k.state.screen == "open-door"
    if lent:
        open_and_close(k, slot)
    k.tap("confirm")
    k.tap("logout")
    return lent, why


def back_online(k, ils, clock):
    ils.faults.down = False
    clock.advance(60)
    k.library.client.next_attempt_at = None  # the client's back-off is not what is tested here


# -- the wall clock

def test_offline_loans_count_against_the_library_limit_after_the_clock_is_set_back(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)
    try:
        for n in (40, 41, 42, 43):  # member 1 has 4 loans at the library (the limit is 5)
            assert k.library.client.checkout(GOOD, f"EM00000000{n}").ok
        login(k)  # online: the kiosk caches 4 loans here
        assert k.state.member.loans_here == 4
        k.tap("logout")
        clock.advance(600)
        ils.faults.down = True
        clock.set_wall(clock.now() - dt.timedelta(hours=1))  # NTP corrects a clock an hour fast
        first = try_to_borrow(k, "EM0000000003", 3)
        second = try_to_borrow(k, "EM0000000004", 4)
        assert first == (True, None)
        assert second[0] is False and second[1].reason is Reason.LIBRARY_LIMIT
    finally:
        k.close()


def test_a_loan_lent_online_after_the_cache_counts_offline_whatever_the_clock(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils, max_loans=5)
    try:
        for n in (40, 41, 42):  # 3 loans at the library
            assert k.library.client.checkout(GOOD, f"EM00000000{n}").ok
        assert try_to_borrow(k, "EM0000000003", 3) == (True, None)  # online: the 4th, cache says 3
        clock.set_wall(clock.now() - dt.timedelta(days=1))
        ils.faults.down = True
        assert try_to_borrow(k, "EM0000000004", 4) == (True, None)  # the 5th, offline
        lent, why = try_to_borrow(k, "EM0000000005", 5)
        assert not lent and why.reason is Reason.LIBRARY_LIMIT
    finally:
        k.close()


# -- a card used offline before its member was ever seen online

def test_a_loan_queued_before_the_member_was_first_seen_online_still_counts(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils, unknown_members="one-item", max_loans=2)
    try:
        ils.faults.down = True
        assert try_to_borrow(k, "EM0000000003", 3, uid=NEW_CARD) == (True, None)  # on the card alone
        back_online(k, ils, clock)
        login(k, uid=NEW_CARD)  # the library answers: member 9 is seen online, PIN and all
        assert k.state.screen == "menu" and not k.state.member.offline
        k.tap("logout")
        clock.advance(60)
        ils.faults.down = True
        assert try_to_borrow(k, "EM0000000004", 4, uid=NEW_CARD) == (True, None)
        lent, why = try_to_borrow(k, "EM0000000005", 5, uid=NEW_CARD)
        assert not lent and why.reason is Reason.OFFLINE_LIMIT
        waiting = [e for e in k.store.outbox("pending") if e["kind"] == "checkout"]
        assert len(waiting) == 2
        assert {e["member_key"] for e in waiting} == {k.store.key_of(NEW_CARD)}
    finally:
        k.close()


def test_a_loan_queued_before_the_member_was_seen_counts_against_the_library_limit(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils, unknown_members="one-item", max_loans=5)
    member9 = "11110100000009"
    try:
        ils.faults.down = True
        assert try_to_borrow(k, "EM0000000003", 3, uid=NEW_CARD) == (True, None)
        back_online(k, ils, clock)
        for n in (40, 41):  # elsewhere member 9 borrows 2 more: 3 at the library, 4 in all
            assert k.library.client.checkout(member9, f"EM00000000{n}").ok
        login(k, uid=NEW_CARD)  # the library counts 3, not having heard of the offline loan yet:
        assert k.state.member.loans_here == 4  # the kiosk adds it
        k.tap("logout")
        ils.faults.down = True
        assert try_to_borrow(k, "EM0000000004", 4, uid=NEW_CARD) == (True, None)  # the 5th
        lent, why = try_to_borrow(k, "EM0000000005", 5, uid=NEW_CARD)
        assert not lent and why.reason is Reason.LIBRARY_LIMIT
    finally:
        k.close()


def test_an_online_loan_counts_the_members_loans_still_queued_from_offline(tmp_path, clock, ils):
    """Member 1 has 3 books from the desk (the library's limit is 5) and borrows 2 more here
    while the library is down: 5 in all. The library answers again, and member 1 signs in
    online and asks for a 6th before the outbox has delivered those two. The library counts 3;
    the kiosk counts the two it still holds as well. No replay is then refused at the limit by a
    library that ignores no-block (Evergreen, FOLIO), which would leave a book out of its
    locker that the library never hears was lent, and member 1 never ends with more loans than
    the library allows (as on Koha, which takes them all)."""
    ils.behaviour = Behaviour(no_block="ignored")
    k = sip2_kiosk(tmp_path, clock, ils)
    try:
        for n in (50, 51, 52):
            assert k.library.client.checkout(GOOD, f"EM00000000{n}").ok  # at the desk
        login(k)  # seen online: 3 loans
        k.tap("logout")
        ils.faults.down = True
        clock.advance(60)
        assert try_to_borrow(k, "EM0000000003", 3) == (True, None)
        assert try_to_borrow(k, "EM0000000004", 4) == (True, None)  # queued: 5 in all
        back_online(k, ils, clock)
        login(k)  # online again, the queue not delivered yet
        assert k.state.screen == "menu" and not k.state.member.offline
        borrow_if_offered(k, "EM0000000005", 5)
        k.tap("logout")
        clock.advance(60)
        k.sync_now()
        assert [(e["item"], e["last_error"]) for e in k.store.outbox("dead")] == []
        mine = [item for item, row in ils_loans(ils).items() if row["patron"] == GOOD]
        assert len(mine) <= 5, mine
    finally:
        k.close()


# -- guessing a found card's PIN while the library system is down

def enter_pin(k, pin):
    for d in pin:
        k.tap(f"pin:{d}")
    k.tap("pin-ok")


def seen_online_then_offline(k, ils):
    """The owner signs in once while the library answers (the PIN check is cached), then the
    library becomes unreachable."""
    login(k)
    k.tap("logout")
    ils.faults.down = True


def tap_card(k, uid=GOOD_CARD):
    k.devices.card_reader.present(bytes.fromhex(uid))
    k.pump()
    assert k.state.screen == "pin"


def test_wrong_pins_offline_add_up_over_taps_until_even_the_right_pin_is_refused(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)  # pin_tries = 3
    try:
        seen_online_then_offline(k, ils)
        for guess in ("0000", "0001"):  # the finder taps again after every wrong PIN
            tap_card(k)
            enter_pin(k, guess)
            assert k.state.screen == "pin" and k.state.notice.reason is Reason.WRONG_PIN
            clock.advance(30)
        tap_card(k)
        enter_pin(k, "0002")
        assert k.state.screen == "error" and k.state.notice.reason is Reason.PIN_LOCKED
        k.tap("confirm")
        clock.advance(600)
        tap_card(k)
        enter_pin(k, "1234")  # the right PIN, ten minutes later
        assert k.state.screen == "error" and k.state.notice.reason is Reason.PIN_LOCKED
        what, nxt = reason_text(k.state.notice, "en")
        assert "cannot sign in while the library system is unreachable" in what
        assert "return books" in nxt
        assert "연결되지 않은 지금은" in reason_text(k.state.notice, "ko")[0]
        k.tap("confirm")

        back_online(k, ils, clock)
        login(k)  # the owner, online: the library checks the PIN itself, and the lockout ends
        assert k.state.screen == "menu" and not k.state.member.offline
        k.tap("logout")
        ils.faults.down = True
        clock.advance(60)
        login(k)
        assert k.state.screen == "menu" and k.state.member.offline
    finally:
        k.close()


def test_the_offline_pin_count_survives_a_restart(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)
    try:
        seen_online_then_offline(k, ils)
        for guess in ("0000", "0001", "0002"):
            tap_card(k)
            enter_pin(k, guess)
        assert k.state.notice.reason is Reason.PIN_LOCKED
    finally:
        k.close()
    k = sip2_kiosk(tmp_path, clock, ils)
    try:
        login(k)
        assert k.state.screen == "error" and k.state.notice.reason is Reason.PIN_LOCKED
    finally:
        k.close()


def test_a_right_pin_offline_clears_earlier_wrong_ones(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)
    try:
        seen_online_then_offline(k, ils)
        for _ in range(3):  # the owner mistypes twice a day, and gets it right the third time
            tap_card(k)
            enter_pin(k, "4321")
            enter_pin(k, "4231")
            enter_pin(k, "1234")
            assert k.state.screen == "menu" and k.state.member.offline
            k.tap("logout")
            clock.advance(3600)
    finally:
        k.close()


def test_a_lockout_with_an_end_ends_by_the_monotonic_clock_not_the_wall(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils, pin_tries=2, pin_lockout_s=900)
    try:
        seen_online_then_offline(k, ils)
        tap_card(k)
        enter_pin(k, "0000")
        enter_pin(k, "0001")
        assert k.state.screen == "error" and k.state.notice.reason is Reason.PIN_LOCKED
        k.tap("confirm")
        clock.set_wall(clock.now() + dt.timedelta(hours=2))  # the wall clock jumps: no matter
        login(k)
        assert k.state.screen == "error" and k.state.notice.reason is Reason.PIN_LOCKED
        k.tap("confirm")
        clock.advance(900)
        login(k)
        assert k.state.screen == "menu" and k.state.member.offline
    finally:
        k.close()


def test_online_the_library_alone_judges_pins(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)
    try:
        login(k)
        k.tap("logout")
        for guess in ("0000", "0001", "0002", "0003"):  # wrong PINs while the library answers
            tap_card(k)
            enter_pin(k, guess)
            k.tap("confirm")
        ils.faults.down = True
        login(k)  # are no count against the owner offline
        assert k.state.screen == "menu" and k.state.member.offline
    finally:
        k.close()


# -- a database from before

def test_loans_of_a_version_5_database_count_as_their_times_said(tmp_path, clock):
    path = tmp_path / "kiosk.db"
    conn = sqlite3.connect(path)
    db = sqlite_utils.Database(conn)
    for migration in MIGRATIONS[:5]:
        migration(db)
    conn.execute("PRAGMA user_version=5")
    cached = clock.now()
    db["member_cache"].insert({"member_key": "m1", "loans_here": 2, "loans_network": 2,
                               "cached_at": cached.isoformat()})
    hour = dt.timedelta(hours=1)
    for item, at, event in (("EM0000000040", cached - hour, None),  # counted by the library
                            ("EM0000000041", cached - hour, "e-1"),  # lent offline, still queued
                            ("EM0000000042", cached + hour, None)):  # lent after the login
        db["loans"].insert({"item": item, "member_id": "", "member_key": "m1", "loaned_at": at.isoformat(),
                            "event_id": event})
    db["outbox"].insert({"event_id": "e-1", "kind": "checkout", "item": "EM0000000041", "member_key": "m1",
                         "payload": "{}", "created_at": (cached - hour).isoformat(), "clock_synced": 1,
                         "boot_id": "b", "state": "pending", "attempts": 0})
    conn.commit()
    conn.close()
    with Store(path, clock=clock) as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.uncounted_loans("m1") == 2
