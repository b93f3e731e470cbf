"""What the kiosk makes of real servers' answers (sync/ils.py over the SIP2 client, loopback):
due dates in UTC or in words it cannot read, the 책이음 network limit behind SIP2's one limit
flag, and a patron's own hold, which Koha counts with everyone else's."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from kiosk.clock import KST, FakeClock
from kiosk.rules import Policy, Reason
from steps import login, sip2_kiosk
from sync.ils import Sip2Library
from test_sip2_client import DATE, ScriptedServer, echo, make_client

MEMBER = "11110100000003"
ITEM = "EM0000000003"


def checkout_reply(due_text):
    return echo(f"121NNY{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJTitle|AH{due_text}|")


def library(client, clock):
    return Sip2Library(client, clock=clock, policy=Policy(loan_days=14))


UTC_DUE_DATES = [
    # Seoul: due 2026-12-07 08:00 KST, sent as 2026-12-06 23:00 UTC
    (dt.datetime(2026, 11, 2, 10, 0, tzinfo=KST), "20261206   Z230000", dt.date(2026, 12, 7)),
    # a kiosk west of Greenwich ([kiosk] timezone): due at the end of 12-06 there, 12-07 in UTC
    (dt.datetime(2026, 11, 2, 10, 0, tzinfo=ZoneInfo("America/New_York")), "20261207   Z045959",
     dt.date(2026, 12, 6)),
]


@pytest.mark.parametrize("now, due_text, local_due", UTC_DUE_DATES)
def test_a_due_date_sent_in_utc_is_the_kiosks_calendar_day(now, due_text, local_due):
    clock = FakeClock(now)
    info = echo(f"64              000{DATE}000000000001000000000000AO111101|AA{MEMBER}|AEName|BLY|AU{ITEM}|")
    item = echo(f"18040001{DATE}AB{ITEM}|AJTitle|AH{due_text}|")
    with ScriptedServer(checkout_reply(due_text), info, item) as server, make_client(server, clock) as client:
        assert library(client, clock).check_out(MEMBER, ITEM).due == local_due  # the receipt
        [line] = library(client, clock).loans(MEMBER)  # my loans
    assert line.due == local_due


@pytest.mark.parametrize("due_text, due", [("06.12.2026", dt.date(2026, 12, 6)),  # Koha's dmydot format
                                            ("06.12.2026 23:59", dt.date(2026, 12, 6)),
                                            ("2026-12-06T23:59:59+09:00", dt.date(2026, 12, 6))])
def test_due_dates_in_other_servers_formats_are_read(due_text, due):
    clock = FakeClock()
    with ScriptedServer(checkout_reply(due_text)) as server, make_client(server, clock) as client:
        answer = library(client, clock).check_out(MEMBER, ITEM)
    assert (answer.due, answer.due_text) == (due, "")


def test_a_due_date_in_words_the_kiosk_cannot_read_reaches_the_patron_in_those_words():
    clock = FakeClock()  # 12/06/2026 is the 6th of December or the 12th of June, by the library's format
    with ScriptedServer(checkout_reply("12/06/2026")) as server, make_client(server, clock) as client:
        answer = library(client, clock).check_out(MEMBER, ITEM)
    assert answer.refusal is None and answer.committed
    assert answer.due_text == "12/06/2026"  # shown on the receipt instead of a date of the kiosk's making
    assert answer.due == clock.now().date() + dt.timedelta(days=14)  # the kiosk's own records


REFUSED = echo(f"120NUN{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJTitle|AH|"
               "AFPatron has reached the maximum number of checkouts|BLY|")
AT_THE_LIMIT = echo(f"64Y    Y        000{DATE}000100000005000000000000AO111101|AA{MEMBER}|AEName|BLY|CB5|")
NO_FLAGS = echo(f"64              000{DATE}000100000002000000000000AO111101|AA{MEMBER}|AEName|BLY|")


@pytest.mark.parametrize("item_info, patron_info", [
    # Koha: CF counts every hold, the patron's own too, and names nobody
    (echo(f"18030001{DATE}AB{ITEM}|AJTitle|CF1|"), AT_THE_LIMIT),
    # the server names whom the hold is for (CY): this very patron
    (echo(f"18030001{DATE}AB{ITEM}|AJTitle|CF1|CY{MEMBER}|"), NO_FLAGS),
], ids=["koha-counts-the-patrons-own-hold", "the-hold-is-the-patrons-own"])
def test_a_patron_who_reserved_the_book_is_not_told_someone_else_did(item_info, patron_info):
    clock = FakeClock()
    with ScriptedServer(REFUSED, item_info, patron_info) as server, make_client(server, clock) as client:
        answer = library(client, clock).check_out(MEMBER, ITEM)
    assert answer.refusal.reason is Reason.LIBRARY_LIMIT, answer.refusal
    assert answer.refusal.detail("message") == "Patron has reached the maximum number of checkouts"


def test_a_book_someone_else_reserved_is_still_refused_as_such():
    clock = FakeClock()
    held = echo(f"18080001{DATE}AB{ITEM}|AJTitle|CF1|CY11110100000009|")
    with ScriptedServer(REFUSED, held, NO_FLAGS) as server, make_client(server, clock) as client:
        answer = library(client, clock).check_out(MEMBER, ITEM)
    assert answer.refusal.reason is Reason.ON_HOLD


def test_a_member_at_the_network_limit_is_told_so_not_that_this_library_is_full(tmp_path, clock, ils):
    kiosk = sip2_kiosk(tmp_path, clock, ils)
    try:
        login(kiosk, uid="04A1B2C9")  # demo member 7: 30 loans at other 책이음 libraries, none here
        kiosk.tap("borrow")
        assert kiosk.state.screen == "error"
        assert kiosk.state.notice.reason is Reason.NETWORK_LIMIT
        assert kiosk.state.notice.detail("limit") == "30"
    finally:
        kiosk.close()
