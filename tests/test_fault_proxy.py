"""The network between the kiosk and its library breaks: every exchange still ends parsed or
unknown, never in a crash or a hang, and the outbox still brings the library to exactly the loans
the kiosk recorded, with no renewal caused by a replay.

The real SIP2 client and the real outbox worker talk to the real demo ILS through a proxy on
loopback that cuts, swallows, garbles, resets and delays (tests/faultproxy.py).
"""

import random
import time

import pytest

from faultproxy import FaultProxy
from kiosk.local_library import seed_demo as seed_kiosk
from kiosk.store import Store
from steps import ils_log, queue_loan, queue_return
from sync.demo_ils import loans_report
from sync.outbox import OutboxWorker
from sync.sip2.client import Client, ClientSettings, OutcomeUnknown, Sip2Unavailable
from sync.sip2.results import CheckoutResult, ItemInfo, PatronInfo

TIMEOUT_S = 0.2
# One exchange may take a connect, a login and a request, each bounded by the timeout; a slow CI
# machine gets a generous margin on top, but nothing near a hang.
BOUND_S = 3 * TIMEOUT_S + 0.6
MEMBER = "11110100000001"

# (mode, on): on the reply the library has acted; on the request it never saw it whole.
FAULTS = [
    ("pass", "reply"),
    ("cut", "reply"), ("cut", "request"),
    ("hang", "reply"), ("hang", "request"),
    ("garbage", "reply"), ("garbage", "request"),
    ("checksum", "reply"), ("checksum", "request"),
    ("reset", "reply"), ("reset", "request"),
    ("delay", "reply"), ("delay", "request"),
    ("accept-close", "connect"),
]
IDS = [f"{mode}-{on}" for mode, on in FAULTS]


def arm(proxy, mode, on, **kw):
    if on == "connect":
        proxy.arm(mode, **kw)
    else:
        proxy.arm(mode, on=on, **kw)


@pytest.fixture
def proxy(ils):
    # A delay longer than the response timeout: the late reply must never be taken for the next.
    with FaultProxy(ils.address, delay_s=1.5 * TIMEOUT_S) as p:
        yield p


@pytest.fixture
def client(proxy, clock):
    settings = ClientSettings(host=proxy.address[0], port=proxy.address[1], user="kiosk", password="kiosk-demo",
                              institution="111101", response_timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S,
                              keepalive_s=0, backoff_initial_s=1.0, backoff_max_s=2.0)
    with Client(settings, clock=clock, rng=random.Random(7)) as c:
        yield c


@pytest.fixture
def store(tmp_path, clock):
    with Store(tmp_path / "kiosk.db", clock=clock) as st:
        seed_kiosk(st, clock, 24, whole_library=False)
        yield st


def timed(call):
    """("parsed", result) or ("unknown"/"unavailable", exception), and the seconds it took.
    Any other exception escapes and fails the test."""
    started = time.monotonic()
    try:
        result = ("parsed", call())
    except OutcomeUnknown as exc:
        result = ("unknown", exc)
    except Sip2Unavailable as exc:
        result = ("unavailable", exc)
    return result, time.monotonic() - started


@pytest.mark.parametrize(("mode", "on"), FAULTS, ids=IDS)
def test_every_exchange_ends_parsed_or_unknown_within_the_timeout(client, proxy, clock, mode, on):
    client.connect()  # logged in through a healthy link; the fault comes mid-session
    arm(proxy, mode, on)
    calls = [
        (lambda: client.item_information("EM0000000003"), ItemInfo),
        (lambda: client.checkout(MEMBER, "EM0000000003"), CheckoutResult),
        (lambda: client.patron_information(MEMBER, "1234"), PatronInfo),
    ]
    outcomes = []
    for call, kind in calls:
        (outcome, value), took = timed(call)
        assert took < BOUND_S, f"{mode} on the {on}: {outcome} after {took:.2f} s"
        if outcome == "parsed":
            assert isinstance(value, kind)
        outcomes.append(outcome)
        clock.advance(10)  # past the client's reconnect back-off
    if mode == "pass":
        assert outcomes == ["parsed"] * len(calls)
    else:
        assert proxy.count() > 0 and "parsed" not in outcomes, outcomes
    proxy.clear()
    (outcome, value), _ = timed(lambda: client.item_information("EM0000000004"))
    assert outcome == "parsed" and value.item == "EM0000000004"  # the link heals; no stale answer


def test_a_late_reply_is_never_taken_for_the_next_answer(client, proxy, clock):
    client.connect()
    proxy.arm("delay", commands={"17"}, times=1)
    (outcome, _), took = timed(lambda: client.item_information("EM0000000003"))
    assert outcome == "unknown" and took < BOUND_S
    (outcome, value), _ = timed(lambda: client.item_information("EM0000000007"))
    assert outcome == "parsed" and value.item == "EM0000000007"


def test_a_short_delay_is_only_slow(client, proxy):
    client.connect()
    proxy.arm("delay", delay_s=TIMEOUT_S / 4)
    (outcome, value), _ = timed(lambda: client.item_information("EM0000000003"))
    assert outcome == "parsed" and value.item == "EM0000000003"
    assert proxy.count("delay") == 1


def queue_workload(store, clock):
    """What the kiosk recorded while the library did not hear of it: loans, returns, and a loan
    and return of the same book. Returns the events as (kind, item, member) in order."""
    events = []

    def loan(item, member):
        queue_loan(store, clock, item, member)
        events.append(("checkout", item, member))
        clock.advance(60)

    def give_back(item, slot):
        queue_return(store, clock, item, slot=slot)
        events.append(("checkin", item, None))
        clock.advance(60)

    loan("EM0000000003", MEMBER)
    loan("EM0000000004", MEMBER)
    give_back("EM0000000025", 4)  # on loan to member 3 at the library
    loan("EM0000000005", "11110100000009")
    give_back("EM0000000003", 3)
    loan("EM0000000006", "11110100000010")
    give_back("EM0000000031", 6)  # on loan to member 9 at the library
    return events


def expected_loans(before: dict, events) -> dict:
    loans = dict(before)
    for kind, item, member in events:
        if kind == "checkout":
            loans[item] = member
        else:
            loans.pop(item, None)
    return loans


@pytest.mark.parametrize(("mode", "on"), FAULTS, ids=IDS)
def test_the_outbox_drains_through_faults_exactly_once(store, client, proxy, ils, clock, mode, on):
    before = {row["item"]: row["patron"] for row in loans_report(ils.db_path)["loans"]}
    events = queue_workload(store, clock)
    worker = OutboxWorker(store, client, clock, backoff_initial_s=5, backoff_max_s=60, rng=random.Random(3),
                          boot="boot-test")
    # On the reply, the fault hits every checkout and checkin while it is armed: the library acted
    # and the answer was lost. On the request, it hits everything (login and 17 too): the library
    # never got it.
    arm(proxy, mode, on, **({"commands": {"11", "09"}} if on == "reply" else {}))
    for _ in range(3):
        started = time.monotonic()
        worker.drain()  # anything but parsed/unknown/unavailable would escape here
        assert time.monotonic() - started < 2 * BOUND_S
        # A request held back on the way reaches the library before the worker asks again (see
        # the test of a request that lands after the worker gave up, below).
        assert proxy.quiet()
        clock.advance(120)  # past the worker's and the client's back-off
    if mode != "pass":
        assert proxy.count() > 0
    proxy.clear()
    for _ in range(len(events) + 2):
        worker.drain()
        if not any(e["state"] != "delivered" for e in store.outbox()):
            break
        clock.advance(120)
    states = [e["state"] for e in store.outbox()]
    assert states == ["delivered"] * len(events), states
    report = loans_report(ils.db_path)
    assert {row["item"]: row["patron"] for row in report["loans"]} == expected_loans(before, events)
    assert all(row["renewals"] == 0 for row in report["loans"])
    assert not [e for e in report["log"] if e["renewal"] or not e["ok"]], [
        (e["action"], e["item"], e["ok"], e["renewal"]) for e in report["log"]]
    for item in {item for _kind, item, _member in events}:
        sent = [e["action"] for e in ils_log(ils, item)]
        assert sent == [kind for kind, i, _m in events if i == item], item  # each once, in order
        loan = store.open_loan(item)
        ils_patron = next((row["patron"] for row in report["loans"] if row["item"] == item), None)
        assert (loan["member_id"] if loan else None) == ils_patron  # the kiosk and the library agree


def test_a_checkout_that_lands_after_the_worker_gave_up_is_not_sent_again(store, client, proxy, ils, clock):
    queue_loan(store, clock, "EM0000000003", MEMBER)
    worker = OutboxWorker(store, client, clock, backoff_initial_s=5, backoff_max_s=60, rng=random.Random(3),
                          boot="boot-test")
    proxy.arm("delay", on="request", commands={"11"}, times=1, delay_s=30)  # held back on the way
    assert worker.drain().unknown == 1
    worker.drain()  # at once, on the same clock: the held-back checkout has not landed yet
    proxy.release()  # now it lands
    assert proxy.quiet()
    for _ in range(3):
        clock.advance(600)
        worker.drain()
    assert [e["state"] for e in store.outbox()] == ["delivered"]
    assert [(e["action"], e["renewal"]) for e in ils_log(ils, "EM0000000003")] == [("checkout", False)]
