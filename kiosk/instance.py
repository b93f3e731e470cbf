"""One kiosk a database: `kiosk run` (or `kiosk demo` on a kept database) and `kiosk sync --once`
take turns, never run side by side.

Two kiosks on one database would both drive the lockers and both send the queue; a technician's
`kiosk sync --once` beside a running kiosk would send its queue from outside the kiosk's own
circulation lock. The lock is an flock(2) on a file beside the database: the kernel lets it go
when its holder dies, however it dies, so a crash or a power cut never leaves it stuck.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class AlreadyRunning(Exception):
    """Another process holds the database; `holder` says which ("kiosk run (pid 812)")."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{holder or 'another process'} is using {path}")
        self.holder = holder


class InstanceLock:
    """The lock on one kiosk database, held from acquire() until release() or the process ends."""

    def __init__(self, db_path: Path | str) -> None:
        db_path = Path(db_path)
        self.db_path = db_path
        # Named from the real path: the same database reached by a symlink is the same lock.
        real = db_path.resolve()
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<InstanceLock {self.path} {'held' if self._fd is not None else 'free'}>"

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self, role: str, *, wait: bool = False) -> None:
        """Take the lock as `role` ("kiosk run", "kiosk sync"). Raises AlreadyRunning when
        another process holds it, unless `wait`: then it blocks until that process lets go."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise AlreadyRunning(self.db_path, self.holder()) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{role} (pid {os.getpid()})\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the only descriptor lets the lock go

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ('' when nobody says)."""
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""


__all__ = ["AlreadyRunning", "InstanceLock"]
