"""One injected clock: the shell reads time only through this, tests advance a fake one."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Protocol

# Korea has no daylight saving time; the kiosk keeps local wall time in its configured zone.
KST = dt.timezone(dt.timedelta(hours=9), "KST")

# systemd-timesyncd touches this file once the clock has been synchronised since boot.
_TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards (timers use this)."""

    def now(self) -> dt.datetime:
        """The wall clock, timezone-aware (records and due dates use this)."""

    def synced(self) -> bool:
        """Whether the wall clock has been synchronised (NTP) since boot."""


class SystemClock:
    def __init__(self, tz: dt.tzinfo = KST) -> None:
        self._tz = tz

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> dt.datetime:
        return dt.datetime.now(self._tz)

    def synced(self) -> bool:
        return _TIMESYNC_FLAG.exists()

    def __repr__(self) -> str:
        return f"<SystemClock tz={self._tz}>"


class FakeClock:
    """A clock that moves only when told to (tests and scenarios)."""

    def __init__(self, start: dt.datetime | None = None, *, synced: bool = True, uptime: float = 1000.0) -> None:
        self._wall = start or dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=KST)
        self._mono = uptime  # as Linux's monotonic clock: seconds since boot
        self.is_synced = synced

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> dt.datetime:
        return self._wall

    def synced(self) -> bool:
        return self.is_synced

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._mono += seconds
        self._wall += dt.timedelta(seconds=seconds)

    def set_wall(self, when: dt.datetime) -> None:
        """The wall clock is set, forward or back (NTP after boot, or by hand); monotonic time
        does not move."""
        self._wall = when

    def __repr__(self) -> str:
        return f"<FakeClock {self._wall.isoformat()} mono={self._mono:.1f}>"


def boot_id() -> str:
    """The kernel's id of this boot ('' off Linux); stored with every outbox event."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
