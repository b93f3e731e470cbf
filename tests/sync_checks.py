"""Does the library system agree with the kiosk? The checks the sync model and the crash test share.

Both read the two databases as they are on disk (the kiosk's store and the demo ILS's own file)
and return a list of problems, each a sentence naming the item and what went wrong; an empty list
means the ILS holds exactly what the kiosk recorded, each event applied once and in order, and
nothing was renewed by a replay.

Member numbers appear in these sentences only by their last four digits.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import tempfile
from collections import defaultdict
from pathlib import Path

from kiosk import demo
from sync.demo_ils import loans_report


def _tail(member: str | None) -> str:
    return f"…{member[-4:]}" if member else "nobody"


def query(path: Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(str(path), timeout=10.0)
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


_MEMBER_OF_CARD = {m.card_uid.upper(): m.member_id for m in demo.MEMBERS}


def _member(row: sqlite3.Row, key_of: dict[str, str]) -> str | None:
    """The member number of a kiosk loan: as recorded (a member number, or a card's UID when lent
    offline), or, once scrubbed after delivery, found from its keyed hash."""
    member = row["member_id"]
    if member:
        return _MEMBER_OF_CARD.get(member.upper(), member)
    return key_of.get(row["member_key"] or "")


def _keys(kiosk_db: Path) -> dict[str, str]:
    """Member key → member number, for the demo's members (the device key is beside the db)."""
    try:
        secret = bytes.fromhex(kiosk_db.with_name(kiosk_db.name + ".key").read_text().strip())
    except (OSError, ValueError):
        return {}
    return {hmac.new(secret, m.member_id.encode(), hashlib.sha256).hexdigest()[:32]: m.member_id
            for m in demo.MEMBERS}


def _kiosk_loans(kiosk_db: Path, where: str = "", args: tuple = ()) -> list[tuple[str, str | None]]:
    """(item, member) of the loans the kiosk made (each has an outbox event), oldest first."""
    columns = {row["name"] for row in query(kiosk_db, "PRAGMA table_info(loans)")}
    key = "member_key" if "member_key" in columns else "NULL AS member_key"
    keys = _keys(kiosk_db)
    rows = query(kiosk_db, f"SELECT item, member_id, {key} FROM loans WHERE event_id IS NOT NULL {where} "
                           "ORDER BY id", args)
    return [(row["item"], _member(row, keys)) for row in rows]


def kiosk_open_loans(kiosk_db: Path) -> dict[str, str | None]:
    """item → member of every loan the kiosk made and has not seen returned."""
    return dict(_kiosk_loans(kiosk_db, "AND returned_at IS NULL"))


def kiosk_items(kiosk_db: Path) -> set[str]:
    """Every copy the kiosk has held: in a locker now, lent, returned into it, or queued."""
    return {row[0] for row in query(
        kiosk_db, "SELECT item FROM slots WHERE item IS NOT NULL UNION SELECT item FROM loans "
                  "UNION SELECT item FROM returns UNION SELECT item FROM outbox "
                  "UNION SELECT item FROM door_jobs WHERE state = 'done'")}


def integrity(kiosk_db: Path) -> str:
    return query(kiosk_db, "PRAGMA integrity_check")[0][0]


def renewal_problems(ils_db: Path) -> list[str]:
    """A renewal at the ILS: the kiosk never renews here, so any is a replayed checkout."""
    report = loans_report(ils_db)
    problems = [f"{e['item']} was renewed at the library ({e['action']} at {e['at']}, no_block={e['no_block']})"
                for e in report["log"] if e["action"] == "renew" or e["renewal"]]
    problems += [f"{loan['item']} has {loan['renewals']} renewal(s) at the library"
                 for loan in report["loans"] if loan["renewals"]]
    return problems


def door_job_problems(kiosk_db: Path) -> list[str]:
    """Every door job is settled; every loan or return whose door had opened is recorded."""
    problems = []
    for job in query(kiosk_db, "SELECT * FROM door_jobs ORDER BY created_at"):
        what = f"{job['kind']} door job of {job['item']} in locker {job['slot']}"
        if job["state"] in ("pending", "asking"):
            problems.append(f"the {what} is still {job['state']} after a restart")
            continue
        if not job["opened_at"]:
            continue
        if job["state"] != "done":
            problems.append(f"the {what} opened its door but is {job['state']} ({job['note']}): the book "
                            f"moved and nothing was recorded")
            continue
        table, column = ("loans", "loaned_at") if job["kind"] == "loan" else ("returns", "returned_at")
        found = query(kiosk_db, f"SELECT 1 FROM {table} WHERE item = ? AND {column} = ?",
                      (job["item"], job["finished_at"]))
        if not found:
            problems.append(f"the {what} is done but no {table[:-1]} row records it")
    return problems


def outbox_problems(kiosk_db: Path) -> list[str]:
    """After a sync with a healthy ILS nothing is left to send and nothing was refused."""
    problems = []
    for event in query(kiosk_db, "SELECT * FROM outbox WHERE state NOT IN ('delivered', 'resolved') "
                                 "ORDER BY seq"):
        problems.append(f"outbox event {event['seq']} ({event['kind']} of {event['item']}) is "
                        f"{event['state']}: {event['last_error'] or 'no reason recorded'}")
    return problems


def agreement_problems(kiosk_db: Path, ils_db: Path) -> list[str]:
    """The ILS's loans of the kiosk's copies are exactly the kiosk's open loans, and each item's
    history at the ILS is the kiosk's, in order, each event once."""
    problems = []
    report = loans_report(ils_db)
    ours = kiosk_items(kiosk_db)
    at_ils = {loan["item"]: loan["patron"] for loan in report["loans"] if loan["item"] in ours}
    at_kiosk = kiosk_open_loans(kiosk_db)
    for item in sorted(set(at_ils) | set(at_kiosk)):
        if item not in at_kiosk:
            problems.append(f"{item} is on loan at the library to {_tail(at_ils[item])} but not at the kiosk")
        elif item not in at_ils:
            problems.append(f"{item} is on loan at the kiosk to {_tail(at_kiosk[item])} but not at the library "
                            f"(a lost loan)")
        elif at_kiosk[item] is not None and at_ils[item] != at_kiosk[item]:
            problems.append(f"{item} is on loan to {_tail(at_ils[item])} at the library but to "
                            f"{_tail(at_kiosk[item])} at the kiosk")

    log: dict[str, list[dict]] = defaultdict(list)
    for entry in report["log"]:
        if entry["item"] in ours:
            log[entry["item"]].append(entry)
    for item, entries in sorted(log.items()):
        applied = [e for e in entries if e["ok"]]
        for before, after in zip(applied, applied[1:]):
            if before["action"] == after["action"]:
                problems.append(f"{item}: two {after['action']}s in a row at the library ({before['at']}, "
                                f"{after['at']}): an event applied twice or out of order")
        # A refused checkin is no problem by itself: the worker sends a first checkin without
        # asking (17) first, and a take-back of a loan that never reached the library is refused
        # harmlessly. One that overtook its checkout shows in the loans compared above.
        for e in entries:
            if e["action"] == "checkout" and not e["ok"] and e["no_block"]:
                problems.append(f"{item}: the library refused a replayed checkout at {e['at']} ({e['message']})")
    # Every loan the kiosk recorded reached the library, to the same member, in the kiosk's order
    # (the library may have more: loans taken back because their door never opened).
    for item in sorted(ours):
        members = [member for _, member in _kiosk_loans(kiosk_db, "AND item = ?", (item,))]
        if any(m is None for m in members):
            continue  # a member the checks cannot name: the current-loan check stands
        lent = iter(e["patron"] for e in log.get(item, []) if e["ok"] and e["action"] == "checkout")
        if not all(any(patron == m for patron in lent) for m in members):
            theirs = [e["patron"] for e in log.get(item, []) if e["ok"] and e["action"] == "checkout"]
            problems.append(f"{item}: the kiosk lent it to {', '.join(map(_tail, members))}, but the "
                            f"library's checkouts were to {', '.join(map(_tail, theirs)) or 'nobody'}")
    return problems


def all_problems(kiosk_db: Path, ils_db: Path) -> list[str]:
    return (renewal_problems(ils_db) + door_job_problems(kiosk_db) + outbox_problems(kiosk_db)
            + agreement_problems(kiosk_db, ils_db))


def scratch_folder(fallback: Path) -> Path:
    """A folder for the kiosk's and the ILS's databases: in memory (/dev/shm) when there is one.

    These tests kill or drop a process, never the machine: the kernel's page cache outlives the
    process, so an fsync changes nothing they can observe (power-loss durability is WAL with
    synchronous=FULL, measured by the benchmarks). On a slow disk an fsync costs milliseconds,
    and hundreds of runs then cost minutes.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="kiosk-test-", dir=shm))
    fallback.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="kiosk-test-", dir=fallback))
