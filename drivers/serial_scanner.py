"""A serial barcode scanner (RS-232, or USB in CDC/virtual COM mode) over pyserial.

The scanner decodes by itself and sends one line per code, ended by CR, LF or CR LF (its
factory "suffix" setting). This adapter splits the bytes into lines; what a line must be to
reach the kiosk, the debounce, the counting of junk and the reopening are `LineScanner`'s. A
line that is not ASCII is garbled (line noise, a wrong baud rate); one with no end after
`line_timeout_s` is a fragment (the scanner was unplugged mid-code, or has no suffix
configured); more than `MAX_LINE` bytes without an end is junk, dropped up to its end.

pyserial is imported only here; `port` is anything `serial.serial_for_url` takes: a device
("/dev/ttyACM0", a stable "/dev/serial/by-id/..." link) or, in the tests, "loop://".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.base import CodeRead
from drivers.line_scanner import DeviceGone, LineScanner, import_or_explain

MAX_LINE = 512  # bytes kept while waiting for a line's end


class SerialScanner(LineScanner):
    """Barcodes from a serial scanner. Options come from `[devices.scanner]` of the config."""

    def __init__(
        self,
        *,
        port: str = "/dev/ttyACM0",
        baudrate: int = 9600,
        read_timeout_s: float = 0.2,
        line_timeout_s: float = 1.0,
        open_port: Callable[..., Any] | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.port, self.baudrate = port, baudrate
        self.read_timeout_s, self.line_timeout_s = read_timeout_s, line_timeout_s
        self.bad_line_hint = f"check its baud rate ({baudrate}) and its CR/LF suffix"
        self._open_port = open_port or import_or_explain("serial", "pi").serial_for_url
        self._serial: Any = None
        self._buffer = bytearray()
        self._last_byte: float | None = None  # when the last byte came
        self._dropping = False  # inside an over-long line: drop up to its end

    def describe(self) -> str:
        return f"serial scanner {self.port}"

    def _open_hint(self) -> str:
        return "is it plugged in, and is the kiosk's user in the 'dialout' group?"

    def _open(self) -> None:
        self._serial = self._open_port(self.port, baudrate=self.baudrate, timeout=self.read_timeout_s)
        self._buffer.clear()
        self._dropping, self._last_byte = False, None

    def _release(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()

    def _read(self) -> list[str]:
        try:
            waiting = self._serial.in_waiting
            data = self._serial.read(min(max(1, waiting), 4096))
        except Exception as exc:  # noqa: BLE001 - SerialException, OSError: unplugged
            raise DeviceGone(str(exc)) from exc
        return self.lines(bytes(data))

    def feed(self, data: bytes) -> list[CodeRead]:
        """Take bytes as they came from the port; returns (and emits) the codes let through."""
        return [event for line in self.lines(data) if (event := self.accept_line(line)) is not None]

    def lines(self, data: bytes) -> list[str]:
        """The complete ASCII lines in the bytes so far (garbled lines and fragments counted)."""
        now = self._clock()
        out: list[str] = []
        # A line is cut off when its bytes stop coming for line_timeout_s (not when it is long:
        # 4,000 characters take 4 s at 9600 baud).
        stale = self._last_byte is not None and now - self._last_byte > self.line_timeout_s
        if stale and self._buffer:
            self._count("incomplete", "a code without its line end")
            self._buffer.clear()
        if stale:
            self._dropping = False
        if data:
            self._last_byte = now
        for byte in data:
            if byte in (0x0D, 0x0A):
                if not self._dropping and self._buffer:
                    out.extend(self._decode(bytes(self._buffer)))
                self._buffer.clear()
                self._dropping = False
                continue
            if self._dropping:
                continue
            self._buffer.append(byte)
            if len(self._buffer) > MAX_LINE:
                self.counts["lines"] += 1
                self._count("too_long", f"a line over {MAX_LINE} bytes")
                self._buffer.clear()
                self._dropping = True
        return out

    def _decode(self, raw: bytes) -> list[str]:
        try:
            return [raw.decode("ascii")]
        except UnicodeDecodeError:
            self.counts["lines"] += 1
            self._count("garbled", f"{len(raw)} bytes that are not ASCII (is the baud rate {self.baudrate} right?)")
            return []
