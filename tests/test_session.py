"""The session state machine, driven as lists of events: no I/O anywhere."""

import datetime as dt
from dataclasses import replace

import pytest

from kiosk import session as s
from kiosk.rules import Reason, Standing, refusal

TODAY = dt.date(2026, 11, 2)
GOOD = Standing(member_id="11110100000001", name="김민준", expires=dt.date(2028, 1, 1))
UID = bytes.fromhex("04A1B2C3")
SHELF = (
    s.ShelfItem(1, "EM0000000001", "채식주의자", "한강"),
    s.ShelfItem(3, "EM0000000003", "작별하지 않는다", "한강"),
)


class Run:
    """Feeds events at a clock the test controls; records every effect."""

    def __init__(self, settings: s.Settings = s.Settings()) -> None:
        self.t = 0.0
        self.state = s.initial(settings, self.t)
        self.effects: list[s.Effect] = []

    def __call__(self, event_type, **kw):
        self.state, effects = s.step(self.state, event_type(at=self.t, **kw))
        self.effects.extend(effects)
        return effects

    def wait(self, seconds: float):
        out = []
        for _ in range(int(seconds)):
            self.t += 1
            out.extend(self(s.Tick))
        return out

    @property
    def screen(self):
        return self.state.screen


def logged_in(member: Standing = GOOD, settings: s.Settings = s.Settings()) -> Run:
    run = Run(settings)
    assert run(s.CardTapped, uid=UID) == (s.LookUpMember("04A1B2C3", "card"),)
    run(s.MemberFound, member=member, today=TODAY)
    assert run.screen == "pin"
    for digit in "1234":
        run(s.Tap, button=f"pin:{digit}")
    assert run(s.Tap, button="pin-ok") == (s.VerifyPin("04A1B2C3", "1234"),)
    run(s.PinAccepted, member=member, today=TODAY)
    assert run.screen == "menu"
    return run


def at_borrow(member: Standing = GOOD) -> Run:
    run = logged_in(member)
    assert run(s.Tap, button="borrow") == (s.LoadShelf(),)
    run(s.ShelfLoaded, shelf=SHELF)
    assert run.screen == "borrow"
    return run


def door_open_for_loan() -> tuple[Run, s.DoorJob]:
    run = at_borrow()
    run(s.Tap, button="item:EM0000000003")
    assert run(s.Tap, button="confirm") == (s.CheckOut(GOOD.member_id, "EM0000000003", 3),)
    job = s.DoorJob("j1", "loan", 3, "EM0000000003", "작별하지 않는다", GOOD.member_id, TODAY + dt.timedelta(days=14))
    assert run(s.DoorJobReady, job=job) == (s.CommitDoorJob(job),)
    assert run.screen == "borrow"  # nothing opens before the decision is on disk
    assert run(s.DoorJobCommitted, job=job) == (s.Unlock(3),)
    assert run.screen == "open-door"
    return run, job


# --------------------------------------------------------------------------- login


def test_card_then_pin_then_menu():
    run = logged_in()
    assert run.state.member == GOOD
    assert run.state.pin == ""  # the PIN is not kept once it is used


def test_phone_barcode_logs_in_like_a_card():
    run = Run()
    assert run(s.BarcodeScanned, text="11110100000001") == (s.LookUpMember("11110100000001", "barcode"),)
    run(s.MemberFound, member=GOOD, today=TODAY)
    assert run.screen == "pin"


def test_no_pin_when_the_config_says_so():
    run = Run(s.Settings(require_pin=False))
    run(s.CardTapped, uid=UID)
    run(s.MemberFound, member=GOOD, today=TODAY)
    assert run.screen == "menu"


def test_unknown_card_shows_error_then_idle():
    run = Run()
    run(s.CardTapped, uid=bytes.fromhex("DEADBEEF"))
    run(s.Refused, refusal=refusal(Reason.UNKNOWN_CARD))
    assert run.screen == "error"
    assert run.state.notice.reason is Reason.UNKNOWN_CARD
    run(s.Tap, button="confirm")
    assert run.screen == "idle"


def test_a_new_card_works_on_the_error_screen():
    run = Run()
    run(s.CardTapped, uid=bytes.fromhex("DEADBEEF"))
    run(s.Refused, refusal=refusal(Reason.UNKNOWN_CARD))
    assert run(s.CardTapped, uid=UID) == (s.LookUpMember("04A1B2C3", "card"),)


def test_unknown_barcode_on_idle():
    run = Run()
    assert run(s.BarcodeScanned, text="hello world") == ()
    assert run.screen == "error"
    assert run.state.notice.reason is Reason.UNKNOWN_BARCODE


def test_isbn_asks_for_the_library_label():
    run = Run()
    run(s.BarcodeScanned, text="9788936434120")
    assert run.state.notice.reason is Reason.ISBN_NOT_COPY


def test_wrong_pin_counts_tries_then_locks_out():
    run = Run()
    run(s.CardTapped, uid=UID)
    run(s.MemberFound, member=GOOD, today=TODAY)
    for attempt in (1, 2):
        for digit in "9999":
            run(s.Tap, button=f"pin:{digit}")
        run(s.Tap, button="pin-ok")
        run(s.PinRejected)
        assert run.screen == "pin"
        assert run.state.pin == ""
        assert run.state.notice.detail("left") == str(3 - attempt)
    for digit in "9999":
        run(s.Tap, button=f"pin:{digit}")
    run(s.Tap, button="pin-ok")
    run(s.PinRejected)
    assert run.screen == "error"
    assert run.state.notice.reason is Reason.PIN_LOCKED
    assert run.state.member is None and run.state.credential is None


def test_pin_ok_needs_enough_digits_and_keypad_is_bounded():
    run = Run()
    run(s.CardTapped, uid=UID)
    run(s.MemberFound, member=GOOD, today=TODAY)
    run(s.Tap, button="pin:1")
    assert run(s.Tap, button="pin-ok") == ()
    for _ in range(20):
        run(s.Tap, button="pin:7")
    assert len(run.state.pin) == 8
    run(s.Tap, button="pin-del")
    assert len(run.state.pin) == 7
    run(s.Tap, button="cancel")
    assert run.screen == "idle" and run.state.pin == ""


def test_taps_are_ignored_while_waiting_for_an_answer():
    run = Run()
    run(s.CardTapped, uid=UID)
    assert run.state.busy
    assert run(s.CardTapped, uid=UID) == ()  # a second tap while looking up does nothing


# --------------------------------------------------------------------------- borrowing


def test_borrow_full_flow_records_only_after_the_door_closes():
    run, job = door_open_for_loan()
    assert run(s.DoorOpened, slot=3) == (s.NoteDoorOpened(job),)
    assert run.screen == "open-door"
    assert run(s.DoorClosed, slot=3) == (s.Lock(3), s.RecordDoorJob(job))
    assert run.screen == "open-door"  # not a receipt until the loan is on disk
    run(s.Recorded, job=job)
    assert run.screen == "receipt"
    assert run.state.receipt == s.Receipt("loan", "EM0000000003", "작별하지 않는다", 3, job.due)
    assert run.state.member.loans_here == 1
    run(s.Tap, button="confirm")
    assert run.screen == "menu"


def test_confirm_needs_a_selection():
    run = at_borrow()
    assert run(s.Tap, button="confirm") == ()
    assert run(s.Tap, button="item:EM9999999999") == ()
    assert run.state.selected is None


def test_refused_member_reaches_menu_but_not_borrow():
    blocked = replace(GOOD, blocked=True, fines_won=3500)
    run = logged_in(blocked)
    assert run(s.Tap, button="borrow") == ()
    assert run.screen == "error"
    assert run.state.notice.reason is Reason.BLOCKED
    run(s.Tap, button="confirm")
    assert run.screen == "menu"


def test_member_at_library_limit():
    run = logged_in(replace(GOOD, loans_here=5, loans_network=5))
    run(s.Tap, button="borrow")
    assert run.state.notice.reason is Reason.LIBRARY_LIMIT


def test_fifth_loan_of_a_visit_hits_the_limit():
    run = logged_in(replace(GOOD, loans_here=4, loans_network=4))
    run(s.Tap, button="borrow")
    run(s.ShelfLoaded, shelf=SHELF)
    run(s.Tap, button="item:EM0000000001")
    run(s.Tap, button="confirm")
    job = s.DoorJob("j", "loan", 1, "EM0000000001", "채식주의자", GOOD.member_id, TODAY)
    run(s.DoorJobReady, job=job)
    run(s.DoorJobCommitted, job=job)
    run(s.DoorOpened, slot=1)
    run(s.DoorClosed, slot=1)
    run(s.Recorded, job=job)
    run(s.Tap, button="confirm")
    run(s.Tap, button="borrow")
    assert run.state.notice.reason is Reason.LIBRARY_LIMIT


def test_library_refusal_at_checkout():
    run = at_borrow()
    run(s.Tap, button="item:EM0000000003")
    run(s.Tap, button="confirm")
    run(s.Refused, refusal=refusal(Reason.ILS_REFUSED, message="대출 불가 자료"))
    assert run.screen == "error"
    assert run.state.notice.detail("message") == "대출 불가 자료"
    assert not any(isinstance(e, s.Unlock) for e in run.effects)


def test_store_failure_before_unlock_never_unlocks():
    run = at_borrow()
    run(s.Tap, button="item:EM0000000003")
    run(s.Tap, button="confirm")
    job = s.DoorJob("j", "loan", 3, "EM0000000003", "t", GOOD.member_id, TODAY)
    run(s.DoorJobReady, job=job)
    run(s.Refused, refusal=refusal(Reason.STORE_FAULT))
    assert run.screen == "error"
    assert run.state.job is None
    assert not any(isinstance(e, s.Unlock) for e in run.effects)


# --------------------------------------------------------------------------- doors


def test_door_never_opened_cancels_and_relocks():
    run, job = door_open_for_loan()
    assert run.wait(29) == []
    effects = run.wait(1)
    assert effects == [s.Lock(3), s.CancelDoorJob(job, "door-timeout")]
    assert run.screen == "error"
    assert run.state.notice.reason is Reason.DOOR_TIMEOUT
    assert not any(isinstance(e, s.RecordDoorJob) for e in run.effects)
    run(s.Tap, button="confirm")
    assert run.screen == "menu"


def test_door_timeout_is_configurable():
    run = logged_in(settings=s.Settings(door_open_timeout_s=5))
    run(s.Tap, button="borrow")
    run(s.ShelfLoaded, shelf=SHELF)
    run(s.Tap, button="item:EM0000000001")
    run(s.Tap, button="confirm")
    job = s.DoorJob("j", "loan", 1, "EM0000000001", "t", GOOD.member_id, TODAY)
    run(s.DoorJobReady, job=job)
    run(s.DoorJobCommitted, job=job)
    assert s.CancelDoorJob(job, "door-timeout") in run.wait(5)


def test_forced_door_raises_an_alarm_and_changes_nothing_else():
    run = logged_in()
    before = run.state
    assert run(s.DoorOpened, slot=7) == (s.RaiseAlarm("forced-open", 7),)
    assert run.state == before


def test_other_door_opening_during_a_job_is_forced():
    run, job = door_open_for_loan()
    assert run(s.DoorOpened, slot=4) == (s.RaiseAlarm("forced-open", 4),)
    assert run.state.door == "unlocked"


def test_door_left_open_alarms_once_and_waits_for_the_close():
    run, job = door_open_for_loan()
    run(s.DoorOpened, slot=3)
    effects = run.wait(200)
    assert effects == [s.RaiseAlarm("door-left-open", 3)]
    assert run.state.door_warned and run.screen == "open-door"
    run(s.DoorClosed, slot=3)
    run(s.Recorded, job=job)
    assert run.screen == "receipt"


def test_no_inactivity_logout_while_a_door_is_open():
    run, job = door_open_for_loan()
    run(s.DoorOpened, slot=3)
    run.wait(300)
    assert run.state.member is not None


def test_taps_during_door_do_not_leave_the_screen():
    run, job = door_open_for_loan()
    run(s.Tap, button="logout")
    run(s.Tap, button="cancel")
    assert run.screen == "open-door"


def test_record_failure_shows_error_not_receipt():
    run, job = door_open_for_loan()
    run(s.DoorOpened, slot=3)
    run(s.DoorClosed, slot=3)
    run(s.Refused, refusal=refusal(Reason.STORE_FAULT))
    assert run.screen == "error" and run.state.receipt is None and run.state.job is None


# --------------------------------------------------------------------------- returns


def test_return_without_login():
    run = Run()
    run(s.Tap, button="return")
    assert run.screen == "return"
    assert run(s.BarcodeScanned, text="EM0000000003") == (s.PrepareReturn("EM0000000003", None),)
    job = s.DoorJob("r1", "return", 5, "EM0000000003", "작별하지 않는다")
    assert run(s.DoorJobReady, job=job) == (s.CommitDoorJob(job),)
    assert run(s.DoorJobCommitted, job=job) == (s.Unlock(5),)
    run(s.DoorOpened, slot=5)
    assert run(s.DoorClosed, slot=5) == (s.Lock(5), s.RecordDoorJob(job))
    run(s.Recorded, job=job)
    assert run.screen == "receipt" and run.state.receipt.kind == "return"
    run(s.Tap, button="confirm")
    assert run.screen == "idle"


def test_scanning_a_book_on_idle_starts_a_return():
    run = Run()
    assert run(s.BarcodeScanned, text="em0000000003") == (s.PrepareReturn("EM0000000003", None),)
    assert run.screen == "return"


def test_return_refused_shows_why():
    run = Run()
    run(s.Tap, button="return")
    run(s.BarcodeScanned, text="EM0000000999")
    run(s.Refused, refusal=refusal(Reason.NOT_OUR_ITEM))
    assert run.screen == "error" and run.state.notice.reason is Reason.NOT_OUR_ITEM


def test_return_while_logged_in_goes_back_to_menu():
    run = logged_in()
    run(s.Tap, button="return")
    assert run(s.BarcodeScanned, text="EM0000000001") == (s.PrepareReturn("EM0000000001", GOOD.member_id),)
    job = s.DoorJob("r", "return", 2, "EM0000000001", "t", GOOD.member_id)
    run(s.DoorJobReady, job=job)
    run(s.DoorJobCommitted, job=job)
    run(s.DoorOpened, slot=2)
    run(s.DoorClosed, slot=2)
    run(s.Recorded, job=job)
    run(s.Tap, button="confirm")
    assert run.screen == "menu"


# --------------------------------------------------------------------------- my loans, logout, timers


def test_my_loans():
    run = logged_in()
    assert run(s.Tap, button="my-loans") == (s.LoadLoans(GOOD.member_id),)
    loans = (s.LoanLine("EM0000000025", "바깥은 여름", dt.date(2026, 11, 10)),)
    run(s.LoansLoaded, loans=loans)
    assert run.screen == "my-loans" and run.state.loans == loans
    run(s.Tap, button="cancel")
    assert run.screen == "menu"


def test_logout_ends_the_session():
    run = logged_in()
    assert run(s.Tap, button="logout") == (s.EndSession(GOOD.member_id),)
    assert run.screen == "idle" and run.state.member is None


def test_inactivity_warns_then_logs_out():
    run = logged_in()
    run.wait(74)
    assert not run.state.warned
    run.wait(1)
    assert run.state.warned and run.screen == "menu"
    run.wait(14)
    assert run.state.member is not None
    assert run.wait(1) == [s.EndSession(GOOD.member_id)]
    assert run.screen == "idle" and run.state.member is None


def test_any_touch_dismisses_the_warning():
    run = logged_in()
    run.wait(80)
    assert run.state.warned
    run(s.Tap, button="stay")
    assert not run.state.warned
    run.wait(80)
    assert run.state.member is not None


def test_receipt_closes_by_itself():
    run, job = door_open_for_loan()
    run(s.DoorOpened, slot=3)
    run(s.DoorClosed, slot=3)
    run(s.Recorded, job=job)
    run.wait(20)
    assert run.screen == "menu"


def test_error_after_unknown_card_closes_by_itself():
    run = Run()
    run(s.CardTapped, uid=UID)
    run(s.Refused, refusal=refusal(Reason.UNKNOWN_CARD))
    run.wait(20)
    assert run.screen == "idle"


def test_language_toggle_and_reset_at_logout():
    run = logged_in()
    run(s.Tap, button="lang")
    assert run.state.lang == "en"
    run(s.Tap, button="logout")
    assert run.state.lang == "ko"


def test_idle_has_no_timeout():
    run = Run()
    assert run.wait(1000) == []
    assert run.screen == "idle"


@pytest.mark.parametrize("button", ["borrow", "my-loans", "logout", "confirm", "pin:1", "item:EM0000000001"])
def test_idle_ignores_buttons_it_does_not_show(button):
    run = Run()
    assert run(s.Tap, button=button) == ()
    assert run.screen == "idle"


# -- renewals from my loans

LOANS = (
    s.LoanLine("EM0000000025", "토지 1", dt.date(2026, 11, 10)),
    s.LoanLine("EM0000000030", "광장", dt.date(2026, 10, 20), overdue=True),
)


def at_my_loans() -> Run:
    run = logged_in()
    assert run(s.Tap, button="my-loans") == (s.LoadLoans(GOOD.member_id),)
    run(s.LoansLoaded, loans=LOANS)
    return run


def test_renewing_a_loan_asks_the_library_and_shows_the_new_due_date():
    run = at_my_loans()
    assert run(s.Tap, button="renew:EM0000000025") == (s.Renew(GOOD.member_id, "EM0000000025"),)
    run(s.Renewed, item="EM0000000025", due=dt.date(2026, 11, 24))
    line = run.state.loans[0]
    assert (line.due, line.renewed, run.screen) == (dt.date(2026, 11, 24), True, "my-loans")


def test_an_overdue_or_unknown_loan_offers_no_renewal():
    run = at_my_loans()
    assert run(s.Tap, button="renew:EM0000000030") == ()
    assert run(s.Tap, button="renew:EM0000000999") == ()


def test_a_refused_renewal_stays_on_my_loans_and_says_why():
    run = at_my_loans()
    run(s.Tap, button="renew:EM0000000025")
    run(s.Refused, refusal=refusal(Reason.RENEWAL_REFUSED, message="예약된 자료입니다"))
    assert run.screen == "my-loans"
    assert run.state.notice.reason is Reason.RENEWAL_REFUSED
    assert run.state.loans == LOANS  # nothing changed


def test_the_library_verdict_replaces_the_kiosk_rules_when_the_library_decides():
    # The ILS says no (its own limit): the kiosk shows that, not its own rules.
    ils_no = refusal(Reason.LIBRARY_LIMIT, limit=3, message="대출 한도(3권)를 초과했습니다")
    run = logged_in(replace(GOOD, library_decides=True, verdict=ils_no))
    run(s.Tap, button="borrow")
    assert run.screen == "error" and run.state.notice == ils_no
    # And with no verdict, the kiosk does not second-guess the ILS with its own limits.
    run = logged_in(replace(GOOD, library_decides=True, loans_here=99, fines_won=10**6))
    assert run(s.Tap, button="borrow") == (s.LoadShelf(),)
