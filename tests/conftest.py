"""Fixtures shared by the test files: the fake clock, and the demo ILS on loopback."""

import pytest

from kiosk.clock import FakeClock
from sync.demo_ils import DemoIls, seed_demo


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
