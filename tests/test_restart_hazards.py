"""What a kiosk that dies mid-way (a crash, a power cut) must still get right once it starts again:
what the library did meanwhile, or what the kiosk could not write down, is found and set right.
The kiosk runs against the demo ILS over loopback; a crash is an exception nothing catches."""

import datetime as dt
from contextlib import closing

import pytest

from kiosk.clock import FakeClock
from steps import choose, ils_loans, ils_log, login, open_and_close, sip2_kiosk
from sync.demo_ils import HeldRequest
from sync.sip2.client import OutcomeUnknown
from test_offline import GOOD
from test_replay_hazards import (borrow_if_offered, empty_locker_1, let_land, next_boot, offered,
                                 phantom_loan_then_power_cut, start_return, started_before_the_library_answers)


class Crash(BaseException):
    """The process dies (SIGKILL, out of memory, a driver's segfault): nothing after this runs."""


def crash_while_a_checkout_is_unanswered(k, ils, monkeypatch) -> HeldRequest:
    """Member 1 borrows EM0000000003; the library sits on the checkout past the kiosk's timeout
    and the kiosk dies then. Returns the held checkout, for the library to carry out later."""
    login(k)
    held = HeldRequest()
    ils.faults.hold_next = held
    real = k.library.client.checkout

    def die_while_unanswered(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        except OutcomeUnknown:
            raise Crash from None

    monkeypatch.setattr(k.library.client, "checkout", die_while_unanswered)
    with pytest.raises(Crash):
        choose(k, "EM0000000003")
    return held


def power_cut_while_a_checkout_is_unanswered(tmp_path, clock, ils, monkeypatch) -> tuple[HeldRequest, FakeClock]:
    """The same, and the power cut also lost the kiosk's note of the unanswered checkout (written
    without waiting for the disk). The Pi boots again and is up 15 s when the kiosk starts: the
    locker audit is due once a checkout sent before the cut could have landed. Returns the held
    checkout and the clock of the new boot."""
    first = sip2_kiosk(tmp_path, clock, ils)
    held = crash_while_a_checkout_is_unanswered(first, ils, monkeypatch)
    with first.store.transaction() as db:  # what the power cut undid: the `asking` note
        db.execute("DELETE FROM door_jobs WHERE state = 'asking'")
    first.power_cut()
    next_boot(monkeypatch)
    return held, FakeClock(clock.now() + dt.timedelta(seconds=20), uptime=15.0)


def test_a_crash_after_a_return_caught_a_hold_still_keeps_the_locker_for_staff(tmp_path, clock, ils,
                                                                                monkeypatch):
    """A return online: the library checks the book in and answers that it is held for another
    member. The kiosk process dies before it has written down that the locker is kept for staff,
    and is restarted in the same boot. After the restart the reserved book is still not offered
    to the next patron."""
    k = sip2_kiosk(tmp_path, clock, ils)
    empty_locker_1(k)
    start_return(k, "EM0000000026")  # on loan to member 3, reserved by member 9

    def die(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(k.store, "hold_for_staff", die)
    with pytest.raises(Crash):
        open_and_close(k, 1)
    assert "EM0000000026" not in ils_loans(ils)  # checked in, the hold caught
    k.power_cut()  # the process is gone; what it wrote stays (same boot)
    with closing(sip2_kiosk(tmp_path, clock, ils)) as again:
        clock.advance(3600)
        again.sync_now()
        assert "EM0000000026" not in offered(again)


def test_a_loan_made_after_a_restart_while_its_checkout_was_unanswered_is_taken_back(tmp_path, clock, ils,
                                                                                       monkeypatch):
    """The kiosk process dies while the library has not yet answered a checkout (a slow server),
    and is restarted at once, in the same boot. The library may carry the checkout out after the
    restart: the loan it then makes, of a book that never left its locker, is taken back once it
    has had time to land, as for any unanswered checkout."""
    first = sip2_kiosk(tmp_path, clock, ils)
    held = crash_while_a_checkout_is_unanswered(first, ils, monkeypatch)
    first.power_cut()  # the dead process's connections go; every write it made stays (same boot)
    with closing(sip2_kiosk(tmp_path, clock, ils)) as again:
        let_land(held)  # the library lends now, after the kiosk has moved on
        assert ils_loans(ils)["EM0000000003"]["patron"] == GOOD
        clock.advance(3600)
        again.sync_now()
        assert "EM0000000003" not in ils_loans(ils)


def test_a_loan_made_after_a_power_cut_while_its_checkout_was_unanswered_is_taken_back(tmp_path, clock, ils,
                                                                                        monkeypatch):
    """The same after a power cut that also lost the kiosk's note of the unanswered checkout
    (written without waiting for the disk): the locker audit at the next start waits until a
    checkout sent just before the cut could have landed, and takes back the loan it made."""
    held, booted = power_cut_while_a_checkout_is_unanswered(tmp_path, clock, ils, monkeypatch)
    with closing(sip2_kiosk(tmp_path, booted, ils)) as again:
        let_land(held)  # the library acts on the checkout it was sitting on
        booted.advance(3600)
        again.sync_now()
        assert "EM0000000003" not in ils_loans(ils)


def test_a_loan_left_from_before_a_power_cut_is_taken_back_before_the_book_is_lent_again(tmp_path, clock, ils,
                                                                                          monkeypatch):
    """A power cut lost the kiosk's note of a checkout the library made (the book never left its
    locker), so the locker audit is due; the library does not answer yet as the kiosk starts
    (the site's router boots slower than the Pi). If the same member borrows that book once the
    library answers, before the audit has reached its locker, the library's earlier loan is
    taken back first and the book lent anew: a fresh loan there, not a renewal of the old one."""
    phantom_loan_then_power_cut(tmp_path, clock, ils, monkeypatch)
    with closing(started_before_the_library_answers(tmp_path, clock, ils)) as again:  # member 1 again
        assert again.store.locker_audit_due()  # the audit waited: no answer at the start
        choose(again, "EM0000000003")
        assert again.state.screen == "open-door"
        open_and_close(again, 3)
        assert again.state.screen == "receipt"
    assert [e["action"] for e in ils_log(ils, "EM0000000003")] == ["checkout", "checkin", "checkout"]
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 0


def test_a_book_asked_for_before_the_audit_is_due_is_not_lent_onto_its_late_checkout(tmp_path, clock, ils,
                                                                                     monkeypatch):
    """The member who stood at the kiosk when the power went (their checkout unanswered, its note
    lost) asks for the same book again as soon as the kiosk is back, before the locker audit is
    due. The library may still carry out the checkout from before the cut: if the book were
    lent now, that checkout would land on the new loan as a renewal. Lent or not, the library's
    loan of it has no renewal."""
    held, booted = power_cut_while_a_checkout_is_unanswered(tmp_path, clock, ils, monkeypatch)
    with closing(sip2_kiosk(tmp_path, booted, ils)) as again:
        assert again.store.locker_audit_pending() and not again.store.locker_audit_due()
        login(again)
        borrow_if_offered(again, "EM0000000003", 3)
        let_land(held)  # the library now acts on the checkout it was sitting on
        loan = ils_loans(ils).get("EM0000000003")
        assert loan is None or loan["renewals"] == 0, f"the late checkout renewed the new loan: {loan}"
