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


@dataclass(frozen=True)
class CheckoutAnswer:
    due: dt.date | None = None  # set when the loan is allowed
    refusal: Refusal | None = None


class Library(Protocol):
    def find_member(self, credential: str) -> Standing | None:
        """The member a card UID or member number belongs to, or None when unknown."""

    def verify_pin(self, credential: str, pin: str) -> Standing | None:
        """The member when the PIN is right, otherwise None."""

    def check_out(self, member_id: str, item: str) -> CheckoutAnswer:
        """May this member borrow this copy now, and until when."""

    def loans(self, member_id: str) -> tuple[LoanLine, ...]:
        """The member's current loans."""

    def end_session(self, member_id: str) -> None:
        """The patron logged out."""

    def today(self) -> dt.date:
        """The library's date (rules are judged on it)."""
