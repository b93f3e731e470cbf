"""The session state machine: `step(state, event) -> (state, effects)`.

Pure: no I/O, no clock reads, no sleeping. Every event carries the monotonic time it happened
(`at`); the shell executes the effects and feeds their results back as events. A whole visit to
the kiosk is therefore a list of events, which is how the tests and the scenario runner drive it.

Screens: idle, pin, menu, borrow, open-door, return, my-loans, receipt, error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from kiosk.identifiers import IdentifierRules, Kind, classify, format_uid
from kiosk.rules import (Policy, Reason, Refusal, Standing, borrow_refusal, refusal, with_one_less_loan,
                         with_one_more_loan)

# --------------------------------------------------------------------------- data the UI shows


@dataclass(frozen=True)
class ShelfItem:
    """A book waiting in a locker, as the borrow screen lists it."""

    slot: int
    item: str  # accession number (등록번호)
    title: str
    author: str


@dataclass(frozen=True)
class LoanLine:
    """One of the member's current loans (my loans)."""

    item: str
    title: str
    due: dt.date | None
    overdue: bool = False
    renewed: bool = False  # renewed in this session (the row says so)
    due_text: str = ""  # the library's words for a due date the kiosk cannot read


@dataclass(frozen=True)
class DoorJob:
    """A door the kiosk is about to open for a loan or a return; committed before the unlock."""

    id: str
    kind: str  # "loan" or "return"
    slot: int
    item: str
    title: str
    member_id: str | None = None
    due: dt.date | None = None
    # The library (an online ILS) has already recorded this loan: cancelling the job must take
    # it back there, and recording it must not send it again.
    ils_done: bool = False
    due_text: str = ""  # the library's words for a due date the kiosk cannot read (receipt only)


@dataclass(frozen=True)
class Receipt:
    kind: str  # "loan" or "return"
    item: str
    title: str
    slot: int
    due: dt.date | None = None
    due_text: str = ""  # shown instead of `due` when set: the library's own words


# --------------------------------------------------------------------------- settings and state


@dataclass(frozen=True)
class Settings:
    ids: IdentifierRules = IdentifierRules()
    policy: Policy = Policy()
    require_pin: bool = True
    pin_min_digits: int = 4
    pin_max_digits: int = 8
    pin_tries: int = 3
    inactivity_s: float = 90.0
    inactivity_warning_s: float = 15.0  # the warning shows this long before the logout
    door_open_timeout_s: float = 30.0
    door_left_open_s: float = 60.0
    notice_s: float = 20.0  # receipts and errors go away by themselves after this
    offline_max_loans: int = 2  # books a member may borrow while the library system is unreachable
    language: str = "ko"


@dataclass(frozen=True)
class State:
    settings: Settings = Settings()
    screen: str = "idle"
    lang: str = "ko"
    member: Standing | None = None
    today: dt.date | None = None  # the library's date at login (rules are judged on it)
    credential: str | None = None  # a member identifier waiting for its PIN
    pin: str = ""
    pin_failures: int = 0
    shelf: tuple[ShelfItem, ...] = ()
    loans: tuple[LoanLine, ...] = ()
    selected: str | None = None
    job: DoorJob | None = None
    door: str = ""  # "", "unlocking", "unlocked", "open", "recording"
    door_since: float = 0.0
    door_warned: bool = False
    notice: Refusal | None = None  # what the error screen (or an inline hint) says
    receipt: Receipt | None = None
    busy: bool = False  # waiting for the shell to answer an effect
    last_activity: float = 0.0
    warned: bool = False  # the inactivity warning is showing
    screen_since: float = 0.0

    @property
    def logged_in(self) -> bool:
        return self.member is not None

    def seconds_left(self, now: float) -> float:
        """Until the inactivity logout (for the warning's countdown)."""
        return max(0.0, self.settings.inactivity_s - (now - self.last_activity))


def initial(settings: Settings, at: float = 0.0) -> State:
    return State(settings=settings, lang=settings.language, last_activity=at, screen_since=at)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class Event:
    at: float  # monotonic seconds


@dataclass(frozen=True, kw_only=True)
class Tick(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class CardTapped(Event):
    uid: bytes


@dataclass(frozen=True, kw_only=True)
class BarcodeScanned(Event):
    text: str


@dataclass(frozen=True, kw_only=True)
class Tap(Event):
    button: str


@dataclass(frozen=True, kw_only=True)
class DoorOpened(Event):
    slot: int


@dataclass(frozen=True, kw_only=True)
class DoorClosed(Event):
    slot: int


# Results of effects, fed back by the shell.


@dataclass(frozen=True, kw_only=True)
class MemberFound(Event):
    member: Standing
    today: dt.date


@dataclass(frozen=True, kw_only=True)
class PinAccepted(Event):
    member: Standing
    today: dt.date


@dataclass(frozen=True, kw_only=True)
class PinRejected(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class ShelfLoaded(Event):
    shelf: tuple[ShelfItem, ...]


@dataclass(frozen=True, kw_only=True)
class LoansLoaded(Event):
    loans: tuple[LoanLine, ...]


@dataclass(frozen=True, kw_only=True)
class DoorJobReady(Event):
    """The library said yes (a checkout's due date, or a locker for a return)."""

    job: DoorJob


@dataclass(frozen=True, kw_only=True)
class DoorJobCommitted(Event):
    """The decision is on disk; now, and only now, the door may open."""

    job: DoorJob


@dataclass(frozen=True, kw_only=True)
class Recorded(Event):
    """The loan or return and its outbox event are committed."""

    job: DoorJob


@dataclass(frozen=True, kw_only=True)
class Renewed(Event):
    item: str
    due: dt.date
    due_text: str = ""


@dataclass(frozen=True, kw_only=True)
class Refused(Event):
    """An effect's answer was no (or it failed): show why."""

    refusal: Refusal


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Effect:
    pass


@dataclass(frozen=True)
class LookUpMember(Effect):
    credential: str  # a formatted card UID or a member number
    via: str  # "card" or "barcode"


@dataclass(frozen=True)
class VerifyPin(Effect):
    credential: str
    pin: str


@dataclass(frozen=True)
class LoadShelf(Effect):
    pass


@dataclass(frozen=True)
class LoadLoans(Effect):
    member_id: str


@dataclass(frozen=True)
class CheckOut(Effect):
    """Ask the library for a loan of this copy (due date) before any door opens."""

    member_id: str
    item: str
    slot: int


@dataclass(frozen=True)
class Renew(Effect):
    """Ask the library to extend a loan (from my loans)."""

    member_id: str
    item: str


@dataclass(frozen=True)
class PrepareReturn(Effect):
    """Check the copy and pick an empty locker for it."""

    item: str
    member_id: str | None


@dataclass(frozen=True)
class CommitDoorJob(Effect):
    job: DoorJob


@dataclass(frozen=True)
class Unlock(Effect):
    slot: int


@dataclass(frozen=True)
class Lock(Effect):
    slot: int


@dataclass(frozen=True)
class NoteDoorOpened(Effect):
    """The door of a job opened: after a crash from here on, the book has moved."""

    job: DoorJob


@dataclass(frozen=True)
class RecordDoorJob(Effect):
    """The door opened and closed: record the loan or return with its outbox event."""

    job: DoorJob


@dataclass(frozen=True)
class CancelDoorJob(Effect):
    job: DoorJob
    reason: str


@dataclass(frozen=True)
class RaiseAlarm(Effect):
    kind: str  # "forced-open", "door-left-open"
    slot: int


@dataclass(frozen=True)
class EndSession(Effect):
    member_id: str


# --------------------------------------------------------------------------- the machine

_INACTIVE_SCREENS = frozenset({"pin", "menu", "borrow", "return", "my-loans"})
_NOTICE_SCREENS = frozenset({"error", "receipt"})

Step = tuple[State, tuple[Effect, ...]]


def step(state: State, event: Event) -> Step:
    """Advance the session by one event. Returns the new state and the effects to execute."""
    if isinstance(event, Tick):
        return _tick(state, event.at)
    if isinstance(event, (DoorOpened, DoorClosed)):
        return _door(state, event)
    if isinstance(event, (Tap, CardTapped, BarcodeScanned)):
        state = replace(state, last_activity=event.at, warned=False)
        if isinstance(event, Tap):
            return _tap(state, event)
        if state.busy or state.door:
            return state, ()
        if isinstance(event, CardTapped):
            return _card(state, event)
        return _barcode(state, event)
    return _result(replace(state, busy=False), event)


def _go(state: State, screen: str, at: float, **changes: object) -> State:
    return replace(state, screen=screen, screen_since=at, **changes)


def _fail(state: State, why: Refusal, at: float) -> Step:
    return _go(state, "error", at, notice=why, busy=False, selected=None), ()


def _home(state: State, at: float) -> State:
    """Where a finished step leads: the menu for a member, otherwise idle."""
    if state.member is not None:
        return _go(state, "menu", at, notice=None, receipt=None, selected=None)
    return _reset(state, at)


def _reset(state: State, at: float) -> State:
    return initial(state.settings, at)


def _refused_sign_in(state: State, why: Refusal, at: float) -> Step:
    """A sign-in refused on the PIN screen: back to no one signed in, told in the language the
    patron chose."""
    return _fail(replace(_reset(state, at), lang=state.lang), why, at)


def _logout(state: State, at: float) -> Step:
    effects: tuple[Effect, ...] = ()
    if state.member is not None:
        effects = (EndSession(state.member.member_id),)
    return _reset(state, at), effects


def _may_log_in(state: State) -> bool:
    return state.member is None and state.screen in ("idle", "pin", "error", "receipt", "return")


def _begin_login(state: State, credential: str, via: str, at: float) -> Step:
    if state.screen == "pin" and state.credential == credential:
        return state, ()  # the same card or phone again (it dipped out of view): the PIN typed stays
    state = replace(state, credential=credential, pin="", pin_failures=0, busy=True, notice=None)
    return state, (LookUpMember(credential, via),)


def _card(state: State, event: CardTapped) -> Step:
    if not _may_log_in(state):
        return state, ()
    try:
        credential = format_uid(event.uid, state.settings.ids)
    except ValueError:
        return _fail(state, refusal(Reason.UNKNOWN_CARD), event.at)
    return _begin_login(state, credential, "card", event.at)


def _barcode(state: State, event: BarcodeScanned) -> Step:
    scanned = classify(event.text, state.settings.ids)
    if scanned.kind is Kind.MEMBER:
        if _may_log_in(state):
            return _begin_login(state, scanned.text, "barcode", event.at)
        return state, ()
    if state.screen in ("idle", "return", "error", "receipt") or (
        state.screen == "menu" and state.member is not None
    ):
        # A book shown to the scanner means "I am returning this", logged in or not.
        if scanned.kind is Kind.ITEM:
            member_id = state.member.member_id if state.member else None
            state = _go(state, "return", event.at, busy=True, notice=None, receipt=None)
            return state, (PrepareReturn(scanned.text, member_id),)
        if scanned.kind is Kind.ISBN:
            return _fail(state, refusal(Reason.ISBN_NOT_COPY), event.at)
        return _fail(state, refusal(Reason.UNKNOWN_BARCODE), event.at)
    return state, ()


def _tap(state: State, event: Tap) -> Step:
    button, at, s = event.button, event.at, state
    if button == "lang":
        return replace(s, lang="en" if s.lang == "ko" else "ko"), ()
    if s.busy or s.door in ("unlocking", "recording"):
        return s, ()
    screen = s.screen
    if screen == "idle":
        if button == "return":
            return _go(s, "return", at), ()
    elif screen == "pin":
        return _pin_tap(s, button, at)
    elif screen == "menu":
        if button == "borrow":
            assert s.member is not None and s.today is not None
            why = borrow_refusal(s.member, s.settings.policy, s.today)
            if why is not None:
                return _fail(s, why, at)
            return _go(s, "borrow", at, selected=None, busy=True), (LoadShelf(),)
        if button == "return":
            return _go(s, "return", at), ()
        if button == "my-loans":
            assert s.member is not None
            return _go(s, "my-loans", at, busy=True, loans=(), notice=None), (LoadLoans(s.member.member_id),)
        if button == "logout":
            return _logout(s, at)
    elif screen == "borrow":
        if button.startswith("item:"):
            item = button[len("item:") :]
            if any(line.item == item for line in s.shelf):
                return replace(s, selected=item), ()
            return s, ()
        if button == "confirm" and s.selected is not None:
            line = next((x for x in s.shelf if x.item == s.selected), None)
            if line is None:
                return _fail(s, refusal(Reason.ITEM_NOT_AVAILABLE), at)
            assert s.member is not None
            return replace(s, busy=True), (CheckOut(s.member.member_id, line.item, line.slot),)
        if button == "cancel":
            return _home(s, at), ()
        if button == "logout":
            return _logout(s, at)
    elif screen == "my-loans" and button.startswith("renew:"):
        item = button[len("renew:"):]
        if s.member is not None and any(line.item == item and not line.overdue for line in s.loans):
            return replace(s, busy=True, notice=None), (Renew(s.member.member_id, item),)
        return s, ()
    elif screen in ("return", "my-loans"):
        if button in ("cancel", "confirm"):
            return _home(s, at), ()
        if button == "logout":
            return _logout(s, at)
    elif screen in _NOTICE_SCREENS:
        if button in ("confirm", "cancel"):
            return _home(s, at), ()
        if button == "logout":
            return _logout(s, at)
    return s, ()


def _pin_tap(s: State, button: str, at: float) -> Step:
    cfg = s.settings
    if button.startswith("pin:") and button[4:].isdigit() and len(button) == 5:
        if len(s.pin) < cfg.pin_max_digits:
            return replace(s, pin=s.pin + button[4:], notice=None), ()
        return s, ()
    if button == "pin-del":
        return replace(s, pin=s.pin[:-1]), ()
    if button == "pin-ok" and len(s.pin) >= cfg.pin_min_digits and s.credential:
        return replace(s, busy=True), (VerifyPin(s.credential, s.pin),)
    if button == "cancel":
        return _reset(s, at), ()
    return s, ()


def _door(state: State, event: DoorOpened | DoorClosed) -> Step:
    job = state.job
    ours = job is not None and event.slot == job.slot
    if isinstance(event, DoorOpened):
        if ours and state.door == "unlocked":
            assert job is not None
            opened = replace(state, door="open", door_since=event.at, door_warned=False)
            return opened, (NoteDoorOpened(job),)
        if ours and state.door == "open":
            return state, ()
        # Opened with no unlock: someone forced it (or the lock failed). Staff must know.
        return state, (RaiseAlarm("forced-open", event.slot),)
    if ours and state.door in ("open", "unlocked"):
        # Shut after its unlock: it was open, even when its opening went unseen (a sensor too
        # slow for a quick hand): the book moved, and staff are told the sensor missed it.
        assert job is not None
        effects: tuple[Effect, ...] = (Lock(job.slot), RecordDoorJob(job))
        if state.door == "unlocked":
            effects += (RaiseAlarm("door-opening-unseen", job.slot),)
        return replace(state, door="recording", busy=True), effects
    return state, ()


def _tick(state: State, now: float) -> Step:
    cfg = state.settings
    if state.door == "unlocked" and now - state.door_since >= cfg.door_open_timeout_s:
        job = state.job
        assert job is not None
        effects = (Lock(job.slot), CancelDoorJob(job, "door-timeout"))
        after = replace(state, job=None, door="")  # no touch of the patron's: they may have gone
        return _go(after, "error", now, notice=refusal(Reason.DOOR_TIMEOUT, slot=job.slot, kind=job.kind)), effects
    if state.door == "open" and not state.door_warned and now - state.door_since >= cfg.door_left_open_s:
        assert state.job is not None
        return replace(state, door_warned=True), (RaiseAlarm("door-left-open", state.job.slot),)
    if state.door or state.busy:
        return state, ()
    if state.screen in _NOTICE_SCREENS and now - state.screen_since >= cfg.notice_s:
        if state.member is not None and now - state.last_activity < cfg.inactivity_s:
            return _home(state, now), ()
        return _logout(state, now)
    if state.screen in _INACTIVE_SCREENS:
        idle_for = now - state.last_activity
        if idle_for >= cfg.inactivity_s:
            return _logout(state, now)
        if not state.warned and idle_for >= cfg.inactivity_s - cfg.inactivity_warning_s:
            return replace(state, warned=True), ()
    return state, ()


def _result(s: State, event: Event) -> Step:
    at = event.at
    if isinstance(event, MemberFound):
        if s.settings.require_pin:
            return _go(s, "pin", at, member=None, today=event.today, last_activity=at), ()
        return _go(s, "menu", at, member=event.member, today=event.today, credential=None), ()
    if isinstance(event, PinAccepted):
        verdict = event.member.verdict
        if verdict is not None and verdict.reason is Reason.PIN_LOCKED:
            # Offline, too many wrong PINs for this member (counted on disk, over every tap):
            # not even the right PIN signs in until the lockout ends.
            return _refused_sign_in(s, verdict, at)
        return _go(s, "menu", at, member=event.member, today=event.today, credential=None, pin=""), ()
    if isinstance(event, PinRejected):
        failures = s.pin_failures + 1
        if failures >= s.settings.pin_tries:
            return _refused_sign_in(s, refusal(Reason.PIN_LOCKED), at)
        left = s.settings.pin_tries - failures
        return replace(s, pin="", pin_failures=failures, notice=refusal(Reason.WRONG_PIN, left=left)), ()
    if isinstance(event, ShelfLoaded):
        return replace(s, shelf=event.shelf), ()
    if isinstance(event, LoansLoaded):
        return replace(s, loans=event.loans), ()
    if isinstance(event, DoorJobReady):
        return replace(s, job=event.job, door="unlocking", busy=True), (CommitDoorJob(event.job),)
    if isinstance(event, DoorJobCommitted):
        job = event.job
        screen = _go(s, "open-door", at, job=job, door="unlocked", door_since=at, selected=None)
        return screen, (Unlock(job.slot),)
    if isinstance(event, Recorded):
        job = event.job
        receipt = Receipt(job.kind, job.item, job.title, job.slot, job.due, job.due_text)
        member = s.member
        if member is not None:
            member = with_one_more_loan(member) if job.kind == "loan" else with_one_less_loan(member)
        # A door shut is no touch of the patron's (a passer-by may shut it): the inactivity
        # logout still counts from their last one.
        after = replace(s, job=None, door="", member=member, receipt=receipt)
        return _go(after, "receipt", at), ()
    if isinstance(event, Renewed):
        loans = tuple(
            replace(line, due=event.due, due_text=event.due_text, renewed=True, overdue=False)
            if line.item == event.item else line
            for line in s.loans
        )
        return replace(s, loans=loans, notice=None), ()
    if isinstance(event, Refused):
        if s.screen == "my-loans" and s.job is None and s.loans:
            return replace(s, notice=event.refusal), ()  # a renewal: why, above the list that stays
        if s.screen == "pin" and event.refusal.reason is not Reason.ILS_UNAVAILABLE:
            return _refused_sign_in(s, event.refusal, at)
        if s.job is not None:
            # The job could not go on (not committed, not unlocked, or not recorded): the shell has
            # locked the door and told staff; the patron sees why.
            s = replace(s, job=None, door="")
        return _fail(s, event.refusal, at)
    return s, ()
