"""An independent SIP2 client, the PyPI `sip2` package (1.1, imported as `Sip2`), against the demo ILS.

What had to be worked around in that package, each pinned by a test below:

* Its checksum (`_crc_calc`) drops leading zeros ("9AB" instead of "09AB": 1 frame in 16) and
  sums code points instead of encoded bytes. A strict server answers such frames 96, and a
  96 reads as a failed checkout. `FixedSip2` pads to four digits and sums the bytes it sends.
* It never verifies a reply's checksum (`_crc_verify` is always true), so a corrupted reply is
  taken as good.
* It reads each reply with one `recv(4096)`: a reply split across TCP segments is cut short, so
  the server's `split_writes` fault stays off here.
* It tries TLS first by default and times out against a plain server: `tlsEnable = False`.
* On first connect it adds a file handler writing `sip2.log` (frames, passwords included) to
  the working directory: each client gets a disabled logger instead.
* Its transaction dates come from the machine's clock, not the injected one; it parses replies
  by assuming they end in `AZxxxx` when checksums are on.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil

import pytest
from Sip2.sip2 import Sip2

from kiosk import demo
from kiosk.clock import KST, FakeClock
from sync.demo_ils import Behaviour, DemoIls, loans_report, seed_demo

NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=KST)
FIXED_STAMP = "20261102    100000"
MEMBER = demo.MEMBERS[0]
EM = demo.accession


class StockSip2(Sip2):
    """The package as it is, but for its destructor, which prints "Sip2 object unset"."""

    def __del__(self) -> None:
        pass


class FixedSip2(StockSip2):
    """The package with its checksum fixed: four hex digits over the bytes it actually sends."""

    def _crc_calc(self, msg: str) -> str:
        return format(-sum(msg.encode(self.hostEncoding)) & 0xFFFF, "04X")


@pytest.fixture(scope="session")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed") / "ils.db"
    assert seed_demo(path, FakeClock(NOW))
    return path


@pytest.fixture
def db_path(tmp_path, seeded):
    path = tmp_path / "ils.db"
    shutil.copyfile(seeded, path)
    return path


@pytest.fixture
def serve(db_path):
    servers: list[DemoIls] = []

    def start(behaviour: Behaviour = Behaviour()) -> DemoIls:
        servers.append(DemoIls(db_path, clock=FakeClock(NOW), behaviour=behaviour).start())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def sip2_client():
    clients: list[Sip2] = []

    def connect(server: DemoIls, cls: type[Sip2] = FixedSip2, **settings: object) -> Sip2:
        client = cls()
        client.log = logging.getLogger(f"tests.sip2-package.{len(clients)}")
        client.log.disabled = True  # it would log whole frames, passwords included
        client.hostName, client.hostPort = server.address
        client.tlsEnable = False
        client.socketTimeout = 0.5
        client.institutionId = "111101"
        client.scLocation = "KIOSK-1"
        for name, value in settings.items():
            setattr(client, name, value)
        client.connect()
        clients.append(client)
        return client

    yield connect
    for client in clients:
        try:
            client.disconnect()
        except OSError:
            client._socket = None  # the server already hung up


def login(client: Sip2) -> dict:
    return client.sip_login_response(client.get_response(client.sip_login_request("kiosk", "kiosk-demo")))


@pytest.mark.parametrize("behaviour, encoding", [
    (Behaviour(), "utf-8"),
    (Behaviour(terminator="\r\n"), "utf-8"),  # Koha
    (Behaviour(encoding="cp949"), "cp949"),
    (Behaviour(error_detection="required"), "utf-8"),  # FOLIO with error detection on
], ids=["default", "crlf", "cp949", "checksums-required"])
def test_login_patron_information_checkout_and_checkin(serve, sip2_client, db_path, behaviour, encoding):
    server = serve(behaviour)
    client = sip2_client(server, hostEncoding=encoding)
    assert login(client)["fixed"]["Ok"] == "1"
    acs = client.sip_sc_status_response(client.get_response(client.sip_sc_status_request()))
    assert acs["fixed"]["OnlineStatus"] == "Y" and acs["variable"]["AO"] == ["111101"]

    client.patron, client.patronpwd = MEMBER.member_id, MEMBER.pin
    info = client.sip_patron_information_response(
        client.get_response(client.sip_patron_information_request("charged")))
    assert info["fixed"]["PatronStatus"] == " " * 14 and info["fixed"]["ChargedItemsCount"] == "0000"
    assert info["variable"]["AE"] == [MEMBER.name] and info["variable"]["CQ"] == ["Y"]

    client.patron = MEMBER.card_uid  # the card UID identifies the member too
    out = client.sip_checkout_response(client.get_response(client.sip_checkout_request(EM(3))))
    assert out["fixed"]["Ok"] == "1"
    assert out["variable"]["AH"] == ["20261116    235959"] and out["variable"]["AA"] == [MEMBER.member_id]
    assert out["variable"]["AJ"] == ["작별하지 않는다"]
    loan = next(row for row in loans_report(db_path)["loans"] if row["item"] == EM(3))
    assert (loan["patron"], loan["due"], loan["renewals"]) == (MEMBER.member_id, "2026-11-16T23:59:59+09:00", 0)

    client.patron = MEMBER.member_id
    info = client.sip_patron_information_response(
        client.get_response(client.sip_patron_information_request("charged")))
    assert info["fixed"]["ChargedItemsCount"] == "0001" and info["variable"]["AU"] == [EM(3)]

    back = client.sip_checkin_response(client.get_response(client.sip_checkin_request(EM(3))))
    assert back["fixed"]["Ok"] == "1" and back["fixed"]["Alert"] == "N"
    assert back["variable"]["AA"] == [MEMBER.member_id]
    report = loans_report(db_path)
    assert all(row["item"] != EM(3) for row in report["loans"])
    assert [(e["action"], e["item"], e["patron"], e["ok"]) for e in report["log"]] == [
        ("checkout", EM(3), MEMBER.member_id, True), ("checkin", EM(3), MEMBER.member_id, True)]


def test_a_refusal_and_a_hold_alert_reach_the_package(serve, sip2_client, db_path):
    client = sip2_client(serve())
    login(client)
    client.patron = demo.MEMBERS[2].member_id  # at the per-library limit
    refused = client.sip_checkout_response(client.get_response(client.sip_checkout_request(EM(1))))
    assert refused["fixed"]["Ok"] == "0" and refused["variable"]["AF"] == ["대출 한도(5권)를 초과했습니다"]
    held = client.sip_checkin_response(client.get_response(client.sip_checkin_request(EM(26))))
    assert held["fixed"]["Alert"] == "Y" and held["variable"]["CV"] == ["01"]
    assert [h["state"] for h in loans_report(db_path)["holds"]] == ["waiting"]


def test_without_checksums_the_package_works_with_a_server_that_has_them_off(serve, sip2_client, db_path):
    client = sip2_client(serve(Behaviour(error_detection="off")), cls=StockSip2, withCrc=False, withSeq=False)
    assert login(client)["fixed"]["Ok"] == "1"
    client.patron = MEMBER.member_id
    out = client.sip_checkout_response(client.get_response(client.sip_checkout_request(EM(4))))
    assert out["fixed"]["Ok"] == "1" and out["variable"]["AJ"] == ["82년생 김지영"]
    assert "AZ" not in client.last_response
    assert loans_report(db_path)["loans"][-1]["item"] == EM(4)


def _unpadded_checkout(client: Sip2) -> tuple[str, str]:
    """A checkout whose stock checksum has lost its leading zero, and its item properties (CH).

    Short ASCII frames never sum high enough; long ones do: the terminal password and the item
    properties (which the server ignores) pad the frame until the checksum is below 0x1000.
    Deterministic, since the transaction date is pinned.
    """
    client.terminalPassword = "z" * 255
    for size in range(256):
        client._seq = 0  # every frame built with AY1
        frame = client.sip_checkout_request(EM(3), itemProperties="z" * size)
        if len(frame.rstrip("\r").rsplit("AZ", 1)[1]) < 4:
            return "z" * size, frame
    raise AssertionError("no padding gives a checksum with a leading zero")


def test_the_stock_checksum_drops_leading_zeros_and_a_strict_server_asks_for_a_resend(serve, sip2_client, db_path):
    server = serve(Behaviour(error_detection="required"))
    stock = sip2_client(server, cls=StockSip2)
    stock._datestamp = lambda timestamp="": FIXED_STAMP
    login(stock)
    stock.patron = MEMBER.member_id
    properties, frame = _unpadded_checkout(stock)
    reply = stock.get_response(frame)
    assert reply == "96AZFEF6\r"
    assert stock.sip_checkout_response(reply)["fixed"]["Ok"] == "A"  # a 96 read as a checkout reply
    assert all(row["item"] != EM(3) for row in loans_report(db_path)["loans"])
    fixed = sip2_client(server, terminalPassword="z" * 255)
    fixed._datestamp = lambda timestamp="": FIXED_STAMP
    login(fixed)
    fixed.patron = MEMBER.member_id
    fixed._seq = 0
    padded = fixed.sip_checkout_request(EM(3), itemProperties=properties)
    assert padded[:-6] == frame[:-5] and len(padded) == len(frame) + 1  # the same frame, four digits
    assert fixed.sip_checkout_response(fixed.get_response(padded))["fixed"]["Ok"] == "1"


@pytest.mark.parametrize("server_sums, accepted", [("bytes", False), ("codepoints", True)])
def test_the_stock_checksum_sums_code_points(serve, sip2_client, server_sums, accepted):
    client = sip2_client(serve(Behaviour(checksum=server_sums)), cls=StockSip2, scLocation="무인대출기")
    frame = client.sip_login_request("kiosk", "kiosk-demo")
    if len(frame.rstrip("\r").rsplit("AZ", 1)[1]) < 4:
        pytest.skip("this login frame hits the leading-zero quirk instead")  # pragma: no cover
    reply = client.get_response(frame)
    assert reply.startswith("941" if accepted else "96")


def test_the_package_takes_a_corrupted_reply_for_a_good_one(serve, sip2_client):
    server = serve()
    client = sip2_client(server)
    login(client)
    server.faults.corrupt_checksum = True
    reply = client.get_response(client.sip_sc_status_request())
    assert reply.startswith("98")  # no error raised, no 97 sent: the package never checks
    assert server.faults.corrupt_checksum is False  # the server did corrupt that reply
