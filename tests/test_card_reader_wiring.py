"""Card readers chosen in the config: names, options, checks, and a real adapter in a whole kiosk."""

import queue
import sys

import pytest

from drivers import registry
from drivers.base import CardRead
from fake_mfrc522 import FakeCard, FakeChip, install
from kiosk.app import build, build_devices
from kiosk.config import CardReaderSection, ConfigError, parse


def test_every_driver_the_config_allows_is_registered():
    choices = CardReaderSection.__dataclass_fields__["driver"].metadata["choices"]
    assert set(choices) == set(registry.ADAPTERS["card_reader"])


def test_options_reach_the_adapter_and_no_hardware_library_is_imported_yet():
    config = parse('[devices.card_reader]\ndriver = "mfrc522"\nspi_bus = 1\nspi_device = 1\nrst_bcm_pin = 22\n'
                   'poll_interval_s = 0.05\n')
    reader = build_devices(config).card_reader
    assert (reader.spi_bus, reader.spi_device, reader.rst_bcm_pin, reader.poll_interval_s) == (1, 1, 22, 0.05)
    assert "RPi.GPIO" not in sys.modules  # imported only when the reader opens, on the Pi
    assert not reader.health().available


@pytest.mark.parametrize("text, driver, attr, value", [
    ('driver = "nfc"\nnfc_path = "usb:054c:06c1"', "NfcReader", "nfc_path", "usb:054c:06c1"),
    ('driver = "nfc"\nnfc_targets = ["106A"]', "NfcReader", "targets", ("106A",)),
    ('driver = "keyboard_wedge"\nevdev_path = "/dev/input/by-id/usb-X-event-kbd"\nwedge_format = "hex"',
     "KeyboardWedgeReader", "wedge_format", "hex"),
])
def test_nfc_and_wedge_options(text, driver, attr, value):
    reader = build_devices(parse("[devices.card_reader]\n" + text + "\n")).card_reader
    assert type(reader).__name__ == driver and getattr(reader, attr) == value


@pytest.mark.parametrize("text, key", [
    ('driver = "keyboard_wedge"', "devices.card_reader.evdev_path"),
    ('driver = "nfc"\nnfc_path = "pasori"', "devices.card_reader.nfc_path"),
    ('driver = "mfrc522"\nrst_bcm_pin = 40', "devices.card_reader.rst_bcm_pin"),
    ('driver = "rc522"', "devices.card_reader.driver"),
    ('driver = "nfc"\nnfc_targets = ["106A", "14443A"]', "devices.card_reader.nfc_targets"),
])
def test_bad_card_reader_settings_name_the_key(text, key):
    with pytest.raises(ConfigError) as caught:
        parse("[devices.card_reader]\n" + text + "\n")
    assert [p.key for p in caught.value.problems] == [key]


class NotifyingInbox:
    """The kiosk's inbox, telling the test when a device put something in it."""

    def __init__(self):
        self.q = queue.SimpleQueue()
        self.arrived = queue.SimpleQueue()

    def put(self, item):
        self.q.put(item)
        self.arrived.put(item)

    def get_nowait(self):
        return self.q.get_nowait()


def test_a_card_on_a_real_mfrc522_logs_member_1_in(tmp_path, clock, monkeypatch):
    gpio, spidev = install(monkeypatch)
    chip = FakeChip()
    spidev.chips[(0, 0)] = chip
    config = parse('[devices.card_reader]\ndriver = "mfrc522"\npoll_interval_s = 0.005\n')
    kiosk = build(config, clock=clock, db_path=tmp_path / "kiosk.db")
    kiosk._inbox = NotifyingInbox()
    kiosk.start()
    try:
        chip.tap(FakeCard(bytes.fromhex("04A1B2C3")))
        assert kiosk._inbox.arrived.get(timeout=10) == CardRead(bytes.fromhex("04A1B2C3"))
        kiosk.pump()
        assert kiosk.state.screen == "pin"  # member 1's card, as with the simulated reader
    finally:
        kiosk.close()
    assert gpio.cleanups == [25]


def test_the_commented_card_reader_settings_in_config_toml_are_valid():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "config.toml").read_text(encoding="utf-8")
    section = text.split("[devices.card_reader]", 1)[1].split("\n[", 1)[0]
    settings = [m.group(1) for m in re.finditer(r"^# (\w+ = [^#]+?)\s*(?:#.*)?$", section, re.M)]
    assert len(settings) >= 10
    for driver in ("mfrc522", "nfc", "keyboard_wedge"):
        body = "\n".join(s for s in settings if not s.startswith("evdev_path")) + \
            '\nevdev_path = "/dev/input/by-id/usb-X-event-kbd"'
        config = parse(f'[devices.card_reader]\ndriver = "{driver}"\n{body}\n')
        assert build_devices(config).card_reader.health().reason == "not started"


def test_an_unplugged_nfc_reader_tells_staff_and_barcode_login_still_works(tmp_path, clock, monkeypatch):
    from fake_pn533 import Pn533World

    world = Pn533World().install(monkeypatch)
    world.plugged = False
    config = parse('[devices.card_reader]\ndriver = "nfc"\n')
    kiosk = build(config, clock=clock, db_path=tmp_path / "kiosk.db")
    reader = kiosk.devices.card_reader
    monkeypatch.setattr(reader, "start", reader.attach)  # no thread: the test steps the reader
    kiosk.start()
    try:
        reader.step()
        (notice,) = kiosk.status().notices
        assert notice.startswith("card_reader: no NFC reader found")
        kiosk.devices.scanner.show("11110100000001")  # a phone's member barcode
        kiosk.pump()
        assert kiosk.state.screen == "pin"
        world.plugged = True
        clock.advance(1.0)  # the first back-off is 0.5 s
        reader.step()
        assert kiosk.status().notices == ()
    finally:
        kiosk.close()


@pytest.mark.parametrize("uid", ["04A1B2C3", "04112233445566"])
def test_kiosk_selftest_reads_a_card_on_a_real_mfrc522(monkeypatch, uid):
    from kiosk.clock import SystemClock
    from kiosk.selftest import SelfTest
    from kiosk.selftest import build as build_for_selftest

    gpio, spidev = install(monkeypatch)
    chip = FakeChip()
    spidev.chips[(0, 0)] = chip
    config = parse('[devices.card_reader]\ndriver = "mfrc522"\npoll_interval_s = 0.005\n')
    devices, failures = build_for_selftest(config, ["card_reader"], SystemClock())

    def technician(text):
        if "Tap a card" in text:
            chip.tap(FakeCard(bytes.fromhex(uid), sak=0x08 if len(uid) == 8 else 0x00))

    results = SelfTest(devices, failures=failures, timeout_s=10, prompt=technician).run(["card_reader"])
    rows = {r.check: r for r in results}
    assert rows["start"].ok and rows["health"].ok and rows["card read"].ok
    assert f"({len(uid) // 2} bytes)" in rows["card read"].detail and uid not in rows["card read"].detail
    assert gpio.cleanups == [25]  # closed after the test, its own pin only


def test_an_mfrc522s_reset_and_spi_pins_are_its_own():
    text = ('[devices.card_reader]\ndriver = "mfrc522"\n'
            '[devices.locks]\ndriver = "gpio"\nslots = 2\n'
            '[devices.locks.gpio]\nlockers = [{ relay_bcm_pin = 25, door_bcm_pin = 10 }, '
            '{ relay_bcm_pin = 6, door_bcm_pin = 16 }]\n')
    with pytest.raises(ConfigError) as caught:
        parse(text)
    problems = {p.key: p.message for p in caught.value.problems}
    assert problems == {
        "devices.locks.gpio.lockers[1].relay_bcm_pin": "BCM 25 is the card reader's RST",
        "devices.locks.gpio.lockers[1].door_bcm_pin": "BCM 10 is the card reader's SPI0 MOSI",
    }
    with pytest.raises(ConfigError) as caught:
        parse('[devices.card_reader]\ndriver = "mfrc522"\nrst_bcm_pin = 8\n')
    assert [p.key for p in caught.value.problems] == ["devices.card_reader.rst_bcm_pin"]
    parse(text.replace("relay_bcm_pin = 25, door_bcm_pin = 10", "relay_bcm_pin = 5, door_bcm_pin = 12"))
