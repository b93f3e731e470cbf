"""The reader thread shared by the real card readers.

Each real reader (MFRC522, nfcpy, keyboard wedge) only says how to open its device, read once
with a short timeout, and let go. This class does the rest, the same way for all of them:

- one `CardRead` per tap: the same UID again while the card stays on the reader (or within
  `repeat_s` of the last sight of it) is the same tap;
- a reader that fails to open, or is unplugged, is marked unavailable with the reason, and
  reopened by itself with back-off (doubling up to `reconnect_max_s`);
- unreadable data (a wrong check byte, a line that is no UID) is counted and logged; when it
  keeps coming (`bad_reads_limit` within `bad_reads_window_s`) the reader is marked unavailable
  until it reads a card again or the nonsense stops;
- logs never show more of a UID than its last 4 hex digits.

`step()` does one round (open if due, read once) and returns how long to wait before the next;
the thread started by `start()` just repeats it. Tests call `step()` directly with a fake clock.
"""

from __future__ import annotations

import collections
import errno
import logging
import threading
import time
from collections.abc import Callable

from drivers.base import CardRead, DeviceError, Emit, Health
from kiosk.identifiers import mask

log = logging.getLogger("kiosk.card_reader")


class BadRead(DeviceError):
    """The reader answered, but with something that cannot be a card: a wrong check byte or CRC,
    a collision of two cards, a typed line that is no UID."""


class ReaderGone(DeviceError):
    """The reader was unplugged or stopped answering; it will be reopened."""


def _noop(event: object) -> None:
    return None


def describe_os_error(exc: OSError, what: str) -> str:
    """A technician's reason for an OSError while opening or reading `what`."""
    if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"{what} is not there (unplugged?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to use {what}: add the kiosk's user to its group (see README, udev)"
    if exc.errno == errno.EBUSY:
        return f"{what} is in use by another program"
    return f"{what}: {exc.strerror or exc}"


class Debouncer:
    """Says whether a UID seen now is a new tap, or the same card still held on the reader."""

    def __init__(self, repeat_s: float) -> None:
        self.repeat_s = repeat_s
        self._uid: bytes | None = None
        self._seen_at = float("-inf")

    def is_new_tap(self, uid: bytes, now: float) -> bool:
        new = uid != self._uid or now - self._seen_at > self.repeat_s
        self._uid, self._seen_at = uid, now
        return new


class PollingCardReader:
    """Base of the real card readers; subclasses implement `_open`, `_read` and `_release`."""

    name = "card reader"
    read_waits = False  # True: _read itself waits up to poll_interval_s, so no pause after it

    def __init__(
        self, *, poll_interval_s: float = 0.1, repeat_s: float = 1.0, reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0, bad_reads_limit: int = 5, bad_reads_window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if poll_interval_s <= 0 or repeat_s < 0 or reconnect_initial_s <= 0 or bad_reads_limit < 1:
            raise ValueError("poll_interval_s, reconnect_initial_s and bad_reads_limit must be positive")
        self.poll_interval_s = poll_interval_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = max(reconnect_max_s, reconnect_initial_s)
        self.bad_reads_limit = bad_reads_limit
        self.bad_reads_window_s = bad_reads_window_s
        self._clock = clock
        self._debouncer = Debouncer(repeat_s)
        self._emit: Emit = _noop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _health
        self._started = False
        self._opened = False
        self._retry_at = float("-inf")
        self._backoff = reconnect_initial_s
        self._down_since: float | None = None
        self._bad_at: collections.deque[float] = collections.deque()
        self._health = Health(False, "not started")
        self._fault = ""  # the reason of the last failure to open or read
        self.stats = {"taps": 0, "bad_reads": 0, "opens": 0, "failures": 0}
        self._tracebacks_logged = 0

    # -- what a subclass provides

    def _open(self) -> None:
        """Open the device; raise DeviceError or OSError with the reason when it cannot."""
        raise NotImplementedError

    def _read(self) -> bytes | None:
        """Read once, waiting at most about `poll_interval_s`: the UID of a card, or None.
        Raise BadRead for nonsense, ReaderGone (or OSError) when the device went away."""
        raise NotImplementedError

    def _release(self) -> None:
        """Let go of the device (idempotent, never raises)."""
        raise NotImplementedError

    def _describe(self) -> str:
        return self.name

    # -- the protocol

    def start(self, emit: Emit) -> None:
        """Open the device (so `health()` says at once whether it is there), then read on a
        thread of its own; taps are reported through `emit`. A device that cannot be opened
        now is retried by the thread."""
        if self._started:
            return
        self.attach(emit)
        self._open_if_due(self._clock())
        self._thread = threading.Thread(target=self._run, name=f"kiosk {self.name}", daemon=True)
        self._thread.start()

    def attach(self, emit: Emit) -> None:
        """Start without a thread: the caller runs `step()` itself (the tests do)."""
        self._emit = emit
        self._stop.clear()
        self._started = True
        self._retry_at, self._backoff = float("-inf"), self.reconnect_initial_s
        self._set_health(Health(False, "opening"))

    def close(self) -> None:
        """Stop the thread and release the device. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if self._opened:
            self._release()
            self._opened = False
        self._emit, self._started = _noop, False
        self._set_health(Health(False, "not started"))

    def health(self) -> Health:
        with self._lock:
            return self._health

    def __enter__(self) -> "PollingCardReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        h = self.health()
        state = "available" if h.available else f"unavailable ({h.reason})"
        return f"<{type(self).__name__} {self._describe()} {state} taps={self.stats['taps']}>"

    # -- the loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.step()
            except Exception as exc:  # a bug must not kill the reader silently: log, back off, go on
                if self._tracebacks_logged < 3:
                    self._tracebacks_logged += 1
                    log.exception("%s: unexpected error; reopening", self._describe())
                else:
                    log.error("%s: unexpected error again (%s); reopening", self._describe(), type(exc).__name__)
                self._lost("unexpected error (see the log)")
                delay = self._backoff
            if delay > 0:
                self._stop.wait(delay)

    def step(self) -> float:
        """Open the device if it is due, read once, report a new tap. Returns the seconds to
        wait before the next step."""
        now = self._clock()
        if not self._opened and not self._open_if_due(now):
            return max(self._retry_at - now, 0.0)
        try:
            uid = self._read()
        except BadRead as exc:
            self._bad_read(str(exc))
            return self._pause()
        except (DeviceError, OSError) as exc:
            self._lost(self._reason(exc))
            return max(self._retry_at - self._clock(), 0.0)
        now = self._clock()
        self._expire_bad_reads(now)
        if uid:
            self._bad_at.clear()
            if not self.health().available:
                self._set_health(Health(True))
            if self._debouncer.is_new_tap(uid, now):
                self.stats["taps"] += 1
                log.info("%s: card %s", self._describe(), mask(uid.hex().upper()))
                self._emit(CardRead(uid))
        return self._pause()

    def _open_if_due(self, now: float) -> bool:
        """Open the device unless the back-off says not yet; whether it is open now."""
        if now < self._retry_at:
            return False
        try:
            self._open()
        except (DeviceError, OSError) as exc:
            self._release()
            self._failed_to_open(self._reason(exc), now)
            return False
        self._opened = True
        self.stats["opens"] += 1
        self._backoff = self.reconnect_initial_s
        if self._down_since is not None and self.stats["opens"] > 1:
            log.warning("%s is back after %.0f s", self._describe(), now - self._down_since)
        else:
            log.info("%s ready", self._describe())
        self._down_since = None
        self._fault = ""
        self._set_health(Health(True))
        return True

    def _pause(self) -> float:
        return 0.0 if self.read_waits else self.poll_interval_s

    # -- failures

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, OSError) and not isinstance(exc, DeviceError):
            return describe_os_error(exc, self._describe())
        return str(exc) or type(exc).__name__

    def _failed_to_open(self, reason: str, now: float) -> None:
        self.stats["failures"] += 1
        if reason != self._fault:  # say it once, not at every retry
            log.warning("%s unavailable: %s (retrying by itself)", self._describe(), reason)
        self._fault = reason
        if self._down_since is None:
            self._down_since = now
        self._set_health(Health(False, reason))
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, self.reconnect_max_s)

    def _lost(self, reason: str) -> None:
        self._release()
        self._opened = False
        self._fault = ""
        self._failed_to_open(reason, self._clock())

    def _bad_read(self, reason: str) -> None:
        now = self._clock()
        self.stats["bad_reads"] += 1
        self._expire_bad_reads(now)
        self._bad_at.append(now)
        count = len(self._bad_at)
        total = self.stats["bad_reads"]
        if count == self.bad_reads_limit:
            message = (f"keeps returning unreadable data ({count} bad reads in "
                       f"{self.bad_reads_window_s:g} s: {reason})")
            log.error("%s %s", self._describe(), message)
            self._set_health(Health(False, message))
        elif count == 1 or total % 100 == 0:
            log.warning("%s: unreadable read (%s); %d so far", self._describe(), reason, total)

    def _expire_bad_reads(self, now: float) -> None:
        while self._bad_at and now - self._bad_at[0] > self.bad_reads_window_s:
            self._bad_at.popleft()
        if not self._bad_at and self._opened and not self.health().available \
                and self.health().reason.startswith("keeps returning"):
            self._set_health(Health(True))

    def _set_health(self, health: Health) -> None:
        with self._lock:
            self._health = health
