"""Draining the outbox into the demo ILS over loopback, beside the SIP2 round-trip floor.

A kiosk that was offline for days comes back with thousands of queued loans and returns. This
queues N events in a kiosk store on disk (WAL, synchronous=FULL): N/2 checkouts over distinct
books and members, then the N/2 checkins of the same books, into a demo ILS seeded with enough
books and members (the bench adds them to its database; the demo ILS itself is unchanged). Then
the real OutboxWorker drains them through the real SIP2 client, and the same run measures the
floor the way bench/sip2_roundtrip.py does: a raw socket echo of the demo ILS's own 18 reply,
and the client's 17 → 18 round trip against the demo ILS.

Each checkout costs the worker two SIP2 exchanges (17 item information first, then 11), each
checkin never sent before one (09; only a refusal is looked into with 17); the worker claims a batch of events in one durable commit and marks them delivered in another, so
the figures are events/s, SIP2 exchanges/s, and the exchanges/s as a share of the floor's round
trips/s. Target: ≥ 70 % of the round-trip floor.

    python bench/outbox_drain.py [--events N | --quick] [--breakdown] [--profile] [--separate-process]

--breakdown times the worker's store calls and client calls and counts SQL statements and
commits per event; --profile prints where the drain's time goes (cProfile, top functions).
"""

from __future__ import annotations

import argparse
import cProfile
import collections
import datetime as dt
import functools
import io
import multiprocessing
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kiosk.clock import SystemClock  # noqa: E402
from kiosk.session import DoorJob  # noqa: E402
from kiosk.store import Item, Stamp, Store  # noqa: E402
from sip2_roundtrip import client_round_trips, raw_round_trips, serve, start_servers  # noqa: E402
from sync.demo_ils import SIP_PASSWORD, SIP_USER, loans_report, seed_demo  # noqa: E402
from sync.demo_ils import db as ils_db  # noqa: E402
from sync.outbox import OutboxWorker  # noqa: E402
from sync.sip2.client import Client, ClientSettings  # noqa: E402

LIBRARY = "111101"
SLOTS = 24
LOANS_PER_MEMBER = 5  # within the demo policy's per-library limit, even without no block


def bench_item(n: int) -> str:
    return f"BX{n:010d}"


def bench_member(n: int) -> str:
    return f"99990100{n:06d}"


def seed_ils(path: Path, clock: SystemClock, books: int) -> None:
    """The demo library plus `books` more books and enough members to borrow them."""
    seed_demo(path, clock)
    members = -(-books // LOANS_PER_MEMBER)
    pin = ils_db.hash_secret("1234")
    expires = (clock.now().date() + dt.timedelta(days=365)).isoformat()
    conn = ils_db.connect(path)
    try:
        with ils_db.transaction(conn):
            conn.executemany(
                "INSERT INTO patrons (member_id, card_uid, name, pin_hash, expires, library) VALUES (?, ?, ?, ?, ?, ?)",
                [(bench_member(m), f"BE{m:06X}", f"회원 {m}", pin, expires, LIBRARY) for m in range(members)])
            conn.executemany(
                "INSERT INTO items (item, title, author, location, library) VALUES (?, ?, ?, ?, ?)",
                [(bench_item(n), f"벤치 도서 {n}", "저자", ils_db.LOCATION, LIBRARY) for n in range(books)])
    finally:
        conn.close()


def queue_events(path: Path, clock: SystemClock, books: int) -> int:
    """`books` checkouts, then the `books` checkins of the same books, recorded the way the app
    records them (a door job committed, then the loan or return and its outbox event in one
    transaction), into a new store at `path`. The setup is not what is measured: the store is
    filled in memory-backed files (/dev/shm) when there are any, then copied to `path`."""
    scratch = Path(tempfile.mkdtemp(prefix="outbox-bench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        with Store(scratch / path.name) as store:
            store.db.execute("PRAGMA synchronous=OFF")
            store.add_items(Item(bench_item(n), f"벤치 도서 {n}", "저자") for n in range(books))
            store.ensure_slots(SLOTS, clock.now())
            stamp = lambda: Stamp(clock.now(), True, "bench")  # noqa: E731
            due = clock.now().date() + dt.timedelta(days=14)
            for n in range(books):
                slot = n % SLOTS + 1
                job = DoorJob(uuid.uuid4().hex, "loan", slot, bench_item(n), "", bench_member(n // LOANS_PER_MEMBER),
                              due)
                store.begin_door_job(job, clock.now())
                store.record_loan(job, stamp())
            for n in range(books):
                slot = n % SLOTS + 1
                store.put_in_slot(slot, None, clock.now())
                job = DoorJob(uuid.uuid4().hex, "return", slot, bench_item(n), "")
                store.begin_door_job(job, clock.now())
                store.record_return(job, stamp())
            queued = store.db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        for made in scratch.iterdir():  # the database (its WAL checkpointed at close) and the device key
            shutil.copy2(made, path.with_name(made.name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return queued


def bare_replay(client: Client, clock: SystemClock, books: int) -> float:
    """Seconds per event for the same SIP2 requests the worker sends (17 then 11 for each loan,
    09 for each return, same fields), sent by the bare client in a loop: no outbox, no store.
    The floor of the drain itself; run after it, when every bench book is back."""
    due = dt.datetime.combine(clock.now().date() + dt.timedelta(days=14), dt.time(23, 59, 59),
                              tzinfo=clock.now().tzinfo)
    started = time.perf_counter()
    for n in range(books):
        client.item_information(bench_item(n))
        client.checkout(bench_member(n // LOANS_PER_MEMBER), bench_item(n), no_block=True,
                        transaction_date=clock.now(), nb_due=due)
    for n in range(books):
        client.checkin(bench_item(n), no_block=True, transaction_date=clock.now(), return_date=clock.now())
    return (time.perf_counter() - started) / (2 * books)


class Breakdown:
    """Time spent in each wrapped method, and the SQL statements the store ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        self.statements: collections.Counter[str] = collections.Counter()

    def wrap(self, obj: object, name: str, label: str) -> None:
        real = getattr(obj, name)

        @functools.wraps(real)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(obj, name, timed)

    def trace(self, statement: str) -> None:
        self.statements[statement.split(None, 1)[0].upper() if statement.strip() else "?"] += 1


def drain(store: Store, client: Client, clock: SystemClock, *, breakdown: Breakdown | None,
          profile: cProfile.Profile | None) -> tuple[float, object, int]:
    """Drain the queue; (seconds, the worker's report, SIP2 exchanges sent)."""
    worker = OutboxWorker(store, client, clock, boot="bench")
    sent = [0]
    request = client._request  # every request of the client's own goes through it

    def counted(*args):
        sent[0] += 1
        return request(*args)

    client._request = counted
    if breakdown is not None:
        for name in ("next_events", "claim_many", "mark_delivered_many", "mark_dead", "mark_unknown", "retry_later"):
            breakdown.wrap(store, name, f"store.{name}")
        for name in ("item_information", "checkout", "checkin"):
            breakdown.wrap(client, name, f"client.{name}")
        store.db.conn.set_trace_callback(breakdown.trace)
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    report = worker.drain()
    if profile is not None:
        profile.disable()
    elapsed = time.perf_counter() - started
    if breakdown is not None:
        store.db.conn.set_trace_callback(None)
    del client._request
    return elapsed, report, sent[0]


def next_event_cost(store: Store, clock: SystemClock, repeat: int = 20) -> float:
    """Seconds for one next_event call on the store as it is now."""
    started = time.perf_counter()
    for _ in range(repeat):
        store.next_events(clock.now(), lambda claim: False, count=32)
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events to queue and drain (half checkouts)")
    parser.add_argument("--quick", action="store_true", help="1,000 events and shorter floor measurements")
    parser.add_argument("--breakdown", action="store_true", help="time the worker's store and client calls")
    parser.add_argument("--profile", action="store_true", help="cProfile the drain: the top functions")
    parser.add_argument("--separate-process", action="store_true",
                        help="run the demo ILS (and the echo server) in another process")
    args = parser.parse_args()
    events = 1000 if args.quick else args.events
    books = max(1, events // 2)
    floor_n = 500 if args.quick else 2000

    clock = SystemClock()
    tmp = Path(tempfile.mkdtemp(prefix="outbox-bench-"))
    stop: Callable[[], None] | None = None
    try:
        t = time.perf_counter()
        seed_ils(tmp / "ils.db", clock, books)
        queued = queue_events(tmp / "kiosk.db", clock, books)
        store = Store(tmp / "kiosk.db")
        setup_s = time.perf_counter() - t
        if args.separate_process:
            context = multiprocessing.get_context("spawn")
            ours, theirs = context.Pipe()
            process = context.Process(target=serve, args=(str(tmp / "ils.db"), theirs), daemon=True)
            process.start()
            host, ils_port, canned_port, requests = ours.recv()
            stop = lambda: (ours.send("stop"), process.join(10))  # noqa: E731
        else:
            (host, ils_port, canned_port, requests), stop = start_servers(str(tmp / "ils.db"))
        settings = ClientSettings(host, ils_port, user=SIP_USER, password=SIP_PASSWORD, institution=LIBRARY,
                                  location="KIOSK-1", keepalive_s=0)
        floor, client_rt = [], []
        with Client(settings, clock=clock) as probe:
            for _ in range(3):
                floor.append(raw_round_trips(canned_port, requests, floor_n)[0])  # wall time
                client_rt.append(client_round_trips(probe, floor_n)[0])
        first_next = next_event_cost(store, clock)
        breakdown = Breakdown() if args.breakdown else None
        profile = cProfile.Profile() if args.profile else None
        with Client(settings, clock=clock) as client:
            client.connect()
            elapsed, report, sent = drain(store, client, clock, breakdown=breakdown, profile=profile)
        ils = loans_report(tmp / "ils.db")  # before the bare replay below adds its own entries
        with Client(settings, clock=clock) as probe:
            for _ in range(2):  # again after the drain: drift hits both sides alike
                floor.append(raw_round_trips(canned_port, requests, floor_n)[0])  # wall time
                client_rt.append(client_round_trips(probe, floor_n)[0])
            bare = bare_replay(probe, clock, min(books, 1000))
        last_next = next_event_cost(store, clock)
        counts = store.queue_status()["counts"]
        store.close()
    finally:
        if stop is not None:
            stop()

    bench_log = [e for e in ils["log"] if e["item"].startswith("BX")]
    exchanges = sent  # 17 before each checkout, 11 or 09; a checkin never sent before needs no 17
    renewals = sum(1 for e in bench_log if e["renewal"])
    left = sum(1 for row in ils["loans"] if row["item"].startswith("BX"))
    per_floor = statistics.median(floor)
    per_client = statistics.median(client_rt)
    events_s = report.delivered / elapsed
    exchanges_s = exchanges / elapsed
    where = "in another process" if args.separate_process else "in threads of this process"
    print(f"outbox drain: {queued} queued events ({books} checkouts, then their {books} checkins) into the demo "
          f"ILS over loopback, servers {where}; kiosk store on disk (WAL, synchronous=FULL)")
    print(f"  drained        {report.delivered} delivered, {report.dead} dead, {report.unknown} unknown "
          f"in {elapsed:.2f} s; queue now {counts}")
    print(f"  at the ILS     {len(bench_log)} circulation entries, {renewals} renewals, {left} bench loans left open")
    print(f"  events/s       {events_s:8.0f}    ({elapsed / max(1, report.delivered) * 1e6:7.1f} µs an event)")
    print(f"  exchanges/s    {exchanges_s:8.0f}    "
          f"({exchanges / max(1, report.delivered):.2f} SIP2 exchanges an event)")
    print(f"  floor          {1 / per_floor:8.0f} round trips/s  ({per_floor * 1e6:6.1f} µs, raw socket echo of the "
          f"ILS's 18)")
    print(f"  client 17→18   {1 / per_client:8.0f} round trips/s  ({per_client * 1e6:6.1f} µs, client → demo ILS)")
    print(f"  exchanges/s ÷ floor round trips/s      {exchanges_s * per_floor:6.1%}   (target ≥ 70 %)")
    print(f"  exchanges/s ÷ client 17→18 round trips/s {exchanges_s * per_client:6.1%}")
    print(f"  events/s ÷ floor round trips/s         {events_s * per_floor:6.1%}")
    print(f"  the same requests by the bare client: {1 / bare:8.0f} events/s ({bare * 1e6:6.1f} µs an event, "
          f"no outbox, no store); the drain reaches {events_s * bare:6.1%} of it")
    print(f"  next_event with the queue full: {first_next * 1e3:.2f} ms; drained: {last_next * 1e3:.2f} ms"
          f"  (setup {setup_s:.1f} s, not counted)")
    if breakdown is not None:
        n = max(1, report.delivered)
        print("  where an event's time goes (µs an event; calls an event):")
        accounted = 0.0
        for label, seconds in sorted(breakdown.seconds.items(), key=lambda kv: -kv[1]):
            accounted += seconds
            print(f"    {label:24s} {seconds / n * 1e6:8.1f} µs   {breakdown.calls[label] / n:5.2f}")
        print(f"    {'the rest (worker)':24s} {(elapsed - accounted) / n * 1e6:8.1f} µs")
        print("  SQL statements an event: " + ", ".join(
            f"{kind} {count / n:.2f}" for kind, count in breakdown.statements.most_common()))
    if profile is not None:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        print("  cProfile of the drain, by own time:")
        print("\n".join("    " + line for line in out.getvalue().splitlines() if line.strip()))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
