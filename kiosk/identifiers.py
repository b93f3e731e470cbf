"""Identifiers: 책이음 member numbers, card UIDs, accession numbers (등록번호) and ISBNs.

Pure functions. What a scanned text *is* depends on patterns from the config, because every
library prints its own labels.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Kind(enum.Enum):
    MEMBER = "member"
    ITEM = "item"  # an accession number: one physical copy
    ISBN = "isbn"  # a title, not a copy: several copies may share it
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Scanned:
    kind: Kind
    text: str  # normalised: stripped, upper-cased where the pattern allows


@dataclass(frozen=True)
class IdentifierRules:
    """Patterns and card formatting, built from the [identifiers] section of the config."""

    member_patterns: tuple[str, ...] = (r"\d{14}",)
    item_patterns: tuple[str, ...] = (r"EM\d{10}",)
    accept_isbn: bool = True
    uid_format: str = "hex"  # "hex" or "decimal"
    uid_byte_order: str = "as-read"  # "as-read" or "reversed"
    uid_decimal_digits: int = 10  # zero padding of decimal UIDs (0: none)
    uid_check_byte: bool = False  # a 4-byte UID with its BCC appended, as mfrc522's read_id counts it


def _full(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


def chaekieum_library_code(member_number: str) -> str | None:
    """The issuing library's national code: the first 6 of a 14-digit 책이음 number."""
    if len(member_number) == 14 and member_number.isdigit():
        return member_number[:6]
    return None


def isbn13_valid(text: str) -> bool:
    """An ISBN-13 (EAN-13 with a 978/979 prefix) whose check digit is right."""
    if len(text) != 13 or not text.isdigit() or text[:3] not in ("978", "979"):
        return False
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(text[:12]))
    return (10 - total % 10) % 10 == int(text[12])


def classify(raw: str, rules: IdentifierRules) -> Scanned:
    """Say whether a scanned text is a member, a copy of a book, an ISBN or unknown."""
    text = "".join(ch for ch in raw.strip() if ch.isprintable())
    upper = text.upper()
    for pattern in rules.member_patterns:
        if _full(pattern, text):
            return Scanned(Kind.MEMBER, text)
    for pattern in rules.item_patterns:
        if _full(pattern, upper):
            return Scanned(Kind.ITEM, upper)
    if rules.accept_isbn and isbn13_valid(text):
        return Scanned(Kind.ISBN, text)
    return Scanned(Kind.UNKNOWN, text)


def format_uid(uid: bytes, rules: IdentifierRules) -> str:
    """Turn a card's UID bytes into the identifier the library registered for the card.

    Libraries differ: some print the bytes as hex in reading order, some the reversed bytes as a
    10-digit decimal number (the usual "card number" of 4-byte MIFARE cards).
    """
    if not uid:
        raise ValueError("empty card UID")
    if rules.uid_check_byte and len(uid) == 4:
        # Cards enrolled with the mfrc522 package's read_id(): its number includes the BCC.
        uid = uid + bytes([uid[0] ^ uid[1] ^ uid[2] ^ uid[3]])
    data = uid[::-1] if rules.uid_byte_order == "reversed" else uid
    if rules.uid_format == "decimal":
        number = str(int.from_bytes(data, "big"))
        return number.zfill(rules.uid_decimal_digits) if rules.uid_decimal_digits else number
    return data.hex().upper()


def parse_uid_hex(text: str) -> bytes:
    """Parse a UID written as hex ("04A1B2C3", "04:a1:b2:c3") into bytes."""
    cleaned = re.sub(r"[\s:\-]", "", text)
    if not cleaned or len(cleaned) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", cleaned):
        raise ValueError(f"not a card UID in hex: {text!r}")
    return bytes.fromhex(cleaned)


def parse_uid_text(text: str, *, fmt: str, byte_order: str) -> bytes:
    """The UID bytes behind a UID as a keyboard-wedge reader types it: hex or decimal, in reading
    order or reversed ("as-read" / "reversed"). A decimal number gives 4 bytes when it fits
    (the usual 10-digit card number), else 7, else 10. The inverse of `format_uid`."""
    cleaned = text.strip()
    if fmt == "hex":
        data = parse_uid_hex(cleaned)
    elif fmt == "decimal":
        if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > 25:
            raise ValueError(f"not a card UID in decimal: {text!r}")
        number = int(cleaned)
        size = next((n for n in (4, 7, 10) if number < 1 << (8 * n)), None)
        if size is None:
            raise ValueError(f"too large for a card UID: {text!r}")
        data = number.to_bytes(size, "big")
    else:
        raise ValueError(f"unknown UID format {fmt!r}")
    if len(data) not in (4, 7, 8, 10):
        raise ValueError(f"a card UID has 4, 7, 8 (FeliCa) or 10 bytes, not {len(data)}: {text!r}")
    return data[::-1] if byte_order == "reversed" else data


def mask(identifier: str) -> str:
    """A form safe for logs: the last 4 characters only."""
    return "…" + identifier[-4:] if len(identifier) > 4 else "…"
