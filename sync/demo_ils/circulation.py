"""The demo ILS's circulation rules and its SIP2 message handlers.

`Circulation.answer(request, behaviour, session)` turns one decoded request into one response
message, in one database transaction; framing, checksums, the login gate and 97 are the
server's business. Refusals carry a short Korean screen message (AF) that says why.

The rules, in the order a checkout meets them (the same order as the kiosk's own rules):
unknown patron, wrong PIN (when AD is given), unknown item, an item already charged (to the
same patron: a renewal or a refusal, per `Behaviour.repeat_checkout`; to another: refused),
then the patron's blocks (card lost, blocked, expired, fines over the limit, loan ban, an overdue
loan, the per-library limit, the 책이음 network-wide limit; all bypassed by no block = Y when the
behaviour honours it), then the item (on hold for another patron; lost, missing, in transit).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk import demo
from kiosk.clock import Clock
from sync.demo_ils import db
from sync.demo_ils.behaviour import Behaviour
from sync.sip2.codec import Message, format_date, make, parse_date
from sync.sip2.messages import SUMMARY_POSITIONS

# Screen messages (AF). Words chosen so that a client reading them finds the reason.
UNKNOWN_PATRON = "등록되지 않은 회원입니다"
WRONG_PIN = "비밀번호가 맞지 않습니다"
UNKNOWN_ITEM = "등록되지 않은 자료입니다"
ON_HOLD = "다른 회원이 예약한 자료입니다"
CHARGED_ELSEWHERE = "다른 회원이 대출 중인 자료입니다"
ALREADY_CHARGED = "이미 대출 중인 자료입니다"
NOT_AVAILABLE = "지금은 대출할 수 없는 자료입니다"
NOT_ON_LOAN = "대출 중인 자료가 아닙니다"
RENEW_ON_HOLD = "다른 회원이 예약한 자료라 연장할 수 없습니다"
HOLD_WAITING = "예약된 자료입니다: 예약 서가로 옮겨 주세요"
RENEWED = "대출 기간이 연장되었습니다"

# BX: the messages this server answers, by the spec's 16 positions
# (23 11 09 01 99 97 93 63 35 37 17 19 25 15 29 65).
SUPPORTED_MESSAGES = "YYYNYYYYYNYNNNYN"
LIBRARY_NAME = "책이음 데모 도서관"


@dataclass
class Session:
    """One client connection's state: the SIP2 account it logged in with."""

    account: db.Account | None = None

    @property
    def institution(self) -> str:
        return self.account.institution if self.account else ""


@dataclass(frozen=True)
class Block:
    """One reason the patron may not borrow; `limit` blocks stop new loans but not renewals."""

    kind: str
    message: str
    limit: bool = False


def patron_blocks(patron: db.Patron, loans: list[db.Loan], policy: db.Policy, now: dt.datetime) -> list[Block]:
    """Every reason this patron may not borrow one more book now, most serious first."""
    today = now.date()
    blocks = []
    if patron.card_lost:
        blocks.append(Block("card_lost", "분실 신고된 회원증입니다"))
    if patron.blocked:
        blocks.append(Block("blocked", "이용이 제한된 회원입니다"))
    if patron.expires is not None and patron.expires < today:
        blocks.append(Block("expired", f"회원 자격이 만료되었습니다({patron.expires.isoformat()})"))
    if patron.fines_won > policy.fine_limit_won:
        blocks.append(Block("fines", f"미납 연체료 {patron.fines_won:,}원이 있습니다"))
    if patron.suspended_until is not None and patron.suspended_until >= today:
        blocks.append(Block("suspended", f"대출 정지 기간입니다({patron.suspended_until.isoformat()}까지)"))
    overdue = sum(1 for loan in loans if loan.due < now)
    if overdue:
        blocks.append(Block("overdue", f"연체 중인 자료가 {overdue}권 있습니다"))
    here = sum(1 for loan in loans if loan.library == policy.library)
    if here >= policy.library_limit:
        blocks.append(Block("library_limit", f"대출 한도({policy.library_limit}권)를 초과했습니다", limit=True))
    if len(loans) + patron.loans_elsewhere >= policy.network_limit:
        blocks.append(Block("network_limit", f"책이음 통합 대출 한도({policy.network_limit}권)를 초과했습니다",
                            limit=True))
    return blocks


# Patron status positions (24/64) each block sets, besides 0 (charge privileges denied).
_FLAG_POSITIONS = {"card_lost": (4,), "library_limit": (5,), "network_limit": (5,), "overdue": (6,), "fines": (10,)}
UNKNOWN_PATRON_STATUS = "YYYY          "  # as Koha answers for a patron it does not know


def patron_status(blocks: list[Block]) -> str:
    """The 14-character patron status for these blocks."""
    flags = [" "] * 14
    if blocks:
        flags[0] = "Y"  # charge privileges denied: whenever the patron may not borrow
    if any(not block.limit for block in blocks):
        flags[1] = "Y"  # renewal privileges denied: limits do not stop renewals, the rest do
    for block in blocks:
        for position in _FLAG_POSITIONS.get(block.kind, ()):
            flags[position] = "Y"
    return "".join(flags)


@dataclass
class _Outcome:
    ok: bool
    message: str = ""
    due: dt.datetime | None = None
    renewal: bool = False
    patron: str = ""
    item: db.Item | None = None
    extra: list[tuple[str, str]] = field(default_factory=list)


class Circulation:
    """Answers SIP2 requests from the database. One per client connection: it holds that
    connection's SQLite handle (SQLite connections stay in the thread that opened them)."""

    def __init__(self, conn: sqlite3.Connection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock
        self._rows = conn.cursor()  # rows read by position, without the connection's row factory
        self._rows.row_factory = None
        self._handlers: dict[str, Callable[[Message, Behaviour, Session], Message]] = {
            "93": self._login, "99": self._sc_status, "23": self._patron_status,
            "63": self._patron_information, "11": self._checkout, "09": self._checkin,
            "17": self._item_information, "29": self._renew, "35": self._end_session,
        }

    def supports(self, command: str) -> bool:
        return command in self._handlers

    def answer(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        """The response to `request` (which `supports`). Database errors propagate, rolled back."""
        return self._handlers[request.command](request, behaviour, session)

    # -- helpers

    def _now(self) -> dt.datetime:
        return self._clock.now()

    def _request_date(self, text: str, tz: dt.tzinfo | None) -> str | None:
        """A date from a request, for the log: ISO when readable, as sent otherwise, None when blank."""
        if not text.strip():
            return None
        when = parse_date(text, tz=tz)
        return when.isoformat() if when else text.strip()

    def _pin_wrong(self, request: Message, patron: db.Patron) -> bool:
        pin = request.get("AD")
        return bool(pin) and not db.secret_matches(patron.pin_hash, pin)

    def _library(self, session: Session) -> str:
        return session.institution or demo.LIBRARY_CODE

    # -- 93 login, 99 status, 35 end session

    def _login(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        account = db.check_account(self._conn, request.get("CN"), request.get("CO"))
        if account is not None:
            session.account = account
        return make("94", ok="1" if account else "0")

    def _sc_status(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        return make("98", [("AO", session.institution), ("AM", LIBRARY_NAME), ("BX", SUPPORTED_MESSAGES)],
                    online_status=True, checkin_ok=True, checkout_ok=True, acs_renewal_policy=True,
                    status_update_ok=False, offline_ok=True, timeout_period="030", retries_allowed="003",
                    date_time_sync=self._now(), protocol_version="2.00")

    def _end_session(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        patron = db.find_patron(self._conn, request.get("AA"))
        return make("36", [("AO", session.institution),
                           ("AA", patron.member_id if patron else request.get("AA"))],
                    end_session=True, transaction_date=self._now())

    # -- 23 patron status, 63 patron information

    def _standing(self, request: Message, session: Session) -> tuple[db.Patron | None, list[db.Loan], list[Block]]:
        patron = db.find_patron(self._conn, request.get("AA"))
        if patron is None:
            return None, [], []
        loans = db.loans_of(self._conn, patron.member_id)
        policy = db.policy(self._conn, self._library(session))
        return patron, loans, patron_blocks(patron, loans, policy, self._now())

    def _patron_fields(self, request: Message, patron: db.Patron | None, blocks: list[Block],
                       session: Session) -> tuple[str, list[tuple[str, str]]]:
        """The patron status and the fields 24 and 64 share."""
        if patron is None:
            return UNKNOWN_PATRON_STATUS, [("AO", session.institution), ("AA", request.get("AA")), ("AE", ""),
                                           ("BL", "N"), ("AF", UNKNOWN_PATRON)]
        fields = [("AO", session.institution), ("AA", patron.member_id), ("AE", patron.name), ("BL", "Y")]
        wrong_pin = self._pin_wrong(request, patron)
        if request.get("AD"):
            fields.append(("CQ", "N" if wrong_pin else "Y"))
        return patron_status(blocks), fields

    def _screen_message(self, request: Message, patron: db.Patron, blocks: list[Block]) -> list[tuple[str, str]]:
        if self._pin_wrong(request, patron):
            return [("AF", WRONG_PIN)]
        return [("AF", blocks[0].message)] if blocks else []

    def _patron_status(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        with db.transaction(self._conn, write=False):
            patron, _, blocks = self._standing(request, session)
        status, fields = self._patron_fields(request, patron, blocks, session)
        if patron is not None:
            if patron.fines_won:
                fields += [("BH", "KRW"), ("BV", str(patron.fines_won))]
            fields += self._screen_message(request, patron, blocks)
        return make("24", fields, patron_status=status, language="000", transaction_date=self._now())

    def _patron_information(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        now = self._now()
        with db.transaction(self._conn, write=False):
            patron, loans, blocks = self._standing(request, session)
            holds = db.holds_of(self._conn, patron.member_id) if patron else []
            policy = db.policy(self._conn, self._library(session))
        status, fields = self._patron_fields(request, patron, blocks, session)
        if patron is None:
            return make("64", fields, patron_status=status, language="000", transaction_date=now,
                        hold_items_count=0, overdue_items_count=0, charged_items_count=0, fine_items_count=0,
                        recall_items_count=0, unavailable_holds_count=0)
        waiting = [h.item for h in holds if h.state == "waiting"]
        unavailable = [h.item for h in holds if h.state != "waiting"]
        overdue = [loan.item for loan in loans if loan.due < now]
        charged = [loan.item for loan in loans]
        fines = [f"연체료 {patron.fines_won:,}원"] if patron.fines_won else []
        lists = {"hold": ("AS", waiting), "overdue": ("AT", overdue), "charged": ("AU", charged),
                 "fine": ("AV", fines), "recall": ("BU", []), "unavailable_hold": ("CD", unavailable)}
        fields += [("BZ", f"{policy.hold_limit:04d}"), ("CA", "0001"), ("CB", f"{policy.library_limit:04d}"),
                   ("BH", "KRW"), ("BV", str(patron.fines_won))]
        if patron.expires is not None:
            fields.append(("PA", patron.expires.strftime("%Y%m%d")))
        wanted = request.fixed.get("summary", "").find("Y")
        for name, position in SUMMARY_POSITIONS.items():
            if position == wanted:
                code, entries = lists[name]
                fields += [(code, entry) for entry in _page(entries, request.get("BP"), request.get("BQ"))]
        fields += self._screen_message(request, patron, blocks)
        return make("64", fields, patron_status=status, language="000", transaction_date=now,
                    hold_items_count=len(waiting), overdue_items_count=len(overdue),
                    charged_items_count=len(charged), fine_items_count=len(fines), recall_items_count=0,
                    unavailable_holds_count=len(unavailable))

    # -- 11 checkout, 29 renew

    def _checkout(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        now = self._now()
        no_block = request.fixed.get("no_block") == "Y"
        bypass = no_block and behaviour.no_block == "honoured"
        nb_due = self._nb_due(request, now) if bypass else None
        with db.transaction(self._conn):
            outcome = self._checkout_rules(request, behaviour, session, now, bypass, nb_due)
            self._log(request, "checkout", outcome, now, no_block)
        return self._loan_response("12", request, outcome, session, now)

    def _checkout_rules(self, request: Message, behaviour: Behaviour, session: Session, now: dt.datetime,
                        bypass: bool, nb_due: dt.datetime | None) -> _Outcome:
        conn = self._conn
        patron = db.find_patron(conn, request.get("AA"))
        if patron is None:
            return _Outcome(False, UNKNOWN_PATRON, patron=request.get("AA"))
        if self._pin_wrong(request, patron):
            return _Outcome(False, WRONG_PIN, patron=patron.member_id)
        item = db.find_item(conn, request.get("AB"))
        if item is None:
            return _Outcome(False, UNKNOWN_ITEM, patron=patron.member_id)
        loan = db.loan_of(conn, item.item)
        if loan is not None and loan.patron == patron.member_id:
            if behaviour.repeat_checkout == "refused":
                return _Outcome(False, ALREADY_CHARGED, due=loan.due, patron=patron.member_id, item=item)
            return self._renewal_rules(patron, loan, item, session, now, bypass, nb_due)
        if loan is not None:
            return _Outcome(False, CHARGED_ELSEWHERE, patron=patron.member_id, item=item)
        policy = db.policy(conn, self._library(session))
        blocks = patron_blocks(patron, db.loans_of(conn, patron.member_id), policy, now)
        if blocks and not bypass:
            return _Outcome(False, blocks[0].message, patron=patron.member_id, item=item)
        holds = db.holds_on(conn, item.item)
        if any(hold.patron != patron.member_id for hold in holds):
            return _Outcome(False, ON_HOLD, patron=patron.member_id, item=item)
        if item.status in ("lost", "missing", "in_transit"):
            return _Outcome(False, NOT_AVAILABLE, patron=patron.member_id, item=item)
        due = nb_due or db.end_of_day(now.date() + dt.timedelta(days=policy.loan_days), now.tzinfo)
        # An offline replay (no block, honoured, as Koha does) is recorded when it really happened.
        when = parse_date(request.fixed.get("transaction_date", ""), tz=now.tzinfo) if bypass else None
        loaned_at = when if when is not None and when <= now else now
        db.add_loan(conn, item.item, patron.member_id, loaned_at, due, policy.library)
        for hold in holds:  # the patron's own hold is filled by this loan
            db.remove_hold(conn, hold.id)
        db.set_status(conn, item.item, "available")
        return _Outcome(True, due=due, patron=patron.member_id, item=item)

    def _renewal_rules(self, patron: db.Patron, loan: db.Loan, item: db.Item, session: Session,
                       now: dt.datetime, bypass: bool, nb_due: dt.datetime | None) -> _Outcome:
        conn = self._conn
        policy = db.policy(conn, self._library(session))
        blocks = [b for b in patron_blocks(patron, db.loans_of(conn, patron.member_id), policy, now) if not b.limit]
        if blocks and not bypass:
            return _Outcome(False, blocks[0].message, due=loan.due, renewal=True, patron=patron.member_id, item=item)
        if loan.renewals >= policy.max_renewals:
            return _Outcome(False, f"연장 횟수({policy.max_renewals}회)를 모두 사용했습니다", due=loan.due,
                            renewal=True, patron=patron.member_id, item=item)
        if any(hold.patron != patron.member_id for hold in db.holds_on(conn, item.item)):
            return _Outcome(False, RENEW_ON_HOLD, due=loan.due, renewal=True, patron=patron.member_id, item=item)
        due = nb_due or db.end_of_day(now.date() + dt.timedelta(days=policy.loan_days), now.tzinfo)
        db.renew_loan(conn, item.item, due)
        return _Outcome(True, RENEWED, due=due, renewal=True, patron=patron.member_id, item=item)

    def _renew(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        now = self._now()
        no_block = request.fixed.get("no_block") == "Y"
        bypass = no_block and behaviour.no_block == "honoured"
        nb_due = self._nb_due(request, now) if bypass else None
        with db.transaction(self._conn):
            outcome = self._renew_request(request, session, now, bypass, nb_due)
            self._log(request, "renew", outcome, now, no_block)
        return self._loan_response("30", request, outcome, session, now)

    def _renew_request(self, request: Message, session: Session, now: dt.datetime, bypass: bool,
                       nb_due: dt.datetime | None) -> _Outcome:
        patron = db.find_patron(self._conn, request.get("AA"))
        if patron is None:
            return _Outcome(False, UNKNOWN_PATRON, renewal=True, patron=request.get("AA"))
        if self._pin_wrong(request, patron):
            return _Outcome(False, WRONG_PIN, renewal=True, patron=patron.member_id)
        item = db.find_item(self._conn, request.get("AB"))
        if item is None:
            return _Outcome(False, UNKNOWN_ITEM, renewal=True, patron=patron.member_id)
        loan = db.loan_of(self._conn, item.item)
        if loan is None or loan.patron != patron.member_id:
            return _Outcome(False, NOT_ON_LOAN, renewal=True, patron=patron.member_id, item=item)
        return self._renewal_rules(patron, loan, item, session, now, bypass, nb_due)

    def _nb_due(self, request: Message, now: dt.datetime) -> dt.datetime | None:
        """The no-block due date of an offline replay, in local time; None when blank or unreadable."""
        when = parse_date(request.fixed.get("nb_due_date", ""), tz=now.tzinfo)
        return when.astimezone(now.tzinfo) if when else None

    def _loan_response(self, command: str, request: Message, outcome: _Outcome, session: Session,
                       now: dt.datetime) -> Message:
        item = outcome.item
        fields = [("AO", session.institution), ("AA", outcome.patron or request.get("AA")),
                  ("AB", item.item if item else request.get("AB")), ("AJ", item.title if item else ""),
                  ("AH", format_date(outcome.due) if outcome.due else "")]
        if outcome.ok:
            fields.append(("CK", "001"))  # media type: book
        if outcome.message:
            fields.append(("AF", outcome.message))
        return make(command, fields, ok="1" if outcome.ok else "0",
                    renewal_ok=outcome.ok and outcome.renewal, magnetic_media="N",
                    desensitize=outcome.ok, transaction_date=now)

    def _log(self, request: Message, action: str, outcome: _Outcome, now: dt.datetime, no_block: bool,
             return_date: str | None = None) -> None:
        db.log_circulation(
            self._conn, at=now, action=action,
            item=outcome.item.item if outcome.item else request.get("AB"), patron=outcome.patron,
            ok=outcome.ok, message=outcome.message, no_block=no_block,
            transaction_date=self._request_date(request.fixed.get("transaction_date", ""), now.tzinfo),
            return_date=return_date, renewal=outcome.renewal)

    # -- 09 checkin

    def _checkin(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        now = self._now()
        no_block = request.fixed.get("no_block") == "Y"
        return_date = self._request_date(request.fixed.get("return_date", ""), now.tzinfo)
        with db.transaction(self._conn):
            outcome, alert = self._checkin_rules(request, behaviour, session)
            self._log(request, "checkin", outcome, now, no_block, return_date)
        item = outcome.item
        fields = [("AO", session.institution), ("AB", item.item if item else request.get("AB")),
                  ("AQ", item.location if item else ""), ("AJ", item.title if item else "")]
        if outcome.patron:
            fields.append(("AA", outcome.patron))
        fields += outcome.extra
        if outcome.message:
            fields.append(("AF", outcome.message))
        return make("10", fields, ok="1" if outcome.ok else "0", resensitize=outcome.ok and not alert,
                    magnetic_media="N", alert=alert, transaction_date=now)

    def _checkin_rules(self, request: Message, behaviour: Behaviour, session: Session) -> tuple[_Outcome, bool]:
        conn = self._conn
        item = db.find_item(conn, request.get("AB"))
        if item is None:
            return _Outcome(False, UNKNOWN_ITEM), False
        loan = db.loan_of(conn, item.item)
        if loan is None:
            return _Outcome(behaviour.checked_in_ok, NOT_ON_LOAN, item=item), False
        db.end_loan(conn, item.item)
        hold = next((h for h in db.holds_on(conn, item.item)
                     if h.state == "pending" and h.patron != loan.patron), None)
        if hold is None:
            db.set_status(conn, item.item, "available")
            return _Outcome(True, patron=loan.patron, item=item), False
        # The book is caught for the first patron in the queue: do not reshelve (alert).
        if hold.pickup_library == self._library(session):
            db.set_hold_state(conn, hold.id, "waiting")
            db.set_status(conn, item.item, "on_hold_shelf")
            return _Outcome(True, HOLD_WAITING, patron=loan.patron, item=item, extra=[("CV", "01")]), True
        db.set_hold_state(conn, hold.id, "in_transit")
        db.set_status(conn, item.item, "in_transit")
        return _Outcome(True, f"예약된 자료입니다: {hold.pickup_library} 도서관으로 보내 주세요", patron=loan.patron,
                        item=item, extra=[("CV", "02"), ("CT", hold.pickup_library)]), True

    # -- 17 item information

    def _item_information(self, request: Message, behaviour: Behaviour, session: Session) -> Message:
        now = self._now()
        standing = db.item_standing(self._rows, request.get("AB"))
        if standing is None:
            return make("18", [("AO", session.institution), ("AB", request.get("AB")), ("AJ", ""),
                               ("AF", UNKNOWN_ITEM)],
                        circulation_status="01", security_marker="00", fee_type="01", transaction_date=now)
        item, due, hold_count, transit_to = standing
        if due is not None:
            status = "04"
        else:
            status = _ITEM_STATUS.get(item.status, "03")
        fields = (("AO", session.institution), ("AB", item.item), ("AJ", item.title), ("CF", str(hold_count)),
                  ("AQ", item.location), ("AP", item.location), ("CK", "001"))
        if due is not None:
            fields += (("AH", format_date(due)),)
        if status == "10" and transit_to is not None:
            fields += (("CT", transit_to),)
        # The Message itself rather than make(): the kiosk's most frequent request, and every value
        # here is text already (encode checks the fixed fields' widths all the same).
        return Message("18", {"circulation_status": status, "security_marker": "02", "fee_type": "01",
                              "transaction_date": format_date(now)}, fields)


# An item's circulation status (18) by its shelf status, when it is not on loan.
_ITEM_STATUS = {"on_hold_shelf": "08", "in_transit": "10", "lost": "12", "missing": "13"}


def _page(entries: list[str], start: str, end: str) -> list[str]:
    """BP/BQ paging: 1-based and inclusive; blank or unreadable means from the first, to the last."""
    start, end = start.strip(), end.strip()
    first = int(start) if start.isascii() and start.isdigit() else 1  # "²".isdigit() is True
    last = int(end) if end.isascii() and end.isdigit() else len(entries)
    return entries[max(first, 1) - 1:max(last, 0)]
