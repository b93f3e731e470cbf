"""Technician tools for SIP2 traffic: decoded frames as JSON-ready objects (`kiosk sip2 decode`).

Pure functions over bytes and messages; the command line reads the file and prints. Passwords
(login CO, patron AD, terminal AC) are shown as "***" unless the technician asks to reveal them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from sync.sip2.codec import DEFAULT, Dialect, Message, Sip2Error, checksum, decode
from sync.sip2.messages import CIRCULATION_STATUS, FIELD_NAMES, PATRON_STATUS_FLAGS

SECRET_FIELDS = frozenset({"CO", "AD", "AC"})  # login password, patron password, terminal password
REDACTED = "***"

_TAIL = re.compile(rb"(?:AY\d)?AZ([0-9A-Fa-f]{4})\s*$")


def describe(message: Message, raw: bytes | None = None, *, dialect: Dialect = DEFAULT,
             reveal_secrets: bool = False) -> dict[str, Any]:
    """A JSON-ready picture of one message: command, name, fixed fields by name, variable fields.

    Variable fields come as a list of {id, name, value} in frame order (name is None for ids the
    kiosk does not know). Non-empty passwords are "***" unless `reveal_secrets`. Given the `raw`
    frame, the size is added and, when its checksum failed, the checksums a byte-summing and a
    code-point-summing server would have sent, which tells a technician which mode a server uses.
    """
    fields = [
        {"id": code, "name": FIELD_NAMES.get(code), "value": _shown(code, value, reveal_secrets)}
        for code, value in message.fields
    ]
    fixed = dict(message.fixed)
    if "raw" in fixed and not reveal_secrets:  # an unknown command: hide what looks like a password
        fixed["raw"] = _redact_text(fixed["raw"], dialect.delimiter)
    described: dict[str, Any] = {
        "command": message.command,
        "name": message.name,
        "fixed": fixed,
        "fields": fields,
        "sequence": message.sequence,
        "checksum_ok": message.checksum_ok,
    }
    details = _details(message)
    if details:
        described["details"] = details
    if raw is not None:
        frame = bytes(raw).strip(b"\r\n")
        described["size"] = len(frame)
        if message.checksum_ok is False:
            described["checksum"] = _checksums(frame, dialect)
    return described


def decode_lines(lines: Iterable[bytes | str], dialect: Dialect = DEFAULT, *,
                 reveal_secrets: bool = False) -> Iterator[dict[str, Any]]:
    """Decode a capture, one frame a line (CR optional, CRLF fine, blank lines skipped).

    Each frame yields `describe(...)` plus its 1-based "line"; a frame that does not decode yields
    {"line": n, "error": "..."} and the next line is read. A line holding several CR-terminated
    frames (a capture without line feeds) yields one object per frame, all with that line number.
    """
    for number, line in enumerate(lines, start=1):
        if isinstance(line, str):
            line = line.encode(dialect.encoding, errors="replace")
        for frame in bytes(line).split(b"\r"):
            frame = frame.strip(b"\n")
            if not frame.strip():
                continue
            try:
                message = decode(frame, dialect)
            except Sip2Error as exc:
                yield {"line": number, "error": str(exc)}
                continue
            yield {"line": number, **describe(message, frame, dialect=dialect, reveal_secrets=reveal_secrets)}


def _shown(code: str, value: str, reveal: bool) -> str:
    # An empty password stays visible as "": it leaks nothing and "none was sent" is worth seeing.
    if reveal:
        return value
    return REDACTED if code in SECRET_FIELDS and value else _masked_within(value)


# A secret field inside a value: a capture split on the wrong delimiter ("kiosk^COsecret^CP...").
_EMBEDDED_SECRET = re.compile(r"([|^~\t])(" + "|".join(sorted(SECRET_FIELDS)) + ")")  # delimiters in use


def _masked_within(value: str) -> str:
    """`value` with whatever follows an embedded CO/AD/AC, up to the next of the separator
    before it, masked: a wrong delimiter setting must not print a password."""
    out, at = [], 0
    for found in _EMBEDDED_SECRET.finditer(value):
        if found.start() < at:
            continue
        start = found.end()
        end = value.find(found.group(1), start)
        end = len(value) if end < 0 else end
        if end > start:
            out += [value[at:start], REDACTED]
            at = end
    return "".join(out) + value[at:]


def _redact_text(text: str, delimiter: str) -> str:
    pieces = text.split(delimiter)
    return delimiter.join(
        piece[:2] + REDACTED if piece[:2] in SECRET_FIELDS and len(piece) > 2 else piece for piece in pieces
    )


def _details(message: Message) -> dict[str, Any]:
    """Readable meanings of coded fixed fields (patron status flags, circulation status)."""
    details: dict[str, Any] = {}
    status = message.fixed.get("patron_status")
    if status is not None and message.command in ("24", "64"):
        details["patron_status_flags"] = [
            name for name, flag in zip(PATRON_STATUS_FLAGS, status) if flag == "Y"
        ]
    circulation = message.fixed.get("circulation_status")
    if circulation is not None and message.command == "18":
        details["circulation_status"] = CIRCULATION_STATUS.get(circulation)
    return details


def _checksums(frame: bytes, dialect: Dialect) -> dict[str, str]:
    tail = _TAIL.search(frame)
    if tail is None:  # pragma: no cover - checksum_ok False implies an AZ tail
        return {}
    covered = frame[: tail.start(1)]
    text = covered.decode(dialect.encoding, errors="replace")
    return {
        "received": tail.group(1).decode("ascii").upper(),
        "bytes": checksum(covered),
        "codepoints": f"{-sum(map(ord, text)) & 0xFFFF:04X}",
    }
