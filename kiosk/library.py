"""The library system (ILS) as the kiosk's core sees it: one Protocol, several implementations.

`LocalLibrary` (kiosk/local_library.py) decides from the kiosk's own records and rules; the SIP2
client in `sync/` speaks to a real ILS. The composition root picks one from the config.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from kiosk.rules import Refusal, Standing
from kiosk.session import LoanLine


class LibraryUnavailable(Exception):
    """The library system did not answer in time (or the connection failed)."""


class OutcomeUnknown(LibraryUnavailable):
    """The request reached the library but no answer came back: it may have taken effect."""


@dataclass(frozen=True)
class CheckoutAnswer:
    """The library's answer to a checkout (or a renewal)."""

    due: dt.date | None = None  # set when the loan is allowed
    refusal: Refusal | None = None
    # The library's own words for the due date when the kiosk cannot read them as a date (due is
    # then the kiosk's own reckoning, for its records): what the patron is shown.
    due_text: str = ""
    # The library has already recorded the loan (an online ILS): if the door never opens, the
    # kiosk must take it back with `cancel_checkout`.
    committed: bool = False


@dataclass(frozen=True)
class CheckinAnswer:
    """The library's answer to a return."""

    ok: bool
    alert: bool = False  # do not put it back on the shelf: held for another member, or in transit
    message: str = ""  # the library's own words, shown to staff


@dataclass(frozen=True)
class ItemFacts:
    """What the library knows of a copy the kiosk has never seen."""

    item: str
    title: str
    author: str = ""


class Library(Protocol):
    def find_member(self, credential: str) -> Standing | None:
        """The member a card UID or member number belongs to, or None when unknown."""

    def verify_pin(self, credential: str, pin: str) -> Standing | None:
        """The member when the PIN is right, otherwise None."""

    def check_out(self, member_id: str, item: str) -> CheckoutAnswer:
        """May this member borrow this copy now, and until when."""

    def cancel_checkout(self, member_id: str, item: str) -> CheckinAnswer | None:
        """Take back a committed checkout whose door never opened (the book never left): the
        library's answer to the checkin (ok False: it refused), None when there was no loan to
        take back."""

    def check_in(self, item: str, returned_at: dt.datetime) -> CheckinAnswer:
        """The book is back, behind a closed door."""

    def item(self, item: str) -> ItemFacts | None:
        """The library's record of a copy, or None when it does not know it."""

    def renew(self, member_id: str, item: str) -> CheckoutAnswer:
        """Extend a loan; the answer carries the new due date or the refusal."""

    def loans(self, member_id: str) -> tuple[LoanLine, ...]:
        """The member's current loans."""

    def end_session(self, member_id: str) -> None:
        """The patron logged out."""

    def today(self) -> dt.date:
        """The library's date (rules are judged on it)."""
