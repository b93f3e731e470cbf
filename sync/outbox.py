"""The outbox worker: delivers recorded loans and returns to the library system, exactly once.

SIP2 has no idempotency key, and Koha and Evergreen turn a repeated checkout into a renewal, so
the worker never sends blind:

* events of one item go in order; a dead letter holds back the later events of its item;
* an event is marked in flight (committed) before it is sent;
* before any checkout or checkin goes out, item information (17) says whether the library
  already has that state: an event whose earlier attempt got no answer (or whose sender died) is
  then settled without resending, and a checkout of a copy the library already shows on loan is
  not replayed (it would become a renewal): it goes to staff as a dead letter;
* replays carry no block = Y and the original transaction date; checkouts the due date the kiosk
  gave, checkins the real return date;
* a library that cannot be reached puts the event back with capped exponential back-off and full
  jitter, and the drain stops there; no answer after sending marks it unknown;
* an event stamped while the kiosk's clock was not synchronised (a Pi without a battery clock,
  booted without network) does not present its date as a fact: it is replayed with the time of
  the replay and lets the library set the due date, and staff see it flagged in the queue.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from kiosk.clock import Clock, boot_id
from kiosk.session import DoorJob
from kiosk.store import UNKNOWN_SETTLE_S, Stamp, Store, sender_alive, sender_id, sending
from sync.sip2.client import Client, OutcomeUnknown, Sip2Unavailable
from sync.sip2.codec import Sip2Error
from sync.sip2.results import ItemInfo

log = logging.getLogger("kiosk.outbox")

WORKER_FAILURES_TO_DEAD_LETTER = 3  # tries that fail on a bug of the kiosk's own before staff are asked
ON_LOAN = ("04", "05")  # item information: charged (05: charged, no recall before a date)
DUE_TIME = dt.time(23, 59, 59)


@dataclass
class DrainReport:
    delivered: int = 0
    dead: int = 0
    unknown: int = 0
    deferred: int = 0
    stopped: str = "nothing more to send"
    dead_letters: list[str] = field(default_factory=list)  # event ids

    def __str__(self) -> str:
        return (f"{self.delivered} delivered, {self.dead} dead letter(s), {self.unknown} unknown, "
                f"{self.deferred} deferred; stopped: {self.stopped}")


class OutboxWorker:
    """Drains one store's outbox into one library system through a SIP2 client."""

    def __init__(self, store: Store, client: Client, clock: Clock, *, backoff_initial_s: float = 5.0,
                 backoff_max_s: float = 600.0, rng: random.Random | None = None, boot: str | None = None,
                 retention: Any = None, owns: bool = False, purge_every_s: float = 3600.0,
                 batch: int = 32, item_lock: Any = None) -> None:
        self._store = store
        self._client = client
        self._clock = clock
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._rng = rng or random.Random()
        self._boot = boot if boot is not None else boot_id()
        self._me = sender_id(self._boot, uuid.uuid4().hex[:8])  # this worker, not just this process
        self._failures = 0
        self._retention = retention  # the config's [offline] section (retention days), or None
        self._owns = owns  # close the store and the client with the worker
        self._purge_every_s = purge_every_s
        self._purged_at: float | None = None
        # Events claimed together, in one durable commit: a crash then leaves them all in flight
        # under a dead sender, and each is settled with 17 as after any crash.
        self._batch = max(1, batch)
        # Held while a book in a locker is audited, and by the kiosk while it asks the library
        # for a loan: the audit never takes back a loan a patron is making at that moment.
        self._item_lock = item_lock if item_lock is not None else threading.Lock()

    def __repr__(self) -> str:
        return f"<OutboxWorker {self._store.path} via {self._client!r}>"

    def interrupt(self) -> None:
        """From another thread: cut short a request in flight (it ends unanswered, and its event
        is settled later as any unanswered one); the drain then stops."""
        self._client.close()

    def close(self) -> None:
        if self._owns:
            self._client.close()
            self._store.close()

    def housekeeping(self) -> dict[str, int]:
        """Enforce the retention of delivered events and of the member cache (at most hourly)."""
        now = self._clock.monotonic()
        if self._retention is None or (self._purged_at is not None and now - self._purged_at < self._purge_every_s):
            return {}
        self._purged_at = now
        deleted = self._store.purge(self._clock.now(), delivered_days=self._retention.delivered_retention_days,
                                    cache_days=self._retention.cache_days)
        self._store.checkpoint(truncate=True)  # old page images (scrubbed numbers) leave the log too
        if any(deleted.values()):
            log.info("retention: deleted %s", ", ".join(f"{n} {table}" for table, n in deleted.items() if n))
        return deleted

    def drain(self, limit: int | None = None, *, retry_now: bool = False) -> DrainReport:
        """Deliver events until none is due, the library is unreachable, or `limit` is reached.

        `retry_now`: the library is known to answer again (or a technician asked): events
        waiting out a back-off are due now, and so is the connection."""
        if retry_now:
            self._store.retry_now()
            self._client.next_attempt_at = None
            self._failures = 0
        report = DrainReport()
        if self._store.locker_audit_due():
            try:
                self.audit_lockers()
            except Sip2Error as exc:
                report.stopped = f"the library is unavailable for the locker audit ({exc})"
                return report
        done = 0
        while limit is None or done < limit:
            now = self._clock.now()
            count = self._batch if limit is None else min(self._batch, limit - done)
            events = self._store.next_events(now, self._sender_alive, count=count,
                                             longest_wait_s=2 * self._backoff[1] + UNKNOWN_SETTLE_S)
            if not events:
                return report
            done += len(events)
            if not self._deliver_batch(events, now, report):
                return report
        report.stopped = f"limit of {limit} reached"
        return report

    def _deliver_batch(self, events: list[dict], now: dt.datetime, report: DrainReport) -> bool:
        """Claim a batch (of distinct items) in one durable commit, send its events one by one,
        and mark what was delivered in one commit. False when the drain must stop."""
        with sending(self._me):
            return self._send_batch(events, now, report)

    def _send_batch(self, events: list[dict], now: dt.datetime, report: DrainReport) -> bool:
        before = self._store.claim_many([e["seq"] for e in events], self._me, now, self._sender_alive)
        events = [e for e in events if e["seq"] in before]  # the rest: another sender has them
        delivered: list[str] = []
        try:
            for n, event in enumerate(events):
                unsure = before[event["seq"]] in ("unknown", "inflight")
                try:
                    verdict, reason = self._deliver(event, unsure)
                except Exception as exc:  # the drain stops here; the rest of the batch waits again
                    self._settle_failure(event, unsure, exc, report)
                    self._store.unclaim({e["seq"]: before[e["seq"]] for e in events[n + 1:]})
                    return False
                self._failures = 0
                if verdict == "delivered":
                    delivered.append(event["event_id"])
                    report.delivered += 1
                else:
                    self._store.mark_dead(event["event_id"], reason, self._clock.now())
                    report.dead += 1
                    report.dead_letters.append(event["event_id"])
                    # (the library's words may name people: they stay with the event, for staff)
                    log.warning("outbox event %s (%s) is a dead letter for staff", event["seq"], event["kind"])
        finally:
            self._store.mark_delivered_many(delivered, self._clock.now())
        return True

    def _sender_alive(self, claim: str) -> bool:
        return sender_alive(claim, self._boot)

    def _settle_failure(self, event: dict, unsure: bool, exc: Exception, report: DrainReport) -> None:
        if isinstance(exc, OutcomeUnknown):  # sent, unanswered: settled with 17 after a while
            self._store.mark_unknown(event["seq"], str(exc), self._clock.now())
            report.unknown += 1
            report.stopped = "the library did not answer"
        elif isinstance(exc, Sip2Error):  # unreachable, login refused, backing off: nothing was sent
            self._defer(event, "unknown" if unsure else "pending", str(exc))
            report.deferred += 1
            report.stopped = f"the library is unavailable ({exc})"
        elif event["attempts"] + 1 >= WORKER_FAILURES_TO_DEAD_LETTER:
            # The same bug each time: staff look at it (the log has the details), and the queue
            # behind it goes on. Whatever a try sent is settled by the 17 of staff's retry.
            log.error("outbox event %s (%s) failed in the worker again", event["seq"], event["kind"], exc_info=exc)
            self._store.mark_dead(event["event_id"], f"the kiosk failed on it {event['attempts'] + 1} times "
                                  f"({type(exc).__name__}; see the kiosk's log)", self._clock.now())
            report.dead += 1
            report.dead_letters.append(event["event_id"])
        else:  # a bug: the event may have gone out, so it is treated as unanswered
            log.error("outbox event %s (%s) failed in the worker", event["seq"], event["kind"], exc_info=exc)
            self._store.mark_unknown(event["seq"], f"worker failure: {type(exc).__name__}", self._clock.now())
            report.unknown += 1
            report.stopped = "the worker failed on an event (logged); it is settled with 17 later"

    def audit_lockers(self) -> int:
        """After an unclean stop: every book in a locker is asked about (17), and one the library
        shows on loan is taken back (09): its loan was made by a checkout whose door never
        opened, and whose record a power cut undid. Returns how many were taken back; raises
        Sip2Error when the library cannot be asked (the audit stays due)."""
        taken = 0
        for slot, item in self._store.locker_books():
            with self._item_lock:  # no patron is being lent this book meanwhile
                if not self._store.in_locker_for_lending(slot, item):
                    continue  # a loan or a return of it has begun since: not the audit's business
                facts = self._client.item_information(item)
                if facts.circulation_status not in ON_LOAN:
                    continue
                try:
                    result = self._client.checkin(item, return_date=self._clock.now())
                except OutcomeUnknown:  # it may yet land: settled with 17 once it has had time
                    self._queue_take_back(slot, item, settle_s=UNKNOWN_SETTLE_S)
                    continue
                if not result.ok:  # refused: to staff as a dead letter, the book off the shelf
                    self._queue_take_back(slot, item)
            kind = "phantom-loan-taken-back" if result.ok else "phantom-loan"
            self._store.record_alarm(kind, slot, self._clock.now())
            if result.ok and result.alert:
                self._hold_for_staff(item, slot, " ".join(result.screen_messages) or "alert")
            log.warning("locker %d: the library had its book on loan although it never left; %s", slot,
                        "taken back" if result.ok else "the library refused to take it back")
            taken += result.ok
        self._store.locker_audit_done()
        return taken

    def _queue_take_back(self, slot: int, item: str, *, settle_s: float = 0.0) -> None:
        """The audit's take-back, to go from the queue (its loan's member is not known here)."""
        job = DoorJob(id=f"audit-{uuid.uuid4().hex[:12]}", kind="loan", slot=slot, item=item, title=item,
                      ils_done=True)
        stamp = Stamp(self._clock.now(), self._clock.synced(), self._boot)
        self._store.record_undo_checkout(job, stamp, settle_s=settle_s)

    def _hold_for_staff(self, item: str, slot: int | None, note: str) -> None:
        """A replayed return the library flags (held for another member, in transit): its locker
        goes to staff, as it would have online; the book is not lent from here."""
        if slot is None or self._store.slot_of(item) != slot:
            return
        now = self._clock.now()
        self._store.hold_for_staff(slot, note, now)
        self._store.record_alarm("return-alert", slot, now)

    def _defer(self, event: dict, state: str, reason: str) -> None:
        self._failures += 1
        initial, ceiling = self._backoff
        delay = self._rng.uniform(0.0, min(ceiling, initial * 2.0 ** min(self._failures - 1, 32)))
        now = self._clock.now()
        self._store.retry_later(event["seq"], state, now + dt.timedelta(seconds=delay), reason, now)

    def _deliver(self, event: dict, unsure: bool) -> tuple[str, str]:
        """("delivered" or "dead", reason). Raises Sip2Error when the library cannot be asked."""
        item, kind = event["item"], event["kind"]
        try:
            payload = json.loads(event["payload"] or "{}")
            if not isinstance(payload, dict):
                raise ValueError(f"a {type(payload).__name__}, not an object")
            for key in ("transaction_date", "return_date", "due"):
                if payload.get(key) is not None and not isinstance(payload[key], str):
                    raise ValueError(f"its {key} is a {type(payload[key]).__name__}, not a date")
        except ValueError as exc:  # nothing was sent: staff look at it
            return "dead", f"the event's record is damaged ({exc}); nothing was sent"
        if not event["clock_synced"]:
            # Its dates came from a clock nobody had set: the replay's own time is the best fact.
            payload = {key: value for key, value in payload.items()
                       if key not in ("transaction_date", "return_date", "due")}
        if kind == "checkin" and not unsure:
            # Never sent before: a checkin changes nothing at a library that already has the book
            # back, so it goes without asking first; only a refusal is looked into (17).
            return self._check_in(item, payload, look_into_refusal=True)
        facts = self._look_up(item)
        on_loan = facts.circulation_status in ON_LOAN
        if kind == "checkout":
            if on_loan:
                if unsure:
                    return "delivered", "the library shows it on loan: the earlier attempt went through"
                return "dead", ("the library already shows this copy on loan; replaying the loan would "
                                "renew it instead")
            if not facts.title.strip():
                return "dead", "the library does not know this item " + " ".join(facts.screen_messages)
            due = _due(payload.get("due"), self._clock)
            result = self._client.checkout(
                event["member_id"], item, no_block=True,
                transaction_date=_when(payload.get("transaction_date"), self._clock), nb_due=due,
            )
            if result.ok:
                return "delivered", ""
            return "dead", "refused at replay: " + (" ".join(result.screen_messages) or "no reason given")
        if kind == "checkin":
            if on_loan:
                return self._check_in(item, payload, look_into_refusal=False)
            return self._returned_already(item, payload, facts)
        return "dead", f"unknown event kind {kind!r}"

    def _look_up(self, item: str) -> ItemInfo:
        """Item information (17). It changes nothing at the library, so an unanswered one is no
        unknown outcome of the event being settled: nothing was sent for that (yet)."""
        try:
            return self._client.item_information(item)
        except OutcomeUnknown as exc:
            raise Sip2Unavailable(f"item information went unanswered ({exc})") from None

    def _returned_already(self, item: str, payload: dict, facts: ItemInfo) -> tuple[str, str]:
        """A checkin whose book the library shows not on loan: it has it back (from this event,
        or the desk's), unless it does not know the copy at all. A copy it holds for another
        member, or sends elsewhere, goes to staff, as the checkin's alert would have said."""
        if not facts.title.strip():  # not the library's: staff take it out of its locker
            self._hold_for_staff(item, payload.get("slot"), "the library does not know this copy")
            return "dead", "the library does not know this item " + " ".join(facts.screen_messages)
        if facts.circulation_status in ("08", "10"):  # waiting on the hold shelf; in transit
            self._hold_for_staff(item, payload.get("slot"), facts.circulation_status_name)
        return "delivered", "the library shows it returned already"

    def _check_in(self, item: str, payload: dict, *, look_into_refusal: bool) -> tuple[str, str]:
        when = _when(payload.get("return_date") or payload.get("transaction_date"), self._clock)
        result = self._client.checkin(item, no_block=True, transaction_date=when, return_date=when)
        if result.ok and result.alert:  # a take-back's too: the book in its locker is wanted elsewhere
            self._hold_for_staff(item, payload.get("slot"), " ".join(result.screen_messages) or "alert")
        if result.ok:
            return "delivered", ""
        if look_into_refusal:
            facts = self._look_up(item)
            if facts.circulation_status not in ON_LOAN:
                return self._returned_already(item, payload, facts)
        return "dead", "refused at replay: " + (" ".join(result.screen_messages) or "no reason given")


def _when(text: str | None, clock: Clock) -> dt.datetime:
    """The event's own time, in the kiosk's zone (the original transaction date is replayed)."""
    try:
        when = dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        when = None
    if when is None:
        return clock.now()
    zone = clock.now().tzinfo
    return when.astimezone(zone) if when.tzinfo and zone else when


def _due(text: str | None, clock: Clock) -> dt.datetime | None:
    try:
        day = dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None
    if day is None:
        return None
    return dt.datetime.combine(day, DUE_TIME, tzinfo=clock.now().tzinfo)


__all__ = ["DrainReport", "OutboxWorker", "Sip2Unavailable"]
