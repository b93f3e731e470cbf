"""The kiosk's online path: the real kiosk, the real SIP2 client, the demo ILS over loopback TCP.

Faults are injected in the demo ILS (silence, a dropped reply, a server that is down), so the
kiosk's own code (client, library backend, shell) runs exactly as it would against a real ILS.
"""

import dataclasses
import logging

import pytest

from kiosk.app import DEMO_SIP_PASSWORD, build, sip2_settings
from kiosk.config import Config, LibrarySection, Sip2Section
from kiosk.rules import Reason
from steps import choose, ils_loans, login, open_and_close, sip2_kiosk

GOOD, FINED, AT_LIMIT = "11110100000001", "11110100000002", "11110100000003"


@pytest.fixture
def kiosk(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils)
    yield k
    k.close()


def test_a_loan_is_made_at_the_ils_before_the_door_opens(kiosk, ils):
    login(kiosk)
    assert kiosk.state.screen == "menu" and kiosk.state.member.name == "김민준"
    choose(kiosk, "EM0000000003")
    assert kiosk.devices.locks.unlocked() == [3]
    assert ils_loans(ils)["EM0000000003"]["patron"] == GOOD
    open_and_close(kiosk, 3)
    assert kiosk.state.screen == "receipt"
    [event] = kiosk.store.outbox()
    assert event["state"] == "delivered"  # never to be sent again: it would become a renewal


def test_the_ils_verdict_at_login_is_shown_with_its_own_words(kiosk):
    login(kiosk, uid="04A1B2C4")  # member 2: unpaid fines
    kiosk.tap("borrow")
    notice = kiosk.state.notice
    assert kiosk.state.screen == "error" and notice.reason is Reason.FINES
    assert notice.detail("amount") == "3500"
    assert notice.detail("message")  # the ILS's screen message travels with the friendly reason


def test_a_refused_checkout_is_explained(kiosk, ils):
    login(kiosk, uid="04A1B2C5")  # member 3: at the per-library limit of 5
    kiosk.tap("borrow")
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason is Reason.LIBRARY_LIMIT
    assert kiosk.state.notice.detail("limit") == "5"


def test_a_wrong_pin_is_refused_by_the_ils(kiosk):
    login(kiosk, pin="9999")
    assert kiosk.state.screen == "pin" and kiosk.state.notice.reason is Reason.WRONG_PIN


def test_a_silent_ils_gets_a_clear_message_and_lends_nothing(kiosk, ils):
    login(kiosk)
    ils.faults.silent = True
    choose(kiosk, "EM0000000003")
    assert kiosk.state.screen == "error"
    assert kiosk.state.notice.reason is Reason.ILS_UNAVAILABLE
    assert kiosk.devices.locks.unlocked() == []
    assert kiosk.store.open_loan("EM0000000003") is None


def test_a_checkout_whose_answer_is_lost_is_taken_back(kiosk, ils, clock):
    login(kiosk)
    ils.faults.drop_after = 10  # the ILS lends, then the reply is cut short
    choose(kiosk, "EM0000000003")
    assert kiosk.state.screen == "error" and kiosk.state.notice.reason is Reason.ILS_UNAVAILABLE
    assert kiosk.devices.locks.unlocked() == []
    # The take-back waits for the checkout to settle (a slow server may act on it late); the book
    # is not offered meanwhile.
    [undo] = kiosk.store.outbox("unknown")
    assert undo["kind"] == "checkin" and "EM0000000003" not in [b.item for b in kiosk.store.shelf()]
    assert kiosk.sync_now().delivered == 0
    clock.advance(60)
    assert kiosk.sync_now().delivered == 1
    assert "EM0000000003" not in ils_loans(ils)  # checked back in
    assert "EM0000000003" in [b.item for b in kiosk.store.shelf()]


def test_an_ils_that_is_down_at_login_is_said_so(kiosk, ils):
    ils.faults.down = True
    login(kiosk)  # a member this kiosk has never seen online: nothing to judge them by
    assert kiosk.state.screen == "menu" and kiosk.state.member.offline
    assert kiosk.status().offline
    kiosk.tap("borrow")
    assert kiosk.state.screen == "error" and kiosk.state.notice.reason is Reason.OFFLINE_NEW_MEMBER


def test_a_return_reaches_the_ils_and_a_reserved_book_goes_to_staff(kiosk, ils):
    login(kiosk)
    choose(kiosk, "EM0000000001")
    open_and_close(kiosk, 1)
    kiosk.tap("logout")
    kiosk.tap("return")
    kiosk.devices.scanner.show("EM0000000026")  # never in this kiosk; on loan, reserved by member 9
    kiosk.pump()
    assert kiosk.state.screen == "open-door"
    open_and_close(kiosk, 1)
    assert kiosk.state.screen == "receipt"
    assert "EM0000000026" not in ils_loans(ils)
    assert kiosk.store.staff_slots()[0]["slot"] == 1
    assert "EM0000000026" not in [line.item for line in kiosk.store.shelf()]


def test_a_return_while_the_ils_is_silent_is_kept_for_later(kiosk, ils):
    login(kiosk)
    choose(kiosk, "EM0000000001")
    open_and_close(kiosk, 1)
    kiosk.tap("logout")
    ils.faults.silent = True
    kiosk.tap("return")
    kiosk.devices.scanner.show("EM0000000001")
    kiosk.pump()
    open_and_close(kiosk, 1)
    assert kiosk.state.screen == "receipt"  # the patron's part is done
    # Sent, unanswered: to be settled with item information (17) before anything is resent.
    assert [e["kind"] for e in kiosk.store.outbox("unknown")] == ["checkin"]
    assert "EM0000000001" in ils_loans(ils)  # the ILS does not know yet
    assert "EM0000000001" not in [line.item for line in kiosk.store.shelf()]  # not lent meanwhile


def test_renewal_from_my_loans(kiosk, ils):
    login(kiosk, uid="04A1B2C5")  # member 3 has five loans
    kiosk.tap("my-loans")
    assert len(kiosk.state.loans) == 5
    first = kiosk.state.loans[0]
    kiosk.tap(f"renew:{first.item}")
    renewed = next(line for line in kiosk.state.loans if line.item == first.item)
    assert renewed.renewed and renewed.due > first.due
    assert ils_loans(ils)[first.item]["renewals"] == 1


def borrow(k, item, slot):
    """The member at the screen borrows `item` from locker `slot` and takes the receipt."""
    choose(k, item)
    assert k.state.screen == "open-door", k.state.notice
    open_and_close(k, slot)
    k.tap("confirm")


def return_book(k, item):
    """A patron brings `item` back into the locker the kiosk opens for it."""
    k.tap("return")
    k.devices.scanner.show(item)
    k.pump()
    open_and_close(k, k.state.job.slot)
    k.tap("confirm")


def renew_with_the_answer_lost(k, ils, clock, item, *, then_after_s):
    """The patron taps renew: the library renews `item`, its answer is cut short and the patron
    is told the library is not answering. `then_after_s` later, the library answering again,
    they tap renew once more."""
    ils.faults.drop_after = 10
    k.tap(f"renew:{item}")
    assert k.state.notice.reason is Reason.ILS_UNAVAILABLE
    assert ils_loans(ils)[item]["renewals"] == 1
    clock.advance(then_after_s)
    k.library.client.next_attempt_at = None
    k.tap(f"renew:{item}")


def test_a_renewal_whose_answer_was_lost_is_not_made_twice(kiosk, ils, clock):
    """The library renewed, its answer never came: the patron, told the library is not
    answering, taps renew again. The kiosk first looks (17): the due date has moved, so the
    renewal is shown as done and no second one is asked for."""
    login(kiosk, uid="04A1B2C5")  # member 3 has five loans
    kiosk.tap("my-loans")
    first = kiosk.state.loans[0]
    renew_with_the_answer_lost(kiosk, ils, clock, first.item, then_after_s=30)
    renewed = next(line for line in kiosk.state.loans if line.item == first.item)
    assert renewed.renewed and renewed.due > first.due
    assert ils_loans(ils)[first.item]["renewals"] == 1  # one renewal asked for, one made


def test_a_renewal_that_was_lost_on_the_way_can_be_asked_for_again_once_settled(kiosk, ils, clock):
    login(kiosk, uid="04A1B2C5")
    kiosk.tap("my-loans")
    first = kiosk.state.loans[0]
    ils.faults.silent = True  # nothing reaches the library's circulation
    kiosk.tap(f"renew:{first.item}")
    ils.faults.reset()
    clock.advance(10)
    kiosk.library.client.next_attempt_at = None
    kiosk.tap(f"renew:{first.item}")  # it might still land: not yet
    assert kiosk.state.notice.reason is Reason.ILS_UNAVAILABLE and ils_loans(ils)[first.item]["renewals"] == 0
    clock.advance(60)
    kiosk.tap(f"renew:{first.item}")  # the due date never moved: it did not happen, so now it is sent
    assert ils_loans(ils)[first.item]["renewals"] == 1


def test_a_renewal_lost_on_the_way_does_not_pass_for_a_renewal_of_a_later_loan(kiosk, ils, clock):
    """Member 1 taps renew, the request is lost on the way, and they leave. The next day they
    bring the book back and borrow it again: a new loan, due later than the old one. Renewing
    that loan renews it at the library; the kiosk does not take the old, unanswered renewal for
    it and say "renewed" without asking."""
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    kiosk.tap("my-loans")
    ils.faults.silent = True  # lost on the way: never carried out
    kiosk.tap("renew:EM0000000003")
    assert kiosk.state.notice.reason is Reason.ILS_UNAVAILABLE
    ils.faults.reset()
    kiosk.tap("logout")
    clock.advance(86400)
    kiosk.library.client.next_attempt_at = None
    return_book(kiosk, "EM0000000003")
    assert "EM0000000003" not in ils_loans(ils)
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    kiosk.tap("my-loans")
    kiosk.tap("renew:EM0000000003")
    assert next(line for line in kiosk.state.loans if line.item == "EM0000000003").renewed
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 1  # shown renewed, and renewed at the library


def test_a_renewal_that_landed_without_moving_the_due_date_is_not_made_twice(kiosk, ils, clock):
    """A book borrowed and renewed the same day keeps its due date at a library that reckons a
    renewal's due date from today (as the demo ILS does, and Koha with RenewalPeriodBase=now).
    When that renewal's answer is lost and the patron taps renew again, the library's due date
    alone cannot tell whether it happened; the patron still gets one renewal, not two."""
    login(kiosk)
    borrow(kiosk, "EM0000000003", 3)
    kiosk.tap("my-loans")
    renew_with_the_answer_lost(kiosk, ils, clock, "EM0000000003", then_after_s=61)
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 1  # one tap that failed, one retry: one renewal


def test_a_renewal_that_landed_is_not_made_twice_when_due_dates_come_in_words(kiosk, ils, clock, monkeypatch):
    """A library whose SIP server writes due dates in its own date format (Koha with dateformat
    "us": 11/30/2026 23:59) has them shown as it wrote them, since the kiosk cannot read them.
    When a renewal's answer is lost and the patron taps renew again, the kiosk still does not
    ask for a second renewal."""
    import sync.demo_ils.circulation as circulation
    from sync.sip2.codec import format_date

    def us_due_dates(when):
        if when is not None and (when.hour, when.minute, when.second) == (23, 59, 59):
            return when.strftime("%m/%d/%Y 23:59")  # a due date (end of day), as Koha writes it
        return format_date(when)

    monkeypatch.setattr(circulation, "format_date", us_due_dates)
    login(kiosk, uid="04A1B2C5")  # member 3 has five loans, due on several days
    kiosk.tap("my-loans")
    first = kiosk.state.loans[0]
    assert first.due is None and first.due_text  # shown in the library's words
    renew_with_the_answer_lost(kiosk, ils, clock, first.item, then_after_s=61)
    assert ils_loans(ils)[first.item]["renewals"] == 1  # one renewal asked for, one made


def test_a_reserved_book_cannot_be_renewed(kiosk):
    login(kiosk, uid="04A1B2C5")
    kiosk.tap("my-loans")
    kiosk.tap("renew:EM0000000026")  # member 9 is waiting for it
    assert kiosk.state.screen == "my-loans"
    assert kiosk.state.notice.reason is Reason.RENEWAL_REFUSED


def test_logout_ends_the_ils_session(kiosk, monkeypatch):
    ended = []
    client = kiosk.library.client
    real = client.end_session
    monkeypatch.setattr(client, "end_session", lambda patron, pin=None: ended.append(real(patron, pin)))
    login(kiosk)
    kiosk.tap("logout")
    assert kiosk.state.screen == "idle"
    assert ended == [True]  # 35 sent, and the ILS confirmed with 36


def test_a_lock_that_does_not_open_takes_the_ils_loan_back(kiosk, ils, monkeypatch):
    from drivers.base import DeviceError

    def jammed(slot):
        raise DeviceError("no answer from the lock board")

    monkeypatch.setattr(kiosk.devices.locks, "unlock", jammed)
    login(kiosk)
    choose(kiosk, "EM0000000003")
    assert kiosk.state.notice.reason is Reason.LOCK_FAULT
    assert "EM0000000003" not in ils_loans(ils)
    assert kiosk.store.slot_contents(3) == "EM0000000003"


def test_a_decision_that_cannot_be_committed_takes_the_ils_loan_back(kiosk, ils, monkeypatch):
    from kiosk.store import StoreError

    def full_disk(job, at):
        raise StoreError("database write failed: disk I/O error")

    monkeypatch.setattr(kiosk.store, "begin_door_job", full_disk)
    login(kiosk)
    choose(kiosk, "EM0000000003")
    assert kiosk.state.notice.reason is Reason.STORE_FAULT
    assert kiosk.devices.locks.unlocked() == []
    assert "EM0000000003" not in ils_loans(ils)


def test_a_power_cut_while_asking_the_ils_is_settled_at_the_next_start(tmp_path, clock, ils, monkeypatch):
    config = Config(library=LibrarySection(backend="sip2", seed="demo"),
                    sip2=Sip2Section(response_timeout_s=0.3, connect_timeout_s=0.3))
    settings = sip2_settings(config, host=ils.address[0], port=ils.address[1], password=DEMO_SIP_PASSWORD)
    first = build(config, clock=clock, db_path=tmp_path / "k.db", sip2=settings)
    first.start()
    login(first)

    class PowerCut(BaseException):
        pass

    real = first.library.client.checkout

    def lend_then_die(*args, **kwargs):
        real(*args, **kwargs)  # the ILS lends...
        raise PowerCut  # ...and the kiosk dies before it hears the answer

    monkeypatch.setattr(first.library.client, "checkout", lend_then_die)
    with pytest.raises(PowerCut):
        choose(first, "EM0000000003")
    assert ils_loans(ils)["EM0000000003"]["patron"] == GOOD
    first.library.client.close()
    first.store.close()
    again = build(config, clock=clock, db_path=tmp_path / "k.db", sip2=settings)
    again.start()
    try:
        assert again.store.asking_door_jobs() == []
        # The library may still be acting on a checkout sent before the cut: the take-back waits
        # for it to land, and the book stays off the shelf meanwhile.
        assert "EM0000000003" not in [line.item for line in again.store.shelf()]
        clock.advance(60)
        again.sync_now()
        assert "EM0000000003" not in ils_loans(ils)  # taken back: the book never left
        assert "EM0000000003" in [line.item for line in again.store.shelf()]
    finally:
        again.close()


def test_a_book_reserved_for_someone_else_is_refused_as_such(kiosk, ils, clock):
    from sync.demo_ils import place_hold

    place_hold(ils.db_path, "EM0000000003", "11110100000009", clock=clock)
    login(kiosk)
    choose(kiosk, "EM0000000003")
    assert kiosk.state.screen == "error" and kiosk.state.notice.reason is Reason.ON_HOLD
    assert kiosk.state.notice.detail("message")
    assert kiosk.devices.locks.unlocked() == []


def test_a_return_the_ils_refuses_because_it_has_the_book_back_is_settled(kiosk, ils):
    login(kiosk)
    choose(kiosk, "EM0000000001")
    open_and_close(kiosk, 1)
    kiosk.tap("logout")
    kiosk.library.client.checkin("EM0000000001")  # someone checked it in at the desk meanwhile
    kiosk.tap("return")
    kiosk.devices.scanner.show("EM0000000001")
    kiosk.pump()
    open_and_close(kiosk, 1)
    assert kiosk.state.screen == "receipt"  # the patron's part is done
    [event] = kiosk.store.outbox("unknown")  # refused: left to the worker to look into
    assert kiosk.sync_now().delivered == 1  # 17: the library has it back; nothing for staff
    assert kiosk.store.outbox("dead") == [] and "EM0000000001" not in ils_loans(ils)


def test_my_loans_with_the_ils_silent_says_so_instead_of_an_empty_list(kiosk, ils):
    login(kiosk)
    ils.faults.silent = True
    kiosk.tap("my-loans")
    assert kiosk.state.screen == "error" and kiosk.state.notice.reason is Reason.ILS_UNAVAILABLE


def test_login_works_when_pins_are_not_sent_with_every_request(tmp_path, clock, ils):
    config = Config(library=LibrarySection(backend="sip2", seed="demo"),
                    sip2=Sip2Section(response_timeout_s=0.3, connect_timeout_s=0.3, send_patron_pin=False))
    settings = sip2_settings(config, host=ils.address[0], port=ils.address[1], password=DEMO_SIP_PASSWORD)
    k = build(config, clock=clock, db_path=tmp_path / "k.db", sip2=settings)
    k.start()
    try:
        login(k)
        assert k.state.screen == "menu"
        k.tap("logout")
        login(k, pin="9999")
        assert k.state.screen == "pin" and k.state.notice.reason is Reason.WRONG_PIN
    finally:
        k.close()


def test_nothing_private_reaches_the_logs(kiosk, ils, caplog):
    caplog.set_level(logging.DEBUG)
    login(kiosk)
    choose(kiosk, "EM0000000001")
    open_and_close(kiosk, 1)
    kiosk.tap("confirm")
    kiosk.tap("my-loans")
    kiosk.tap("renew:EM0000000001")
    kiosk.tap("logout")
    kiosk.tap("return")
    kiosk.devices.scanner.show("EM0000000026")  # a return with an alert
    kiosk.pump()
    open_and_close(kiosk, 1)
    login(kiosk)
    ils.faults.drop_after = 10  # a lost answer and its reconciliation
    choose(kiosk, "EM0000000003")
    ils.faults.silent = True
    choose(kiosk, "EM0000000003")
    text = caplog.text
    for secret in (GOOD, "1234", DEMO_SIP_PASSWORD, "04A1B2C3"):
        assert secret not in text


def test_sip2_settings_follow_the_config():
    config = Config(sip2=dataclasses.replace(Sip2Section(), terminator="CRLF", encoding="cp949",
                                             checksum_receive="either", error_detection=False))
    settings = sip2_settings(config, password="x")
    assert settings.dialect.terminator == "\r\n" and settings.dialect.encoding == "cp949"
    assert settings.dialect.checksum_mode == "either" and not settings.dialect.error_detection
