"""The demo ILS over real loopback TCP, spoken to with raw sockets and the SIP2 codec."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import socket
import sqlite3
import threading
import time
import unicodedata

import pytest

from kiosk import demo
from kiosk.clock import KST, FakeClock
from sync.demo_ils import (
    HELD_ITEM, HOLD_PATRON, Behaviour, DemoIls, DemoIlsError, Faults, loans_report, place_hold, seed_demo,
    set_item_status,
)
from sync.demo_ils.server import GARBAGE
from sync.sip2.codec import DecodeError, Dialect, FrameReader, Message, decode, encode, make

NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=KST)
TIMEOUT = 0.5  # every socket read in these tests; a healthy answer takes a millisecond
M = {n: m.member_id for n, m in enumerate(demo.MEMBERS, start=1)}
CARD = {n: m.card_uid for n, m in enumerate(demo.MEMBERS, start=1)}
EM = demo.accession
PIN = demo.DEMO_PIN
TITLE = dict((item, title) for item, title, _ in demo.items())


def flags(*positions: int) -> str:
    return "".join("Y" if n in positions else " " for n in range(14))


# -- a tiny client: a socket and the codec


class Raw:
    """A SIP2 conversation by hand: send messages or bytes, read frames or bytes."""

    def __init__(self, address: tuple[str, int], dialect: Dialect = Dialect(), timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.dialect = dialect
        self.reader = FrameReader()
        self.frames: list[bytes] = []
        self.sequence = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, message: Message, *, error_detection: bool | None = None) -> bytes:
        data = encode(message, self.dialect, sequence=self.sequence, error_detection=error_detection)
        self.sequence = (self.sequence + 1) % 10
        self.send(data)
        return data

    def frame(self, timeout: float = TIMEOUT) -> bytes:
        """The next frame (without its terminator)."""
        self.sock.settimeout(timeout)
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.frames += self.reader.feed(data)
        return self.frames.pop(0)

    def raw(self, until: bytes = b"\r", timeout: float = TIMEOUT) -> bytes:
        """Bytes as they come, up to and including `until`."""
        self.sock.settimeout(timeout)
        data = b""
        while not data.endswith(until):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    def ask(self, message: Message, **kw: object) -> Message:
        self.request(message, **kw)  # type: ignore[arg-type]
        return decode(self.frame(), self.dialect)

    def login(self, user: str = "kiosk", password: str = "kiosk-demo") -> Message:
        return self.ask(make("93", [("CN", user), ("CO", password), ("CP", "KIOSK-1")],
                             uid_algorithm="0", pwd_algorithm="0"))

    def hung_up(self, timeout: float = TIMEOUT) -> bool:
        """True when the server has closed the connection (EOF or reset) within the timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


def status() -> Message:
    return make("99", status_code="0", max_print_width="080", protocol_version="2.00")


def patron_status(patron: str, pin: str = "") -> Message:
    return make("23", [("AO", "111101"), ("AA", patron), ("AC", ""), ("AD", pin)], language="000",
                transaction_date=NOW)


def patron_info(patron: str, summary: str = " " * 10, pin: str | None = None, start: str | None = None,
                end: str | None = None) -> Message:
    return make("63", [("AO", "111101"), ("AA", patron), ("AC", ""), ("AD", pin), ("BP", start), ("BQ", end)],
                language="000", transaction_date=NOW, summary=summary)


def checkout(patron: str, item: str, pin: str | None = None, *, no_block: bool = False,
             nb_due: dt.datetime | None = None) -> Message:
    return make("11", [("AO", "111101"), ("AA", patron), ("AB", item), ("AC", ""), ("AD", pin)],
                sc_renewal_policy="N", no_block=no_block, transaction_date=NOW, nb_due_date=nb_due)


def checkin(item: str, *, return_date: dt.datetime | None = NOW, location: str = "KIOSK-1") -> Message:
    return make("09", [("AP", location), ("AO", "111101"), ("AB", item), ("AC", "")], no_block=False,
                transaction_date=NOW, return_date=return_date)


def renew(patron: str, item: str) -> Message:
    return make("29", [("AO", "111101"), ("AA", patron), ("AB", item), ("AC", "")], third_party_allowed="N",
                no_block=False, transaction_date=NOW, nb_due_date=None)


def item_info(item: str) -> Message:
    return make("17", [("AO", "111101"), ("AB", item), ("AC", "")], transaction_date=NOW)


# -- fixtures


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(scope="session")
def seeded(tmp_path_factory):
    """The demo library, seeded once; each test gets its own copy."""
    path = tmp_path_factory.mktemp("seed") / "ils.db"
    assert seed_demo(path, FakeClock(NOW))
    return path


@pytest.fixture
def db_path(tmp_path, seeded):
    path = tmp_path / "ils.db"
    shutil.copyfile(seeded, path)
    return path


@pytest.fixture
def make_ils(db_path, clock):
    """Start demo ILSs with a behaviour; all closed at the end."""
    servers: list[DemoIls] = []

    def start(behaviour: Behaviour = Behaviour()) -> DemoIls:
        servers.append(DemoIls(db_path, clock=clock, behaviour=behaviour).start())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def ils(make_ils):
    return make_ils()


@pytest.fixture
def connect():
    """Open raw clients; all closed at the end."""
    clients: list[Raw] = []

    def open_client(server: DemoIls, dialect: Dialect = Dialect(), *, login: bool = True) -> Raw:
        client = Raw(server.address, dialect)
        clients.append(client)
        if login:
            assert client.login().fixed["ok"] == "1"
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def client(ils, connect):
    return connect(ils)


def loan(db_path, item: str) -> dict | None:
    return next((row for row in loans_report(db_path)["loans"] if row["item"] == item), None)


# -- the seed


def test_the_seed_agrees_with_the_kiosks_demo_and_is_written_once(db_path, clock):
    report = loans_report(db_path)
    expected = [(item, member, f"{loaned.isoformat()}T11:00:00+09:00", f"{due.isoformat()}T23:59:59+09:00")
                for item, member, loaned, due in demo.seed_loans(NOW.date())]
    got = [(row["item"], row["patron"], row["checked_out_at"], row["due"]) for row in report["loans"]]
    assert sorted(got) == sorted(expected)
    assert all(row["title"] == TITLE[row["item"]] for row in report["loans"])
    assert [(h["item"], h["patron"], h["state"]) for h in report["holds"]] == [(HELD_ITEM, HOLD_PATRON, "pending")]
    assert loan(db_path, HELD_ITEM)["patron"] == M[3]  # the held book is on loan to member 3
    assert HOLD_PATRON == M[9]
    assert report["log"] == []
    assert seed_demo(db_path, clock) is False


def test_a_new_file_gets_an_empty_library_where_nobody_can_log_in(tmp_path, clock, connect):
    with DemoIls(tmp_path / "empty.db", clock=clock).start() as server:
        raw = connect(server, login=False)
        assert raw.login().fixed["ok"] == "0"
    assert loans_report(tmp_path / "empty.db") == {"loans": [], "holds": [], "log": []}


def test_a_file_that_is_not_a_demo_ils_database_is_refused(tmp_path, clock):
    other = tmp_path / "kiosk.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE items (item TEXT)")
    conn.close()
    with pytest.raises(DemoIlsError, match="not a demo ILS database"):
        DemoIls(other, clock=clock)
    with pytest.raises(DemoIlsError, match="not a demo ILS database"):
        loans_report(other)
    with pytest.raises(DemoIlsError, match="no such database"):
        loans_report(tmp_path / "missing.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(DemoIlsError):
        DemoIls(garbage, clock=clock)


# -- 93 login, 99 status, 35 end session


def test_login_with_a_wrong_password_is_refused_and_may_be_retried(ils, connect):
    raw = connect(ils, login=False)
    assert raw.login(password="guess").fixed["ok"] == "0"
    assert raw.login(user="someone", password="kiosk-demo").fixed["ok"] == "0"
    assert raw.login().fixed["ok"] == "1"
    assert raw.ask(status()).command == "98"


@pytest.mark.parametrize("first", [status(), patron_status(M[1]), checkout(M[1], EM(1))])
def test_any_message_before_login_closes_the_connection(ils, connect, db_path, first):
    raw = connect(ils, login=False)
    raw.request(first)
    assert raw.hung_up()
    assert loan(db_path, EM(1)) is None


def test_sc_status_says_online_and_what_is_supported(client):
    reply = client.ask(status())
    assert reply.command == "98"
    assert reply.flag("online_status") and reply.flag("checkout_ok") and reply.flag("checkin_ok")
    assert reply.get("AO") == "111101"
    supported = reply.get("BX")
    assert len(supported) == 16
    # 23 11 09 99 97 93 63 35 17 29 yes; block patron, fee paid, hold, renew all no
    assert [supported[n] for n in (0, 1, 2, 4, 5, 6, 7, 8, 10, 14)] == ["Y"] * 10
    assert [supported[n] for n in (3, 9, 13, 15)] == ["N"] * 4
    assert reply.fixed["date_time_sync"] == "20261102    100000"  # the injected clock


def test_end_session_answers_with_the_member_number(client):
    reply = client.ask(make("35", [("AO", "111101"), ("AA", CARD[1])], transaction_date=NOW))
    assert reply.command == "36" and reply.flag("end_session")
    assert reply.get("AA") == M[1]


# -- 23 patron status, 63 patron information


@pytest.mark.parametrize("n, expected, words", [
    (1, flags(), None),
    (2, flags(0, 1, 10), "미납 연체료 3,500원"),
    (3, flags(0, 5), "대출 한도(5권)를 초과했습니다"),
    (4, flags(0, 1), "회원 자격이 만료되었습니다"),
    (5, flags(0, 1), "대출 정지 기간입니다"),
    (6, flags(0, 1, 4), "분실 신고된 회원증입니다"),
    (7, flags(0, 5), "책이음 통합 대출 한도(30권)"),
    (8, flags(0, 1, 6), "연체 중인 자료가 1권 있습니다"),
], ids=["good", "fines", "limit", "expired", "suspended", "card-lost", "network-limit", "overdue"])
def test_patron_status_flags_follow_the_circulation_rules(client, n, expected, words):
    reply = client.ask(patron_status(M[n]))
    assert reply.command == "24"
    assert reply.fixed["patron_status"] == expected
    assert reply.get("BL") == "Y" and reply.get("AE") == demo.MEMBERS[n - 1].name
    if words:
        assert words in reply.get("AF")
    else:
        assert not reply.has("AF")


def test_a_blocked_member_is_denied_with_a_reason(client, db_path):
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE patrons SET blocked = 1 WHERE member_id = ?", (M[1],))
    conn.commit()
    conn.close()
    reply = client.ask(patron_status(M[1]))
    assert reply.fixed["patron_status"] == flags(0, 1)
    assert reply.get("AF") == "이용이 제한된 회원입니다"
    assert client.ask(checkout(M[1], EM(1))).fixed["ok"] == "0"


def test_the_card_uid_finds_the_member_and_the_reply_names_the_member_number(client):
    reply = client.ask(patron_status(CARD[1].lower(), pin=PIN))
    assert reply.get("AA") == M[1]
    assert reply.get("BL") == "Y" and reply.get("CQ") == "Y"


def test_the_pin_is_checked_only_when_given(client):
    assert client.ask(patron_status(M[1], pin="0000")).get("CQ") == "N"
    assert not client.ask(patron_status(M[1])).has("CQ")  # AD empty: no password was sent


def test_an_unknown_patron_is_not_valid(client):
    reply = client.ask(patron_status("99999999999999"))
    assert reply.get("BL") == "N"
    assert reply.fixed["patron_status"][0] == "Y"
    assert reply.get("AF") == "등록되지 않은 회원입니다"
    info = client.ask(patron_info("99999999999999"))
    assert info.command == "64" and info.get("BL") == "N" and info.number("charged_items_count") == 0


def test_patron_information_counts_limits_and_pages_the_charged_list(client):
    everything = client.ask(patron_info(M[3], summary="  Y       ", pin=PIN))
    assert everything.number("charged_items_count") == 5
    assert everything.fixed["patron_status"] == flags(0, 5)
    assert sorted(everything.all("AU")) == [EM(n) for n in range(25, 30)]
    assert everything.get("CB") == "0005" and everything.get("CQ") == "Y"
    assert everything.get("PA") == (NOW.date() + dt.timedelta(days=900)).strftime("%Y%m%d")
    page = client.ask(patron_info(M[3], summary="  Y       ", start="2", end="3"))
    assert page.all("AU") == everything.all("AU")[1:3]
    nothing_asked = client.ask(patron_info(M[3]))
    assert not nothing_asked.has("AU") and nothing_asked.number("charged_items_count") == 5


def test_patron_information_lists_overdue_items_and_fines(client):
    overdue = client.ask(patron_info(M[8], summary=" Y        "))
    assert overdue.number("overdue_items_count") == 1 and overdue.all("AT") == [EM(30)]
    fines = client.ask(patron_info(M[2], summary="   Y      "))
    assert fines.get("BV") == "3500" and fines.number("fine_items_count") == 1
    assert fines.fixed["patron_status"][10] == "Y"


def test_a_hold_is_unavailable_until_the_book_comes_back_then_waiting(client):
    before = client.ask(patron_info(M[9], summary="     Y    "))
    assert before.number("unavailable_holds_count") == 1 and before.all("CD") == [HELD_ITEM]
    assert before.number("hold_items_count") == 0
    client.ask(checkin(HELD_ITEM))
    after = client.ask(patron_info(M[9], summary="Y         "))
    assert after.number("hold_items_count") == 1 and after.all("AS") == [HELD_ITEM]
    assert after.number("unavailable_holds_count") == 0


# -- 11 checkout


def test_a_checkout_is_due_in_14_days_at_the_end_of_the_day(client, db_path):
    reply = client.ask(checkout(CARD[1], EM(3), pin=PIN))
    assert reply.command == "12"
    assert reply.fixed["ok"] == "1" and reply.fixed["renewal_ok"] == "N" and reply.flag("desensitize")
    assert reply.get("AH") == "20261116    235959"
    assert reply.get("AA") == M[1] and reply.get("AJ") == TITLE[EM(3)]
    assert loan(db_path, EM(3)) == {"item": EM(3), "title": TITLE[EM(3)], "patron": M[1],
                                    "checked_out_at": "2026-11-02T10:00:00+09:00",
                                    "due": "2026-11-16T23:59:59+09:00", "renewals": 0}
    entry = loans_report(db_path)["log"][-1]
    assert entry == {"at": "2026-11-02T10:00:00+09:00", "action": "checkout", "item": EM(3), "patron": M[1],
                     "ok": True, "message": "", "no_block": False, "transaction_date": "2026-11-02T10:00:00+09:00",
                     "return_date": None, "renewal": False}


@pytest.mark.parametrize("patron, item, pin, words", [
    ("99999999999999", EM(1), None, "등록되지 않은 회원입니다"),
    (M[1], EM(1), "0000", "비밀번호가 맞지 않습니다"),
    (M[1], "EM0000000999", None, "등록되지 않은 자료입니다"),
    (M[2], EM(1), PIN, "미납 연체료 3,500원이 있습니다"),
    (M[3], EM(1), PIN, "대출 한도(5권)를 초과했습니다"),
    (M[4], EM(1), None, "회원 자격이 만료되었습니다"),
    (M[5], EM(1), None, "대출 정지 기간입니다(2026-11-09까지)"),
    (M[6], EM(1), None, "분실 신고된 회원증입니다"),
    (M[7], EM(1), None, "책이음 통합 대출 한도(30권)를 초과했습니다"),
    (M[8], EM(1), None, "연체 중인 자료가 1권 있습니다"),
    (M[1], EM(25), None, "다른 회원이 대출 중인 자료입니다"),
], ids=["unknown-patron", "wrong-pin", "unknown-item", "fines", "limit", "expired", "suspended", "card-lost",
        "network-limit", "overdue", "charged-to-another"])
def test_a_refused_checkout_says_why_in_korean_and_changes_nothing(client, db_path, patron, item, pin, words):
    before = loans_report(db_path)["loans"]
    reply = client.ask(checkout(patron, item, pin))
    assert reply.fixed["ok"] == "0" and not reply.flag("desensitize")
    assert reply.get("AF") == words or words in reply.get("AF")
    assert reply.get("AH") == ""
    report = loans_report(db_path)
    assert report["loans"] == before
    assert report["log"][-1]["ok"] is False and report["log"][-1]["message"] == reply.get("AF")


def test_an_item_on_hold_for_another_member_is_refused_but_lent_to_that_member(client, db_path, clock):
    place_hold(db_path, EM(10), M[9], clock=clock)
    refused = client.ask(checkout(M[1], EM(10)))
    assert refused.fixed["ok"] == "0" and refused.get("AF") == "다른 회원이 예약한 자료입니다"
    assert client.ask(checkout(M[9], EM(10))).fixed["ok"] == "1"
    assert all(h["item"] != EM(10) for h in loans_report(db_path)["holds"])  # the hold is filled


def test_the_waiting_book_goes_to_the_member_who_reserved_it(client, db_path):
    client.ask(checkin(HELD_ITEM))
    assert client.ask(checkout(M[1], HELD_ITEM)).get("AF") == "다른 회원이 예약한 자료입니다"
    assert client.ask(checkout(M[9], HELD_ITEM)).fixed["ok"] == "1"
    assert client.ask(item_info(HELD_ITEM)).fixed["circulation_status"] == "04"
    assert loans_report(db_path)["holds"] == []


@pytest.mark.parametrize("state", ["lost", "missing", "in_transit"])
def test_a_book_that_is_not_on_the_shelf_cannot_be_borrowed(client, db_path, state):
    set_item_status(db_path, EM(2), state)
    reply = client.ask(checkout(M[1], EM(2)))
    assert reply.fixed["ok"] == "0" and reply.get("AF") == "지금은 대출할 수 없는 자료입니다"


def test_a_repeated_checkout_becomes_a_renewal_by_default(ils, client, db_path, clock):
    clock.advance(3 * 86400)
    reply = client.ask(checkout(M[3], EM(25)))  # member 3 is at the limit: a renewal is not a new loan
    assert reply.fixed["ok"] == "1" and reply.fixed["renewal_ok"] == "Y"
    assert reply.get("AH") == "20261119    235959"
    assert loan(db_path, EM(25))["renewals"] == 1
    assert loans_report(db_path)["log"][-1]["renewal"] is True


def test_a_repeated_checkout_is_refused_when_the_server_says_so(make_ils, connect, db_path):
    client = connect(make_ils(Behaviour(repeat_checkout="refused")))
    reply = client.ask(checkout(M[3], EM(25)))
    assert reply.fixed["ok"] == "0" and reply.get("AF") == "이미 대출 중인 자료입니다"
    assert loan(db_path, EM(25))["renewals"] == 0


def test_no_block_is_honoured_like_koha(client, db_path):
    offline_due = dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=KST)
    reply = client.ask(checkout(M[2], EM(1), no_block=True, nb_due=offline_due))  # member 2 owes fines
    assert reply.fixed["ok"] == "1" and reply.get("AH") == "20261120    235959"
    assert loan(db_path, EM(1))["due"] == "2026-11-20T23:59:59+09:00"
    assert loans_report(db_path)["log"][-1]["no_block"] is True
    blank_due = client.ask(checkout(M[6], EM(2), no_block=True))  # card lost; no nb due date: the normal one
    assert blank_due.fixed["ok"] == "1" and blank_due.get("AH") == "20261116    235959"
    held = client.ask(checkout(M[1], EM(25), no_block=True))  # item problems are never bypassed
    assert held.fixed["ok"] == "0"


def test_no_block_is_ignored_like_evergreen_folio_and_rero(make_ils, connect, db_path):
    client = connect(make_ils(Behaviour(no_block="ignored")))
    reply = client.ask(checkout(M[2], EM(1), no_block=True, nb_due=NOW + dt.timedelta(days=10)))
    assert reply.fixed["ok"] == "0" and "미납 연체료" in reply.get("AF")
    assert loan(db_path, EM(1)) is None
    assert loans_report(db_path)["log"][-1]["no_block"] is True


def test_two_clients_racing_for_one_book_one_wins(ils, connect, db_path):
    first, second = connect(ils), connect(ils)
    first.request(checkout(M[1], EM(5)))
    second.request(checkout(M[9], EM(5)))
    answers = sorted(decode(c.frame(), c.dialect).fixed["ok"] for c in (first, second))
    assert answers == ["0", "1"]
    assert loan(db_path, EM(5))["patron"] in (M[1], M[9])


# -- 09 checkin


def test_a_checkin_ends_the_loan_and_logs_the_return_date(client, db_path):
    returned = dt.datetime(2026, 11, 1, 18, 30, tzinfo=KST)  # an offline return, replayed
    reply = client.ask(checkin(EM(25), return_date=returned))
    assert reply.command == "10" and reply.fixed["ok"] == "1"
    assert not reply.flag("alert") and reply.flag("resensitize")
    assert reply.get("AA") == M[3] and reply.get("AQ") == "종합자료실" and reply.get("AJ") == TITLE[EM(25)]
    assert loan(db_path, EM(25)) is None
    entry = loans_report(db_path)["log"][-1]
    assert (entry["action"], entry["patron"], entry["ok"], entry["return_date"]) == \
        ("checkin", M[3], True, "2026-11-01T18:30:00+09:00")
    assert client.ask(item_info(EM(25))).fixed["circulation_status"] == "03"


def test_returning_a_reserved_book_raises_the_alert_for_the_hold_shelf(client, db_path):
    reply = client.ask(checkin(HELD_ITEM))
    assert reply.fixed["ok"] == "1" and reply.flag("alert") and not reply.flag("resensitize")
    assert reply.get("CV") == "01" and reply.get("AA") == M[3]
    assert "예약" in reply.get("AF")
    info = client.ask(item_info(HELD_ITEM))
    assert info.fixed["circulation_status"] == "08" and info.get("CF") == "1"
    assert loans_report(db_path)["holds"][0]["state"] == "waiting"


def test_a_book_reserved_for_another_branch_goes_in_transit(client, db_path, clock):
    place_hold(db_path, EM(27), M[1], clock=clock, pickup_library="111102")
    reply = client.ask(checkin(EM(27)))
    assert reply.flag("alert") and reply.get("CV") == "02" and reply.get("CT") == "111102"
    info = client.ask(item_info(EM(27)))
    assert info.fixed["circulation_status"] == "10" and info.get("CT") == "111102"


def test_a_checkin_of_a_book_not_on_loan_is_refused_with_a_message(client, db_path):
    reply = client.ask(checkin(EM(1)))
    assert reply.fixed["ok"] == "0" and reply.get("AF") == "대출 중인 자료가 아닙니다"
    assert loans_report(db_path)["log"][-1]["ok"] is False
    unknown = client.ask(checkin("EM0000000999"))
    assert unknown.fixed["ok"] == "0" and unknown.get("AF") == "등록되지 않은 자료입니다"


def test_checked_in_ok_makes_a_repeated_checkin_harmless(make_ils, connect):
    client = connect(make_ils(Behaviour(checked_in_ok=True)))
    assert client.ask(checkin(EM(25))).fixed["ok"] == "1"
    assert client.ask(checkin(EM(25))).fixed["ok"] == "1"  # the replay of the same return


# -- 17 item information


@pytest.mark.parametrize("state, expected", [("lost", "12"), ("missing", "13"), ("in_transit", "10")])
def test_item_information_reports_the_shelf_state(client, db_path, state, expected):
    set_item_status(db_path, EM(2), state)
    assert client.ask(item_info(EM(2))).fixed["circulation_status"] == expected


def test_item_information_for_available_charged_and_unknown_items(client):
    shelf = client.ask(item_info(EM(1)))
    assert shelf.command == "18" and shelf.fixed["circulation_status"] == "03"
    assert shelf.get("AJ") == "채식주의자" and shelf.get("CF") == "0" and not shelf.has("AH")
    charged = client.ask(item_info(EM(25)))
    assert charged.fixed["circulation_status"] == "04" and charged.get("AH") == "20261113    235959"
    held = client.ask(item_info(HELD_ITEM))
    assert held.fixed["circulation_status"] == "04" and held.get("CF") == "1"
    unknown = client.ask(item_info("EM0000000999"))
    assert unknown.fixed["circulation_status"] == "01" and unknown.get("AF") == "등록되지 않은 자료입니다"


# -- 29 renew


def test_a_renewal_gives_a_new_due_date_twice_then_no_more(client, db_path, clock):
    clock.advance(5 * 86400)
    first = client.ask(renew(M[3], EM(27)))
    assert first.command == "30" and first.fixed["ok"] == "1" and first.fixed["renewal_ok"] == "Y"
    assert first.get("AH") == "20261121    235959"
    assert client.ask(renew(M[3], EM(27))).fixed["ok"] == "1"
    third = client.ask(renew(M[3], EM(27)))
    assert third.fixed["ok"] == "0" and third.get("AF") == "연장 횟수(2회)를 모두 사용했습니다"
    assert loan(db_path, EM(27))["renewals"] == 2
    assert [e["action"] for e in loans_report(db_path)["log"]] == ["renew"] * 3


@pytest.mark.parametrize("patron, item, words", [
    (M[3], HELD_ITEM, "다른 회원이 예약한 자료라 연장할 수 없습니다"),
    (M[8], EM(30), "연체 중인 자료가 1권 있습니다"),
    (M[1], EM(25), "대출 중인 자료가 아닙니다"),
    (M[1], "EM0000000999", "등록되지 않은 자료입니다"),
], ids=["held-for-another", "overdue", "not-on-loan-to-them", "unknown-item"])
def test_a_refused_renewal_keeps_the_due_date(client, db_path, patron, item, words):
    due = (loan(db_path, item) or {}).get("due")
    reply = client.ask(renew(patron, item))
    assert reply.fixed["ok"] == "0" and reply.get("AF") == words
    assert (loan(db_path, item) or {}).get("due") == due


# -- error detection and resends


def test_a_97_repeats_the_last_reply_byte_for_byte(client):
    client.request(patron_status(M[1]))
    first = client.frame()
    client.send(b"97AZFEF5\r")
    assert client.frame() == first


def test_a_bad_checksum_is_answered_96(client, db_path):
    good = encode(checkout(M[1], EM(1)), Dialect(), sequence=4)
    bad = good[:-5] + (b"0000" if good[-5:-1] != b"0000" else b"0001") + b"\r"
    client.send(bad)
    assert client.frame() == b"96AZFEF6"
    assert loan(db_path, EM(1)) is None  # the checkout was not carried out
    assert client.ask(checkout(M[1], EM(1))).fixed["ok"] == "1"  # the resend is


def test_an_unsupported_message_is_answered_96(client):
    client.send(b"6520261102    100000AO111101|AA11110100000001|\r")  # 65 renew all
    assert client.frame() == b"96"
    assert client.ask(status()).command == "98"


# -- behaviour switches


def test_replies_end_with_crlf_when_the_server_is_like_koha(make_ils, connect):
    client = connect(make_ils(Behaviour(terminator="\r\n")))
    client.request(status())
    assert client.raw(until=b"\r\n").startswith(b"98")


def test_replies_end_with_cr_alone_by_default(client):
    client.request(status())
    assert client.raw().endswith(b"\r")
    client.request(status())
    assert client.raw().startswith(b"98")  # no stray LF from the previous reply


def test_behaviour_may_be_swapped_while_a_client_is_connected(ils, client):
    ils.behaviour = Behaviour(terminator="\r\n")
    client.request(status())
    assert client.raw(until=b"\r\n").startswith(b"98")


def test_per_message_error_detection_follows_the_request(client):
    client.request(status(), error_detection=False)
    plain = client.raw()
    assert b"AZ" not in plain and b"AY" not in plain
    client.sequence = 7
    client.request(status())
    reply = decode(client.frame(), Dialect())
    assert reply.checksum_ok is True and reply.sequence == 7


def test_required_error_detection_answers_96_to_a_request_without_a_checksum(make_ils, connect):
    server = make_ils(Behaviour(error_detection="required"))
    raw = connect(server, login=False)
    raw.request(make("93", [("CN", "kiosk"), ("CO", "kiosk-demo")], uid_algorithm="0", pwd_algorithm="0"),
                error_detection=False)
    assert raw.frame() == b"96AZFEF6"
    assert raw.login().fixed["ok"] == "1"  # the same login with AY/AZ
    reply = raw.ask(status())
    assert reply.checksum_ok is True


def test_error_detection_off_ignores_checksums_and_sends_none(make_ils, connect):
    raw = connect(make_ils(Behaviour(error_detection="off")), login=False)
    raw.send(b"9300CNkiosk|COkiosk-demo|CPKIOSK-1|AY0AZ0000\r")  # a wrong checksum, never looked at
    assert raw.frame() == b"941"
    raw.request(status())
    assert b"AZ" not in raw.frame()


HANGUL_TITLE_ITEM = EM(4)  # 82년생 김지영


@pytest.mark.parametrize("server_sums, client_sums", [("bytes", "bytes"), ("codepoints", "codepoints"),
                                                     ("bytes", "codepoints"), ("codepoints", "bytes")])
def test_byte_and_code_point_checksums_differ_on_hangul(make_ils, connect, server_sums, client_sums):
    server = make_ils(Behaviour(checksum=server_sums))
    dialect = Dialect(checksum_mode=client_sums, send_checksum=client_sums)
    client = connect(server, dialect)
    reply = client.ask(item_info(HANGUL_TITLE_ITEM))
    assert reply.get("AJ") == "82년생 김지영"
    assert reply.checksum_ok is (server_sums == client_sums)
    # A request with Hangul in it (a Korean current location) is checked the server's way.
    client.request(checkin(EM(25), location="무인반납기"))
    answer = decode(client.frame(), dialect)
    assert answer.command == ("10" if server_sums == client_sums else "96")


@pytest.mark.parametrize("encoding, title_bytes", [
    ("utf-8", "82년생 김지영".encode("utf-8")),
    ("utf-8-nfd", unicodedata.normalize("NFD", "82년생 김지영").encode("utf-8")),
    ("cp949", "82년생 김지영".encode("cp949")),
    ("cp850", b"82?? ???"),
    ("ascii", b"82?? ???"),
], ids=["utf-8", "utf-8-nfd", "cp949", "cp850", "ascii"])
def test_each_encoding_writes_the_title_its_own_way(make_ils, connect, encoding, title_bytes):
    server = make_ils(Behaviour(encoding=encoding))
    codec_encoding = "utf-8" if encoding == "utf-8-nfd" else encoding
    client = connect(server, Dialect(encoding=codec_encoding))
    client.request(item_info(HANGUL_TITLE_ITEM))
    frame = client.frame()
    assert b"AJ" + title_bytes + b"|" in frame
    reply = decode(frame, client.dialect)
    assert reply.checksum_ok is True  # summed over the bytes actually sent
    if encoding in ("utf-8", "utf-8-nfd", "cp949"):
        assert reply.get("AJ") == "82년생 김지영"  # the codec gives NFC back


def test_nfd_is_really_decomposed(make_ils, connect):
    client = connect(make_ils(Behaviour(encoding="utf-8-nfd")))
    client.request(item_info(HANGUL_TITLE_ITEM))
    frame = client.frame()
    assert "82년생 김지영".encode("utf-8") not in frame
    assert "\u1102\u1167\u11ab".encode("utf-8") in frame  # 년 as three jamo


def test_a_cp949_request_is_read_as_cp949(make_ils, connect):
    client = connect(make_ils(Behaviour(encoding="cp949")), Dialect(encoding="cp949"))
    reply = client.ask(checkin(EM(25), location="무인반납기"))
    assert reply.fixed["ok"] == "1" and reply.checksum_ok is True


def test_a_behaviour_with_an_unknown_value_names_the_field_and_the_choices():
    with pytest.raises(ValueError, match="encoding must be one of .*'cp949'.*not 'euc-jp'"):
        Behaviour(encoding="euc-jp")
    with pytest.raises(ValueError, match="no_block.*terminator|terminator.*no_block"):
        Behaviour(terminator="\n", no_block="maybe")


# -- faults


def test_split_writes_reassemble(ils, client):
    ils.faults.split_writes = 3
    reply = client.ask(patron_info(M[3], summary="  Y       "))
    assert reply.checksum_ok is True and len(reply.all("AU")) == 5


def test_drop_after_cuts_the_reply_but_the_checkout_was_made(ils, client, connect, db_path):
    ils.faults.drop_after = 10
    client.request(checkout(M[1], EM(1)))
    received = b""
    client.sock.settimeout(TIMEOUT)
    while chunk := client.sock.recv(65536):
        received += chunk
    assert len(received) == 10 and received.startswith(b"121")
    assert loan(db_path, EM(1))["patron"] == M[1]  # the outcome the client could not see
    assert ils.faults.drop_after is None  # one reply only
    again = connect(ils)
    assert again.ask(item_info(EM(1))).fixed["circulation_status"] == "04"


def test_drop_after_zero_closes_without_a_byte(ils, client):
    ils.faults.drop_after = 0
    client.request(status())
    assert client.hung_up()


def test_a_delay_holds_the_reply_back(ils, client):
    ils.faults.delay_s = 0.2
    client.request(status())
    with pytest.raises(socket.timeout):
        client.frame(timeout=0.05)
    assert decode(client.frame(timeout=1.0), Dialect()).command == "98"


def test_close_interrupts_a_delay(make_ils, connect):
    server = make_ils()
    client = connect(server)
    server.faults.delay_s = 30
    client.request(status())
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
    assert client.hung_up()


def test_a_silent_server_reads_but_neither_acts_nor_answers(ils, client, db_path):
    ils.faults.silent = True
    client.request(checkout(M[1], EM(1)))
    with pytest.raises(socket.timeout):
        client.frame(timeout=0.1)
    assert loan(db_path, EM(1)) is None
    ils.faults.silent = False
    assert client.ask(status()).command == "98"


def test_a_server_that_is_down_closes_connections_and_refuses_new_ones(ils, client, connect):
    ils.faults.down = True
    assert client.hung_up()
    newcomer = Raw(ils.address)
    try:
        newcomer.request(status())
        assert newcomer.hung_up()
    finally:
        newcomer.close()
    ils.faults.down = False
    assert connect(ils).ask(status()).command == "98"


def test_garbage_once_then_a_97_gets_the_real_reply(ils, client, db_path):
    ils.faults.garbage = True
    client.request(checkout(M[1], EM(1)))
    frame = client.frame()
    assert frame + b"\r" == GARBAGE.lstrip(b"\n")
    with pytest.raises(DecodeError):
        decode(frame, Dialect())
    client.send(b"97AZFEF5\r")
    reply = decode(client.frame(), Dialect())
    assert reply.command == "12" and reply.fixed["ok"] == "1" and reply.checksum_ok is True
    assert len(loans_report(db_path)["log"]) == 1  # carried out once


def test_a_corrupt_checksum_once_then_a_97_gets_a_good_one(ils, client):
    ils.faults.corrupt_checksum = True
    bad = client.ask(patron_status(M[1]))
    assert bad.checksum_ok is False
    client.send(b"97AZFEF5\r")
    good = decode(client.frame(), Dialect())
    assert good.checksum_ok is True and good.fixed == bad.fixed and good.fields == bad.fields
    assert client.ask(status()).checksum_ok is True  # cleared after one reply


def test_faults_are_checked_and_reset():
    faults = Faults()
    with pytest.raises(ValueError):
        faults.split_writes = -1
    with pytest.raises(ValueError):
        faults.delay_s = "slow"
    with pytest.raises(AttributeError, match="no fault called"):
        faults.lag = 1
    faults.silent, faults.drop_after = True, 5
    assert "silent=True" in repr(faults)
    faults.reset()
    assert repr(faults) == "<Faults none>"


# -- bad input never kills the server


@pytest.mark.parametrize("junk", [
    b"\x00\xff\xfe garbage \x80\r",  # not SIP2 at all
    b"11YN2026\r",  # a checkout cut short in its fixed fields
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r",  # a TLS hello to a plain server
])
def test_junk_is_answered_96_and_the_connection_lives_on(client, junk):
    client.send(junk)
    assert client.frame() == b"96"
    assert client.ask(status()).command == "98"


def test_a_megabyte_without_cr_is_answered_96_and_both_connections_work(ils, client, connect):
    client.send(b"9" * (1024 * 1024))
    assert client.frame(timeout=2.0) == b"96"
    client.send(b"\r")
    assert client.ask(status()).command == "98"
    assert connect(ils).ask(status()).command == "98"


def test_a_client_hanging_up_mid_frame_does_not_hurt_the_next_one(ils, connect):
    quitter = Raw(ils.address)
    quitter.send(b"9300CNkio")
    quitter.close()
    assert connect(ils).ask(status()).command == "98"


def test_a_database_error_is_answered_96_and_the_connection_lives_on(client, db_path):
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE circulation_log")
    conn.commit()
    conn.close()
    client.request(checkout(M[1], EM(1)))
    assert client.frame() == b"96AZFEF6"
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM loans WHERE item = ?", (EM(1),)).fetchone()[0] == 0  # rolled back
    conn.close()
    assert client.ask(status()).command == "98"


def test_the_log_names_messages_never_ids_pins_or_passwords(ils, connect, caplog):
    caplog.set_level(logging.DEBUG, logger="sync.demo_ils")
    client = connect(ils)
    client.ask(checkout(M[1], EM(1), pin=PIN))
    client.send(b"\x00junk with 11110100000001\r")
    client.frame()
    assert "checkout" in caplog.text
    for secret in (M[1], EM(1), "kiosk-demo", "11110100000001", "junk"):
        assert secret not in caplog.text


# -- lifecycle


def test_close_is_idempotent_and_hangs_up_on_clients(make_ils, connect):
    server = make_ils()
    client = connect(server)
    assert server.connections == 1
    server.close()
    server.close()
    assert client.hung_up()
    with pytest.raises(DemoIlsError, match="closed"):
        server.start()
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=TIMEOUT)


def test_a_second_server_on_a_busy_port_is_a_clear_error(ils, db_path, clock):
    with pytest.raises(DemoIlsError, match="cannot listen"):
        DemoIls(db_path, clock=clock, port=ils.address[1])


def test_serve_forever_runs_until_close(db_path, clock, connect):
    server = DemoIls(db_path, clock=clock)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        assert connect(server).ask(status()).command == "98"
    finally:
        server.close()
        thread.join(timeout=2)
    assert not thread.is_alive()


def test_serve_forever_exits_cleanly_on_sigterm(db_path, clock):
    server = DemoIls(db_path, clock=clock)
    original = signal.getsignal(signal.SIGTERM)

    def terminate_once_serving() -> None:
        waited = threading.Event()
        for _ in range(400):  # up to 2 s for serve_forever to install its handler
            if signal.getsignal(signal.SIGTERM) is not original:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            waited.wait(0.005)
        server.close()  # never installed: stop anyway, and let the assertion below fail

    killer = threading.Thread(target=terminate_once_serving)
    killer.start()
    server.serve_forever()  # returns on SIGTERM
    killer.join()
    assert signal.getsignal(signal.SIGTERM) is original
    assert not killer.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=TIMEOUT)


def test_repr_shows_the_state(make_ils, connect):
    server = make_ils()
    connect(server)
    assert "serving" in repr(server) and "connections=1" in repr(server)
