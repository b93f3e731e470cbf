"""Circulation rules: who may borrow, how many, until when; and the reason for every refusal.

Pure: the caller passes today's date. Every limit comes from the config (책이음 sources disagree
on the network-wide limit: 20 or 30).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field, replace


class Reason(enum.Enum):
    """Why the kiosk says no. The UI turns each into a message and a next step (ko, en)."""

    BLOCKED = "blocked"
    CARD_LOST = "card-lost"
    EXPIRED = "expired"
    FINES = "fines"
    SUSPENDED = "suspended"  # 대출정지: a loan ban for late returns
    OVERDUE = "overdue"
    LIBRARY_LIMIT = "library-limit"
    NETWORK_LIMIT = "network-limit"
    UNKNOWN_CARD = "unknown-card"
    UNKNOWN_BARCODE = "unknown-barcode"
    WRONG_PIN = "wrong-pin"
    PIN_LOCKED = "pin-locked"
    NOT_OUR_ITEM = "not-our-item"
    ISBN_NOT_COPY = "isbn-not-copy"
    ALREADY_IN_LOCKER = "already-in-locker"
    ITEM_NOT_AVAILABLE = "item-not-available"
    NO_EMPTY_LOCKER = "no-empty-locker"
    DOOR_TIMEOUT = "door-timeout"
    LOCK_FAULT = "lock-fault"
    STORE_FAULT = "store-fault"
    SYSTEM_FAULT = "system-fault"  # anything unexpected: logged with details for the technician
    ILS_UNAVAILABLE = "ils-unavailable"
    ILS_REFUSED = "ils-refused"
    ON_HOLD = "on-hold"  # reserved for another member
    CHARGED_ELSEWHERE = "charged-elsewhere"  # the library shows the copy on loan to someone else
    RENEWAL_REFUSED = "renewal-refused"
    OFFLINE_NEW_MEMBER = "offline-new-member"  # offline, and never seen online: cannot judge
    OFFLINE_LIMIT = "offline-limit"  # offline, and as many books as the kiosk lends offline
    OFFLINE_NO_LENDING = "offline-no-lending"  # offline lending is switched off
    OUT_OF_SERVICE = "out-of-service"  # the kiosk cannot keep records (a damaged database)


@dataclass(frozen=True)
class Refusal:
    reason: Reason
    # Facts the message needs (a limit, an amount, a date, the ILS's own words), as text.
    details: tuple[tuple[str, str], ...] = ()

    def detail(self, key: str, default: str = "") -> str:
        return dict(self.details).get(key, default)


def refusal(reason: Reason, **details: object) -> Refusal:
    return Refusal(reason, tuple((k, str(v)) for k, v in details.items()))


@dataclass(frozen=True)
class Policy:
    loan_days: int = 14
    library_limit: int = 5  # 책이음: per library
    network_limit: int = 30  # 책이음: across all participating libraries
    fine_limit_won: int = 0  # outstanding fines above this stop lending
    block_on_overdue: bool = True


@dataclass(frozen=True)
class Standing:
    """A member's standing as the library reports it at login."""

    member_id: str
    name: str
    blocked: bool = False
    card_lost: bool = False
    expires: dt.date | None = None
    fines_won: int = 0
    suspended_until: dt.date | None = None
    overdue: int = 0
    loans_here: int = 0
    loans_network: int = 0  # includes loans_here
    messages: tuple[str, ...] = field(default=())  # the ILS's screen messages, shown as given
    # Set when the library system (the ILS) judges every loan itself: the kiosk then does not
    # second-guess it with its own limits, and `verdict` is the library's "no" at login, if any.
    library_decides: bool = False
    verdict: Refusal | None = None
    # Judged by the kiosk from its cache because the library system could not be reached: the
    # loans go to the library later, and the screen says so.
    offline: bool = False


def borrow_refusal(member: Standing, policy: Policy, today: dt.date) -> Refusal | None:
    """Why this member may not borrow one more book today, or None when they may."""
    if member.library_decides:
        return member.verdict
    if member.card_lost:
        return refusal(Reason.CARD_LOST)
    if member.blocked:
        return refusal(Reason.BLOCKED)
    if member.expires is not None and member.expires < today:
        return refusal(Reason.EXPIRED, date=member.expires.isoformat())
    if member.fines_won > policy.fine_limit_won:
        return refusal(Reason.FINES, amount=member.fines_won)
    if member.suspended_until is not None and member.suspended_until >= today:
        return refusal(Reason.SUSPENDED, date=member.suspended_until.isoformat())
    if policy.block_on_overdue and member.overdue > 0:
        return refusal(Reason.OVERDUE, count=member.overdue)
    if member.loans_here >= policy.library_limit:
        return refusal(Reason.LIBRARY_LIMIT, limit=policy.library_limit)
    if member.loans_network >= policy.network_limit:
        return refusal(Reason.NETWORK_LIMIT, limit=policy.network_limit)
    return None


def with_one_more_loan(member: Standing) -> Standing:
    """The standing after one more loan (several books in one visit)."""
    return replace(member, loans_here=member.loans_here + 1, loans_network=member.loans_network + 1)


_LIMITS = (Reason.LIBRARY_LIMIT, Reason.NETWORK_LIMIT, Reason.OFFLINE_LIMIT)


def with_one_less_loan(member: Standing) -> Standing:
    """The standing after a return in the same visit: one loan fewer, and a "limit reached" no
    longer holds (the library, or the offline rules, judge the next loan afresh). Should the
    book not have been the member's own, that judgement still refuses what it must."""
    verdict = member.verdict
    if verdict is not None and verdict.reason in _LIMITS:
        verdict = None
    return replace(member, loans_here=max(0, member.loans_here - 1),
                   loans_network=max(0, member.loans_network - 1), verdict=verdict)


def due_date(today: dt.date, policy: Policy) -> dt.date:
    return today + dt.timedelta(days=policy.loan_days)
