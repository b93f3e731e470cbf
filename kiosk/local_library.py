"""A library system the kiosk runs itself: members from the demo seed, loans from the store.

It stands in for the ILS when the config says `backend = "local"` (the demo, and kiosks that lend
only their own stock) and decides with the same rules the kiosk applies offline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kiosk import demo
from kiosk.clock import Clock
from kiosk.library import CheckinAnswer, CheckoutAnswer, ItemFacts
from kiosk.rules import Policy, Reason, Standing, borrow_refusal, due_date, refusal
from kiosk.session import LoanLine
from kiosk.store import Item, Store


@dataclass(frozen=True)
class _Member:
    record: demo.DemoMember
    pin_digest: bytes
    expires: dt.date
    suspended_until: dt.date | None


def _digest(member_id: str, pin: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", pin.encode(), member_id.encode(), 1000)


class LocalLibrary:
    """Implements kiosk.library.Library over demo members and the kiosk's own store."""

    def __init__(self, members: Iterable[demo.DemoMember], store: Store, policy: Policy, clock: Clock) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        start = self.today()
        self._by_id: dict[str, _Member] = {}
        self._by_card: dict[str, _Member] = {}
        for m in members:
            suspended = start + dt.timedelta(days=m.suspended_days) if m.suspended_days else None
            member = _Member(m, _digest(m.member_id, m.pin), start + dt.timedelta(days=m.expires_in_days), suspended)
            self._by_id[m.member_id] = member
            self._by_card[m.card_uid.upper()] = member

    def __repr__(self) -> str:
        return f"<LocalLibrary members={len(self._by_id)}>"

    def today(self) -> dt.date:
        return self._clock.now().date()

    def _resolve(self, credential: str) -> _Member | None:
        return self._by_id.get(credential) or self._by_card.get(credential.upper())

    def _standing(self, member: _Member) -> Standing:
        rec = member.record
        today = self.today()
        loans = self._store.loans_of(rec.member_id, today)
        return Standing(
            member_id=rec.member_id,
            name=rec.name,
            blocked=rec.blocked,
            card_lost=rec.card_lost,
            expires=member.expires,
            fines_won=rec.fines_won,
            suspended_until=member.suspended_until,
            overdue=sum(1 for line in loans if line.overdue),
            loans_here=len(loans),
            loans_network=len(loans) + rec.loans_elsewhere,
        )

    def find_member(self, credential: str) -> Standing | None:
        member = self._resolve(credential)
        return self._standing(member) if member else None

    def verify_pin(self, credential: str, pin: str) -> Standing | None:
        member = self._resolve(credential)
        if member is None or not hmac.compare_digest(member.pin_digest, _digest(member.record.member_id, pin)):
            return None
        return self._standing(member)

    def check_out(self, member_id: str, item: str) -> CheckoutAnswer:
        member = self._by_id.get(member_id)
        if member is None:
            return CheckoutAnswer(refusal=refusal(Reason.UNKNOWN_CARD))
        why = borrow_refusal(self._standing(member), self._policy, self.today())
        if why is not None:
            return CheckoutAnswer(refusal=why)
        if self._store.slot_of(item) is None:
            return CheckoutAnswer(refusal=refusal(Reason.ITEM_NOT_AVAILABLE))
        return CheckoutAnswer(due=due_date(self.today(), self._policy), committed=True)

    def cancel_checkout(self, member_id: str, item: str) -> CheckinAnswer | None:
        return None  # nothing was recorded anywhere before the door opened

    def check_in(self, item: str, returned_at: dt.datetime) -> CheckinAnswer:
        return CheckinAnswer(ok=True)  # the store has recorded the return: that is the library

    def item(self, item: str) -> ItemFacts | None:
        return None  # the kiosk's own catalog is the whole library

    def renew(self, member_id: str, item: str) -> CheckoutAnswer:
        today = self.today()
        line = next((x for x in self._store.loans_of(member_id, today) if x.item == item), None)
        if line is None:
            return CheckoutAnswer(refusal=refusal(Reason.RENEWAL_REFUSED))
        member = self._by_id.get(member_id)
        if member is not None:
            why = borrow_refusal(self._standing(member), replace(self._policy, library_limit=10**6,
                                                                 network_limit=10**6), today)
            if why is not None:
                return CheckoutAnswer(refusal=why)
        due = due_date(today, self._policy)
        self._store.renew_loan(item, due)
        return CheckoutAnswer(due=due)

    def loans(self, member_id: str) -> tuple[LoanLine, ...]:
        return self._store.loans_of(member_id, self.today())

    def end_session(self, member_id: str) -> None:
        return None


def seed_demo(store: Store, clock: Clock, slots: int, *, whole_library: bool = True) -> bool:
    """Fill an empty store with the demo lockers and books. False if it had data.

    `whole_library`: the kiosk is the library (local backend): the whole catalog and the
    members' loans. Otherwise an ILS holds those, and the kiosk knows only its lockers' books.
    """
    if store.db["items"].count:
        return False
    now = clock.now()
    stocked = min(slots, 24)
    catalog = demo.items() if whole_library else demo.items()[:stocked]
    store.add_items(Item(item, title, author) for item, title, author in catalog)
    store.ensure_slots(slots, now)
    for slot in range(1, stocked + 1):
        store.put_in_slot(slot, demo.accession(slot), now)
    if not whole_library:
        return True
    for item, member_id, loaned_on, due in demo.seed_loans(now.date()):
        loaned_at = dt.datetime.combine(loaned_on, dt.time(11, 0), tzinfo=now.tzinfo)
        store.add_loan(item, member_id, loaned_at, due, origin="seed")
    return True
