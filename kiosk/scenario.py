"""Scenario files: one step a line, driving the simulated devices and the UI, checking outcomes.

    # a comment
    card 04A1B2C3          tap a card with this UID (hex)
    scan 11110100000001    show a barcode to the scanner
    tap borrow             press an on-screen button (it must be on the screen)
    door 3 open            open (or close) locker 3; `door * open` = the locker unlocked last
    wait 31                let 31 seconds pass (the fake clock; timers fire as they would)
    expect screen menu
    expect text 대출        some text on the current screen contains this
    expect loan EM0000000003 11110100000001
    expect no-loan EM0000000003
    expect slot 3 empty    (or: expect slot 3 EM0000000003)
    expect ils-loan EM0000000003 11110100000001    the library system (the demo ILS) agrees
    expect ils-no-loan EM0000000025
    expect ils-renewals EM0000000025 1
    expect staff-slot 1    locker 1 is kept for staff (a returned book held for someone else)
    ils down               cut the kiosk off from the library system (`ils up` restores it)
    sync                   run the outbox worker until nothing more can be sent now
    restart                a power cut and a reboot: the kiosk is rebuilt from its database
    expect queue pending 1 events not yet delivered (or: dead, delivered)
    screenshot borrow.png  saved in the --screenshots folder

See the README for every step. The runner stops at the first step that fails and says why.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiosk.clock import FakeClock
from kiosk.identifiers import parse_uid_hex
from kiosk.store import WAITING_STATES


class ScenarioError(Exception):
    """A step that is malformed or whose expectation does not hold."""

    def __init__(self, line: int, text: str, reason: str) -> None:
        self.line, self.text, self.reason = line, text, reason
        super().__init__(f"line {line}: {text}: {reason}")


@dataclass(frozen=True)
class Step:
    line: int
    text: str
    words: tuple[str, ...]


# verb -> (minimum words, maximum words) after the verb; None = any number (free text)
_SHAPES: dict[str, tuple[int, int | None]] = {
    "card": (1, 1), "scan": (1, None), "tap": (1, 1), "door": (2, 2), "wait": (1, 1),
    "screenshot": (1, 1), "expect": (2, None), "ils": (1, 1), "sync": (0, 0), "restart": (0, 0),
    "lock": (2, 2),
}
_LOCK_FAULTS = ("jam", "unjam", "offline", "online")
_EXPECTS = {
    "screen": (1, 1), "text": (1, None), "loan": (2, 2), "no-loan": (1, 1), "slot": (2, 2),
    "button": (1, 1), "no-button": (1, 1), "alarm": (1, 2), "locked": (1, 1), "unlocked": (1, 1),
    "receipt": (1, 1), "ils-loan": (2, 3), "ils-no-loan": (1, 1), "ils-renewals": (2, 2),
    "staff-slot": (1, 1), "queue": (2, 2),
}


# what `expect queue STATE N` counts: pending = on its way (pending, in flight or unknown)
_QUEUE_STATES = {"pending": WAITING_STATES, "dead": ("dead",), "delivered": ("delivered",)}


def _check_shape(verb: str, args: list[str], shapes: dict[str, tuple[int, int | None]]) -> str | None:
    if verb not in shapes:
        return f"unknown step {verb!r} (known: {', '.join(sorted(shapes))})"
    low, high = shapes[verb]
    if len(args) < low or (high is not None and len(args) > high):
        want = str(low) if low == high else f"{low} or more" if high is None else f"{low} to {high}"
        return f"{verb!r} takes {want} argument(s), found {len(args)}"
    return None


def parse(text: str) -> list[Step]:
    """Parse a scenario; raises ScenarioError for the first malformed line."""
    steps = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise ScenarioError(number, line, f"cannot split into words: {exc}") from None
        if not words:
            continue
        problem = _check_shape(words[0], words[1:], _SHAPES)
        if problem is None and words[0] == "expect":
            problem = _check_shape(words[1], words[2:], _EXPECTS)
        if problem is None and words[0] == "door" and words[2] not in ("open", "close"):
            problem = f"door takes open or close, found {words[2]!r}"
        if problem is None and words[0] == "lock" and words[2] not in _LOCK_FAULTS:
            problem = f"lock takes {', '.join(_LOCK_FAULTS)}, found {words[2]!r}"
        if problem is None and words[0] == "ils" and words[1] not in ("down", "up"):
            problem = f"ils takes down or up, found {words[1]!r}"
        if problem is None and words[:2] == ["expect", "queue"] and words[2] not in _QUEUE_STATES:
            problem = f"expect queue takes {', '.join(_QUEUE_STATES)}, found {words[2]!r}"
        if problem:
            raise ScenarioError(number, line, problem)
        steps.append(Step(number, line, tuple(words)))
    return steps


class Runner:
    """Runs steps against a kiosk built on simulated devices, a fake clock and a display."""

    def __init__(self, kiosk, clock: FakeClock, *, screenshots: Path | None = None,
                 echo: Callable[[str], None] | None = None, ils=None,
                 restart: Callable[[], object] | None = None) -> None:
        self.kiosk = kiosk
        self.ils = ils  # the demo library system: loans(), down(), up()
        self.restart = restart  # builds and starts the kiosk anew from its database
        self.clock = clock
        self.screenshots = screenshots
        self.echo = echo or (lambda _line: None)
        self.frame = None

    def settle(self) -> None:
        """Process everything the last step caused, then draw the screen as a patron sees it."""
        self.kiosk.pump()
        self.kiosk.tick()
        self.frame = self.kiosk.render()

    def run(self, steps: list[Step]) -> None:
        self.settle()
        for step in steps:
            self.echo(f"{step.line:4d}  {step.text}")
            try:
                self._do(step.words[0], list(step.words[1:]))
            except ScenarioError:
                raise
            except Exception as exc:  # noqa: BLE001 - report any failure against its line
                raise ScenarioError(step.line, step.text, f"{type(exc).__name__}: {exc}") from exc
            self.settle()

    def _fail(self, reason: str) -> None:
        raise AssertionError(reason)

    def _do(self, verb: str, args: list[str]) -> None:
        devices = self.kiosk.devices
        if verb == "card":
            devices.card_reader.present(parse_uid_hex(args[0]))
        elif verb == "scan":
            devices.scanner.show(" ".join(args))
        elif verb == "tap":
            self._tap(args[0])
        elif verb == "door":
            self._door(args[0], args[1])
        elif verb == "lock":
            self._lock_fault(int(args[0]), args[1])
        elif verb == "wait":
            self._wait(float(args[0]))
        elif verb == "screenshot":
            if self.screenshots is not None:
                self.screenshots.mkdir(parents=True, exist_ok=True)
                self.kiosk.display.screenshot(self.screenshots / args[0])
        elif verb == "expect":
            self._expect(args[0], args[1:])
        elif verb == "ils":
            if self.ils is None:
                self._fail("this kiosk runs without a library system (set [library] backend = \"sip2\")")
            (self.ils.down if args[0] == "down" else self.ils.up)()
        elif verb == "sync":
            if self.kiosk.sync_now() is None:
                self._fail("this kiosk has no outbox worker (set [library] backend = \"sip2\")")
        elif verb == "restart":
            if self.restart is None:
                self._fail("this runner cannot restart the kiosk")
            self.kiosk.power_cut()
            self.kiosk = self.restart()

    def _buttons(self) -> dict:
        return dict(self.frame.buttons) if self.frame is not None else {}

    def _tap(self, button: str) -> None:
        buttons = self._buttons()
        if self.frame is not None and button not in buttons:
            shown = ", ".join(sorted(buttons)) or "none"
            self._fail(f"no button {button!r} on screen {self.frame.screen!r} (buttons: {shown})")
        if button in ("page-prev", "page-next"):
            self.kiosk.display.turn_page(button)  # paging is the screen's own business
        else:
            self.kiosk.tap(button)

    def _door(self, which: str, action: str) -> None:
        locks = self.kiosk.devices.locks
        if which == "*":
            if locks.last_unlocked is None:
                self._fail("door *: no locker has been unlocked yet")
            slot = locks.last_unlocked
        else:
            slot = int(which)
        (locks.open_door if action == "open" else locks.close_door)(slot)

    def _lock_fault(self, slot: int, fault: str) -> None:
        """jam: the lock no longer releases; offline: its board stops answering (out of service);
        unjam / online: back to normal."""
        locks = self.kiosk.devices.locks
        if fault in ("jam", "unjam"):
            locks.jam(slot, fault == "jam")
        elif fault == "offline":
            locks.fail([slot], "lock board not answering (scenario)")
        else:
            locks.repair()

    def _wait(self, seconds: float) -> None:
        if seconds < 0:
            self._fail("cannot wait a negative time")
        # Whole seconds at a time, as the real loop ticks many times a second.
        remaining = seconds
        while remaining > 0:
            delta = min(1.0, remaining)
            self.clock.advance(delta)
            remaining -= delta
            self.kiosk.pump()
            self.kiosk.tick()

    def _expect(self, what: str, args: list[str]) -> None:  # noqa: C901 - one branch per check
        state, store = self.kiosk.state, self.kiosk.store
        if what == "screen":
            if state.screen != args[0]:
                self._fail(f"expected screen {args[0]!r}, the screen is {state.screen!r}{_why(state)}")
        elif what == "text":
            wanted = " ".join(args)
            texts = self.frame.texts if self.frame is not None else ()
            if not any(wanted in text for text in texts):
                shown = " | ".join(texts)
                self._fail(f"no text containing {wanted!r} on screen {state.screen!r} (it shows: {shown})")
        elif what == "loan":
            loan = store.open_loan(args[0])
            if loan is None:
                self._fail(f"{args[0]} is not on loan")
            elif loan["member_id"] != args[1] and loan["member_key"] != store.key_of(args[1]):
                # (where the ILS keeps the records only a keyed hash of the member stays here)
                self._fail(f"{args[0]} is on loan to someone else, not {args[1]}")
        elif what == "no-loan":
            loan = store.open_loan(args[0])
            if loan is not None:
                self._fail(f"{args[0]} is on loan since {loan['loaned_at']}")
        elif what == "slot":
            contents = store.slot_contents(int(args[0]))
            wanted = None if args[1] == "empty" else args[1]
            if contents != wanted:
                self._fail(f"locker {args[0]} holds {contents or 'nothing'}, expected {args[1]}")
        elif what in ("button", "no-button"):
            present = args[0] in self._buttons()
            if present != (what == "button"):
                self._fail(f"button {args[0]!r} is {'' if present else 'not '}on screen {state.screen!r}")
        elif what == "alarm":
            alarms = [a for a in store.alarms() if a["kind"] == args[0]]
            if len(args) > 1:
                alarms = [a for a in alarms if str(a["slot"]) == args[1]]
            if not alarms:
                self._fail(f"no {' '.join(args)} alarm was raised (alarms: {[a['kind'] for a in store.alarms()]})")
        elif what in ("locked", "unlocked"):
            locked = self.kiosk.devices.locks.is_locked(int(args[0]))
            if locked != (what == "locked"):
                self._fail(f"locker {args[0]} is {'locked' if locked else 'unlocked'}")
        elif what in ("ils-loan", "ils-no-loan", "ils-renewals"):
            self._expect_ils(what, args)
        elif what == "staff-slot":
            held = {row["slot"]: row for row in store.staff_slots()}
            if int(args[0]) not in held:
                self._fail(f"locker {args[0]} is not kept for staff (kept: {sorted(held) or 'none'})")
        elif what == "queue":
            counts = store.queue_status()["counts"]
            found = sum(counts.get(state, 0) for state in _QUEUE_STATES[args[0]])
            if found != int(args[1]):
                self._fail(f"the outbox has {found} {args[0]} event(s), expected {args[1]} (by state: {counts})")
        elif what == "receipt":
            receipt = state.receipt
            if receipt is None or receipt.item != args[0]:
                self._fail(f"the receipt is for {receipt.item if receipt else 'nothing'}, expected {args[0]}")


    def _expect_ils(self, what: str, args: list[str]) -> None:
        if self.ils is None:
            self._fail("this kiosk runs without a library system (set [library] backend = \"sip2\")")
        loan = next((row for row in self.ils.loans() if row["item"] == args[0]), None)
        if what == "ils-no-loan":
            if loan is not None:
                self._fail(f"the library has {args[0]} on loan to {loan['patron']}")
            return
        if loan is None:
            self._fail(f"the library has no loan of {args[0]}")
        elif what == "ils-loan" and loan["patron"] != args[1]:
            self._fail(f"the library has {args[0]} on loan to {loan['patron']}, not {args[1]}")
        elif what == "ils-loan" and len(args) > 2 and not loan["checked_out_at"].startswith(args[2]):
            self._fail(f"the library has {args[0]} on loan since {loan['checked_out_at']}, expected {args[2]}")
        elif what == "ils-renewals" and int(loan["renewals"]) != int(args[1]):
            self._fail(f"the library shows {loan['renewals']} renewal(s) of {args[0]}, expected {args[1]}")


def _why(state) -> str:
    if state.screen == "error" and state.notice is not None:
        return f" ({state.notice.reason.value})"
    return ""
