"""Lock banks: the same contract for the simulated bank, GPIO relays on gpiozero's mock pins and
CU16 boards on a simulated RS-485 bus; then what is particular to each adapter.

No test sleeps: door timers run on the fake clock. The CU16 tests talk to a simulated board over
a real pseudo-terminal, so a missing reply costs its (short) serial timeout in real time.
"""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from cu16_board import FakeBoard, PtyBus
from drivers import registry
from drivers.base import DeviceError, DoorAlarm, DoorChanged, OccupancyChanged
from drivers.cu16 import Cu16LockBank, check_reply, frame, status_frame
from drivers.gpio_locks import GpioLockBank, GpioLockError
from drivers.simulated import SimLockBank

SLOTS = 4
LEFT_OPEN_S = 60.0
JAM_CHECK_S = 1.0
RELAYS = [5, 6, 13, 19]
DOORS = [12, 16, 20, 21]
SENSORS = [22, 23, 24, 25]


class SimHarness:
    def __init__(self, clock, tmp_path):
        self.clock = clock
        self.bank = SimLockBank(slots=SLOTS, clock=clock, left_open_s=LEFT_OPEN_S, jam_check_s=JAM_CHECK_S,
                                occupancy=True)

    def open_door(self, slot):
        self.bank.open_door(slot)

    def close_door(self, slot):
        self.bank.close_door(slot)

    def jam(self, slot):
        self.bank.jam(slot)

    def put(self, slot, occupied):
        (self.bank.put_item if occupied else self.bank.take_item)(slot)

    def released(self, slot):
        return not self.bank.is_locked(slot)

    def settle(self):
        self.bank.poll()

    def break_board(self):
        self.bank.fail(range(1, SLOTS + 1))

    def repair_board(self):
        self.bank.repair()

    def close(self):
        self.bank.close()


class GpioHarness:
    """Relays on active-low mock pins, reed switches to ground (pulled up: open reads high),
    infrared sensors that pull low when something is inside."""

    def __init__(self, clock, tmp_path):
        self.clock = clock
        self.factory = MockFactory()
        lockers = [{"relay_bcm_pin": r, "door_bcm_pin": d, "occupancy_bcm_pin": o}
                   for r, d, o in zip(RELAYS, DOORS, SENSORS)]
        self.bank = GpioLockBank(slots=SLOTS, lockers=lockers, pin_factory=self.factory, pulse_s=0.5,
                                 debounce_s=0.05, jam_check_s=JAM_CHECK_S, left_open_s=LEFT_OPEN_S, clock=clock)
        for door, sensor in zip(DOORS, SENSORS):
            self.factory.pin(door).drive_low()  # every door shut (its magnet closes the reed switch)
            self.factory.pin(sensor).drive_high()  # every locker empty

    def open_door(self, slot):
        self.factory.pin(DOORS[slot - 1]).drive_high()

    def close_door(self, slot):
        self.factory.pin(DOORS[slot - 1]).drive_low()

    def jam(self, slot):
        pass  # the door simply does not spring open after the pulse

    def put(self, slot, occupied):
        pin = self.factory.pin(SENSORS[slot - 1])
        pin.drive_low() if occupied else pin.drive_high()

    def released(self, slot):
        return self.factory.pin(RELAYS[slot - 1]).state == 0  # active low: driven low = energised

    def settle(self):
        self.bank.poll()
        self.clock.advance(0.05)  # the debounce time
        self.bank.poll()

    def break_board(self):
        pytest.skip("GPIO has no board that can stop answering")

    def close(self):
        self.bank.close()


class Cu16Harness:
    def __init__(self, clock, tmp_path):
        self.clock = clock
        self.board = FakeBoard(0)
        self.bus = PtyBus(tmp_path, [self.board])
        self.bank = Cu16LockBank(slots=SLOTS, port=str(self.bus.path), boards=[0], timeout_s=0.1, retries=1,
                                 offline_after=2, reconnect_s=5.0, infrared=True, jam_check_s=JAM_CHECK_S,
                                 left_open_s=LEFT_OPEN_S, clock=clock, background=False)

    def open_door(self, slot):
        self.board.closed[slot - 1] = False  # a released door springs open by itself; a forced one too

    def close_door(self, slot):
        self.board.closed[slot - 1] = True

    def jam(self, slot):
        self.board.jammed.add(slot - 1)

    def put(self, slot, occupied):
        self.board.items[slot - 1] = occupied

    def released(self, slot):
        return slot - 1 in self.board.unlocks

    def settle(self):
        self.bank.poll()

    def break_board(self):
        self.board.silent = True

    def repair_board(self):
        self.board.silent = False
        self.clock.advance(5.0)

    def close(self):
        self.bank.close()
        self.bus.close()


@pytest.fixture(params=[SimHarness, GpioHarness, Cu16Harness], ids=["simulated", "gpio", "cu16"])
def lockers(request, clock, tmp_path):
    harness = request.param(clock, tmp_path)
    harness.events = []
    harness.bank.start(harness.events.append)
    yield harness
    harness.close()


# -- the contract


def test_every_lock_is_locked_at_start_and_nothing_is_reported(lockers):
    lockers.settle()
    assert not any(lockers.released(slot) for slot in range(1, SLOTS + 1))
    assert lockers.events == []
    assert lockers.bank.health().available
    assert lockers.bank.out_of_service() == {}


def test_an_unlocked_door_reports_opened_then_closed_and_no_alarm(lockers):
    lockers.bank.unlock(2)
    assert lockers.released(2)
    lockers.open_door(2)
    lockers.settle()
    assert lockers.bank.is_open(2)
    lockers.close_door(2)
    lockers.settle()
    assert lockers.events == [DoorChanged(2, True), DoorChanged(2, False)]
    assert lockers.bank.watch.kinds(2) == ["opened", "closed"]
    assert not lockers.bank.is_open(2)


def test_a_door_opened_without_an_unlock_is_forced(lockers):
    lockers.open_door(3)
    lockers.settle()
    assert lockers.events == [DoorChanged(3, True)]
    assert lockers.bank.watch.kinds(3) == ["opened", "forced-open"]


def test_a_door_left_open_alarms_once(lockers):
    lockers.bank.unlock(1)
    lockers.open_door(1)
    lockers.settle()
    lockers.clock.advance(LEFT_OPEN_S - 1)
    lockers.settle()
    assert DoorAlarm(1, "door-left-open") not in lockers.events
    lockers.clock.advance(1)
    lockers.settle()
    lockers.clock.advance(300)
    lockers.settle()
    assert lockers.events.count(DoorAlarm(1, "door-left-open")) == 1
    assert lockers.bank.watch.kinds(1) == ["opened", "left-open"]


def test_a_lock_that_does_not_release_is_reported_jammed(lockers):
    lockers.jam(4)
    lockers.bank.unlock(4)
    lockers.settle()
    lockers.clock.advance(JAM_CHECK_S)
    lockers.settle()
    assert lockers.events == [DoorAlarm(4, "lock-jammed")]
    assert not lockers.bank.is_open(4)


def test_a_door_that_opens_in_time_is_not_jammed(lockers):
    lockers.bank.unlock(4)
    lockers.open_door(4)
    lockers.settle()
    lockers.clock.advance(JAM_CHECK_S * 5)
    lockers.settle()
    assert "jammed" not in lockers.bank.watch.kinds()


def test_occupancy_sensors_report_arrivals_and_departures(lockers):
    lockers.put(2, True)
    lockers.settle()
    lockers.put(2, False)
    lockers.settle()
    assert lockers.events == [OccupancyChanged(2, True), OccupancyChanged(2, False)]
    assert lockers.bank.occupied(2) is False


def test_there_is_no_locker_zero_or_beyond_the_last(lockers):
    for slot in (0, SLOTS + 1):
        with pytest.raises(DeviceError):
            lockers.bank.unlock(slot)


def test_a_lost_board_puts_its_lockers_out_of_service_until_it_answers(lockers):
    lockers.break_board()
    for _ in range(3):
        lockers.settle()
    health = lockers.bank.health()
    assert not health.available and "out of service" in health.reason
    assert set(lockers.bank.out_of_service()) == set(range(1, SLOTS + 1))
    with pytest.raises(DeviceError, match="out of service"):
        lockers.bank.unlock(1)
    assert not lockers.released(1)
    lockers.repair_board()
    lockers.settle()
    assert lockers.bank.health().available
    lockers.bank.unlock(1)
    assert lockers.released(1)


def test_close_is_idempotent(lockers):
    lockers.bank.unlock(1)
    lockers.bank.close()
    lockers.bank.close()
    assert not lockers.bank.health().available


# -- GPIO


def gpio_bank(clock, factory=None, **options):
    factory = factory or MockFactory()
    lockers = [{"relay_bcm_pin": r, "door_bcm_pin": d} for r, d in zip(RELAYS, DOORS)]
    bank = GpioLockBank(slots=SLOTS, lockers=lockers, pin_factory=factory, clock=clock, **options)
    for door in DOORS:
        factory.pin(door).drive_low()  # doors shut
    return bank, factory


def test_gpio_relays_are_off_from_the_first_instant_active_low_and_active_high(clock):
    low, f_low = gpio_bank(clock)
    assert [f_low.pin(p).state for p in RELAYS] == [1, 1, 1, 1]  # active low: high is off
    # From an unconfigured input straight to off: never driven low (on) on the way.
    assert all([s.state for s in f_low.pin(p).states] == [False, True] for p in RELAYS)
    high, f_high = gpio_bank(clock, relay_active_high=True)
    assert [f_high.pin(p).state for p in RELAYS] == [0, 0, 0, 0]
    high.start(lambda e: None)
    high.unlock(3)
    assert f_high.pin(RELAYS[2]).state == 1
    low.close()
    high.close()


def test_gpio_pulse_ends_on_the_clock_not_on_a_sleep(clock):
    bank, factory = gpio_bank(clock, pulse_s=0.5)
    bank.start(lambda e: None)
    relay = factory.pin(RELAYS[0])
    bank.unlock(1)
    assert relay.state == 0 and bank.is_energised(1)
    clock.advance(0.49)
    bank.poll()
    assert relay.state == 0
    clock.advance(0.01)
    bank.poll()
    assert relay.state == 1 and not bank.is_energised(1)
    assert [s.state for s in relay.states][1:] == [True, False, True]  # off, one pulse, off
    bank.close()


def test_gpio_hold_keeps_the_lock_released_until_lock(clock):
    bank, factory = gpio_bank(clock, unlock_mode="hold")
    bank.start(lambda e: None)
    bank.unlock(2)
    clock.advance(30)
    bank.poll()
    assert factory.pin(RELAYS[1]).state == 0
    bank.lock(2)
    assert factory.pin(RELAYS[1]).state == 1
    bank.close()


def test_gpio_door_bounce_shorter_than_the_debounce_time_is_ignored(clock):
    events = []
    bank, factory = gpio_bank(clock, debounce_s=0.05)
    bank.start(events.append)
    door = factory.pin(DOORS[0])
    door.drive_high()
    bank.poll()
    clock.advance(0.02)
    door.drive_low()  # a bounce
    bank.poll()
    clock.advance(0.1)
    bank.poll()
    assert events == []
    door.drive_high()
    bank.poll()
    clock.advance(0.05)
    bank.poll()
    assert events == [DoorChanged(1, True)]
    bank.close()


def test_gpio_exit_switches_every_relay_off_and_releases_only_its_own_pins(clock):
    from gpiozero import LED

    factory = MockFactory()
    led = LED(26, pin_factory=factory)  # another device of the same process
    bank, _ = gpio_bank(clock, factory=factory, unlock_mode="hold")
    bank.start(lambda e: None)
    bank.unlock(1)
    bank.unlock(4)
    bank.close()
    assert [factory.pin(p).state for p in RELAYS] == [1, 1, 1, 1]
    led.on()  # still ours to use: nothing called a global cleanup
    assert factory.pin(26).state == 1
    again, _ = gpio_bank(clock, factory=factory)  # the bank's pins are free again
    again.close()
    led.close()


def test_gpio_a_pin_in_use_fails_the_build_and_closes_what_it_opened(clock):
    from gpiozero import LED

    factory = MockFactory()
    led = LED(DOORS[2], pin_factory=factory)
    with pytest.raises(GpioLockError, match="locker 3") as raised:
        gpio_bank(clock, factory=factory)
    assert isinstance(raised.value, DeviceError) and isinstance(raised.value, ValueError)
    led.close()
    bank, _ = gpio_bank(clock, factory=factory)  # nothing of the failed bank kept a pin
    bank.close()


def test_gpio_a_pin_used_twice_is_refused_before_touching_the_hardware(clock):
    lockers = [{"relay_bcm_pin": 5, "door_bcm_pin": 6}, {"relay_bcm_pin": 6, "door_bcm_pin": 7}]
    with pytest.raises(GpioLockError, match="BCM 6 is used twice"):
        GpioLockBank(slots=2, lockers=lockers, pin_factory=MockFactory(), clock=clock)


def test_gpio_a_switch_that_cannot_be_read_turns_every_relay_off(clock, monkeypatch):
    bank, factory = gpio_bank(clock, unlock_mode="hold")
    bank.start(lambda e: None)
    bank.unlock(2)

    class Broken:
        @property
        def state(self):
            raise OSError("GPIO chip gone")

    monkeypatch.setattr(bank._doors[3], "_pin", Broken())
    bank.poll()
    assert factory.pin(RELAYS[1]).state == 1
    assert not bank.health().available and "GPIO chip gone" in bank.health().reason
    with pytest.raises(DeviceError, match="out of service"):
        bank.unlock(1)
    bank.close()


def test_gpio_pin_factory_by_name_and_a_missing_one(clock):
    bank = registry.create("locks", "gpio", slots=1, lockers=[{"relay_bcm_pin": 5, "door_bcm_pin": 6}],
                           pin_factory="mock", clock=clock)
    assert type(bank.pin_factory).__name__ == "MockFactory"
    bank.close()
    with pytest.raises(GpioLockError, match="no pin factory named 'pigpio2'"):
        GpioLockBank(slots=1, lockers=[{"relay_bcm_pin": 5, "door_bcm_pin": 6}], pin_factory="pigpio2")


# -- CU16


@pytest.fixture
def bus(tmp_path):
    boards = [FakeBoard(0), FakeBoard(1)]
    bus = PtyBus(tmp_path, boards)
    yield bus
    bus.close()


def cu16(bus, clock, **options):
    settings = dict(slots=24, port=str(bus.path), boards=[0, 1], timeout_s=0.1, retries=2, clock=clock,
                    background=False)
    settings.update(options)
    return Cu16LockBank(**settings)


def test_cu16_frames_are_stx_addr_cmd_etx_sum():
    assert frame(0x00, 0x30) == bytes.fromhex("0200300335")  # status of board 0
    assert frame(0x12, 0x31) == bytes.fromhex("0212310348")  # board 1, lock 3: unlock
    reply = status_frame(0x10, b"\xff\x01", b"\x00\x80")
    assert len(reply) == 9 and check_reply(reply, 1) == ""
    assert check_reply(reply, 0) == "wrong-board"
    assert check_reply(reply[:5], 1) == "short"
    assert check_reply(b"", 1) == "no-reply"
    assert check_reply(reply[:-1] + b"\x00", 1) == "checksum"


def test_cu16_slots_map_to_board_and_lock_on_a_shared_bus(bus, clock):
    events = []
    with cu16(bus, clock) as bank:
        bank.start(events.append)
        bank.unlock(3)
        bank.unlock(18)
        assert bus.boards[0].unlocks == [2] and bus.boards[1].unlocks == [1]
        assert bytes.fromhex("0211310347") in bus.received  # 02 ADDR(board 1, lock 1) 31 03 SUM
        assert events == [DoorChanged(3, True), DoorChanged(18, True)]  # the reply to the unlock
        assert bank.health().available


def test_cu16_a_board_that_does_not_reply_to_unlocks_is_read_by_the_next_poll(tmp_path, clock):
    board = FakeBoard(0, unlock_replies=False)
    bus = PtyBus(tmp_path, [board])
    events = []
    with cu16(bus, clock, slots=16, boards=[0], unlock_replies=False) as bank:
        bank.start(events.append)
        bank.unlock(5)
        assert events == []  # nothing to read back
        bank.poll()  # the status request follows the unlock on the wire
        assert board.unlocks == [4]
        assert events == [DoorChanged(5, True)]
    bus.close()


@pytest.mark.parametrize("bit_order", ["lsb-first", "msb-first"])
@pytest.mark.parametrize("hook_closed_bit", [1, 0])
def test_cu16_bit_order_and_polarity_are_the_boards_quirks(tmp_path, clock, bit_order, hook_closed_bit):
    board = FakeBoard(0, bit_order=bit_order, hook_closed_bit=hook_closed_bit, infrared_occupied_bit=0)
    bus = PtyBus(tmp_path, [board])
    events = []
    with cu16(bus, clock, slots=16, boards=[0], bit_order=bit_order, hook_closed_bit=hook_closed_bit,
              infrared=True, infrared_occupied_bit=0) as bank:
        bank.start(events.append)
        board.closed[9] = False  # locker 10 forced
        board.items[0] = True
        bank.poll()
        assert events == [OccupancyChanged(1, True), DoorChanged(10, True)]
    bus.close()


@pytest.mark.parametrize("fault", ["garble", "short", "silent", "badsum", "other-board"])
def test_cu16_a_bad_reply_is_counted_and_retried(bus, clock, fault):
    with cu16(bus, clock) as bank:
        bank.start(lambda e: None)
        bus.boards[1].faults.append(fault)
        bus.boards[1].closed[0] = False
        bank.poll()
        assert bank.is_open(17)  # the retry got the status
        assert sum(bank.errors.values()) == 1
        assert bank.health().available


def test_cu16_noise_before_a_frame_is_skipped(bus, clock):
    with cu16(bus, clock) as bank:
        bank.start(lambda e: None)
        bus.boards[0].faults.append("noise")
        bus.boards[0].closed[1] = False
        bank.poll()
        assert bank.is_open(2) and sum(bank.errors.values()) == 0


def test_cu16_one_lost_reply_is_noise_a_silent_board_is_out_of_service(bus, clock, caplog):
    with cu16(bus, clock, retries=0, offline_after=3) as bank:
        bank.start(lambda e: None)
        bus.boards[1].faults.append("silent")
        bank.poll()
        assert bank.health().available
        bus.boards[1].silent = True
        for _ in range(3):
            bank.poll()
        health = bank.health()
        assert not health.available
        assert "lock board 1" in health.reason and "lockers 17-24 out of service" in health.reason
        assert set(bank.out_of_service()) == set(range(17, 25))
        with pytest.raises(DeviceError, match="out of service"):
            bank.unlock(20)
        bank.unlock(2)  # the other board still works
        assert bus.boards[1].unlocks == [] and bus.boards[0].unlocks == [1]
        asked = len(bus.received)
        bank.poll()  # the silent board is not asked again before reconnect_s
        assert len(bus.received) == asked + 1
        bus.boards[1].silent = False
        clock.advance(5.0)
        bank.poll()
        assert bank.health().available
        assert "lock board 1" in caplog.text and "back in service" in caplog.text


def test_cu16_an_unplugged_adapter_is_reopened_when_it_comes_back(bus, clock):
    with cu16(bus, clock, retries=0, offline_after=1) as bank:
        bank.start(lambda e: None)
        bus.unplug()
        bank.poll()
        bank.poll()
        health = bank.health()
        assert not health.available and "cannot open" in health.reason
        with pytest.raises(DeviceError):
            bank.unlock(1)
        bus.plug()
        bank.poll()  # the reopen waits for reconnect_s on the bank's clock
        assert not bank.health().available
        clock.advance(5.0)
        bank.poll()
        assert bank.health().available
        bank.unlock(1)
        assert bus.boards[0].unlocks == [0]


def test_cu16_a_board_that_never_answered_is_out_of_service_from_the_start(tmp_path, clock):
    bus = PtyBus(tmp_path, [FakeBoard(0)])
    with cu16(bus, clock, retries=0) as bank:  # board 1 is not on the bus
        bank.start(lambda e: None)
        assert set(bank.out_of_service()) == set(range(17, 25))
        assert "has not answered" in bank.health().reason
    bus.close()


def test_cu16_never_sends_unlock_all(bus, clock):
    with cu16(bus, clock) as bank:
        bank.start(lambda e: None)
        for slot in range(1, 25):
            bank.unlock(slot)
        assert all(request[2] in (0x30, 0x31) for request in bus.received)


def test_cu16_too_few_boards_for_the_lockers_is_an_error_before_any_io():
    with pytest.raises(DeviceError, match="24 lockers need more than 1 board"):
        Cu16LockBank(slots=24, boards=[0], port="/dev/null-does-not-exist")


def test_cu16_polls_on_its_own_thread_in_the_kiosk(bus, clock):
    import threading

    changed = threading.Event()
    events = []

    def emit(event):
        events.append(event)
        changed.set()

    with cu16(bus, clock, background=True, poll_interval_s=0.01) as bank:
        assert bank.polls_itself
        bank.start(emit)
        bus.boards[0].closed[0] = False
        assert changed.wait(5)
    assert events == [DoorChanged(1, True)]
