"""[devices.locks]: the gpio and cu16 settings, checked all at once, documented in config.toml."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from drivers import registry
from kiosk.config import ConfigError, Cu16LocksSection, GpioLocksSection, parse

ROOT = Path(__file__).resolve().parent.parent


def shipped_lock_examples() -> str:
    """The commented [devices.locks.gpio] and [devices.locks.cu16] examples, uncommented."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    start = text.index("# [devices.locks.gpio]")
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("#"):
            break
        body = line[2:]
        if re.match(r"\[|[a-z_]+ = |  \{|\]", body):
            lines.append(body)
    return "\n".join(lines)


def test_the_commented_lock_examples_are_valid_when_uncommented():
    config = parse('[devices.locks]\ndriver = "gpio"\nslots = 2\n' + shipped_lock_examples())
    assert config.devices.locks.gpio.lockers[1].occupancy_bcm_pin == 22
    assert config.devices.locks.cu16.boards == (0, 1)


@pytest.mark.parametrize("section", [GpioLocksSection, Cu16LocksSection])
def test_every_lock_setting_is_documented_in_config_toml(section):
    examples = shipped_lock_examples()
    for f in dataclasses.fields(section):
        assert re.search(rf"^{f.name} = ", examples, re.M), f"{section.__name__}.{f.name} is not in config.toml"


def test_gpio_problems_are_listed_all_at_once():
    text = """
[devices.locks]
driver = "gpio"
slots = 3
[devices.locks.gpio]
pin_factory = "pigpio"
lockers = [{ relay_bcm_pin = 5, door_bcm_pin = 6 }, { relay_bcm_pin = 5, door_bcm_pn = 7 }]
"""
    with pytest.raises(ConfigError) as raised:
        parse(text)
    problems = {p.key: p.message for p in raised.value.problems}
    assert "one of 'rpigpio', 'lgpio', 'mock'" in problems["devices.locks.gpio.pin_factory"]
    assert "did you mean 'door_bcm_pin'" in problems["devices.locks.gpio.lockers[2].door_bcm_pn"]
    assert "BCM 5 is already locker 1's relay_bcm_pin" in problems["devices.locks.gpio.lockers[2].relay_bcm_pin"]
    assert "missing" in problems["devices.locks.gpio.lockers[2].door_bcm_pin"]
    assert "one entry per locker (slots = 3)" in problems["devices.locks.gpio.lockers"]


def test_cu16_problems_are_listed_all_at_once():
    text = """
[devices.locks]
driver = "cu16"
slots = 40
[devices.locks.cu16]
boards = [0, 16]
baudrate = 14400
bit_order = "big"
"""
    with pytest.raises(ConfigError) as raised:
        parse(text)
    keys = {p.key for p in raised.value.problems}
    assert {"devices.locks.cu16.boards", "devices.locks.cu16.baudrate", "devices.locks.cu16.bit_order"} <= keys
    with pytest.raises(ConfigError, match="cannot hold 40 lockers"):
        parse(text.replace("[0, 16]", "[0, 1]").replace("14400", "19200").replace('"big"', '"msb-first"'))


def test_the_configured_options_build_the_adapter(clock):
    config = parse('[devices.locks]\ndriver = "gpio"\nslots = 2\n' + shipped_lock_examples().replace(
        'pin_factory = "rpigpio"', 'pin_factory = "mock"'))
    locks = config.devices.locks
    bank = registry.create("locks", locks.driver, clock=clock, **locks.adapter_options(config.doors))
    try:
        assert bank.slots == 2 and bank.unlock_mode == "pulse" and bank.watch.left_open_s == config.doors.left_open_s
    finally:
        bank.close()
    options = dataclasses.replace(locks, driver="cu16").adapter_options(config.doors)
    assert options["boards"] == [0, 1] and options["unlock_replies"] is True and options["slots"] == 2
