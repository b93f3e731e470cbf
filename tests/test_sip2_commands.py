"""The technician's SIP2 commands: `kiosk sip2 decode|ping` and `kiosk ils serve|loans`."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from kiosk.cli import main
from kiosk.clock import FakeClock
from sync.demo_ils import DemoIls, seed_demo
from sync.sip2 import Dialect, FrameReader, decode, encode, make


def test_decode_prints_one_json_object_per_frame(tmp_path, capsys):
    frames = tmp_path / "frames.txt"
    frames.write_bytes(b"941AY0AZFDFD\r\n"
                       b"9300CNLoginUserID|COLoginPassword|CPLocationCode|AY5AZEC7B\n"
                       b"\n"
                       b"9300CNuser_id|COpassw0rd|AY1AZF595\n")
    assert main(["sip2", "decode", str(frames)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [obj["name"] for obj in lines] == ["login_response", "login", "login"]
    assert [obj["checksum_ok"] for obj in lines] == [True, True, False]
    assert lines[1]["fixed"] == {"uid_algorithm": "0", "pwd_algorithm": "0"}
    fields = {f["id"]: f["value"] for f in lines[1]["fields"]}
    assert fields["CN"] == "LoginUserID" and fields["CO"] == "***"  # a password is never printed


def test_decode_reports_a_bad_line_and_goes_on(tmp_path, capsys):
    frames = tmp_path / "frames.txt"
    frames.write_bytes(b"hello\n941AY0AZFDFD\n")
    assert main(["sip2", "decode", str(frames)]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["line"] == 1 and "error" in first
    assert second["name"] == "login_response"


@pytest.fixture
def demo_ils(tmp_path):
    clock = FakeClock()
    path = tmp_path / "ils.db"
    seed_demo(path, clock)
    with DemoIls(path, clock=clock) as server:
        server.start()
        yield server, path


def write_config(tmp_path, port, password="kiosk-demo", mode=0o600):
    (tmp_path / "sip2-secrets.toml").write_text(f'password = "{password}"\n')
    (tmp_path / "sip2-secrets.toml").chmod(mode)
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[library]\nbackend = "sip2"\nseed = ""\n[sip2]\nhost = "127.0.0.1"\nport = {port}\n'
                      'response_timeout_s = 0.5\nconnect_timeout_s = 0.5\n')
    return config


def test_ping_logs_in_and_prints_the_status(demo_ils, tmp_path, capsys):
    server, _ = demo_ils
    config = write_config(tmp_path, server.address[1])
    assert main(["sip2", "ping", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "OK in" in out and "institution 111101" in out and "checkout" in out


def test_ping_says_why_it_failed(demo_ils, tmp_path, capsys):
    server, _ = demo_ils
    config = write_config(tmp_path, server.address[1], password="wrong")
    assert main(["sip2", "ping", "--config", str(config)]) == 1
    assert "FAILED" in capsys.readouterr().err
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    config = write_config(tmp_path, free)
    assert main(["sip2", "ping", "--config", str(config)]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_ping_refuses_a_secrets_file_others_can_read(demo_ils, tmp_path, capsys):
    server, _ = demo_ils
    config = write_config(tmp_path, server.address[1], mode=0o644)
    assert main(["sip2", "ping", "--config", str(config)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    assert main(["config", "check", str(config)]) == 1


def test_ils_loans_json(demo_ils, capsys):
    _, path = demo_ils
    assert main(["ils", "loans", "--db", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    loans = {loan["item"]: loan for loan in report["loans"]}
    assert loans["EM0000000025"]["patron"] == "11110100000003"
    assert {"item", "title", "patron", "checked_out_at", "due", "renewals"} <= set(loans["EM0000000025"])
    assert main(["ils", "loans", "--db", str(path)]) == 0
    assert "EM0000000025" in capsys.readouterr().out


def test_ils_serve_runs_until_sigterm(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "served.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "ils", "serve", "--db", str(db), "--port", str(port),
         "--terminator", "CRLF"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert "seeded" in proc.stdout.readline()
        assert f"127.0.0.1:{port}" in proc.stdout.readline()  # listening from here on
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            login = make("login", uid_algorithm="0", pwd_algorithm="0",
                         fields=[("CN", "kiosk"), ("CO", "kiosk-demo"), ("CP", "")])
            conn.sendall(encode(login, Dialect(), sequence=0))
            reader, frames = FrameReader(), []
            while not frames:
                frames = reader.feed(conn.recv(4096))
            assert decode(frames[0]).flag("ok")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ils_commands_explain_a_file_that_is_not_theirs(tmp_path, capsys):
    other = tmp_path / "other.db"
    other.write_bytes(b"this is not a database at all" * 100)
    assert main(["ils", "loans", "--db", str(other)]) == 1
    assert "kiosk ils loans:" in capsys.readouterr().err
    assert main(["ils", "serve", "--db", str(other), "--port", "0"]) == 1
    assert "kiosk ils serve:" in capsys.readouterr().err


def test_sync_once_delivers_the_queue_and_queue_status_shows_it(demo_ils, tmp_path, capsys):
    import datetime as dt

    from kiosk.session import DoorJob
    from kiosk.store import Item, Stamp, Store

    server, ils_db = demo_ils
    config = write_config(tmp_path, server.address[1])
    db = tmp_path / "kiosk.db"
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=9)))
    with Store(db) as store:  # a return recorded while the library was unreachable
        store.add_items([Item("EM0000000025", "아몬드", "손원평")])
        store.ensure_slots(2, now)
        job = DoorJob("r1", "return", 1, "EM0000000025", "아몬드")
        store.begin_door_job(job, now)
        store.record_return(job, Stamp(now, True, "b"))
    assert main(["queue", "status", "--config", str(config), "--db", str(db)]) == 0
    assert "1 pending" in capsys.readouterr().out
    assert main(["sync", "--once", "--config", str(config), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "1 delivered" in out and "0 pending" in out
    assert main(["queue", "status", "--config", str(config), "--db", str(db), "--json"]) == 0
    overview = json.loads(capsys.readouterr().out)
    assert overview["counts"]["delivered"] == 1 and overview["waiting"] == 0


def test_queue_commands_show_retry_and_resolve_dead_letters(demo_ils, tmp_path, capsys):
    import datetime as dt

    from kiosk.clock import FakeClock
    from kiosk.store import Item, Store
    from steps import queue_loan

    server, _ = demo_ils
    config = write_config(tmp_path, server.address[1])
    db = tmp_path / "kiosk.db"
    clock = FakeClock(dt.datetime.now(dt.timezone(dt.timedelta(hours=9))))
    with Store(db) as store:  # a loan of a copy the library has never heard of
        store.add_items([Item("EM0000000999", "?", "")])
        store.ensure_slots(1, clock.now())
        store.put_in_slot(1, "EM0000000999", clock.now())
        queue_loan(store, clock, "EM0000000999", "11110100000001", slot=1)
    args = ["--config", str(config), "--db", str(db)]
    assert main(["sync", "--once", *args]) == 1  # something is left for staff
    capsys.readouterr()
    assert main(["queue", "status", *args]) == 0
    out = capsys.readouterr().out
    assert "dead letter #1: checkout of EM0000000999" in out and "does not know this item" in out
    assert main(["queue", "list", "--state", "dead", *args]) == 0
    out = capsys.readouterr().out
    assert "#1" in out and "11110100000001" not in out  # never a whole member number
    assert main(["queue", "show", "1", *args]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["member"] == "…0001" and shown["payload"]["slot"] == 1
    assert main(["queue", "show", "7", *args]) == 1
    assert "no outbox event #7" in capsys.readouterr().err
    assert main(["queue", "retry", "1", *args]) == 0
    assert "will be sent again" in capsys.readouterr().out
    assert main(["sync", "--once", *args]) == 1  # the library still does not know it
    capsys.readouterr()
    assert main(["queue", "resolve", "1", "--note", "catalogued at the desk", *args]) == 0
    assert "settled by hand" in capsys.readouterr().out
    assert main(["queue", "resolve", "1", *args]) == 1  # not a dead letter any more
    assert "not a dead letter" in capsys.readouterr().err
    with Store(db) as store:
        [event] = store.outbox("resolved")
        assert "catalogued at the desk" in event["last_error"]


def test_sync_and_queue_without_a_database_say_so(tmp_path, capsys):
    config = write_config(tmp_path, 6001)
    assert main(["queue", "status", "--config", str(config), "--db", str(tmp_path / "none.db")]) == 1
    assert "no kiosk database here" in capsys.readouterr().err
    assert main(["sync", "--once", "--config", str(config), "--db", str(tmp_path / "none.db")]) == 1
    assert "no kiosk database here" in capsys.readouterr().err


def test_decode_with_a_missing_file_or_unknown_encoding_says_so(tmp_path, capsys):
    assert main(["sip2", "decode", str(tmp_path / "missing.txt")]) == 2
    assert "kiosk sip2 decode:" in capsys.readouterr().err
    frames = tmp_path / "f.txt"
    frames.write_bytes(b"941AY0AZFDFD\n")
    assert main(["sip2", "decode", "--encoding", "klingon", str(frames)]) == 2
    assert "kiosk sip2 decode:" in capsys.readouterr().err
