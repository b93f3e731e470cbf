"""Fixtures shared by the test files: the fake clock, the demo ILS on loopback, and a kiosk
store with a SIP2 client and an outbox worker of its own against it."""

import random

import pytest

from kiosk.clock import FakeClock
from kiosk.local_library import seed_demo as seed_kiosk
from kiosk.store import Store
from steps import BOOT
from sync.demo_ils import DemoIls, seed_demo
from sync.outbox import OutboxWorker
from sync.sip2.client import Client, ClientSettings


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def ils(tmp_path, clock):
    """The demo ILS, seeded, serving on a free loopback port; `db_path` is its database."""
    path = tmp_path / "ils.db"
    seed_demo(path, clock)
    with DemoIls(path, clock=clock) as server:
        server.start()
        server.db_path = path
        yield server


@pytest.fixture
def store(tmp_path, clock):
    with Store(tmp_path / "kiosk.db", clock=clock) as st:
        seed_kiosk(st, clock, 24, whole_library=False)
        yield st


@pytest.fixture
def client(ils, clock):
    settings = ClientSettings(host=ils.address[0], port=ils.address[1], user="kiosk", password="kiosk-demo",
                              institution="111101", response_timeout_s=0.3, connect_timeout_s=0.3,
                              backoff_initial_s=1.0)
    with Client(settings, clock=clock, rng=random.Random(1)) as c:
        yield c


@pytest.fixture
def worker(store, client, clock):
    return OutboxWorker(store, client, clock, backoff_initial_s=5, backoff_max_s=60, rng=random.Random(2),
                        boot=BOOT)
