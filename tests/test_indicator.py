"""The LED and buzzer: patterns on the clock, wired into the kiosk's events."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.indicator import GpioIndicator
from kiosk.app import build
from kiosk.config import ConfigError, parse
from steps import choose, login


def test_a_pattern_plays_on_the_clock_and_ends_off(clock):
    factory = MockFactory()
    indicator = GpioIndicator(led_bcm_pin=17, buzzer_bcm_pin=27, pin_factory=factory, clock=clock)
    indicator.signal("error")
    assert indicator.is_on("buzzer") and indicator.is_on("led")
    clock.advance(0.15)
    indicator.poll()
    assert not indicator.is_on("buzzer")
    clock.advance(0.1)
    indicator.poll()
    assert indicator.is_on("buzzer")
    clock.advance(5)
    indicator.poll()
    assert not indicator.is_on("buzzer") and not indicator.is_on("led")
    indicator.close()
    indicator.close()
    assert factory.pin(17).state == 0


def test_a_new_signal_replaces_the_one_playing(clock):
    indicator = GpioIndicator(led_bcm_pin=17, pin_factory=MockFactory(), clock=clock)
    indicator.signal("unlock")  # LED on for 1.5 s
    clock.advance(0.2)
    indicator.signal("read")  # LED on for 0.3 s from now
    clock.advance(0.3)
    indicator.poll()
    assert not indicator.is_on("led")
    indicator.close()


def test_the_kiosk_beeps_on_a_read_an_unlock_and_a_refusal(tmp_path, clock):
    config = parse('[devices.indicator]\ndriver = "gpio"\npin_factory = "mock"\nled_bcm_pin = 17\nbuzzer_bcm_pin = 27\n')
    k = build(config, clock=clock, db_path=tmp_path / "kiosk.db")
    k.start()
    try:
        login(k)
        choose(k, "EM0000000003")
        assert k.devices.indicator.signals == ["read", "unlock"]
        assert k.devices.indicator.is_on("led")
        clock.advance(2)
        k.tick()  # the kiosk's loop plays the patterns
        assert not k.devices.indicator.is_on("led")
    finally:
        k.close()
    refused = build(config, clock=clock, db_path=tmp_path / "other.db")
    refused.start()
    try:
        refused.devices.card_reader.present(bytes.fromhex("DEADBEEF"))  # not a card of this library
        refused.pump()
        assert refused.devices.indicator.signals == ["read", "error"]
    finally:
        refused.close()


def test_indicator_pins_are_checked_against_the_lock_pins():
    text = """
[devices.locks]
driver = "gpio"
slots = 1
[devices.locks.gpio]
lockers = [{ relay_bcm_pin = 5, door_bcm_pin = 6 }]
[devices.indicator]
driver = "gpio"
led_bcm_pin = 6
"""
    with pytest.raises(ConfigError, match="devices.indicator.led_bcm_pin: BCM 6 is already locker 1's door_bcm_pin"):
        parse(text)
    with pytest.raises(ConfigError, match="needs an LED or a buzzer pin"):
        parse('[devices.indicator]\ndriver = "gpio"\n')
