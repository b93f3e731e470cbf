"""The kiosk's SIP2 client: one connection to the library system, one request at a time.

The client never guesses about a loan. Either nothing happened at the library system
(`Sip2Unavailable`: no connection, a refused login, backing off, the connection was found dead
before the request went out) or the request went out and no trustworthy answer came back
(`OutcomeUnknown`: a timeout, a hang-up, garbage, checksums still bad after the bounded 97s).
After an unknown outcome the connection is closed, so that a late reply can never be taken for
the answer to the next request. A checkout is never resent blindly: only a server's own 96
("I did not act on that, send it again") makes the client resend.

Reconnecting is lazy and honours a capped exponential back-off with full jitter, read from the
injected clock: while waiting, calls fail at once instead of sleeping, so the UI never blocks on a
dead network for longer than one connect timeout.

Nothing here logs a password, a PIN, a patron or item id or a raw frame: only message names,
the server's address and reasons.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import random
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiosk.clock import Clock
from sync.sip2.codec import (
    DecodeError, Dialect, EncodeError, FrameError, FrameReader, Message, RequestEncoder, Sip2Error, decode, encode,
    format_date, make, next_sequence,
)
from sync.sip2.messages import SPECS, SUMMARY_POSITIONS
from sync.sip2.results import (
    AcsStatus, CheckinResult, CheckoutResult, ItemInfo, PatronInfo, PatronStatus, RenewResult,
)

log = logging.getLogger("kiosk.sip2")

_RECV_BYTES = 16 * 1024


def _kernel_timeouts(sock: Any, seconds: float) -> str | None:
    """Make a plain TCP socket blocking, bounded by the kernel's own receive and send timeouts.

    Python's socket timeouts poll() before every send and every recv: two system calls more per
    round trip, each with its deadline arithmetic. SO_RCVTIMEO/SO_SNDTIMEO give the same bound
    with one call each. Returns the struct timeval layout the kernel took ("@ll", or "@qq" on
    32-bit systems with a 64-bit time_t), or None with the socket left as it was when the
    platform refuses or reads the value back differently: the caller keeps Python's timeout.
    TLS sockets always keep Python's timeout (OpenSSL retries a read the kernel timed out).
    """
    if sock.__class__ is not socket.socket:
        return None
    try:
        for layout in ("@ll", "@qq"):
            if _kernel_timeout(sock, socket.SO_RCVTIMEO, layout, seconds) \
                    and _kernel_timeout(sock, socket.SO_SNDTIMEO, layout, seconds):
                sock.settimeout(None)  # blocking: recv and send go straight to the kernel
                return layout
    except (OSError, AttributeError):
        pass
    return None


def _kernel_timeout(sock: Any, option: int, layout: str, seconds: float) -> bool:
    """Set one kernel socket timeout and check that it reads back the same (give or take the
    kernel's clock tick, to which it rounds up)."""
    whole = int(seconds)
    micros = min(999_999, max(0, round((seconds - whole) * 1_000_000)))
    if whole <= 0 and micros == 0:
        micros = 1  # a zero timeval means "wait for ever"
    try:
        value = struct.pack(layout, whole, micros)
        sock.setsockopt(socket.SOL_SOCKET, option, value)
        back_whole, back_micros = struct.unpack(layout, sock.getsockopt(socket.SOL_SOCKET, option, len(value)))
    except (OSError, struct.error):
        return False
    return abs(back_whole + back_micros / 1_000_000 - (whole + micros / 1_000_000)) <= 0.02


class Sip2Unavailable(Sip2Error, ConnectionError):
    """The library system could not be asked: nothing happened there.

    Could not connect, TLS or login failed, the client is backing off after a failure, or the
    connection was lost before the request was sent.
    """


class LoginRefused(Sip2Unavailable):
    """The server answered the 93 login with "not ok": the account or password is wrong."""


class OutcomeUnknown(Sip2Unavailable):
    """The request was sent but no valid answer came: it may or may not have taken effect.

    Settle it with a 17 item information before doing anything else about that item.
    """


@dataclass(frozen=True)
class ClientSettings:
    """Where the library system is and how to talk to it. Secrets are masked in the repr."""

    host: str
    port: int
    user: str = ""  # the 93 login is skipped when empty
    password: str = field(default="", repr=False)
    location: str = ""  # CP in the login, AP in a checkin (FOLIO: the service point id)
    institution: str = ""  # AO
    terminal_password: str = field(default="", repr=False)  # AC
    send_patron_pin: bool = True  # AD in 23/63/11/29/35 when a PIN is given
    dialect: Dialect = Dialect()
    connect_timeout_s: float = 5.0
    response_timeout_s: float = 10.0
    keepalive_s: float = 240.0  # a 99 after this much idle time; 0 = never
    resend_requests: int = 3  # 97s on a bad checksum and resends on a 96, per request
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    tls: bool = False
    ca_file: str = ""  # empty: the system's trusted CAs
    cert_file: str = ""  # a client certificate, when the server asks for one
    key_file: str = ""
    check_hostname: bool = True
    language: str = "000"  # 23/63 language (000 unknown, 001 English, ...)

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            problems.append(f"port must be 1-65535, not {self.port!r}")
        for name in ("connect_timeout_s", "response_timeout_s", "backoff_initial_s", "backoff_max_s"):
            if not 0 < getattr(self, name) < 1e9:  # inf and nan too: the kernel takes whole seconds
                problems.append(f"{name} must be positive and finite, not {getattr(self, name)!r}")
        if not self.keepalive_s >= 0:
            problems.append(f"keepalive_s must be 0 (never) or positive, not {self.keepalive_s!r}")
        if not isinstance(self.resend_requests, int) or self.resend_requests < 0:
            problems.append(f"resend_requests must be 0 or more, not {self.resend_requests!r}")
        if not (len(self.language) == 3 and self.language.isascii() and self.language.isdigit()):
            problems.append(f"language must be three digits such as '000', not {self.language!r}")
        if self.key_file and not self.cert_file:
            problems.append("key_file is set but cert_file is not")
        if problems:
            raise ValueError("SIP2 client settings: " + "; ".join(problems))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class _NoAnswer(Exception):
    """Internal: reading a reply failed (the reason is safe to show)."""


class Client:
    """A SIP2 client: connect and log in lazily, one request at a time, typed results.

    Thread-safe: one lock serialises requests, so there is never more than one outstanding on the
    connection. `clock` drives idle time and back-off (`monotonic()`) and transaction dates
    (`now()`); socket timeouts are real time.
    """

    def __init__(self, settings: ClientSettings, *, clock: Clock, rng: random.Random | None = None,
                 connect: Callable[..., Any] = socket.create_connection) -> None:
        self.settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._connect = connect
        self._dialect = settings.dialect
        self._lock = threading.Lock()
        self._sock: Any = None
        self._timeval: str | None = None  # set: the socket is blocking with kernel timeouts
        self._poller: Any = None  # select.poll for the idle check, registered with _polled
        self._polled: Any = None
        self._reader = FrameReader(settings.dialect.max_frame)
        self._frames: deque[bytes] = deque()
        self._sequence = 0
        self._encoders = {name: RequestEncoder(name, codes, settings.dialect) for name, codes in _REQUESTS.items()}
        self._ssl_context: ssl.SSLContext | None = None
        self._failures = 0
        self._last_activity = clock.monotonic()
        self.last_error = ""
        self.next_attempt_at: float | None = None  # monotonic; None when not backing off

    # -- state

    @property
    def connected(self) -> bool:
        return self._sock is not None

    @property
    def sequence(self) -> int:
        """The AY the next request will carry."""
        return self._sequence

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        if self.next_attempt_at is not None:
            state += f" backing-off-until={self.next_attempt_at:.1f}"
        return f"<sip2.Client {self.settings.address} {state}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection

    def connect(self) -> None:
        """Connect and log in now if not connected (honouring the back-off). Raises Sip2Unavailable."""
        with self._lock:
            self._ensure_connected()

    def close(self) -> None:
        """Close the connection (idempotent). The next request reconnects.

        A request in flight in another thread is cut short (it ends in OutcomeUnknown) rather
        than waited for: shutting down must not hang on a silent server.
        """
        if not self._lock.acquire(blocking=False):
            sock = self._sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
                except OSError:
                    pass
            self._lock.acquire()
        try:
            self._drop()
        finally:
            self._lock.release()

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        self._poller = self._polled = self._timeval = None
        self._reader.clear()
        self._frames.clear()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
            log.info("SIP2 connection to %s closed", self.settings.address)

    def _ensure_connected(self) -> Any:
        if self._sock is not None:
            return self._sock
        now = self._clock.monotonic()
        if self.next_attempt_at is not None and now < self.next_attempt_at:
            raise Sip2Unavailable(f"the library system at {self.settings.address} is unavailable "
                                  f"({self.last_error}); next attempt in {self.next_attempt_at - now:.1f} s")
        self._last_activity = now
        try:
            self._sock = self._open()
            if self.settings.user:
                self._login()
        except Sip2Unavailable as exc:
            self._drop()
            self._failed(str(exc))
            raise
        self._failures = 0
        self.next_attempt_at = None
        self.last_error = ""
        log.info("SIP2 connected to %s%s", self.settings.address, " (TLS)" if self.settings.tls else "")
        return self._sock

    def _failed(self, reason: str) -> None:
        """Record a failed connection attempt and schedule the next one (full jitter)."""
        self._failures += 1
        s = self.settings
        ceiling = min(s.backoff_max_s, s.backoff_initial_s * 2.0 ** min(self._failures - 1, 64))
        delay = self._rng.uniform(0.0, ceiling)
        self.next_attempt_at = self._clock.monotonic() + delay
        self.last_error = reason
        log.warning("SIP2 %s; retrying in %.1f s at the earliest", reason, delay)

    def _open(self) -> Any:
        s = self.settings
        context = self._tls_context() if s.tls else None  # a bad file is named even with the network down
        try:
            sock = self._connect((s.host, s.port), timeout=s.connect_timeout_s)
        except (OSError, ValueError) as exc:  # ValueError: a host name IDNA cannot encode
            raise Sip2Unavailable(f"cannot connect to the library system at {s.address}: {_why(exc)}") from None
        try:
            # SIP2 is small request/response frames: Nagle's algorithm would only add latency.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        if context is not None:
            try:
                sock = context.wrap_socket(sock, server_hostname=s.host)
            except ssl.SSLCertVerificationError as exc:
                sock.close()
                raise Sip2Unavailable(f"TLS to {s.address} refused: the server's certificate is not trusted "
                                      f"({exc.verify_message or exc.reason}); check sip2 ca_file"
                                      + (" and the host name" if s.check_hostname else "")) from None
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise Sip2Unavailable(f"TLS handshake with {s.address} failed: {_why(exc)}") from None
        try:
            self._timeval = _kernel_timeouts(sock, s.response_timeout_s)
            if self._timeval is None:
                sock.settimeout(s.response_timeout_s)
        except OSError as exc:
            sock.close()
            raise Sip2Unavailable(f"the connection to {s.address} failed at once: {_why(exc)}") from None
        self._reader.clear()
        self._frames.clear()
        return sock

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            s = self.settings
            try:
                context = ssl.create_default_context(cafile=s.ca_file or None)
                if s.cert_file:
                    context.load_cert_chain(s.cert_file, s.key_file or None)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise Sip2Unavailable(f"cannot load the TLS files (ca_file, cert_file, key_file): {_why(exc)}") \
                    from None
            context.check_hostname = s.check_hostname
            self._ssl_context = context
        return self._ssl_context

    def _login(self) -> None:
        s = self.settings
        request = make("login", [("CN", s.user), ("CO", s.password), ("CP", s.location)],
                       uid_algorithm="0", pwd_algorithm="0")
        try:
            reply = self._send_and_receive(request, fresh=True)
        except OutcomeUnknown as exc:
            # A login changes nothing at the library: a lost answer just means "unavailable".
            raise Sip2Unavailable(str(exc).replace("; it may or may not have taken effect", "")) from None
        if reply.fixed.get("ok") != "1":
            raise LoginRefused(f"the library system at {s.address} refused the login of SIP user {s.user!r}; "
                               f"check sip2 user and the password in the secrets file")

    # -- the exchange

    def exchange(self, message: Message) -> Message:
        """Send one request and return its reply, connecting and logging in first if needed.

        Raises Sip2Unavailable when nothing reached the server (including while backing off:
        it fails at once, never sleeps), OutcomeUnknown when the request went out but no valid
        reply came (the connection is then closed), EncodeError for a malformed request.
        """
        spec = SPECS.get(message.command)
        if spec is None or spec.reply is None or message.command == "93":
            raise EncodeError(f"{message.name} is not a request the client sends with exchange()")
        with self._lock:
            return self._exchange(message)

    def _request(self, encoder: RequestEncoder, fixed: tuple[str, ...], values: tuple[str | None, ...]) -> Message:
        """exchange() for the client's own requests, encoded by their compiled encoder."""
        with self._lock:
            return self._exchange((encoder, fixed, values))

    def _exchange(self, message: Message | tuple) -> Message:
        """`message`: a Message, or (RequestEncoder, fixed, values) for the client's own requests."""
        for _ in range(2):  # a second go only when the connection was found dead before sending
            sock = self._sock
            fresh = sock is None
            if fresh:
                sock = self._ensure_connected()
            elif self._peer_gone(sock):
                log.info("SIP2 server closed the idle connection; reconnecting")
                self._drop()
                continue
            try:
                return self._send_and_receive(message, fresh=fresh)
            except _Stale:
                continue
        raise Sip2Unavailable(f"the connection to {self.settings.address} keeps dropping before a request "
                              f"can be sent")

    def _send_and_receive(self, message: Message | tuple, *, fresh: bool) -> Message:
        """One request on the open connection: send, read, 97 on a bad checksum, resend on 96."""
        sock = self._sock
        sequence = self._sequence
        if message.__class__ is tuple:
            encoder, fixed, values = message
            command, name = encoder.command, encoder.name
            frame = encoder.encode(fixed, values, sequence)
        else:
            command, name = message.command, message.name
            frame = encode(message, self._dialect, sequence=sequence)
        settings = self.settings
        self._last_activity = self._clock.monotonic()
        deadline = time.monotonic() + settings.response_timeout_s
        try:
            sock.sendall(frame)
        except OSError as exc:
            # A frame this small goes out in one piece or not at all, and the server acts only on
            # a complete frame: nothing happened there.
            self._drop()
            if not fresh:
                raise _Stale() from None
            raise Sip2Unavailable(f"{name}: the connection to {self.settings.address} was lost before "
                                  f"the request went out ({_why(exc)})") from None
        self._sequence = next_sequence(sequence)
        expected = _REPLIES[command]
        dialect = self._dialect
        detect = dialect.error_detection
        budget = settings.resend_requests
        asked_repeat = False
        while True:
            try:
                reply = decode(self._read_frame(sock, deadline), dialect)
            except (_NoAnswer, DecodeError) as exc:
                raise self._unknown(name, str(exc)) from None
            if detect and reply.checksum_ok is False:
                if budget <= 0:
                    raise self._unknown(name, f"the reply's checksum was still wrong after "
                                              f"{self.settings.resend_requests} repeat request(s)")
                budget -= 1
                asked_repeat = True
                log.info("SIP2 %s: bad checksum in the reply; asking for a repeat (97)", name)
                if not self._send_quietly(sock, encode(_REPEAT, self._dialect)):
                    raise self._unknown(name, "the connection was lost while asking for a repeat")
                deadline = time.monotonic() + self.settings.response_timeout_s
                continue
            if reply.command == "96":
                if asked_repeat:
                    # The server did not understand our 97; the request itself may have been acted on.
                    raise self._unknown(name, "the server answered the repeat request with a resend request")
                if budget <= 0:
                    self._drop()
                    raise Sip2Unavailable(f"{name}: the server kept asking for a resend (96) "
                                          f"{self.settings.resend_requests + 1} time(s); it did not act on it")
                budget -= 1
                log.info("SIP2 %s: the server asked for a resend (96)", name)
                if not self._send_quietly(sock, frame):
                    self._drop()
                    raise Sip2Unavailable(f"{name}: the connection was lost before the resend went out")
                deadline = time.monotonic() + self.settings.response_timeout_s
                continue
            if reply.command != expected:
                raise self._unknown(name, f"the server answered with {reply.name} ({reply.command}) "
                                          f"instead of {SPECS[expected].name} ({expected})")
            if detect and reply.sequence is not None and reply.sequence != sequence:
                raise self._unknown(name, f"the reply carries sequence number {reply.sequence}, "
                                          f"not {sequence}")
            if self._frames or self._reader._buffer:
                if command == "93":
                    # After a login (which changes nothing at the library) whatever else came
                    # answers nothing the kiosk asked: let it go, keep the connection.
                    log.info("SIP2 login: the server sent more than one reply; the rest is ignored")
                    self._frames.clear()
                    self._reader.clear()
                else:
                    # More than one reply to one request: whatever follows could be taken for
                    # the next request's answer, so start the next request on a new connection.
                    log.warning("SIP2 %s: the server sent more than one reply; reconnecting", name)
                    self._drop()
            self._last_activity = self._clock.monotonic()
            if _debug():
                log.debug("SIP2 %s (AY%d) answered with %s", name, sequence, reply.name)
            return reply

    def _unknown(self, name: str, reason: str) -> OutcomeUnknown:
        self._drop()
        log.warning("SIP2 %s: no valid answer from %s (%s)", name, self.settings.address, reason)
        return OutcomeUnknown(f"{name}: no valid answer from the library system ({reason}); "
                              f"it may or may not have taken effect")

    def _send_quietly(self, sock: Any, data: bytes) -> bool:
        try:
            sock.sendall(data)
        except OSError:
            return False
        return True

    def _read_frame(self, sock: Any, deadline: float) -> bytes:
        """The next frame before `deadline` (time.monotonic; one deadline for the whole frame, so
        a trickling server cannot stretch it)."""
        if self._frames:
            return self._frames.popleft()
        # The socket's timeout is the full response timeout between requests: the first recv
        # needs no timeout call (this is the hot path); later ones get what is left.
        try:
            data = sock.recv(_RECV_BYTES)
        except OSError as exc:
            raise self._no_answer(exc) from None
        reader = self._reader
        if data.__class__ is bytes and not reader._buffer and not reader._skipping \
                and data.find(b"\r") == len(data) - 1 and len(data) > 1 and data[0] != 10 and data[0] != 0 \
                and len(data) <= reader.max_frame + 1:
            return data[:-1]  # the usual read: exactly one whole frame (what feed() would make of it)
        frames: list[bytes] | None = []
        if data:
            try:
                frames = reader.feed(data)
            except FrameError:
                frames = None
            if frames is not None and len(frames) == 1:  # one whole frame, after a buffered part
                return frames[0]
        return self._read_more(sock, deadline, data, frames)

    def _recv(self, sock: Any) -> bytes:
        try:
            return sock.recv(_RECV_BYTES)
        except OSError as exc:
            raise self._no_answer(exc) from None

    def _no_answer(self, exc: OSError) -> _NoAnswer:
        if isinstance(exc, (socket.timeout, ssl.SSLWantReadError, BlockingIOError)):
            # BlockingIOError: the kernel's SO_RCVTIMEO ran out (EAGAIN)
            return _NoAnswer(f"no answer within {self.settings.response_timeout_s:g} s")
        return _NoAnswer(f"the connection was lost: {_why(exc)}")

    def _read_more(self, sock: Any, deadline: float, data: bytes, frames: list[bytes] | None) -> bytes:
        """_read_frame after its first recv: `data` is what it got, `frames` what the reader made
        of it (None: the reader refused it)."""
        timeout = self.settings.response_timeout_s
        first = True
        try:
            while True:
                if not first:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _NoAnswer(f"no answer within {timeout:g} s")
                    self._recv_timeout(sock, remaining)
                    data = self._recv(sock)
                if not data:
                    raise _NoAnswer("the server closed the connection")
                if not first:
                    try:
                        frames = self._reader.feed(data)
                    except FrameError:
                        frames = None
                if frames is None:
                    raise _NoAnswer(f"the server sent more than {self._reader.max_frame} bytes without "
                                    f"a frame terminator")
                if frames:
                    self._frames.extend(frames)
                    return self._frames.popleft()
                first = False
        finally:
            if not first:
                try:
                    self._recv_timeout(sock, timeout)
                except OSError:
                    pass

    def _recv_timeout(self, sock: Any, seconds: float) -> None:
        if self._timeval is None:
            sock.settimeout(seconds)
        else:
            _kernel_timeout(sock, socket.SO_RCVTIMEO, self._timeval, seconds)

    def _peer_gone(self, sock: Any) -> bool:
        """Whether an idle connection is unusable: the server closed it, or sent something unasked.

        Checked before each request (one poll, no waiting) so that a connection the server
        dropped while idle is replaced before a checkout goes out, not after.
        """
        try:
            if self._poller is None or self._polled is not sock:
                # One poll object per connection: poll(0) costs half of a select() on a fresh list.
                self._poller = select.poll()
                self._poller.register(sock, select.POLLIN)
                self._polled = sock
            if not self._poller.poll(0):
                return False
        except (OSError, ValueError, TypeError, AttributeError):
            return True
        if self._timeval is not None:  # a plain blocking socket: read without waiting, in one call
            try:
                data = sock.recv(_RECV_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                return True
        else:
            try:
                sock.setblocking(False)
                data = sock.recv(_RECV_BYTES)
            except (ssl.SSLWantReadError, BlockingIOError):
                return False  # TLS housekeeping (session tickets), no application data
            except OSError:
                return True
            finally:
                try:
                    sock.settimeout(self.settings.response_timeout_s)
                except OSError:
                    pass
        # A CRLF server's LF can arrive after its CR: harmless. Anything else is unasked for.
        return not data or bool(data.strip(b"\n"))

    # -- requests

    def _now(self) -> dt.datetime:
        return self._clock.now()

    def _tz(self) -> dt.tzinfo | None:
        return self._clock.now().tzinfo

    def _fixed_date(self, when: dt.datetime | None) -> str:
        """A date the caller gave (or None, blank); anything else goes to make() to be refused there."""
        if when is None:
            return _BLANK_DATE
        return format_date(when) if isinstance(when, dt.datetime) else when

    def _pin(self, pin: str | None, verify: bool = False) -> str | None:
        """The PIN to send as AD: always when the request is to verify it, otherwise as configured."""
        return pin if pin is not None and (verify or self.settings.send_patron_pin) else None

    def sc_status(self) -> AcsStatus:
        """99 → 98: the server's status and what it supports."""
        reply = self._request(self._encoders["sc_status"], _SC_STATUS_FIXED, ())
        return AcsStatus.from_message(reply, self._tz())

    def patron_status(self, patron: str, pin: str | None = None, *, verify_pin: bool = False) -> PatronStatus:
        """23 → 24: is this a valid patron (BL), is the PIN right (CQ), what is blocked.
        `verify_pin`: send the PIN even when send_patron_pin is off (a login)."""
        s = self.settings
        now = self._clock.now()
        reply = self._request(self._encoders["patron_status"], (s.language, format_date(now)),
                              (s.institution, patron, s.terminal_password, self._pin(pin, verify_pin) or ""))
        return PatronStatus.from_message(reply, now.tzinfo)

    def patron_information(self, patron: str, pin: str | None = None, *, summary: str | None = None,
                           start: int = 1, end: int = 50, verify_pin: bool = False) -> PatronInfo:
        """63 → 64: counts, limits and, with `summary` ("charged", "overdue", "hold", "fine",
        "recall", "unavailable_hold"), that list's items `start`..`end`."""
        s = self.settings
        if summary is None:
            marks = _NO_SUMMARY
            first = last = None
        else:
            if summary not in SUMMARY_POSITIONS:
                raise ValueError(f"summary must be one of {sorted(SUMMARY_POSITIONS)}, not {summary!r}")
            position = SUMMARY_POSITIONS[summary]
            marks = " " * position + "Y" + " " * (9 - position)
            first, last = str(max(1, start)), str(max(start, end))
        now = self._clock.now()
        reply = self._request(self._encoders["patron_information"], (s.language, format_date(now), marks),
                              (s.institution, patron, s.terminal_password, self._pin(pin, verify_pin), first, last))
        return PatronInfo.from_message(reply, now.tzinfo)

    def checkout(self, patron: str, item: str, *, pin: str | None = None, no_block: bool = False,
                 transaction_date: dt.datetime | None = None, nb_due: dt.datetime | None = None,
                 fee_acknowledged: bool = False) -> CheckoutResult:
        """11 → 12: lend `item` to `patron`. With `no_block` (an offline replay), `transaction_date`
        is when it really happened and `nb_due` the due date the kiosk promised."""
        s = self.settings
        now = self._clock.now()
        reply = self._request(self._encoders["checkout"], (
            "N", _yes_no(no_block), self._fixed_date(transaction_date or now), self._fixed_date(nb_due),
        ), (s.institution, patron, item, s.terminal_password, self._pin(pin), "Y" if fee_acknowledged else None))
        return CheckoutResult.from_message(reply, now.tzinfo)

    def checkin(self, item: str, *, no_block: bool = False, transaction_date: dt.datetime | None = None,
                return_date: dt.datetime | None = None, location: str | None = None) -> CheckinResult:
        """09 → 10: take `item` back. `return_date` defaults to the transaction date; `location`
        (AP) to the settings' location."""
        s = self.settings
        now = self._clock.now()
        when = transaction_date or now
        reply = self._request(self._encoders["checkin"], (
            _yes_no(no_block), self._fixed_date(when), self._fixed_date(return_date or when),
        ), (s.location if location is None else location, s.institution, item, s.terminal_password))
        return CheckinResult.from_message(reply, now.tzinfo)

    def item_information(self, item: str) -> ItemInfo:
        """17 → 18: the item's title, circulation status and due date."""
        s = self.settings
        now = self._clock.now()
        reply = self._request(self._encoders["item_information"], (format_date(now),),
                              (s.institution, item, s.terminal_password))
        return ItemInfo.from_message(reply, now.tzinfo)

    def renew(self, patron: str, item: str, *, pin: str | None = None, no_block: bool = False,
              transaction_date: dt.datetime | None = None, nb_due: dt.datetime | None = None) -> RenewResult:
        """29 → 30: renew `patron`'s loan of `item`."""
        s = self.settings
        now = self._clock.now()
        reply = self._request(self._encoders["renew"], (
            "N", _yes_no(no_block), self._fixed_date(transaction_date or now), self._fixed_date(nb_due),
        ), (s.institution, patron, self._pin(pin), item, s.terminal_password))
        return RenewResult.from_message(reply, now.tzinfo)

    def end_session(self, patron: str, pin: str | None = None) -> bool:
        """35 → 36: the patron has logged out; True when the server confirms."""
        s = self.settings
        reply = self._request(self._encoders["end_patron_session"], (format_date(self._clock.now()),),
                              (s.institution, patron, s.terminal_password, self._pin(pin)))
        return reply.flag("end_session")

    def keep_alive(self) -> AcsStatus | None:
        """Send a 99 when the connection has been idle for `keepalive_s` (by the injected clock);
        otherwise, or while another request is in flight, return None. Raises Sip2Unavailable."""
        interval = self.settings.keepalive_s
        if interval <= 0 or self._clock.monotonic() - self._last_activity < interval:
            return None
        if not self._lock.acquire(blocking=False):
            return None  # a request is in flight: the connection is not idle
        try:
            if self._clock.monotonic() - self._last_activity < interval:
                return None
            log.debug("SIP2 keep-alive")
            reply = self._exchange(_SC_STATUS)
        finally:
            self._lock.release()
        return AcsStatus.from_message(reply, self._tz())

    def ping(self) -> tuple[AcsStatus, float]:
        """Connect and log in if needed, send a 99; the status and the round trip in seconds."""
        with self._lock:
            self._ensure_connected()
            started = time.perf_counter()
            reply = self._exchange(_SC_STATUS)
            elapsed = time.perf_counter() - started
        return AcsStatus.from_message(reply, self._tz()), elapsed


class _Stale(Exception):
    """Internal: the reused connection failed before the request went out; reconnect and retry."""


_REPLIES = {command: spec.reply for command, spec in SPECS.items()}
_debug = functools.partial(log.isEnabledFor, logging.DEBUG)
_REPEAT = make("97")
_SC_STATUS = make("sc_status", status_code="0", max_print_width="040", protocol_version="2.00")
_SC_STATUS_FIXED = ("0", "040", "2.00")
_NO_SUMMARY = " " * 10
_BLANK_DATE = format_date(None)

# The variable fields of each request the client sends, in the order they go out.
_REQUESTS: dict[str, tuple[str, ...]] = {
    "sc_status": (),
    "patron_status": ("AO", "AA", "AC", "AD"),
    "patron_information": ("AO", "AA", "AC", "AD", "BP", "BQ"),
    "checkout": ("AO", "AA", "AB", "AC", "AD", "BO"),
    "checkin": ("AP", "AO", "AB", "AC"),
    "item_information": ("AO", "AB", "AC"),
    "renew": ("AO", "AA", "AD", "AB", "AC"),
    "end_patron_session": ("AO", "AA", "AC", "AD"),
}


def _yes_no(flag: bool) -> str:
    # Not a bool (an int, say): make() converts it, or refuses it, exactly as before.
    return ("Y" if flag else "N") if flag.__class__ is bool else flag


def _why(exc: BaseException) -> str:
    """A short reason from a socket or TLS error, without addresses or data from the peer."""
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.__class__.__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return exc.__class__.__name__
