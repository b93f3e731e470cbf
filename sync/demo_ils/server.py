"""The demo ILS's TCP server: one thread per client connection, behaviour switches, faults.

Each connection gets its own SQLite connection and its own `Circulation`; each request is one
transaction. The server never trusts its input: a frame that does not decode, a bad checksum or
an oversized frame is answered 96 and the connection lives on; a message other than 93 before a
successful login closes the connection (as Koha does). Only message names are logged, never
frames, identifiers or passwords.
"""

from __future__ import annotations

import logging
import selectors
import signal
import socket
import threading
from pathlib import Path
from types import TracebackType

from kiosk.clock import Clock
from sync.demo_ils import db
from sync.demo_ils.behaviour import Behaviour, Faults
from sync.demo_ils.circulation import Circulation, Session
from sync.sip2.codec import DecodeError, FrameError, FrameReader, decode, encode, make

log = logging.getLogger("sync.demo_ils")

GARBAGE = b"\xff\xfe\x00\x1b[2J not SIP2 \x80\x81\r"  # the `garbage` fault: undecodable, but framed
_READ_SIZE = 64 * 1024


class _Connection:
    """One client: its socket, its session, the last reply (for 97)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = threading.Event()
        self.session = Session()
        self.last_reply: bytes | None = None
        self.thread: threading.Thread | None = None

    def close(self) -> None:
        """Wake the connection's thread (which closes the socket itself, so the descriptor is never
        reused under it)."""
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class DemoIls:
    """A SIP2 server on its own SQLite database, behaving like a real library system.

    `DemoIls(db_path, clock=...)` opens the database (creating an empty schema in a new file; use
    `seed_demo` for the demo library) and binds the port at once, so `address` is known before
    serving. Then either `start()` (a background thread; tests, `kiosk demo`) or `serve_forever()`
    (the foreground; `kiosk ils serve`). `behaviour` may be replaced and `faults` flipped while it
    runs. `close()` is idempotent and closes every connection; the server is a context manager.
    """

    def __init__(self, db_path: str | Path, *, clock: Clock, behaviour: Behaviour = Behaviour(),
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if not isinstance(behaviour, Behaviour):
            raise TypeError(f"behaviour must be a Behaviour, not {type(behaviour).__name__}")
        self.db_path = Path(db_path)
        self.clock = clock
        self.behaviour = behaviour
        self.faults = Faults()
        conn = db.connect(self.db_path)
        try:
            db.ensure_schema(conn, self.db_path)
        finally:
            conn.close()
        try:
            self._listener = socket.create_server((host, port), backlog=32)
        except OSError as exc:
            raise db.DemoIlsError(f"the demo ILS cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                  f"choose another port, or 0 for any free one") from None
        self._listener.setblocking(False)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[_Connection] = set()
        self._serving = False
        self._closed = False
        self._accept_thread: threading.Thread | None = None
        self.faults._listen_down(self._drop_connections)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving" if self._serving else "ready"
        return f"<DemoIls {self.address[0]}:{self.address[1]} {state} connections={self.connections}>"

    def __enter__(self) -> DemoIls:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def connections(self) -> int:
        """How many clients are connected now."""
        with self._lock:
            return len(self._connections)

    # -- running

    def start(self) -> DemoIls:
        """Serve on a background thread; returns self."""
        self._claim()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="demo-ils-accept", daemon=True)
        self._accept_thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until SIGTERM, Ctrl-C or close(); then close cleanly."""
        self._claim()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._stop())
        try:
            self._accept_loop()
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.close()

    def close(self) -> None:
        """Stop serving and close every connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop()
        thread = self._accept_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._listener.close()
        connections = self._drop_connections()
        for conn in connections:
            if conn.thread is not None and conn.thread is not threading.current_thread():
                conn.thread.join(timeout=2)
        self._wake_r.close()
        self._wake_w.close()

    def _claim(self) -> None:
        with self._lock:
            if self._closed:
                raise db.DemoIlsError("this demo ILS is closed; make a new one")
            if self._serving:
                raise db.DemoIlsError("this demo ILS is already serving")
            self._serving = True

    def _stop(self) -> None:
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # already woken, or closed

    def _drop_connections(self) -> list[_Connection]:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.close()
        return connections

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        log.info("demo ILS: listening on %s:%s", *self.address)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        self._wake_r.recv(4096)
                        continue
                    try:
                        sock, _peer = self._listener.accept()
                    except OSError:
                        continue  # the client gave up before we accepted
                    if self.faults.down or self._stopping.is_set():
                        _hang_up(sock)
                        continue
                    self._spawn(sock)
        finally:
            selector.close()
            log.info("demo ILS: stopped")

    def _spawn(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small replies, and split writes, go at once
        conn = _Connection(sock)
        conn.thread = threading.Thread(target=self._serve, args=(conn,), name="demo-ils-connection", daemon=True)
        with self._lock:
            self._connections.add(conn)
        conn.thread.start()

    # -- one connection

    def _serve(self, conn: _Connection) -> None:
        database = None
        try:
            database = db.connect(self.db_path)
            circulation = Circulation(database, self.clock)
            reader = FrameReader(self.behaviour.dialect.max_frame)
            while not conn.closed.is_set():
                try:
                    data = conn.sock.recv(_READ_SIZE)
                except OSError:
                    break
                if not data:
                    break  # the client hung up, perhaps mid-frame
                overflow = False
                try:
                    frames = reader.feed(data)
                except FrameError as exc:
                    frames, overflow = exc.frames, True
                for frame in frames:
                    if not self._handle(conn, circulation, frame):
                        return
                if overflow:
                    log.info("demo ILS: a frame over %d bytes, answered 96", reader.max_frame)
                    if not self._write(conn, _resend(self.behaviour, checksummed=False)):
                        return
        except Exception as exc:  # never let one client take the server down
            log.error("demo ILS: connection failed: %s", type(exc).__name__)
        finally:
            conn.close()
            conn.sock.close()
            if database is not None:
                database.close()
            with self._lock:
                self._connections.discard(conn)

    def _handle(self, conn: _Connection, circulation: Circulation, frame: bytes) -> bool:
        """Answer one frame, with the faults applied; False when the connection is to close."""
        faults = self.faults
        if faults.silent:
            return True
        held = faults.take("hold_next") if faults.hold_next is not None else None
        if held is not None:
            held.arrived.set()
            while not held._go.wait(0.05):  # sits on it until released (close() gives up)
                if self._stopping.is_set():
                    return False
        behaviour = self.behaviour  # one behaviour per request, even if it is being swapped
        try:
            reply = self._reply(conn, circulation, frame, behaviour)
        except Exception as exc:  # a bug or a database error: this request fails, the connection lives
            log.error("demo ILS: %s while answering a request; answered 96", type(exc).__name__)
            reply = _resend(behaviour, checksummed=_looks_checksummed(frame))
        if held is not None:
            held.carried_out.set()
        if reply is None:
            return False
        if faults.delay_s and (conn.closed.wait(faults.delay_s) or self._stopping.is_set()):
            return False
        # One-shot faults: a plain read first, and the locked take() only when one is armed.
        if faults.garbage and faults.take("garbage"):
            reply = GARBAGE
        elif faults.corrupt_checksum and _has_checksum(reply) and faults.take("corrupt_checksum"):
            reply = _corrupt(reply)
        return self._write(conn, reply)

    def _reply(self, conn: _Connection, circulation: Circulation, frame: bytes,
               behaviour: Behaviour) -> bytes | None:
        """The bytes that answer `frame`, or None to close the connection."""
        dialect = behaviour.dialect
        try:
            request = decode(frame, dialect)
        except DecodeError:
            log.info("demo ILS: a frame that does not decode, answered 96")
            conn.last_reply = _resend(behaviour, checksummed=_looks_checksummed(frame))
            return conn.last_reply
        mode = behaviour.error_detection
        detect = mode != "off" and request.checksum_ok is not None
        if mode != "off" and (request.checksum_ok is False or (mode == "required" and not detect)):
            log.info("demo ILS: %s with a %s checksum, answered 96", request.name,
                     "bad" if request.checksum_ok is False else "missing")
            conn.last_reply = _resend(behaviour, checksummed=True)
            return conn.last_reply
        if conn.session.account is None and request.command != "93":
            log.info("demo ILS: %s before login; connection closed", request.name)
            return None
        if request.command == "97":
            return conn.last_reply or _resend(behaviour, checksummed=detect)
        if not circulation.supports(request.command):
            log.info("demo ILS: unsupported %s, answered 96", request.name)
            conn.last_reply = _resend(behaviour, checksummed=detect)
            return conn.last_reply
        response = circulation.answer(request, behaviour, conn.session)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("demo ILS: %s -> %s", request.name, response.name)
        conn.last_reply = encode(response, dialect, sequence=request.sequence if detect else None,
                                 error_detection=detect)
        return conn.last_reply

    def _write(self, conn: _Connection, data: bytes) -> bool:
        """Send a reply the way the faults say; False when the connection is to close."""
        faults = self.faults
        drop = faults.take("drop_after") if faults.drop_after is not None else None
        piece = faults.split_writes
        if drop is not None:
            data = data[:drop]
        try:
            if piece:
                for start in range(0, len(data), piece):
                    conn.sock.sendall(data[start:start + piece])
            elif data:
                conn.sock.sendall(data)
        except OSError:
            return False
        if drop is not None:
            log.info("demo ILS: reply cut after %d bytes (fault), connection closed", len(data))
            return False
        return True


def _resend(behaviour: Behaviour, *, checksummed: bool) -> bytes:
    """A 96 (please resend), with AZ when error detection is on for this exchange."""
    detect = behaviour.error_detection == "required" or (behaviour.error_detection == "per-message" and checksummed)
    return encode(make("96"), behaviour.dialect, error_detection=detect)


def _looks_checksummed(frame: bytes) -> bool:
    end = frame.rstrip(b"\r\n\t ")
    return len(end) >= 6 and end[-6:-4] == b"AZ"


def _has_checksum(reply: bytes) -> bool:
    return _looks_checksummed(reply)


def _corrupt(reply: bytes) -> bytes:
    """The same reply with a wrong AZ."""
    body = reply.rstrip(b"\r\n")
    ending = reply[len(body):]
    wrong = (int(body[-4:], 16) + 1) & 0xFFFF
    return body[:-4] + f"{wrong:04X}".encode("ascii") + ending


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
