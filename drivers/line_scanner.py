"""What serial and USB HID barcode scanners share: a device that sends one line per code.

`LineScanner` runs the read loop on a thread, reopens the device when it goes away, and lets a
line through only when it is printable, at most `MAX_TEXT` characters and matches a member,
accession number (등록번호) or ISBN-13 pattern of the config, debounced like the camera. Every
dropped line is counted in `counts` and logged without its text; `bad_lines` bad lines in a
row mark the scanner unavailable with a reason a technician can act on, and the next good
code makes it available again. Subclasses open, read and release their device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from drivers.barcode_pipeline import MAX_TEXT, Debouncer, accepted_kind
from drivers.base import CodeRead, DeviceError, Emit, Health
from kiosk.identifiers import IdentifierRules, mask

log = logging.getLogger("kiosk.scanner")


class DeviceGone(DeviceError):
    """The device vanished (unplugged, its port closed under us)."""


def _noop(event: object) -> None:
    return None


class LineScanner:
    """The shared part; subclasses define `_open`, `_read`, `_release` and `describe`."""

    bad_line_hint = "check its settings"

    def __init__(
        self,
        *,
        debounce_s: float = 2.0,
        member_patterns: Sequence[str] = (r"\d{14}",),
        item_patterns: Sequence[str] = (r"EM\d{10}",),
        accept_isbn: bool = True,
        bad_lines: int = 5,
        reopen_s: float = 2.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.rules = IdentifierRules(member_patterns=tuple(member_patterns), item_patterns=tuple(item_patterns),
                                     accept_isbn=accept_isbn)
        self.bad_lines, self.reopen_s = bad_lines, reopen_s
        self._clock = clock or time.monotonic
        self._debounce = Debouncer(debounce_s, self._clock)
        self._emit: Emit = _noop
        self._opened = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._health = Health(False, "not started")
        self._bad_run = 0
        self.counts = {"lines": 0, "reads": 0, "repeats": 0, "garbled": 0, "control": 0, "too_long": 0,
                       "incomplete": 0, "rejected": 0, "opens": 0, "open_failures": 0, "port_errors": 0}

    # -- what subclasses provide

    def describe(self) -> str:
        raise NotImplementedError

    def _open(self) -> None:
        """Open the device; raise (any exception) with what went wrong."""
        raise NotImplementedError

    def _open_hint(self) -> str:
        return "is it plugged in?"

    def _read(self) -> list[str]:
        """Wait a little for input; the complete lines that came. Raise DeviceGone when the
        device has vanished."""
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    # -- lifecycle

    def start(self, emit: Emit) -> None:
        if self._thread is not None:
            return
        self._emit = emit
        self._stop.clear()
        self._health = Health(False, f"opening {self.describe()}")
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and release the device. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if thread is None or not thread.is_alive():  # else the thread closes it on its way out
            self._close_device()
        self._emit = _noop
        self._health = Health(False, "closed")

    def __enter__(self) -> LineScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> Health:
        return self._health

    def __repr__(self) -> str:
        state = "ok" if self._health.available else self._health.reason
        bad = sum(self.counts[k] for k in ("garbled", "control", "too_long", "incomplete", "rejected"))
        return f"<{type(self).__name__} {self.describe()} {state}; reads={self.counts['reads']} bad={bad}>"

    # -- the loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                usable = self.step()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one read
                log.exception("%s failed", self.describe())
                self._mark(Health(False, f"{self.describe()} failed: {exc}; reopening"))
                self._close_device()
                usable = False
            if not usable:
                self._stop.wait(self.reopen_s)
        self._close_device()

    def step(self) -> bool:
        """Open the device if needed, wait a little for lines and handle them. False when the
        device is not usable now (the loop waits `reopen_s` before the next try)."""
        if not self._opened and not self._try_open():
            return False
        try:
            lines = self._read()
        except DeviceGone as exc:
            self.counts["port_errors"] += 1
            self._mark(Health(False, f"{self.describe()} stopped answering ({exc}): is it unplugged? reopening"))
            self._close_device()
            return False
        if self._bad_run < self.bad_lines:
            self._mark(Health(True))
        for line in lines:
            self.accept_line(line)
        return True

    def accept_line(self, text: str) -> CodeRead | None:
        """One complete line from the device: emit it as a code when it may reach the kiosk."""
        self.counts["lines"] += 1
        if not text.isprintable():
            self._count("control", "a line with control characters")
            return None
        if len(text) > MAX_TEXT:
            self._count("too_long", f"a code of {len(text)} characters")
            return None
        if accepted_kind(text, self.rules) is None:
            # A code the kiosk has no use for is not the scanner's fault: counted, not held against it.
            self.counts["rejected"] += 1
            log.info("%s: a code that matches no pattern (%s)", self.describe(), mask(text))
            return None
        self._bad_run = 0
        self._mark(Health(True))
        if not self._debounce.admit(text):
            self.counts["repeats"] += 1
            return None
        self.counts["reads"] += 1
        event = CodeRead(text, "")
        self._emit(event)
        return event

    # -- helpers

    def _count(self, what: str, description: str) -> None:
        self.counts[what] += 1
        self._bad_run += 1
        log.warning("%s: dropped %s (%d %s so far)", self.describe(), description, self.counts[what], what)
        if self._bad_run >= self.bad_lines:
            self._mark(Health(False, f"{self.describe()} sends garbage ({self._bad_run} bad lines in a row): "
                                     f"{self.bad_line_hint}"))

    def _try_open(self) -> bool:
        try:
            self._open()
        except Exception as exc:  # noqa: BLE001 - a missing device is reported, not a crash
            self.counts["open_failures"] += 1
            detail = getattr(exc, "strerror", None) or exc
            self._mark(Health(False, f"{self.describe()} did not open ({detail}): {self._open_hint()}"))
            return False
        self._opened = True
        self.counts["opens"] += 1
        return True

    def _close_device(self) -> None:
        if self._opened:
            self._opened = False
            try:
                self._release()
            except Exception:  # noqa: BLE001 - releasing a vanished device may fail too
                log.debug("%s: release failed", self.describe(), exc_info=True)

    def _mark(self, health: Health) -> None:
        if health != self._health:
            if health.available:
                log.info("%s: available", self.describe())
            else:
                log.warning("%s: unavailable: %s", self.describe(), health.reason)
        self._health = health


def import_or_explain(module: str, extra: str) -> Any:
    """Import a hardware library, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DeviceError(f"this scanner needs {module} (pip install 'library-kiosk[{extra}]'): {exc}") from exc
