"""The library system (ILS) over SIP2: `kiosk.library.Library` on top of the SIP2 client.

The ILS decides every loan; the kiosk shows its verdict in the patron's language. A refusal is
mapped to a friendly reason from structured facts first (the patron's status flags, the item's
circulation status), from the ILS's words only as a last resort, and the ILS's own screen message
always travels with it.

A patron's PIN is kept in memory for the session only (for servers that want it with every
request) and forgotten at logout.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from typing import TypeVar

from kiosk.clock import Clock
from kiosk.library import CheckinAnswer, CheckoutAnswer, ItemFacts, LibraryUnavailable, OutcomeUnknown
from kiosk.rules import Policy, Reason, Refusal, Standing, refusal
from kiosk.session import LoanLine
from kiosk.store import UNKNOWN_SETTLE_S
from sync.sip2.client import Client, OutcomeUnknown as Sip2OutcomeUnknown
from sync.sip2.codec import Sip2Error
from sync.sip2.results import CheckoutResult, PatronInfo

log = logging.getLogger("kiosk.ils")

T = TypeVar("T")

# Words servers use in screen messages (Koha, Evergreen, FOLIO in English; Korean systems), for
# when nothing structured explains a refusal. Checked in order.
_WORDS: tuple[tuple[Reason, re.Pattern[str]], ...] = (
    (Reason.ON_HOLD, re.compile(r"hold|reserv|예약", re.I)),
    (Reason.CHARGED_ELSEWHERE, re.compile(r"checked out to (another|someone)|already (checked out|charged)|다른 (회원|이용자)", re.I)),
    (Reason.CARD_LOST, re.compile(r"card (is |was )?(reported )?lost|분실", re.I)),
    (Reason.EXPIRED, re.compile(r"expired|만료", re.I)),
    (Reason.FINES, re.compile(r"fine|fee|연체료|벌금|미납", re.I)),
    (Reason.OVERDUE, re.compile(r"overdue|연체", re.I)),
    (Reason.SUSPENDED, re.compile(r"debarred|suspend|대출\s*정지", re.I)),
    (Reason.LIBRARY_LIMIT, re.compile(r"limit|too many|maximum|한도|초과", re.I)),
    (Reason.BLOCKED, re.compile(r"block|barred|restrict|denied|제한", re.I)),
)

MAX_LOANS_LISTED = 50  # my loans asks for at most this many (one 17 each, for titles and dates)


class Sip2Library:
    """Implements kiosk.library.Library with one SIP2 client."""

    def __init__(self, client: Client, *, clock: Clock, policy: Policy, send_pin: bool = True) -> None:
        self._client = client
        self._clock = clock
        self._policy = policy
        self._send_pin = send_pin
        self._pins: dict[str, str] = {}
        # Due dates as my loans last showed them, and renewals that went unanswered: (member,
        # item) → (monotonic time, the due date before). Such a renewal is settled (17: did the
        # due date move?) before another is sent, or one request of the patron's could renew twice.
        self._due_seen: dict[str, tuple[dt.date | None, str]] = {}  # item → (due, or its words)
        self._unanswered_renewals: dict[tuple[str, str], tuple[float, tuple[dt.date | None, str]]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Sip2Library {self._client!r}>"

    @property
    def client(self) -> Client:
        return self._client

    def today(self) -> dt.date:
        return self._clock.now().date()

    def keep_alive(self) -> None:
        """Send the 99 keep-alive when the connection has been idle long enough (a background
        thread calls this; the UI never waits on it)."""
        try:
            self._client.keep_alive()
        except Sip2Error as exc:
            log.info("keep-alive: %s", exc)

    def probe(self) -> None:
        """Ask the library system whether it answers (99); raises LibraryUnavailable if not."""
        self._call(self._client.sc_status)

    def close(self) -> None:
        with self._lock:
            self._pins.clear()
        self._client.close()

    def _call(self, request: Callable[[], T]) -> T:
        try:
            return request()
        except Sip2OutcomeUnknown as exc:
            raise OutcomeUnknown(str(exc)) from exc
        except Sip2Error as exc:  # unavailable, refused login, a server we cannot understand
            raise LibraryUnavailable(str(exc)) from exc

    def _pin(self, member_id: str) -> str | None:
        with self._lock:
            return self._pins.get(member_id) if self._send_pin else None

    # -- members

    def find_member(self, credential: str) -> Standing | None:
        info = self._call(lambda: self._client.patron_information(credential))
        if info.valid is False:
            return None
        return self._standing(info, credential)

    def verify_pin(self, credential: str, pin: str) -> Standing | None:
        info = self._call(lambda: self._client.patron_information(credential, pin, verify_pin=True))
        pin_ok = info.pin_ok
        if pin_ok is None and info.valid is not False:
            # Some servers say nothing of the PIN in 64; 23 patron status must (CQ).
            pin_ok = self._call(lambda: self._client.patron_status(credential, pin, verify_pin=True)).pin_ok
            if pin_ok is None:
                log.warning("the library system does not say whether PINs are right; refusing the login")
        if info.valid is False or pin_ok is not True:
            return None
        standing = self._standing(info, credential)
        with self._lock:
            self._pins[standing.member_id] = pin
        return standing

    def end_session(self, member_id: str) -> None:
        pin = self._pin(member_id)
        with self._lock:
            self._pins.pop(member_id, None)
        try:
            self._client.end_session(member_id, pin)
        except Sip2Error as exc:  # the patron has gone; nothing to undo
            log.info("end of session not acknowledged: %s", exc)

    def _standing(self, info: PatronInfo, credential: str) -> Standing:
        member_id = info.patron or credential
        return Standing(
            member_id=member_id,
            name=info.name,
            blocked="charge_privileges_denied" in info.flags,
            card_lost="card_reported_lost" in info.flags,
            expires=info.expires,
            fines_won=_won(info.fee_amount),
            overdue=info.overdue,
            loans_here=info.charged,
            loans_network=info.charged,
            messages=tuple(info.screen_messages),
            library_decides=True,
            verdict=self._verdict(info),
        )

    def _verdict(self, info: PatronInfo) -> Refusal | None:
        """Why the ILS will not lend to this patron now, from its status flags; None if it will."""
        flags = info.flags
        blocking = {"charge_privileges_denied", "card_reported_lost", "too_many_items_charged",
                    "too_many_items_overdue", "excessive_outstanding_fines", "excessive_outstanding_fees"}
        if not flags & blocking:
            return None
        message = " ".join(info.screen_messages)
        if "card_reported_lost" in flags:
            return refusal(Reason.CARD_LOST, message=message)
        if info.expires is not None and info.expires < self.today():
            return refusal(Reason.EXPIRED, date=info.expires.isoformat(), message=message)
        if flags & {"excessive_outstanding_fines", "excessive_outstanding_fees"}:
            details = {"amount": _won(info.fee_amount)} if _won(info.fee_amount) else {}
            return refusal(Reason.FINES, message=message, **details)
        if "too_many_items_overdue" in flags:
            return refusal(Reason.OVERDUE, count=info.overdue or "", message=message)
        if "too_many_items_charged" in flags:
            if info.charged_limit and info.charged < info.charged_limit:
                # SIP2 has one flag for every loan limit: with room left here, the limit reached
                # is the network's (책이음: loans at all the member's libraries together).
                return refusal(Reason.NETWORK_LIMIT, limit=self._policy.network_limit, message=message)
            limit = info.charged_limit or info.charged
            return refusal(Reason.LIBRARY_LIMIT, limit=limit or "", message=message)
        return _from_words(message, default=Reason.BLOCKED)

    # -- loans

    def check_out(self, member_id: str, item: str) -> CheckoutAnswer:
        """11 checkout. An unanswered one raises OutcomeUnknown: the kiosk then takes the loan
        back with `cancel_checkout`, which asks 17 first."""
        pin = self._pin(member_id)
        self._forget_renewals(item)
        result = self._call(lambda: self._client.checkout(member_id, item, pin=pin))
        if result.ok:
            return self._lent(result.due, result.due_text)
        return CheckoutAnswer(refusal=self._why_not(member_id, item, result))

    def _lent(self, due: dt.datetime | None, due_text: str) -> CheckoutAnswer:
        """A loan (or renewal) the library made. A due date it gave in words the kiosk cannot
        read is shown in those words (the records get the kiosk's own reckoning); none at all
        is reckoned by the policy's loan days."""
        if due is not None:
            return CheckoutAnswer(due=due.date(), committed=True)
        return CheckoutAnswer(due=self.today() + dt.timedelta(days=self._policy.loan_days), committed=True,
                              due_text=due_text.strip())

    def cancel_checkout(self, member_id: str, item: str) -> CheckinAnswer | None:
        """Idempotent: asks 17 first, and checks the item in only when it is on loan."""
        facts = self._call(lambda: self._client.item_information(item))
        if facts.circulation_status not in ("04", "05"):
            return None  # the loan never happened, or has been taken back already
        result = self._call(lambda: self._client.checkin(item, return_date=self._clock.now()))
        # Refused (ok False): the caller queues it, to reach staff as a dead letter.
        return CheckinAnswer(ok=result.ok, alert=result.alert, message=" ".join(result.screen_messages))

    def _why_not(self, member_id: str, item: str, result: CheckoutResult) -> Refusal:
        message = " ".join(result.screen_messages)
        try:
            facts = self._client.item_information(item)
            if facts.circulation_status in ("04", "05"):
                return refusal(Reason.CHARGED_ELSEWHERE, message=message)
            # The patron's own standing first: Koha counts the patron's own hold in CF (and
            # older servers show any held copy as 08), so a hold alone does not mean someone else's.
            info = self._client.patron_information(member_id, self._pin(member_id))
            verdict = self._verdict(info)
            if verdict is not None:
                # the patron's standing in the library's words; else the checkout refusal's
                return verdict if verdict.detail("message") else refusal(
                    verdict.reason, **{**dict(verdict.details), "message": message})
            held = facts.circulation_status == "08" or (facts.hold_queue_length or 0) > 0
            if held and facts.hold_patron != member_id:
                return refusal(Reason.ON_HOLD, message=message)
        except Sip2Error as exc:
            log.info("could not ask why the checkout was refused: %s", exc)
        return _from_words(message, default=Reason.ILS_REFUSED)

    def renew(self, member_id: str, item: str) -> CheckoutAnswer:
        pin = self._pin(member_id)
        with self._lock:
            unanswered = self._unanswered_renewals.get((member_id, item))
        if unanswered is not None:
            settled = self._settle_renewal(member_id, item, *unanswered)
            if settled is not None:
                return settled
        try:
            result = self._call(lambda: self._client.renew(member_id, item, pin=pin))
        except OutcomeUnknown:
            with self._lock:
                self._unanswered_renewals[(member_id, item)] = (self._clock.monotonic(),
                                                                self._due_seen.get(item, _UNSEEN))
            raise
        if result.ok:
            answer = self._lent(result.due, result.due_text)
            with self._lock:
                self._due_seen[item] = (answer.due if not answer.due_text else None, answer.due_text)
            return answer
        return CheckoutAnswer(refusal=refusal(Reason.RENEWAL_REFUSED, message=" ".join(result.screen_messages)))

    def _settle_renewal(self, member_id: str, item: str, sent_at: float,
                        seen: tuple[dt.date | None, str]) -> CheckoutAnswer | None:
        """An earlier renewal of this loan went unanswered. Its answer, when the library shows
        it made (the due date moved); None when it shows it was not, and one may be sent now.
        Raises LibraryUnavailable while it may still be landing (the settling time). When the
        library cannot show it either way (a renewal today would not move the due date, or the
        kiosk never saw one), the patron is sent to staff: no second renewal on a guess."""
        facts = self._call(lambda: self._client.item_information(item))
        due, text = (facts.due.date() if facts.due else None), facts.due_text.strip()
        due_before, text_before = seen
        moved = (due is not None and due_before is not None and due > due_before) or \
            (due_before is None and bool(text_before) and bool(text) and text != text_before)
        if moved:
            with self._lock:
                self._unanswered_renewals.pop((member_id, item), None)
                self._due_seen[item] = (due, text if due is None else "")
            return self._lent(facts.due, text)
        if self._clock.monotonic() - sent_at < UNKNOWN_SETTLE_S:
            raise LibraryUnavailable("an earlier renewal of this item may still reach the library")
        could_move = due_before is not None and due_before < self.today() + dt.timedelta(days=self._policy.loan_days)
        if not could_move:
            return CheckoutAnswer(refusal=refusal(Reason.RENEWAL_REFUSED, unconfirmed="yes"))
        with self._lock:
            self._unanswered_renewals.pop((member_id, item), None)
        return None

    def _forget_renewals(self, item: str) -> None:
        """A loan of `item` ended or began: what was noted of its renewals no longer applies."""
        with self._lock:
            self._due_seen.pop(item, None)
            for key in [key for key in self._unanswered_renewals if key[1] == item]:
                del self._unanswered_renewals[key]

    def check_in(self, item: str, returned_at: dt.datetime) -> CheckinAnswer:
        self._forget_renewals(item)
        result = self._call(lambda: self._client.checkin(item, return_date=returned_at))
        message = " ".join(result.screen_messages)
        return CheckinAnswer(ok=result.ok, alert=result.alert, message=message)

    def item(self, item: str) -> ItemFacts | None:
        info = self._call(lambda: self._client.item_information(item))
        if not info.title.strip():
            return None  # servers answer an unknown item with a blank title
        return ItemFacts(item=info.item or item, title=info.title)

    def loans(self, member_id: str) -> tuple[LoanLine, ...]:
        pin = self._pin(member_id)
        info = self._call(lambda: self._client.patron_information(
            member_id, pin, summary="charged", start=1, end=MAX_LOANS_LISTED))
        overdue = set(info.overdue_items)
        today = self.today()
        lines = []
        for item in info.charged_items[:MAX_LOANS_LISTED]:
            facts = self._call(lambda item=item: self._client.item_information(item))
            due = facts.due.date() if facts.due else None
            with self._lock:
                self._due_seen[item] = (due, "" if due else facts.due_text.strip())
            late = item in overdue or (due is not None and due < today)
            lines.append(LoanLine(item, facts.title or item, due, overdue=late,
                                  due_text="" if due else facts.due_text.strip()))
        lines.sort(key=lambda line: (line.due or dt.date.max, line.item))
        return tuple(lines)


_UNSEEN: tuple[dt.date | None, str] = (None, "")  # a loan whose due date my loans never showed


def _won(amount: float | None) -> int:
    """A fee amount as whole won; nonsense (negative, not finite, absurd) reads as 0."""
    if amount is None or amount != amount or amount in (float("inf"), float("-inf")):
        return 0
    return max(0, min(int(amount), 10**12))


_DATE = re.compile(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})")


def _from_words(message: str, *, default: Reason) -> Refusal:
    for reason, pattern in _WORDS:
        if message and pattern.search(message):
            found = _DATE.search(message) if reason in (Reason.SUSPENDED, Reason.EXPIRED) else None
            if found:
                try:
                    day = dt.date(*(int(g) for g in found.groups()))
                    return refusal(reason, date=day.isoformat(), message=message)
                except ValueError:
                    pass
            return refusal(reason, message=message)
    return refusal(default, message=message)
