"""The USB HID barcode scanner adapter on recorded evdev key events (tests/fake_evdev.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("evdev")

from drivers import registry  # noqa: E402
from drivers.base import CodeRead  # noqa: E402
from fake_evdev import EvdevWorld, typed  # noqa: E402

PATH = "/dev/input/by-id/usb-Zebra_DS2208-event-kbd"


@pytest.fixture
def hid(monkeypatch):
    world = EvdevWorld().install(monkeypatch)
    world.plugged.add(PATH)
    made = []

    def build(**options):
        now = options.pop("now", [0.0])
        scanner = registry.create("scanner", "hid", evdev_path=PATH, clock=lambda: now[0], poll_interval_s=0.01,
                                  **options)
        scanner.reads = []
        scanner._emit = scanner.reads.append
        made.append(scanner)
        return scanner

    build.world = world
    yield build
    for scanner in made:
        scanner.close()
    world.close_all()


def test_typed_codes_become_reads_and_the_scanner_is_grabbed(hid):
    s = hid()
    assert s.step()
    assert hid.world.device.grabbed  # its keys reach nothing else
    hid.world.send(typed("EM0000000001") + typed("11110100000001"))
    s.step()
    assert s.reads == [CodeRead("EM0000000001"), CodeRead("11110100000001")]
    assert s.health().available


def test_junk_is_counted_and_never_emitted(hid):
    s = hid(bad_lines=10)
    s.step()
    hid.world.send(typed("https://example.org/a") + typed("1" * 4000) + typed("9788954602564"))
    s.step()
    assert s.reads == []  # a web address, 4,000 keys, a wrong ISBN check digit
    assert s.counts["too_long"] == 1 and s.counts["rejected"] == 2
    hid.world.send(typed("EM0000000002"))
    s.step()
    assert s.reads == [CodeRead("EM0000000002")]


def test_the_same_code_twice_is_read_once(hid):
    now = [0.0]
    s = hid(now=now)
    s.step()
    hid.world.send(typed("EM0000000001") * 1 + typed("EM0000000001"))
    s.step()
    now[0] += 3
    hid.world.send(typed("EM0000000001"))
    s.step()
    assert s.reads == [CodeRead("EM0000000001")] * 2


def test_unplugged_and_back(hid):
    s = hid()
    s.step()
    hid.world.unplug(PATH)
    assert not s.step()
    assert "stopped answering" in s.health().reason
    assert not s.step()
    assert "did not open" in s.health().reason and "'input' group" in s.health().reason
    hid.world.plugged.add(PATH)
    assert s.step() and s.health().available
    hid.world.send(typed("EM0000000009"))
    s.step()
    assert s.reads == [CodeRead("EM0000000009")]


def test_a_scanner_grabbed_by_something_else_is_not_used(hid):
    hid.world.grabbed_elsewhere = True
    s = hid()
    assert not s.step()
    assert "did not open" in s.health().reason
    assert hid.world.device.closed
