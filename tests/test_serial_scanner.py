"""The serial scanner adapter over pyserial's loop:// port: bytes in, codes (or counted junk) out."""

from __future__ import annotations

import queue

import pytest

serial = pytest.importorskip("serial")

from drivers import registry  # noqa: E402
from drivers.base import CodeRead  # noqa: E402
from drivers.serial_scanner import SerialScanner  # noqa: E402


class Port:
    """A loop:// port that can be unplugged: reads and opens then fail like a vanished tty."""

    def __init__(self):
        self.plugged = True
        self.opened: list[tuple[str, dict]] = []
        self.current = None

    def open(self, url, **options):
        if not self.plugged:
            raise serial.SerialException(f"[Errno 2] could not open port {url}: No such file or directory")
        self.opened.append((url, options))
        port = serial.serial_for_url("loop://", **options)
        outer = self

        class Unpluggable:
            def __getattr__(self, name):
                if not outer.plugged and name in ("read", "in_waiting"):
                    raise serial.SerialException("device reports readiness to read but returned no data")
                return getattr(port, name)

        self.current = Unpluggable()
        return self.current

    def send(self, data: bytes) -> None:
        self.current.write(data)


@pytest.fixture
def scanner():
    made = []

    def build(**options):
        port = Port()
        now = options.pop("now", [0.0])
        s = SerialScanner(port="/dev/serial/by-id/usb-Honeywell_3310g", open_port=port.open, clock=lambda: now[0],
                          read_timeout_s=0.05, **options)
        s.reads = []
        s._emit = s.reads.append
        made.append(s)
        return s, port

    yield build
    for s in made:
        s.close()


def pump(s: SerialScanner, port: Port, data: bytes) -> None:
    port.send(data)
    while s._serial is not None and s._serial.in_waiting:
        s.step()


def test_codes_end_with_cr_lf_or_crlf(scanner):
    s, port = scanner()
    assert s.step()  # opens the port
    pump(s, port, b"EM0000000001\r")
    pump(s, port, b"11110100000001\n9788954602563\r\n")
    assert s.reads == [CodeRead("EM0000000001"), CodeRead("11110100000001"), CodeRead("9788954602563")]
    assert s.health().available
    assert port.opened[0][0] == "/dev/serial/by-id/usb-Honeywell_3310g"
    assert port.opened[0][1]["baudrate"] == 9600


def test_a_code_split_across_reads_is_put_together(scanner):
    s, port = scanner()
    s.step()
    for piece in (b"EM00", b"00000", b"077", b"\r\n"):
        pump(s, port, piece)
    assert s.reads == [CodeRead("EM0000000077")]


def test_the_same_code_scanned_twice_in_a_row_is_read_once(scanner):
    now = [0.0]
    s, port = scanner(now=now, debounce_s=2.0)
    s.step()
    pump(s, port, b"EM0000000001\r\nEM0000000001\r\n")
    now[0] += 3
    pump(s, port, b"EM0000000001\r\n")
    assert s.reads == [CodeRead("EM0000000001")] * 2
    assert s.counts["repeats"] == 1


def test_garbage_is_dropped_and_counted_never_emitted(scanner):
    s, port = scanner(bad_lines=10)
    s.step()
    pump(s, port, b"EM00\xff\xfe000001\r\n")  # line noise
    pump(s, port, b"1111\x000100000001\r\n")  # a NUL
    pump(s, port, b"\x1b[2J11110100000001\r\n")  # an escape sequence
    pump(s, port, b"X" * 4000 + b"\r\n")  # 4,000 characters
    pump(s, port, b"A" * 100 + b"\r\n")  # longer than any identifier
    pump(s, port, b"https://example.org/\r\n")  # a real code, of no use here
    pump(s, port, b"EM0000000002\r\n")
    assert s.reads == [CodeRead("EM0000000002")]
    c = s.counts
    assert (c["garbled"], c["control"], c["too_long"], c["rejected"]) == (1, 2, 2, 1)
    assert s.health().available


def test_a_fragment_without_its_line_end_is_dropped(scanner):
    now = [0.0]
    s, port = scanner(now=now, line_timeout_s=1.0)
    s.step()
    pump(s, port, b"EM00000")  # unplugged mid-code, or no suffix configured
    now[0] += 1.5
    pump(s, port, b"11110100000001\r\n")
    assert s.reads == [CodeRead("11110100000001")]
    assert s.counts["incomplete"] == 1


def test_a_long_line_arriving_slowly_is_dropped_whole(scanner):
    now = [0.0]
    s, port = scanner(now=now, line_timeout_s=1.0)
    s.step()
    for _ in range(40):  # 4,000 digits at 9600 baud: about 4 s, 100 characters at a time
        pump(s, port, b"1" * 100)
        now[0] += 0.1
    pump(s, port, b"\r\n")
    assert s.reads == []  # not even the last 14 digits
    assert s.counts["too_long"] == 1


def test_a_wrong_baud_rate_marks_it_unavailable_until_good_codes_come(scanner):
    s, port = scanner(bad_lines=3, baudrate=115200)
    s.step()
    for _ in range(3):
        pump(s, port, b"\xf0\x8f\xaa\xd5\r\n")
    health = s.health()
    assert not health.available and "baud rate (115200)" in health.reason
    pump(s, port, b"EM0000000003\r\n")
    assert s.health().available
    assert s.reads == [CodeRead("EM0000000003")]


def test_unplugged_it_says_so_and_comes_back_by_itself(scanner):
    s, port = scanner()
    s.step()
    port.plugged = False
    assert not s.step()
    assert "stopped answering" in s.health().reason
    assert not s.step()  # the port is gone: it cannot be opened either
    assert "did not open" in s.health().reason and "dialout" in s.health().reason
    port.plugged = True
    assert s.step()
    assert s.health().available and len(port.opened) == 2
    pump(s, port, b"EM0000000004\r\n")
    assert s.reads == [CodeRead("EM0000000004")]


def test_the_thread_reads_from_a_real_loop_port():
    loop = serial.serial_for_url("loop://", timeout=0.05)
    inbox: queue.Queue = queue.Queue()
    s = registry.create("scanner", "serial", port="loop://", open_port=lambda url, **kw: loop, reopen_s=0.01)
    try:
        s.start(inbox.put)
        loop.write(b"11110100000009\r\n")
        assert inbox.get(timeout=10) == CodeRead("11110100000009")
        assert s.health().available
    finally:
        s.close()
        s.close()  # idempotent
    assert not s.health().available
