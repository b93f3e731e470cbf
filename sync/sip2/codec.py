"""The SIP2 wire format, sans I/O: frames to messages and back, checksums, dates, a frame reader.

Encoding is strict (fixed fields must have their exact width, required fields must be there,
values are scrubbed of the delimiter and line ends); decoding is lenient (unknown and repeated
fields are kept, text is decoded with replacement and normalised to NFC) but a frame that is not
SIP2 at all, or is cut short, raises `DecodeError`. Nothing here raises anything but `Sip2Error`
on bad input.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sync.sip2.messages import BY_NAME, DATE_WIDTH, SPECS, Spec

CHECKSUM_MODES = ("bytes", "codepoints", "either")
ENCODINGS = ("utf-8", "cp949", "euc-kr", "cp850", "latin-1", "ascii")


class Sip2Error(Exception):
    """Anything wrong with a SIP2 frame or exchange (the root of this package's errors)."""


class EncodeError(Sip2Error, ValueError):
    """A message the kiosk was about to send is malformed (a bug, not a network problem)."""


class DecodeError(Sip2Error, ValueError):
    """Received bytes are not a SIP2 message, or are cut short."""


class FrameError(Sip2Error):
    """The byte stream broke the framing rules (e.g. no terminator within the size cap)."""


@dataclass(frozen=True)
class Dialect:
    """How one server speaks SIP2. The client and the demo ILS each hold one."""

    encoding: str = "utf-8"
    delimiter: str = "|"
    terminator: str = "\r"  # what we send; on receive CR ends a frame and a leading LF is dropped
    error_detection: bool = True  # send AY/AZ and verify AZ when it comes back
    checksum_mode: str = "bytes"  # accept received checksums summed over: bytes, codepoints, either
    send_checksum: str = "bytes"  # what our own AZ sums: "bytes" (the spec) or "codepoints" (some servers)
    normal_form: str = "NFC"  # the Unicode form of text we send (Evergreen sends NFD)
    max_frame: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.checksum_mode not in CHECKSUM_MODES:
            raise ValueError(f"checksum_mode must be one of {CHECKSUM_MODES}, not {self.checksum_mode!r}")
        if self.send_checksum not in ("bytes", "codepoints"):
            raise ValueError(f"send_checksum must be 'bytes' or 'codepoints', not {self.send_checksum!r}")
        if len(self.delimiter) != 1 or self.delimiter in "\r\n":
            raise ValueError(f"the field delimiter must be one character, not {self.delimiter!r}")
        if self.terminator not in ("\r", "\r\n"):
            raise ValueError(f"the terminator must be CR or CRLF, not {self.terminator!r}")
        "x".encode(self.encoding)  # LookupError for an unknown encoding, here rather than later
        unicodedata.normalize(self.normal_form, "")


DEFAULT = Dialect()


@dataclass(frozen=True)
class Message:
    """One SIP2 message: the command, its fixed fields by name, its variable fields in order."""

    command: str
    fixed: Mapping[str, str] = field(default_factory=dict)
    fields: tuple[tuple[str, str], ...] = ()  # (id, value), unknown and repeated ids kept
    sequence: int | None = None  # AY, when the frame had one
    checksum_ok: bool | None = None  # None when the frame had no AZ

    @property
    def name(self) -> str:
        spec = SPECS.get(self.command)
        return spec.name if spec else f"unknown_{self.command}"

    def get(self, code: str, default: str = "") -> str:
        """The first value of a variable field, or `default` when absent."""
        for key, value in self.fields:
            if key == code:
                return value
        return default

    def all(self, code: str) -> list[str]:
        """Every value of a repeatable field (AF screen messages, AU charged items...)."""
        return [value for key, value in self.fields if key == code]

    def has(self, code: str) -> bool:
        return any(key == code for key, _ in self.fields)

    def flag(self, name: str) -> bool:
        """A Y/N fixed field read as a boolean (`ok` is "1"/"0" in 94/12/10/30)."""
        return self.fixed.get(name, "") in ("Y", "1")

    def number(self, name: str) -> int:
        """A numeric fixed field (counts in 64); blanks or garbage read as 0."""
        text = self.fixed.get(name, "").strip()
        return int(text) if text.isdigit() else 0


def make(name: str, fields: Iterable[tuple[str, str | None]] | Mapping[str, str | None] = (),
         **fixed: str | dt.datetime | bool | int | None) -> Message:
    """Build a message by name (`"checkout"`) or command (`"11"`).

    Fixed fields are given by name; datetimes become 18-character SIP2 dates, None an 18-blank
    date, booleans Y/N, ints zero-padded to the width. Variable fields are (id, value) pairs in
    order; a value of None leaves the field out.
    """
    spec = BY_NAME.get(name) or SPECS.get(name)
    if spec is None:
        raise EncodeError(f"unknown SIP2 message {name!r}")
    values: dict[str, str] = {}
    widths = dict(spec.fixed)
    for key, value in fixed.items():
        if key not in widths:
            raise EncodeError(f"{spec.name} has no fixed field {key!r}")
        values[key] = _fixed_text(value, widths[key])
    pairs = fields.items() if isinstance(fields, Mapping) else fields
    return Message(spec.command, values, tuple((k, v) for k, v in pairs if v is not None))


def _fixed_text(value: str | dt.datetime | bool | int | None, width: int) -> str:
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, int):
        return f"{value:0{width}d}" if value >= 0 else "".rjust(width)
    if isinstance(value, dt.datetime):
        return format_date(value)
    if value is None:
        return " " * width
    return value


# -- checksums


def checksum(data: bytes) -> str:
    """The AZ value for `data` (the encoded bytes from the command through "AZ")."""
    return f"{-sum(data) & 0xFFFF:04X}"


def _codepoint_checksum(text: str) -> str:
    return f"{-sum(map(ord, text)) & 0xFFFF:04X}"


def next_sequence(sequence: int) -> int:
    return (sequence + 1) % 10


# -- encoding

_SCRUB = str.maketrans({"\r": " ", "\n": " ", "\x00": " "})


def _scrub(value: str, delimiter: str) -> str:
    return value.translate(_SCRUB).replace(delimiter, " ")


def encode(message: Message, dialect: Dialect = DEFAULT, *, sequence: int | None = None,
           error_detection: bool | None = None) -> bytes:
    """The frame for `message`, terminator included.

    With error detection (the dialect's, unless `error_detection` says otherwise) the frame ends
    with AY (when a sequence number is given) and AZ; 96 and 97 carry AZ alone.
    """
    spec = SPECS.get(message.command)
    if spec is None:
        raise EncodeError(f"unknown SIP2 command {message.command!r}")
    parts = [spec.command]
    for name, width in spec.fixed:
        value = message.fixed.get(name)
        if value is None:
            raise EncodeError(f"{spec.name}: fixed field {name!r} is missing")
        value = _scrub(value, "\x00")
        if len(value) != width:
            raise EncodeError(f"{spec.name}: fixed field {name!r} must be {width} characters, got {value!r}")
        parts.append(value)
    present = {code for code, _ in message.fields}
    missing = [code for code in spec.required if code not in present]
    if missing:
        raise EncodeError(f"{spec.name}: required field(s) {', '.join(missing)} missing")
    delimiter = dialect.delimiter
    for code, value in message.fields:
        if len(code) != 2 or code in ("AY", "AZ"):
            raise EncodeError(f"{spec.name}: bad field id {code!r}")
        parts.append(code)
        parts.append(_scrub(value, delimiter))
        parts.append(delimiter)
    text = unicodedata.normalize(dialect.normal_form, "".join(parts))
    detect = dialect.error_detection if error_detection is None else error_detection
    if detect:
        if sequence is not None:
            text += f"AY{sequence % 10}"
        text += "AZ"
    data = text.encode(dialect.encoding, errors="replace")
    if detect:
        if dialect.send_checksum == "codepoints":
            sent = data.decode(dialect.encoding, errors="replace")  # what the receiver will see
            data += _codepoint_checksum(sent).encode("ascii")
        else:
            data += checksum(data).encode("ascii")
    return data + dialect.terminator.encode("ascii")


# -- decoding

_TAIL = re.compile(rb"(?:AY(\d))?AZ([0-9A-Fa-f]{4})\s*$")
_SEQUENCE_ONLY = re.compile(rb"AY(\d)\s*$")


def decode(frame: bytes, dialect: Dialect = DEFAULT) -> Message:
    """Parse one frame (with or without its terminator). Raises DecodeError, nothing else."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise DecodeError(f"a frame is bytes, not {type(frame).__name__}")
    data = bytes(frame).strip(b"\r\n")
    sequence: int | None = None
    checksum_ok: bool | None = None
    tail = _TAIL.search(data)
    if tail is not None:
        body_end = tail.start()
        covered = data[: tail.start(2)]  # command through "AZ"
        received = tail.group(2).upper().decode("ascii")
        checksum_ok = _checksum_matches(covered, received, dialect)
        if tail.group(1) is not None:
            sequence = int(tail.group(1))
    else:
        only = _SEQUENCE_ONLY.search(data)
        body_end = only.start() if only else len(data)
        if only:
            sequence = int(only.group(1))
    body = data[:body_end]
    try:
        text = body.decode(dialect.encoding, errors="replace")
    except LookupError as exc:  # pragma: no cover - Dialect checks the encoding
        raise DecodeError(str(exc)) from None
    text = unicodedata.normalize("NFC", text)
    if len(text) < 2 or not text[:2].isdigit() or not text[:2].isascii():
        raise DecodeError(f"not a SIP2 message (starts with {text[:8]!r})")
    command = text[:2]
    spec = SPECS.get(command)
    if spec is None:
        return Message(command, {"raw": text[2:]}, (), sequence, checksum_ok)
    fixed, rest = _split_fixed(spec, text)
    return Message(command, fixed, _split_fields(rest, dialect.delimiter), sequence, checksum_ok)


def _checksum_matches(covered: bytes, received: str, dialect: Dialect) -> bool:
    mode = dialect.checksum_mode
    if mode in ("bytes", "either") and checksum(covered) == received:
        return True
    if mode in ("codepoints", "either"):
        text = covered.decode(dialect.encoding, errors="replace")
        return _codepoint_checksum(text) == received
    return False


def _split_fixed(spec: Spec, text: str) -> tuple[dict[str, str], str]:
    end = 2 + spec.fixed_width
    if len(text) < end:
        raise DecodeError(f"{spec.name} cut short: {len(text) - 2} of {spec.fixed_width} fixed characters")
    fixed = {}
    at = 2
    for name, width in spec.fixed:
        fixed[name] = text[at: at + width]
        at += width
    return fixed, text[end:]


def _split_fields(rest: str, delimiter: str) -> tuple[tuple[str, str], ...]:
    return tuple((piece[:2], piece[2:]) for piece in rest.split(delimiter) if piece)


# -- streaming


class FrameReader:
    """Cuts a TCP byte stream into frames: survives split and merged reads, caps the frame size.

    A frame longer than `max_frame` without a terminator raises FrameError once; the reader
    then skips to the next CR so the stream can recover.
    """

    def __init__(self, max_frame: int = DEFAULT.max_frame) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._skipping = False

    def __repr__(self) -> str:
        return f"<FrameReader buffered={len(self._buffer)} skipping={self._skipping}>"

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def clear(self) -> None:
        self._buffer.clear()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame they complete (without CR, leading LF dropped)."""
        frames: list[bytes] = []
        buffer = self._buffer
        buffer += data
        while True:
            end = buffer.find(b"\r")
            if end < 0:
                break
            frame = bytes(buffer[:end]).lstrip(b"\n")
            del buffer[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if len(frame) > self.max_frame:
                raise FrameError(f"a frame of {len(frame)} bytes exceeds the cap of {self.max_frame}")
            if frame:
                frames.append(frame)
        if len(buffer) > self.max_frame:
            buffer.clear()
            self._skipping = True
            raise FrameError(f"no frame terminator within {self.max_frame} bytes")
        return frames


# -- dates

_BLANK_DATE = " " * DATE_WIDTH


def format_date(when: dt.datetime | None) -> str:
    """`YYYYMMDD    HHMMSS` (local time, four blanks), or `...   ZHHMMSS` for a UTC datetime."""
    if when is None:
        return _BLANK_DATE
    zone = "   Z" if when.tzinfo is not None and when.utcoffset() == dt.timedelta(0) else "    "
    return f"{when:%Y%m%d}{zone}{when:%H%M%S}"


_SIP_DATE = re.compile(r"(\d{8})(....)(\d{6})")
_FREE_DATES = (
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?"), True),
    (re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"), False),
    (re.compile(r"(\d{4})(\d{2})(\d{2})"), False),
)


def parse_date(text: str, tz: dt.tzinfo | None = None) -> dt.datetime | None:
    """A SIP2 date, or one of the free-text forms servers put in AH; None when unreadable.

    Local dates come back naive (or in `tz` when given); `   Z` dates come back in UTC.
    """
    text = (text or "").strip()
    if not text:
        return None
    found = _SIP_DATE.fullmatch(text) if len(text) == DATE_WIDTH else None
    if found:
        try:
            when = dt.datetime.strptime(found.group(1) + found.group(3), "%Y%m%d%H%M%S")
        except ValueError:
            return None
        if found.group(2).strip() == "Z":
            return when.replace(tzinfo=dt.timezone.utc)
        return when.replace(tzinfo=tz) if tz else when
    for pattern, has_time in _FREE_DATES:
        match = pattern.match(text)
        if not match:
            continue
        numbers = [int(g) if g else 0 for g in match.groups()]
        try:
            when = dt.datetime(*numbers) if has_time else dt.datetime(*numbers[:3], 23, 59, 59)
        except ValueError:
            return None
        return when.replace(tzinfo=tz) if tz else when
    return None
