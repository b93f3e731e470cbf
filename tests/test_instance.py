"""One kiosk a database: a second kiosk is refused, `kiosk sync --once` stands aside for a running
kiosk, a kiosk waits for a sync to finish, and a holder that dies lets go."""

import io
import subprocess
import sys
import threading

import pytest

from kiosk.cli import _take_database, main
from kiosk.instance import AlreadyRunning, InstanceLock
from kiosk.clock import SystemClock
from kiosk.store import Store
from steps import queue_return
from test_sip2_commands import write_config

WAIT_S = 10  # a bound for what should happen at once


def queued_return(db):
    """A return recorded while the library was unreachable (a real clock: `kiosk sync` has one)."""
    clock = SystemClock()
    with Store(db) as store:
        store.ensure_slots(2, clock.now())
        queue_return(store, clock, "EM0000000025")


def test_a_second_holder_is_told_who_has_the_database(tmp_path):
    db = tmp_path / "kiosk.db"
    with InstanceLock(db) as first:
        first.acquire("kiosk run")
        second = InstanceLock(db)
        with pytest.raises(AlreadyRunning) as refused:
            second.acquire("kiosk sync")
        assert refused.value.holder.startswith("kiosk run (pid ")
        assert str(db) in str(refused.value)
    second.acquire("kiosk sync")  # let go: free again
    assert second.holder().startswith("kiosk sync")
    second.release()
    assert second.holder() == ""


def test_the_same_database_by_another_name_is_still_locked(tmp_path):
    """Backup and restore scripts reach a database by a symlink (current.db -> kiosk-2026.db):
    a second kiosk or sync started on that name is refused while the first runs."""
    db = tmp_path / "kiosk.db"
    db.write_bytes(b"")
    other_name = tmp_path / "current.db"
    other_name.symlink_to(db)
    with InstanceLock(db) as running:
        running.acquire("kiosk run")
        with pytest.raises(AlreadyRunning):
            InstanceLock(other_name).acquire("kiosk sync")


def test_a_holder_killed_outright_lets_go_of_the_database(tmp_path):
    db = tmp_path / "kiosk.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from kiosk.instance import InstanceLock; "
         f"InstanceLock({str(db)!r}).acquire('kiosk run'); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(AlreadyRunning):
            InstanceLock(db).acquire("kiosk run")
    finally:
        holder.kill()  # SIGKILL: no clean-up runs
        holder.wait(WAIT_S)
    with InstanceLock(db) as lock:
        lock.acquire("kiosk run")  # the kernel let the dead holder's lock go


def test_sync_once_stands_aside_for_a_running_kiosk(ils, tmp_path, capsys):
    config = write_config(tmp_path, ils.address[1])
    db = tmp_path / "kiosk.db"
    queued_return(db)
    with InstanceLock(db) as kiosk:
        kiosk.acquire("kiosk run")
        assert main(["sync", "--once", "--config", str(config), "--db", str(db)]) == 1
        err = capsys.readouterr().err
        assert "kiosk run (pid" in err and "delivers its queue itself" in err
        with Store(db) as store:
            assert store.queue_status()["counts"] == {"pending": 1}  # nothing was sent from outside it
    assert main(["sync", "--once", "--config", str(config), "--db", str(db)]) == 0  # the kiosk has stopped
    assert "1 delivered" in capsys.readouterr().out


def test_a_second_kiosk_on_one_database_does_not_start(tmp_path, capsys):
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[kiosk]\ndata_dir = "{tmp_path}"\n')
    with InstanceLock(tmp_path / "kiosk.db") as running:
        running.acquire("kiosk run")
        assert main(["run", "--config", str(config)]) == 1
    assert "only one kiosk runs on a database" in capsys.readouterr().err


def test_a_kiosk_starting_during_a_sync_waits_for_it(tmp_path, monkeypatch):
    db = tmp_path / "kiosk.db"
    told = threading.Event()

    class Stderr(io.StringIO):
        def write(self, text):
            if "waiting for it to finish" in text:
                told.set()
            return super().write(text)

    monkeypatch.setattr(sys, "stderr", Stderr())
    taken = []
    with InstanceLock(db) as sync:
        sync.acquire("kiosk sync")
        starting = threading.Thread(target=lambda: taken.append(_take_database(db, "kiosk run")))
        starting.start()
        assert told.wait(WAIT_S)
        assert taken == []  # not while the sync runs
    starting.join(WAIT_S)
    [lock] = taken
    assert lock.holder().startswith("kiosk run")
    lock.release()
