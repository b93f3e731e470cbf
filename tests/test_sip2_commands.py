"""The technician's commands: `kiosk sip2 decode|ping`, `kiosk ils serve|loans`, `kiosk queue ...` and
`kiosk sync --once`."""

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys

import pytest

from kiosk.cli import main
from kiosk.clock import KST, FakeClock
from kiosk.store import Item, Store
from steps import queue_loan, queue_return
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


def queued_return(db):
    """A kiosk database at `db` holding one return, into locker 1, that the library has not
    been told of yet (recorded while it was unreachable); returns when it was recorded."""
    clock = FakeClock(dt.datetime.now(KST))  # the commands run on the real clock
    with Store(db, clock=clock) as store:
        store.ensure_slots(2, clock.now())
        queue_return(store, clock, "EM0000000025")
    return clock.now()


def test_sync_once_delivers_the_queue_and_queue_status_shows_it(demo_ils, tmp_path, capsys):
    server, _ = demo_ils
    config = write_config(tmp_path, server.address[1])
    db = tmp_path / "kiosk.db"
    queued_return(db)
    assert main(["queue", "status", "--config", str(config), "--db", str(db)]) == 0
    assert "1 pending" in capsys.readouterr().out
    assert main(["sync", "--once", "--config", str(config), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "1 delivered" in out and "0 pending" in out
    assert main(["queue", "status", "--config", str(config), "--db", str(db), "--json"]) == 0
    overview = json.loads(capsys.readouterr().out)
    assert overview["counts"]["delivered"] == 1 and overview["waiting"] == 0


def test_queue_commands_show_retry_and_resolve_dead_letters(demo_ils, tmp_path, capsys):
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


def test_sync_once_exits_1_while_the_locker_audit_waits_for_the_library(demo_ils, tmp_path, capsys):
    """After a power cut the locker audit is due, and the library does not answer: nothing is
    sent. `kiosk sync --once` says what still waits and exits 1, so that neither a technician
    nor a script takes it for everything having gone."""
    server, _ = demo_ils
    config = write_config(tmp_path, server.address[1])
    db = tmp_path / "kiosk.db"
    queued_return(db)
    with Store(db) as store:  # a book on the shelf; a run, then another boot's run that never ended
        store.add_items([Item("EM0000000024", "채식주의자", "한강")])
        store.put_in_slot(2, "EM0000000024", dt.datetime.now(KST))
        store.begin_run("boot-1", audit=True)
        store.begin_run("boot-2", audit=True)
        assert store.locker_audit_due()
    server.faults.down = True
    status = main(["sync", "--once", "--config", str(config), "--db", str(db)])
    out = capsys.readouterr().out
    assert "1 pending" in out  # the return still waits
    assert "locker audit" in out
    assert status == 1


def test_sync_once_exits_1_while_an_unanswered_event_waits_out_its_settling_time(demo_ils, tmp_path, capsys):
    """The kiosk sent a return just before it stopped and got no answer; the event waits out
    its settling time before it is asked about. `kiosk sync --once` run meanwhile sends
    nothing, says it is unknown, and exits 1."""
    server, _ = demo_ils
    config = write_config(tmp_path, server.address[1])
    db = tmp_path / "kiosk.db"
    sent_at = queued_return(db)
    with Store(db) as store:
        [event] = store.outbox()
        store.mark_unknown(event["seq"], "no answer", sent_at, settle_s=3600)
    status = main(["sync", "--once", "--config", str(config), "--db", str(db)])
    assert "1 unknown" in capsys.readouterr().out
    assert status == 1


QUEUE_COMMANDS = [["queue", "status"], ["queue", "list"], ["queue", "show", "1"],
                  ["queue", "retry", "1"], ["queue", "resolve", "1"], ["sync", "--once"]]


@pytest.mark.parametrize("command", QUEUE_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("damage", ["not-a-database", "newer-schema"])
def test_a_damaged_or_newer_database_is_named_by_the_queue_commands(tmp_path, capsys, command, damage):
    """A kiosk database that an SD card gave back damaged, or that a newer kiosk wrote: the
    queue commands and `kiosk sync --once` name the file and exit non-zero (no traceback), and
    leave it as it is for a technician."""
    config = write_config(tmp_path, 6001)
    db = tmp_path / "kiosk.db"
    if damage == "not-a-database":
        db.write_bytes(b"this is not an SQLite database, it is what a bad SD card gave back" * 20)
    else:
        Store(db).close()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA user_version=999")
    found = db.read_bytes()
    assert main([*command, "--config", str(config), "--db", str(db)]) != 0
    assert str(db) in capsys.readouterr().err
    assert db.read_bytes() == found


@pytest.mark.parametrize("command", [["queue", "show"], ["queue", "retry"], ["queue", "resolve"]], ids=" ".join)
def test_an_event_id_too_large_for_the_database_is_no_such_event(tmp_path, capsys, command):
    """An id mistyped with too many digits (more than the database's integers hold) is answered
    as any id that is not in the queue."""
    config = write_config(tmp_path, 6001)
    db = tmp_path / "kiosk.db"
    queued_return(db)
    assert main([*command, "99999999999999999999", "--config", str(config), "--db", str(db)]) == 1
    assert "no outbox event" in capsys.readouterr().err


CARET_CAPTURE = (b"9300CNkiosk^COtopsecret-pw^CPloc^\n"
                 b"6300020261102    100000          AO111101^AA11110100000001^AD86420^\n")


def test_decode_never_prints_a_secret_of_a_capture_split_on_another_delimiter(tmp_path, capsys):
    """A capture from a kiosk set to [sip2] delimiter = "^", decoded as if "|" split its
    fields: the login's password and the patron's PIN land inside other fields' values, and
    are still not printed."""
    frames = tmp_path / "capture.txt"
    frames.write_bytes(CARET_CAPTURE)
    main(["sip2", "decode", str(frames)])
    out = capsys.readouterr().out
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["login", "patron_information"]
    assert "topsecret-pw" not in out and "86420" not in out


def test_decode_with_the_kiosks_delimiter_splits_its_fields(tmp_path, capsys):
    """`kiosk sip2 decode --delimiter "^"` reads such a capture as the kiosk wrote it: one
    field per value, the password and the PIN masked."""
    frames = tmp_path / "capture.txt"
    frames.write_bytes(CARET_CAPTURE)
    assert main(["sip2", "decode", "--delimiter", "^", str(frames)]) == 0
    login, patron = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert {f["id"]: f["value"] for f in login["fields"]} == {"CN": "kiosk", "CO": "***", "CP": "loc"}
    assert {f["id"]: f["value"] for f in patron["fields"]}["AD"] == "***"
