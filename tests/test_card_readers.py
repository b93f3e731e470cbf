"""Card readers: the same contract for the simulated reader and every real adapter, each real one
running its own code (and its library's: mfrc522, nfcpy, evdev) over a fake lowest layer: the
MFRC522's registers on a fake SPI bus, a PN533 and an RC-S380 behind a fake USB transport
(nfcpy's own pn533 and rcs380 drivers run), a recorded evdev stream."""

from __future__ import annotations

import logging
import queue
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import CardRead
from drivers.simulated import SimCardReader
from fake_evdev import EvdevWorld, typed
from fake_mfrc522 import FakeCard, FakeChip, install
from fake_pn533 import Pn533World
from kiosk.identifiers import IdentifierRules, format_uid

MEMBER_1_CARD = bytes.fromhex("04A1B2C3")  # demo member 11110100000001
SEVEN = bytes.fromhex("04112233445566")
WEDGE_PATH = "/dev/input/by-id/usb-Card_Reader_0001-event-kbd"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Rig:
    """A reader and the hand that taps cards on it. `poll()` lets the reader look `n` times, the
    fake clock moving one poll interval each time (the reader thread's job, done here in step)."""

    threaded_poll_interval_s = 0.005

    def __init__(self) -> None:
        self.clock = Clock()
        self.events: list[CardRead] = []
        self.reader = None

    def start(self) -> None:
        self.reader.attach(self.events.append)
        self.poll()  # the reader thread's first step opens the device

    def poll(self, n: int = 1) -> None:
        for _ in range(n):
            self.reader.step()
            self.clock.t += 0.1

    def wait(self, seconds: float) -> None:
        """Time passes with the reader polling all along."""
        self.poll(max(1, int(seconds / 0.1)))

    def close(self) -> None:
        self.reader.close()


class SimRig(Rig):
    name = "simulated"

    def __init__(self, monkeypatch) -> None:
        super().__init__()
        self.reader = SimCardReader()

    def start(self) -> None:
        self.reader.start(self.events.append)

    def tap(self, uid: bytes) -> None:
        self.reader.present(uid)

    def lift(self) -> None:
        pass

    def poll(self, n: int = 1) -> None:
        self.clock.t += 0.1 * n


class Mfrc522Rig(Rig):
    name = "mfrc522"

    def __init__(self, monkeypatch, **options) -> None:
        super().__init__()
        self.gpio, self.spidev = install(monkeypatch)
        self.chip = FakeChip()
        self.spidev.chips[(0, 0)] = self.chip
        from drivers.mfrc522_reader import Mfrc522Reader

        self.options = {"clock": self.clock, **options}
        self.reader = Mfrc522Reader(**self.options)

    def tap(self, uid: bytes, **card) -> FakeCard:
        return self.chip.tap(FakeCard(uid, sak=0x08 if len(uid) == 4 else 0x00, **card))

    def lift(self) -> None:
        self.chip.remove()

    def unplug(self) -> None:
        self.chip.wired = False

    def replug(self) -> None:
        self.chip.wired = True

    def garbage(self) -> None:
        self.tap(MEMBER_1_CARD, bad_bcc=True)


class NfcRig(Rig):
    """A PN533 reader (SCL3711): nfcpy's pn533 driver; the chip does ISO 14443-3 itself."""

    name = "nfc-pn533"
    drops_nonsense = False

    def __init__(self, monkeypatch, **options) -> None:
        super().__init__()
        self.world = Pn533World().install(monkeypatch)
        from drivers.nfc_reader import NfcReader

        self.options = {"clock": self.clock, "nfc_path": "usb:04e6:5591", **options}
        self.reader = NfcReader(**self.options)

    def tap(self, uid: bytes, kind: str = "A") -> None:
        self.world.tap(kind, uid)

    def lift(self) -> None:
        self.world.remove()

    def unplug(self) -> None:
        self.world.plugged = False

    def replug(self) -> None:
        self.world.plugged = True

    def garbage(self) -> None:
        self.world.garbage_uid = b"\x01\x02\x03\x04\x05"  # no card has a 5-byte UID


class Rcs380Rig(NfcRig):
    """A Sony RC-S380: nfcpy's rcs380 driver does ISO 14443-3 itself, over InCommRF."""

    name = "nfc-rcs380"
    drops_nonsense = True  # nfcpy checks what the RC-S380 hands over: nonsense never reaches us

    def __init__(self, monkeypatch, **options) -> None:
        Rig.__init__(self)
        from fake_rcs380 import Rcs380World

        self.world = Rcs380World().install(monkeypatch)
        from drivers.nfc_reader import NfcReader

        self.options = {"clock": self.clock, "nfc_path": "usb:054c:06c1", **options}
        self.reader = NfcReader(**self.options)


class WedgeRig(Rig):
    """A reader that types the 4-byte UID reversed, as a 10-digit decimal number (the usual)."""

    name = "keyboard_wedge"
    threaded_poll_interval_s = 0.005

    def __init__(self, monkeypatch, **options) -> None:
        super().__init__()
        self.world = EvdevWorld().install(monkeypatch)
        self.world.plugged.add(WEDGE_PATH)
        from drivers.keyboard_wedge import KeyboardWedgeReader

        # select() waits this long for keys; the fake clock is what the debouncer reads
        self.options = {"clock": self.clock, "evdev_path": WEDGE_PATH, "poll_interval_s": 0.002, **options}
        self.reader = KeyboardWedgeReader(**self.options)
        self.holding: bytes | None = None

    def line(self, uid: bytes) -> str:
        rules = IdentifierRules(uid_format="decimal", uid_byte_order="reversed",
                                uid_decimal_digits=10 if len(uid) == 4 else 0)
        return format_uid(uid, rules)

    def tap(self, uid: bytes) -> None:
        self.world.send(typed(self.line(uid)))
        self.holding = uid

    def poll(self, n: int = 1) -> None:
        for i in range(n):
            # Cheap wedge readers type the card again every 0.5 s while it stays on them.
            if self.holding is not None and i and i % 5 == 0 and not self.world.device.closed:
                self.world.send(typed(self.line(self.holding)))
            self.reader.step()
            self.clock.t += 0.1

    def lift(self) -> None:
        self.holding = None

    def unplug(self) -> None:
        self.world.unplug(WEDGE_PATH)

    def replug(self) -> None:
        self.world.plugged.add(WEDGE_PATH)

    def garbage(self) -> None:
        self.world.send(typed("ERR?!"))

    def close(self) -> None:
        super().close()
        self.world.close_all()


ALL = [SimRig, Mfrc522Rig, NfcRig, Rcs380Rig, WedgeRig]
REAL = [Mfrc522Rig, NfcRig, Rcs380Rig, WedgeRig]


@pytest.fixture(params=ALL, ids=lambda r: r.name)
def rig(request, monkeypatch):
    r = request.param(monkeypatch)
    yield r
    r.close()


@pytest.fixture(params=REAL, ids=lambda r: r.name)
def real(request, monkeypatch):
    r = request.param(monkeypatch)
    yield r
    r.close()


# -- the contract, for every reader


def test_a_tap_is_reported_once_with_the_plain_uid(rig):
    rig.start()
    rig.poll()
    assert rig.reader.health().available
    rig.tap(MEMBER_1_CARD)
    rig.poll(3)
    assert rig.events == [CardRead(MEMBER_1_CARD)]


def test_a_card_held_on_the_reader_is_one_tap_and_a_new_tap_is_another(rig):
    rig.start()
    rig.tap(MEMBER_1_CARD)
    rig.wait(3.0)  # held for 3 s
    assert rig.events == [CardRead(MEMBER_1_CARD)]
    rig.lift()
    rig.wait(1.5)
    rig.tap(MEMBER_1_CARD)
    rig.poll(2)
    assert rig.events == [CardRead(MEMBER_1_CARD)] * 2


def test_another_card_right_after_is_a_new_tap(rig):
    rig.start()
    rig.tap(MEMBER_1_CARD)
    rig.poll(2)
    rig.lift()
    other = bytes.fromhex("04A1B2C4")
    rig.tap(other)
    rig.poll(2)
    assert rig.events == [CardRead(MEMBER_1_CARD), CardRead(other)]


def test_a_seven_byte_uid_is_read_whole(rig):
    rig.start()
    rig.tap(SEVEN)
    rig.poll(2)
    assert rig.events == [CardRead(SEVEN)]


def test_the_same_card_gives_the_same_member_on_every_reader(rig):
    rig.start()
    rig.tap(MEMBER_1_CARD)
    rig.poll(2)
    (event,) = rig.events
    assert format_uid(event.uid, IdentifierRules()) == "04A1B2C3"  # member 1's registered card


def test_health_before_start_and_after_close_and_close_is_idempotent(rig):
    assert not rig.reader.health().available
    rig.start()
    rig.poll()
    assert rig.reader.health().available
    rig.reader.close()
    rig.reader.close()
    assert rig.reader.health() == rig.reader.health().__class__(False, "not started")
    assert "SimCardReader" in repr(rig.reader) or "available" in repr(rig.reader)


def test_a_started_reader_reports_from_its_own_thread(request, monkeypatch):
    for rig_class in REAL:
        r = rig_class(monkeypatch, poll_interval_s=rig_class.threaded_poll_interval_s, clock=__import__("time").monotonic)
        got = queue.Queue()
        r.reader.start(got.put)
        try:
            r.tap(MEMBER_1_CARD)
            assert got.get(timeout=10) == CardRead(MEMBER_1_CARD), rig_class.name
            assert r.reader.health().available
        finally:
            r.close()
        assert not any(t.name.startswith("kiosk ") and "card reader" in t.name and t.is_alive()
                       for t in threading.enumerate()), rig_class.name


# -- unplugging, nonsense, logs: every real reader


def test_an_unplugged_reader_is_unavailable_and_comes_back_by_itself(real):
    real.start()
    real.poll()
    assert real.reader.health().available
    real.unplug()
    real.poll(3)
    health = real.reader.health()
    assert not health.available and health.reason
    real.replug()
    real.wait(35.0)  # longer than the largest back-off
    assert real.reader.health().available
    real.tap(MEMBER_1_CARD)
    real.poll(3)
    assert real.events == [CardRead(MEMBER_1_CARD)]
    assert real.reader.stats["opens"] >= 2


def test_back_off_grows_while_the_reader_stays_unplugged(real):
    real.start()
    real.poll()
    real.unplug()
    real.wait(60.0)
    failures = real.reader.stats["failures"]
    assert 3 <= failures <= 10  # 0.5, 1, 2, 4, … 30 s: not 600 attempts


def test_persistent_nonsense_is_counted_logged_and_marks_the_reader_unavailable(real, caplog):
    caplog.set_level(logging.WARNING, "kiosk.card_reader")
    if getattr(real, "drops_nonsense", False):
        pytest.skip("nfcpy's rcs380 driver drops nonsense itself (see the RC-S380 test below)")
    real.start()
    real.poll()
    real.garbage()
    if isinstance(real, WedgeRig):
        for _ in range(6):
            real.garbage()
            real.poll()
    else:
        real.poll(6)
    assert real.events == []
    assert real.reader.stats["bad_reads"] >= 5
    health = real.reader.health()
    assert not health.available and "unreadable" in health.reason
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    if isinstance(real, NfcRig):
        real.world.garbage_uid = None
    real.lift()
    real.tap(MEMBER_1_CARD)
    real.poll(3)
    assert real.events == [CardRead(MEMBER_1_CARD)]
    assert real.reader.health().available


def test_logs_never_show_more_of_a_uid_than_its_last_4_hex_digits(real, caplog):
    caplog.set_level(logging.DEBUG)
    real.start()
    real.tap(MEMBER_1_CARD)
    real.poll(3)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "B2C3" in text
    for whole in ("04A1B2C3", "04a1b2c3", "3283263748", "C3B2A104", str(int.from_bytes(MEMBER_1_CARD, "big"))):
        assert whole not in text


# -- MFRC522


@pytest.fixture
def mfrc(monkeypatch):
    r = Mfrc522Rig(monkeypatch)
    yield r
    r.close()


def test_mfrc522_reads_through_the_package_and_halts_the_card(mfrc):
    mfrc.start()
    card = mfrc.tap(MEMBER_1_CARD)
    mfrc.poll()
    assert card.answered == ["ATQA", "ANTICOLL1", "SELECT1", "HALT"]
    assert mfrc.events == [CardRead(MEMBER_1_CARD)]  # 4 bytes: no check byte


def test_mfrc522_reads_seven_and_ten_byte_uids_over_the_cascade_levels(mfrc):
    mfrc.start()
    card = mfrc.tap(SEVEN)
    mfrc.poll()
    assert card.answered == ["ATQA", "ANTICOLL1", "SELECT1", "ANTICOLL2", "SELECT2", "HALT"]
    mfrc.lift()
    ten = bytes.fromhex("04112233445566778899")
    mfrc.tap(ten)
    mfrc.poll()
    assert mfrc.events == [CardRead(SEVEN), CardRead(ten)]


def test_the_check_byte_option_gives_the_number_the_package_read_id_gives(mfrc):
    from mfrc522 import SimpleMFRC522

    mfrc.tap(MEMBER_1_CARD)
    folded = SimpleMFRC522().read_id_no_block()  # what a library enrolled with this package has
    rules = IdentifierRules(uid_format="decimal", uid_decimal_digits=0, uid_check_byte=True)
    assert format_uid(MEMBER_1_CARD, rules) == str(folded)
    assert format_uid(MEMBER_1_CARD, IdentifierRules()) == "04A1B2C3"


@pytest.mark.parametrize("fault, reason", [
    ({"bad_bcc": True}, "BCC"),
    ({"bad_crc": True}, "CRC"),
])
def test_mfrc522_a_wrong_check_byte_or_crc_is_a_bad_read_not_a_tap(mfrc, fault, reason, caplog):
    mfrc.start()
    mfrc.tap(MEMBER_1_CARD, **fault)
    mfrc.poll()
    assert mfrc.events == []
    assert mfrc.reader.stats["bad_reads"] == 1
    assert reason in caplog.text


def test_mfrc522_two_cards_at_once_is_a_bad_read(mfrc, caplog):
    mfrc.start()
    mfrc.tap(MEMBER_1_CARD)
    mfrc.chip.collision = True
    mfrc.poll()
    assert mfrc.events == [] and "two cards" in caplog.text


def test_mfrc522_a_card_taken_away_mid_read_is_nothing_at_all(mfrc):
    mfrc.start()
    mfrc.tap(MEMBER_1_CARD, leave_after_atqa=True)
    mfrc.poll(3)
    assert mfrc.events == []
    assert mfrc.reader.stats["bad_reads"] == 0
    assert mfrc.reader.health().available


def test_mfrc522_loose_wire_then_a_power_dip_then_recovery(mfrc):
    mfrc.start()
    mfrc.poll()
    mfrc.unplug()
    mfrc.poll()
    assert "VersionReg reads 0x00" in mfrc.reader.health().reason
    mfrc.replug()
    mfrc.wait(2.0)
    assert mfrc.reader.health().available
    mfrc.chip.power_dip()  # the chip forgets MFRC522_Init's settings
    mfrc.poll()
    assert "lost its settings" in mfrc.reader.health().reason
    mfrc.wait(2.0)
    assert mfrc.reader.health().available
    mfrc.tap(MEMBER_1_CARD)
    mfrc.poll()
    assert mfrc.events == [CardRead(MEMBER_1_CARD)]


def test_mfrc522_claims_bcm_drives_its_reset_pin_and_cleans_up_only_that_pin(mfrc):
    mfrc.start()
    mfrc.poll()
    assert mfrc.gpio.mode == mfrc.gpio.BCM
    assert mfrc.gpio.levels[25] == 1  # reset released: the chip runs
    mfrc.unplug()
    mfrc.poll()  # a reopen releases and sets the pin up again
    mfrc.replug()
    mfrc.wait(2.0)
    mfrc.close()
    assert mfrc.gpio.cleanups and all(c == 25 for c in mfrc.gpio.cleanups)  # never cleanup() of all
    assert mfrc.gpio.mode == mfrc.gpio.BCM  # the other devices' numbering stays


def test_mfrc522_refuses_board_numbering_set_by_someone_else(mfrc):
    mfrc.gpio.setmode(mfrc.gpio.BOARD)
    mfrc.start()
    mfrc.poll()
    health = mfrc.reader.health()
    assert not health.available and "BOARD" in health.reason and "BCM" in health.reason


def test_mfrc522_without_spi_enabled_says_how_to_enable_it(monkeypatch):
    r = Mfrc522Rig(monkeypatch, spi_bus=1)
    r.start()
    r.poll()
    assert "enable SPI" in r.reader.health().reason and "/dev/spidev1.0" in r.reader.health().reason
    r.close()


# -- nfcpy


@pytest.fixture
def nfcrig(monkeypatch):
    r = NfcRig(monkeypatch)
    yield r
    r.close()


def test_nfc_reads_type_b_pupi_and_felica_idm(nfcrig):
    nfcrig.start()
    nfcrig.tap(bytes.fromhex("1A2B3C4D"), kind="B")
    nfcrig.poll()
    nfcrig.lift()
    idm = bytes.fromhex("012E4CD2F2A1B2C3")
    nfcrig.tap(idm, kind="F")
    nfcrig.poll()
    assert nfcrig.events == [CardRead(bytes.fromhex("1A2B3C4D")), CardRead(idm)]


def test_nfc_initialises_the_pn533_and_senses_all_three_technologies(nfcrig):
    nfcrig.start()
    assert nfcrig.world.commands[:2] == [0x00, 0x02]  # nfcpy's driver: line test, firmware version
    assert "usb:04e6:5591" in repr(nfcrig.reader) and "available" in repr(nfcrig.reader)
    before = nfcrig.world.senses
    nfcrig.poll()
    assert nfcrig.world.senses - before == 3  # InListPassiveTarget for 106A, 106B, 212F, once a poll


def test_nfc_reader_missing_at_start_is_unavailable_and_found_when_plugged(nfcrig):
    nfcrig.unplug()
    nfcrig.start()
    nfcrig.poll()
    assert "no NFC reader found" in nfcrig.reader.health().reason
    nfcrig.replug()
    nfcrig.wait(2.0)
    assert nfcrig.reader.health().available


def test_nfc_unplug_closes_the_old_device_and_replug_opens_a_new_one(nfcrig):
    nfcrig.start()
    first = nfcrig.world.transports[0]
    nfcrig.unplug()
    nfcrig.poll()
    assert not nfcrig.reader.health().available
    nfcrig.replug()
    nfcrig.wait(2.0)
    assert nfcrig.reader.health().available
    assert len(nfcrig.world.transports) == 2 and nfcrig.world.transports[1] is not first


def test_nfc_a_reader_of_another_model_at_a_precise_path_is_not_taken(monkeypatch):
    r = NfcRig(monkeypatch, nfc_path="usb:054c:06c1")  # an RC-S380 is configured, a PN533 is plugged
    r.start()
    assert "no NFC reader found at 'usb:054c:06c1'" in r.reader.health().reason
    r.close()


# -- keyboard wedge


@pytest.fixture
def wedge(monkeypatch):
    r = WedgeRig(monkeypatch)
    yield r
    r.close()


def test_wedge_grabs_the_device_so_keys_reach_nothing_else(wedge):
    wedge.start()
    wedge.poll()
    assert wedge.world.device.grabbed
    wedge.reader.close()
    assert wedge.world.device.closed


def test_wedge_grabbed_by_another_program_says_so(wedge):
    wedge.world.grabbed_elsewhere = True
    wedge.start()
    wedge.poll()
    assert "in use by another program" in wedge.reader.health().reason


def test_wedge_typing_hex_in_reading_order(monkeypatch):
    r = WedgeRig(monkeypatch, wedge_format="hex", wedge_byte_order="as-read")
    r.start()
    r.poll()
    r.world.send(typed("04a1b2c3") + typed("04112233445566"))
    r.poll(3)
    assert r.events == [CardRead(MEMBER_1_CARD), CardRead(SEVEN)]
    r.close()


# A capture of a 13.56 MHz USB wedge reader typing "3283263748" (member 1's card, reversed, in
# decimal) and Enter: MSC_SCAN, key down, SYN, MSC_SCAN, key up, SYN for every key.
_DIGIT_CODES = {"1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11}
RECORDED = []
for _i, _code in enumerate([_DIGIT_CODES[d] for d in "3283263748"] + [28]):
    _sec, _usec = 1764590000, 120000 + 16000 * _i
    RECORDED += [(_sec, _usec, 4, 4, 0x70000 | (_code + 0x1D)), (_sec, _usec, 1, _code, 1), (_sec, _usec, 0, 0, 0),
                 (_sec, _usec + 8000, 4, 4, 0x70000 | (_code + 0x1D)), (_sec, _usec + 8000, 1, _code, 0),
                 (_sec, _usec + 8000, 0, 0, 0)]


def test_wedge_recorded_stream_gives_member_1s_card(wedge):
    import evdev

    wedge.start()
    wedge.poll()
    wedge.world.send([evdev.InputEvent(*fields) for fields in RECORDED])
    wedge.poll()
    assert wedge.events == [CardRead(MEMBER_1_CARD)]


def test_wedge_unplugged_in_the_middle_of_a_line_drops_the_half_line(wedge):
    wedge.start()
    wedge.poll()
    half = typed("3283263748")[:30]
    wedge.world.send(half)
    wedge.poll()
    wedge.unplug()
    wedge.poll()
    assert not wedge.reader.health().available
    wedge.replug()
    wedge.wait(2.0)
    wedge.world.send(typed("3283263748"))
    wedge.poll()
    assert wedge.events == [CardRead(MEMBER_1_CARD)]


def test_health_right_after_start_says_whether_the_reader_is_there(monkeypatch):
    for rig_class in REAL:
        r = rig_class(monkeypatch)
        r.reader.start(lambda event: None)  # what `kiosk selftest` and the kiosk do
        try:
            assert r.reader.health().available, rig_class.name
        finally:
            r.close()
        r = rig_class(monkeypatch)
        r.unplug()
        r.reader.start(lambda event: None)
        try:
            assert not r.reader.health().available and r.reader.health().reason != "opening", rig_class.name
        finally:
            r.close()


def test_nfc_senses_only_the_configured_card_types(monkeypatch):
    r = NfcRig(monkeypatch, targets=("106A",))
    r.start()
    before = r.world.senses
    r.tap(bytes.fromhex("1A2B3C4D"), kind="B")  # a type B card: not looked for
    r.poll()
    assert r.world.senses - before == 1 and r.events == []
    r.close()


def test_wedge_a_4000_character_line_is_one_bad_read_and_the_next_card_reads(wedge):
    wedge.start()
    wedge.world.send(typed("7" * 4000))
    wedge.poll(2)
    assert wedge.events == [] and wedge.reader.stats["bad_reads"] == 1
    wedge.world.send(typed("3283263748"))
    wedge.poll()
    assert wedge.events == [CardRead(MEMBER_1_CARD)]


def test_mfrc522_on_a_machine_where_rpi_gpio_cannot_run_says_what_to_install(monkeypatch, tmp_path):
    package = tmp_path / "RPi"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "GPIO.py").write_text("raise RuntimeError('Cannot determine SOC peripheral base address')\n")
    for name in [n for n in sys.modules if n == "RPi" or n.startswith("RPi.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    from drivers.mfrc522_reader import Mfrc522Reader

    reader = Mfrc522Reader()
    reader.start(lambda event: None)
    try:
        assert "rpi-lgpio" in reader.health().reason
    finally:
        reader.close()


@pytest.mark.parametrize("module, build", [
    ("RPi.GPIO", lambda: __import__("drivers.mfrc522_reader", fromlist=["x"]).Mfrc522Reader()),
    ("nfc", lambda: __import__("drivers.nfc_reader", fromlist=["x"]).NfcReader()),
    ("evdev", lambda: __import__("drivers.keyboard_wedge", fromlist=["x"]).KeyboardWedgeReader(evdev_path=WEDGE_PATH)),
])
def test_a_reader_library_that_is_not_installed_is_named_with_the_fix(monkeypatch, module, build):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    reader = build()
    reader.start(lambda event: None)
    try:
        health = reader.health()
        assert not health.available and "pip install '.[pi]'" in health.reason
    finally:
        reader.close()


def test_a_bug_in_a_read_does_not_kill_the_reader_thread(monkeypatch, caplog):
    import time as real_time

    r = Mfrc522Rig(monkeypatch, poll_interval_s=0.005, clock=real_time.monotonic, reconnect_initial_s=0.01)
    got = queue.Queue()
    broken = {"left": 2}
    original = r.reader._read

    def flaky():
        if broken["left"]:
            broken["left"] -= 1
            raise KeyError("a bug")
        return original()

    monkeypatch.setattr(r.reader, "_read", flaky)
    r.reader.start(got.put)
    try:
        r.tap(MEMBER_1_CARD)
        assert got.get(timeout=10) == CardRead(MEMBER_1_CARD)
    finally:
        r.close()
    assert "unexpected error" in caplog.text


def test_rcs380_a_card_talking_nonsense_is_dropped_by_nfcpy_and_the_reader_stays_well(monkeypatch):
    r = Rcs380Rig(monkeypatch)
    r.start()
    r.garbage()
    r.poll(10)
    assert r.events == [] and r.reader.health().available
    r.world.garbage_uid = None
    r.tap(MEMBER_1_CARD)
    r.poll()
    assert r.events == [CardRead(MEMBER_1_CARD)]
    r.close()


def test_rcs380_runs_the_iso14443_anticollision_itself(monkeypatch):
    r = Rcs380Rig(monkeypatch)
    r.start()
    r.tap(SEVEN)
    r.poll()
    card = r.world.a_card
    assert card.answered[:5] == ["ATQA", "ANTICOLL1", "SELECT1", "ANTICOLL2", "SELECT2"]
    assert r.events == [CardRead(SEVEN)]
    r.close()


# -- property tests: any UID reads back whole; any nonsense from a card is survived

uids = st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n)).filter(
    lambda u: u[0] != 0x88)  # 0x88 is the cascade tag: no UID starts with it


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(uid=uids)
def test_any_uid_reads_back_whole_on_the_mfrc522_and_the_rcs380(monkeypatch, uid):
    for rig_class in (Mfrc522Rig, Rcs380Rig):
        with monkeypatch.context() as mp:
            r = rig_class(mp)
            r.start()
            r.tap(uid)
            r.poll()
            assert r.events == [CardRead(uid)], rig_class.name
            r.close()


class ChattyCard(FakeCard):
    """A card (or noise) that answers whatever it is sent with the bytes it is given."""

    def __init__(self, answers):
        super().__init__(b"\x04\x01\x02\x03")
        self.answers = list(answers)

    def respond(self, frame, last_bits):
        return self.answers.pop(0) if self.answers else None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.lists(st.one_of(st.none(), st.binary(min_size=0, max_size=20)), min_size=1, max_size=12))
def test_whatever_a_card_answers_the_mfrc522_reader_survives(monkeypatch, answers):
    with monkeypatch.context() as mp:
        r = Mfrc522Rig(mp)
        r.start()
        r.chip.card = ChattyCard(answers)
        r.poll(4)  # never raises
        assert all(len(e.uid) in (4, 7, 10) for e in r.events)
        r.chip.tap(FakeCard(MEMBER_1_CARD))
        r.wait(1.5)
        assert r.events[-1:] == [CardRead(MEMBER_1_CARD)]  # and then reads a real card
        r.close()


def test_nfc_garbled_usb_frames_make_the_reader_unavailable_until_they_stop(nfcrig):
    nfcrig.start()
    nfcrig.world.garble = True
    nfcrig.poll(3)
    health = nfcrig.reader.health()
    assert not health.available and health.reason
    nfcrig.world.garble = False
    nfcrig.wait(5.0)
    assert nfcrig.reader.health().available
    nfcrig.tap(MEMBER_1_CARD)
    nfcrig.poll()
    assert nfcrig.events == [CardRead(MEMBER_1_CARD)]
