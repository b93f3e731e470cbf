"""The one config file, read once into frozen typed objects.

Every problem is collected and reported at once, each naming the file, the key, the value found
and what is expected (with "did you mean" for misspelt keys), so a technician fixes the file in
one pass. `kiosk config check [PATH]` prints them.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import ssl
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, get_args, get_origin, get_type_hints

from kiosk.identifiers import IdentifierRules
from kiosk.rules import Policy
from kiosk.session import Settings

Check = Callable[[Any], str | None]  # returns what is expected when the value is wrong


def _spec(default: Any, check: Check | None = None, choices: tuple[str, ...] = ()) -> Any:
    meta = {"check": check, "choices": choices}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


_LARGEST = 10**9  # past this a count or a time in seconds is no setting a kiosk can use


def _positive(value: Any) -> str | None:
    return None if 0 < value <= _LARGEST else "a number greater than 0 (and not endless)"


def _not_negative(value: Any) -> str | None:
    return None if 0 <= value <= _LARGEST else "a number of 0 or more (and not endless)"


def _timeout(value: Any) -> str | None:
    return None if 0 < value <= 3600 else "a number of seconds greater than 0, at most 3600"


def _days(value: Any) -> str | None:
    return None if 0 < value <= 3650 else "a number of days from 1 to 3650 (ten years)"


def _library_code(value: str) -> str | None:
    return None if re.fullmatch(r"\d{6}", value) else "the 6-digit national library code (책이음), e.g. \"111101\""


def _timezone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone name such as \"Asia/Seoul\""
    return None


def _regexes(value: tuple[str, ...]) -> str | None:
    if not value:
        return "at least one pattern"
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"valid regular expressions ({pattern!r}: {exc})"
    return None


def _digits(value: int) -> str | None:
    return None if 1 <= value <= 12 else "a number of digits from 1 to 12"


def _slots(value: int) -> str | None:
    return None if 1 <= value <= 256 else "a number of lockers from 1 to 256"


@dataclass(frozen=True)
class KioskSection:
    name: str = _spec("스마트도서관")
    library_code: str = _spec("111101", _library_code)
    data_dir: str = _spec("var")
    timezone: str = _spec("Asia/Seoul", _timezone)


@dataclass(frozen=True)
class LibrarySection:
    backend: str = _spec("local", choices=("local", "sip2"))
    seed: str = _spec("demo", choices=("demo", ""))


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else "a TCP port from 1 to 65535"


def _delimiter(value: str) -> str | None:
    return None if len(value) == 1 and value not in "\r\n" else "one character, usually \"|\""


def _encoding(value: str) -> str | None:
    import codecs

    try:
        codecs.lookup(value)
    except LookupError:
        return "a character set such as \"utf-8\", \"cp949\", \"cp850\", \"latin-1\" or \"ascii\""
    return None


@dataclass(frozen=True)
class Sip2Section:
    host: str = _spec("127.0.0.1")
    port: int = _spec(6001, _port)
    tls: bool = _spec(False)
    ca_file: str = _spec("")
    cert_file: str = _spec("")
    key_file: str = _spec("")
    check_hostname: bool = _spec(True)
    connect_timeout_s: float = _spec(5.0, _timeout)
    response_timeout_s: float = _spec(10.0, _timeout)
    user: str = _spec("kiosk")
    secrets_file: str = _spec("sip2-secrets.toml")
    location: str = _spec("")
    institution: str = _spec("111101")
    error_detection: bool = _spec(True)
    checksum_receive: str = _spec("bytes", choices=("bytes", "codepoints", "either"))
    encoding: str = _spec("utf-8", _encoding)
    delimiter: str = _spec("|", _delimiter)
    terminator: str = _spec("CR", choices=("CR", "CRLF"))
    keepalive_s: float = _spec(240.0, _not_negative)
    resend_requests: int = _spec(3, _not_negative)
    backoff_initial_s: float = _spec(1.0, _positive)
    backoff_max_s: float = _spec(300.0, _positive)
    send_patron_pin: bool = _spec(True)


@dataclass(frozen=True)
class OfflineSection:
    """Lending while the library system cannot be reached (the loans are replayed later)."""

    allowed: bool = _spec(True)
    due_days: int = _spec(14, _days)
    max_loans: int = _spec(2, _not_negative)  # per member, while offline (not yet delivered)
    unknown_members: str = _spec("refuse", choices=("refuse", "one-item"))
    cache_days: int = _spec(30, _days)  # a member's cached standing is trusted this long
    pin_tries: int = _spec(3, _positive)  # wrong PINs in a row, over any taps, before offline sign-in stops
    pin_lockout_s: float = _spec(0.0, _not_negative)  # then for this long (0: until an online sign-in)
    delivered_retention_days: int = _spec(30, _days)  # delivered events and finished door jobs


@dataclass(frozen=True)
class CirculationSection:
    loan_days: int = _spec(14, _positive)
    library_limit: int = _spec(5, _not_negative)
    network_limit: int = _spec(30, _not_negative)
    fine_limit_won: int = _spec(0, _not_negative)
    block_on_overdue: bool = _spec(True)


@dataclass(frozen=True)
class IdentifiersSection:
    member_patterns: tuple[str, ...] = _spec((r"\d{14}",), _regexes)
    item_patterns: tuple[str, ...] = _spec((r"EM\d{10}",), _regexes)
    accept_isbn: bool = _spec(True)
    uid_format: str = _spec("hex", choices=("hex", "decimal"))
    uid_byte_order: str = _spec("as-read", choices=("as-read", "reversed"))
    uid_decimal_digits: int = _spec(10, _not_negative)
    uid_check_byte: bool = _spec(False)


@dataclass(frozen=True)
class SessionSection:
    require_pin: bool = _spec(True)
    pin_min_digits: int = _spec(4, _digits)
    pin_max_digits: int = _spec(8, _digits)
    pin_tries: int = _spec(3, _positive)
    inactivity_s: float = _spec(90.0, _positive)
    inactivity_warning_s: float = _spec(15.0, _not_negative)
    notice_s: float = _spec(20.0, _positive)


@dataclass(frozen=True)
class DoorsSection:
    open_timeout_s: float = _spec(30.0, _positive)
    left_open_s: float = _spec(60.0, _positive)


@dataclass(frozen=True)
class UISection:
    language: str = _spec("ko", choices=("ko", "en"))
    width: int = _spec(1280, _positive)
    height: int = _spec(800, _positive)
    fullscreen: bool = _spec(True)
    font: str = _spec("")
    bold_font: str = _spec("")
    fps: int = _spec(30, _positive)


def _bcm_pin(value: int) -> str | None:
    return None if 0 <= value <= 27 else "a BCM GPIO number from 0 to 27"


def _nfc_path(value: str) -> str | None:
    ok = re.fullmatch(r"usb(:[0-9a-fA-F]{3,4}(:[0-9a-fA-F]{3,4})?)?|tty:\w+(:\w+)?|udp(:[\w.-]+)?(:\d+)?", value)
    return None if ok else "an nfcpy path such as \"usb\", \"usb:054c:06c1\" or \"tty:USB0:pn532\""


def _nfc_targets(value: tuple[str, ...]) -> str | None:
    known = ("106A", "106B", "212F", "424F")
    ok = value and all(v in known for v in value) and len(set(value)) == len(value)
    return None if ok else "a list of card types from " + ", ".join(f'"{k}"' for k in known)


@dataclass(frozen=True)
class CardReaderSection:
    driver: str = _spec("simulated", choices=("simulated", "mfrc522", "nfc", "keyboard_wedge"))
    poll_interval_s: float = _spec(0.1, _positive)
    repeat_s: float = _spec(1.0, _not_negative)
    reconnect_max_s: float = _spec(30.0, _positive)
    bad_reads_limit: int = _spec(5, _positive)
    spi_bus: int = _spec(0, _not_negative)
    spi_device: int = _spec(0, _not_negative)
    spi_speed_hz: int = _spec(1_000_000, _positive)
    rst_bcm_pin: int = _spec(25, _bcm_pin)
    nfc_path: str = _spec("usb", _nfc_path)
    nfc_targets: tuple[str, ...] = _spec(("106A", "106B", "212F"), _nfc_targets)
    evdev_path: str = _spec("")
    wedge_format: str = _spec("decimal", choices=("hex", "decimal"))
    wedge_byte_order: str = _spec("reversed", choices=("as-read", "reversed"))

    def adapter_options(self, clock: Any = None) -> dict[str, Any]:
        """The keyword arguments of the selected driver (see drivers/registry.py); a real reader
        times its debounce and back-off by `clock.monotonic` when a clock is given."""
        if self.driver == "simulated":
            return {}
        common = {"poll_interval_s": self.poll_interval_s, "repeat_s": self.repeat_s,
                  "reconnect_max_s": self.reconnect_max_s, "bad_reads_limit": self.bad_reads_limit}
        if clock is not None:
            common["clock"] = clock.monotonic
        if self.driver == "mfrc522":
            return {**common, "spi_bus": self.spi_bus, "spi_device": self.spi_device,
                    "spi_speed_hz": self.spi_speed_hz, "rst_bcm_pin": self.rst_bcm_pin}
        if self.driver == "nfc":
            return {**common, "nfc_path": self.nfc_path, "targets": self.nfc_targets}
        return {**common, "evdev_path": self.evdev_path, "wedge_format": self.wedge_format,
                "wedge_byte_order": self.wedge_byte_order}


SYMBOLOGIES = ("CODE128", "CODE39", "EAN13", "QRCODE")  # what the camera can be asked to read


def _symbologies(value: tuple[str, ...]) -> str | None:
    if not value or any(v not in SYMBOLOGIES for v in value):
        return "a list of some of " + ", ".join(f'"{s}"' for s in SYMBOLOGIES)
    return None


def _roi(value: str) -> str | None:
    expected = "\"left,top,width,height\" as fractions of the frame, e.g. \"0.2,0.1,0.6,0.8\" (\"\": all of it)"
    if value == "":
        return None
    try:
        left, top, width, height = (float(v) for v in value.split(","))
    except ValueError:
        return expected
    inside = 0 <= left < 1 and 0 <= top < 1 and width > 0 and height > 0
    return None if inside and left + width <= 1.0001 and top + height <= 1.0001 else expected


def _camera(value: str) -> str | None:
    ok = value.isdigit() or value.startswith("/dev/")
    return None if ok else "a camera number (\"0\") or a device path (\"/dev/video0\", \"/dev/v4l/by-id/...\")"


@dataclass(frozen=True)
class ScannerSection:
    driver: str = _spec("simulated", choices=("simulated", "camera", "serial", "hid"))
    debounce_s: float = _spec(2.0, _not_negative)  # the same code again within this is ignored
    # camera
    camera: str = _spec("0", _camera)
    width: int = _spec(640, _positive)
    height: int = _spec(480, _positive)
    decoders: str = _spec("zxing,zbar", choices=("zxing", "zbar", "zxing,zbar", "zbar,zxing"))
    symbologies: tuple[str, ...] = _spec(SYMBOLOGIES, _symbologies)
    roi: str = _spec("", _roi)
    # serial
    port: str = _spec("/dev/ttyACM0")
    baudrate: int = _spec(9600, lambda value: _baudrate(value))
    # hid
    evdev_path: str = _spec("")

    def adapter_options(self, identifiers: IdentifiersSection) -> dict[str, Any]:
        """The keyword arguments of the selected scanner (see drivers/registry.py). A code is let
        through only when it matches the [identifiers] patterns, so they go to the driver too."""
        if self.driver == "simulated":
            return {}
        common = {"debounce_s": self.debounce_s, "member_patterns": identifiers.member_patterns,
                  "item_patterns": identifiers.item_patterns, "accept_isbn": identifiers.accept_isbn}
        if self.driver == "camera":
            return {**common, "camera": self.camera, "width": self.width, "height": self.height,
                    "decoders": self.decoders, "symbologies": self.symbologies, "roi": self.roi}
        if self.driver == "hid":
            return {**common, "evdev_path": self.evdev_path}
        return {**common, "port": self.port, "baudrate": self.baudrate}


def _bcm_pin(value: int) -> str | None:
    return None if 0 <= value <= 27 else "a BCM GPIO number from 0 to 27"


def _optional_bcm_pin(value: int) -> str | None:
    return None if value == -1 or 0 <= value <= 27 else "a BCM GPIO number from 0 to 27, or -1 for none"


def _bit(value: int) -> str | None:
    return None if value in (0, 1) else "0 or 1"


def _board_addresses(value: tuple[int, ...]) -> str | None:
    if not value or len(set(value)) != len(value) or not all(0 <= v <= 15 for v in value):
        return "a list of distinct board addresses from 0 to 15 (the DIP switch), e.g. [0, 1]"
    return None


def _locks_per_board(value: int) -> str | None:
    return None if 1 <= value <= 16 else "a number of locks from 1 to 16"


def _baudrate(value: int) -> str | None:
    return None if value in (9600, 19200, 38400, 57600, 115200) else "9600, 19200, 38400, 57600 or 115200"


@dataclass(frozen=True)
class GpioLocker:
    """One locker on GPIO: its lock's relay, its door switch and (optionally) an occupancy sensor."""

    relay_bcm_pin: int = _spec(-1, _bcm_pin)
    door_bcm_pin: int = _spec(-1, _bcm_pin)
    occupancy_bcm_pin: int = _spec(-1, _optional_bcm_pin)


@dataclass(frozen=True)
class GpioLocksSection:
    pin_factory: str = _spec("rpigpio", choices=("rpigpio", "lgpio", "mock"))
    relay_active_high: bool = _spec(False)  # most relay boards sold for the Pi switch on when driven low
    unlock: str = _spec("pulse", choices=("pulse", "hold"))
    pulse_s: float = _spec(0.5, _positive)
    door_pull_up: bool = _spec(True)
    door_open_level: str = _spec("high", choices=("high", "low"))
    occupancy_pull_up: bool = _spec(True)
    occupied_level: str = _spec("low", choices=("high", "low"))
    debounce_s: float = _spec(0.05, _not_negative)
    jam_check_s: float = _spec(0.0, _not_negative)
    lockers: tuple[GpioLocker, ...] = ()


@dataclass(frozen=True)
class Cu16LocksSection:
    port: str = _spec("/dev/ttyUSB0")
    baudrate: int = _spec(19200, _baudrate)
    boards: tuple[int, ...] = _spec((0,), _board_addresses)
    locks_per_board: int = _spec(16, _locks_per_board)
    timeout_s: float = _spec(0.2, _positive)
    retries: int = _spec(2, _not_negative)
    poll_interval_s: float = _spec(0.5, _positive)
    offline_after: int = _spec(3, _positive)
    reconnect_s: float = _spec(5.0, _positive)
    unlock_replies: bool = _spec(True)
    bit_order: str = _spec("lsb-first", choices=("lsb-first", "msb-first"))
    hook_closed_bit: int = _spec(1, _bit)
    infrared: bool = _spec(False)
    infrared_occupied_bit: int = _spec(1, _bit)
    jam_check_s: float = _spec(1.0, _not_negative)


@dataclass(frozen=True)
class LocksSection:
    driver: str = _spec("simulated", choices=("simulated", "gpio", "cu16"))
    slots: int = _spec(24, _slots)
    gpio: GpioLocksSection = GpioLocksSection()
    cu16: Cu16LocksSection = Cu16LocksSection()

    def adapter_options(self, doors: DoorsSection) -> dict[str, Any]:
        """The keyword arguments of the selected lock bank (see drivers/registry.py); the
        left-open alarm of every door follows [doors] left_open_s."""
        common = {"slots": self.slots, "left_open_s": doors.left_open_s}
        if self.driver == "gpio":
            g = self.gpio
            return {**common, "pin_factory": g.pin_factory, "relay_active_high": g.relay_active_high,
                    "unlock_mode": g.unlock, "pulse_s": g.pulse_s, "door_pull_up": g.door_pull_up,
                    "door_open_level": g.door_open_level, "occupancy_pull_up": g.occupancy_pull_up,
                    "occupied_level": g.occupied_level, "debounce_s": g.debounce_s,
                    "jam_check_s": g.jam_check_s, "lockers": [dataclasses.asdict(p) for p in g.lockers]}
        if self.driver == "cu16":
            return {**common, **dataclasses.asdict(self.cu16), "boards": list(self.cu16.boards)}
        return common


@dataclass(frozen=True)
class IndicatorSection:
    """An LED and a buzzer for feedback (optional)."""

    driver: str = _spec("none", choices=("none", "gpio"))
    pin_factory: str = _spec("rpigpio", choices=("rpigpio", "lgpio", "mock"))
    led_bcm_pin: int = _spec(-1, _optional_bcm_pin)
    buzzer_bcm_pin: int = _spec(-1, _optional_bcm_pin)
    active_high: bool = _spec(True)

    def adapter_options(self) -> dict[str, Any]:
        if self.driver == "gpio":
            return {"pin_factory": self.pin_factory, "led_bcm_pin": self.led_bcm_pin,
                    "buzzer_bcm_pin": self.buzzer_bcm_pin, "active_high": self.active_high}
        return {}


@dataclass(frozen=True)
class DevicesSection:
    card_reader: CardReaderSection = CardReaderSection()
    scanner: ScannerSection = ScannerSection()
    locks: LocksSection = LocksSection()
    indicator: IndicatorSection = IndicatorSection()


@dataclass(frozen=True)
class Config:
    kiosk: KioskSection = KioskSection()
    library: LibrarySection = LibrarySection()
    sip2: Sip2Section = Sip2Section()
    offline: OfflineSection = OfflineSection()
    circulation: CirculationSection = CirculationSection()
    identifiers: IdentifiersSection = IdentifiersSection()
    session: SessionSection = SessionSection()
    doors: DoorsSection = DoorsSection()
    ui: UISection = UISection()
    devices: DevicesSection = DevicesSection()
    source: Path | None = None  # the file it came from (relative paths are relative to it)

    @property
    def data_dir(self) -> Path:
        path = Path(self.kiosk.data_dir)
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path

    def relative(self, name: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        path = Path(name)
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path

    @property
    def database(self) -> Path:
        return self.data_dir / "kiosk.db"

    def policy(self) -> Policy:
        return Policy(**dataclasses.asdict(self.circulation))

    def identifier_rules(self) -> IdentifierRules:
        return IdentifierRules(**dataclasses.asdict(self.identifiers))

    def settings(self) -> Settings:
        s, d = self.session, self.doors
        return Settings(
            ids=self.identifier_rules(),
            policy=self.policy(),
            require_pin=s.require_pin,
            pin_min_digits=s.pin_min_digits,
            pin_max_digits=s.pin_max_digits,
            pin_tries=s.pin_tries,
            inactivity_s=s.inactivity_s,
            inactivity_warning_s=s.inactivity_warning_s,
            door_open_timeout_s=d.open_timeout_s,
            door_left_open_s=d.left_open_s,
            notice_s=s.notice_s,
            offline_max_loans=self.offline.max_loans,
            language=self.ui.language,
        )


@dataclass(frozen=True)
class Problem:
    key: str  # dotted: "doors.open_timeout_s"
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """The config file has problems; `problems` lists every one of them."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the configuration:\n{lines}")


_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a text in quotes"}


def _convert(value: Any, kind: Any) -> tuple[Any, str | None]:
    """Check one TOML value against a field's type; returns (value, what was expected if wrong)."""
    if get_origin(kind) is tuple:
        if get_args(kind)[0] is int:
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return value, "a list of whole numbers, e.g. [0, 1]"
            return tuple(value), None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return value, "a list of texts, e.g. [\"a\", \"b\"]"
        return tuple(value), None
    if kind is bool:
        return value, None if isinstance(value, bool) else _TYPE_NAMES[bool]
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value, None if ok else _TYPE_NAMES[int]
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (float(value) if ok else value), None if ok else _TYPE_NAMES[float]
    if kind is str:
        return value, None if isinstance(value, str) else _TYPE_NAMES[str]
    raise TypeError(kind)


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build(cls: type, table: Any, prefix: str, problems: list[Problem]) -> Any:
    if not isinstance(table, dict):
        problems.append(Problem(prefix, f"expected a table [{prefix}], found {table!r}"))
        return cls()
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    for key in table:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            problems.append(Problem(where, "unknown setting" + _did_you_mean(key, names)))
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in table or f.name == "source":
            continue
        where = f"{prefix}.{f.name}" if prefix else f.name
        kind = hints[f.name]
        raw = table[f.name]
        if dataclasses.is_dataclass(kind):
            values[f.name] = _build(kind, raw, where, problems)
            continue
        if get_origin(kind) is tuple and dataclasses.is_dataclass(get_args(kind)[0]):
            # A list of tables, e.g. [[devices.locks.gpio.lockers]]: each one checked in full.
            if not isinstance(raw, list):
                problems.append(Problem(where, f"found {raw!r}, expected a list of tables"))
                continue
            values[f.name] = tuple(_build(get_args(kind)[0], item, f"{where}[{i}]", problems)
                                   for i, item in enumerate(raw, start=1))
            continue
        value, expected = _convert(raw, kind)
        if expected is None and f.metadata.get("choices") and value not in f.metadata["choices"]:
            expected = "one of " + ", ".join(repr(c) for c in f.metadata["choices"])
        if expected is None and f.metadata.get("check"):
            expected = f.metadata["check"](value)
        if expected is not None:
            problems.append(Problem(where, f"found {raw!r}, expected {expected}"))
            continue
        values[f.name] = value
    return cls(**values)


# The Pi's SPI pins by BCM number, per bus: an MFRC522 on that bus needs them.
_SPI_PINS = {0: {8: "CE0", 7: "CE1", 9: "MISO", 10: "MOSI", 11: "SCLK"},
             1: {18: "CE0", 17: "CE1", 16: "CE2", 19: "MISO", 20: "MOSI", 21: "SCLK"}}


def _card_reader_pin_checks(config: Config, problems: list[Problem]) -> None:
    """An MFRC522's reset pin and SPI pins are its own: no lock, door switch or LED on them."""
    r = config.devices.card_reader
    reader = {pin: f"the card reader's SPI{r.spi_bus} {name}" for pin, name in _SPI_PINS.get(r.spi_bus, {}).items()}
    if r.rst_bcm_pin in reader:
        problems.append(Problem("devices.card_reader.rst_bcm_pin", f"BCM {r.rst_bcm_pin} is {reader[r.rst_bcm_pin]}"))
    reader.setdefault(r.rst_bcm_pin, "the card reader's RST")
    others: list[tuple[str, int]] = []
    locks = config.devices.locks
    if locks.driver == "gpio":
        for i, locker in enumerate(locks.gpio.lockers, start=1):
            for key in ("relay_bcm_pin", "door_bcm_pin", "occupancy_bcm_pin"):
                others.append((f"devices.locks.gpio.lockers[{i}].{key}", getattr(locker, key)))
    indicator = getattr(config.devices, "indicator", None)
    if indicator is not None and indicator.driver == "gpio":
        others += [("devices.indicator.led_bcm_pin", indicator.led_bcm_pin),
                   ("devices.indicator.buzzer_bcm_pin", indicator.buzzer_bcm_pin)]
    for where, pin in others:
        if pin in reader:
            problems.append(Problem(where, f"BCM {pin} is {reader[pin]}"))


def _lock_checks(config: Config, problems: list[Problem]) -> None:
    locks = config.devices.locks
    used: dict[int, str] = {}  # BCM pin -> what it is wired to
    if locks.driver == "gpio":
        lockers = locks.gpio.lockers
        if len(lockers) != locks.slots:
            problems.append(Problem("devices.locks.gpio.lockers",
                                    f"gives pins for {len(lockers)} locker(s), expected one entry per locker "
                                    f"(slots = {locks.slots}), e.g. {{ relay_bcm_pin = 5, door_bcm_pin = 6 }}"))
        for i, locker in enumerate(lockers, start=1):
            for key in ("relay_bcm_pin", "door_bcm_pin", "occupancy_bcm_pin"):
                pin = getattr(locker, key)
                where = f"devices.locks.gpio.lockers[{i}].{key}"
                if pin == -1:
                    if key != "occupancy_bcm_pin" and not any(p.key == where for p in problems):
                        problems.append(Problem(where, "missing: the BCM GPIO number it is wired to"))
                    continue
                if pin in used:
                    problems.append(Problem(where, f"BCM {pin} is already {used[pin]}"))
                used[pin] = f"locker {i}'s {key}"
    indicator = config.devices.indicator
    if indicator.driver == "gpio":
        pins = {"led_bcm_pin": indicator.led_bcm_pin, "buzzer_bcm_pin": indicator.buzzer_bcm_pin}
        if all(pin == -1 for pin in pins.values()):
            problems.append(Problem("devices.indicator.led_bcm_pin", "an indicator needs an LED or a buzzer pin"))
        for key, pin in pins.items():
            if pin != -1 and pin in used:
                problems.append(Problem(f"devices.indicator.{key}", f"BCM {pin} is already {used[pin]}"))
        if pins["led_bcm_pin"] != -1 and pins["led_bcm_pin"] == pins["buzzer_bcm_pin"]:
            problems.append(Problem("devices.indicator.buzzer_bcm_pin", "is the LED's pin too"))
    if locks.driver == "cu16":
        c = locks.cu16
        if locks.slots > len(c.boards) * c.locks_per_board:
            problems.append(Problem("devices.locks.cu16.boards",
                                    f"{len(c.boards)} board(s) of {c.locks_per_board} locks cannot hold "
                                    f"{locks.slots} lockers: add board addresses or lower slots"))


def _cross_checks(config: Config, problems: list[Problem]) -> None:
    _lock_checks(config, problems)
    s = config.session
    if s.pin_min_digits > s.pin_max_digits:
        problems.append(Problem("session.pin_min_digits",
                                f"is {s.pin_min_digits}, more than pin_max_digits ({s.pin_max_digits})"))
    if s.inactivity_warning_s >= s.inactivity_s:
        problems.append(Problem("session.inactivity_warning_s",
                                f"is {s.inactivity_warning_s:g} s, expected less than inactivity_s ({s.inactivity_s:g} s)"))
    p = config.sip2
    # SIP2's framing is ASCII: the character set must write ASCII as ASCII, and the delimiter
    # must not be a letter or digit (field ids are) and must be writable in that character set.
    try:
        ascii_ok = "AZ09|^\r".encode(p.encoding) == b"AZ09|^\r"
        delimiter_ok = not p.delimiter.isalnum() and len(p.delimiter.encode(p.encoding)) == 1
    except (LookupError, UnicodeError):
        ascii_ok = delimiter_ok = False
    if not ascii_ok:
        problems.append(Problem("sip2.encoding", f"found {p.encoding!r}, expected a character set that writes "
                                                 "ASCII as ASCII (utf-8, cp949, euc-kr, cp850, latin-1, ascii)"))
    elif not delimiter_ok:
        problems.append(Problem("sip2.delimiter", f"found {p.delimiter!r}, expected one character that is not "
                                                  f"a letter or digit and fits in one byte of {p.encoding}"))
    if p.backoff_max_s < p.backoff_initial_s:
        problems.append(Problem("sip2.backoff_max_s",
                                f"is {p.backoff_max_s:g} s, expected at least backoff_initial_s ({p.backoff_initial_s:g} s)"))
    if p.tls and bool(p.cert_file) != bool(p.key_file):
        problems.append(Problem("sip2.key_file" if p.cert_file else "sip2.cert_file",
                                "a client certificate needs both cert_file and key_file"))
    missing = False
    for key in ("ca_file", "cert_file", "key_file"):
        value = getattr(p, key)
        if p.tls and value and not config.relative(value).is_file():
            problems.append(Problem(f"sip2.{key}", f"found {value!r}, but there is no such file"))
            missing = True
    if p.tls and not missing:
        _tls_file_checks(config, problems)
    for key in ("user", "institution", "location"):
        _sip2_text_check(f"sip2.{key}", getattr(p, key), p, problems)
    r = config.devices.card_reader
    if r.driver == "keyboard_wedge" and not r.evdev_path.startswith("/dev/input/"):
        problems.append(Problem("devices.card_reader.evdev_path",
                                f"found {r.evdev_path!r}, expected the reader's /dev/input/by-id/…-event-kbd "
                                "path (ls /dev/input/by-id/)"))
    if r.driver == "mfrc522":
        _card_reader_pin_checks(config, problems)
    if config.devices.scanner.driver == "hid" and not config.devices.scanner.evdev_path:
        problems.append(Problem("devices.scanner.evdev_path", "the HID scanner's /dev/input/by-id/...-event-kbd "
                                                              "path is needed with driver = \"hid\""))
    c = config.circulation
    if c.network_limit < c.library_limit:
        problems.append(Problem("circulation.network_limit",
                                f"is {c.network_limit}, expected at least library_limit ({c.library_limit})"))


def _tls_file_checks(config: Config, problems: list[Problem]) -> None:
    """The CA and client certificate files load as the kiosk will load them."""
    p = config.sip2
    try:
        context = ssl.create_default_context(cafile=str(config.relative(p.ca_file)) if p.ca_file else None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        problems.append(Problem("sip2.ca_file", f"found {p.ca_file!r}, which holds no certificate the kiosk "
                                                f"can use (PEM expected): {exc.__class__.__name__}"))
        return
    if p.cert_file and p.key_file:
        try:  # an encrypted key would ask for a passphrase nobody is there to type
            context.load_cert_chain(str(config.relative(p.cert_file)), str(config.relative(p.key_file)),
                                    password=lambda: b"")
        except (ssl.SSLError, OSError, ValueError) as exc:
            problems.append(Problem("sip2.cert_file", f"{p.cert_file!r} with {p.key_file!r} does not load as a "
                                                      f"certificate and its unencrypted key: {exc.__class__.__name__}"))


def _sip2_text_check(key: str, value: str, p: Sip2Section, problems: list[Problem]) -> None:
    """A value the kiosk sends as it is (a login name, a password, an institution): SIP2 can
    carry it only without the delimiter, CR or LF, and in the configured character set."""
    if not value:
        return
    found = [repr(c) for c in (p.delimiter, "\r", "\n") if c in value]
    if found:
        problems.append(Problem(key, f"holds {', '.join(found)}, which SIP2 cannot carry in a value "
                                     "(the delimiter ends a field, CR a message)"))
        return
    try:
        value.encode(p.encoding)
    except (UnicodeError, LookupError):
        problems.append(Problem(key, f"holds characters {p.encoding} cannot write (see sip2.encoding)"))


@dataclass(frozen=True)
class Secrets:
    """What stays out of config.toml: the ILS account's passwords."""

    password: str = ""  # the SIP2 login password (93 CO)
    terminal_password: str = ""  # the terminal password (AC), when the ILS wants one

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"Secrets(password={'***' if self.password else ''!r}, terminal_password=...)"


class SecretsError(ConfigError):
    pass


def load_secrets(config: Config) -> Secrets:
    """Read the secrets file the config names: TOML with `password` (and `terminal_password`).

    The file must be readable by its owner only (mode 600 or 400), so that a leaked config or a
    careless copy does not leak the library's credentials.
    """
    path = config.relative(config.sip2.secrets_file)
    name = f"sip2.secrets_file ({path})"
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretsError(str(path), [Problem(name, "no such file: write one with the line "
                                                     "password = \"...\" and chmod 600 it")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretsError(str(path), [Problem(name, f"cannot be read: {exc}")]) from None
    if mode & 0o077:
        raise SecretsError(str(path), [Problem(name, f"is readable by others (mode {mode & 0o777:o}); "
                                                     f"run: chmod 600 {path}")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SecretsError(str(path), [Problem(name, f"not valid TOML: {exc}")]) from None
    problems = [Problem(f"{name} {key}", "unknown setting" + _did_you_mean(key, ["password", "terminal_password"]))
                for key in data if key not in ("password", "terminal_password")]
    for key in ("password", "terminal_password"):
        if key in data and not isinstance(data[key], str):
            problems.append(Problem(f"{name} {key}", "expected a text in quotes"))
    if "password" not in data:
        problems.append(Problem(f"{name} password", "missing: the SIP2 login password"))
    for key in ("password", "terminal_password"):
        if isinstance(data.get(key), str):
            _sip2_text_check(f"{name} {key}", data[key], config.sip2, problems)
    if problems:
        raise SecretsError(str(path), problems)
    return Secrets(data["password"], data.get("terminal_password", ""))


def parse(text: str, source: Path | None = None) -> Config:
    """Build a Config from TOML text; raises ConfigError listing every problem."""
    name = str(source) if source else "<config>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, [Problem("(syntax)", f"not valid TOML: {exc}")]) from None
    problems: list[Problem] = []
    config = _build(Config, data, "", problems)
    config = dataclasses.replace(config, source=source)
    _cross_checks(config, problems)
    if problems:
        raise ConfigError(name, problems)
    return config


def load(path: Path | str) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [Problem("(file)", "no such file: write one from the shipped config.toml")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [Problem("(file)", f"cannot be read: {exc}")]) from None
    return parse(text, path.resolve())
