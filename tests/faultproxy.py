"""A fault-injecting TCP proxy on loopback, between a SIP2 client and a SIP2 server.

The network between a kiosk in a subway station and its library breaks in ways a server's own
faults cannot show: a reply cut mid-frame, a reply that never comes on a connection that stays
open, bytes that are not SIP2, a checksum digit flipped on the way, a TCP reset, a port that
accepts and hangs up at once, a slow link. The proxy does each of these, switched at run time:

    with FaultProxy(ils.address) as proxy:           # client connects to proxy.address
        proxy.arm("hang")                            # every reply from now on is swallowed
        proxy.arm("cut", commands={"11"}, times=1)   # only the next checkout's reply is cut
        proxy.arm("garbage", on="request")           # the server gets garbage instead of requests
        proxy.arm("delay", on="request", delay_s=60)  # held back until proxy.release()
        proxy.clear()                                # pass everything through again

A fault applies to a reply (`on="reply"`, the default: the server has acted on the request) or
to a request (`on="request"`: the server never sees it whole). `commands` limits it to requests
with those two-character SIP2 commands (a reply is matched to the request it answers); `times`
to that many uses. `applied` lists what was done, so a test can tell a fault really happened.
"""

from __future__ import annotations

import collections
import selectors
import socket
import struct
import threading
from dataclasses import dataclass

MODES = ("pass", "cut", "hang", "garbage", "checksum", "reset", "accept-close", "delay")
GARBAGE = b"\xff\xfe\x00\x1b[2J not SIP2 at all \x80\x81\r"
_READ = 64 * 1024


@dataclass
class _Fault:
    mode: str
    on: str
    commands: frozenset[str] | None
    times: int | None
    delay_s: float


def flip_checksum(frame: bytes) -> bytes:
    """The same frame with one digit of its AZ checksum changed (the last byte, if it has none)."""
    body = frame.rstrip(b"\r\n")
    ending = frame[len(body):]
    if len(body) >= 6 and body[-6:-4] == b"AZ":
        digit = body[-1:]
        other = b"0" if digit != b"0" else b"1"
        return body[:-1] + other + ending
    if not body:
        return frame
    return body[:-1] + bytes([body[-1] ^ 0x01]) + ending


def _split(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole frames (each with its CR, and the LF of a CRLF) and what is left over."""
    frames = []
    while True:
        end = buffer.find(b"\r")
        if end < 0:
            return frames, buffer
        if end + 1 == len(buffer) or buffer[end + 1:end + 2] != b"\n":
            cut = end + 1
        else:
            cut = end + 2
        frames.append(buffer[:cut])
        buffer = buffer[cut:]


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and relays every connection to `upstream`.

    One thread accepts; each connection has one thread relaying both directions, frame by frame,
    so that a fault lands on whole SIP2 messages. `close()` is idempotent.
    """

    def __init__(self, upstream: tuple[str, int], *, delay_s: float = 0.5) -> None:
        self.upstream = upstream
        self.default_delay_s = delay_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)
        self._holding = 0  # frames held back by a delay right now
        self._fault: _Fault | None = None
        self._conns: set[_Relay] = set()
        self._closing = threading.Event()
        self.applied: list[tuple[str, str, str]] = []  # (on, mode, command)
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        fault = self._fault
        what = "pass" if fault is None else f"{fault.mode} on {fault.on}"
        return f"<FaultProxy {self.address[0]}:{self.address[1]} → {self.upstream[1]} {what}>"

    # -- switching faults

    def arm(self, mode: str, *, on: str = "reply", commands: set[str] | None = None, times: int | None = None,
            delay_s: float | None = None) -> None:
        """From now on, do `mode` to every matching reply (or request), `times` times at most.

        "accept-close" hangs up every open connection now and every new one as soon as it is
        accepted (a library system restarting, a firewall in the way).
        """
        if mode not in MODES:
            raise ValueError(f"no fault mode {mode!r}; the modes are {', '.join(MODES)}")
        if on not in ("reply", "request"):
            raise ValueError(f"a fault is on the 'reply' or the 'request', not {on!r}")
        fault = _Fault(mode, on, frozenset(commands) if commands else None, times,
                       self.default_delay_s if delay_s is None else delay_s)
        with self._lock:
            self._fault = None if mode == "pass" else fault
            conns = list(self._conns) if mode == "accept-close" else []
        for conn in conns:
            conn.hang_up()

    def clear(self) -> None:
        """Pass everything through again."""
        with self._lock:
            self._fault = None

    def take(self, on: str, command: str) -> _Fault | None:
        """The fault to apply to this request or reply now, if any (counting its uses)."""
        with self._lock:
            fault = self._fault
            if fault is None or fault.on != on or fault.mode == "accept-close":
                return None
            if fault.commands is not None and command not in fault.commands:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = None
            self.applied.append((on, fault.mode, command))
            return fault

    def count(self, mode: str | None = None) -> int:
        """How many times a fault (of `mode`) has been applied."""
        with self._lock:
            return sum(1 for _on, m, _c in self.applied if mode is None or m == mode)

    def quiet(self, timeout: float = 5.0) -> bool:
        """Wait until no delayed frame is still on its way (a late request may yet reach the
        server, a late reply the client); False if that takes longer than `timeout`."""
        with self._quiet:
            return self._quiet.wait_for(lambda: self._holding == 0, timeout)

    def release(self) -> None:
        """Let every frame held back by a delay go on its way now."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.wake.set()

    def _hold(self, step: int) -> None:
        with self._quiet:
            self._holding += step
            if not self._holding:
                self._quiet.notify_all()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    # -- running

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._listener.close()
        self._thread.join(timeout=2)
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.hang_up()
        for conn in conns:
            conn.join()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                fault = self._fault
            if fault is not None and fault.mode == "accept-close":
                with self._lock:
                    self.applied.append(("connect", "accept-close", ""))
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                _close(client)
                continue
            relay = _Relay(self, client, server)
            with self._lock:
                self._conns.add(relay)
            relay.start()

    def _gone(self, relay: _Relay) -> None:
        with self._lock:
            self._conns.discard(relay)


class _Relay:
    """One client connection and its upstream: frames relayed both ways, faults applied."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        for sock in (client, server):
            sock.setblocking(True)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending: collections.deque[str] = collections.deque()  # commands awaiting replies
        self.late = 0  # delayed requests sent on whose answers quiet() waits
        self.stopped = threading.Event()
        self.wake = threading.Event()  # ends a delay early: release() or hang_up()
        self.thread = threading.Thread(target=self._run, name="fault-proxy-relay", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join(timeout=2)

    def hang_up(self) -> None:
        """Wake the relay thread, which then closes both sockets itself (never under its feet)."""
        self.stopped.set()
        self.wake.set()
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.client, selectors.EVENT_READ, "request")
        selector.register(self.server, selectors.EVENT_READ, "reply")
        buffers = {"request": b"", "reply": b""}
        reset = False
        client_gone = False
        try:
            while not self.stopped.is_set():
                for key, _ in selector.select():
                    side = key.data
                    try:
                        data = key.fileobj.recv(_READ)
                    except OSError:
                        return
                    if not data:
                        if side == "request" and self.pending and not self.stopped.is_set():
                            # The client hung up, but the library still owes answers to requests
                            # it was sent: it acts on them all the same. Wait for those.
                            selector.unregister(self.client)
                            client_gone = True
                            continue
                        return
                    frames, buffers[side] = _split(buffers[side] + data)
                    for frame in frames:
                        outcome = self._relay(side, frame)
                        if outcome == "reset":
                            reset = True
                            return
                        if outcome == "close":
                            return
                    if client_gone and not self.pending:
                        return
        finally:
            selector.close()
            if reset:
                # SO_LINGER with a zero timeout: close() sends a RST instead of a FIN.
                try:
                    self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                self.client.close()
            else:
                _close(self.client)
            _close(self.server)
            if self.late:
                self.proxy._hold(-self.late)
                self.late = 0
            self.proxy._gone(self)

    def _relay(self, side: str, frame: bytes) -> str:
        """Pass one frame on, or do the fault to it: "ok", "close" or "reset"."""
        if side == "request":
            command = frame[:2].decode("ascii", "replace")
            target = self.server
        else:
            command = self.pending.popleft() if self.pending else ""
            target = self.client
            if self.late and not self.pending:  # every late request has been answered
                self.proxy._hold(-self.late)
                self.late = 0
        fault = self.proxy.take(side, command)
        mode = fault.mode if fault else "pass"
        if mode == "delay":
            self.proxy._hold(+1)
            try:
                self.wake.wait(fault.delay_s)
                self.wake.clear()
                if self.stopped.is_set():
                    return "close"
                if side == "request":
                    self.pending.append(command)
                    self.late += 1  # quiet() waits for the library's answer to it, too
                    self.proxy._hold(+1)
                return "ok" if _send(target, frame) else "close"
            finally:
                self.proxy._hold(-1)
        if mode == "hang":
            return "ok"  # swallowed; the connection stays open
        if mode == "reset":
            return "reset"
        if mode == "cut":
            keep = max(1, len(frame.rstrip(b"\r\n")) // 2)
            _send(target, frame[:keep])
            return "close"
        if mode == "garbage":
            frame = GARBAGE
        elif mode == "checksum":
            frame = flip_checksum(frame)
        if side == "request":
            self.pending.append(command)
        return "ok" if _send(target, frame) else "close"


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
