"""RS-485 lock controller boards of the Kerong KR-CU16 kind, over pyserial.

The protocol, as the boards speak it (19200 baud, 8N1 by default; several boards share one bus,
each set to its own address with its DIP switch):

    request  02 ADDR CMD 03 SUM                      (5 bytes)
    reply    02 ADDR 35 H1 H2 I1 I2 03 SUM           (9 bytes)

- SUM is the low byte of the sum of every byte before it.
- ADDR: the board's address in the high nibble, the lock (0-15) in the low nibble.
- CMD 0x30 asks a board for its status; 0x31 releases one lock (the board pulses the lock itself,
  for its configured unlock time). 0x33 would release every lock of a board: never sent.
- The reply carries the lock hook switches (H1: locks 1-8, H2: locks 9-16; a set bit is a closed,
  latched hook) and the infrared occupancy sensors (I1, I2; a set bit is something inside).

Modelled on what public drivers for these boards do: jin0949/KR-CU16_locker (src/locker.py:
0x30 status with a 9-byte 0x35 reply, 0x31 unlock with the lock in the ADDR byte) and a Kerong
CU12/CU16 controller module in TypeScript (the hook and infrared bytes, the board address in
ADDR's high nibble, the sum checksum). Boards differ, so the quirks are settings: whether a board
answers an unlock (`unlock_replies`), the bit order of the status bytes (`bit_order`), and which
bit value means a closed hook or an occupied locker.

A board that does not answer `offline_after` polls in a row goes out of service with a reason
(its lockers refuse to unlock) and is asked again every `reconnect_s` until it answers; a port
that disappears (a USB RS-485 adapter unplugged) is reopened the same way. Every bad reply is
counted in `errors` by kind. Serial I/O never runs on the UI thread in the kiosk: the bank polls
on its own thread (`background=True`); tests call `poll()` themselves.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.base import DeviceError, Emit, Health
from drivers.doors import DoorWatch, slot_ranges

log = logging.getLogger("kiosk.locks.cu16")

STX, ETX = 0x02, 0x03
CMD_STATUS, CMD_UNLOCK, REPLY_STATUS = 0x30, 0x31, 0x35
REPLY_LEN = 9
BAUDRATES = (9600, 19200, 38400, 57600, 115200)


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(addr: int, cmd: int) -> bytes:
    """A request frame: 02 ADDR CMD 03 SUM."""
    body = bytes((STX, addr & 0xFF, cmd, ETX))
    return body + bytes((checksum(body),))


def status_frame(addr: int, hooks: bytes, infrared: bytes) -> bytes:
    """A status reply (what a board sends; the simulated board in the tests builds these)."""
    body = bytes((STX, addr & 0xFF, REPLY_STATUS)) + bytes(hooks[:2]) + bytes(infrared[:2]) + bytes((ETX,))
    return body + bytes((checksum(body),))


class Cu16Error(DeviceError):
    """A board did not answer, or answered something that is not a status frame."""


def check_reply(reply: bytes, board: int) -> str:
    """What is wrong with a reply from this board ('' when it is a good status frame)."""
    if not reply:
        return "no-reply"
    if len(reply) < REPLY_LEN:
        return "short"
    if reply[0] != STX or reply[7] != ETX or reply[2] != REPLY_STATUS:
        return "garbled"
    if checksum(reply[:8]) != reply[8]:
        return "checksum"
    if reply[1] >> 4 != board:
        return "wrong-board"
    return ""


_WORDS = {"no-reply": "no reply", "short": "a short reply", "garbled": "a garbled reply",
          "checksum": "a reply with a bad checksum", "wrong-board": "a reply from another board",
          "port": "the serial port failed"}


@dataclass
class _Board:
    address: int
    seen: bool = False  # answered at least once since start
    failures: int = 0  # polls in a row without a good answer
    offline: bool = False
    offline_since: float = 0.0
    retry_at: float = 0.0
    reason: str = "has not answered yet"
    slots: list[int] = field(default_factory=list)


class Cu16LockBank:
    """Lockers 1..slots on one RS-485 bus of CU16 boards: slot N is lock (N-1) % locks_per_board
    of board `boards[(N-1) // locks_per_board]`."""

    def __init__(
        self, *, slots: int, port: str = "/dev/ttyUSB0", baudrate: int = 19200,
        boards: Sequence[int] = (0,), locks_per_board: int = 16, timeout_s: float = 0.2, retries: int = 2,
        poll_interval_s: float = 0.5, offline_after: int = 3, reconnect_s: float = 5.0,
        unlock_replies: bool = True, bit_order: str = "lsb-first", hook_closed_bit: int = 1,
        infrared: bool = False, infrared_occupied_bit: int = 1, jam_check_s: float = 1.0,
        left_open_s: float = 60.0, clock: Any = None, background: bool = True,
    ) -> None:
        boards = list(boards)
        if not boards or len(set(boards)) != len(boards) or not all(0 <= b <= 15 for b in boards):
            raise Cu16Error(f"boards must be distinct addresses from 0 to 15, not {boards}")
        if not 1 <= locks_per_board <= 16:
            raise Cu16Error(f"a CU16 board has 1 to 16 locks, not {locks_per_board}")
        if slots > len(boards) * locks_per_board:
            raise Cu16Error(f"{slots} lockers need more than {len(boards)} board(s) of {locks_per_board} locks")
        if bit_order not in ("lsb-first", "msb-first"):
            raise Cu16Error(f"bit_order is 'lsb-first' or 'msb-first', not {bit_order!r}")
        self.slots = slots
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.retries = retries
        self.poll_interval_s = poll_interval_s
        self.offline_after = offline_after
        self.reconnect_s = reconnect_s
        self.unlock_replies = unlock_replies
        self.bit_order = bit_order
        self.hook_closed_bit = hook_closed_bit
        self.infrared = infrared
        self.infrared_occupied_bit = infrared_occupied_bit
        self.polls_itself = background
        self._clock = clock
        self._boards = {address: _Board(address) for address in boards}
        self._where: dict[int, tuple[int, int]] = {}
        for slot in range(1, slots + 1):
            address = boards[(slot - 1) // locks_per_board]
            self._where[slot] = (address, (slot - 1) % locks_per_board)
            self._boards[address].slots.append(slot)
        # A board listed beyond the last locker has nothing to do: it is not asked.
        self._boards = {address: board for address, board in self._boards.items() if board.slots}
        self.watch = DoorWatch(self._where, left_open_s=left_open_s, jam_check_s=jam_check_s)
        self.errors: collections.Counter[str] = collections.Counter()
        self._quiet = True  # no bad reply since the last good one
        self._serial: Any = None
        self._port_error = ""
        self._port_retry_at = 0.0
        self._bus = threading.RLock()  # one request on the wire at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = False
        self._closed = False

    def _now(self) -> float:
        return self._clock.monotonic() if self._clock is not None else time.monotonic()

    # -- the serial port

    def _port_handle(self) -> Any:
        if self._serial is not None:
            return self._serial
        now = self._now()
        if self._port_error and now < self._port_retry_at:
            raise Cu16Error(self._port_error)
        try:
            import serial  # pyserial, only when this adapter is chosen

            # serial_for_url: a device path, or a URL such as "rfc2217://host:port" for a
            # networked RS-485 gateway.
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=self.timeout_s,
                                                 write_timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - SerialException, OSError, ValueError
            self.errors["port"] += 1
            first = not self._port_error
            self._port_error = f"cannot open {self.port}: {exc}"
            self._port_retry_at = now + self.reconnect_s
            if first:
                log.error("%s", self._port_error)
            raise Cu16Error(self._port_error) from exc
        if self._port_error:
            log.info("serial port %s open again", self.port)
        self._port_error = ""
        return self._serial

    def _drop_port(self, exc: BaseException) -> None:
        self.errors["port"] += 1
        log.warning("serial port %s failed, reopening: %s", self.port, exc)
        try:
            self._serial.close()
        except Exception:  # noqa: BLE001
            pass
        self._serial = None

    def _transact(self, board: int, addr: int, cmd: int, *, reply: bool) -> bytes | None:
        """Send one request (retrying); the board's status reply, or None when none is expected."""
        request = frame(addr, cmd)
        last = "no-reply"
        with self._bus:
            for _ in range(self.retries + 1):
                try:
                    ser = self._port_handle()
                except Cu16Error:
                    last = "port"
                    break
                try:
                    ser.reset_input_buffer()  # stale bytes of an earlier, late answer
                    ser.write(request)
                    ser.flush()
                    if not reply:
                        return None
                    answer = self._read_reply(ser)
                except Exception as exc:  # noqa: BLE001 - SerialException, OSError (unplugged)
                    self._drop_port(exc)
                    last = "port"
                    continue
                problem = check_reply(answer, board)
                if not problem:
                    self._quiet = True
                    return answer
                self.errors[problem] += 1
                last = problem
                # The first bad reply after good ones is a warning; a run of them is counted in
                # `errors` (and puts the board out of service) without filling the log.
                log.log(logging.WARNING if self._quiet else logging.DEBUG,
                        "lock board %d: %s (%d bytes); %d bad replies so far",
                        board, _WORDS[problem], len(answer), sum(self.errors.values()))
                self._quiet = False
        reason = self._port_error if last == "port" and self._port_error else _WORDS[last]
        raise Cu16Error(reason)

    def _read_reply(self, ser: Any) -> bytes:
        answer = bytes(ser.read(REPLY_LEN))
        start = answer.find(bytes((STX,)))
        if start > 0:  # noise on the line before the frame: read the rest of it
            answer = answer[start:] + bytes(ser.read(start))
        return answer

    # -- lifecycle

    def start(self, emit: Emit) -> None:
        """Read every board once (the doors' starting state), then poll on a thread."""
        if self._closed:
            raise DeviceError("the CU16 lock bank is closed")
        now = self._now()
        for slot in self._where:  # the boards' locks latch by themselves: locked is the rest state
            self.watch.locked(slot, now)
        self.poll()
        for slot in self.watch.open_doors():
            log.warning("locker %d's door is open at start", slot)
        self.watch.set_emit(emit)
        self.started = True
        if self.polls_itself and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="cu16-poll", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the poller must outlive a bug
                log.exception("polling the lock boards failed")

    def close(self) -> None:
        """Stop polling and close the port. The locks stay latched. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.watch.set_emit(None)
        with self._bus:
            if self._serial is not None:
                try:
                    self._serial.close()
                except Exception:  # noqa: BLE001
                    log.exception("the serial port did not close cleanly")
                self._serial = None
        self.started = False

    def __enter__(self) -> Cu16LockBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locks

    def _check(self, slot: int) -> tuple[int, int]:
        try:
            return self._where[slot]
        except KeyError:
            raise DeviceError(f"there is no locker {slot} (this bank has 1..{self.slots})") from None

    def unlock(self, slot: int) -> None:
        address, lock = self._check(slot)
        board = self._boards[address]
        with self._bus:
            if board.offline or not board.seen:
                raise DeviceError(f"locker {slot} is out of service: lock board {address} {board.reason}")
            try:
                answer = self._transact(address, (address << 4) | lock, CMD_UNLOCK, reply=self.unlock_replies)
            except Cu16Error as exc:
                self._failed(board, str(exc), self._now())
                raise DeviceError(f"locker {slot}: lock board {address} did not take the unlock: {exc}") from exc
            now = self._now()
            self.watch.unlocked(slot, now)
            if answer is not None:
                self._apply(board, answer, now)

    def lock(self, slot: int) -> None:
        # Nothing to send: the lock latches by itself when the door shuts.
        self._check(slot)
        self.watch.locked(slot, self._now())

    def is_open(self, slot: int) -> bool:
        self._check(slot)
        return self.watch.is_open(slot)

    def occupied(self, slot: int) -> bool | None:
        """What the board's infrared sensor sees (None without `infrared`)."""
        self._check(slot)
        return self.watch.occupied(slot) if self.infrared else None

    def out_of_service(self) -> dict[int, str]:
        return {slot: f"lock board {b.address} {b.reason}"
                for b in self._boards.values() if b.offline or not b.seen for slot in b.slots}

    # -- polling

    def poll(self) -> None:
        """Ask every board (an offline one only when its retry is due) and run the door timers."""
        if self._closed:
            return
        with self._bus:
            for board in self._boards.values():
                now = self._now()
                if board.offline and now < board.retry_at:
                    continue
                try:
                    answer = self._transact(board.address, board.address << 4, CMD_STATUS, reply=True)
                except Cu16Error as exc:
                    self._failed(board, str(exc), now)
                    continue
                self._answered(board, now)
                self._apply(board, answer, now)
        self.watch.tick(self._now())

    def _bit(self, data: bytes, lock: int) -> int:
        byte = data[lock // 8]
        bit = lock % 8 if self.bit_order == "lsb-first" else 7 - lock % 8
        return (byte >> bit) & 1

    def _apply(self, board: _Board, answer: bytes, now: float) -> None:
        hooks, infrared = answer[3:5], answer[5:7]
        for slot in board.slots:
            lock = self._where[slot][1]
            self.watch.door(slot, self._bit(hooks, lock) != self.hook_closed_bit, now)
            if self.infrared:
                self.watch.occupancy(slot, self._bit(infrared, lock) == self.infrared_occupied_bit, now)

    def _failed(self, board: _Board, reason: str, now: float) -> None:
        board.failures += 1
        board.reason = f"not answering: {reason}" if board.seen else f"has not answered: {reason}"
        # A board that has never answered is out of service from the first failure; one that
        # has, after `offline_after` failures in a row (a single lost reply is line noise).
        if not board.offline and (board.failures >= self.offline_after or not board.seen):
            board.offline = True
            board.offline_since = now
            log.error("lock board %d on %s out of service (lockers %s): %s",
                      board.address, self.port, slot_ranges(board.slots), reason)
            for slot in board.slots:  # its doors cannot be seen: no jam alarms from stale readings
                self.watch.locked(slot, now)
        if board.offline:
            board.retry_at = now + self.reconnect_s

    def _answered(self, board: _Board, now: float) -> None:
        if board.offline:
            log.warning("lock board %d on %s answers again (lockers %s back in service)",
                        board.address, self.port, slot_ranges(board.slots))
        board.seen, board.failures, board.offline, board.reason = True, 0, False, ""

    # -- health

    def health(self) -> Health:
        if self._closed:
            return Health(False, "closed")
        if not self.started:
            return Health(False, "not started")
        down = [b for b in self._boards.values() if b.offline or not b.seen]
        if not down:
            return Health(True)
        if self._port_error and len(down) == len(self._boards):
            return Health(False, f"{self._port_error} (every locker out of service)")
        parts = [f"lock board {b.address} on {self.port} {b.reason} (lockers {slot_ranges(b.slots)} out of service)"
                 for b in down]
        return Health(False, "; ".join(parts))

    def __repr__(self) -> str:
        boards = ", ".join(f"{b.address}:{'up' if b.seen and not b.offline else 'down'}" for b in self._boards.values())
        return f"<Cu16LockBank {self.port} slots={self.slots} boards=[{boards}] open={self.watch.open_doors()}>"
