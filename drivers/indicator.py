"""Feedback a patron can see and hear: an LED (or LED ring) and a buzzer on GPIO, both optional.

The kiosk signals what happened (`read`: a card or barcode was taken; `unlock`: a locker opened;
`error`: something was refused) and the indicator plays a short pattern. Patterns run on the
injected clock from `poll()`, called from the kiosk's loop like the GPIO lock bank's: no thread,
no sleep. Never part of the safety of a loan: an indicator that fails is logged and ignored.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from drivers.base import Health

log = logging.getLogger("kiosk.indicator")

# (seconds on, seconds off), repeated: what each signal plays on the LED and on the buzzer.
PATTERNS: dict[str, dict[str, list[tuple[float, float]]]] = {
    "read": {"led": [(0.3, 0.0)], "buzzer": [(0.06, 0.0)]},
    "unlock": {"led": [(1.5, 0.0)], "buzzer": [(0.1, 0.08), (0.1, 0.0)]},
    "error": {"led": [(0.15, 0.1)] * 3, "buzzer": [(0.15, 0.1)] * 3},
}


class NoIndicator:
    """No LED, no buzzer (the default): remembers the signals, for the tests and the demo."""

    polls_itself = True

    def __init__(self, *, clock: Any = None) -> None:
        self.signals: list[str] = []

    def start(self, emit: Any) -> None:
        return None

    def signal(self, kind: str) -> None:
        self.signals.append(kind)

    def poll(self) -> None:
        return None

    def close(self) -> None:
        return None

    def health(self) -> Health:
        return Health(True)

    def __repr__(self) -> str:
        return f"<NoIndicator signals={len(self.signals)}>"


class GpioIndicator:
    """An LED and/or a buzzer on BCM pins (-1: not fitted), through gpiozero."""

    polls_itself = False

    def __init__(self, *, led_bcm_pin: int = -1, buzzer_bcm_pin: int = -1, active_high: bool = True,
                 pin_factory: Any = "rpigpio", clock: Any = None) -> None:
        from gpiozero import OutputDevice  # only when this adapter is chosen

        from drivers.gpio_locks import make_pin_factory

        self._clock = clock
        self.pin_factory = make_pin_factory(pin_factory)
        self._outputs: dict[str, Any] = {}
        self._plan: dict[str, list[tuple[float, bool]]] = {}
        self.signals: list[str] = []
        self._fault = ""
        try:
            for name, pin in (("led", led_bcm_pin), ("buzzer", buzzer_bcm_pin)):
                if pin != -1:
                    self._outputs[name] = OutputDevice(pin, active_high=active_high, initial_value=False,
                                                       pin_factory=self.pin_factory)
        except Exception:
            self.close()
            raise

    def _now(self) -> float:
        return self._clock.monotonic() if self._clock is not None else time.monotonic()

    def start(self, emit: Any) -> None:
        self._all_off()

    def signal(self, kind: str) -> None:
        """Play `kind` ("read", "unlock", "error"), replacing whatever was playing."""
        self.signals.append(kind)
        now = self._now()
        for name in self._outputs:
            plan, at = [], now
            for on_s, off_s in PATTERNS.get(kind, PATTERNS["read"])[name]:
                plan += [(at, True), (at + on_s, False)]
                at += on_s + off_s
            self._plan[name] = plan
        self.poll()

    def poll(self) -> None:
        now = self._now()
        for name, plan in self._plan.items():
            state = None
            while plan and plan[0][0] <= now + 1e-6:
                state = plan.pop(0)[1]
            if state is not None:
                self._set(name, state)

    def _set(self, name: str, on: bool) -> None:
        try:
            self._outputs[name].value = on
        except Exception as exc:  # noqa: BLE001 - feedback must never stop the kiosk
            if not self._fault:
                log.error("indicator %s failed: %s", name, exc)
            self._fault = f"{name}: {exc}"

    def is_on(self, name: str) -> bool:
        return bool(self._outputs[name].value)

    def _all_off(self) -> None:
        self._plan.clear()
        for name in self._outputs:
            self._set(name, False)

    def close(self) -> None:
        """Off, then release only these pins. Idempotent."""
        for device in self._outputs.values():
            try:
                device.off()
                device.close()
            except Exception:  # noqa: BLE001
                log.exception("an indicator pin did not close cleanly")
        self._outputs.clear()
        self._plan.clear()

    def health(self) -> Health:
        return Health(False, self._fault) if self._fault else Health(True)

    def __repr__(self) -> str:
        return f"<GpioIndicator outputs={sorted(self._outputs)} playing={sorted(k for k, v in self._plan.items() if v)}>"
