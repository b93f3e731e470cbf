"""What the library system answered, as typed values: one frozen dataclass per response.

Each `from_message` reads a decoded `Message` and never raises, whatever the server sent: blank
or garbled counts read as 0, absent optional fields as None or "", unreadable dates as None (the
raw text is kept beside each due date so that a screen can still show it). Screen messages come
already normalised to NFC by the codec.

Dates are read in the time zone given (`tz`, the kiosk's own); a server's `   Z` dates stay UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sync.sip2.codec import Message, parse_date
from sync.sip2.messages import CIRCULATION_STATUS, PATRON_STATUS_FLAGS

# BX: which messages the ACS supports, one Y/N per position (SIP2 2.00, in this order).
SUPPORTED_MESSAGE_POSITIONS: tuple[str, ...] = (
    "patron_status", "checkout", "checkin", "block_patron", "sc_status", "request_acs_resend",
    "login", "patron_information", "end_patron_session", "fee_paid", "item_information",
    "item_status_update", "patron_enable", "hold", "renew", "renew_all",
)


# -- lenient readers


def _yes(text: str) -> bool:
    return text.strip().upper() in ("Y", "1")


def _tristate(text: str) -> bool | None:
    """BL/CQ: Y, N, or absent (the server does not say)."""
    value = text.strip().upper()
    if value in ("Y", "1"):
        return True
    if value in ("N", "0"):
        return False
    return None


def _int(text: str) -> int | None:
    value = text.strip()
    return int(value) if value.isascii() and value.isdigit() else None


_NUMBER = re.compile(r"-?\d[\d.,]*", re.ASCII)
_THOUSANDS = re.compile(r"-?\d{1,3}(,\d{3})+", re.ASCII)


def _amount(text: str) -> float | None:
    """A fee amount as servers write it: "12.50", "$12.50", "1,000" (won), "12,50" (euro)."""
    match = _NUMBER.search(text.replace(" ", ""))
    if not match:
        return None
    number = match.group().rstrip(".,")
    if "," in number and "." in number:
        # Whichever comes first groups thousands: "1,234.50" and "1.234,50".
        grouping = "," if number.index(",") < number.index(".") else "."
        number = number.replace(grouping, "").replace(",", ".")
    elif "," in number:
        number = number.replace(",", "") if _THOUSANDS.fullmatch(number) else number.replace(",", ".")
    try:
        return float(number)
    except ValueError:  # "1.2.3"
        return None


def _date(text: str, tz: dt.tzinfo | None) -> dt.datetime | None:
    """A date from the server, in the kiosk's zone `tz` when given: a due date sent in UTC is
    due on the kiosk's calendar day, not on Greenwich's."""
    try:
        when = parse_date(text, tz)
        return when.astimezone(tz) if tz is not None and when is not None and when.tzinfo is not None else when
    except (ValueError, OverflowError):  # parse_date is lenient already; belt and braces
        return None


def _flags(text: str) -> frozenset[str]:
    return frozenset(name for name, mark in zip(PATRON_STATUS_FLAGS, text) if mark.upper() == "Y")


class _Fields:
    """A reply's variable fields, read field by field: the first value of each id from one dict
    built in C, the repeatable ones by a scan (replies are short)."""

    __slots__ = ("_first", "_fields")

    def __init__(self, message: Message) -> None:
        self._fields = message.fields
        self._first = dict(reversed(message.fields))  # reversed: the first of repeated ids wins

    def get(self, code: str) -> str:
        """The first value of a field, "" when absent."""
        return self._first.get(code, "")

    def all(self, code: str) -> tuple[str, ...]:
        if code not in self._first:
            return ()
        return tuple([value for key, value in self._fields if key == code])


def _fixed(message: Message, name: str) -> str:
    value = message.fixed.get(name, "")
    return value if isinstance(value, str) else ""


_new = object.__new__


def _build(cls: type, values: dict) -> object:
    """A frozen result from every one of its fields, without the generated __init__ (which sets
    each field through object.__setattr__, five times slower for a dozen fields). `values` must
    name every field: the from_message methods below always do."""
    result = _new(cls)
    result.__dict__.update(values)
    return result


# -- results


@dataclass(frozen=True)
class AcsStatus:
    """98 ACS status: what the server says it can do now (advisory, sometimes wrong)."""

    online: bool = False
    checkin_ok: bool = False
    checkout_ok: bool = False
    renewal_policy: bool = False  # the ACS allows renewals through the kiosk
    offline_ok: bool = False
    timeout_period: int | None = None  # tenths of a second; None when blank
    retries_allowed: int | None = None  # 999 means "unknown" in the spec
    date_time: dt.datetime | None = None
    protocol_version: str = ""
    institution: str = ""
    library_name: str = ""
    supported_messages: frozenset[str] = frozenset()
    screen_messages: tuple[str, ...] = ()

    @classmethod
    def from_message(cls, message: Message, tz: dt.tzinfo | None = None) -> AcsStatus:
        """Read a 98; never raises."""
        f = _Fields(message)
        bx = f.get("BX")
        return _build(cls, dict(
            online=_yes(_fixed(message, "online_status")),
            checkin_ok=_yes(_fixed(message, "checkin_ok")),
            checkout_ok=_yes(_fixed(message, "checkout_ok")),
            renewal_policy=_yes(_fixed(message, "acs_renewal_policy")),
            offline_ok=_yes(_fixed(message, "offline_ok")),
            timeout_period=_int(_fixed(message, "timeout_period")),
            retries_allowed=_int(_fixed(message, "retries_allowed")),
            date_time=_date(_fixed(message, "date_time_sync"), tz),
            protocol_version=_fixed(message, "protocol_version").strip(),
            institution=f.get("AO"),
            library_name=f.get("AM"),
            supported_messages=frozenset(
                name for name, mark in zip(SUPPORTED_MESSAGE_POSITIONS, bx) if mark.upper() == "Y"),
            screen_messages=f.all("AF"),
        ))


@dataclass(frozen=True)
class PatronStatus:
    """24 patron status: is this a patron, is the PIN right, what is blocked."""

    patron: str = ""
    name: str = ""
    valid: bool | None = None  # BL; None when the server does not say
    pin_ok: bool | None = None  # CQ; None when the server does not say
    flags: frozenset[str] = frozenset()  # PATRON_STATUS_FLAGS names set to Y
    fee_amount: float | None = None
    currency: str = ""
    screen_messages: tuple[str, ...] = ()

    @classmethod
    def from_message(cls, message: Message, tz: dt.tzinfo | None = None) -> PatronStatus:
        """Read a 24 (or the common part of a 64); never raises."""
        return _build(cls, _patron_common(message, _Fields(message)))


def _patron_common(message: Message, f: _Fields) -> dict:
    return {
        "patron": f.get("AA"),
        "name": f.get("AE"),
        "valid": _tristate(f.get("BL")),
        "pin_ok": _tristate(f.get("CQ")),
        "flags": _flags(_fixed(message, "patron_status")),
        "fee_amount": _amount(f.get("BV")),
        "currency": f.get("BH"),
        "screen_messages": f.all("AF"),
    }


@dataclass(frozen=True)
class PatronInfo(PatronStatus):
    """64 patron information: the status plus counts, limits, one item list and contact details.

    Counts a server leaves blank read as 0; limits it does not send are None. Only the list the
    request's summary asked for is usually filled in.
    """

    holds: int = 0
    overdue: int = 0
    charged: int = 0
    fines: int = 0
    recalls: int = 0
    unavailable_holds: int = 0
    hold_limit: int | None = None  # BZ
    overdue_limit: int | None = None  # CA
    charged_limit: int | None = None  # CB
    hold_items: tuple[str, ...] = ()  # AS
    overdue_items: tuple[str, ...] = ()  # AT
    charged_items: tuple[str, ...] = ()  # AU
    fine_items: tuple[str, ...] = ()  # AV
    recall_items: tuple[str, ...] = ()  # BU
    unavailable_items: tuple[str, ...] = ()  # CD
    expires: dt.date | None = None  # PA (BW or PE on some servers)
    email: str = ""
    phone: str = ""

    @classmethod
    def from_message(cls, message: Message, tz: dt.tzinfo | None = None) -> PatronInfo:
        """Read a 64; never raises."""
        f = _Fields(message)
        expires = None
        for code in ("PA", "BW", "PE"):
            when = _date(f.get(code), tz)
            if when is not None:
                expires = when.date()
                break
        values = _patron_common(message, f)
        values.update(
            holds=message.number("hold_items_count"),
            overdue=message.number("overdue_items_count"),
            charged=message.number("charged_items_count"),
            fines=message.number("fine_items_count"),
            recalls=message.number("recall_items_count"),
            unavailable_holds=message.number("unavailable_holds_count"),
            hold_limit=_int(f.get("BZ")),
            overdue_limit=_int(f.get("CA")),
            charged_limit=_int(f.get("CB")),
            hold_items=f.all("AS"),
            overdue_items=f.all("AT"),
            charged_items=f.all("AU"),
            fine_items=f.all("AV"),
            recall_items=f.all("BU"),
            unavailable_items=f.all("CD"),
            expires=expires,
            email=f.get("BE"),
            phone=f.get("BF"),
        )
        return _build(cls, values)


@dataclass(frozen=True)
class CheckoutResult:
    """12 checkout response. `due` is None when AH is blank or unreadable; `due_text` keeps it raw."""

    ok: bool = False
    renewal_ok: bool = False  # the item was already on loan to this patron and has been renewed
    patron: str = ""
    item: str = ""
    title: str = ""
    due: dt.datetime | None = None
    due_text: str = ""
    fee_amount: float | None = None
    screen_messages: tuple[str, ...] = ()
    print_lines: tuple[str, ...] = ()

    @classmethod
    def from_message(cls, message: Message, tz: dt.tzinfo | None = None) -> CheckoutResult:
        """Read a 12 (or a 30); never raises."""
        f = _Fields(message)
        due_text = f.get("AH")
        return _build(cls, dict(
            ok=_fixed(message, "ok") == "1",
            renewal_ok=_yes(_fixed(message, "renewal_ok")),
            patron=f.get("AA"),
            item=f.get("AB"),
            title=f.get("AJ"),
            due=_date(due_text, tz),
            due_text=due_text,
            fee_amount=_amount(f.get("BV")),
            screen_messages=f.all("AF"),
            print_lines=f.all("AG"),
        ))


@dataclass(frozen=True)
class RenewResult(CheckoutResult):
    """30 renew response (the same layout as a checkout response)."""


@dataclass(frozen=True)
class CheckinResult:
    """10 checkin response. `alert` means: do not reshelve (a hold for someone else, a transit)."""

    ok: bool = False
    alert: bool = False
    alert_type: str = ""  # CV: 01 hold here, 02 hold elsewhere, 04 send to another branch...
    item: str = ""
    title: str = ""
    patron: str = ""  # AA: whose loan it was, when the server says
    permanent_location: str = ""
    sort_bin: str = ""
    destination: str = ""  # CT
    screen_messages: tuple[str, ...] = ()
    print_lines: tuple[str, ...] = ()

    @classmethod
    def from_message(cls, message: Message, tz: dt.tzinfo | None = None) -> CheckinResult:
        """Read a 10; never raises."""
        f = _Fields(message)
        return _build(cls, dict(
            ok=_fixed(message, "ok") == "1",
            alert=_yes(_fixed(message, "alert")),
            alert_type=f.get("CV"),
            item=f.get("AB"),
            title=f.get("AJ"),
            patron=f.get("AA"),
            permanent_location=f.get("AQ"),
            sort_bin=f.get("CL"),
            destination=f.get("CT"),
            screen_messages=f.all("AF"),
            print_lines=f.all("AG"),
        ))


@dataclass(frozen=True)
class ItemInfo:
    """18 item information: the tool for settling an unknown outcome (04 = on loan)."""

    item: str = ""
    title: str = ""
    circulation_status: str = ""  # the two-digit code ("03" available, "04" charged...)
    circulation_status_name: str = ""
    due: dt.datetime | None = None
    due_text: str = ""
    hold_queue_length: int | None = None
    hold_patron: str = ""  # CY: whom the first hold is for, when the server says
    owner: str = ""
    current_location: str = ""
    permanent_location: str = ""
    screen_messages: tuple[str, ...] = ()

    @classmethod
    def from_message(cls, message: Message, tz: dt.tzinfo | None = None) -> ItemInfo:
        """Read an 18; never raises."""
        first = dict(reversed(message.fields)).get  # reversed: the first of repeated ids wins
        code = _fixed(message, "circulation_status").strip()
        due_text = first("AH", "")
        return _build(cls, {
            "item": first("AB", ""),
            "title": first("AJ", ""),
            "circulation_status": code,
            "circulation_status_name": CIRCULATION_STATUS.get(code, "unknown" if code else ""),
            "due": _date(due_text, tz) if due_text else None,
            "due_text": due_text,
            "hold_queue_length": _int(first("CF", "")),
            "hold_patron": first("CY", ""),
            "owner": first("BG", ""),
            "current_location": first("AP", ""),
            "permanent_location": first("AQ", ""),
            "screen_messages": tuple([value for key, value in message.fields if key == "AF"])
            if first("AF", None) is not None else (),
        })
