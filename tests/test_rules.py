import datetime as dt

import pytest

from kiosk.rules import Policy, Reason, Standing, borrow_refusal, due_date, with_one_more_loan

TODAY = dt.date(2026, 11, 2)
POLICY = Policy()


def member(**kw):
    return Standing(member_id="11110100000001", name="김민준", expires=dt.date(2028, 1, 1), **kw)


def reason(m, policy=POLICY):
    why = borrow_refusal(m, policy, TODAY)
    return why.reason if why else None


def test_good_member_may_borrow():
    assert reason(member()) is None


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({"blocked": True}, Reason.BLOCKED),
        ({"card_lost": True}, Reason.CARD_LOST),
        ({"fines_won": 500}, Reason.FINES),
        ({"suspended_until": TODAY}, Reason.SUSPENDED),
        ({"overdue": 1}, Reason.OVERDUE),
        ({"loans_here": 5, "loans_network": 5}, Reason.LIBRARY_LIMIT),
        ({"loans_here": 1, "loans_network": 30}, Reason.NETWORK_LIMIT),
    ],
)
def test_refusals_name_their_reason(kw, expected):
    assert reason(member(**kw)) is expected


def test_expired_member():
    why = borrow_refusal(
        Standing(member_id="1", name="x", expires=TODAY - dt.timedelta(days=1)), POLICY, TODAY
    )
    assert why.reason is Reason.EXPIRED
    assert why.detail("date") == "2026-11-01"


def test_expiring_today_may_still_borrow():
    assert borrow_refusal(Standing(member_id="1", name="x", expires=TODAY), POLICY, TODAY) is None


def test_suspension_ended_yesterday():
    assert reason(member(suspended_until=TODAY - dt.timedelta(days=1))) is None


def test_limits_are_configurable():
    assert reason(member(loans_here=5, loans_network=5), Policy(library_limit=6)) is None
    assert reason(member(loans_here=1, loans_network=20), Policy(network_limit=20)) is Reason.NETWORK_LIMIT
    assert reason(member(fines_won=500), Policy(fine_limit_won=1000)) is None
    assert reason(member(overdue=2), Policy(block_on_overdue=False)) is None


def test_limit_refusal_says_the_limit():
    why = borrow_refusal(member(loans_here=5, loans_network=5), POLICY, TODAY)
    assert why.detail("limit") == "5"


def test_fines_refusal_says_the_amount():
    assert borrow_refusal(member(fines_won=3500), POLICY, TODAY).detail("amount") == "3500"


def test_one_more_loan_counts_everywhere():
    m = with_one_more_loan(member(loans_here=4, loans_network=10))
    assert (m.loans_here, m.loans_network) == (5, 11)
    assert reason(m) is Reason.LIBRARY_LIMIT


def test_due_date():
    assert due_date(TODAY, POLICY) == dt.date(2026, 11, 16)
    assert due_date(TODAY, Policy(loan_days=7)) == dt.date(2026, 11, 9)
