"""A model of a kiosk's life against an ILS that turns a repeated checkout into a renewal.

Hypothesis plays patrons (borrow, return, walk away from an open locker), the network (the ILS
goes down, hangs, an answer is lost after the ILS acted on it), power cuts (at idle, with a door
unlocked or open, just before or just after a request goes out on the wire) and the outbox worker.
The kiosk is the real one (`kiosk.app.build`, simulated devices, a store on disk, the SIP2 client)
and the ILS is the demo ILS on loopback, in Koha's and Evergreen's habit (`repeat_checkout =
"renewal"`), so a checkout replayed for the same patron shows up as a renewal.

Invariants: nothing is ever renewed; the books patrons carry are exactly the kiosk's open loans;
and after the ILS is healthy again and the outbox has drained, the ILS holds exactly the kiosk's
loans, each item's events applied once and in the kiosk's order, nothing left unsent or refused.

KIOSK_MODEL_EXAMPLES (default 25) and KIOSK_MODEL_STEPS (default 20) make longer runs.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
import threading
import uuid
import weakref
from pathlib import Path

from hypothesis import HealthCheck, event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import kiosk.clock
from kiosk import demo
from kiosk.app import DEMO_SIP_PASSWORD, build, sip2_settings
from kiosk.clock import FakeClock
from kiosk.config import Config, LibrarySection, Sip2Section
from steps import login
from sync.demo_ils import Behaviour, DemoIls, loans_report, seed_demo
from sync.sip2.client import Client, Sip2Unavailable
from sync_checks import all_problems, kiosk_open_loans, renewal_problems, scratch_folder

# Three patrons in good standing, so that the library's limit of 5 loans is sometimes reached.
PATRONS = [demo.MEMBERS[0], demo.MEMBERS[8], demo.MEMBERS[9]]
BY_NUMBER = {m.member_id: m for m in PATRONS}
patrons = st.sampled_from(sorted(BY_NUMBER))  # drawn by member number: failing cases read well
# Books member 3 borrowed at the library before the kiosk existed (not reserved by anyone):
# returning them here brings copies the kiosk has never seen into its lockers.
CARRIED_IN = {demo.accession(25): demo.MEMBERS[2].member_id, demo.accession(27): demo.MEMBERS[2].member_id}
# The SIP2 client's requests, by the command each sends.
REQUESTS = {"checkout": "11", "checkin": "09", "item_information": "17", "patron_information": "63",
            "patron_status": "23", "renew": "29", "end_session": "35", "sc_status": "99"}


class PowerCut(BaseException):
    """The power goes: raised on the kiosk's side of the wire, it unwinds everything unhandled."""


class KioskLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = scratch_folder(Path(tempfile.gettempdir()))
        self.clock = FakeClock()
        ils_db = self.folder / "ils.db"
        seed_demo(ils_db, self.clock)
        self.ils = DemoIls(ils_db, clock=self.clock, behaviour=Behaviour(repeat_checkout="renewal")).start()
        self._lose_next: tuple[str, str] | None = None  # (command or "any", "drop" or "garbage")
        real_reply = self.ils._reply

        def reply(conn, circulation, frame, behaviour):
            # The ILS acts on the request, then its answer is lost on the way back.
            out = real_reply(conn, circulation, frame, behaviour)
            armed = self._lose_next
            if armed and out is not None and armed[0] in ("any", frame[:2].decode("ascii", "replace")):
                self._lose_next = None
                if armed[1] == "drop":
                    self.ils.faults.drop_after = 0
                else:
                    self.ils.faults.garbage = True
            return out

        self.ils._reply = reply
        # The ILS finishes what it was doing before it answers anew: a connection the kiosk gave
        # up on is served to its end (its request carried out or not) before the kiosk's next
        # request is answered. Without this, a fake clock that jumps ahead in no real time would
        # let the kiosk settle an unknown outcome (17) while the ILS is still acting on it.
        self._served = threading.Condition()
        self._clients: weakref.WeakSet[Client] = weakref.WeakSet()
        real_serve = self.ils._serve

        def serve(conn):
            try:
                real_serve(conn)
            finally:
                with self._served:
                    self._served.notify_all()

        self.ils._serve = serve
        self.cut_at: tuple[str, bool] | None = None  # power cut at the next request (command, after sending)
        self._real_requests = {name: getattr(Client, name) for name in REQUESTS}
        for name, real in self._real_requests.items():
            setattr(Client, name, self._on_the_wire(real))
        self.ils_db = ils_db
        self.kiosk_db = self.folder / "kiosk.db"
        self.config = Config(
            library=LibrarySection(backend="sip2", seed="demo"),
            sip2=Sip2Section(response_timeout_s=0.1, connect_timeout_s=0.2, backoff_initial_s=1, backoff_max_s=4),
        )
        self.sip2 = sip2_settings(self.config, host=self.ils.address[0], port=self.ils.address[1],
                                  password=DEMO_SIP_PASSWORD)
        self.statistics = True  # record Hypothesis events (not outside a Hypothesis test)
        self.in_hand: dict[str, str] = dict(CARRIED_IN)  # books out of the lockers → who has them
        self.lent_elsewhere = set(CARRIED_IN)  # carried books the kiosk did not lend
        self.boot = ""
        self.kiosk = None
        self._boot()

    # -- the kiosk's life

    def _boot(self) -> None:
        """Power on: a new boot id, a new kiosk on the same database, its recovery run."""
        self.boot = f"boot-{uuid.uuid4()}"
        _use_boot_id(self.boot)
        self.kiosk = build(self.config, clock=self.clock, db_path=self.kiosk_db, sip2=self.sip2)
        self._survive(self.kiosk.start)

    def _on_the_wire(self, real):
        """A request of every SIP2 client of this process (the kiosk's own, the outbox worker's):
        where a power cut can strike, before or after it goes out."""
        command = REQUESTS[real.__name__]

        def request(client, *args, **kwargs):
            self._clients.add(client)
            armed = self.cut_at
            if armed is not None and command == armed[0]:
                self.cut_at = None
                if armed[1]:
                    real(client, *args, **kwargs)  # it went out, and the ILS acted on it
                raise PowerCut
            try:
                return real(client, *args, **kwargs)
            except Sip2Unavailable:
                self._quiesce()
                raise

        return request

    def _quiesce(self) -> None:
        """Until the ILS serves no connection that its client has closed."""
        with self._served:
            self._served.wait_for(
                lambda: self.ils.connections <= sum(1 for c in list(self._clients) if c.connected), timeout=5)

    def _power_cut(self) -> None:
        """The process dies: nothing more is written (door jobs and events stay as they are on
        disk, the run is not marked as stopped cleanly); its files and sockets are let go, as the
        kernel would."""
        k, self.kiosk = self.kiosk, None
        k.power_cut()
        for client in list(self._clients):
            client.close()  # the kernel closes a dead process's sockets
        self._quiesce()
        self._boot()

    def _survive(self, action) -> None:
        """Run a patron's or the worker's action; a power cut in it reboots the kiosk."""
        try:
            action()
        except PowerCut:
            self._power_cut()

    def _idle(self) -> None:
        """Back to the idle screen, the way a patron leaves."""
        for _ in range(4):
            s = self.kiosk.state
            if s.screen == "idle" and not s.door and not s.busy:
                return
            if s.member is not None:
                self.kiosk.tap("logout")
            else:
                self.kiosk.tap("cancel")
                self.kiosk.tap("confirm")
        self.clock.advance(120)  # the inactivity logout, the notice's own timeout
        self.kiosk.tick()

    def _to_the_door(self, number: str, pick: int) -> int | None:
        """Log in, choose a book, confirm: the locker that unlocked, or None."""
        patron = BY_NUMBER[number]
        k = self.kiosk
        self._idle()
        login(k, uid=patron.card_uid)
        if k.state.screen != "menu":
            return None
        k.tap("borrow")
        if k.state.screen != "borrow" or not k.state.shelf:
            return None
        line = k.state.shelf[pick % len(k.state.shelf)]
        k.tap(f"item:{line.item}")
        k.tap("confirm")
        if k.state.screen != "open-door" or k.state.job is None:
            return None
        return k.state.job.slot

    def _to_the_return_door(self, pick: int) -> tuple[str, int] | None:
        k = self.kiosk
        self._idle()
        books = sorted(self.in_hand)
        item = books[pick % len(books)]
        k.tap("return")
        k.devices.scanner.show(item)
        k.pump()
        if k.state.screen != "open-door" or k.state.job is None:
            return None
        return item, k.state.job.slot

    def _put_back(self, item: str) -> None:
        del self.in_hand[item]
        self.lent_elsewhere.discard(item)

    # -- patrons

    @rule(patron=patrons, pick=st.integers(0, 23))
    def borrow(self, patron, pick):
        def visit():
            slot = self._to_the_door(patron, pick)
            if slot is not None:
                item = self.kiosk.state.job.item
                self.kiosk.devices.locks.open_door(slot)
                self.kiosk.pump()
                self.in_hand[item] = patron  # the book has left its locker
                self.kiosk.devices.locks.close_door(slot)
                self.kiosk.pump()
            self._idle()

        self._survive(visit)

    @rule(patron=patrons, pick=st.integers(0, 23))
    def walk_away_from_an_unlocked_door(self, patron, pick):
        def visit():
            if self._to_the_door(patron, pick) is not None:
                self.clock.advance(31)  # the door relocks; the ILS's loan is taken back
                self.kiosk.tick()
            self._idle()

        self._survive(visit)

    @precondition(lambda self: self.in_hand)
    @rule(pick=st.integers(0, 40))
    def return_a_book(self, pick):
        def visit():
            found = self._to_the_return_door(pick)
            if found is not None:
                item, slot = found
                self.kiosk.devices.locks.open_door(slot)
                self.kiosk.pump()
                self._put_back(item)  # the book is in the locker
                self.kiosk.devices.locks.close_door(slot)
                self.kiosk.pump()
            self._idle()

        self._survive(visit)

    @rule(patron=patrons, pick=st.integers(0, 40),
          kind=st.sampled_from(["loan", "return"]), opened=st.booleans())
    def power_cut_at_the_door(self, patron, pick, kind, opened):
        """The power goes while a locker is unlocked (its door opened, or not yet)."""
        def visit():
            if kind == "loan":
                slot = self._to_the_door(patron, pick)
                item = self.kiosk.state.job.item if slot is not None else None
            else:
                if not self.in_hand:
                    return
                found = self._to_the_return_door(pick)
                item, slot = found if found else (None, None)
            if slot is None:
                self._idle()
                return
            if opened:
                self.kiosk.devices.locks.open_door(slot)
                self.kiosk.pump()
                if kind == "loan":
                    self.in_hand[item] = patron  # out it goes, and the lights go off
                else:
                    self._put_back(item)
            raise PowerCut

        self._survive(visit)

    # -- the wire and the power

    @rule(command=st.sampled_from(["11", "09", "17"]), after_sending=st.booleans())
    def power_cut_at_the_next_request(self, command, after_sending):
        """The next checkout, checkin or item information the kiosk sends is its last act."""
        self.cut_at = (command, after_sending)

    @rule(command=st.sampled_from(["11", "09", "17", "63", "any"]), how=st.sampled_from(["drop", "garbage"]))
    def lose_the_next_answer(self, command, how):
        """The ILS acts on the next such request; its answer never arrives whole."""
        self._lose_next = (command, how)

    @rule()
    def ils_goes_down(self):
        self.ils.faults.down = True

    @rule()
    def ils_hangs(self):
        self.ils.faults.silent = True

    @rule()
    def ils_comes_back(self):
        # An armed lost answer stays armed: it may well strike a replay, the case that matters.
        self.ils.faults.reset()
        self.clock.advance(10)  # past the client's back-off

    @rule()
    def the_clock_loses_or_regains_its_sync(self):
        """A Pi without a battery clock, booted without network: events stamped meanwhile are
        replayed with the time of the replay, never with their own dates as fact."""
        self.clock.is_synced = not self.clock.is_synced

    @rule(hours=st.sampled_from([-26, -1, 1, 26]))
    def the_wall_clock_is_set(self, hours):
        """NTP (or a technician) sets the wall clock, forward or back; monotonic time runs on.
        A settling time still lasts its minute, and a back-off never strands the queue."""
        self.clock.set_wall(self.clock.now() + dt.timedelta(hours=hours))

    @rule()
    def restart(self):
        self._power_cut()

    @rule()
    def drain_the_outbox(self):
        self.clock.advance(30)
        self._survive(self._drain)

    def _drain(self) -> None:
        self.kiosk.sync_now()  # the outbox worker, in this thread, until nothing more can be sent

    # -- invariants

    @invariant()
    def nothing_is_renewed(self):
        assert renewal_problems(self.ils_db) == []

    @invariant()
    def the_books_patrons_carry_are_the_kiosks_open_loans(self):
        if self.kiosk is None:
            return
        carried = {item: who for item, who in self.in_hand.items() if item not in self.lent_elsewhere}
        assert kiosk_open_loans(self.kiosk_db) == carried

    def teardown(self) -> None:
        try:
            if self.kiosk is not None:
                self._settle()
        finally:
            for name, real in self._real_requests.items():
                setattr(Client, name, real)
            if self.kiosk is not None:
                self.kiosk.close()
            self.ils.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _settle(self) -> None:
        """The ILS is healthy for good; the kiosk restarts once more and syncs until it is done."""
        self.cut_at = None
        self._lose_next = None
        self.ils.faults.reset()
        self.clock.is_synced = True
        self.clock.advance(3600)
        self._power_cut()
        self._idle()
        for _ in range(10):
            self.clock.advance(600)
            before = self.kiosk.store.queue_status()["counts"]
            self._drain()
            if self.kiosk.store.queue_status()["counts"] == before:
                break
        problems = all_problems(self.kiosk_db, self.ils_db)
        assert problems == [], "\n".join(problems)
        if not self.statistics:
            return
        # What this life went through (pytest --hypothesis-show-statistics).
        for alarm in {a["kind"] for a in self.kiosk.store.alarms()}:
            event(f"alarm {alarm}")
        replayed = [e for e in loans_report(self.ils_db)["log"] if e["no_block"]]
        event(f"replayed checkouts: {min(3, sum(e['action'] == 'checkout' for e in replayed))}+")
        event(f"replayed checkins: {min(3, sum(e['action'] == 'checkin' for e in replayed))}+")


def _use_boot_id(boot: str) -> None:
    """Every module that stamps events with the boot id sees this boot (a power cut is a reboot)."""
    _BOOT["id"] = boot
    for name, module in list(sys.modules.items()):
        if name.startswith(("kiosk.", "sync.")) and module is not kiosk.clock \
                and getattr(module, "boot_id", None) is _ORIGINAL_BOOT_ID:
            module.boot_id = _fake_boot_id


def _restore_boot_id() -> None:
    for name, module in list(sys.modules.items()):
        if name.startswith(("kiosk.", "sync.")) and getattr(module, "boot_id", None) is _fake_boot_id:
            module.boot_id = _ORIGINAL_BOOT_ID


_ORIGINAL_BOOT_ID = kiosk.clock.boot_id
_BOOT = {"id": ""}


def _fake_boot_id() -> str:
    return _BOOT["id"]


KioskLife.TestCase.settings = settings(
    max_examples=int(os.environ.get("KIOSK_MODEL_EXAMPLES", "25")),
    stateful_step_count=int(os.environ.get("KIOSK_MODEL_STEPS", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class TestKioskLife(KioskLife.TestCase):
    def tearDown(self) -> None:
        _restore_boot_id()
        super().tearDown()


def replay(*steps: tuple[str, dict]) -> None:
    """One life of the model, step by step: the invariants after each step and at the end."""
    machine = KioskLife()
    machine.statistics = False
    try:
        for name, arguments in steps:
            getattr(machine, name)(**arguments)
            machine.nothing_is_renewed()
            machine.the_books_patrons_carry_are_the_kiosks_open_loans()
    finally:
        try:
            machine.teardown()
        finally:
            _restore_boot_id()


def test_a_loan_whose_take_back_was_cut_short_is_taken_back_after_the_restart():
    replay(("power_cut_at_the_next_request", {"command": "09", "after_sending": False}),
           ("walk_away_from_an_unlocked_door", {"patron": PATRONS[0].member_id, "pick": 0}))


def test_a_book_whose_take_back_was_cut_short_is_not_lent_before_the_audit():
    replay(("power_cut_at_the_next_request", {"command": "09", "after_sending": False}),
           ("walk_away_from_an_unlocked_door", {"patron": PATRONS[0].member_id, "pick": 0}),
           ("borrow", {"patron": PATRONS[0].member_id, "pick": 0}))


def test_a_return_does_not_overtake_the_queued_loan_of_its_book():
    replay(("walk_away_from_an_unlocked_door", {"patron": PATRONS[0].member_id, "pick": 0}),  # logs in online once
           ("ils_goes_down", {}),
           ("borrow", {"patron": PATRONS[0].member_id, "pick": 0}),  # lent offline, queued
           ("ils_comes_back", {}),
           ("return_a_book", {"pick": 0}))


def test_a_replayed_checkout_whose_answer_was_lost_is_not_sent_again():
    """A loan made offline is replayed; the library lends, its answer is lost. The next drain
    finds the copy on loan (17) and takes the loan as delivered: it is not sent again, which
    the library would make a renewal."""
    replay(("walk_away_from_an_unlocked_door", {"patron": PATRONS[0].member_id, "pick": 0}),  # seen online
           ("ils_goes_down", {}),
           ("borrow", {"patron": PATRONS[0].member_id, "pick": 0}),  # lent offline, queued
           ("ils_comes_back", {}),
           ("lose_the_next_answer", {"command": "11", "how": "drop"}),
           ("drain_the_outbox", {}),
           ("drain_the_outbox", {}))
