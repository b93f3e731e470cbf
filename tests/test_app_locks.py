"""The kiosk with real lock bank adapters over their fakes, and the alarms the banks raise."""

from __future__ import annotations

import pytest

from cu16_board import FakeBoard, PtyBus
from kiosk.app import build
from kiosk.config import Config, parse
from steps import choose, login

MEMBER = "11110100000001"
RELAYS, DOORS = [5, 6, 13, 19], [12, 16, 20, 21]

GPIO = """
[devices.locks]
driver = "gpio"
slots = 4
[devices.locks.gpio]
pin_factory = "mock"
pulse_s = 0.5
lockers = [
""" + "".join(f"  {{ relay_bcm_pin = {r}, door_bcm_pin = {d} }},\n" for r, d in zip(RELAYS, DOORS)) + "]\n"


def alarms(k):
    return [(a["kind"], a["slot"]) for a in k.store.alarms()]


@pytest.fixture
def gpio_kiosk(tmp_path, clock):
    k = build(parse(GPIO), clock=clock, db_path=tmp_path / "kiosk.db")
    pins = k.devices.locks.pin_factory
    for door in DOORS:
        pins.pin(door).drive_low()  # every door shut before the kiosk starts
    k.start()
    yield k, pins
    k.close()


def settle(k, clock):
    """Two frames of the kiosk's loop, the debounce time apart."""
    k.tick()
    clock.advance(0.05)
    k.tick()
    k.pump()


def test_a_loan_through_gpio_relays_and_door_switches(gpio_kiosk, clock):
    k, pins = gpio_kiosk
    login(k)
    choose(k, "EM0000000002")
    assert k.state.screen == "open-door"
    assert pins.pin(RELAYS[1]).state == 0  # locker 2's relay on (active low)
    assert [pins.pin(r).state for r in (RELAYS[0], RELAYS[2], RELAYS[3])] == [1, 1, 1]
    clock.advance(0.5)
    k.tick()
    assert pins.pin(RELAYS[1]).state == 1  # the pulse is over: the latch holds the door
    pins.pin(DOORS[1]).drive_high()  # the patron opens the door
    settle(k, clock)
    pins.pin(DOORS[1]).drive_low()  # and shuts it with the book taken
    settle(k, clock)
    assert k.state.screen == "receipt"
    assert k.store.open_loan("EM0000000002")["member_id"] == MEMBER
    assert alarms(k) == []


def test_every_relay_is_off_when_the_kiosk_exits(tmp_path, clock):
    k = build(parse(GPIO.replace('pulse_s = 0.5', 'unlock = "hold"')), clock=clock, db_path=tmp_path / "k.db")
    pins = k.devices.locks.pin_factory
    for door in DOORS:
        pins.pin(door).drive_low()
    k.start()
    login(k)
    choose(k, "EM0000000003")
    assert pins.pin(RELAYS[2]).state == 0
    k.close()
    assert [pins.pin(r).state for r in RELAYS] == [1, 1, 1, 1]


@pytest.fixture
def kiosk(tmp_path, clock):
    k = build(Config(), clock=clock, db_path=tmp_path / "kiosk.db")
    k.start()
    yield k
    k.close()


def test_books_in_lockers_out_of_service_are_not_offered(kiosk):
    kiosk.devices.locks.fail([3, 4], "lock board 0 not answering")
    login(kiosk)
    kiosk.tap("borrow")
    shown = [line.slot for line in kiosk.state.shelf]
    assert 3 not in shown and 4 not in shown and 5 in shown
    assert any("lockers 3-4 out of service" in n for n in kiosk.status().notices)


def test_a_locker_that_goes_out_of_service_after_the_choice_is_never_unlocked(kiosk):
    login(kiosk)
    kiosk.tap("borrow")
    kiosk.tap("item:EM0000000003")
    kiosk.devices.locks.fail([3], "lock board 0 not answering")  # the board dies before confirm
    kiosk.tap("confirm")
    assert kiosk.state.screen == "error" and kiosk.state.notice.reason.value == "lock-fault"
    assert ("unlock", 3) not in kiosk.devices.locks.history
    assert kiosk.store.open_loan("EM0000000003") is None  # the library was not asked to lend it
    assert kiosk.store.slot_contents(3) == "EM0000000003"


def test_a_return_goes_to_an_empty_locker_that_can_open(kiosk, clock):
    for slot in (1, 2):
        kiosk.store.put_in_slot(slot, None, clock.now())
    kiosk.devices.locks.fail([1], "lock board 0 not answering")
    kiosk.tap("return")
    kiosk.devices.scanner.show("EM0000000025")
    kiosk.pump()
    assert kiosk.state.screen == "open-door"
    assert kiosk.devices.locks.history == [("unlock", 2)]


def test_a_forced_door_left_open_alarms_staff_twice(tmp_path, clock):
    k = build(Config(), clock=clock, db_path=tmp_path / "kiosk.db")
    k.start()
    try:
        k.devices.locks.open_door(12)
        k.pump()
        clock.advance(60)
        k.tick()
        k.pump()
        clock.advance(60)
        k.tick()
        k.pump()
        assert alarms(k) == [("forced-open", 12), ("door-left-open", 12)]
    finally:
        k.close()


def test_the_open_door_of_a_loan_alarms_once_not_twice(tmp_path, clock):
    k = build(Config(), clock=clock, db_path=tmp_path / "kiosk.db")
    k.start()
    try:
        login(k)
        choose(k, "EM0000000002")
        k.devices.locks.open_door(2)
        k.pump()
        clock.advance(61)
        k.tick()
        k.pump()
        k.tick()
        assert alarms(k) == [("door-left-open", 2)]
    finally:
        k.close()


def test_a_jammed_lock_is_an_alarm_for_staff(tmp_path, clock):
    board = FakeBoard(0)
    board.jammed.add(1)  # locker 2
    bus = PtyBus(tmp_path, [board])
    config = parse(f'[devices.locks]\ndriver = "cu16"\nslots = 4\n[devices.locks.cu16]\nport = "{bus.path}"\n'
                   'timeout_s = 0.1\njam_check_s = 1.0\n')
    k = build(config, clock=clock, db_path=tmp_path / "kiosk.db")
    k.devices.locks.polls_itself = False  # the test plays the poller's part
    k.start()
    try:
        login(k)
        choose(k, "EM0000000002")
        assert board.unlocks == [1]
        clock.advance(1.0)
        k.tick()
        k.pump()
        assert alarms(k) == [("lock-jammed", 2)]
        # The patron is told at once (not after the door timeout), and nothing is lent.
        assert k.state.screen == "error" and k.state.notice.reason.value == "lock-fault"
        assert k.store.pending_door_jobs() == []
        assert k.store.open_loan("EM0000000002") is None
        assert k.store.slot_contents(2) == "EM0000000002"
    finally:
        k.close()
        bus.close()


def test_a_lock_bank_that_cannot_be_set_up_leaves_the_kiosk_running_and_says_why(tmp_path, clock):
    k = build(parse(GPIO.replace('"mock"', '"lgpio"')), clock=clock, db_path=tmp_path / "kiosk.db")
    k.start()  # no /dev/gpiochip on this machine
    try:
        [notice] = [n for n in k.status().notices if n.startswith("locks")]
        assert "pin factory 'lgpio' is not usable here" in notice
        login(k)
        k.tap("borrow")
        assert k.state.shelf == ()  # every locker out of service: nothing offered
        k.tap("logout")
        k.store.put_in_slot(1, None, clock.now())  # an empty locker, but it cannot open
        k.tap("return")
        k.devices.scanner.show("EM0000000025")
        k.pump()
        assert k.state.screen == "error" and k.state.notice.reason.value == "no-empty-locker"
    finally:
        k.close()


@pytest.fixture
def sensed(tmp_path, clock):
    """A kiosk whose lockers have occupancy sensors: the demo's 24 full lockers seen full."""
    k = build(Config(), clock=clock, db_path=tmp_path / "kiosk.db")
    k.devices.locks.has_occupancy = True
    for slot in range(1, 25):
        k.devices.locks.put_item(slot)
    k.start()
    yield k
    k.close()


def test_a_loan_whose_book_is_still_seen_inside_alarms_staff(sensed):
    login(sensed)
    choose(sensed, "EM0000000003")
    sensed.devices.locks.open_door(3)
    sensed.pump()
    sensed.devices.locks.close_door(3)  # closed without taking the book
    sensed.pump()
    assert sensed.state.screen == "receipt"  # the door opened and closed: the loan stands
    assert alarms(sensed) == [("item-left-in-locker", 3)]


def test_a_loan_whose_book_left_raises_nothing(sensed):
    login(sensed)
    choose(sensed, "EM0000000004")
    sensed.devices.locks.open_door(4)
    sensed.devices.locks.take_item(4)
    sensed.devices.locks.close_door(4)
    sensed.pump()
    assert sensed.state.screen == "receipt" and alarms(sensed) == []


def test_the_scenario_step_for_lock_faults_is_checked_before_running():
    from kiosk.scenario import ScenarioError
    from kiosk.scenario import parse as parse_scenario

    assert parse_scenario("lock 3 offline\nlock 3 online\nlock 2 jam\nlock 2 unjam\n")
    with pytest.raises(ScenarioError, match="lock takes jam, unjam, offline, online, found 'explode'"):
        parse_scenario("lock 2 explode\n")
