"""Simulated KR-CU16 lock boards on a pseudo-terminal: the far end of the RS-485 bus.

The adapter under test opens the pty's path with pyserial exactly as it would open
/dev/ttyUSB0; a thread here reads its request frames from the master side and answers as the
boards would, or (when told) with garbage, half a frame, noise before the frame, or nothing.
"""

from __future__ import annotations

import collections
import os
import select
import threading
import tty
from pathlib import Path

from drivers.cu16 import CMD_STATUS, CMD_UNLOCK, ETX, STX, checksum, status_frame


class FakeBoard:
    """One board: 16 locks with hook switches and infrared sensors. Doors spring open when their
    lock releases (as on most lockers built on these boards)."""

    def __init__(self, address: int, *, unlock_replies: bool = True, bit_order: str = "lsb-first",
                 hook_closed_bit: int = 1, infrared_occupied_bit: int = 1) -> None:
        self.address = address
        self.unlock_replies = unlock_replies
        self.bit_order = bit_order
        self.hook_closed_bit = hook_closed_bit
        self.infrared_occupied_bit = infrared_occupied_bit
        self.closed = [True] * 16  # hook latched (door shut)
        self.items = [False] * 16
        self.jammed: set[int] = set()
        self.unlocks: list[int] = []  # lock numbers (0-15) released, in order
        self.silent = False
        self.faults: collections.deque[str] = collections.deque()  # "garble", "short", "noise", "silent", "badsum", "other-board"

    def _bits(self, values: list[bool], one: int) -> bytes:
        out = bytearray(2)
        for lock, value in enumerate(values):
            bit = lock % 8 if self.bit_order == "lsb-first" else 7 - lock % 8
            level = one if value else 1 - one
            out[lock // 8] |= level << bit
        return bytes(out)

    def status(self, addr: int) -> bytes:
        return status_frame(addr, self._bits(self.closed, self.hook_closed_bit),
                            self._bits(self.items, self.infrared_occupied_bit))

    def handle(self, addr: int, cmd: int) -> bytes | None:
        lock = addr & 0x0F
        if cmd == CMD_UNLOCK:
            self.unlocks.append(lock)
            if lock not in self.jammed:
                self.closed[lock] = False
            if not self.unlock_replies:
                return None
        elif cmd != CMD_STATUS:
            return None
        if self.silent:
            return None
        reply = self.status(addr)
        fault = self.faults.popleft() if self.faults else ""
        if fault == "silent":
            return None
        if fault == "garble":
            return bytes(b ^ 0x5A for b in reply)
        if fault == "short":
            return reply[:4]
        if fault == "noise":
            return b"\xff\x00" + reply
        if fault == "badsum":
            return reply[:-1] + bytes(((reply[-1] + 1) & 0xFF,))
        if fault == "other-board":
            return status_frame(((self.address + 1) & 0x0F) << 4, b"\x00\x00", b"\x00\x00")
        return reply


class PtyBus:
    """Boards on one bus, reached through `path` (a symlink to the pty, so it can be unplugged)."""

    def __init__(self, folder: Path, boards: list[FakeBoard]) -> None:
        self.boards = {b.address: b for b in boards}
        self.path = folder / "ttyRS485"
        self.received: list[bytes] = []
        self._master = -1
        self._slave = -1
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self.plug()

    def plug(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        if self.path.is_symlink() or self.path.exists():
            self.path.unlink()
        self.path.symlink_to(os.ttyname(self._slave))
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        """The USB adapter is pulled out: the device node disappears, the open port fails."""
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.path.unlink()
        for fd in (self._master, self._slave):
            os.close(fd)
        self._master = self._slave = -1

    def close(self) -> None:
        if self._master != -1:
            self.unplug()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _serve(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master, self._wake_r], [], [], 1.0)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
                continue
            if self._master not in ready:
                continue
            try:
                buf += os.read(self._master, 256)
            except OSError:
                return
            while len(buf) >= 5:
                start = buf.find(bytes((STX,)))
                if start < 0:
                    buf.clear()
                    break
                del buf[:start]
                if len(buf) < 5:
                    break
                request = bytes(buf[:5])
                del buf[:5]
                if request[3] != ETX or checksum(request[:4]) != request[4]:
                    continue  # a board ignores a frame it cannot read
                self.received.append(request)
                board = self.boards.get(request[1] >> 4)
                if board is None:
                    continue
                reply = board.handle(request[1], request[2])
                if reply:
                    os.write(self._master, reply)
