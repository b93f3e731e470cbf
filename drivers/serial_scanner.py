"""A serial barcode scanner (RS-232, or USB in CDC/virtual COM mode) over pyserial.

The scanner decodes by itself and sends one line per code, ended by CR, LF or CR LF (its
factory "suffix" setting). This adapter reads on a thread, splits lines, and lets a line through
only when it is printable ASCII of a sane length that matches a member, accession number or
ISBN pattern of the config; everything else is counted (`counts`) and logged without its text.
A line with no end after `line_timeout_s` is a fragment (the scanner was unplugged mid-code, or
it has no suffix configured) and is dropped. Garbage that keeps coming (a wrong baud rate) marks
the scanner unavailable with a reason; the port vanishing (unplugged) does too, and it is
reopened every `reopen_s` until it is back.

pyserial is imported only here; `port` is anything `serial.serial_for_url` takes: a device
("/dev/ttyACM0", a stable "/dev/serial/by-id/..." link) or, in the tests, "loop://".
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from drivers.barcode_pipeline import MAX_TEXT, Debouncer, accepted_kind
from drivers.base import CodeRead, DeviceError, Emit, Health
from kiosk.identifiers import IdentifierRules, mask

log = logging.getLogger("kiosk.serial_scanner")

MAX_LINE = 512  # bytes kept while waiting for a line's end; longer is junk, dropped to its end


def _noop(event: object) -> None:
    return None


def _serial() -> Any:
    try:
        return importlib.import_module("serial")
    except ImportError as exc:
        raise DeviceError(f"the serial scanner needs pyserial (pip install 'library-kiosk[pi]'): {exc}") from exc


class SerialScanner:
    """Barcodes from a serial scanner. Options come from `[devices.scanner]` of the config."""

    def __init__(
        self,
        *,
        port: str = "/dev/ttyACM0",
        baudrate: int = 9600,
        debounce_s: float = 2.0,
        member_patterns: Sequence[str] = (r"\d{14}",),
        item_patterns: Sequence[str] = (r"EM\d{10}",),
        accept_isbn: bool = True,
        read_timeout_s: float = 0.2,
        line_timeout_s: float = 1.0,
        bad_lines: int = 5,
        reopen_s: float = 2.0,
        clock: Callable[[], float] | None = None,
        open_port: Callable[..., Any] | None = None,
    ) -> None:
        self.port, self.baudrate = port, baudrate
        self.read_timeout_s, self.line_timeout_s = read_timeout_s, line_timeout_s
        self.bad_lines, self.reopen_s = bad_lines, reopen_s
        self.rules = IdentifierRules(member_patterns=tuple(member_patterns), item_patterns=tuple(item_patterns),
                                     accept_isbn=accept_isbn)
        self._clock = clock or time.monotonic
        self._debounce = Debouncer(debounce_s, self._clock)
        if open_port is None:
            serial = _serial()
            open_port = serial.serial_for_url
        self._open_port = open_port
        self._emit: Emit = _noop
        self._serial: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._health = Health(False, "not started")
        self._buffer = bytearray()
        self._partial_since: float | None = None
        self._dropping = False  # inside an over-long line: drop up to its end
        self._bad_run = 0
        self.counts = {"lines": 0, "reads": 0, "repeats": 0, "garbled": 0, "control": 0, "too_long": 0,
                       "incomplete": 0, "rejected": 0, "opens": 0, "open_failures": 0, "port_errors": 0}

    # -- lifecycle

    def start(self, emit: Emit) -> None:
        if self._thread is not None:
            return
        self._emit = emit
        self._stop.clear()
        self._health = Health(False, f"opening serial scanner {self.port}")
        self._thread = threading.Thread(target=self._run, name="serial-scanner", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and close the port. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._release()
        self._emit = _noop
        self._health = Health(False, "closed")

    def __enter__(self) -> SerialScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> Health:
        return self._health

    def __repr__(self) -> str:
        state = "ok" if self._health.available else self._health.reason
        bad = sum(self.counts[k] for k in ("garbled", "control", "too_long", "incomplete", "rejected"))
        return f"<SerialScanner {self.port} {self.baudrate} baud {state}; reads={self.counts['reads']} bad={bad}>"

    # -- the read loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                usable = self.step()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one read
                log.exception("serial scanner %s failed", self.port)
                self._mark(Health(False, f"serial scanner {self.port} failed: {exc}; reopening"))
                self._release()
                usable = False
            if not usable:
                self._stop.wait(self.reopen_s)

    def step(self) -> bool:
        """Open the port if needed, read what has come (waiting up to `read_timeout_s`), handle
        every complete line. False when the port is not usable now."""
        if self._serial is None and not self._open():
            return False
        try:
            waiting = self._serial.in_waiting
            data = self._serial.read(min(max(1, waiting), 4096))
        except Exception as exc:  # noqa: BLE001 - SerialException, OSError: unplugged
            self.counts["port_errors"] += 1
            self._mark(Health(False, f"serial scanner {self.port} stopped answering ({exc}): is it unplugged? "
                                     "reopening"))
            self._release()
            return False
        if self._bad_run < self.bad_lines:
            self._mark(Health(True))
        self.feed(bytes(data))
        return True

    def feed(self, data: bytes) -> list[CodeRead]:
        """Take bytes as they came from the port; returns (and emits) the codes let through."""
        now = self._clock()
        out: list[CodeRead] = []
        if self._buffer and self._partial_since is not None and now - self._partial_since > self.line_timeout_s:
            self._count("incomplete", "a code without its line end")
            self._buffer.clear()
        if self._dropping and self._partial_since is not None and now - self._partial_since > self.line_timeout_s:
            self._dropping = False
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._dropping:
                    self._dropping = False
                elif self._buffer:
                    out.extend(self._line(bytes(self._buffer)))
                self._buffer.clear()
                self._partial_since = None
                continue
            if self._dropping:
                continue
            if not self._buffer:
                self._partial_since = now
            self._buffer.append(byte)
            if len(self._buffer) > MAX_LINE:
                self._count("too_long", f"a line over {MAX_LINE} bytes")
                self._buffer.clear()
                self._dropping = True
        if self._dropping and self._partial_since is None:
            self._partial_since = now
        return out

    def _line(self, raw: bytes) -> list[CodeRead]:
        self.counts["lines"] += 1
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            self._count("garbled", f"{len(raw)} bytes that are not ASCII (is the baud rate {self.baudrate} right?)")
            return []
        if not text.isprintable():
            self._count("control", "a line with control characters")
            return []
        if len(text) > MAX_TEXT:
            self._count("too_long", f"a code of {len(text)} characters")
            return []
        if accepted_kind(text, self.rules) is None:
            # A code the kiosk has no use for is not the scanner's fault: counted, not held against it.
            self.counts["rejected"] += 1
            log.info("serial scanner %s: a code that matches no pattern (%s)", self.port, mask(text))
            return []
        self._bad_run = 0
        self._mark(Health(True))
        if not self._debounce.admit(text):
            self.counts["repeats"] += 1
            return []
        self.counts["reads"] += 1
        event = CodeRead(text, "")
        self._emit(event)
        return [event]

    # -- helpers

    def _count(self, what: str, description: str) -> None:
        self.counts[what] += 1
        self._bad_run += 1
        log.warning("serial scanner %s: dropped %s (%d %s so far)", self.port, description, self.counts[what], what)
        if self._bad_run >= self.bad_lines:
            self._mark(Health(False, f"serial scanner {self.port} sends garbage ({self._bad_run} bad lines in a row): "
                                     f"check its baud rate ({self.baudrate}) and its CR/LF suffix"))

    def _open(self) -> bool:
        try:
            self._serial = self._open_port(self.port, baudrate=self.baudrate, timeout=self.read_timeout_s)
        except Exception as exc:  # noqa: BLE001 - SerialException, OSError, ValueError
            self._serial = None
            self.counts["open_failures"] += 1
            self._mark(Health(False, f"serial scanner {self.port} did not open ({exc}): is it plugged in, "
                                     "and is the kiosk's user in the 'dialout' group?"))
            return False
        self.counts["opens"] += 1
        self._buffer.clear()
        self._dropping, self._partial_since = False, None
        return True

    def _release(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except Exception:  # noqa: BLE001 - closing a vanished port may fail too
                log.debug("serial scanner %s: close failed", self.port, exc_info=True)

    def _mark(self, health: Health) -> None:
        if health != self._health:
            if health.available:
                log.info("serial scanner %s: available", self.port)
            else:
                log.warning("serial scanner %s: unavailable: %s", self.port, health.reason)
        self._health = health
