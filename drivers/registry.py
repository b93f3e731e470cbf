"""Device adapters by config name, as "module:Class" strings imported only when selected, so a
hardware library is imported only on the machine that has the hardware."""

from __future__ import annotations

import importlib
from typing import Any

ADAPTERS: dict[str, dict[str, str]] = {
    "card_reader": {
        "simulated": "drivers.simulated:SimCardReader",
        "mfrc522": "drivers.mfrc522_reader:Mfrc522Reader",
        "nfc": "drivers.nfc_reader:NfcReader",
        "keyboard_wedge": "drivers.keyboard_wedge:KeyboardWedgeReader",
    },
    "scanner": {
        "simulated": "drivers.simulated:SimScanner",
        "camera": "drivers.camera:CameraScanner",
        "serial": "drivers.serial_scanner:SerialScanner",
        "hid": "drivers.hid_scanner:HidScanner",
    },
    "locks": {
        "simulated": "drivers.simulated:SimLockBank",
        "gpio": "drivers.gpio_locks:GpioLockBank",
        "cu16": "drivers.cu16:Cu16LockBank",
    },
    "indicator": {"none": "drivers.indicator:NoIndicator", "gpio": "drivers.indicator:GpioIndicator"},
}


def create(kind: str, name: str, **options: Any) -> Any:
    """Import and build the adapter `name` for a device `kind`."""
    try:
        target = ADAPTERS[kind][name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS.get(kind, {})))
        raise ValueError(f"no {kind} driver named {name!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)
