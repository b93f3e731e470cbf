"""The SIP2 client over real loopback sockets.

First against a scripted server of this file's own (each received frame is answered from a script
of byte strings, so splits, hang-ups, bad checksums, silence and garbage are exact), then against
the demo ILS. No sleeping: socket timeouts are 0.2 s and back-off and idle time run on a FakeClock.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import select
import socket
import ssl
import threading
import time
import tracemalloc
from collections import deque
from dataclasses import replace

import pytest

from kiosk.clock import KST, FakeClock
from sync.sip2.client import Client, ClientSettings, LoginRefused, OutcomeUnknown, Sip2Unavailable
from sync.sip2.codec import Dialect, EncodeError, FrameReader, Message, checksum, decode, make
from sync.sip2.results import AcsStatus, CheckinResult, CheckoutResult, ItemInfo, PatronInfo, PatronStatus

TIMEOUT = 0.2
MEMBER = "11110100000001"
ITEM = "EM0000000001"
SECRET_PIN = "86420"  # five digits above 65535, so no port number can contain it
PASSWORD = "s3cret-word"
DATE = "20261102    100000"

HANG_UP = object()  # close the connection instead of answering
SILENT = object()  # answer nothing, keep listening


# -- the scripted server


def frame(text: str, sequence: int | None = None, *, bad: bool = False, detect: bool = True,
          terminator: bytes = b"\r", encoding: str = "utf-8") -> bytes:
    """A reply frame: text, then AY/AZ (a wrong AZ when `bad`), then the terminator."""
    data = text.encode(encoding)
    if detect:
        if sequence is not None:
            data += f"AY{sequence}".encode()
        data += b"AZ"
        value = checksum(data)
        if bad:
            value = f"{(int(value, 16) + 1) & 0xFFFF:04X}"
        data += value.encode()
    return data + terminator


def echo(text: str, **kw):
    """A reply that carries the request's own AY (as real servers do)."""
    return lambda request: frame(text, decode(request).sequence, **kw)


def item_reply(request: bytes) -> bytes:
    """An 18 naming the item the request asked about."""
    message = decode(request)
    return frame(f"18030001{DATE}AB{message.get('AB')}|AJTitle of {message.get('AB')}|AH{DATE}|",
                 message.sequence)


OK_18 = echo(f"18030001{DATE}AB{ITEM}|AJ채식주의자|AH20261116    235959|CF0|")
OK_98 = echo("98YYYYNN01000320261102    1000002.00AO111101|AMDemo Library|BXYYYYYYYYYYYYYYYY|")


class ScriptedServer:
    """A loopback listener that answers each received frame with the next script entry.

    An entry is bytes (one write), a list of bytes (one write each: a split reply), a callable
    taking the request frame and returning either, HANG_UP or SILENT (which also work inside a
    list). When the script runs out, the server hangs up.
    """

    def __init__(self, *script, tls: ssl.SSLContext | None = None) -> None:
        self.script = deque(script)
        self.received: list[bytes] = []
        self.connections = 0
        self.raw = bytearray()  # every byte received, terminators included
        self.hung_up = threading.Event()
        self.got_request = threading.Event()
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
        except OSError:
            pass
        self._listener.close()
        for conn in self._open:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv or sendall
                conn.close()
            except OSError:
                pass
        self._thread.join(2)

    def add(self, *entries) -> None:
        self.script.extend(entries)

    def requests(self) -> list[str]:
        """The received frames' commands, in order."""
        return [f[:2].decode() for f in self.received]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._tls is not None:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                    self._open.append(conn)
                self._converse(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def _converse(self, conn: socket.socket) -> None:
        reader = FrameReader(1 << 20)
        while True:
            data = conn.recv(65536)
            if not data:
                return
            self.raw += data
            for request in reader.feed(data):
                self.received.append(request)
                self.got_request.set()
                entry = self.script.popleft() if self.script else HANG_UP
                if callable(entry) and entry not in (HANG_UP, SILENT):
                    entry = entry(request)
                for piece in entry if isinstance(entry, list) else [entry]:
                    if piece is HANG_UP:
                        conn.close()
                        self.hung_up.set()
                        return
                    if piece is SILENT:
                        continue
                    conn.sendall(piece)


def make_client(server, clock=None, *, rng=None, **overrides) -> Client:
    options = dict(connect_timeout_s=0.5, response_timeout_s=TIMEOUT, institution="111101",
                   backoff_initial_s=1.0, backoff_max_s=30.0)
    settings = ClientSettings("127.0.0.1", server.port if server else 1, **{**options, **overrides})
    return Client(settings, clock=clock or FakeClock(), rng=rng or random.Random(1))


@pytest.fixture
def clock():
    return FakeClock()


# -- the happy path


def test_item_information_sends_one_exact_frame_and_reads_the_reply(clock):
    with ScriptedServer(OK_18) as server, make_client(server, clock) as client:
        info = client.item_information(ITEM)
    assert server.received == [b"17" + b"20261102    100000" + b"AO111101|ABEM0000000001|AC|AY0AZ"
                               + checksum(b"1720261102    100000AO111101|ABEM0000000001|AC|AY0AZ").encode()]
    assert info == ItemInfo(item=ITEM, title="채식주의자", circulation_status="03",
                            circulation_status_name="available", due=dt.datetime(2026, 11, 16, 23, 59, 59, tzinfo=KST),
                            due_text="20261116    235959", hold_queue_length=0)


def test_a_reply_split_into_single_bytes_is_reassembled(clock):
    reply = frame(f"18030001{DATE}AB{ITEM}|AJ채식주의자|", 0)
    with ScriptedServer([reply[i:i + 1] for i in range(len(reply))]) as server, make_client(server, clock) as c:
        assert c.item_information(ITEM).title == "채식주의자"


def test_crlf_replies_and_an_lf_arriving_late_keep_the_connection(clock):
    first = frame(f"18030001{DATE}AB{ITEM}|AJOne|", 0)  # CR now, its LF with the next reply
    second = lambda request: b"\n" + frame(f"18030001{DATE}AB{ITEM}|AJTwo|", 1, terminator=b"\r\n")
    third = [frame(f"18030001{DATE}AB{ITEM}|AJThree|", 2), b"\n"]  # the LF in a write of its own
    with ScriptedServer(first, second, third, OK_18) as server, make_client(server, clock) as c:
        assert [c.item_information(ITEM).title for _ in range(4)] == ["One", "Two", "Three", "채식주의자"]
    assert server.connections == 1


def test_a_duplicate_reply_is_never_taken_for_the_next_requests_answer(clock):
    twice = lambda request: frame(f"18030001{DATE}AB{ITEM}|AJFirst|", 0) * 2
    with ScriptedServer(twice, item_reply) as server, make_client(server, clock) as c:
        assert c.item_information(ITEM).title == "First"
        assert c.item_information("EM0000000002").title == "Title of EM0000000002"
    assert server.connections == 2


# -- error detection


def test_a_bad_checksum_gets_a_97_and_the_good_repeat_is_used(clock):
    bad = echo(f"18030001{DATE}AB{ITEM}|AJGarbled|", bad=True)
    repeat = frame(f"18030001{DATE}AB{ITEM}|AJRepeated|", 0)
    with ScriptedServer(bad, repeat) as server, make_client(server, clock) as c:
        assert c.item_information(ITEM).title == "Repeated"
        assert c.connected
    assert server.received[1] == b"97AZFEF5"


def test_checksums_that_stay_bad_end_in_outcome_unknown_after_the_bound(clock):
    bad = echo(f"12{'1'}NNY{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJT|AH|", bad=True)
    with ScriptedServer(*[bad] * 10) as server, make_client(server, clock, resend_requests=2) as c:
        with pytest.raises(OutcomeUnknown, match="checksum was still wrong after 2 repeat"):
            c.checkout(MEMBER, ITEM)
        assert not c.connected
    assert server.requests() == ["11", "97", "97"]  # never the checkout again


def test_without_error_detection_a_bad_checksum_is_not_checked(clock):
    bad = echo(f"18030001{DATE}AB{ITEM}|AJFine|", bad=True)
    with ScriptedServer(bad) as server, \
            make_client(server, clock, dialect=Dialect(error_detection=False)) as c:
        assert c.item_information(ITEM).title == "Fine"
    assert b"AY" not in server.received[0] and b"AZ" not in server.received[0]


def test_a_96_gets_the_same_frame_again(clock):
    with ScriptedServer(frame("96"), OK_18) as server, make_client(server, clock) as c:
        assert c.item_information(ITEM).title == "채식주의자"
    assert server.requests() == ["17", "17"] and server.received[0] == server.received[1]


def test_endless_96s_mean_nothing_happened(clock):
    with ScriptedServer(*[frame("96")] * 5) as server, make_client(server, clock, resend_requests=1) as c:
        with pytest.raises(Sip2Unavailable) as caught:
            c.checkout(MEMBER, ITEM)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert server.requests() == ["11", "11"]


def test_a_96_after_a_97_is_an_unknown_outcome_not_a_resend(clock):
    bad = echo(f"12{'1'}NNY{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJT|AH|", bad=True)
    with ScriptedServer(bad, frame("96")) as server, make_client(server, clock) as c:
        with pytest.raises(OutcomeUnknown):
            c.checkout(MEMBER, ITEM)
    assert server.requests() == ["11", "97"]


def test_a_reply_with_another_sequence_number_is_not_trusted(clock):
    with ScriptedServer(frame(f"18030001{DATE}AB{ITEM}|AJOld|", 7)) as server, make_client(server, clock) as c:
        with pytest.raises(OutcomeUnknown, match="sequence number 7, not 0"):
            c.item_information(ITEM)


def test_sequence_numbers_increment_and_wrap_after_nine(clock):
    with ScriptedServer(*[OK_18] * 12) as server, make_client(server, clock) as c:
        for _ in range(12):
            c.item_information(ITEM)
    assert [decode(f).sequence for f in server.received] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


# -- lost answers


def test_a_hang_up_mid_reply_is_an_unknown_outcome_and_the_next_call_reconnects(clock):
    half = [frame(f"12{'1'}NNY{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJT|AH|", 0)[:15], HANG_UP]
    with ScriptedServer(half, OK_18) as server, make_client(server, clock) as c:
        with pytest.raises(OutcomeUnknown, match="checkout: .*closed the connection.*may or may not"):
            c.checkout(MEMBER, ITEM)
        assert not c.connected
        assert c.item_information(ITEM).title == "채식주의자"
    assert server.connections == 2


def test_silence_is_an_unknown_outcome_within_the_response_timeout(clock):
    with ScriptedServer(SILENT) as server, make_client(server, clock) as c:
        started = time.perf_counter()
        with pytest.raises(OutcomeUnknown, match=r"no answer within 0\.2 s"):
            c.checkout(MEMBER, ITEM)
        assert TIMEOUT * 0.9 <= time.perf_counter() - started < TIMEOUT + 1.0
        assert not c.connected


class _WrappedSocket(socket.socket):
    """A socket the client does not recognise as a plain one: it keeps Python's own timeouts."""


def _wrapped_connection(address, timeout=None):
    plain = socket.create_connection(address, timeout=timeout)
    wrapped = _WrappedSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    wrapped.settimeout(timeout)
    return wrapped


@pytest.mark.parametrize("connect", [socket.create_connection, _wrapped_connection],
                         ids=["kernel timeouts", "python timeouts"])
def test_the_response_timeout_holds_with_either_kind_of_socket_timeout(clock, connect):
    # A plain TCP socket is bounded by the kernel (SO_RCVTIMEO), anything else by Python's timeout:
    # answers come back the same, and silence ends in the same unknown outcome, on time.
    with ScriptedServer(OK_18, SILENT) as server:
        c = Client(make_client(server).settings, clock=clock, connect=connect)
        with c:
            assert c.item_information(ITEM).title == "채식주의자"
            started = time.perf_counter()
            with pytest.raises(OutcomeUnknown, match=r"no answer within 0\.2 s"):
                c.item_information(ITEM)
            assert TIMEOUT * 0.9 <= time.perf_counter() - started < TIMEOUT + 1.0


def test_a_trickling_server_cannot_stretch_the_timeout(clock):
    # One byte per request-read is never a whole frame: the deadline covers the whole reply.
    start = frame(f"18030001{DATE}AB{ITEM}|AJ", 0)[:10]
    with ScriptedServer([start, SILENT]) as server, make_client(server, clock) as c:
        started = time.perf_counter()
        with pytest.raises(OutcomeUnknown):
            c.item_information(ITEM)
        assert time.perf_counter() - started < TIMEOUT + 1.0


@pytest.mark.parametrize("garbage", [
    b"HTTP/1.1 400 Bad Request\r\n\r\n",
    b"\x00\xff\xfe garbage\r",
    b"24\r",  # a known command cut short
])
def test_garbage_is_an_unknown_outcome(clock, garbage):
    with ScriptedServer(garbage) as server, make_client(server, clock) as c:
        with pytest.raises(OutcomeUnknown):
            c.checkout(MEMBER, ITEM)
        assert not c.connected


def test_the_wrong_reply_is_an_unknown_outcome(clock):
    with ScriptedServer(OK_98) as server, make_client(server, clock) as c:
        with pytest.raises(OutcomeUnknown, match=r"acs_status \(98\) instead of checkout_response \(12\)"):
            c.checkout(MEMBER, ITEM)


def test_ten_megabytes_without_a_terminator_is_an_unknown_outcome_without_a_memory_blow_up(clock):
    flood = b"64" + b"x" * (10 * 1024 * 1024)
    with ScriptedServer(flood) as server, make_client(server, clock) as c:
        tracemalloc.start()
        try:
            with pytest.raises(OutcomeUnknown, match="without a frame terminator"):
                c.patron_information(MEMBER)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert not c.connected
    assert peak < 2 * 1024 * 1024


def test_an_idle_connection_closed_by_the_server_is_replaced_before_a_checkout_goes_out(clock):
    closing = [frame(f"18030001{DATE}AB{ITEM}|AJOne|", 0), HANG_UP]  # answers, then closes
    ok_12 = echo(f"121NNY{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJT|AH20261116    235959|")
    with ScriptedServer(closing, ok_12) as server, make_client(server, clock) as c:
        c.item_information(ITEM)
        assert server.hung_up.wait(2)
        assert c.checkout(MEMBER, ITEM).ok
    assert server.requests() == ["17", "11"] and server.connections == 2


# -- connecting, back-off, login


class Refusing:
    """A connect function that always fails, counting its calls (no network at all)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, address, timeout=None):
        self.calls += 1
        raise ConnectionRefusedError(111, "Connection refused")


class Ceiling(random.Random):
    """Full jitter at its maximum, so each delay shows the ceiling."""

    def uniform(self, a, b):
        return b


def test_a_refused_connection_is_unavailable_then_fails_fast_until_the_back_off_passes(clock):
    refusing = Refusing()
    client = Client(ClientSettings("127.0.0.1", 6001, backoff_initial_s=2.0), clock=clock, rng=Ceiling(),
                    connect=refusing)
    with pytest.raises(Sip2Unavailable, match="cannot connect to the library system at 127.0.0.1:6001: "
                                              "Connection refused"):
        client.item_information(ITEM)
    assert client.next_attempt_at == clock.monotonic() + 2.0
    assert client.last_error.startswith("cannot connect")
    clock.advance(1.9)
    with pytest.raises(Sip2Unavailable, match=r"next attempt in 0\.1 s"):
        client.checkout(MEMBER, ITEM)
    assert refusing.calls == 1  # no attempt while backing off, and no sleeping either
    clock.advance(0.1)
    with pytest.raises(Sip2Unavailable):
        client.item_information(ITEM)
    assert refusing.calls == 2


def test_back_off_delays_double_up_to_the_cap(clock):
    refusing = Refusing()
    client = Client(ClientSettings("127.0.0.1", 6001, backoff_initial_s=1.0, backoff_max_s=20.0), clock=clock,
                    rng=Ceiling(), connect=refusing)
    delays = []
    for _ in range(8):
        with pytest.raises(Sip2Unavailable):
            client.connect()
        delays.append(client.next_attempt_at - clock.monotonic())
        clock.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]


def test_back_off_jitter_stays_between_zero_and_the_ceiling(clock):
    client = Client(ClientSettings("127.0.0.1", 6001, backoff_initial_s=1.0, backoff_max_s=8.0), clock=clock,
                    rng=random.Random(42), connect=Refusing())
    delays = []
    for attempt in range(40):
        with pytest.raises(Sip2Unavailable):
            client.connect()
        delays.append(client.next_attempt_at - clock.monotonic())
        assert 0 <= delays[-1] <= min(8.0, 2.0 ** attempt)
        clock.advance(delays[-1])
    assert len({round(d, 6) for d in delays}) > 30  # jittered, not a fixed schedule
    assert max(delays) > 4.0  # and it does grow


def test_a_real_refused_port_and_recovery_reset_the_back_off(clock):
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens here now
    client = Client(ClientSettings("127.0.0.1", port, connect_timeout_s=0.5, response_timeout_s=TIMEOUT),
                    clock=clock, rng=Ceiling())
    with pytest.raises(Sip2Unavailable):
        client.item_information(ITEM)
    assert not client.connected and client.next_attempt_at is not None
    with ScriptedServer(OK_18) as server:
        client.settings = replace(client.settings, port=server.port)  # the server comes back
        clock.advance(1.0)
        assert client.item_information(ITEM).title == "채식주의자"
        assert client.connected and client.next_attempt_at is None and client.last_error == ""
        client.close()


def test_login_comes_first_on_each_connection(clock):
    with ScriptedServer(echo("941"), OK_18, echo("941"), OK_18) as server, \
            make_client(server, clock, user="kiosk", password=PASSWORD, location="SP-1") as c:
        c.item_information(ITEM)
        c.close()
        c.item_information(ITEM)
    assert server.requests() == ["93", "17", "93", "17"]
    assert server.received[0] == frame(f"9300CNkiosk|CO{PASSWORD}|CPSP-1|", 0, terminator=b"")


def test_a_refused_login_raises_login_refused_and_backs_off(clock):
    with ScriptedServer(echo("940"), echo("941"), OK_18) as server, \
            make_client(server, clock, user="kiosk", password="wrong") as c:
        with pytest.raises(LoginRefused, match="refused the login of SIP user 'kiosk'"):
            c.item_information(ITEM)
        assert not c.connected and c.next_attempt_at is not None
        with pytest.raises(Sip2Unavailable, match="next attempt"):
            c.item_information(ITEM)
        clock.advance(c.next_attempt_at - clock.monotonic())
        assert c.item_information(ITEM).title == "채식주의자"
    assert server.requests() == ["93", "93", "17"]


def test_a_login_that_gets_no_answer_is_unavailable_not_unknown(clock):
    with ScriptedServer(SILENT) as server, make_client(server, clock, user="kiosk", password=PASSWORD) as c:
        with pytest.raises(Sip2Unavailable) as caught:
            c.item_information(ITEM)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert server.requests() == ["93"]  # the request itself never went out


# -- keep-alive and ping


def test_keep_alive_sends_a_99_only_after_the_idle_time(clock):
    with ScriptedServer(OK_18, OK_98, OK_98) as server, make_client(server, clock, keepalive_s=240) as c:
        c.item_information(ITEM)
        clock.advance(239)
        assert c.keep_alive() is None
        clock.advance(1)
        status = c.keep_alive()
        assert status.online and status.library_name == "Demo Library"
        assert c.keep_alive() is None  # the 99 itself was activity
        clock.advance(240)
        assert c.keep_alive() is not None
    assert server.requests() == ["17", "99", "99"]


def test_keep_alive_zero_means_never(clock):
    with ScriptedServer(OK_98) as server, make_client(server, clock, keepalive_s=0) as c:
        clock.advance(100_000)
        assert c.keep_alive() is None
    assert server.received == []


def test_keep_alive_errors_are_sip2_unavailable(clock):
    client = Client(ClientSettings("127.0.0.1", 6001, keepalive_s=10), clock=clock, connect=Refusing())
    clock.advance(10)
    with pytest.raises(Sip2Unavailable):
        client.keep_alive()
    assert client.keep_alive() is None  # the failed attempt counts as activity: no hammering


def test_ping_logs_in_and_times_the_round_trip(clock):
    with ScriptedServer(echo("941"), OK_98) as server, \
            make_client(server, clock, user="kiosk", password=PASSWORD) as c:
        status, seconds = c.ping()
    assert status.protocol_version == "2.00" and "checkout" in status.supported_messages
    assert 0 < seconds < 1
    assert server.requests() == ["93", "99"]


# -- what goes on the wire


def test_checkout_and_renew_carry_dates_no_block_pin_and_fee_acknowledgement(clock):
    ok_12 = echo(f"121NNY{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJT|AH20261116    235959|")
    ok_30 = echo(f"301YNY{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJT|AH2026-11-30 23:59:59|")
    when = dt.datetime(2026, 11, 1, 9, 30, 5, tzinfo=KST)
    due = dt.datetime(2026, 11, 15, 23, 59, 59, tzinfo=KST)
    with ScriptedServer(ok_12, ok_30) as server, make_client(server, clock, terminal_password="tp") as c:
        result = c.checkout(MEMBER, ITEM, pin=SECRET_PIN, no_block=True, transaction_date=when, nb_due=due,
                            fee_acknowledged=True)
        renewed = c.renew(MEMBER, ITEM, pin=SECRET_PIN)
    checkout, renew = (decode(f) for f in server.received)
    assert checkout.fixed == {"sc_renewal_policy": "N", "no_block": "Y", "transaction_date": "20261101    093005",
                              "nb_due_date": "20261115    235959"}
    assert checkout.fields == (("AO", "111101"), ("AA", MEMBER), ("AB", ITEM), ("AC", "tp"), ("AD", SECRET_PIN),
                               ("BO", "Y"))
    assert renew.fixed["transaction_date"] == "20261102    100000" and renew.fixed["nb_due_date"] == " " * 18
    assert renew.get("AD") == SECRET_PIN
    assert result.ok and result.due == dt.datetime(2026, 11, 16, 23, 59, 59, tzinfo=KST)
    assert renewed.ok and renewed.renewal_ok and renewed.due == dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=KST)


def test_the_pin_is_left_out_when_the_settings_say_so(clock):
    info = echo(f"64              000{DATE}000000000001000000000000AO111101|AA{MEMBER}|AEKim|BLY|")
    status = echo(f"24              000{DATE}AO111101|AA{MEMBER}|AEKim|BLY|")
    with ScriptedServer(info, status) as server, make_client(server, clock, send_patron_pin=False) as c:
        c.patron_information(MEMBER, SECRET_PIN)
        c.patron_status(MEMBER, SECRET_PIN)
    assert all(SECRET_PIN.encode() not in f for f in server.received)
    assert decode(server.received[1]).has("AD")  # 23 carries AD even when empty


def test_patron_information_asks_for_one_list_with_its_range(clock):
    reply = echo(f"64              000{DATE}000000000002000000000000AO111101|AA{MEMBER}|AEKim|BLY|CQY|"
                 f"AU{ITEM}|AUEM0000000002|CB5|PA20271231    000000|")
    with ScriptedServer(reply) as server, make_client(server, clock) as c:
        info = c.patron_information(MEMBER, SECRET_PIN, summary="charged", start=1, end=50)
        with pytest.raises(ValueError, match="summary must be one of"):
            c.patron_information(MEMBER, summary="everything")
    request = decode(server.received[0])
    assert request.fixed["summary"] == "  Y       "
    assert (request.get("BP"), request.get("BQ"), request.get("AD")) == ("1", "50", SECRET_PIN)
    assert info.charged_items == (ITEM, "EM0000000002") and info.charged == 2 and info.charged_limit == 5
    assert info.valid and info.pin_ok and info.expires == dt.date(2027, 12, 31)


def test_checkin_defaults_to_the_kiosks_location_and_returns_now(clock):
    reply = echo(f"101YNY{DATE}AO111101|AB{ITEM}|AQMain|AJT|CV01|CT|")
    with ScriptedServer(reply, reply) as server, make_client(server, clock, location="SP-1") as c:
        result = c.checkin(ITEM)
        c.checkin(ITEM, location="Branch", return_date=dt.datetime(2026, 10, 30, 18, 0, tzinfo=KST))
    first, second = (decode(f) for f in server.received)
    assert first.get("AP") == "SP-1" and first.fixed["return_date"] == first.fixed["transaction_date"]
    assert second.get("AP") == "Branch" and second.fixed["return_date"] == "20261030    180000"
    assert result == CheckinResult(ok=True, alert=True, alert_type="01", item=ITEM, title="T",
                                   permanent_location="Main")


def test_end_session_reports_the_servers_confirmation(clock):
    with ScriptedServer(echo(f"36Y{DATE}AO111101|AA{MEMBER}|"), echo(f"36N{DATE}AO111101|AA{MEMBER}|")) as server, \
            make_client(server, clock) as c:
        assert c.end_session(MEMBER, SECRET_PIN) is True
        assert c.end_session(MEMBER) is False


def test_exchange_sends_only_requests_and_a_malformed_one_sends_nothing(clock):
    with ScriptedServer(OK_18) as server, make_client(server, clock) as c:
        with pytest.raises(EncodeError):
            c.exchange(make("checkout_response"))
        with pytest.raises(EncodeError):
            c.exchange(make("login", [("CN", "x"), ("CO", "y")], uid_algorithm="0", pwd_algorithm="0"))
        with pytest.raises(EncodeError, match="required"):
            c.exchange(make("item_information", [("AB", ITEM)], transaction_date=None))
        assert c.item_information(ITEM).title == "채식주의자"  # and the sequence was not disturbed
    assert [decode(f).sequence for f in server.received] == [0]


def test_encodings_and_delimiters_follow_the_dialect(clock):
    dialect = Dialect(encoding="cp949", delimiter="^", terminator="\r\n")
    reply = lambda request: frame(f"18030001{DATE}AB{ITEM}^AJ채식주의자^", decode(request, dialect).sequence,
                                  encoding="cp949", terminator=b"\r\n")
    with ScriptedServer(reply) as server, make_client(server, clock, dialect=dialect) as c:
        assert c.item_information(ITEM).title == "채식주의자"
    assert server.raw.endswith(b"\r\n") and b"^AB" in server.raw


def test_requests_from_several_threads_never_overlap(clock):
    with ScriptedServer(*[item_reply] * 40) as server, make_client(server, clock) as c:
        results: dict[str, str] = {}

        def ask(n: int) -> None:
            for k in range(10):
                item = f"EM{n:05d}{k:05d}"
                results[item] = c.item_information(item).title

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
    assert len(results) == 40 and all(title == f"Title of {item}" for item, title in results.items())
    assert server.connections == 1


def test_close_cuts_a_request_in_flight_short_instead_of_waiting(clock):
    with ScriptedServer(SILENT) as server:
        client = make_client(server, clock, response_timeout_s=5.0)
        client.connect()
        failures = []

        def checkout() -> None:
            try:
                client.checkout(MEMBER, ITEM)
            except Sip2Unavailable as exc:
                failures.append(exc)

        worker = threading.Thread(target=checkout)
        worker.start()
        assert server.got_request.wait(2)  # the checkout is out, the answer is not
        started = time.perf_counter()
        client.close()
        worker.join(5)
        assert time.perf_counter() - started < 1.0
    assert len(failures) == 1 and isinstance(failures[0], OutcomeUnknown)
    assert not client.connected


# -- settings, logging


def test_settings_are_checked_and_secrets_masked():
    with pytest.raises(ValueError, match="port must be 1-65535.*response_timeout_s must be positive"):
        ClientSettings("h", 0, response_timeout_s=0)
    text = repr(ClientSettings("h", 1, user="kiosk", password=PASSWORD, terminal_password="tp-secret"))
    assert PASSWORD not in text and "tp-secret" not in text and "kiosk" in text


def test_nothing_secret_is_ever_logged(clock, caplog):
    caplog.set_level(logging.DEBUG)
    bad = echo(f"121NNY{DATE}AO111101|AA{MEMBER}|AB{ITEM}|AJT|AH|", bad=True)
    info = echo(f"64              000{DATE}000000000001000000000000AO111101|AA{MEMBER}|AEKim|BLY|CQY|")
    errors = []
    with ScriptedServer(echo("941"), info, bad, bad, SILENT) as server, \
            make_client(server, clock, user="kiosk", password=PASSWORD, terminal_password="tp-secret",
                        resend_requests=1) as c:
        c.patron_information(MEMBER, SECRET_PIN)
        with pytest.raises(OutcomeUnknown) as caught:
            c.checkout(MEMBER, ITEM, pin=SECRET_PIN)
        errors.append(str(caught.value))
        clock.advance(1000)
        with pytest.raises(Sip2Unavailable) as caught:
            c.checkout(MEMBER, ITEM, pin=SECRET_PIN)  # the login gets no answer this time
        errors.append(str(caught.value))
    text = caplog.text + "\n".join(errors)
    assert "checkout" in caplog.text and "patron_information" in caplog.text  # it does log, by name
    for secret in (PASSWORD, SECRET_PIN, MEMBER, ITEM, "tp-secret", "|", "AZ"):
        assert secret not in text


# -- reading odd replies (never raising)


def test_acs_status_decodes_supported_messages_and_tolerates_blanks():
    status = AcsStatus.from_message(decode(
        f"98YNYNNY   999{DATE}2.00AO111101|AMDemo|BXYNYNYNYNYNYNYNYN|AFHello|".encode()), KST)
    assert status.online and not status.checkin_ok and status.checkout_ok and status.offline_ok
    assert status.timeout_period is None and status.retries_allowed == 999
    assert status.date_time == dt.datetime(2026, 11, 2, 10, 0, tzinfo=KST)
    assert status.supported_messages == {"patron_status", "checkin", "sc_status", "login", "end_patron_session",
                                         "item_information", "patron_enable", "renew"}
    assert status.screen_messages == ("Hello",)
    assert AcsStatus.from_message(Message("98")) == AcsStatus()  # no fields at all: no crash


def test_patron_replies_with_blank_counts_odd_flags_and_missing_fields():
    info = PatronInfo.from_message(decode(
        f"64Y   Y     Y   000{DATE}    0002  x 0003            AA{MEMBER}|AEKim|BV1,500|BHKRW|"
        f"AT{ITEM}|BW2026-12-31|CBnone|".encode()))
    assert info.flags == {"charge_privileges_denied", "card_reported_lost", "excessive_outstanding_fines"}
    assert (info.holds, info.overdue, info.charged, info.fines) == (0, 2, 0, 3)
    assert info.fee_amount == 1500.0 and info.currency == "KRW"
    assert info.valid is None and info.pin_ok is None and info.charged_limit is None
    assert info.overdue_items == (ITEM,) and info.expires == dt.date(2026, 12, 31)
    status = PatronStatus.from_message(decode(f"24{' ' * 14}000{DATE}AA{MEMBER}|BLN|CQN|BV12,50|".encode()))
    assert status.valid is False and status.pin_ok is False and status.fee_amount == 12.5
    assert PatronInfo.from_message(Message("64", {"raw": "?"})) == PatronInfo()


@pytest.mark.parametrize("text, expected", [
    ("", None), ("$12.50", 12.5), ("1,234.50", 1234.5), ("1.234,50", 1234.5), ("3000", 3000.0),
    ("₩ 1,000", 1000.0), ("none", None), ("-2.00", -2.0),
])
def test_fee_amounts_as_servers_write_them(text, expected):
    assert PatronStatus.from_message(decode(f"24{' ' * 14}000{DATE}BV{text}|".encode())).fee_amount == expected


@pytest.mark.parametrize("due_text, due", [
    ("20261116    235959", dt.datetime(2026, 11, 16, 23, 59, 59, tzinfo=KST)),
    ("2026-11-16 12:00:00", dt.datetime(2026, 11, 16, 12, 0, tzinfo=KST)),
    ("2026년 11월 16일", dt.datetime(2026, 11, 16, 23, 59, 59, tzinfo=KST)),
    ("next Tuesday", None),
    ("", None),
])
def test_due_dates_are_read_leniently_and_kept_raw(due_text, due):
    result = CheckoutResult.from_message(decode(f"121NNY{DATE}AA{MEMBER}|AB{ITEM}|AJT|AH{due_text}|".encode()), KST)
    assert result.ok and result.due == due and result.due_text == due_text


def test_item_info_names_its_status_and_tolerates_unknown_codes():
    info = ItemInfo.from_message(decode(f"18990001{DATE}AB{ITEM}|CFmany|".encode()))
    assert info.circulation_status == "99" and info.circulation_status_name == "unknown"
    assert info.hold_queue_length is None and info.title == ""
    assert ItemInfo.from_message(decode(f"18080001{DATE}AB{ITEM}|CF2|".encode())).circulation_status_name \
        == "waiting on hold shelf"


def test_screen_messages_come_back_composed():
    decomposed = "\u1112\u1161\u11ab"  # 한 as conjoining jamo (NFD, as Evergreen sends it)
    result = CheckinResult.from_message(decode(f"100NNN{DATE}AB{ITEM}|AF{decomposed} 반납|".encode()))
    assert result.screen_messages == ("한 반납",) and not result.ok


# -- TLS (certificates made at test time)


@pytest.fixture
def pki(tmp_path):
    trustme = pytest.importorskip("trustme", reason="trustme (a dev dependency) makes the test certificates")
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    return {"ca": ca, "server": server_context, "ca_file": str(ca_file), "other_ca_file": str(other),
            "tmp": tmp_path}


def test_tls_with_the_right_ca_works(clock, pki):
    with ScriptedServer(echo("941"), OK_18, OK_18, tls=pki["server"]) as server, \
            make_client(server, clock, tls=True, ca_file=pki["ca_file"], user="kiosk", password=PASSWORD) as c:
        assert c.item_information(ITEM).title == "채식주의자"
        assert c.item_information(ITEM).title == "채식주의자"  # the idle check copes with TLS records
    assert server.requests() == ["93", "17", "17"] and server.connections == 1


def test_tls_with_a_wrong_ca_is_refused_clearly(clock, pki):
    with ScriptedServer(OK_18, tls=pki["server"]) as server, \
            make_client(server, clock, tls=True, ca_file=pki["other_ca_file"]) as c:
        with pytest.raises(Sip2Unavailable, match="certificate is not trusted.*check sip2 ca_file") as caught:
            c.item_information(ITEM)
        assert not isinstance(caught.value, OutcomeUnknown)
        assert c.next_attempt_at is not None and not c.connected
    assert server.received == []


def test_tls_checks_the_host_name_unless_told_not_to(clock, pki):
    named = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki["ca"].issue_cert("ils.example.org").configure_cert(named)
    with ScriptedServer(OK_18, tls=named) as server:
        with make_client(server, clock, tls=True, ca_file=pki["ca_file"]) as c:
            with pytest.raises(Sip2Unavailable, match="not trusted"):
                c.item_information(ITEM)
        with make_client(server, clock, tls=True, ca_file=pki["ca_file"], check_hostname=False) as c:
            assert c.item_information(ITEM).title == "채식주의자"


def test_tls_client_certificate_when_the_server_demands_one(clock, pki):
    server_context = pki["server"]
    server_context.verify_mode = ssl.CERT_REQUIRED
    pki["ca"].configure_trust(server_context)
    mine = pki["ca"].issue_cert("kiosk-01")
    cert_file, key_file = pki["tmp"] / "kiosk.pem", pki["tmp"] / "kiosk.key"
    mine.cert_chain_pems[0].write_to_path(str(cert_file))
    mine.private_key_pem.write_to_path(str(key_file))
    with ScriptedServer(OK_18, tls=server_context) as server, \
            make_client(server, clock, tls=True, ca_file=pki["ca_file"], cert_file=str(cert_file),
                        key_file=str(key_file)) as c:
        assert c.item_information(ITEM).title == "채식주의자"


def test_missing_tls_files_are_named(clock, pki):
    client = make_client(None, clock, tls=True, ca_file=str(pki["tmp"] / "missing.pem"))
    with pytest.raises(Sip2Unavailable, match="cannot load the TLS files"):
        client.connect()


# -- against the demo ILS

demo_ils = pytest.importorskip("sync.demo_ils")
Behaviour, DemoIls, loans_report, seed_demo = (demo_ils.Behaviour, demo_ils.DemoIls, demo_ils.loans_report,
                                               demo_ils.seed_demo)

GOOD = "11110100000001"  # in good standing, PIN 1234
FINED = "11110100000002"  # blocked for unpaid fines
AT_LIMIT = "11110100000003"  # five loans, EM0000000025-29; 26 is reserved by member 9
FREE_ITEM = "EM0000000050"  # 입 속의 검은 잎, on the shelf


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("ils") / "seed.db"
    seed_demo(path, FakeClock())
    return path.read_bytes()


@pytest.fixture
def ils(tmp_path, seeded, clock):
    path = tmp_path / "ils.db"
    path.write_bytes(seeded)
    with DemoIls(path, clock=clock).start() as server:
        server.db_path = path
        yield server


def ils_client(ils, clock, *, dialect=Dialect(), timeout=2.0, **overrides) -> Client:
    host, port = ils.address
    options = dict(user="kiosk", password="kiosk-demo", institution="111101", location="KIOSK-1",
                   dialect=dialect, connect_timeout_s=1.0, response_timeout_s=timeout)
    settings = ClientSettings(host, port, **{**options, **overrides})
    return Client(settings, clock=clock, rng=random.Random(3))


def loans(ils) -> dict[str, str]:
    return {loan["item"]: loan["patron"] for loan in loans_report(ils.db_path)["loans"]}


def test_demo_ils_every_message(ils, clock):
    with ils_client(ils, clock) as c:
        status = c.sc_status()
        assert status.online and status.library_name == "책이음 데모 도서관"
        assert {"checkout", "checkin", "renew", "item_information"} <= status.supported_messages
        assert c.patron_status(GOOD, "1234").pin_ok is True
        wrong = c.patron_status(GOOD, "0000")
        assert wrong.valid is True and wrong.pin_ok is False and wrong.screen_messages
        assert c.patron_status("11119999999999").valid is False
        fined = c.patron_information(FINED, "1234")
        assert "excessive_outstanding_fines" in fined.flags and fined.fee_amount == 3500
        limited = c.patron_information(AT_LIMIT, summary="charged", start=2, end=3)
        assert limited.charged == 5 and len(limited.charged_items) == 2
        assert set(limited.charged_items) <= {f"EM00000000{n}" for n in range(25, 30)}
        assert limited.charged_limit == 5 and "too_many_items_charged" in limited.flags
        item = c.item_information(FREE_ITEM)
        assert (item.title, item.circulation_status, item.due) == ("입 속의 검은 잎", "03", None)
        lent = c.checkout(GOOD, FREE_ITEM, pin="1234")
        assert lent.ok and lent.due == dt.datetime(2026, 11, 16, 23, 59, 59, tzinfo=KST)
        assert loans(ils)[FREE_ITEM] == GOOD
        assert c.item_information(FREE_ITEM).circulation_status == "04"
        refused = c.checkout(FINED, "EM0000000051", pin="1234")
        assert not refused.ok and refused.screen_messages
        renewed = c.renew(GOOD, FREE_ITEM, pin="1234")
        assert renewed.ok and renewed.renewal_ok
        back = c.checkin(FREE_ITEM)
        assert back.ok and not back.alert and back.patron == GOOD
        held = c.checkin("EM0000000026")  # member 9 has reserved it
        assert held.ok and held.alert and held.alert_type == "01"
        assert c.item_information("EM0000000026").circulation_status == "08"
        assert c.end_session(GOOD, "1234") is True
        _, seconds = c.ping()
        assert seconds < 1
    assert FREE_ITEM not in loans(ils)


def test_demo_ils_refuses_a_wrong_sip_password(ils, clock):
    with ils_client(ils, clock, password="nope") as c:
        with pytest.raises(LoginRefused):
            c.sc_status()


@pytest.mark.parametrize("behaviour, dialect", [
    (Behaviour(terminator="\r\n"), Dialect(terminator="\r\n")),
    (Behaviour(terminator="\r\n"), Dialect()),  # reading CRLF needs no setting
    (Behaviour(error_detection="required"), Dialect()),
    (Behaviour(error_detection="off"), Dialect()),  # replies without AZ are accepted
    (Behaviour(error_detection="off"), Dialect(error_detection=False)),
    (Behaviour(error_detection="per-message"), Dialect(error_detection=False)),
    (Behaviour(checksum="codepoints"), Dialect(checksum_mode="codepoints", send_checksum="codepoints")),
    (Behaviour(checksum="codepoints"), Dialect(checksum_mode="either")),
    (Behaviour(encoding="utf-8-nfd"), Dialect()),
    (Behaviour(encoding="cp949"), Dialect(encoding="cp949")),
    (Behaviour(encoding="cp949", checksum="codepoints"), Dialect(encoding="cp949", checksum_mode="codepoints",
                                                                 send_checksum="codepoints")),
], ids=lambda v: repr(v) if isinstance(v, Behaviour) else "")
def test_demo_ils_behaviours_with_a_matching_dialect(ils, clock, behaviour, dialect):
    ils.behaviour = behaviour
    with ils_client(ils, clock, dialect=dialect) as c:
        lent = c.checkout(GOOD, FREE_ITEM, pin="1234")
        assert lent.ok and lent.title == "입 속의 검은 잎"
        assert c.item_information(FREE_ITEM).title == "입 속의 검은 잎"
        assert c.checkin(FREE_ITEM).ok
        assert c.sc_status().library_name == "책이음 데모 도서관"


@pytest.mark.parametrize("encoding", ["cp850", "ascii"])
def test_demo_ils_encodings_without_hangul_still_work(ils, clock, encoding):
    ils.behaviour = Behaviour(encoding=encoding)
    with ils_client(ils, clock, dialect=Dialect(encoding=encoding)) as c:
        lent = c.checkout(GOOD, FREE_ITEM, pin="1234")
        assert lent.ok and lent.title and set(lent.title) <= set("? ")  # Hangul cannot be sent: "?"


def test_demo_ils_codepoint_checksums_fail_a_bytes_only_client_safely(ils, clock):
    ils.behaviour = Behaviour(checksum="codepoints")
    with ils_client(ils, clock) as c:
        with pytest.raises(OutcomeUnknown, match="checksum was still wrong after 3"):
            c.item_information(FREE_ITEM)  # a Hangul title: the two sums differ
        assert not c.connected
        ils.behaviour = Behaviour()
        assert c.item_information(FREE_ITEM).title == "입 속의 검은 잎"  # a new connection, and fine


def test_demo_ils_required_error_detection_and_a_client_without_it(ils, clock):
    ils.behaviour = Behaviour(error_detection="required")
    with ils_client(ils, clock, dialect=Dialect(error_detection=False), resend_requests=1) as c:
        with pytest.raises(Sip2Unavailable) as caught:
            c.sc_status()
    assert not isinstance(caught.value, OutcomeUnknown)  # 96 each time: nothing happened


@pytest.mark.parametrize("mode, lent", [("honoured", True), ("ignored", False)])
def test_demo_ils_no_block(ils, clock, mode, lent):
    ils.behaviour = Behaviour(no_block=mode)
    when = dt.datetime(2026, 11, 1, 15, 0, tzinfo=KST)
    due = dt.datetime(2026, 11, 15, 23, 59, 59, tzinfo=KST)
    with ils_client(ils, clock) as c:
        result = c.checkout(FINED, FREE_ITEM, no_block=True, transaction_date=when, nb_due=due)
    assert result.ok is lent
    if lent:
        assert result.due == due and loans(ils)[FREE_ITEM] == FINED
    entry = loans_report(ils.db_path)["log"][-1]
    assert entry["no_block"] and entry["transaction_date"].startswith("2026-11-01T15:00:00")


@pytest.mark.parametrize("mode", ["renewal", "refused"])
def test_demo_ils_repeat_checkout(ils, clock, mode):
    ils.behaviour = Behaviour(repeat_checkout=mode)
    with ils_client(ils, clock) as c:
        assert c.checkout(GOOD, FREE_ITEM).ok
        again = c.checkout(GOOD, FREE_ITEM)
    assert again.ok is (mode == "renewal") and again.renewal_ok is (mode == "renewal")


@pytest.mark.parametrize("checked_in_ok", [True, False])
def test_demo_ils_checked_in_ok(ils, clock, checked_in_ok):
    ils.behaviour = Behaviour(checked_in_ok=checked_in_ok)
    with ils_client(ils, clock) as c:
        assert c.checkin(FREE_ITEM).ok is checked_in_ok  # it was never on loan


def test_demo_ils_split_writes(ils, clock):
    ils.faults.split_writes = 1
    with ils_client(ils, clock) as c:
        assert len(c.patron_information(AT_LIMIT, summary="charged").charged_items) == 5
    assert ils.connections <= 1


def test_demo_ils_drop_after_leaves_an_outcome_to_settle_with_item_information(ils, clock):
    with ils_client(ils, clock) as c:
        c.sc_status()
        ils.faults.drop_after = 10
        with pytest.raises(OutcomeUnknown):
            c.checkout(GOOD, FREE_ITEM)
        assert not c.connected
        assert c.item_information(FREE_ITEM).circulation_status == "04"  # it did happen
    assert loans(ils)[FREE_ITEM] == GOOD


def test_demo_ils_delay_beyond_the_timeout(ils, clock):
    with ils_client(ils, clock, timeout=TIMEOUT) as c:
        c.sc_status()
        ils.faults.delay_s = 1.0
        started = time.perf_counter()
        with pytest.raises(OutcomeUnknown, match="no answer within"):
            c.checkout(GOOD, FREE_ITEM)
        assert time.perf_counter() - started < 1.0
        ils.faults.delay_s = 0
        assert c.item_information(FREE_ITEM).circulation_status == "04"


def test_demo_ils_silent(ils, clock):
    with ils_client(ils, clock, timeout=TIMEOUT) as c:
        c.sc_status()
        ils.faults.silent = True
        with pytest.raises(OutcomeUnknown):
            c.checkout(GOOD, FREE_ITEM)
        ils.faults.silent = False
        assert c.item_information(FREE_ITEM).circulation_status == "03"  # a hung ILS did nothing
    assert FREE_ITEM not in loans(ils)


def test_demo_ils_down_then_up(ils, clock):
    with ils_client(ils, clock, timeout=TIMEOUT) as c:
        c.sc_status()
        ils.faults.down = True  # closes the open connection too
        # The server's FIN is on its way: once it has arrived (at once, unless the machine is
        # busy), the client finds the idle connection dead before it sends anything.
        select.select([c._sock], [], [], 5)
        with pytest.raises(Sip2Unavailable) as caught:
            c.checkout(GOOD, FREE_ITEM)
        assert not isinstance(caught.value, OutcomeUnknown)  # found dead before sending
        assert c.next_attempt_at is not None
        ils.faults.down = False
        with pytest.raises(Sip2Unavailable, match="next attempt"):
            c.checkout(GOOD, FREE_ITEM)
        clock.advance(c.next_attempt_at - clock.monotonic())
        assert c.checkout(GOOD, FREE_ITEM).ok
    assert loans(ils)[FREE_ITEM] == GOOD


def test_demo_ils_corrupt_checksum_is_repaired_by_a_97(ils, clock):
    with ils_client(ils, clock) as c:
        c.sc_status()
        ils.faults.corrupt_checksum = True
        assert c.checkout(GOOD, FREE_ITEM).ok
        assert c.connected
    assert loans(ils)[FREE_ITEM] == GOOD
    assert [e["action"] for e in loans_report(ils.db_path)["log"]] == ["checkout"]  # once, not twice


def test_demo_ils_garbage_reply(ils, clock):
    with ils_client(ils, clock) as c:
        c.sc_status()
        ils.faults.garbage = True
        with pytest.raises(OutcomeUnknown):
            c.checkout(GOOD, FREE_ITEM)
        assert c.item_information(FREE_ITEM).circulation_status == "04"


def _login_with_nul_padding(request):
    return frame("941", decode(request).sequence) + b"\x00"  # CR NUL, as a telnet-style server ends lines


def _login_answered_twice(request):
    reply = frame("941", decode(request).sequence)
    return reply + reply


@pytest.mark.parametrize("login_reply", [_login_with_nul_padding, _login_answered_twice], ids=["nul", "twice"])
def test_extra_bytes_after_the_login_reply_do_not_stop_the_next_request(login_reply):
    with ScriptedServer(login_reply, OK_18) as server, \
            make_client(server, FakeClock(), user="kiosk", password="pw") as client:
        assert client.item_information(ITEM).title  # answered on the same connection
        assert server.connections == 1
