"""What staff and technicians see of the outbox: plain data for `kiosk queue` and the staff screen.

Member numbers are never shown whole (the last 4 characters at most); the library's own words
(its screen message on a refusal) are shown as given, since they say what to fix.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kiosk.identifiers import mask
from kiosk.store import OUTBOX_STATES, WAITING_STATES, Store


def event_view(row: dict, *, full: bool = False) -> dict[str, Any]:
    """One outbox event for people: what, which item, where it stands and why."""
    view: dict[str, Any] = {
        "id": row["seq"], "kind": row["kind"], "item": row["item"], "state": row["state"],
        "created_at": row["created_at"], "attempts": row["attempts"],
        "clock_synced": bool(row["clock_synced"]),
        "member": mask(row["member_id"]) if row["member_id"] else ("(scrubbed)" if row["member_key"] else ""),
        "reason": row["last_error"] or "",
    }
    if full:
        try:
            payload = json.loads(row["payload"] or "{}")
        except ValueError:  # a damaged record (it is a dead letter for that very reason): shown as it is
            payload = {"damaged": row["payload"]}
        view.update(event_id=row["event_id"], boot_id=row["boot_id"], next_attempt_at=row["next_attempt_at"],
                    delivered_at=row["delivered_at"], payload=payload)
    return view


def queue_overview(store: Store, now: dt.datetime) -> dict[str, Any]:
    """Counts by state, the age of the oldest waiting event, dead letters with their reasons, and
    how many waiting events carry dates from an unsynchronised clock."""
    status = store.queue_status()
    oldest = status["oldest_undelivered"]
    age_s = None
    if oldest:
        age_s = max(0.0, (now - dt.datetime.fromisoformat(oldest)).total_seconds())
    return {
        "counts": {state: status["counts"].get(state, 0) for state in OUTBOX_STATES},
        "waiting": sum(status["counts"].get(state, 0) for state in WAITING_STATES),
        "oldest_waiting": oldest,
        "oldest_waiting_age_s": age_s,
        "unsynced_clock": status["unsynced_clock"],
        "dead_letters": [event_view(row) for row in store.outbox("dead")],
    }


def age_words(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
