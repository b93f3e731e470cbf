"""The composition root: builds the kiosk from the config and runs it.

This is the only module that imports the core, the drivers, the UI and the library backends
together. `Kiosk` is the imperative shell around the pure session: it turns device reports and
taps into events, feeds them to `session.step`, and executes the effects, feeding their results
back as events.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import queue
import signal
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers import registry
from drivers.base import (CardRead, CodeRead, DeviceError, DeviceEvent, DoorAlarm, DoorChanged, OccupancyChanged,
                          Unavailable)
from kiosk import session as s
from kiosk.clock import Clock, boot_id
from kiosk.config import Config, Sip2Section
from kiosk.identifiers import mask
from kiosk.library import Library, LibraryUnavailable, OutcomeUnknown
from kiosk.local_library import LocalLibrary, seed_demo
from kiosk.rules import Reason, refusal
from kiosk.store import UNKNOWN_SETTLE_S, Item, Stamp, Store, StoreError, sender_id, sending

log = logging.getLogger("kiosk")


@dataclass
class Devices:
    card_reader: Any
    scanner: Any
    locks: Any
    indicator: Any = None  # an LED and buzzer for feedback, when fitted

    def all(self) -> list[tuple[str, Any]]:
        devices = [("card_reader", self.card_reader), ("scanner", self.scanner), ("locks", self.locks)]
        return devices + ([("indicator", self.indicator)] if self.indicator is not None else [])


def build_devices(config: Config, clock: Clock | None = None) -> Devices:
    d = config.devices
    return Devices(
        card_reader=_or_unavailable("card_reader", lambda: registry.create(
            "card_reader", d.card_reader.driver, **d.card_reader.adapter_options(clock))),
        scanner=_or_unavailable("scanner", lambda: registry.create(
            "scanner", d.scanner.driver, **d.scanner.adapter_options(config.identifiers))),
        locks=_or_unavailable("locks", lambda: registry.create(
            "locks", d.locks.driver, clock=clock, **d.locks.adapter_options(config.doors)), slots=d.locks.slots),
        indicator=_or_unavailable("indicator", lambda: registry.create(
            "indicator", d.indicator.driver, clock=clock, **d.indicator.adapter_options())),
    )


def _or_unavailable(kind: str, create: Callable[[], Any], *, slots: int = 0) -> Any:
    """The device, or a stand-in saying why it could not be built: the kiosk still starts and
    shows staff the reason (a lock bank's lockers all out of service) instead of crash-looping."""
    try:
        return create()
    except Exception as exc:  # noqa: BLE001 - DeviceError, ImportError, a library's own error
        log.error("%s could not be set up: %s", kind, exc, exc_info=not isinstance(exc, DeviceError))
        return Unavailable(kind, f"{kind} could not be set up: {exc}", slots=slots)


# Effects that may wait on the library system (a network round trip, or a timeout).
_ASKS_THE_LIBRARY = (s.LookUpMember, s.VerifyPin, s.LoadLoans, s.CheckOut, s.PrepareReturn, s.Renew,
                     s.RecordDoorJob, s.CancelDoorJob, s.EndSession)


class Kiosk:
    """One kiosk: session state, store, library, devices and (optionally) a display."""

    def __init__(
        self, config: Config, *, clock: Clock, store: Store, library: Library, devices: Devices,
        display: Any = None, outbox: Callable[[], Any] | None = None, out_of_service: str = "",
    ) -> None:
        self.config = config
        self.out_of_service = out_of_service  # why this kiosk serves nobody (see _out_of_service)
        self.clock = clock
        self.store = store
        self.library = library
        self.devices = devices
        self.display = display
        self.state = s.initial(config.settings(), clock.monotonic())
        self._inbox: queue.SimpleQueue[DeviceEvent] = queue.SimpleQueue()
        self._boot_id = boot_id()
        self._started = False
        self.stopping = False
        self._background_stop = threading.Event()
        self._background: list[threading.Thread] = []
        self._workers: list[Any] = []  # the outbox workers of the background threads
        # The outbox worker: `outbox()` builds one (its own database connection and its own
        # connection to the library system), for the background thread or for `sync_now()`.
        self._outbox_factory = outbox
        self._outbox_worker: Any = None
        self._sync_wake = threading.Event()
        self._checkpointed = clock.monotonic()
        # Held while the library is asked for a loan, and by the outbox worker while it audits a
        # locker's book: see OutboxWorker.audit_lockers.
        self._circulation = threading.Lock()
        if hasattr(library, "offline_since"):
            library.on_back_online = self._sync_wake.set  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<Kiosk screen={self.state.screen} store={self.store.path}>"

    # -- lifecycle

    def start(self) -> None:
        """Lock every door, settle door jobs a crash interrupted, then listen to the devices."""
        for name, device in self.devices.all():
            try:
                device.start(self._inbox.put)
            except Exception as exc:  # noqa: BLE001 - one device must not keep the kiosk from starting
                log.error("device %s did not start: %s", name, exc, exc_info=not isinstance(exc, DeviceError))
        clean = self.store.begin_run(self._boot_id, audit=self._outbox_factory is not None)
        if not clean:
            log.warning("the last run did not stop cleanly (a power cut or a crash): settling what it left")
        self._recover_door_jobs()
        if self._outbox_factory is not None and self.store.locker_audit_due():
            self._audit_lockers()
        self._started = True

    def _audit_lockers(self) -> None:
        """Before the first patron after an unclean stop: the locker audit, if the library
        answers (otherwise the outbox worker does it as soon as it does)."""
        worker = self._new_worker()
        try:
            taken = worker.audit_lockers()
            if taken:
                log.warning("locker audit: %d loan(s) of books still in their lockers taken back", taken)
        except Exception as exc:  # noqa: BLE001 - the library may well be unreachable at boot
            log.warning("locker audit deferred: %s", exc)
        finally:
            worker.close()

    def start_background(self, every_s: float = 15.0, sync_every_s: float = 30.0) -> None:
        """Work off the UI thread: the library connection's keep-alive (and, while offline, a
        probe that notices the library is back), and the outbox worker, which delivers queued
        loans and returns, at once when the library answers again, and enforces retention."""
        if self._background:
            return
        keep_alive = getattr(self.library, "keep_alive", None)
        if keep_alive is not None:
            def keep_alive_loop() -> None:
                while not self._background_stop.wait(every_s):
                    try:
                        keep_alive()
                    except Exception:  # noqa: BLE001 - housekeeping must go on
                        log.exception("keep-alive failed")

            self._background.append(threading.Thread(target=keep_alive_loop, name="kiosk-keepalive", daemon=True))
        if self._outbox_factory is not None:
            def sync_loop() -> None:
                worker = self._new_worker()
                self._workers.append(worker)
                try:
                    while not self._background_stop.is_set():
                        woken = self._sync_wake.is_set()
                        self._sync_wake.clear()
                        try:
                            report = worker.drain(retry_now=woken)
                            if report.delivered or report.dead:
                                log.info("outbox: %s", report)
                            worker.housekeeping()
                        except Exception:  # noqa: BLE001 - the worker must survive a bad event
                            log.exception("the outbox worker failed; trying again later")
                        self._sync_wake.wait(sync_every_s)
                finally:
                    worker.close()

            self._background.append(threading.Thread(target=sync_loop, name="kiosk-outbox", daemon=True))
        for thread in self._background:
            thread.start()

    def sync_now(self) -> Any:
        """Run the outbox worker in this thread until nothing more can be sent now, without
        waiting out any back-off (as `kiosk sync --once` does). None without a library system."""
        if self._outbox_factory is None:
            return None
        return self._own_worker().drain(retry_now=True)

    def _own_worker(self) -> Any:
        """The outbox worker of this thread (sync_now's), made when first needed."""
        if self._outbox_worker is None:
            self._outbox_worker = self._new_worker()
        return self._outbox_worker

    def _stop_background(self) -> None:
        """Stop the keep-alive and the outbox worker (theirs and sync_now's). A request they
        have in flight is cut short (it ends unanswered, settled later), not waited for."""
        self._background_stop.set()
        self._sync_wake.set()
        for worker in self._workers:
            worker.interrupt()
        for thread in self._background:
            thread.join(timeout=5)
        self._background = []
        self._workers = []
        if self._outbox_worker is not None:
            self._outbox_worker.close()
            self._outbox_worker = None

    def _new_worker(self) -> Any:
        """An outbox worker of its own (database and library connections), sharing the lock
        that keeps the locker audit away from a loan being made."""
        return self._outbox_factory(item_lock=self._circulation)

    def close(self) -> None:
        """Idempotent. The doors first: the lock bank locks every door as it closes (fail
        secure), before anything that could wait on a library system that does not answer."""
        self._background_stop.set()
        for name, device in reversed(self.devices.all()):
            try:
                device.close()
            except Exception:  # noqa: BLE001 - one device must not keep the others open
                log.exception("device %s did not close cleanly", name)
        close_library = getattr(self.library, "close", None)
        if close_library is not None:  # cuts short a request in flight (the keep-alive's)
            try:
                close_library()
            except Exception:  # noqa: BLE001
                log.exception("the library connection did not close cleanly")
        self._stop_background()
        if self.display is not None:
            self.display.close()
        if self._started:
            self._guarded(self.store.end_run)
        self.store.close()
        self._started = False

    def power_cut(self) -> None:
        """Stop as a power cut would (scenarios and tests): nothing is locked, ended or written;
        what is on disk is all the next start has. The display is left for the next kiosk."""
        self._stop_background()
        client = getattr(self.library, "client", None)
        if client is not None:
            client.close()
        self.store.close()
        self._started = False

    def _recover_door_jobs(self) -> None:
        for row in self.store.asking_door_jobs():
            # Cut off while asking the library for a loan: the door never opened, and the library
            # may yet lend (a slow server acting on the checkout after the kiosk went down). As
            # for any unanswered checkout, the take-back is queued to go once that has had time.
            job = s.DoorJob(id=row["id"], kind="loan", slot=row["slot"], item=row["item"], title=row["item"],
                            member_id=row["member_id"], ils_done=True)
            if self._outbox_factory is None:  # the kiosk is its own library: nothing was lent anywhere
                self._call_off(job, "interrupted while asking the library")
                continue
            self._queue_take_back(job, settle_s=UNKNOWN_SETTLE_S)
            self._guarded(lambda: self.store.cancel_door_job(job.id, "interrupted while asking the library",
                                                             self.clock.now()))
        for row in self.store.pending_door_jobs():
            item = self.store.item(row["item"])
            job = s.DoorJob(
                id=row["id"], kind=row["kind"], slot=row["slot"], item=row["item"],
                title=item.title if item else row["item"], member_id=row["member_id"],
                due=dt.date.fromisoformat(row["due"]) if row["due"] else None,
                ils_done=bool(row["ils_done"]),
            )
            if row["opened_at"]:
                # The door had opened before the restart: the book moved. Record it, and ask
                # staff to look at the locker.
                self._record(job)
                self._alarm("recovered-door-job", job.slot)
            else:
                self._call_off(job, "interrupted before the door opened")

    # -- events in

    def _now(self) -> float:
        return self.clock.monotonic()

    def pump(self) -> None:
        """Turn every device report waiting in the inbox into session events."""
        while True:
            try:
                report = self._inbox.get_nowait()
            except queue.Empty:
                return
            at = self._now()
            if isinstance(report, CardRead):
                self._signal("read")
                self.feed(s.CardTapped(uid=report.uid, at=at))
            elif isinstance(report, CodeRead):
                self._signal("read")
                self.feed(s.BarcodeScanned(text=report.text, at=at))
            elif isinstance(report, DoorChanged):
                event = s.DoorOpened if report.open else s.DoorClosed
                self.feed(event(slot=report.slot, at=at))
            elif isinstance(report, DoorAlarm):
                job = self.state.job
                if report.kind == "door-left-open" and job is not None and job.slot == report.slot:
                    continue  # the session raises this one itself for the door it opened
                self._alarm(report.kind, report.slot)
                if (report.kind == "lock-jammed" and job is not None and job.slot == report.slot
                        and self.state.door == "unlocked"):
                    self._jammed(job, at)
            elif isinstance(report, OccupancyChanged):
                log.info("locker %d: occupancy sensor says %s", report.slot,
                         "something inside" if report.occupied else "empty")

    def tap(self, button: str) -> None:
        self.feed(s.Tap(button=button, at=self._now()))

    def tick(self) -> None:
        polled = False
        for device in (self.devices.locks, self.devices.indicator):
            if device is not None and not getattr(device, "polls_itself", True):
                # Door switches, pulse ends, door timers and feedback patterns of devices
                # without a thread of their own.
                polled = True
                try:
                    device.poll()
                except Exception:  # noqa: BLE001 - a sensor fault must not stop the kiosk
                    log.exception("polling %r failed", device)
        if polled:
            self.pump()  # what the poll saw counts in this frame, before the timers
        self.feed(s.Tick(at=self._now()))
        self._checkpoint_when_idle()

    def _checkpoint_when_idle(self, every_s: float = 60.0) -> None:
        """Fold the write-ahead log into the database while nobody is at the kiosk, so that a
        patron's loan never waits for it (it costs fsyncs of its own)."""
        now = self._now()
        if self.state.screen != "idle" or self.state.job is not None or now - self._checkpointed < every_s:
            return
        self._checkpointed = now
        try:
            self.store.checkpoint()
        except StoreError as exc:
            log.warning("%s", exc)

    def feed(self, event: s.Event) -> None:
        """Step the session with this event and with every result its effects produce."""
        if self.out_of_service and isinstance(event, (s.CardTapped, s.BarcodeScanned, s.Tap)) and not (
                isinstance(event, s.Tap) and event.button == "lang"):
            event = s.Refused(refusal=refusal(Reason.OUT_OF_SERVICE), at=event.at)
        pending = collections.deque([event])
        while pending:
            self.state, effects = s.step(self.state, pending.popleft())
            for effect in effects:
                result = self._execute(effect)
                if result is not None:
                    if isinstance(result, s.Refused):
                        self._signal("error")
                    pending.append(result)

    # -- effects out

    def _execute(self, effect: s.Effect) -> s.Event | None:
        if self.display is not None and isinstance(effect, _ASKS_THE_LIBRARY):
            # The answer may take up to the response timeout: show "please wait" first.
            self.render()
        at = self._now()
        try:
            return self._dispatch(effect, at)
        except LibraryUnavailable as exc:
            log.warning("library system unavailable: %s", exc)
            return s.Refused(refusal=refusal(Reason.ILS_UNAVAILABLE), at=at)
        except (StoreError, sqlite3.Error) as exc:
            log.error("database error during %s: %s", type(effect).__name__, exc)
            return s.Refused(refusal=refusal(Reason.STORE_FAULT), at=at)
        except Exception:  # noqa: BLE001 - a bug must cost one request, never the kiosk
            log.exception("unexpected failure during %s", type(effect).__name__)
            return s.Refused(refusal=refusal(Reason.SYSTEM_FAULT), at=at)

    def _dispatch(self, effect: s.Effect, at: float) -> s.Event | None:  # noqa: C901 - one branch per effect
        lib, store = self.library, self.store
        if isinstance(effect, s.LookUpMember):
            member = lib.find_member(effect.credential)
            if member is None:
                log.info("unknown %s %s", effect.via, mask(effect.credential))
                reason = Reason.UNKNOWN_CARD if effect.via == "card" else Reason.UNKNOWN_BARCODE
                return s.Refused(refusal=refusal(reason), at=at)
            return s.MemberFound(member=member, today=lib.today(), at=at)
        if isinstance(effect, s.VerifyPin):
            member = lib.verify_pin(effect.credential, effect.pin)
            if member is None:
                return s.PinRejected(at=at)
            return s.PinAccepted(member=member, today=lib.today(), at=at)
        if isinstance(effect, s.LoadShelf):
            out = self._unusable()
            return s.ShelfLoaded(shelf=tuple(i for i in store.shelf() if i.slot not in out), at=at)
        if isinstance(effect, s.LoadLoans):
            return s.LoansLoaded(loans=lib.loans(effect.member_id), at=at)
        if isinstance(effect, s.CheckOut):
            return self._check_out(effect, at)
        if isinstance(effect, s.PrepareReturn):
            return self._prepare_return(effect, at)
        if isinstance(effect, s.CommitDoorJob):
            try:
                store.begin_door_job(effect.job, self.clock.now())
            except StoreError as exc:
                log.error("door job not committed, door stays locked: %s", exc)
                self._call_off(effect.job, "not committed")
                return s.Refused(refusal=refusal(Reason.STORE_FAULT), at=at)
            return s.DoorJobCommitted(job=effect.job, at=at)
        if isinstance(effect, s.Unlock):
            return self._unlock(effect.slot, at)
        if isinstance(effect, s.Lock):
            self._lock(effect.slot)
            return None
        if isinstance(effect, s.NoteDoorOpened):
            self._guarded(lambda: store.note_door_opened(effect.job.id, self.clock.now()))
            return None
        if isinstance(effect, s.RecordDoorJob):
            if not self._record(effect.job):
                self._alarm("record-failed", effect.job.slot)
                return s.Refused(refusal=refusal(Reason.STORE_FAULT), at=at)
            self._check_occupancy(effect.job)
            return s.Recorded(job=effect.job, at=at)
        if isinstance(effect, s.CancelDoorJob):
            self._call_off(effect.job, effect.reason)
            return None
        if isinstance(effect, s.Renew):
            answer = lib.renew(effect.member_id, effect.item)
            if answer.refusal is not None or answer.due is None:
                return s.Refused(refusal=answer.refusal or refusal(Reason.RENEWAL_REFUSED), at=at)
            return s.Renewed(item=effect.item, due=answer.due, due_text=answer.due_text, at=at)
        if isinstance(effect, s.RaiseAlarm):
            self._alarm(effect.kind, effect.slot)
            return None
        if isinstance(effect, s.EndSession):
            lib.end_session(effect.member_id)
            return None
        raise TypeError(f"no executor for {effect!r}")

    def _check_out(self, effect: s.CheckOut, at: float) -> s.Event:
        self._queue_first(effect.member_id)
        with self._circulation:  # the locker audit leaves this book alone meanwhile
            return self._ask_for_loan(effect, at)

    def _queue_first(self, member_id: str) -> None:
        """The member's loans made offline that the library has not heard of yet go first:
        lent a book before them, the library would judge its limits without them (and a
        server that applies limits to replays would then refuse one)."""
        if self._outbox_factory is None or getattr(self.library, "offline_since", None) is not None:
            return  # offline, the loan is queued behind them anyway
        if not self.store.undelivered_loans(self.store.key_of(member_id) or ""):
            return
        try:
            self._own_worker().drain()  # back-offs honoured: a patron waits for no timeouts here
        except Exception as exc:  # noqa: BLE001 - the loan is judged on the counts as they are
            log.warning("the queue could not go before a loan: %s", exc)

    def _ask_for_loan(self, effect: s.CheckOut, at: float) -> s.Event:
        if self.store.slot_contents(effect.slot) != effect.item:
            return s.Refused(refusal=refusal(Reason.ITEM_NOT_AVAILABLE), at=at)
        if effect.slot in self._out_of_service():
            # Its lock board stopped answering: refuse before the library lends a book that
            # could not leave its locker.
            return s.Refused(refusal=refusal(Reason.LOCK_FAULT, slot=effect.slot), at=at)
        if self.store.locker_audit_pending() and not self._audit_book(effect):
            return s.Refused(refusal=refusal(Reason.ITEM_NOT_AVAILABLE), at=at)
        item = self.store.item(effect.item)
        job = s.DoorJob(
            id=str(uuid.uuid4()), kind="loan", slot=effect.slot, item=effect.item,
            title=item.title if item else effect.item, member_id=effect.member_id, ils_done=True,
        )
        # On disk before the library is asked: a power cut from here on leaves a trace that the
        # next start settles (the library may have lent a book that never left its locker).
        self.store.note_asking(job, self.clock.now())
        try:
            answer = self.library.check_out(effect.member_id, effect.item)
        except OutcomeUnknown:
            # The library may have lent it, or may yet (a slow server acts on it after the
            # timeout): the door stays shut, and the take-back is queued to go once the checkout
            # has had time to land. Asking 17 now could hear "available" just before it does.
            self._queue_take_back(job, settle_s=UNKNOWN_SETTLE_S)
            self._guarded(lambda: self.store.cancel_door_job(job.id, "no answer from the library", self.clock.now()))
            raise
        except Exception:
            self._guarded(lambda: self.store.cancel_door_job(job.id, "library unavailable", self.clock.now()))
            raise
        if answer.refusal is not None or answer.due is None:
            self._guarded(lambda: self.store.cancel_door_job(job.id, "refused", self.clock.now()))
            return s.Refused(refusal=answer.refusal or refusal(Reason.ILS_REFUSED), at=at)
        return s.DoorJobReady(job=dataclasses.replace(job, due=answer.due, due_text=answer.due_text,
                                                      ils_done=answer.committed), at=at)

    def _audit_book(self, effect: s.CheckOut) -> bool:
        """Before the locker audit after a power cut has got to it: the library may hold a loan
        of this very book, made by a checkout whose door never opened. It is taken back first
        (lent again, it would be renewed). False when the book cannot be lent now: within the
        first minute of the boot (a checkout sent before the cut may still be landing), or while
        a take-back is on its way or refused."""
        if not self.store.locker_audit_due():
            return False
        job = s.DoorJob(id=str(uuid.uuid4()), kind="loan", slot=effect.slot, item=effect.item, title=effect.item,
                        member_id=effect.member_id, ils_done=True)
        try:
            outcome = self._take_back(job)
        except LibraryUnavailable:
            return True  # lent offline, if at all: its replay asks the library (17) first
        if outcome != "none":
            self._alarm("phantom-loan-taken-back" if outcome != "queued" else "phantom-loan", effect.slot)
        return outcome in ("none", "taken")

    def _take_back(self, job: s.DoorJob) -> str:
        """Take back the library's loan of a book that never left its locker: "none" (there was
        none), "taken", "held" (taken, and the library wants the book elsewhere: staff take it
        out) or "queued" (unanswered, to be settled after the settling time; or refused, to
        reach staff as a dead letter: the book stays off the shelf meanwhile). Raises
        LibraryUnavailable when the library cannot be reached: nothing was sent."""
        try:
            answer = self.library.cancel_checkout(job.member_id or "", job.item)
        except OutcomeUnknown:  # it may or may not have gone through: settled once it has landed
            self._queue_take_back(job, settle_s=UNKNOWN_SETTLE_S)
            return "queued"
        if answer is None:
            return "none"
        if not answer.ok:
            log.warning("the library refused to take back the loan of %s; queued for staff", job.item)
            self._queue_take_back(job)
            return "queued"
        if answer.alert:
            self._keep_for_staff(job.slot, answer.message)
            return "held"
        return "taken"

    def _queue_take_back(self, job: s.DoorJob, *, settle_s: float = 0.0) -> None:
        stamp = Stamp(self.clock.now(), self.clock.synced(), self._boot_id)
        self._guarded(lambda: self.store.record_undo_checkout(job, stamp, settle_s=settle_s))

    def _call_off(self, job: s.DoorJob, reason: str) -> None:
        """A door job that will not happen. What the library recorded for it is taken back (or
        that is queued) first, and only then is the job closed: a power cut in between leaves
        the job open, and the next start calls it off again (the take-back asks 17 first)."""
        self._undo_checkout(job)
        self._guarded(lambda: self.store.cancel_door_job(job.id, reason, self.clock.now()))

    def _undo_checkout(self, job: s.DoorJob) -> None:
        """The door of a loan the library already recorded never opened: take the loan back."""
        if job.kind != "loan" or not job.ils_done or job.member_id is None:
            return
        try:
            self._take_back(job)
        except LibraryUnavailable as exc:
            log.warning("the library did not take back the loan of %s: %s; queued", job.item, exc)
            self._queue_take_back(job)

    def _prepare_return(self, effect: s.PrepareReturn, at: float) -> s.Event:
        item = self.store.item(effect.item)
        if item is None:
            # Not one of this kiosk's books: a copy of the library's is still welcome.
            facts = self.library.item(effect.item)
            if facts is None:
                return s.Refused(refusal=refusal(Reason.NOT_OUR_ITEM), at=at)
            item = Item(facts.item, facts.title or facts.item, facts.author)
            self.store.add_items([item])
        slot = self.store.slot_of(effect.item)
        if slot is not None and self.store.staff_note(slot) is not None:
            # Kept for staff, and back in a patron's hands: staff took it out, and it went on
            # (to the member it was held for). The locker is empty, and no longer staff's.
            log.info("locker %d: its book, kept for staff, is being returned: the locker is free again", slot)
            self.store.release_from_staff(slot, self.clock.now())
            slot = None
        if slot is not None:
            return s.Refused(refusal=refusal(Reason.ALREADY_IN_LOCKER, slot=slot), at=at)
        empty = self.store.empty_slot(exclude=self._unusable())
        if empty is None:
            return s.Refused(refusal=refusal(Reason.NO_EMPTY_LOCKER), at=at)
        job = s.DoorJob(id=str(uuid.uuid4()), kind="return", slot=empty, item=item.item,
                        title=item.title, member_id=effect.member_id)
        return s.DoorJobReady(job=job, at=at)

    def _unusable(self) -> dict[int, str]:
        """Lockers not to offer now: out of service, or with a door that stands open (forced,
        or sprung after a loan): nothing would tell the kiosk when a book went in or out."""
        out = dict(self._out_of_service())
        locks = self.devices.locks
        for slot in range(1, getattr(locks, "slots", 0) + 1):
            if slot in out:
                continue
            try:
                if locks.is_open(slot):
                    out[slot] = "door open"
            except Exception:  # noqa: BLE001 - a sensor that cannot say: asked again at the unlock
                log.debug("locker %d: the door sensor did not answer", slot)
        return out

    def _out_of_service(self) -> dict[int, str]:
        """Lockers the lock bank cannot open now (a board that does not answer): not offered."""
        ask = getattr(self.devices.locks, "out_of_service", None)
        if ask is None:
            return {}
        try:
            return ask()
        except Exception:  # noqa: BLE001 - a bank that cannot say is asked again at the unlock
            log.exception("the lock bank did not say which lockers are out of service")
            return {}

    def _unlock(self, slot: int, at: float) -> s.Event | None:
        try:
            self.devices.locks.unlock(slot)
        except DeviceError as exc:
            log.error("locker %d did not unlock: %s", slot, exc)
            job = self.state.job
            if job is not None:
                self._call_off(job, "unlock failed")
            self._alarm("lock-fault", slot)
            return s.Refused(refusal=refusal(Reason.LOCK_FAULT, slot=slot), at=at)
        self._signal("unlock")
        return None

    def _check_occupancy(self, job: s.DoorJob) -> None:
        """Where a locker has an occupancy sensor, it should agree with what was just recorded:
        empty after a loan, something inside after a return. If not, staff look (the record
        stands: the door did open and close)."""
        occupied = getattr(self.devices.locks, "occupied", None)
        seen = occupied(job.slot) if occupied is not None else None
        if seen is None:
            return
        if job.kind == "loan" and seen:
            self._alarm("item-left-in-locker", job.slot)
        elif job.kind == "return" and not seen:
            self._alarm("return-not-seen", job.slot)

    def _jammed(self, job: s.DoorJob, at: float) -> None:
        """The lock of the open job did not release: nothing has moved. End the job now, as a
        failed unlock does, instead of keeping the patron waiting for the door timeout."""
        self._lock(job.slot)
        self._call_off(job, "lock jammed")
        self._signal("error")
        self.feed(s.Refused(refusal=refusal(Reason.LOCK_FAULT, slot=job.slot), at=at))

    def _signal(self, kind: str) -> None:
        """Feedback on the LED and buzzer, when fitted; never in the way of a loan."""
        indicator = self.devices.indicator
        if indicator is None:
            return
        try:
            indicator.signal(kind)
        except Exception:  # noqa: BLE001
            log.exception("the indicator failed")

    def _lock(self, slot: int) -> None:
        try:
            self.devices.locks.lock(slot)
        except DeviceError as exc:
            log.error("locker %d did not lock: %s", slot, exc)
            self._alarm("lock-fault", slot)

    def _record(self, job: s.DoorJob) -> bool:
        stamp = Stamp(self.clock.now(), self.clock.synced(), self._boot_id)
        try:
            # A checkin goes out at once unless an earlier event of the book (its loan made
            # offline, say) is still on its way: it must not overtake that; the worker sends both.
            send_now = job.kind == "return" and not self.store.waiting_events(job.item)
            if job.kind == "loan":
                self.store.record_loan(job, stamp)
            elif not send_now:
                self.store.record_return(job, stamp)
            else:
                claim = sender_id(self._boot_id, f"return-{job.id}")
                with sending(claim):  # the worker leaves the claimed checkin alone meanwhile
                    event_id = self.store.record_return(job, stamp, claim=claim)
                    self._check_in(job, event_id, stamp.wall)
        except StoreError as exc:
            # The door job stays pending on disk: staff and the next start can still settle it.
            log.error("the %s in locker %d was not recorded: %s", job.kind, job.slot, exc)
            return False
        log.info("recorded %s of %s in locker %d", job.kind, job.item, job.slot)
        if not send_now and (job.kind == "return" or not job.ils_done):
            self._sync_wake.set()  # queued for the library: the worker need not wait its turn
        return True

    def _check_in(self, job: s.DoorJob, event_id: str, returned_at: dt.datetime) -> None:
        """Tell the library a book is back. The return is already recorded: whatever the
        library says, the patron's part is done; what needs a person goes to staff."""
        try:
            answer = self.library.check_in(job.item, returned_at)
        except OutcomeUnknown as exc:
            # It may have reached the library: the outbox worker asks (17) before resending.
            reason = str(exc)
            log.warning("the return of %s may not have reached the library: %s", job.item, reason)
            self._guarded(lambda: self.store.mark_unknown_event(event_id, reason, self.clock.now()))
            return
        except LibraryUnavailable as exc:
            log.warning("the return of %s stays queued for the library: %s", job.item, exc)
            self._guarded(lambda: self.store.release(event_id, "library unavailable", self.clock.now()))
            return
        if answer.alert:  # noted before the checkin is marked delivered: a crash between must not lose it
            self._keep_for_staff(job.slot, answer.message)
        now = self.clock.now()
        if answer.ok:
            self._guarded(lambda: self.store.mark_delivered(event_id, now))
        else:
            # Refused: perhaps the library has the book back already (checked in at the desk).
            # The outbox worker looks (17) and settles it, or makes it a dead letter for staff.
            self._guarded(lambda: self.store.mark_unknown_event(event_id, "refused online", now, settle_s=0))
            self._sync_wake.set()

    def _keep_for_staff(self, slot: int, message: str) -> None:
        """The library flags the book in this locker (held for another member, in transit):
        staff take it out; it is not lent from here."""
        now = self.clock.now()
        self._guarded(lambda: self.store.hold_for_staff(slot, message or "alert", now))
        self._alarm("return-alert", slot)

    def _alarm(self, kind: str, slot: int | None) -> None:
        log.warning("alarm %s at locker %s", kind, slot)
        self._guarded(lambda: self.store.record_alarm(kind, slot, self.clock.now()))

    def _guarded(self, write: Callable[[], None]) -> None:
        try:
            write()
        except StoreError as exc:
            log.error("%s", exc)

    # -- the screen

    def status(self) -> Any:
        from ui.display import Status

        notices = tuple(
            f"{name}: {health.reason}"
            for name, device in self.devices.all()
            if not (health := device.health()).available
        )
        if self.out_of_service:
            notices = ("database: " + self.out_of_service,) + notices
        return Status(library_name=self.config.kiosk.name, wall=self.clock.now(), notices=notices,
                      offline=bool(getattr(self.library, "offline", False)))

    def render(self) -> Any:
        if self.display is None:
            return None
        return self.display.render(self.state, self._now(), self.status())

    def run(self, on_panel: Callable[[str], None] | None = None) -> None:
        """The main loop: input, devices, timers, one frame; until quit or SIGTERM."""
        import pygame  # the UI loop's frame pacing; the display owns everything else

        pacer = pygame.time.Clock()
        previous = signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        failures = 0
        try:
            while not self.stopping:
                try:
                    self._one_frame(on_panel)
                    failures = 0
                except Exception:
                    # A bug costs the patron this session, not the kiosk: back to idle, doors
                    # locked. Failing again and again means something is broken for good: exit,
                    # and let the service manager restart the kiosk.
                    failures += 1
                    log.exception("the main loop failed (%d in a row)", failures)
                    if failures >= 5:
                        raise
                    self._reset_after_failure()
                pacer.tick(self.config.ui.fps)
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _one_frame(self, on_panel: Callable[[str], None] | None) -> None:
        for intent in self.display.poll():
            if intent == "quit":
                self.stopping = True
            elif intent.startswith("sim:"):
                if on_panel is not None:
                    on_panel(intent)
            else:
                self.tap(intent)
        self.pump()
        self.tick()
        self.render()

    def _reset_after_failure(self) -> None:
        job = self.state.job
        if job is not None and self.state.door in ("unlocking", "unlocked"):
            self._lock(job.slot)
            self._call_off(job, "internal error")
        elif job is not None and self.state.door in ("open", "recording"):
            # The door opened: the book moved. Record it as a restart would, and tell staff.
            self._lock(job.slot)
            self._record(job)
            self._alarm("recovered-door-job", job.slot)
        member = self.state.member
        if member is not None:
            try:
                self.library.end_session(member.member_id)  # also forgets the session's PIN
            except Exception:  # noqa: BLE001 - the reset must finish
                log.warning("the library session was not ended after the failure")
        self.state = s.initial(self.config.settings(), self._now())


def sip2_settings(config: Config, *, host: str | None = None, port: int | None = None,
                  password: str | None = None, terminal_password: str = "") -> Any:
    """The SIP2 client's settings from the config; the password from the secrets file unless
    given (the demo passes its own ILS's address and account)."""
    from kiosk.config import load_secrets
    from sync.sip2.client import ClientSettings
    from sync.sip2.codec import Dialect

    p = config.sip2
    if password is None:
        secrets = load_secrets(config)
        password, terminal_password = secrets.password, secrets.terminal_password
    dialect = Dialect(
        encoding=p.encoding, delimiter=p.delimiter, terminator="\r" if p.terminator == "CR" else "\r\n",
        error_detection=p.error_detection, checksum_mode=p.checksum_receive,
    )
    return ClientSettings(
        host=host or p.host, port=port or p.port, user=p.user, password=password,
        location=p.location, institution=p.institution, terminal_password=terminal_password,
        send_patron_pin=p.send_patron_pin, dialect=dialect,
        connect_timeout_s=p.connect_timeout_s, response_timeout_s=p.response_timeout_s,
        keepalive_s=p.keepalive_s, resend_requests=p.resend_requests,
        backoff_initial_s=p.backoff_initial_s, backoff_max_s=p.backoff_max_s,
        tls=p.tls, ca_file=str(config.relative(p.ca_file)) if p.ca_file else "",
        cert_file=str(config.relative(p.cert_file)) if p.cert_file else "",
        key_file=str(config.relative(p.key_file)) if p.key_file else "",
        check_hostname=p.check_hostname,
    )


def open_library(config: Config, store: Store, clock: Clock, *, sip2: Any = None) -> Library:
    """The library backend the config names. `sip2`: client settings to use instead of the
    config's (the demo's own ILS)."""
    if config.library.backend == "local":
        from kiosk import demo

        return LocalLibrary(demo.MEMBERS if config.library.seed == "demo" else (), store,
                            config.policy(), clock)
    if config.library.backend == "sip2":
        from sync.ils import Sip2Library
        from sync.sip2.client import Client

        from kiosk.offline import OfflineFirst, rules_from

        client = Client(sip2 or sip2_settings(config), clock=clock)
        ils = Sip2Library(client, clock=clock, policy=config.policy(), send_pin=config.sip2.send_patron_pin)
        return OfflineFirst(ils, store, clock, config.policy(),
                            rules_from(config.offline, require_pin=config.session.require_pin))
    raise ValueError(f"unknown library backend {config.library.backend!r}")


def outbox_factory(config: Config, db_path: Path, clock: Clock, *, sip2: Any = None) -> Callable[[], Any] | None:
    """What builds the outbox worker for this config: its own database connection and its own
    connection to the library system. None when the kiosk is its own library."""
    if config.library.backend != "sip2":
        return None

    def build_worker(item_lock: Any = None) -> Any:
        from sync.outbox import OutboxWorker
        from sync.sip2.client import Client

        settings = sip2 or sip2_settings(config)
        store = Store(db_path, keep_member_numbers=False, clock=clock)
        return OutboxWorker(store, Client(settings, clock=clock), clock,
                            backoff_initial_s=config.sip2.backoff_initial_s, backoff_max_s=config.sip2.backoff_max_s,
                            retention=config.offline, owns=True, item_lock=item_lock)

    return build_worker


DEMO_SIP_PASSWORD = "kiosk-demo"  # the demo ILS's account (user "kiosk"); a demo, not a secret


class DemoLibrarySystem:
    """The demo's own ILS: a SIP2 server on loopback with its own database (`kiosk demo`)."""

    def __init__(self, config: Config, clock: Clock, folder: Path) -> None:
        from sync.demo_ils import DemoIls, loans_report, seed_demo as seed_ils

        self.db_path = folder / "demo-ils.db"
        seed_ils(self.db_path, clock)
        self.server = DemoIls(self.db_path, clock=clock).start()
        self._report = loans_report
        # The demo ILS's own account and dialect; only the timeouts come from the config.
        p = config.sip2
        demo = dataclasses.replace(config, sip2=Sip2Section(
            connect_timeout_s=p.connect_timeout_s, response_timeout_s=p.response_timeout_s,
            keepalive_s=p.keepalive_s, send_patron_pin=p.send_patron_pin))
        self.settings = sip2_settings(demo, host=self.server.address[0], port=self.server.address[1],
                                      password=DEMO_SIP_PASSWORD)

    def loans(self) -> list[dict]:
        return self._report(self.db_path)["loans"]

    def down(self) -> None:
        """Cut the kiosk off: the library system takes no connection (a network outage)."""
        self.server.faults.down = True

    def up(self) -> None:
        self.server.faults.down = False

    def close(self) -> None:
        self.server.close()



def build(
    config: Config, *, clock: Clock, db_path: Path | None = None, display: Any = None, sip2: Any = None,
) -> Kiosk:
    """Wire a kiosk from the config: store (seeded if asked), library, devices, display."""
    db_path = db_path or config.database
    try:
        store = Store(db_path, keep_member_numbers=config.library.backend == "local", clock=clock)
    except StoreError as exc:
        return _out_of_service(config, clock, display, str(exc))
    try:
        if config.library.seed == "demo":
            seed_demo(store, clock, config.devices.locks.slots,
                      whole_library=config.library.backend == "local")
        store.ensure_slots(config.devices.locks.slots, clock.now())
        library = open_library(config, store, clock, sip2=sip2)
        devices = build_devices(config, clock)
    except Exception:
        store.close()
        raise
    return Kiosk(config, clock=clock, store=store, library=library, devices=devices, display=display,
                 outbox=outbox_factory(config, db_path, clock, sip2=sip2))


def _out_of_service(config: Config, clock: Clock, display: Any, reason: str) -> Kiosk:
    """A kiosk whose database cannot be opened: it keeps the file as it is (for a technician or
    a backup restore), keeps every door locked, lends and takes back nothing, and says so on the
    screen and to staff, instead of failing to start again and again."""
    log.critical("OUT OF SERVICE: %s; the file is kept as it is. Restore it from a backup, or move "
                 "it aside to start afresh (what it holds is then lost to this kiosk)", reason)
    store = Store(":memory:")  # holds nothing: no locker is ever offered or opened
    library = LocalLibrary((), store, config.policy(), clock)
    return Kiosk(config, clock=clock, store=store, library=library, devices=build_devices(config, clock),
                 display=display, out_of_service=reason)


@contextmanager
def running(kiosk: Kiosk) -> Iterator[Kiosk]:
    kiosk.start()
    try:
        yield kiosk
    finally:
        kiosk.close()
