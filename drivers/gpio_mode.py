"""One owner of RPi.GPIO's pin numbering mode in the whole process.

RPi.GPIO keeps one numbering mode per process (BCM or BOARD) and refuses a second, different
`setmode()`. The kiosk names every pin by its BCM number (`rst_bcm_pin`, relay pins), so every
adapter that uses RPi.GPIO calls `claim_bcm()` instead of `setmode()`: the first call sets BCM,
later calls check it, and a mode set to BOARD by some other library is reported as a fault a
technician can act on instead of pins silently meaning other pins. gpiozero sets BCM itself,
which agrees with this.

Pins are released one by one by their owner (`GPIO.cleanup(pin)`), never with a global
`GPIO.cleanup()`, which would release the other devices' pins too.
"""

from __future__ import annotations

import threading
from typing import Any

from drivers.base import DeviceError

_lock = threading.Lock()
_owners: list[str] = []  # who relies on BCM numbering, for the error message


def claim_bcm(gpio: Any, who: str) -> None:
    """Make sure `gpio` (the RPi.GPIO module) numbers pins by BCM; `who` names the device."""
    with _lock:
        mode = gpio.getmode()
        if mode is None:
            gpio.setwarnings(False)  # a pin left set up by a crashed run is taken over quietly
            gpio.setmode(gpio.BCM)
        elif mode != gpio.BCM:
            others = ", ".join(_owners) or "another library in this process"
            raise DeviceError(
                f"{who}: GPIO pins are numbered by board position (BOARD), set by {others}; "
                "the kiosk numbers pins by BCM: remove the other setmode(GPIO.BOARD)")
        if who not in _owners:
            _owners.append(who)


def release(who: str) -> None:
    """`who` no longer uses GPIO (its pins are already cleaned up by itself)."""
    with _lock:
        if who in _owners:
            _owners.remove(who)
