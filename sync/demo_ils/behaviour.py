"""How the demo ILS behaves (`Behaviour`: one real server's habits) and what goes wrong (`Faults`).

A `Behaviour` is frozen and may be swapped on a running server; `Faults` is mutable and
thread-safe, for tests and scenarios that break the connection while the kiosk talks to it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync.sip2.codec import Dialect

TERMINATORS = ("\r", "\r\n")
ERROR_DETECTION = ("per-message", "required", "off")
CHECKSUMS = ("bytes", "codepoints")
ENCODINGS = ("utf-8", "utf-8-nfd", "cp949", "cp850", "ascii")
NO_BLOCK = ("honoured", "ignored")
REPEAT_CHECKOUT = ("renewal", "refused")


@dataclass(frozen=True)
class Behaviour:
    """One server's habits, as in the server-differences table (Koha, Evergreen, FOLIO, RERO).

    terminator: what replies end with, CR or CRLF (Koha's default).
    error_detection: "per-message" (a reply carries AY/AZ when its request did: Koha, Evergreen),
        "required" (a request without AZ is answered 96: FOLIO with error detection on),
        "off" (never checksummed; AY/AZ in requests ignored).
    checksum: how the server sums, both when checking and when sending: "bytes" or "codepoints".
    encoding: "utf-8" (NFC), "utf-8-nfd" (Evergreen's decomposed jamo), "cp949", "cp850",
        "ascii" (Hangul becomes "?").
    no_block: "honoured" (Koha: an offline replay bypasses the patron's blocks and its nb due
        date is used) or "ignored" (Evergreen, FOLIO, RERO: the normal rules apply).
    repeat_checkout: a checkout of an item already charged to the same patron is a "renewal"
        (Koha, Evergreen) or "refused".
    checked_in_ok: Koha's account option: a checkin of an item not on loan answers ok=1.
    """

    terminator: str = "\r"
    error_detection: str = "per-message"
    checksum: str = "bytes"
    encoding: str = "utf-8"
    no_block: str = "honoured"
    repeat_checkout: str = "renewal"
    checked_in_ok: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name, choices in (("terminator", TERMINATORS), ("error_detection", ERROR_DETECTION),
                              ("checksum", CHECKSUMS), ("encoding", ENCODINGS), ("no_block", NO_BLOCK),
                              ("repeat_checkout", REPEAT_CHECKOUT)):
            value = getattr(self, name)
            if value not in choices:
                problems.append(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")
        if not isinstance(self.checked_in_ok, bool):
            problems.append(f"checked_in_ok must be True or False, not {self.checked_in_ok!r}")
        if problems:
            raise ValueError("; ".join(problems))
        # Looked up once, not per request (a private attribute: not a field, not compared).
        object.__setattr__(self, "_dialect", _dialect(self.encoding, self.terminator, self.checksum))

    @property
    def dialect(self) -> Dialect:
        """The codec dialect this behaviour speaks (both for reading requests and writing replies)."""
        return self._dialect  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=64)
def _dialect(encoding: str, terminator: str, checksum: str) -> Dialect:
    nfd = encoding == "utf-8-nfd"
    # error_detection here is only the default; every reply says explicitly whether it has AY/AZ.
    return Dialect(encoding="utf-8" if nfd else encoding, terminator=terminator, error_detection=True,
                   checksum_mode=checksum, send_checksum=checksum, normal_form="NFD" if nfd else "NFC")


_FAULT_DEFAULTS: dict[str, Any] = {
    "split_writes": 0,
    "drop_after": None,
    "delay_s": 0.0,
    "silent": False,
    "down": False,
    "garbage": False,
    "corrupt_checksum": False,
    "hold_next": None,
}


class HeldRequest:
    """The `hold_next` fault: a request the ILS sits on (a lock wait, a busy database) until
    `release()`; then it is carried out, whether or not its client is still waiting, and
    `carried_out` is set."""

    def __init__(self) -> None:
        self.arrived = threading.Event()  # the held request has come in
        self.carried_out = threading.Event()
        self._go = threading.Event()

    def release(self) -> None:
        self._go.set()

    def __repr__(self) -> str:
        state = "carried out" if self.carried_out.is_set() else "held" if self.arrived.is_set() else "armed"
        return f"<HeldRequest {state}>"


class Faults:
    """Faults to inject while the server runs; flip them from any thread.

    split_writes: >0 writes each reply in pieces of this many bytes, one sendall each.
    drop_after: the next reply is cut after this many bytes and the connection closed (then
        cleared). The request itself was carried out: the client does not know the outcome.
    delay_s: each reply waits this long after the request was carried out (close() interrupts).
    silent: requests are read and dropped, never carried out, never answered (a hung ILS).
    down: new connections are accepted and closed at once; setting it closes open ones.
    garbage: the next reply is replaced by bytes that are not SIP2 (then cleared); the request
        was carried out, and a 97 gets the real reply.
    corrupt_checksum: the next reply that carries AZ gets a wrong one (then cleared); a 97 gets
        the good one.
    hold_next: a HeldRequest: the next request waits until it is released, and only then is
        carried out (then cleared); requests on other connections are answered meanwhile. A
        client that gives up waiting does not stop it: the ILS acts after the client has left.
    """

    split_writes: int
    drop_after: int | None
    delay_s: float
    silent: bool
    down: bool
    garbage: bool
    corrupt_checksum: bool
    hold_next: HeldRequest | None

    def __init__(self, **faults: Any) -> None:
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_on_down", None)
        for name, value in _FAULT_DEFAULTS.items():
            object.__setattr__(self, name, value)
        for name, value in faults.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FAULT_DEFAULTS:
            raise AttributeError(f"no fault called {name!r}; the faults are {', '.join(_FAULT_DEFAULTS)}")
        value = _checked(name, value)
        with self._lock:
            object.__setattr__(self, name, value)
            on_down = self._on_down if name == "down" and value else None
        if on_down is not None:
            on_down()

    def take(self, name: str) -> Any:
        """Read a one-shot fault (garbage, corrupt_checksum, drop_after, hold_next) and clear it,
        atomically."""
        with self._lock:
            value = getattr(self, name)
            if value:
                object.__setattr__(self, name, None if name in ("drop_after", "hold_next") else False)
            elif name == "drop_after" and value == 0:  # 0 is a fault too: close before any byte
                object.__setattr__(self, name, None)
            return value

    def reset(self) -> None:
        """Back to a healthy server."""
        for name, value in _FAULT_DEFAULTS.items():
            setattr(self, name, value)

    def _listen_down(self, callback: Callable[[], None] | None) -> None:
        object.__setattr__(self, "_on_down", callback)

    def __repr__(self) -> str:
        active = [f"{name}={getattr(self, name)!r}" for name, default in _FAULT_DEFAULTS.items()
                  if getattr(self, name) != default]
        return f"<Faults {' '.join(active) or 'none'}>"


def _checked(name: str, value: Any) -> Any:
    if name == "split_writes":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"split_writes is a byte count (0 = off), not {value!r}")
    elif name == "drop_after":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"drop_after is a byte count or None, not {value!r}")
    elif name == "delay_s":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"delay_s is a number of seconds, not {value!r}")
        value = float(value)
    elif name == "hold_next":
        if value is not None and not isinstance(value, HeldRequest):
            raise ValueError(f"hold_next is a HeldRequest or None, not {value!r}")
    elif not isinstance(value, bool):
        raise ValueError(f"{name} is True or False, not {value!r}")
    return value

