"""The kiosk's SQLite store: lockers and their contents, items, loans, returns, the outbox.

Every connection runs in WAL mode with synchronous=FULL: an acknowledged commit survives a power
cut. A loan (or return) and its outbox event are written in one transaction, and the decision to
open a door (a door job) is committed before the door is unlocked, so that after any crash the
database says what the kiosk had promised and what had physically happened.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from kiosk.clock import Clock, SystemClock, boot_id
from kiosk.session import DoorJob, LoanLine, ShelfItem

log = logging.getLogger("kiosk.store")


class StoreError(Exception):
    """The database could not do what was asked; the message says what and why."""


@dataclass(frozen=True)
class Item:
    item: str
    title: str
    author: str
    isbn: str = ""
    call_number: str = ""


@dataclass(frozen=True)
class Stamp:
    """When something happened, as the kiosk knew it (stored with every outbox event)."""

    wall: dt.datetime
    clock_synced: bool
    boot_id: str


def sender_id(boot: str, sender: str = "") -> str:
    """Who is sending an outbox event: this boot, this process (its pid and when it started, so
    that a later process given the same pid is not taken for it), and which sender in it."""
    pid = os.getpid()
    started = _process_start(pid)
    return f"{boot}:{pid}" + (f"@{started}" if started else "") + (f":{sender}" if sender else "")


# The claims this process is sending under right now (see `sending`).
_SENDING: set[str] = set()


@contextmanager
def sending(claim: str) -> Iterator[None]:
    """While a sender of this process sends the events it claimed as `claim`. Outside it, the
    claim is no live sender's: a write that failed after the send (a full disk, say) left it
    behind, and another sender takes it up, settling it with 17, instead of waiting for this
    process to end."""
    _SENDING.add(claim)
    try:
        yield
    finally:
        _SENDING.discard(claim)


def sender_alive(claim: str, boot: str) -> bool:
    """Whether the sender that claimed an event is still sending (same boot, same process, and,
    in this process, inside `sending`)."""
    claimed_boot, _, rest = claim.partition(":")
    pid, _, started = rest.partition(":")[0].partition("@")
    if claimed_boot != boot or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return claim in _SENDING
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or _process_start(int(pid)) in (started, "")


def _process_start(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot ('' when the system does not say)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat[stat.rindex(")") + 1:].split()[19]  # field 22, counted after the command name
    except (OSError, ValueError, IndexError):
        return ""


def _create_v1(db: sqlite_utils.Database) -> None:
    db["items"].create(
        {"item": str, "title": str, "author": str, "isbn": str, "call_number": str},
        pk="item",
        not_null={"title", "author"},
        defaults={"isbn": "", "call_number": "", "author": ""},
    )
    db["slots"].create(
        {"slot": int, "item": str, "in_service": int, "updated_at": str},
        pk="slot",
        defaults={"in_service": 1},
        foreign_keys=[("item", "items", "item")],
    )
    db["slots"].create_index(["item"], unique=True)
    db["door_jobs"].create(
        {
            "id": str, "kind": str, "slot": int, "item": str, "member_id": str, "due": str,
            "state": str, "created_at": str, "opened_at": str, "finished_at": str, "note": str,
        },
        pk="id",
        not_null={"kind", "slot", "item", "state", "created_at"},
    )
    db["door_jobs"].create_index(["state"])
    db["loans"].create(
        {
            "id": int, "item": str, "member_id": str, "slot": int, "loaned_at": str, "due": str,
            "returned_at": str, "event_id": str, "origin": str,
        },
        pk="id",
        not_null={"item", "member_id", "loaned_at"},
        defaults={"origin": "kiosk"},
    )
    db["loans"].create_index(["member_id"])
    db["loans"].create_index(["item"])
    db["returns"].create(
        {"id": int, "item": str, "slot": int, "member_id": str, "returned_at": str, "event_id": str},
        pk="id",
        not_null={"item", "slot", "returned_at"},
    )
    db["outbox"].create(
        {
            "seq": int, "event_id": str, "kind": str, "item": str, "member_id": str,
            "payload": str, "created_at": str, "clock_synced": int, "boot_id": str,
            "state": str, "attempts": int, "next_attempt_at": str, "last_error": str,
        },
        pk="seq",
        not_null={"event_id", "kind", "item", "created_at", "state"},
        defaults={"state": "pending", "attempts": 0},
    )
    db["outbox"].create_index(["event_id"], unique=True)
    db["outbox"].create_index(["state", "item"])
    db["member_cache"].create(
        {"member_key": str, "status": str, "loans_here": int, "loans_network": int,
         "expires": str, "cached_at": str},
        pk="member_key",
    )
    db["alarms"].create(
        {"id": int, "kind": str, "slot": int, "at": str, "cleared_at": str},
        pk="id",
        not_null={"kind", "at"},
    )


def _online_ils_v2(db: sqlite_utils.Database) -> None:
    # A loan the ILS recorded online before the door opened; a locker kept for staff (a returned
    # book held for another member); when an outbox event reached the library.
    db["door_jobs"].add_column("ils_done", int, not_null_default=0)
    db["slots"].add_column("staff_note", str)
    db["outbox"].add_column("delivered_at", str)


def _outbox_claims_v3(db: sqlite_utils.Database) -> None:
    # Who is sending an event right now (boot id and process id): a live sender's event is left
    # alone; a dead one's is reconciled with the library before anything is sent again.
    db["outbox"].add_column("claimed_by", str)


def _offline_v4(db: sqlite_utils.Database) -> None:
    # Offline lending. Members are known by a keyed hash (HMAC with this device's secret) of
    # their number, never by the number itself: `member_key` on events and loans, a cache of
    # each member's standing at their last online login, and which card or barcode (also only
    # hashed) belongs to which member.
    db["outbox"].add_column("member_key", str)
    db["loans"].add_column("member_key", str)
    db["loans"].create_index(["member_key"])
    db["outbox"].create_index(["item", "seq"])
    # The worker walks the open events in order; delivered ones pile up until retention.
    db.execute(f"CREATE INDEX outbox_open ON outbox(seq) WHERE state IN {_OPEN}")
    db["member_cache"].drop()
    db["member_cache"].create(
        {"member_key": str, "verdict": str, "expires": str, "loans_here": int, "loans_network": int,
         "pin_check": str, "cached_at": str},
        pk="member_key", not_null={"cached_at"},
    )
    db["member_credentials"].create({"credential_key": str, "member_key": str, "seen_at": str},
                                    pk="credential_key", not_null={"member_key", "seen_at"})
    # How the last run ended, and whether the lockers' books must be checked at the library.
    db["kiosk_state"].create({"key": str, "value": str}, pk="key")


def _settling_v5(db: sqlite_utils.Database) -> None:
    # An unanswered request's settling time by the monotonic clock of the boot that sent it, so
    # that a wall clock set forward (a Pi synchronising after boot) cannot cut it short.
    db["outbox"].add_column("settle_boot", str)
    db["outbox"].add_column("settle_mono", float)


def _offline_guards_v6(db: sqlite_utils.Database) -> None:
    # Offline limits that hold whatever the wall clock does. A loan the library's count at the
    # member's last online login included (`library_counted`), so that offline the kiosk adds
    # the others to the cached count without comparing times; existing loans are judged once
    # by the times they carry. And wrong PINs offline, counted per member across card taps
    # (the last one's time by the monotonic clock of its boot), for the offline PIN lockout.
    db["loans"].add_column("library_counted", int, not_null_default=0)
    db.execute(
        "UPDATE loans SET library_counted = 1 WHERE loaned_at <= "
        "(SELECT cached_at FROM member_cache c WHERE c.member_key = loans.member_key) "
        f"AND (event_id IS NULL OR event_id NOT IN (SELECT event_id FROM outbox WHERE state NOT IN {_SETTLED}))")
    db["member_cache"].add_column("pin_failures", int, not_null_default=0)
    db["member_cache"].add_column("pin_failed_boot", str)
    db["member_cache"].add_column("pin_failed_mono", float)


# Each migration runs in the same transaction as the row that records it.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _create_v1, _online_ils_v2, _outbox_claims_v3, _offline_v4, _settling_v5, _offline_guards_v6)

# Outbox states: "pending" (to send to the library), "inflight" (being sent by `claimed_by`),
# "unknown" (sent, but no answer came: reconcile with item information before anything else),
# "delivered" (the library has it), "dead" (the library refused it: a dead letter for staff,
# with its reason in last_error; it holds back later events of the same item).
# "resolved" (staff settled a dead letter by hand; it no longer holds back its item).
WAITING_STATES = ("pending", "inflight", "unknown")  # on their way to the library
SETTLED_STATES = ("delivered", "resolved")
OUTBOX_STATES = WAITING_STATES + ("dead",) + SETTLED_STATES


def _sql_list(states: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{state}'" for state in states) + ")"


_UNSETTLED = _sql_list(WAITING_STATES)
_SETTLED = _sql_list(SETTLED_STATES)
_OPEN = _sql_list(WAITING_STATES + ("dead",))  # what the worker walks: not settled
UNKNOWN_SETTLE_S = 60.0  # how long an unanswered request is given to land before it is reconciled


def device_secret(db_path: Path) -> bytes:
    """This kiosk's key for hashing member numbers: a file beside the database, made once with
    mode 600. A damaged one is put aside and replaced (only the offline cache depends on it)."""
    path = db_path.with_name(db_path.name + ".key")
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
        if len(secret) >= 16:
            return secret
        raise ValueError("too short")
    except FileNotFoundError:
        pass
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        aside = path.with_name(path.name + ".damaged")
        log.error("the device key %s is damaged (%s): kept as %s, a new one made; the member cache "
                  "starts afresh", path, exc, aside.name)
        os.replace(path, aside)
    secret = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret.hex() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return secret


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection with the durability settings every connection must have."""
    conn = sqlite3.connect(str(path), timeout=5.0, check_same_thread=False)
    # Small pages for a new database: a loan touches a dozen pages (rows and their indexes), and
    # every page a commit touches is written again to the WAL. 1 KiB pages write a quarter of the
    # bytes that 4 KiB pages do, which an SD card's wear and a patron's wait both feel.
    conn.execute("PRAGMA page_size=1024")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA secure_delete=ON")  # scrubbed member numbers do not linger in free pages
    # The kiosk folds the log in while idle (Store.checkpoint); this is only the backstop.
    conn.execute("PRAGMA wal_autocheckpoint=8000")
    conn.execute("PRAGMA journal_size_limit=4194304")  # the log is cut back after a checkpoint
    return conn


class Store:
    """The kiosk's database. Methods are small and named for what they record or answer."""

    def __init__(self, path: Path | str, *, keep_member_numbers: bool = True, clock: Clock | None = None,
                 boot: str | None = None) -> None:
        self.path = Path(path)
        # Settling times run on this clock's monotonic time, within this boot (`boot`).
        self._clock = clock if clock is not None else SystemClock()
        self._boot = boot if boot is not None else boot_id()
        # False when the library system keeps the records (SIP2): once an event has reached it,
        # the member's number is scrubbed and only its keyed hash stays on this device.
        self.keep_member_numbers = keep_member_numbers
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._secret = device_secret(self.path)
            except OSError as exc:
                raise StoreError(f"cannot read or write the device key beside {self.path}: {exc}") from exc
        else:
            self._secret = os.urandom(32)
        self._conn = None  # type: ignore[assignment]
        try:
            self._conn = connect(path)
            check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"damaged ({check})")
            self.db = sqlite_utils.Database(self._conn)
            self.migrate()
        except sqlite3.DatabaseError as exc:
            if self._conn is not None:
                self._conn.close()
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc

    # -- lifecycle

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.path} schema=v{self.schema_version()}>"

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite_utils.Database]:
        """All or nothing; a failure inside becomes a StoreError after the rollback.

        `durable=False` commits without waiting for the disk (no fsync): the write survives a
        crash of the process, and reaches the disk with the next durable commit, but a power cut
        before that may undo it. Only for writes whose loss the next start settles anyway: what
        comes before a door opens (nothing has moved yet), marks that the outbox worker
        re-derives by asking the library (17), and the member cache."""
        conn = self._conn
        if conn.in_transaction:  # inside another one: a savepoint of it
            try:
                with self.db.atomic():
                    yield self.db
            except sqlite3.Error as exc:
                raise StoreError(f"database write failed: {exc}") from exc
            return
        try:
            if not durable:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                # The write lock from the start: another connection's commit (the outbox
                # worker's, the patrons') then makes this wait (busy_timeout), where a deferred
                # transaction that had read first would fail at once with "database is locked".
                conn.execute("BEGIN IMMEDIATE")
                try:
                    with self.db.atomic():
                        yield self.db
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(f"database write failed: {exc}") from exc

    def checkpoint(self, *, truncate: bool = False) -> None:
        """Fold the write-ahead log into the database file, without waiting for readers; with
        `truncate`, also empty the log file (old page images, scrubbed numbers among them)."""
        try:
            self._conn.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")
        except sqlite3.Error as exc:
            raise StoreError(f"checkpoint failed: {exc}") from exc

    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        version = self.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema v{version}, newer than this kiosk (v{len(MIGRATIONS)}): "
                "install the newer kiosk software or restore a matching backup"
            )
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.atomic():
                migration(self.db)
                self._conn.execute(f"PRAGMA user_version={number}")

    # -- catalog and lockers

    def add_items(self, items: Iterable[Item]) -> None:
        with self.transaction() as db:
            db["items"].upsert_all((vars(i) for i in items), pk="item")

    def ensure_slots(self, count: int, at: dt.datetime) -> None:
        """Make lockers 1..count exist (new ones empty and in service)."""
        with self.transaction() as db:
            for slot in range(1, count + 1):
                db.execute(
                    "INSERT OR IGNORE INTO slots (slot, item, in_service, updated_at) "
                    "VALUES (?, NULL, 1, ?)",
                    [slot, at.isoformat()],
                )

    def put_in_slot(self, slot: int, item: str | None, at: dt.datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE slots SET item = ?, updated_at = ? WHERE slot = ?",
                [item, at.isoformat(), slot],
            )

    def item(self, item: str) -> Item | None:
        row = self.db.execute(
            "SELECT item, title, author, isbn, call_number FROM items WHERE item = ?", [item]
        ).fetchone()
        return Item(*row) if row else None

    def slot_contents(self, slot: int) -> str | None:
        row = self.db.execute("SELECT item FROM slots WHERE slot = ?", [slot]).fetchone()
        if row is None:
            raise StoreError(f"there is no locker {slot}")
        return row[0]

    def slot_of(self, item: str) -> int | None:
        row = self.db.execute("SELECT slot FROM slots WHERE item = ?", [item]).fetchone()
        return row[0] if row else None

    def shelf(self) -> tuple[ShelfItem, ...]:
        """Books waiting in lockers that are in service and not busy with an open door job."""
        rows = self.db.execute(
            "SELECT s.slot, i.item, i.title, i.author FROM slots s JOIN items i ON i.item = s.item "
            "WHERE s.in_service = 1 AND s.staff_note IS NULL AND s.slot NOT IN "
            "(SELECT slot FROM door_jobs WHERE state IN ('pending', 'asking')) "
            # a book whose return (or taken-back loan) has not reached the library yet is not
            # lent again: a new checkout would overtake the queued checkin there (or, once the
            # library refused that checkin, go out while staff have yet to look into it)
            f"AND i.item NOT IN (SELECT item FROM outbox WHERE state NOT IN {_SETTLED}) ORDER BY s.slot"
        ).fetchall()
        return tuple(ShelfItem(*row) for row in rows)

    def empty_slot(self, exclude: Iterable[int] = ()) -> int | None:
        """The first empty locker in service; `exclude`: lockers the hardware cannot open now."""
        skip = sorted(set(exclude))
        row = self.db.execute(
            "SELECT slot FROM slots WHERE item IS NULL AND in_service = 1 AND staff_note IS NULL AND slot NOT IN "
            "(SELECT slot FROM door_jobs WHERE state IN ('pending', 'asking')) "
            f"AND slot NOT IN ({', '.join('?' * len(skip))}) ORDER BY slot LIMIT 1", skip
        ).fetchone()
        return row[0] if row else None

    # -- door jobs: written before the unlock, on disk for certain the moment the door opens,
    # finished when it has closed. Before the door opens nothing has moved: a power cut that
    # undoes those first writes leaves only a loan the library may have made for a book still
    # in its locker, which the locker audit after an unclean stop takes back.

    def note_asking(self, job: DoorJob, at: dt.datetime) -> None:
        """About to ask the library for this loan: the locker is reserved, and a crash from here
        on is settled at the next start."""
        with self.transaction(durable=False) as db:
            db["door_jobs"].insert(
                {
                    "id": job.id, "kind": job.kind, "slot": job.slot, "item": job.item,
                    "member_id": job.member_id, "state": "asking", "created_at": at.isoformat(),
                    "ils_done": 1,
                }
            )

    def asking_door_jobs(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM door_jobs WHERE state = 'asking' ORDER BY created_at"))

    def begin_door_job(self, job: DoorJob, at: dt.datetime) -> None:
        """The decision, written before the unlock (a job that was `asking` becomes pending)."""
        with self.transaction(durable=False) as db:
            cursor = db.execute(
                "UPDATE door_jobs SET state = 'pending', due = ?, ils_done = ?, created_at = ? "
                "WHERE id = ? AND state = 'asking'",
                [job.due.isoformat() if job.due else None, int(job.ils_done), at.isoformat(), job.id],
            )
            if cursor.rowcount == 1:
                return
            db["door_jobs"].insert(
                {
                    "id": job.id, "kind": job.kind, "slot": job.slot, "item": job.item,
                    "member_id": job.member_id, "due": job.due.isoformat() if job.due else None,
                    "state": "pending", "created_at": at.isoformat(), "ils_done": int(job.ils_done),
                }
            )

    def cancel_door_job(self, job_id: str, reason: str, at: dt.datetime) -> None:
        with self.transaction(durable=False) as db:  # lost, the next start cancels it again
            db.execute(
                "UPDATE door_jobs SET state = 'cancelled', finished_at = ?, note = ?, member_id = NULL "
                "WHERE id = ? AND state IN ('pending', 'asking')",
                [at.isoformat(), reason, job_id],
            )

    def note_door_opened(self, job_id: str, at: dt.datetime) -> None:
        """The door has opened: from now on the book may move. Durable, before anything else."""
        with self.transaction() as db:
            db.execute(
                "UPDATE door_jobs SET opened_at = ? WHERE id = ? AND state = 'pending' AND opened_at IS NULL",
                [at.isoformat(), job_id],
            )

    def pending_door_jobs(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM door_jobs WHERE state = 'pending' ORDER BY created_at"))

    def _finish_door_job(self, db: sqlite_utils.Database, job: DoorJob, at: dt.datetime) -> None:
        cursor = db.execute(
            "UPDATE door_jobs SET state = 'done', finished_at = ?, member_id = NULL WHERE id = ? AND state = 'pending'",
            [at.isoformat(), job.id],
        )
        if cursor.rowcount != 1:
            raise StoreError(f"door job {job.id} is not pending (already recorded or cancelled)")

    # -- loans and returns, each with its outbox event in the same transaction

    def record_loan(self, job: DoorJob, stamp: Stamp) -> str:
        """The door opened and closed: the loan happened. Returns the outbox event id."""
        if job.member_id is None or job.due is None:
            raise StoreError("a loan needs a member and a due date")
        event_id = str(uuid.uuid4())
        at = stamp.wall.isoformat()
        with self.transaction() as db:
            self._finish_door_job(db, job, stamp.wall)
            scrub = job.ils_done and not self.keep_member_numbers
            db["loans"].insert(
                {
                    "item": job.item, "member_id": "" if scrub else job.member_id, "slot": job.slot,
                    "loaned_at": at, "due": job.due.isoformat(), "event_id": event_id,
                    "member_key": self.key_of(job.member_id),
                }
            )
            db.execute(
                "UPDATE slots SET item = NULL, updated_at = ? WHERE slot = ? AND item = ?",
                [at, job.slot, job.item],
            )
            self._add_outbox(
                db, event_id, "checkout", job.item, job.member_id,
                {"transaction_date": at, "due": job.due.isoformat(), "slot": job.slot}, stamp,
                delivered=job.ils_done,
            )
        return event_id

    def record_return(self, job: DoorJob, stamp: Stamp, *, claim: str | None = None) -> str:
        """The returned book is behind a closed door. Returns the outbox event id.

        `claim`: the caller sends the checkin itself right away; the event is in flight for it.
        """
        event_id = str(uuid.uuid4())
        at = stamp.wall.isoformat()
        with self.transaction() as db:
            self._finish_door_job(db, job, stamp.wall)
            db["returns"].insert(
                {"item": job.item, "slot": job.slot,
                 "member_id": job.member_id if self.keep_member_numbers else None,
                 "returned_at": at, "event_id": event_id}
            )
            db.execute(
                "UPDATE loans SET returned_at = ? WHERE item = ? AND returned_at IS NULL", [at, job.item]
            )
            db.execute(
                "UPDATE slots SET item = ?, updated_at = ? WHERE slot = ?", [job.item, at, job.slot]
            )
            self._add_outbox(
                db, event_id, "checkin", job.item, None,
                {"transaction_date": at, "return_date": at, "slot": job.slot}, stamp, claim=claim,
            )
        return event_id

    def record_undo_checkout(self, job: DoorJob, stamp: Stamp, *, settle_s: float = 0.0) -> str:
        """A loan the library recorded (or may yet record) whose door never opened, not taken
        back there: queue the checkin that takes it back (the book never left its locker, and
        stays off the shelf until then). `settle_s`: not before then, for a checkout that got
        no answer and may still be on its way to the library."""
        event_id = str(uuid.uuid4())
        at = stamp.wall.isoformat()
        with self.transaction() as db:
            self._add_outbox(
                db, event_id, "checkin", job.item, job.member_id,
                {"transaction_date": at, "return_date": at, "slot": job.slot, "undo": True}, stamp,
            )
            if settle_s:  # as for any unanswered request: settled with 17 once it has had time
                db.execute("UPDATE outbox SET state = 'unknown', next_attempt_at = ?, settle_boot = ?, "
                           "settle_mono = ? WHERE event_id = ?",
                           [(stamp.wall + dt.timedelta(seconds=settle_s)).isoformat(), *self._settle(settle_s),
                            event_id])
        return event_id

    def _add_outbox(
        self, db: sqlite_utils.Database, event_id: str, kind: str, item: str,
        member_id: str | None, payload: dict, stamp: Stamp, *, delivered: bool = False,
        claim: str | None = None,
    ) -> None:
        state = "delivered" if delivered else "inflight" if claim else "pending"
        settle_boot, settle_mono = self._settle(UNKNOWN_SETTLE_S) if claim else (None, None)
        db["outbox"].insert(
            {
                "attempts": 1 if delivered or claim else 0,
                "event_id": event_id, "kind": kind, "item": item,
                "member_id": None if delivered and not self.keep_member_numbers else member_id,
                "member_key": self.key_of(member_id) if member_id else None,
                "payload": json.dumps(payload, ensure_ascii=False), "created_at": stamp.wall.isoformat(),
                "clock_synced": int(stamp.clock_synced), "boot_id": stamp.boot_id, "state": state,
                "delivered_at": stamp.wall.isoformat() if delivered else None,
                "claimed_by": claim,
                # claimed: not due again before the settling time, should its sender die mid-send
                "next_attempt_at": (stamp.wall + dt.timedelta(seconds=UNKNOWN_SETTLE_S)).isoformat() if claim else None,
                "settle_boot": settle_boot, "settle_mono": settle_mono,
            }
        )

    def _settle(self, seconds: float) -> tuple[str, float]:
        """(settle_boot, settle_mono) for a settling time of `seconds` from now."""
        return self._boot, self._clock.monotonic() + seconds

    def _settling(self, row: dict) -> bool:
        """Whether an event is still waiting out its settling time. Within the boot that set it,
        by the monotonic clock (the wall clock may have been set since); an event from an
        earlier boot has settled once this boot has run that long (the reboot came after it)."""
        if row["settle_mono"] is None:
            return False
        if row["settle_boot"] == self._boot:
            return self._clock.monotonic() < row["settle_mono"]
        return self._clock.monotonic() < UNKNOWN_SETTLE_S

    def mark_delivered(self, event_id: str, at: dt.datetime) -> None:
        """The library has this event. Where the library keeps the records, the member's number
        is scrubbed from the event and its loan now: only the keyed hash stays.

        Not durable: undone by a power cut, the event is back in flight under a dead sender,
        and the worker settles it with item information (17) without sending it again."""
        self.mark_delivered_many([event_id], at)

    def _scrub(self, db: sqlite_utils.Database, event_id: str) -> None:
        db.execute("UPDATE outbox SET member_id = NULL WHERE event_id = ?", [event_id])
        db.execute("UPDATE loans SET member_id = '' WHERE event_id = ?", [event_id])

    def mark_dead(self, event_id: str, reason: str, at: dt.datetime) -> None:
        """The library refused this event: a dead letter for staff, with the library's words.
        (Its attempt was counted when it was claimed for sending.)"""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'dead', last_error = ?, "
                f"next_attempt_at = NULL, settle_mono = NULL, claimed_by = NULL WHERE event_id = ? AND state IN {_UNSETTLED}",
                [f"{at.isoformat()} {reason}", event_id],
            )

    def release(self, event_id: str, reason: str, at: dt.datetime) -> None:
        """The sender could not reach the library: nothing was sent, the event waits again."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'pending', claimed_by = NULL, last_error = ?, next_attempt_at = NULL, "
                "settle_mono = NULL WHERE event_id = ? AND state = 'inflight'", [f"{at.isoformat()} {reason}", event_id],
            )

    # -- the outbox worker's side

    def next_events(self, now: dt.datetime, live: Callable[[str], bool], *, count: int,
                    longest_wait_s: float = 86400.0) -> list[dict]:
        """The next events to deliver, at most `count`: a run of the queue in the order the
        events happened, each due now and not in a live sender's hands, no two of one item.

        Events go in the order they happened, across items too, since a patron's return and
        next loan may depend on it at the library (its loan limits): the run stops at an event
        that cannot go yet (waiting out a back-off or its settling time, or in a live sender's
        hands) and before a second event of an item already in it. A dead letter holds back the
        later events of its own item only: staff settle it, the rest of the queue goes on.

        A wait longer than `longest_wait_s` from now can only come from a clock that has since
        jumped back (a Pi that booted with a wrong date, then synchronised): it is due now."""
        due_by, latest = now.isoformat(), (now + dt.timedelta(seconds=longest_wait_s)).isoformat()
        rows = self.db.query(f"SELECT * FROM outbox INDEXED BY outbox_open WHERE state IN {_OPEN} ORDER BY seq")
        events: list[dict] = []
        taken: set[str] = set()
        held: set[str] = set()
        for row in rows:
            item = row["item"]
            if item in taken:
                break
            if item in held:
                continue
            if row["state"] == "dead":  # staff's to settle; the other items go on meanwhile
                held.add(item)
                continue
            if row["settle_mono"] is not None:  # settling: the monotonic clock decides, not the wall
                waiting = self._settling(row)
            else:  # a back-off, by the wall clock
                waiting = row["next_attempt_at"] is not None and due_by < row["next_attempt_at"] <= latest
            busy = row["state"] == "inflight" and row["claimed_by"] and live(row["claimed_by"])
            if waiting or busy:
                break  # it goes first, later events after it: one patron's return, then their loan
            events.append(row)
            taken.add(item)
            if len(events) >= count:
                break
        return events

    def claim_many(self, seqs: list[int], claim: str, at: dt.datetime,
                   live: Callable[[str], bool]) -> dict[int, str]:
        """Take events for sending in one durable commit (the worker claims a batch); returns
        the state each had. An event another live sender claimed since it was chosen is left
        to that sender (two senders never send one event): it is not in the answer.

        A claimed event is not due again before the settling time: if its sender dies mid-send,
        the request may still be on its way to the library, and the next sender waits for it
        to land before asking 17 (as for any unanswered request)."""
        marks = ",".join("?" * len(seqs))
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: nobody claims in between
            try:
                rows = conn.execute(f"SELECT seq, state, claimed_by FROM outbox WHERE seq IN ({marks}) "
                                    f"AND state IN {_UNSETTLED}", seqs).fetchall()
                before = {seq: state for seq, state, by in rows
                          if not (state == "inflight" and by and by != claim and live(by))}
                if before:
                    conn.execute(
                        "UPDATE outbox SET state = 'inflight', claimed_by = ?, attempts = attempts + 1, "
                        f"next_attempt_at = ?, settle_boot = ?, settle_mono = ? "
                        f"WHERE seq IN ({','.join('?' * len(before))})",
                        [claim, (at + dt.timedelta(seconds=UNKNOWN_SETTLE_S)).isoformat(),
                         *self._settle(UNKNOWN_SETTLE_S), *before])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"database write failed: {exc}") from exc
        return before

    def unclaim(self, before: dict[int, str]) -> None:
        """Claimed events that were not sent after all go back to the state they had."""
        with self.transaction(durable=False) as db:  # lost, they are in flight under a dead sender
            for seq, state in before.items():
                db.execute("UPDATE outbox SET state = ?, claimed_by = NULL, attempts = attempts - 1, "
                           "next_attempt_at = NULL, settle_mono = NULL WHERE seq = ? AND state = 'inflight'",
                           [state, seq])

    def mark_delivered_many(self, event_ids: list[str], at: dt.datetime) -> None:
        """Several events the library has, in one commit (not durable: see mark_delivered)."""
        if not event_ids:
            return
        with self.transaction(durable=False) as db:
            for event_id in event_ids:
                cursor = db.execute(
                    "UPDATE outbox SET state = 'delivered', delivered_at = ?, settle_mono = NULL, "
                    f"claimed_by = NULL WHERE event_id = ? AND state IN {_UNSETTLED}", [at.isoformat(), event_id])
                if cursor.rowcount and not self.keep_member_numbers:
                    self._scrub(db, event_id)

    def waiting_events(self, item: str) -> int:
        """How many events of this item are on their way to the library, or dead letters."""
        return self.db.execute(f"SELECT COUNT(*) FROM outbox WHERE item = ? AND state NOT IN {_SETTLED}",
                               [item]).fetchone()[0]

    def mark_unknown_event(self, event_id: str, reason: str, at: dt.datetime, *,
                           settle_s: float = UNKNOWN_SETTLE_S) -> None:
        seq = self.db.execute("SELECT seq FROM outbox WHERE event_id = ?", [event_id]).fetchone()
        if seq is not None:
            self.mark_unknown(seq[0], reason, at, settle_s=settle_s)

    def mark_unknown(self, seq: int, reason: str, at: dt.datetime, *, settle_s: float = UNKNOWN_SETTLE_S) -> None:
        """Sent, but no answer came. The request may still be on its way (a slow link, a busy
        server): it is left to settle before item information is asked, or a checkout that
        lands late would meet its own resend there, and become a renewal."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'unknown', claimed_by = NULL, last_error = ?, next_attempt_at = ?, "
                "settle_boot = ?, settle_mono = ? WHERE seq = ?",
                [f"{at.isoformat()} {reason}", (at + dt.timedelta(seconds=settle_s)).isoformat(),
                 *(self._settle(settle_s) if settle_s else (None, None)), seq],
            )

    def retry_later(self, seq: int, state: str, when: dt.datetime, reason: str, at: dt.datetime) -> None:
        """Nothing reached the library: back to `state` (pending or unknown), not before `when`."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = ?, claimed_by = NULL, next_attempt_at = ?, last_error = ?, "
                "settle_mono = NULL WHERE seq = ?", [state, when.isoformat(), f"{at.isoformat()} {reason}", seq],
            )

    def retry_now(self) -> None:
        """Events waiting out a back-off are due now (the library answers again); an unanswered
        one still waits out its settling time."""
        with self.transaction() as db:
            db.execute("UPDATE outbox SET next_attempt_at = NULL WHERE state = 'pending' "
                       "AND next_attempt_at IS NOT NULL")

    def queue_status(self) -> dict:
        """Counts by state, the oldest undelivered event's time, and how many undelivered events
        were stamped by an unsynchronised clock (their dates are not facts): for staff."""
        counts = dict(self.db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        oldest, unsynced = self.db.execute(
            f"SELECT MIN(created_at), COALESCE(SUM(clock_synced = 0), 0) FROM outbox WHERE state IN {_UNSETTLED}"
        ).fetchone()
        return {"counts": counts, "oldest_undelivered": oldest, "unsynced_clock": unsynced}

    def staff_note(self, slot: int) -> str | None:
        row = self.db.execute("SELECT staff_note FROM slots WHERE slot = ?", [slot]).fetchone()
        return row[0] if row else None

    def release_from_staff(self, slot: int, at: dt.datetime) -> None:
        """Staff have taken the book out of a locker kept for them: it is empty and in use again."""
        with self.transaction() as db:
            db.execute("UPDATE slots SET item = NULL, staff_note = NULL, updated_at = ? WHERE slot = ?",
                       [at.isoformat(), slot])

    def hold_for_staff(self, slot: int, note: str, at: dt.datetime) -> None:
        """Keep this locker's book off the shelf until staff collect it (held for another member,
        in transit); the locker takes no returns meanwhile."""
        with self.transaction() as db:
            db.execute("UPDATE slots SET staff_note = ?, updated_at = ? WHERE slot = ?",
                       [note, at.isoformat(), slot])

    def staff_slots(self) -> list[dict]:
        return list(self.db.query(
            "SELECT slot, item, staff_note FROM slots WHERE staff_note IS NOT NULL ORDER BY slot"))

    def renew_loan(self, item: str, due: dt.date) -> None:
        with self.transaction() as db:
            db.execute("UPDATE loans SET due = ? WHERE item = ? AND returned_at IS NULL",
                       [due.isoformat(), item])

    def add_loan(self, item: str, member_id: str, loaned_at: dt.datetime, due: dt.date, *, origin: str) -> None:
        """A loan the kiosk did not make (seed data, or learnt from the library)."""
        with self.transaction() as db:
            db["loans"].insert(
                {"item": item, "member_id": member_id, "loaned_at": loaned_at.isoformat(),
                 "due": due.isoformat(), "origin": origin}
            )

    def open_loan(self, item: str) -> dict | None:
        rows = list(self.db.query(
            "SELECT * FROM loans WHERE item = ? AND returned_at IS NULL ORDER BY id DESC LIMIT 1", [item]
        ))
        return rows[0] if rows else None

    def loans_of(self, member_id: str, today: dt.date) -> tuple[LoanLine, ...]:
        rows = self.db.execute(
            "SELECT l.item, COALESCE(i.title, l.item), l.due FROM loans l "
            "LEFT JOIN items i ON i.item = l.item "
            "WHERE l.member_id = ? AND l.returned_at IS NULL ORDER BY l.due, l.id",
            [member_id],
        ).fetchall()
        lines = []
        for item, title, due in rows:
            due_date = dt.date.fromisoformat(due) if due else None
            lines.append(LoanLine(item, title, due_date, overdue=bool(due_date and due_date < today)))
        return tuple(lines)

    def count_open_loans(self, member_id: str) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM loans WHERE member_id = ? AND returned_at IS NULL", [member_id]
        ).fetchone()[0]

    def outbox(self, state: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM outbox", []
        if state is not None:
            sql, args = sql + " WHERE state = ?", [state]
        return list(self.db.query(sql + " ORDER BY seq", args))

    # -- members, known by a keyed hash; the offline cache

    def member_key(self, identifier: str) -> str:
        """The keyed hash (HMAC-SHA256 with this device's secret) of a member number or card."""
        return hmac.new(self._secret, identifier.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def key_of(self, identifier: str | None) -> str | None:
        """The member key of whoever `identifier` (a member number, or a card seen online) is."""
        if identifier is None:
            return None
        own = self.member_key(identifier)
        row = self.db.execute("SELECT member_key FROM member_credentials WHERE credential_key = ?",
                              [own]).fetchone()
        return row[0] if row else own

    def cache_member(self, credential: str, member_id: str, *, verdict: str, expires: dt.date | None,
                     loans_here: int, loans_network: int, pin: str | None, at: dt.datetime) -> None:
        """Remember a member's standing at an online login, for deciding while offline: the
        member's key, the library's verdict, the expiry, the loan counts, and a keyed check of
        the PIN (so a found card cannot borrow offline without it). Nothing readable.

        `pin`: the PIN the library has just accepted; it also ends an offline PIN lockout. A card
        linked to the member for the first time brings along what was recorded under its own
        key while nobody knew whose it was (loans, and events not yet delivered), so offline
        limits count them. The loans the library's counts include (delivered ones) are marked
        as such: offline, only the others are added to the counts."""
        key = self.member_key(member_id)
        when = at.isoformat()
        with self.transaction(durable=False) as db:  # a cache: the next login writes it again
            old = db.execute("SELECT pin_check FROM member_cache WHERE member_key = ?", [key]).fetchone()
            pin_check = self._pin_check(key, pin) if pin else (old[0] if old else None)
            row = {"member_key": key, "verdict": verdict, "expires": expires.isoformat() if expires else None,
                   "loans_here": loans_here, "loans_network": loans_network, "pin_check": pin_check,
                   "cached_at": when}
            if pin:
                row.update(pin_failures=0, pin_failed_boot=None, pin_failed_mono=None)
            db["member_cache"].upsert(row, pk="member_key")
            for alias in {credential, member_id}:
                alias_key = self.member_key(alias)
                linked = db.execute("SELECT member_key FROM member_credentials WHERE credential_key = ?",
                                    [alias_key]).fetchone()
                if alias_key != key and (linked is None or linked[0] != key):
                    db.execute("UPDATE loans SET member_key = ? WHERE member_key = ?", [key, alias_key])
                    db.execute(f"UPDATE outbox SET member_key = ? WHERE member_key = ? AND state NOT IN {_SETTLED}",
                               [key, alias_key])
                db["member_credentials"].upsert(
                    {"credential_key": alias_key, "member_key": key, "seen_at": when}, pk="credential_key")
            db.execute(
                "UPDATE loans SET library_counted = 1 WHERE member_key = ? AND library_counted = 0 "
                "AND returned_at IS NULL AND (event_id IS NULL OR event_id NOT IN "
                f"(SELECT event_id FROM outbox WHERE state NOT IN {_SETTLED}))", [key])

    def _pin_check(self, key: str, pin: str) -> str:
        return self.member_key(f"pin\x00{key}\x00{pin}")

    def cached_member(self, credential: str) -> dict | None:
        """The cached standing of the member this card or number belongs to, with `member_key`."""
        rows = list(self.db.query(
            "SELECT c.* FROM member_credentials k JOIN member_cache c ON c.member_key = k.member_key "
            "WHERE k.credential_key = ?", [self.member_key(credential)]))
        return rows[0] if rows else None

    def pin_matches(self, member_key: str, pin: str, pin_check: str | None) -> bool:
        return pin_check is not None and hmac.compare_digest(pin_check, self._pin_check(member_key, pin))

    def uncounted_loans(self, member_key: str) -> int:
        """Books this kiosk lent to the member, not returned here, that the library's counts at
        the member's last online login did not include: lent since, or not yet delivered then.
        (No times are compared: a wall clock set back cannot hide a loan.)"""
        return self.db.execute(
            "SELECT COUNT(*) FROM loans WHERE member_key = ? AND library_counted = 0 AND returned_at IS NULL",
            [member_key]).fetchone()[0]

    def note_wrong_pin(self, member_key: str) -> int:
        """A wrong PIN checked offline against the cache: the member's count of wrong PINs in a
        row (kept across card taps and restarts), with when, by this boot's monotonic clock."""
        with self.transaction() as db:
            db.execute("UPDATE member_cache SET pin_failures = pin_failures + 1, pin_failed_boot = ?, "
                       "pin_failed_mono = ? WHERE member_key = ?",
                       [self._boot, self._clock.monotonic(), member_key])
            row = db.execute("SELECT pin_failures FROM member_cache WHERE member_key = ?", [member_key]).fetchone()
        return row[0] if row else 0

    def clear_wrong_pins(self, member_key: str) -> None:
        """The right PIN: the count of wrong ones starts again."""
        with self.transaction() as db:
            db.execute("UPDATE member_cache SET pin_failures = 0, pin_failed_boot = NULL, pin_failed_mono = NULL "
                       "WHERE member_key = ? AND pin_failures > 0", [member_key])

    def since_wrong_pin_s(self, row: dict) -> float:
        """Seconds since the member's last wrong PIN (from cached_member), by the monotonic
        clock. After a reboot, as long as this boot has run (it may have come just after)."""
        if row.get("pin_failed_mono") is None:
            return float("inf")
        if row.get("pin_failed_boot") == self._boot:
            return self._clock.monotonic() - row["pin_failed_mono"]
        return self._clock.monotonic()

    def undelivered_loans(self, member_key: str) -> int:
        """Loans of this member the library has not been told of yet (lent offline)."""
        return self.db.execute(
            f"SELECT COUNT(*) FROM outbox WHERE member_key = ? AND kind = 'checkout' AND state NOT IN {_SETTLED}",
            [member_key]).fetchone()[0]

    def purge(self, now: dt.datetime, *, delivered_days: int, cache_days: int) -> dict[str, int]:
        """Enforce retention: delivered events, finished door jobs, old returns and (where the
        library keeps the records) returned loans after `delivered_days`; cached members not
        seen online for `cache_days`. Returns what was deleted, by table."""
        done = (now - dt.timedelta(days=delivered_days)).isoformat()
        stale = (now - dt.timedelta(days=cache_days)).isoformat()
        deleted: dict[str, int] = {}
        with self.transaction() as db:
            statements = [
                ("outbox", f"DELETE FROM outbox WHERE state IN {_SETTLED} AND COALESCE(delivered_at, created_at) < ?",
                 done),
                ("door_jobs", "DELETE FROM door_jobs WHERE state IN ('done', 'cancelled') AND finished_at < ?", done),
                ("returns", "DELETE FROM returns WHERE returned_at < ? AND event_id NOT IN "
                            f"(SELECT event_id FROM outbox WHERE state NOT IN {_SETTLED})", done),
                ("member_cache", "DELETE FROM member_cache WHERE cached_at < ?", stale),
                ("member_credentials", "DELETE FROM member_credentials WHERE seen_at < ? OR member_key NOT IN "
                                       "(SELECT member_key FROM member_cache)", stale),
            ]
            if not self.keep_member_numbers:
                statements.append(("loans", "DELETE FROM loans WHERE returned_at IS NOT NULL AND returned_at < ?",
                                   done))
            for table, sql, cutoff in statements:
                deleted[table] = db.execute(sql, [cutoff]).rowcount
        return deleted

    # -- runs, and the locker audit after an unclean stop

    def _state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kiosk_state WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def begin_run(self, boot: str, *, audit: bool) -> bool:
        """The kiosk starts. Returns whether the last run stopped cleanly (a first run counts
        as clean). After an unclean stop in an earlier boot (a power cut: a crash of the process
        alone loses no write), with `audit`, the locker audit becomes due: the power cut may have
        undone the note of a loan the library made for a book that never left its locker."""
        with self.transaction() as db:
            clean = self._state("stopped_cleanly") in (None, "1")
            same_boot = self._state("boot_id") == boot
            db.execute("INSERT OR REPLACE INTO kiosk_state VALUES ('stopped_cleanly', '0')")
            db.execute("INSERT OR REPLACE INTO kiosk_state VALUES ('boot_id', ?)", [boot])
            if audit and not clean and not same_boot:
                db.execute("INSERT OR REPLACE INTO kiosk_state VALUES ('locker_audit', 'due')")
        return clean

    def end_run(self) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO kiosk_state VALUES ('stopped_cleanly', '1')")

    def locker_audit_due(self) -> bool:
        """Whether the locker audit should run now: it is pending, and this boot has run for
        the settling time (a checkout sent just before the power cut may still be landing)."""
        return self.locker_audit_pending() and self._clock.monotonic() >= UNKNOWN_SETTLE_S

    def locker_audit_pending(self) -> bool:
        return self._state("locker_audit") == "due"

    def locker_audit_done(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM kiosk_state WHERE key = 'locker_audit'")

    def in_locker_for_lending(self, slot: int, item: str) -> bool:
        """Whether this book is (still) one of locker_books(): nothing has started on it."""
        return (slot, item) in self.locker_books(slot)

    def locker_books(self, slot: int | None = None) -> list[tuple[int, str]]:
        """(slot, item) of the books the kiosk holds for lending: in a locker, not kept for staff,
        no door job open on them, no event of theirs still on its way to the library."""
        return [tuple(row) for row in self.db.execute(
            "SELECT slot, item FROM slots WHERE item IS NOT NULL AND staff_note IS NULL "
            "AND slot NOT IN (SELECT slot FROM door_jobs WHERE state IN ('pending', 'asking')) "
            f"AND item NOT IN (SELECT item FROM outbox WHERE state NOT IN {_SETTLED}) "
            "AND (? IS NULL OR slot = ?) ORDER BY slot", [slot, slot])]

    # -- the queue, for technicians and staff

    def queue_event(self, seq: int) -> dict | None:
        rows = list(self.db.query("SELECT * FROM outbox WHERE seq = ?", [seq]))
        return rows[0] if rows else None

    def retry_event(self, seq: int, at: dt.datetime) -> bool:
        """Staff fixed the cause of a dead letter at the library: send it again (after asking
        item information first, as always). False when the event is not a dead letter."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = NULL, settle_mono = NULL, "
                "last_error = last_error || ' | retried by staff ' || ? WHERE seq = ? AND state = 'dead'",
                [at.isoformat(), seq]).rowcount == 1

    def resolve_event(self, seq: int, note: str, at: dt.datetime) -> bool:
        """Staff settled a dead letter by hand at the library: it no longer holds back its item,
        and the member's number goes as for a delivered event."""
        with self.transaction() as db:
            row = db.execute("SELECT event_id FROM outbox WHERE seq = ? AND state = 'dead'", [seq]).fetchone()
            if row is None:
                return False
            db.execute("UPDATE outbox SET state = 'resolved', delivered_at = ?, "
                       "last_error = last_error || ' | resolved by staff: ' || ? WHERE seq = ?",
                       [at.isoformat(), note or "-", seq])
            kind, item = db.execute("SELECT kind, item FROM outbox WHERE seq = ?", [seq]).fetchone()
            if kind == "checkin" and db.execute("SELECT 1 FROM slots WHERE item = ?", [item]).fetchone():
                # Its book is in a locker, and the library may still show it on loan (staff
                # settled it by hand, or meant to): asked (17) before it is lent again.
                db.execute("INSERT OR REPLACE INTO kiosk_state VALUES ('locker_audit', 'due')")
            if not self.keep_member_numbers:
                self._scrub(db, row[0])
            return True

    # -- alarms for staff

    def record_alarm(self, kind: str, slot: int | None, at: dt.datetime) -> None:
        with self.transaction() as db:
            db["alarms"].insert({"kind": kind, "slot": slot, "at": at.isoformat()})

    def alarms(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM alarms ORDER BY id"))

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
