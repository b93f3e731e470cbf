"""The SIP2 wire format, sans I/O: frames to messages and back, checksums, dates, a frame reader.

Encoding is strict (fixed fields must have their exact width, required fields must be there,
values are scrubbed of the delimiter and line ends); decoding is lenient (unknown and repeated
fields are kept, text is decoded with replacement and normalised to NFC) but a frame that is not
SIP2 at all, or is cut short, raises `DecodeError`. Nothing here raises anything but `Sip2Error`
on bad input.
"""

from __future__ import annotations

import codecs
import datetime as dt
import functools
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Mapping
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
    """The byte stream broke the framing rules (e.g. no terminator within the size cap).

    `frames` holds the complete frames found in the same data, so that none is lost.
    """

    def __init__(self, message: str, frames: Iterable[bytes] = ()) -> None:
        super().__init__(message)
        self.frames: list[bytes] = list(frames)


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
        if self.delimiter.isalnum():
            raise ValueError(f"the field delimiter cannot be a letter or digit, not {self.delimiter!r}")
        codecs.lookup(self.encoding)  # LookupError for an unknown encoding, here rather than later
        if not _ascii_compatible(self.encoding):
            raise ValueError(f"encoding {self.encoding!r} is not ASCII-compatible; SIP2 needs one of {ENCODINGS}")
        try:
            delimiter_ok = self.delimiter.encode(self.encoding).decode(self.encoding) == self.delimiter
        except UnicodeError:
            delimiter_ok = False
        if not delimiter_ok:
            raise ValueError(f"the field delimiter {self.delimiter!r} cannot be written in {self.encoding}")
        if self.normal_form not in ("NFC", "NFD", "NFKC", "NFKD"):
            raise ValueError(f"normal_form must be NFC or NFD (or NFKC, NFKD), not {self.normal_form!r}")
        if self.max_frame < 1:
            raise ValueError(f"max_frame must be positive, not {self.max_frame!r}")
        # Worked out once per dialect rather than once per frame (private attributes, not fields:
        # they take no part in equality, hashing or the repr).
        object.__setattr__(self, "_trailing", _trailing(self.delimiter, self.encoding))
        object.__setattr__(self, "_sums_bytes", self.checksum_mode == "bytes")
        object.__setattr__(self, "_end", b"\r" if self.terminator == "\r" else b"\r\n")
        object.__setattr__(self, "_split_fields", _field_splitter(self.delimiter))


_TRAILING = b" \t\n\r\f\v\x00"


@functools.lru_cache(maxsize=32)
def _field_splitter(delimiter: str) -> Callable[[str], list[tuple[str, str]]]:
    """`[(piece[:2], piece[2:]) for piece in text.split(delimiter) if piece]`, done by the regex
    engine in one call: each run of non-delimiter characters, cut after its first two."""
    other = f"[^{re.escape(delimiter)}]"
    return re.compile(f"({other}{{1,2}})({other}*)", re.DOTALL).findall


@functools.lru_cache(maxsize=32)
def _trailing(delimiter: str, encoding: str) -> bytes:
    """Whitespace that may follow AZ/AY on receive; never the delimiter itself (a tab-delimited
    frame ends with a tab, and that tab belongs to the last field)."""
    delimiter_bytes = delimiter.encode(encoding)
    return bytes(b for b in _TRAILING if bytes((b,)) != delimiter_bytes)


_PRINTABLE_ASCII = "".join(map(chr, range(32, 127)))


def _ascii_compatible(encoding: str) -> bool:
    """Command, field ids, digits and CR must be plain ASCII bytes, and decoding must not raise."""
    try:
        if (_PRINTABLE_ASCII + "\r").encode(encoding) != (_PRINTABLE_ASCII + "\r").encode("ascii"):
            return False
        bytes(range(256)).decode(encoding, errors="replace")
    except (UnicodeError, LookupError, TypeError):
        return False
    return True


DEFAULT = Dialect()


@dataclass(frozen=True, slots=True)
class Message:
    """One SIP2 message: the command, its fixed fields by name, its variable fields in order.

    A decoded message with a command the kiosk does not know keeps its text after the command
    under `fixed["raw"]`.
    """

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
        return int(text) if text.isascii() and text.isdigit() else 0  # "²".isdigit() is True


_new = object.__new__
# Each slot's own setter: what object.__setattr__ ends up calling, without looking the name up.
_SET_COMMAND, _SET_FIXED, _SET_FIELDS, _SET_SEQUENCE, _SET_CHECKSUM_OK = (
    Message.__dict__[name].__set__ for name in ("command", "fixed", "fields", "sequence", "checksum_ok"))


def _message(command: str, fixed: Mapping[str, str], fields: tuple[tuple[str, str], ...],
             sequence: int | None = None, checksum_ok: bool | None = None) -> Message:
    """Message(...) without the generated __init__'s keyword handling (decode builds one per frame)."""
    message = _new(Message)
    _SET_COMMAND(message, command)
    _SET_FIXED(message, fixed)
    _SET_FIELDS(message, fields)
    _SET_SEQUENCE(message, sequence)
    _SET_CHECKSUM_OK(message, checksum_ok)
    return message


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
    widths = _WIDTHS[spec.command]
    values: dict[str, str] = {}
    for key, value in fixed.items():
        width = widths.get(key)
        if width is None:
            raise EncodeError(f"{spec.name} has no fixed field {key!r}")
        # Text, the common case, goes as it is (encode checks its width); the rest is converted.
        if value.__class__ is str:
            values[key] = value
        elif value.__class__ is dt.datetime:
            values[key] = format_date(value)
        else:
            values[key] = _fixed_text(value, width)
    # A list or a tuple, the common case, without the (slow) abstract Mapping check.
    pairs = fields if fields.__class__ is list or fields.__class__ is tuple or not isinstance(fields, Mapping) \
        else fields.items()
    try:
        variable = tuple([(k, v) for k, v in pairs if v is not None])
    except (TypeError, ValueError):
        raise EncodeError(f"{spec.name}: variable fields are (id, value) pairs") from None
    return _message(spec.command, values, variable)


# Each message's fixed field widths by name, so that make() need not build the dict per call.
_WIDTHS: dict[str, dict[str, int]] = {command: dict(spec.fixed) for command, spec in SPECS.items()}


def _fixed_text(value: str | dt.datetime | bool | int | None, width: int) -> str:
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, int):
        return f"{value:0{width}d}" if value >= 0 else "".rjust(width)
    if isinstance(value, dt.datetime):
        return format_date(value)
    if value is None:
        return " " * width
    if not isinstance(value, str):
        raise EncodeError(f"a fixed field takes text, a datetime, a bool, an int or None, not {type(value).__name__}")
    return value


# -- checksums


def checksum(data: bytes) -> str:
    """The AZ value for `data` (the encoded bytes from the command through "AZ")."""
    return f"{-_byte_sum(data) & 0xFFFF:04X}"


def _byte_sum(data: bytes) -> int:
    # sum(data) walks the bytes one Python int at a time. Adler-32's low half is 1 + the byte sum
    # modulo 65521, computed in C; 256 bytes sum to at most 65280, so per 256-byte block the
    # modulo never bites and the block's exact sum is that half minus one.
    if len(data) <= 256:  # most frames: one block, no slicing
        return (zlib.adler32(data) & 0xFFFF) - 1
    total = 0
    for at in range(0, len(data), 256):
        total += (zlib.adler32(data[at:at + 256]) & 0xFFFF) - 1
    return total


def _codepoint_checksum(text: str) -> str:
    return f"{-sum(map(ord, text)) & 0xFFFF:04X}"


def next_sequence(sequence: int) -> int:
    return (sequence + 1) % 10


# -- encoding

_SCRUB = str.maketrans({"\r": " ", "\n": " ", "\x00": " "})
_NO_SEQUENCE = ("96", "97")  # resend requests carry AZ alone


def _scrub(value: str, delimiter: str) -> str:
    return value.translate(_SCRUB).replace(delimiter, " ")


def encode(message: Message, dialect: Dialect = DEFAULT, *, sequence: int | None = None,
           error_detection: bool | None = None) -> bytes:
    """The frame for `message`, terminator included.

    With error detection (the dialect's, unless `error_detection` says otherwise) the frame ends
    with AY (when a sequence number is given) and AZ; 96 and 97 carry AZ alone. Fixed fields must
    be printable ASCII of their exact width; variable values are normalised to the dialect's form
    and scrubbed of the delimiter, CR, LF and NUL (each becomes a space). Raises EncodeError.
    """
    spec = SPECS.get(message.command)
    if spec is None:
        raise EncodeError(f"unknown SIP2 command {message.command!r}")
    parts = [spec.command]
    append = parts.append
    fixed = message.fixed
    for name, width in spec.fixed:
        value = fixed.get(name)
        # Fixed fields are positional: a multi-byte or control character would shift every field after it.
        if value.__class__ is not str or len(value) != width or not (value.isascii() and value.isprintable()):
            value = _checked_fixed(spec, name, value, width)  # raises, or passes a str subclass
        append(value)
    delimiter = dialect.delimiter
    codes = []
    values = []
    for pair in message.fields:
        try:
            code, value = pair
        except (TypeError, ValueError):
            raise EncodeError(f"{spec.name}: a variable field is an (id, value) pair, not {pair!r}") from None
        if code.__class__ is not str or code not in _FIELD_IDS:
            if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalnum()) \
                    or code in ("AY", "AZ"):
                raise EncodeError(f"{spec.name}: bad field id {code!r} (two letters or digits; AY/AZ are added "
                                  f"by encode)")
            if len(_FIELD_IDS) < _FIELD_IDS_CAP:
                _FIELD_IDS.add(code)
        if value.__class__ is not str:
            if not isinstance(value, str):
                raise EncodeError(f"{spec.name}: field {code} must be text, not {type(value).__name__}")
            value = str(value)
        codes.append(code)
        values.append(value)
    if not _REQUIRED[spec.command].issubset(codes):
        missing = [code for code in spec.required if code not in codes]
        raise EncodeError(f"{spec.name}: required field(s) {', '.join(missing)} missing")
    text = "".join(values)
    if not text.isascii() and not unicodedata.is_normalized(dialect.normal_form, text):
        # Normalise each value on its own, before scrubbing: normalising the joined frame could
        # merge a leading combining mark into the field id ("AE" + U+0301 -> "AÉ"). (When the
        # joined values are in that form already, so is each of them: normalising a piece of
        # normalised text alone never changes it.)
        form = dialect.normal_form
        values = [value if value.isascii() else unicodedata.normalize(form, value) for value in values]
        text = "".join(values)
    if "\r" in text or "\n" in text or "\x00" in text or delimiter in text:  # rare: scrub value by value
        values = [_scrub(value, delimiter) for value in values]
    for code, value in zip(codes, values):
        append(code)
        append(value)
        append(delimiter)
    detect = dialect.error_detection if error_detection is None else error_detection
    if detect:
        if sequence is not None and spec.command not in _NO_SEQUENCE:
            if not isinstance(sequence, int) or isinstance(sequence, bool):
                raise EncodeError(f"the sequence number is an int, not {type(sequence).__name__}")
            append(_SEQUENCE_TEXT[sequence % 10])
        else:
            append("AZ")
    data = "".join(parts).encode(dialect.encoding, errors="replace")
    if detect:
        if dialect.send_checksum == "codepoints":
            sent = data.decode(dialect.encoding, errors="replace")  # what the receiver will see
            data += _codepoint_checksum(sent).encode("ascii")
        else:
            data += checksum(data).encode("ascii")
    return data + (b"\r" if dialect.terminator == "\r" else b"\r\n")


_SEQUENCE_TEXT = tuple(f"AY{n}AZ" for n in range(10))


def _request_writer(spec: Spec, codes: tuple[str, ...], delimiter: str) -> Callable[..., tuple[str, str, str] | None]:
    """For RequestEncoder: a function of (fixed, values) that returns the fixed text, the values
    joined and the variable part of the frame, or None unless every fixed value is text of its
    width, every value is text or None, and every required field is there. Generated once per
    request shape: straight-line code, no loop, is what makes the compiled path cheap.
    """
    fixed = [f"f{at}" for at in range(len(spec.fixed))]
    values = [f"v{at}" for at in range(len(codes))]
    lines = ["def write(fixed, values):",
             f"    {''.join(name + ', ' for name in fixed)}= fixed" if fixed else "    if fixed: return None",
             f"    {''.join(name + ', ' for name in values)}= values" if values else "    if values: return None"]
    lines += [f"    if {name}.__class__ is not str or len({name}) != {width}: return None"
              for name, (_, width) in zip(fixed, spec.fixed)]
    lines += [f"    if {name} is not None and {name}.__class__ is not str: return None" for name in values]
    for code in spec.required:
        if code not in codes:
            lines.append("    return None")  # encode() names the missing field
            break
        lines.append(f"    if {values[codes.index(code)]} is None: return None")
    head = " + ".join(fixed) or "''"
    text = " + ".join(f"({name} or '')" for name in values) or "''"
    body = " + ".join(f"({code!r} + {name} + {delimiter!r} if {name} is not None else '')"
                      for code, name in zip(codes, values)) or "''"
    lines.append(f"    return {head}, {text}, {body}")
    namespace: dict[str, object] = {}
    exec("\n".join(lines), namespace)  # noqa: S102 - ids checked, widths from SPECS, the delimiter via repr
    return namespace["write"]  # type: ignore[return-value]


class RequestEncoder:
    """`encode(make(name, zip(codes, values), **fixed), dialect, sequence=n)`, compiled for one
    request shape: the message, its variable field ids in order, the dialect.

    A client sends the same few requests over and over with different values; this skips the
    Message, the field-by-field checks and the normalisation when the values are plain ASCII text
    (the usual case: ids, dates, flags), and hands anything else to encode() itself, so the bytes
    and the errors are always the same as encode's. `fixed` holds the fixed fields' values in the
    message's order (the same text make() takes); a value of None leaves its field out.
    """

    __slots__ = ("name", "command", "codes", "dialect", "_names", "_write", "_detect", "_no_sequence",
                 "_delimiter", "_end")

    def __init__(self, name: str, codes: Iterable[str], dialect: Dialect = DEFAULT) -> None:
        spec = BY_NAME.get(name) or SPECS.get(name)
        if spec is None:
            raise EncodeError(f"unknown SIP2 message {name!r}")
        self.name = spec.name
        self.command = spec.command
        self.codes = tuple(codes)
        for code in self.codes:
            if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalnum()) \
                    or code in ("AY", "AZ"):
                raise EncodeError(f"{spec.name}: bad field id {code!r}")
        self.dialect = dialect
        self._names = tuple(name for name, _ in spec.fixed)
        self._write = _request_writer(spec, self.codes, dialect.delimiter)
        self._detect = dialect.error_detection
        self._no_sequence = spec.command in _NO_SEQUENCE
        self._delimiter = dialect.delimiter
        self._end = b"\r" if dialect.terminator == "\r" else b"\r\n"

    def __repr__(self) -> str:
        return f"<RequestEncoder {self.name} {' '.join(self.codes)}>"

    def encode(self, fixed: tuple[str, ...], values: tuple[str | None, ...], sequence: int | None = None) -> bytes:
        """The frame, terminator included. Raises EncodeError as encode() does."""
        try:
            written = self._write(fixed, values)
        except (TypeError, ValueError):  # not tuples of the right length
            written = None
        if written is None or (sequence is not None and sequence.__class__ is not int):
            return self._slow(fixed, values, sequence)
        head, text, body = written
        delimiter = self._delimiter
        if not (head.isprintable() and head.isascii() and body.isascii()) \
                or "\r" in text or "\n" in text or "\x00" in text or delimiter in text:
            return self._slow(fixed, values, sequence)  # refused, or normalised and scrubbed, by encode()
        if not self._detect:
            return (self.command + head + body).encode("ascii") + self._end
        if sequence is not None and not self._no_sequence:
            data = (self.command + head + body + _SEQUENCE_TEXT[sequence % 10]).encode("ascii")
        else:
            data = (self.command + head + body + "AZ").encode("ascii")
        # ASCII text: the same bytes in every ASCII-compatible encoding, and its code point sum
        # is its byte sum, so both checksum modes agree.
        return data + checksum(data).encode("ascii") + self._end

    def _slow(self, fixed: tuple[str, ...], values: tuple[str | None, ...], sequence: int | None) -> bytes:
        try:
            named = dict(zip(self._names, fixed, strict=True))
            pairs = list(zip(self.codes, values, strict=True))
        except (TypeError, ValueError):
            raise EncodeError(f"{self.name}: {len(self._names)} fixed field(s) and {len(self.codes)} "
                              f"value(s) expected") from None
        return encode(make(self.command, pairs, **named), self.dialect, sequence=sequence)
# Field ids already found well formed (two ASCII letters or digits, not AY/AZ): the check is done
# once per id, not once per field. Capped, although there are only 36 * 36 such ids anyway.
_FIELD_IDS: set[str] = set()
_FIELD_IDS_CAP = 36 * 36


_REQUIRED: dict[str, frozenset[str]] = {command: frozenset(spec.required) for command, spec in SPECS.items()}


def _checked_fixed(spec: Spec, name: str, value: object, width: int) -> str:
    """The slow path of encode's fixed-field check: the reason a value is wrong, or a str subclass."""
    if value is None:
        raise EncodeError(f"{spec.name}: fixed field {name!r} is missing")
    if not isinstance(value, str):
        raise EncodeError(f"{spec.name}: fixed field {name!r} must be text, not {type(value).__name__}")
    if len(value) != width:
        raise EncodeError(f"{spec.name}: fixed field {name!r} must be {width} characters, got {len(value)}")
    if not (value.isascii() and value.isprintable()):
        raise EncodeError(f"{spec.name}: fixed field {name!r} must be printable ASCII")
    return str(value)


# -- decoding

_HEX_DIGITS = b"0123456789ABCDEFabcdef"
# Where each known message's fixed part ends, and each fixed field's slice of the text.
_LAYOUTS: dict[str, tuple[int, tuple[tuple[str, int, int], ...]]] = {}
for _spec in SPECS.values():
    _at, _slices = 2, []
    for _name, _width in _spec.fixed:
        _slices.append((_name, _at, _at + _width))
        _at += _width
    _LAYOUTS[_spec.command] = (_at, tuple(_slices))
del _spec, _at, _slices, _name, _width


def _fixed_reader(slices: tuple[tuple[str, int, int], ...]) -> Callable[[str], dict[str, str]]:
    """A function that cuts one message's fixed fields out of its text: a dict display with
    constant slices, compiled once per message (a loop over the layout costs twice as much)."""
    body = ", ".join(f"{name!r}: text[{start}:{stop}]" for name, start, stop in slices)
    return eval(f"lambda text: {{{body}}}")  # noqa: S307 - names and numbers from SPECS only


# Per command (as bytes): where the fixed part ends, and its reader.
_READERS: dict[bytes, tuple[int, Callable[[str], dict[str, str]], str]] = {
    command.encode("ascii"): (fixed_end, _fixed_reader(slices), command)
    for command, (fixed_end, slices) in _LAYOUTS.items()
}


def decode(frame: bytes, dialect: Dialect = DEFAULT) -> Message:
    """Parse one frame (with or without its terminator). Raises DecodeError, nothing else.

    Unknown and repeated field ids are kept in order; bytes the encoding cannot read become
    U+FFFD; variable values are normalised to NFC. A known message whose fixed part is cut short
    raises DecodeError; an unknown command decodes to a Message with its text under `fixed["raw"]`.
    """
    if frame.__class__ is not bytes:
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise DecodeError(f"a frame is bytes, not {type(frame).__name__}")
        frame = bytes(frame)
    data = frame.strip(b"\r\n")
    if not data:
        raise DecodeError("empty frame")
    reader = _READERS.get(data[:2])
    # AY/AZ are searched for only after the fixed part, so fixed text that happens to end in
    # "AZ" + 4 hex digits is never taken for a checksum.
    limit = reader[0] if reader is not None else 2
    sequence: int | None = None
    checksum_ok: bool | None = None
    try:
        trailing, sums_bytes = dialect._trailing, dialect._sums_bytes  # type: ignore[attr-defined]
        split_fields = dialect._split_fields  # type: ignore[attr-defined]
    except AttributeError:
        trailing, sums_bytes = _trailing(dialect.delimiter, dialect.encoding), False
        split_fields = _field_splitter(dialect.delimiter)
    end = len(data.rstrip(trailing))
    body_end = len(data)
    at = end - 6  # where "AZ" would start
    if at >= limit and data.startswith(b"AZ", at) and not data[at + 2:end].strip(_HEX_DIGITS):
        if sums_bytes:
            covered = data[:at + 2]
            total = (zlib.adler32(covered) & 0xFFFF) - 1 if at < 255 else _byte_sum(covered)  # as in checksum()
            checksum_ok = -total & 0xFFFF == int(data[at + 2:end], 16)
        else:
            checksum_ok = _checksum_matches(data[:at + 2], data[at + 2:end].upper().decode("ascii"), dialect)
        body_end = at
        if at - 3 >= limit and data.startswith(b"AY", at - 3) and 48 <= data[at - 1] <= 57:
            sequence = data[at - 1] - 48
            body_end = at - 3
    elif end - 3 >= limit and data.startswith(b"AY", end - 3) and 48 <= data[end - 1] <= 57:
        sequence = data[end - 1] - 48
        body_end = end - 3
    try:
        text = (data[:body_end] if body_end < len(data) else data).decode(dialect.encoding, errors="replace")
    except (LookupError, UnicodeError) as exc:  # pragma: no cover - Dialect checks the encoding
        raise DecodeError(f"cannot decode with {dialect.encoding}: {exc}") from None
    if reader is None:
        command = text[:2]
        if len(command) < 2 or not (command.isascii() and command.isdigit()):
            # Name only the first two characters: frames carry card numbers and passwords.
            raise DecodeError(f"not a SIP2 message: it must start with a two-digit command, not {command!r}")
        return _message(command, {"raw": unicodedata.normalize("NFC", text[2:])}, (), sequence, checksum_ok)
    fixed_end, read_fixed, command = reader  # a known command: its two ASCII digits decode as themselves
    if len(text) < fixed_end:
        spec = SPECS[command]
        raise DecodeError(f"{spec.name} ({command}) cut short: {len(text) - 2} of {fixed_end - 2} "
                          f"fixed-field characters")
    fixed = read_fixed(text)
    rest = text[fixed_end:]
    if not rest:
        fields: tuple[tuple[str, str], ...] = ()
    elif rest.isascii() or unicodedata.is_normalized("NFC", rest):
        # Any piece of NFC text is NFC too: taking away context cannot enable a composition.
        fields = tuple(split_fields(rest))
    else:
        # Per value, not per frame, so that a leading combining mark never merges into the id.
        normalize = unicodedata.normalize
        fields = tuple([(piece[:2], normalize("NFC", piece[2:]))
                        for piece in rest.split(dialect.delimiter) if piece])
    return _message(command, fixed, fields, sequence, checksum_ok)


def _checksum_matches(covered: bytes, received: str, dialect: Dialect) -> bool:
    mode = dialect.checksum_mode
    if mode in ("bytes", "either") and checksum(covered) == received:
        return True
    if mode in ("codepoints", "either"):
        text = covered.decode(dialect.encoding, errors="replace")
        return _codepoint_checksum(text) == received
    return False


# -- streaming


_PADDING = b"\n\x00"  # what may come between frames


class FrameReader:
    """Cuts a TCP byte stream into frames: survives split and merged reads, caps the frame size.

    A frame longer than `max_frame` raises FrameError once (its `frames` attribute holds any
    complete frames found in the same data); the reader drops the oversized frame up to its CR,
    so the stream recovers at the next frame. Work is linear in the bytes fed, however they are
    split.
    """

    def __init__(self, max_frame: int = DEFAULT.max_frame) -> None:
        if max_frame < 1:
            raise ValueError(f"max_frame must be positive, not {max_frame!r}")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._scanned = 0  # the buffer's first bytes already known to hold no CR
        self._skipping = False

    def __repr__(self) -> str:
        return f"<FrameReader buffered={len(self._buffer)} skipping={self._skipping}>"

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def clear(self) -> None:
        self._buffer.clear()
        self._scanned = 0
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame they complete (without CR). LF and NUL between
        frames are padding (a CRLF server's LF; a telnet-style server's CR NUL) and dropped."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise FrameError(f"the stream carries bytes, not {type(data).__name__}")
        if data.__class__ is bytes and not self._buffer and not self._skipping \
                and data.find(b"\r") == len(data) - 1 and data[:1] not in _PADDING and len(data) <= self.max_frame + 1:
            # The usual read: exactly one whole frame, nothing buffered (the same result as below).
            return [data[:-1]] if len(data) > 1 else []
        frames: list[bytes] = []
        error: FrameError | None = None
        if self._skipping:
            cut = bytes(data).find(b"\r") if isinstance(data, memoryview) else data.find(b"\r")
            if cut < 0:
                return frames  # still inside the oversized frame
            self._skipping = False
            data = data[cut + 1:]
        buffer = self._buffer
        buffer += data
        start = 0
        scan = self._scanned
        while True:
            end = buffer.find(b"\r", scan)
            if end < 0:
                break
            frame = bytes(buffer[start:end].lstrip(_PADDING))
            if len(frame) > self.max_frame:
                error = error or FrameError(f"a frame of {len(frame)} bytes exceeds the cap of {self.max_frame}")
            elif frame:
                frames.append(frame)
            start = scan = end + 1
        if start:
            del buffer[:start]
        if buffer[:1] in _PADDING:  # not part of the next frame
            del buffer[: len(buffer) - len(buffer.lstrip(_PADDING))]
        self._scanned = len(buffer)
        if len(buffer) > self.max_frame:
            buffer.clear()
            self._scanned = 0
            self._skipping = True
            error = error or FrameError(f"no frame terminator within {self.max_frame} bytes")
        if error is not None:
            error.frames = frames
            raise error
        return frames


# -- dates

_BLANK_DATE = " " * DATE_WIDTH
_ZERO = dt.timedelta(0)


def format_date(when: dt.datetime | None) -> str:
    """`YYYYMMDD    HHMMSS` (local time, four blanks), or `...   ZHHMMSS` for a UTC datetime."""
    global _last_date
    if when is None:
        return _BLANK_DATE
    # Every request and every reply carries "now": the text of the last second formatted is kept,
    # and a datetime in the same second of the same zone gets it back after two comparisons.
    last = _last_date
    if last is not None and when.__class__ is dt.datetime and when.tzinfo is last[0].tzinfo \
            and when.fold == last[0].fold and last[0] <= when < last[1]:
        return last[2]
    zone = "   Z" if when.tzinfo is not None and when.utcoffset() == _ZERO else "    "
    # Not strftime: "%Y" drops leading zeros of years before 1000 on some platforms. And %-formatting
    # rather than an f-string of six format specs: it is faster.
    text = "%04d%02d%02d%s%02d%02d%02d" % (when.year, when.month, when.day, zone, when.hour, when.minute,
                                           when.second)
    if when.__class__ is dt.datetime:
        start = when.replace(microsecond=0)
        try:
            _last_date = (start, start + _ONE_SECOND, text)  # one tuple: threads see all of it or none
        except OverflowError:  # the very last second of year 9999
            pass
    return text


_last_date: tuple[dt.datetime, dt.datetime, str] | None = None
_ONE_SECOND = dt.timedelta(seconds=1)


_SIP_DATE = re.compile(r"(\d{8})(....)(\d{6})", re.ASCII)
# Free-text forms, each read as (year, month, day[, hour, minute, second][, zone]).
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?\s*(Z|[+-]\d{2}:?\d{2})?",
                       re.ASCII)
# Koha's format_due_date with the "dmydot" date format: 06.12.2026 (23:59). Day first, as
# nobody writes a month first with dots; slashed forms (12/06/2026) could be either, so they
# are left unread, and shown as the library wrote them.
_DMY_DOT_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$", re.ASCII)
_FREE_DATES = (
    # 2026-12-06, 2026/12/6, 2026.12.6, and the Korean 2026. 12. 6. / 2026년 12월 6일
    re.compile(r"(\d{4})\s*[-/.년]\s*(\d{1,2})\s*[-/.월]\s*(\d{1,2})", re.ASCII),
    re.compile(r"(\d{4})(\d{2})(\d{2})", re.ASCII),
)


def parse_date(text: str, tz: dt.tzinfo | None = None) -> dt.datetime | None:
    """A SIP2 date, or one of the free-text forms servers put in AH; None when unreadable.

    Local dates come back naive (or in `tz` when given); `   Z` dates come back in UTC. A date
    without a time of day means the end of that day (23:59:59).
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text:
        return None
    found = _SIP_DATE.fullmatch(text) if len(text) == DATE_WIDTH else None
    if found:
        # Fourteen ASCII digits in fixed places: read them as numbers (strptime, which reads the
        # same digits the same way, costs five times as much, and a due date is in most replies).
        day, clock = int(found.group(1)), int(found.group(3))
        try:
            when = dt.datetime(day // 10000, day // 100 % 100, day % 100, clock // 10000, clock // 100 % 100,
                               clock % 100)
        except ValueError:
            return None
        if found.group(2).strip() == "Z":
            return when.replace(tzinfo=dt.timezone.utc)
        return when.replace(tzinfo=tz) if tz else when
    found = _ISO_DATE.match(text)
    if found:
        *numbers, zone = found.groups()
        return _free_date([int(n) if n else 0 for n in numbers], zone or "", tz)
    found = _DMY_DOT_DATE.match(text)
    if found:
        day, month, year, *time_of_day = found.groups()
        at = [int(n) for n in time_of_day if n] if time_of_day[0] else [23, 59, 59]
        return _free_date([int(year), int(month), int(day), *at], "", tz)
    for pattern in _FREE_DATES:
        found = pattern.match(text)
        if found:
            return _free_date([*map(int, found.groups()), 23, 59, 59], "", tz)
    return None


def _free_date(numbers: list[int], zone: str, tz: dt.tzinfo | None) -> dt.datetime | None:
    """A free-text date from its numbers (a date alone means the end of that day) and its zone
    (Z, +09:00, -0500; '' for local time)."""
    try:
        when = dt.datetime(*numbers)
    except ValueError:
        return None
    if zone == "Z":
        return when.replace(tzinfo=dt.timezone.utc)
    if zone:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        try:
            offset = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        except ValueError:  # beyond ±24 h
            return None
        return when.replace(tzinfo=offset)
    return when.replace(tzinfo=tz) if tz else when
