"""SIP2 round trips per second over loopback: the kiosk's client against the floor a socket allows.

Three figures, measured in the same run on the same request (17 item information, with AY/AZ):

* echo floor: a minimal framed request/response client (one sendall, recv to CR) against a
  thread that reads to CR and writes back canned reply bytes (the demo ILS's real 18 frame, one
  copy per AY digit);
* client → canned: the SIP2 client against that same canned server, so the difference from the
  floor is the client's own cost (encode, checksums, decode, parse into an ItemInfo, and its
  check that an idle connection is still there);
* client → demo ILS: the SIP2 client against the demo ILS (its SQLite lookups count too).

Why the floor is a fair one: both ends frame (each reads up to the CR, as any SIP2 peer must);
the bytes are the same both ways (the client's own encoded 17s, the demo ILS's own 18s); the
sockets have the same options as the client's (TCP_NODELAY, and the kernel's receive and send
timeouts the client uses on plain TCP, which cost nothing per call); and each round trip is one
send and one recv at each end, as for any request/response client over a thread-per-connection
server like the demo ILS. What the floor does not do is exactly what the measured path is for:
encoding, checksums, decoding and, in the client, one poll() before each request that finds a
connection the server dropped while idle (so a checkout never goes out on a dead one).

Each ratio is a round trip's wall time divided by the floor's. Target: ≤ 2×. With the servers in
threads (the default) the CPU time per round trip (both ends: the whole process) is shown too:
unlike wall time on a busy machine, it does not move with what else runs there. With
`--separate-process` the servers run in a process of their own (no interpreter lock shared).

    python bench/sip2_roundtrip.py [--requests N] [--rounds R] [--separate-process]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.clock import SystemClock  # noqa: E402
from sync.demo_ils import SIP_PASSWORD, SIP_USER, DemoIls, seed_demo  # noqa: E402
from sync.sip2.client import Client, ClientSettings, _kernel_timeouts  # noqa: E402
from sync.sip2.codec import decode, encode, make  # noqa: E402

ITEM = "EM0000000001"
RESPONSE_TIMEOUT_S = ClientSettings("127.0.0.1", 1).response_timeout_s


class CannedServer:
    """Reads frames to CR and answers each with fixed bytes chosen by the request's AY digit
    (a 93 login gets a canned 94). The least a SIP2 server could possibly do."""

    def __init__(self, replies: dict[int, bytes], login_reply: bytes) -> None:
        self._replies = replies
        self._login = login_reply
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        replies, login = self._replies, self._login
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                while b"\r" in buffer:
                    frame, _, buffer = buffer.partition(b"\r")
                    if frame[:2] == b"93":
                        conn.sendall(login)
                    else:  # ...AY<d>AZxxxx
                        conn.sendall(replies[frame[-7] - 48])
        except OSError:
            return

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


def raw_round_trips(port: int, requests: list[bytes], n: int) -> tuple[float, float]:
    """Seconds per round trip of a minimal framed client (sendall, recv until CR): wall, CPU."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if _kernel_timeouts(sock, RESPONSE_TIMEOUT_S) is None:  # the client's own socket options
        sock.settimeout(RESPONSE_TIMEOUT_S)
    try:
        count = len(requests)
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            sock.sendall(requests[i % count])
            data = sock.recv(65536)
            while not data.endswith(b"\r"):
                data += sock.recv(65536)
        return (time.perf_counter() - started) / n, (time.process_time() - cpu) / n
    finally:
        sock.close()


def client_round_trips(client: Client, n: int) -> tuple[float, float]:
    """Seconds per item_information round trip of the SIP2 client: wall, CPU."""
    client.item_information(ITEM)  # connect and log in outside the timing
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        client.item_information(ITEM)
    return (time.perf_counter() - started) / n, (time.process_time() - cpu) / n


def start_servers(db_path: str) -> tuple[tuple[str, int, int, list[bytes]], Callable[[], None]]:
    """The demo ILS and the canned server: (host, ILS port, canned port, requests), and a stop."""
    clock = SystemClock()
    ils = DemoIls(db_path, clock=clock).start()
    host, port = ils.address
    requests = [encode(_item_request(clock), sequence=d) for d in range(10)]
    probe = socket.create_connection((host, port))
    probe.sendall(encode(make("login", [("CN", SIP_USER), ("CO", SIP_PASSWORD), ("CP", "KIOSK-1")],
                              uid_algorithm="0", pwd_algorithm="0"), sequence=0))
    login_reply = probe.recv(4096)
    replies = {}
    for d, frame in enumerate(requests):  # the demo ILS's real reply to that request, per AY digit
        probe.sendall(frame)
        data = probe.recv(65536)
        while not data.endswith(b"\r"):
            data += probe.recv(65536)
        replies[d] = data
    probe.close()
    assert decode(replies[3]).sequence == 3 and decode(replies[3]).command == "18"
    canned = CannedServer(replies, login_reply)

    def stop() -> None:
        canned.close()
        ils.close()

    return (host, port, canned.port, requests), stop


def serve(db_path: str, pipe: Any) -> None:
    """`--separate-process`: the servers in a process of their own, until the parent says stop
    (as a real library system is: no interpreter lock shared with the client)."""
    found, stop = start_servers(db_path)
    pipe.send(found)
    pipe.recv()
    stop()


def _item_request(clock: SystemClock):
    return make("item_information", [("AO", "111101"), ("AB", ITEM), ("AC", "")], transaction_date=clock.now())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="round trips per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="measurements of each kind; the median is shown")
    parser.add_argument("--separate-process", action="store_true",
                        help="run the servers in another process instead of threads of this one")
    args = parser.parse_args()

    clock = SystemClock()
    tmp = Path(tempfile.mkdtemp(prefix="sip2-bench-"))
    stop: Callable[[], None] | None = None
    try:
        seed_demo(tmp / "ils.db", clock)
        if args.separate_process:
            context = multiprocessing.get_context("spawn")
            ours, theirs = context.Pipe()
            process = context.Process(target=serve, args=(str(tmp / "ils.db"), theirs), daemon=True)
            process.start()
            host, ils_port, canned_port, requests = ours.recv()
            stop = lambda: (ours.send("stop"), process.join(10))  # noqa: E731
        else:
            (host, ils_port, canned_port, requests), stop = start_servers(str(tmp / "ils.db"))

        def settings(port: int) -> ClientSettings:
            return ClientSettings(host, port, user=SIP_USER, password=SIP_PASSWORD, institution="111101",
                                  location="KIOSK-1", keepalive_s=0)

        figures: dict[str, list[tuple[float, float]]] = {"echo": [], "canned": [], "ils": []}
        with Client(settings(canned_port), clock=clock) as to_canned, \
                Client(settings(ils_port), clock=clock) as to_ils:
            for _ in range(args.rounds):  # interleaved, so that drift hits all three alike
                figures["echo"].append(raw_round_trips(canned_port, requests, args.requests))
                figures["canned"].append(client_round_trips(to_canned, args.requests))
                figures["ils"].append(client_round_trips(to_ils, args.requests))
    finally:
        if stop is not None:
            stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def median(kind: str, which: int) -> float:
        return statistics.median(figure[which] for figure in figures[kind])

    floor, canned, ils = median("echo", 0), median("canned", 0), median("ils", 0)
    where = "in another process" if args.separate_process else "in threads of this process"
    print(f"SIP2 round trips over loopback, 17 item information → 18, servers {where} "
          f"({args.requests} × {args.rounds}, median)")
    cpu_floor = median("echo", 1)
    for kind, per, label in (("echo", floor, "echo floor (framed socket, canned 18)"),
                             ("canned", canned, "client → canned 18 server"), ("ils", ils, "client → demo ILS")):
        line = f"  {label:38s} {1 / per:8.0f} /s  {per * 1e6:7.1f} µs   {per / floor:4.2f}× the floor"
        if not args.separate_process:  # the servers' threads are this process's too
            cpu = median(kind, 1)
            line += f"   CPU {cpu * 1e6:6.1f} µs ({cpu / cpu_floor:4.2f}×)"
        print(line)
    print(f"  the client's own cost: {(canned - floor) * 1e6:.1f} µs a request; "
          f"the demo ILS's handling: {(ils - canned) * 1e6:.1f} µs a request")


if __name__ == "__main__":
    main()
