"""The demo ILS's SQLite database: schema, the demo seed, queries and the loans report.

The seed is the kiosk's own demo data (`kiosk.demo`): the same members, cards, PINs, books and
loans (`seed_loans`), so that the kiosk's demo store and this library system agree. On top of it:

* one hold: member 9 (장도윤, 11110100000009) has reserved EM0000000026, a book on loan to
  member 3 (박지훈). Returning EM0000000026 answers alert=Y with CV "01" (a hold for this
  library): the kiosk keeps that locker for staff, and the book waits on the hold shelf
  (circulation status 08) until member 9 borrows it.
* the SIP2 account: user "kiosk", password "kiosk-demo", institution 111101.
* the circulation policy of library 111101: 14-day loans, 5 loans here, 30 across all 책이음
  libraries, 2 renewals, any unpaid fine (over 0 won) stops lending.

Times are stored as ISO 8601 text with their UTC offset; dates as YYYY-MM-DD.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiosk import demo
from kiosk.clock import Clock

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4B494C53  # "KILS": tells this database from any other SQLite file

SIP_USER = "kiosk"
SIP_PASSWORD = "kiosk-demo"  # a demo account on loopback, not a secret
SIP_LOCATION = "KIOSK-1"
LOCATION = "종합자료실"  # every demo book's permanent location (AQ)
HELD_ITEM = demo.accession(26)  # reserved by member 9 while on loan to member 3
HOLD_PATRON = demo.MEMBERS[8].member_id

ITEM_STATUSES = ("available", "on_hold_shelf", "in_transit", "lost", "missing")
HOLD_STATES = ("pending", "waiting", "in_transit")  # pending: not yet caught at a checkin

_SCHEMA = f"""
CREATE TABLE patrons (
    member_id TEXT PRIMARY KEY,          -- 책이음 회원번호: the patron barcode, and AA in replies
    card_uid TEXT UNIQUE,                -- the card UID in hex, also accepted in AA
    name TEXT NOT NULL,
    pin_hash TEXT NOT NULL,
    blocked INTEGER NOT NULL DEFAULT 0,
    card_lost INTEGER NOT NULL DEFAULT 0,
    fines_won INTEGER NOT NULL DEFAULT 0,
    expires TEXT,                        -- last day of membership
    suspended_until TEXT,                -- 대출정지: no loans up to and including this day
    loans_elsewhere INTEGER NOT NULL DEFAULT 0,  -- loans at other 책이음 libraries
    library TEXT NOT NULL
);
CREATE TABLE items (
    item TEXT PRIMARY KEY,               -- 등록번호 (accession number)
    title TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'available' CHECK (status IN {ITEM_STATUSES}),
    location TEXT NOT NULL DEFAULT '',
    library TEXT NOT NULL
);
CREATE TABLE loans (
    item TEXT PRIMARY KEY REFERENCES items(item),
    patron TEXT NOT NULL REFERENCES patrons(member_id),
    checked_out_at TEXT NOT NULL,
    due TEXT NOT NULL,
    renewals INTEGER NOT NULL DEFAULT 0,
    library TEXT NOT NULL
);
CREATE INDEX loans_by_patron ON loans(patron);
CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    item TEXT NOT NULL REFERENCES items(item),
    patron TEXT NOT NULL REFERENCES patrons(member_id),
    placed_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN {HOLD_STATES}),
    pickup_library TEXT NOT NULL
);
CREATE INDEX holds_by_item ON holds(item);
CREATE INDEX holds_by_patron ON holds(patron);
CREATE TABLE policies (
    library TEXT PRIMARY KEY,
    loan_days INTEGER NOT NULL,
    library_limit INTEGER NOT NULL,
    network_limit INTEGER NOT NULL,
    max_renewals INTEGER NOT NULL,
    fine_limit_won INTEGER NOT NULL,
    hold_limit INTEGER NOT NULL
);
CREATE TABLE accounts (
    user TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    institution TEXT NOT NULL,
    location TEXT NOT NULL DEFAULT ''
);
CREATE TABLE circulation_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('checkout', 'checkin', 'renew')),
    item TEXT NOT NULL,
    patron TEXT NOT NULL DEFAULT '',
    ok INTEGER NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    no_block INTEGER NOT NULL DEFAULT 0,
    transaction_date TEXT,
    return_date TEXT,
    renewal INTEGER NOT NULL DEFAULT 0
);
"""


class DemoIlsError(Exception):
    """The demo ILS's database cannot be used; the message names the file and what to do."""


# -- records


@dataclass(frozen=True)
class Patron:
    member_id: str
    card_uid: str
    name: str
    pin_hash: str
    blocked: bool
    card_lost: bool
    fines_won: int
    expires: dt.date | None
    suspended_until: dt.date | None
    loans_elsewhere: int
    library: str


@dataclass(frozen=True)
class Item:
    item: str
    title: str
    author: str
    status: str
    location: str
    library: str


@dataclass(frozen=True)
class Loan:
    item: str
    patron: str
    checked_out_at: dt.datetime
    due: dt.datetime
    renewals: int
    library: str


@dataclass(frozen=True)
class Hold:
    id: int
    item: str
    patron: str
    placed_at: dt.datetime
    state: str
    pickup_library: str


@dataclass(frozen=True)
class Policy:
    library: str
    loan_days: int = 14
    library_limit: int = 5
    network_limit: int = 30
    max_renewals: int = 2
    fine_limit_won: int = 0
    hold_limit: int = 5


@dataclass(frozen=True)
class Account:
    user: str
    institution: str
    location: str


# -- connections and transactions


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on.

    One per thread: the server opens one for each client connection.
    """
    try:
        conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # a demo: survive a crash, not a power cut
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        raise DemoIlsError(f"{path}: cannot open the demo ILS database ({exc}); "
                           f"give a new file name to start an empty one") from None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """One request, one transaction. Writers take the write lock up front (BEGIN IMMEDIATE), so
    two connections never deadlock upgrading a read to a write."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def ensure_schema(conn: sqlite3.Connection, path: str | Path = "the database") -> None:
    """Create the tables in an empty database; refuse any other SQLite database."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DemoIlsError(f"{path}: this demo ILS database is newer (schema {version}) than this "
                               f"program (schema {SCHEMA_VERSION}); upgrade, or use a new file")
        return
    tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if tables:
        raise DemoIlsError(f"{path}: this is not a demo ILS database (it holds other tables); "
                           f"give a new file name")
    with transaction(conn):
        # Statement by statement: executescript() would commit on its own, half-way.
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _open_existing(path: str | Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise DemoIlsError(f"{path}: no such database; start the demo ILS with `kiosk ils serve --db {path}`")
    conn = connect(path)
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DemoIlsError(f"{path}: not a demo ILS database ({exc})") from None
    if app_id != APPLICATION_ID:
        conn.close()
        raise DemoIlsError(f"{path}: not a demo ILS database")
    return conn


# -- secrets (PINs, the SIP2 account password)

_ITERATIONS = 1000  # a demo: enough to keep PINs out of plain sight, fast enough per request


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, _ITERATIONS)
    return f"pbkdf2_sha256${_ITERATIONS}${salt.hex()}${digest.hex()}"


def secret_matches(stored: str, given: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        computed = hashlib.pbkdf2_hmac("sha256", given.encode(), bytes.fromhex(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed.hex(), digest)


# -- seed


def seed_demo(db_path: str | Path, clock: Clock) -> bool:
    """Create the schema, and fill an empty database with the demo library. False if it had data.

    Dates are relative to the clock's today, as in the kiosk's own demo seed.
    """
    conn = connect(db_path)
    try:
        ensure_schema(conn, db_path)
        with transaction(conn):
            if conn.execute("SELECT (SELECT count(*) FROM patrons) + (SELECT count(*) FROM items)").fetchone()[0]:
                return False
            _fill(conn, clock)
        return True
    finally:
        conn.close()


def _fill(conn: sqlite3.Connection, clock: Clock) -> None:
    now = clock.now()
    today = now.date()
    library = demo.LIBRARY_CODE
    conn.execute("INSERT INTO policies VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (library, 14, 5, 30, 2, 0, 5))
    conn.execute("INSERT INTO accounts VALUES (?, ?, ?, ?)",
                 (SIP_USER, hash_secret(SIP_PASSWORD), library, SIP_LOCATION))
    for m in demo.MEMBERS:
        suspended = today + dt.timedelta(days=m.suspended_days) if m.suspended_days else None
        conn.execute(
            "INSERT INTO patrons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (m.member_id, m.card_uid.upper(), m.name, hash_secret(m.pin), int(m.blocked), int(m.card_lost),
             m.fines_won, (today + dt.timedelta(days=m.expires_in_days)).isoformat(),
             suspended.isoformat() if suspended else None, m.loans_elsewhere, library))
    conn.executemany("INSERT INTO items (item, title, author, location, library) VALUES (?, ?, ?, ?, ?)",
                     [(item, title, author, LOCATION, library) for item, title, author in demo.items()])
    for item, member_id, loaned_on, due in demo.seed_loans(today):
        # 11:00 on the day, as the kiosk's own seed has it, so the two agree to the minute.
        loaned_at = dt.datetime.combine(loaned_on, dt.time(11, 0), tzinfo=now.tzinfo)
        add_loan(conn, item, member_id, loaned_at, end_of_day(due, now.tzinfo), library)
    placed = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(15, 30), tzinfo=now.tzinfo)
    add_hold(conn, HELD_ITEM, HOLD_PATRON, placed, library)


def end_of_day(day: dt.date, tz: dt.tzinfo | None) -> dt.datetime:
    """Loans fall due at 23:59:59 of their last day."""
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=tz)


# -- queries


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def find_patron(conn: sqlite3.Connection, identifier: str) -> Patron | None:
    """The patron whose member number (책이음 번호) or card UID this is."""
    identifier = identifier.strip()
    if not identifier:
        return None
    row = conn.execute("SELECT * FROM patrons WHERE member_id = ? OR card_uid = ? LIMIT 1",
                       (identifier, identifier.upper())).fetchone()
    if row is None:
        return None
    return Patron(row["member_id"], row["card_uid"] or "", row["name"], row["pin_hash"], bool(row["blocked"]),
                  bool(row["card_lost"]), row["fines_won"], _date(row["expires"]), _date(row["suspended_until"]),
                  row["loans_elsewhere"], row["library"])


def find_item(conn: sqlite3.Connection, item: str) -> Item | None:
    row = conn.execute("SELECT * FROM items WHERE item = ?", (item.strip(),)).fetchone()
    return Item(*row) if row else None


def item_standing(conn: sqlite3.Connection | sqlite3.Cursor,
                  item: str) -> tuple[Item, dt.datetime | None, int, str | None] | None:
    """For a 17: the item, its loan's due date (None when not on loan), the length of its hold
    queue and, when the item is in transit, the pickup library of its first hold in transit (else
    None); None for an unknown item.

    One statement, so one consistent snapshot without an explicit transaction (a 17 is the
    kiosk's most frequent request and writes nothing). `conn` may be a cursor of the connection
    (one without a row factory is cheapest: the row is read by position).
    """
    row = conn.execute(_ITEM_STANDING, (item.strip(),)).fetchone()
    if row is None:
        return None
    due = dt.datetime.fromisoformat(row[6]) if row[6] is not None else None
    return _item(row), due, row[7], row[8]


# The in-transit lookup sorts: CASE runs it only for an item in transit, the one case it answers.
_ITEM_STANDING = (
    "SELECT i.item, i.title, i.author, i.status, i.location, i.library, l.due,"
    " (SELECT count(*) FROM holds h WHERE h.item = i.item),"
    " CASE WHEN i.status = 'in_transit' THEN"
    "  (SELECT h.pickup_library FROM holds h WHERE h.item = i.item AND h.state = 'in_transit'"
    "   ORDER BY h.placed_at, h.id LIMIT 1) END"
    " FROM items i LEFT JOIN loans l ON l.item = i.item WHERE i.item = ?")
_ITEM_FIELDS = tuple(field.name for field in dataclasses.fields(Item))


def _item(row: sqlite3.Row | tuple) -> Item:
    """Item(*row[:6]) without the frozen dataclass __init__ (a 17 reads one per request)."""
    record = object.__new__(Item)
    record.__dict__.update(zip(_ITEM_FIELDS, row))
    return record


def _loan(row: sqlite3.Row) -> Loan:
    return Loan(row["item"], row["patron"], dt.datetime.fromisoformat(row["checked_out_at"]),
                dt.datetime.fromisoformat(row["due"]), row["renewals"], row["library"])


def loan_of(conn: sqlite3.Connection, item: str) -> Loan | None:
    row = conn.execute("SELECT * FROM loans WHERE item = ?", (item,)).fetchone()
    return _loan(row) if row else None


def loans_of(conn: sqlite3.Connection, member_id: str) -> list[Loan]:
    rows = conn.execute("SELECT * FROM loans WHERE patron = ? ORDER BY checked_out_at, item", (member_id,))
    return [_loan(row) for row in rows]


def _hold(row: sqlite3.Row) -> Hold:
    return Hold(row["id"], row["item"], row["patron"], dt.datetime.fromisoformat(row["placed_at"]),
                row["state"], row["pickup_library"])


def holds_on(conn: sqlite3.Connection, item: str) -> list[Hold]:
    """The item's hold queue, first come first served."""
    rows = conn.execute("SELECT * FROM holds WHERE item = ? ORDER BY placed_at, id", (item,))
    return [_hold(row) for row in rows]


def holds_of(conn: sqlite3.Connection, member_id: str) -> list[Hold]:
    rows = conn.execute("SELECT * FROM holds WHERE patron = ? ORDER BY placed_at, id", (member_id,))
    return [_hold(row) for row in rows]


def policy(conn: sqlite3.Connection, library: str) -> Policy:
    """The library's circulation policy (the defaults when it has none)."""
    row = conn.execute("SELECT * FROM policies WHERE library = ?", (library,)).fetchone()
    return Policy(*row) if row else Policy(library)


def check_account(conn: sqlite3.Connection, user: str, password: str) -> Account | None:
    """The SIP2 account for this login, or None when the user or password is wrong."""
    row = conn.execute("SELECT * FROM accounts WHERE user = ?", (user,)).fetchone()
    if row is None or not secret_matches(row["password_hash"], password):
        return None
    return Account(row["user"], row["institution"], row["location"])


# -- changes (inside the caller's transaction)


def add_loan(conn: sqlite3.Connection, item: str, patron: str, at: dt.datetime, due: dt.datetime,
             library: str) -> None:
    conn.execute("INSERT INTO loans VALUES (?, ?, ?, ?, 0, ?)",
                 (item, patron, at.isoformat(timespec="seconds"), due.isoformat(timespec="seconds"), library))


def renew_loan(conn: sqlite3.Connection, item: str, due: dt.datetime) -> None:
    conn.execute("UPDATE loans SET due = ?, renewals = renewals + 1 WHERE item = ?",
                 (due.isoformat(timespec="seconds"), item))


def end_loan(conn: sqlite3.Connection, item: str) -> None:
    conn.execute("DELETE FROM loans WHERE item = ?", (item,))


def set_status(conn: sqlite3.Connection, item: str, status: str) -> None:
    if status not in ITEM_STATUSES:
        raise ValueError(f"an item's status is one of {', '.join(ITEM_STATUSES)}, not {status!r}")
    conn.execute("UPDATE items SET status = ? WHERE item = ?", (status, item))


def add_hold(conn: sqlite3.Connection, item: str, patron: str, at: dt.datetime, pickup_library: str) -> None:
    conn.execute("INSERT INTO holds (item, patron, placed_at, pickup_library) VALUES (?, ?, ?, ?)",
                 (item, patron, at.isoformat(timespec="seconds"), pickup_library))


def set_hold_state(conn: sqlite3.Connection, hold_id: int, state: str) -> None:
    conn.execute("UPDATE holds SET state = ? WHERE id = ?", (state, hold_id))


def remove_hold(conn: sqlite3.Connection, hold_id: int) -> None:
    conn.execute("DELETE FROM holds WHERE id = ?", (hold_id,))


def log_circulation(conn: sqlite3.Connection, *, at: dt.datetime, action: str, item: str, patron: str,
                    ok: bool, message: str = "", no_block: bool = False, transaction_date: str | None = None,
                    return_date: str | None = None, renewal: bool = False) -> None:
    conn.execute(
        "INSERT INTO circulation_log (at, action, item, patron, ok, message, no_block, transaction_date, "
        "return_date, renewal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (at.isoformat(timespec="seconds"), action, item, patron, int(ok), message, int(no_block),
         transaction_date, return_date, int(renewal)))


# -- for tests, scenarios and staff: change the library's state from outside SIP2


def set_item_status(db_path: str | Path, item: str, status: str) -> None:
    """Mark a book available, on the hold shelf, in transit, lost or missing."""
    conn = _open_existing(db_path)
    try:
        with transaction(conn):
            if find_item(conn, item) is None:
                raise DemoIlsError(f"no item {item!r} in {db_path}")
            set_status(conn, item, status)
    finally:
        conn.close()


def place_hold(db_path: str | Path, item: str, member_id: str, *, clock: Clock,
               pickup_library: str = demo.LIBRARY_CODE) -> None:
    """Reserve a book for a member (the next checkin of it catches the hold)."""
    conn = _open_existing(db_path)
    try:
        with transaction(conn):
            if find_item(conn, item) is None:
                raise DemoIlsError(f"no item {item!r} in {db_path}")
            if find_patron(conn, member_id) is None:
                raise DemoIlsError(f"no member {member_id!r} in {db_path}")
            add_hold(conn, item, member_id, clock.now(), pickup_library)
    finally:
        conn.close()


# -- report


def loans_report(db_path: str | Path) -> dict:
    """The library's current loans, holds and its circulation log (every checkout, checkin and
    renewal, refused ones too), as plain JSON-ready data:

        {"loans": [{item, title, patron, checked_out_at, due, renewals}],
         "holds": [{item, patron, placed_at, state, pickup_library}],
         "log": [{at, action, item, patron, ok, message, no_block, transaction_date, return_date,
                  renewal}]}

    Times are ISO 8601 text; the request's transaction and return dates are ISO when readable,
    else as sent, None when blank. Raises DemoIlsError for a missing or foreign file.
    """
    conn = _open_existing(db_path)
    try:
        with transaction(conn, write=False):
            loans = [
                {"item": row["item"], "title": row["title"] or "", "patron": row["patron"],
                 "checked_out_at": row["checked_out_at"], "due": row["due"], "renewals": row["renewals"]}
                for row in conn.execute(
                    "SELECT loans.*, items.title FROM loans LEFT JOIN items USING (item) "
                    "ORDER BY loans.checked_out_at, loans.item")
            ]
            holds = [
                {"item": row["item"], "patron": row["patron"], "placed_at": row["placed_at"],
                 "state": row["state"], "pickup_library": row["pickup_library"]}
                for row in conn.execute("SELECT * FROM holds ORDER BY placed_at, id")
            ]
            log = [
                {"at": row["at"], "action": row["action"], "item": row["item"], "patron": row["patron"],
                 "ok": bool(row["ok"]), "message": row["message"], "no_block": bool(row["no_block"]),
                 "transaction_date": row["transaction_date"], "return_date": row["return_date"],
                 "renewal": bool(row["renewal"])}
                for row in conn.execute("SELECT * FROM circulation_log ORDER BY id")
            ]
    finally:
        conn.close()
    return {"loans": loans, "holds": holds, "log": log}
