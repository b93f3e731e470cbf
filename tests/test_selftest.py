"""`kiosk selftest`: unattended on simulated devices, and on real adapters over their fakes."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from cu16_board import FakeBoard, PtyBus
from drivers.base import Health
from drivers.cu16 import Cu16LockBank
from drivers.gpio_locks import GpioLockBank
from kiosk.cli import main
from kiosk.selftest import SelfTest, table

GPIO_CONFIG = """
[devices.locks]
driver = "gpio"
slots = 2
[devices.locks.gpio]
pin_factory = "{factory}"
lockers = [{{ relay_bcm_pin = 5, door_bcm_pin = 6 }}, {{ relay_bcm_pin = 13, door_bcm_pin = 19 }}]
"""


def test_selftest_on_the_simulated_devices_passes_unattended(tmp_path, capsys):
    config = tmp_path / "kiosk.toml"
    config.write_text('[devices.locks]\ndriver = "simulated"\nslots = 6\n', encoding="utf-8")
    assert main(["selftest", "--config", str(config), "--slots", "2,4-5", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    for line in ("card read", "barcode", "locker 2", "locker 4", "locker 5", "door sensors"):
        assert line in out
    assert "04A1B2C3" not in out and "…B2C3" in out  # the card's UID is masked
    assert out.strip().endswith("12 passed, 0 failed")


def test_selftest_of_one_device_and_a_locker_that_does_not_exist(tmp_path, capsys):
    config = tmp_path / "kiosk.toml"
    config.write_text('[devices.locks]\nslots = 4\n', encoding="utf-8")
    assert main(["selftest", "locks", "--config", str(config), "--slots", "1,9", "--timeout", "5"]) == 1
    out = capsys.readouterr().out
    assert "card read" not in out
    assert "there is no locker 9 (1..4)" in out
    assert out.strip().endswith("1 failed")


def test_a_device_that_cannot_be_built_fails_its_rows_and_the_others_still_run(tmp_path, capsys):
    config = tmp_path / "kiosk.toml"
    config.write_text(GPIO_CONFIG.format(factory="lgpio"), encoding="utf-8")  # no /dev/gpiochip here
    assert main(["selftest", "--config", str(config), "--timeout", "5"]) == 1
    out = capsys.readouterr().out
    start = [line for line in out.splitlines() if line.startswith("locks") and "start" in line]
    assert start and "FAIL" in start[0] and "pin factory 'lgpio' is not usable here" in start[0]
    assert "card read" in out and "barcode" in out


class Technician:
    """Opens a door once its relay is on, and shuts it once the bank has seen it open: run from
    the bank's own poll, so nothing waits on real time."""

    def __init__(self, bank, factory, slot, relay, door):
        self.bank, self.factory, self.slot, self.relay, self.door = bank, factory, slot, relay, door
        self.opens = True
        self._poll = bank.poll
        bank.poll = self.poll

    def poll(self):
        pin = self.factory.pin(self.door)
        if self.opens and self.factory.pin(self.relay).state == 0 and pin.state == 0:
            pin.drive_high()
        elif self.bank.is_open(self.slot) and pin.state == 1:
            pin.drive_low()
            self.opens = False
        self._poll()


def gpio_bank(clock):
    factory = MockFactory()
    bank = GpioLockBank(slots=2, lockers=[{"relay_bcm_pin": 5, "door_bcm_pin": 6},
                                          {"relay_bcm_pin": 13, "door_bcm_pin": 19}],
                        pin_factory=factory, unlock_mode="hold", debounce_s=0, clock=clock)
    factory.pin(6).drive_low()
    factory.pin(19).drive_low()
    return bank, factory


def test_selftest_pulses_a_gpio_lock_and_follows_its_door(clock):
    bank, factory = gpio_bank(clock)
    Technician(bank, factory, 2, relay=13, door=19)
    prompts = []
    results = SelfTest({"locks": bank}, timeout_s=5, prompt=prompts.append).run(["locks"], [2])
    rows = {r.check: r for r in results}
    assert rows["locker 2"].ok, table(results)
    assert "door opened" in rows["locker 2"].detail and "closed" in rows["locker 2"].detail
    assert rows["door sensors"].ok and rows["door sensors"].detail == "2 lockers: all closed"
    assert factory.pin(13).state == 1  # locked again, and the bank closed
    assert any("Locker 2" in p for p in prompts)


def test_a_door_that_never_opens_fails_with_what_to_check(clock):
    bank, factory = gpio_bank(clock)
    results = SelfTest({"locks": bank}, timeout_s=0.05, prompt=lambda text: None).run(["locks"], [1])
    row = next(r for r in results if r.check == "locker 1")
    assert not row.ok and "saw no opening within 0.05 s" in row.detail
    assert factory.pin(5).state == 1


def test_a_silent_lock_board_fails_the_pulse_and_the_sensor_report(tmp_path, clock):
    board = FakeBoard(0)
    board.silent = True
    bus = PtyBus(tmp_path, [board])
    bank = Cu16LockBank(slots=8, port=str(bus.path), boards=[0], timeout_s=0.05, retries=0, clock=clock,
                        background=False)
    results = SelfTest({"locks": bank}, timeout_s=1, prompt=lambda text: None).run(["locks"], [3])
    bus.close()
    rows = {r.check: r for r in results}
    assert not rows["health"].ok and "lock board 0" in rows["health"].detail
    assert not rows["locker 3"].ok and "out of service" in rows["locker 3"].detail
    assert not rows["door sensors"].ok and "out of service 8" in rows["door sensors"].detail
    assert board.unlocks == []


class QuietReader:
    """A real reader's shape with no card on it."""

    def __init__(self):
        self.closed = False

    def start(self, emit):
        pass

    def health(self):
        return Health(True)

    def close(self):
        self.closed = True


def test_no_card_within_the_timeout_is_a_fail_and_the_reader_is_closed():
    reader = QuietReader()
    results = SelfTest({"card_reader": reader}, timeout_s=0.05, prompt=lambda text: None).run(["card_reader"])
    row = next(r for r in results if r.check == "card read")
    assert not row.ok and "no card read within 0.05 s" in row.detail
    assert reader.closed


@pytest.mark.parametrize("text, slots", [("1,2", [1, 2]), ("5-7", [5, 6, 7]), ("3, 1-2", [3, 1, 2])])
def test_slots_are_given_as_lists_and_ranges(text, slots):
    from kiosk.cli import _slot_list

    assert _slot_list(text) == slots


def test_the_indicator_plays_its_signals_for_the_technician(clock):
    from drivers.indicator import GpioIndicator

    factory = MockFactory()
    indicator = GpioIndicator(led_bcm_pin=17, buzzer_bcm_pin=27, pin_factory=factory, clock=clock)

    def sleep(seconds):
        clock.advance(seconds)

    test = SelfTest({"indicator": indicator}, prompt=lambda text: None, monotonic=clock.monotonic, sleep=sleep)
    [start, health, signals] = test.run(["indicator"])
    assert start.ok and health.ok and signals.ok
    assert indicator.signals == ["read", "unlock", "error"]
    buzzer = [s.state for s in factory.pin(27).states]
    assert buzzer.count(True) == 1 + 2 + 3  # read: one beep, unlock: two, error: three
    assert factory.pin(17).state == 0 and factory.pin(27).state == 0
