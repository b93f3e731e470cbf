"""Lending while the library system cannot be reached.

`OfflineFirst` is the kiosk's `Library`: it asks the library system (the ILS) first, and when
that cannot be reached it decides from the member cache and the offline limits of the config.
A loan decided offline is not committed at the library (`committed=False`), so recording it puts
a checkout in the outbox, and the outbox worker replays it later with the original dates.

What the cache keeps of a member (refreshed at every online login, see `Store.cache_member`): a
keyed hash of the member's number and of each card seen, the library's verdict (a reason code,
no words), the expiry date, the loan counts, a keyed check of the PIN, and when; and, offline, a
count of wrong PINs in a row. No number, no name: an offline greeting is anonymous.

Returns need no decision and are always accepted: a book the kiosk has never seen is taken in
under its barcode, and its checkin waits in the outbox.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from kiosk.clock import Clock
from kiosk.library import CheckinAnswer, CheckoutAnswer, ItemFacts, Library, LibraryUnavailable, OutcomeUnknown
from kiosk.rules import Policy, Reason, Refusal, Standing, refusal
from kiosk.session import LoanLine
from kiosk.store import Store

log = logging.getLogger("kiosk.offline")

T = TypeVar("T")


@dataclass(frozen=True)
class OfflineRules:
    allowed: bool = True
    due_days: int = 14
    max_loans: int = 2  # per member, until the library has them
    unknown_members: str = "refuse"  # or "one-item"
    cache_days: int = 30
    require_pin: bool = True  # the kiosk asks for PINs: a cached member with no cached PIN check
    #                           is judged as one never seen (whoever holds the card is unknown)
    pin_tries: int = 3  # wrong PINs in a row (over any number of taps) before offline sign-in stops
    pin_lockout_s: float = 0.0  # for this long, by the monotonic clock; 0: until an online sign-in


class OfflineFirst:
    """The library system when it answers; the kiosk's own judgement from its cache when not."""

    def __init__(self, online: Library, store: Store, clock: Clock, policy: Policy, rules: OfflineRules) -> None:
        self._online = online
        self._store = store
        self._clock = clock
        self._policy = policy
        self._rules = rules
        self.offline_since: dt.datetime | None = None
        self.on_back_online: Callable[[], None] | None = None  # e.g. wake the outbox worker

    def __repr__(self) -> str:
        state = f"offline since {self.offline_since.isoformat()}" if self.offline_since else "online"
        return f"<OfflineFirst {state} via {self._online!r}>"

    @property
    def online_library(self) -> Library:
        return self._online

    @property
    def client(self) -> Any:
        """The online library's SIP2 client (for technicians' tools and tests)."""
        return getattr(self._online, "client", None)

    @property
    def offline(self) -> bool:
        """The library system did not answer the last time it was asked."""
        return self.offline_since is not None

    def _ask(self, request: Callable[[], T]) -> T:
        try:
            answer = request()
        except LibraryUnavailable as exc:
            if self.offline_since is None:
                log.warning("the library system cannot be reached (%s): working offline", exc)
                self.offline_since = self._clock.now()
            raise
        if self.offline_since is not None:
            log.warning("the library system answers again: back online")
            self.offline_since = None
            if self.on_back_online is not None:
                self.on_back_online()
        return answer

    # -- housekeeping

    def today(self) -> dt.date:
        return self._online.today()

    def keep_alive(self) -> None:
        """Off the UI thread: keep the connection alive, or, while offline, see whether the
        library answers again (the client's back-off keeps this cheap)."""
        if self.offline_since is None:
            keep_alive = getattr(self._online, "keep_alive", None)
            if keep_alive is not None:
                keep_alive()
            return
        probe = getattr(self._online, "probe", None)
        if probe is not None:
            try:
                self._ask(probe)
            except LibraryUnavailable:
                pass

    def close(self) -> None:
        close = getattr(self._online, "close", None)
        if close is not None:
            close()

    # -- members

    def find_member(self, credential: str) -> Standing | None:
        try:
            standing = self._ask(lambda: self._online.find_member(credential))
        except LibraryUnavailable:  # a lost answer to a question is as harmless as no answer
            return self._from_cache(credential, pin=None)
        if standing is not None:
            self._remember(credential, standing, pin=None)
            standing = self._with_queued(standing)
        return standing

    def verify_pin(self, credential: str, pin: str) -> Standing | None:
        try:
            standing = self._ask(lambda: self._online.verify_pin(credential, pin))
        except LibraryUnavailable:
            return self._from_cache(credential, pin=pin)
        if standing is not None:
            self._remember(credential, standing, pin=pin)
            standing = self._with_queued(standing)
        return standing

    def _with_queued(self, standing: Standing) -> Standing:
        """The library's standing of a member, with the loans this kiosk made offline that it
        has not heard of yet: its counts leave them out, so its limits are judged on the sum."""
        pending = self._store.undelivered_loans(self._store.key_of(standing.member_id) or "")
        if not pending:
            return standing
        here, network = standing.loans_here + pending, standing.loans_network + pending
        verdict = standing.verdict
        if verdict is None and here >= self._policy.library_limit:
            verdict = refusal(Reason.LIBRARY_LIMIT, limit=self._policy.library_limit)
        elif verdict is None and network >= self._policy.network_limit:
            verdict = refusal(Reason.NETWORK_LIMIT, limit=self._policy.network_limit)
        return replace(standing, loans_here=here, loans_network=network, verdict=verdict)

    def _remember(self, credential: str, standing: Standing, pin: str | None) -> None:
        verdict = standing.verdict.reason.value if standing.verdict is not None else ""
        try:
            self._store.cache_member(
                credential, standing.member_id, verdict=verdict, expires=standing.expires,
                loans_here=standing.loans_here, loans_network=standing.loans_network, pin=pin,
                at=self._clock.now())
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written must not stop a login
            log.error("the member cache was not updated: %s", exc)

    def _fresh(self, row: dict | None) -> dict | None:
        if row is None:
            return None
        cutoff = self._clock.now() - dt.timedelta(days=self._rules.cache_days)
        return row if dt.datetime.fromisoformat(row["cached_at"]) >= cutoff else None

    def _from_cache(self, credential: str, *, pin: str | None) -> Standing | None:
        """The member as the cache knows them, judged offline; None for a wrong PIN, and a
        refused sign-in (PIN_LOCKED) after `pin_tries` wrong ones in a row."""
        row = self._fresh(self._store.cached_member(credential))
        if row is not None and pin is not None and row["pin_check"] is not None:
            # The library counts wrong PINs online; offline the kiosk must, or a found card's
            # PIN could be tried without end (the session's own count restarts at every tap).
            if self._pin_locked(row):
                return self._locked(credential)
            if not self._store.pin_matches(row["member_key"], pin, row["pin_check"]):
                if self._store.note_wrong_pin(row["member_key"]) >= self._rules.pin_tries:
                    log.warning("offline: %d wrong PINs in a row for one member: no offline sign-in "
                                "for them now", self._rules.pin_tries)
                    return self._locked(credential)
                return None
            if row["pin_failures"]:
                self._store.clear_wrong_pins(row["member_key"])
        here, network = self._count(row)
        return Standing(
            member_id=credential, name="",
            expires=dt.date.fromisoformat(row["expires"]) if row and row["expires"] else None,
            loans_here=here, loans_network=network,
            library_decides=True, verdict=self._judge(credential, row, (here, network)), offline=True,
        )

    def _pin_locked(self, row: dict) -> bool:
        """Too many wrong PINs offline for this member, and the lockout (if it ends) not over."""
        if row["pin_failures"] < self._rules.pin_tries:
            return False
        return not self._rules.pin_lockout_s or self._store.since_wrong_pin_s(row) < self._rules.pin_lockout_s

    @staticmethod
    def _locked(credential: str) -> Standing:
        """The answer for a card locked by wrong PINs offline: the session refuses the sign-in."""
        return Standing(member_id=credential, name="", library_decides=True, offline=True,
                        verdict=refusal(Reason.PIN_LOCKED, offline="yes"))

    def _count(self, row: dict | None) -> tuple[int, int]:
        if row is None:
            return 0, 0
        since = self._store.uncounted_loans(row["member_key"])
        return row["loans_here"] + since, row["loans_network"] + since

    def _judge(self, member_id: str, row: dict | None,
               counts: tuple[int, int] | None = None) -> Refusal | None:
        """Why the kiosk will not lend this member one more book while offline, or None.
        `counts`: the member's (here, network) loans, when the caller has them already."""
        rules, policy = self._rules, self._policy
        if not rules.allowed:
            return refusal(Reason.OFFLINE_NO_LENDING)
        pending = self._store.undelivered_loans(self._store.key_of(member_id) or "")
        if row is not None and row["verdict"]:  # the library's last word holds, PIN or not
            try:
                return refusal(Reason(row["verdict"]))
            except ValueError:
                return refusal(Reason.BLOCKED)
        if row is not None and row["expires"] and dt.date.fromisoformat(row["expires"]) < self.today():
            return refusal(Reason.EXPIRED, date=row["expires"])
        if row is None or (rules.require_pin and row["pin_check"] is None):
            # Never seen online, or never with the PIN checked there: nothing vouches for
            # whoever holds the card now.
            if rules.unknown_members == "one-item":
                return refusal(Reason.OFFLINE_LIMIT, limit=1) if pending >= 1 else None
            return refusal(Reason.OFFLINE_NEW_MEMBER)
        here, network = counts or self._count(row)
        if here >= policy.library_limit:
            return refusal(Reason.LIBRARY_LIMIT, limit=policy.library_limit)
        if network >= policy.network_limit:
            return refusal(Reason.NETWORK_LIMIT, limit=policy.network_limit)
        if pending >= rules.max_loans:
            return refusal(Reason.OFFLINE_LIMIT, limit=rules.max_loans)
        return None

    def end_session(self, member_id: str) -> None:
        try:
            self._online.end_session(member_id)
        except LibraryUnavailable:
            pass  # the patron has gone; nothing to undo

    # -- loans and returns

    def check_out(self, member_id: str, item: str) -> CheckoutAnswer:
        """The library's answer; offline, the kiosk's (not committed: the outbox replays it).
        An unanswered request stays unanswered (OutcomeUnknown): the kiosk takes it back."""
        try:
            return self._ask(lambda: self._online.check_out(member_id, item))
        except OutcomeUnknown:
            raise
        except LibraryUnavailable:
            pass
        why = self._judge(member_id, self._fresh(self._store.cached_member(member_id)))
        if why is not None:
            return CheckoutAnswer(refusal=why)
        log.info("lent offline: %s (due in %d days)", item, self._rules.due_days)
        return CheckoutAnswer(due=self.today() + dt.timedelta(days=self._rules.due_days), committed=False)

    def cancel_checkout(self, member_id: str, item: str) -> CheckinAnswer | None:
        return self._ask(lambda: self._online.cancel_checkout(member_id, item))

    def check_in(self, item: str, returned_at: dt.datetime) -> CheckinAnswer:
        return self._ask(lambda: self._online.check_in(item, returned_at))

    def item(self, item: str) -> ItemFacts | None:
        try:
            return self._ask(lambda: self._online.item(item))
        except LibraryUnavailable:
            # Returns are always accepted: the library learns of it from the queued checkin, and
            # a copy it does not know becomes a dead letter for staff.
            return ItemFacts(item=item, title=item)

    def renew(self, member_id: str, item: str) -> CheckoutAnswer:
        return self._ask(lambda: self._online.renew(member_id, item))

    def loans(self, member_id: str) -> tuple[LoanLine, ...]:
        return self._ask(lambda: self._online.loans(member_id))


def rules_from(section: Any, *, require_pin: bool = True) -> OfflineRules:
    """The `[offline]` section of the config as rules."""
    return OfflineRules(allowed=section.allowed, due_days=section.due_days, max_loans=section.max_loans,
                        unknown_members=section.unknown_members, cache_days=section.cache_days,
                        require_pin=require_pin, pin_tries=section.pin_tries,
                        pin_lockout_s=section.pin_lockout_s)
