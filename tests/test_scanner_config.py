"""[devices.scanner]: the camera and serial options, checked, and handed to the drivers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kiosk.config import ConfigError, parse

ROOT = Path(__file__).resolve().parent.parent


def problems(text):
    with pytest.raises(ConfigError) as info:
        parse(text)
    return {p.key: p.message for p in info.value.problems}


def test_the_commented_scanner_options_of_the_shipped_config_are_valid():
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    block = text.split("[devices.scanner]", 1)[1].split("\n[", 1)[0]
    options = [m.group(1) for m in re.finditer(r"^# (\w+ = .*?)\s{2,}#", block, re.M)]
    assert {o.split(" = ")[0] for o in options} >= {"camera", "width", "height", "decoders", "symbologies", "roi",
                                                    "debounce_s", "port", "baudrate", "evdev_path"}
    options = [o for o in options if not o.startswith("evdev_path")]
    config = parse("[devices.scanner]\ndriver = \"camera\"\n" + "\n".join(options))
    assert config.devices.scanner.symbologies == ("CODE128", "CODE39", "EAN13", "QRCODE")


def test_camera_options_reach_the_driver_with_the_identifier_patterns():
    config = parse('[identifiers]\nitem_patterns = ["JG\\\\d{8}"]\n'
                   '[devices.scanner]\ndriver = "camera"\ncamera = "/dev/video2"\ndecoders = "zbar"\n'
                   'symbologies = ["QRCODE", "CODE39"]\nroi = "0.1,0.2,0.8,0.6"\ndebounce_s = 3\n')
    options = config.devices.scanner.adapter_options(config.identifiers)
    assert options == {"debounce_s": 3.0, "member_patterns": (r"\d{14}",), "item_patterns": (r"JG\d{8}",),
                       "accept_isbn": True, "camera": "/dev/video2", "width": 640, "height": 480,
                       "decoders": "zbar", "symbologies": ("QRCODE", "CODE39"), "roi": "0.1,0.2,0.8,0.6"}


def test_serial_options_reach_the_driver():
    config = parse('[devices.scanner]\ndriver = "serial"\nport = "/dev/serial/by-id/usb-x"\nbaudrate = 115200\n')
    options = config.devices.scanner.adapter_options(config.identifiers)
    assert options["port"] == "/dev/serial/by-id/usb-x" and options["baudrate"] == 115200
    assert "camera" not in options
    assert parse("").devices.scanner.adapter_options(parse("").identifiers) == {}


def test_hid_options_reach_the_driver_and_need_a_path():
    config = parse('[devices.scanner]\ndriver = "hid"\nevdev_path = "/dev/input/by-id/usb-x-event-kbd"\n')
    options = config.devices.scanner.adapter_options(config.identifiers)
    assert options["evdev_path"] == "/dev/input/by-id/usb-x-event-kbd" and "port" not in options
    assert "devices.scanner.evdev_path" in problems('[devices.scanner]\ndriver = "hid"\n')


def test_wrong_scanner_options_are_all_reported():
    found = problems('[devices.scanner]\ndriver = "webcam"\ndecoders = "zxing,quagga"\nsymbologies = ["PDF417"]\n'
                     'roi = "0.5,0.5,0.9,0.9"\ncamera = "video0"\nbaudrate = 1234\n')
    assert set(found) == {"devices.scanner.driver", "devices.scanner.decoders", "devices.scanner.symbologies",
                          "devices.scanner.roi", "devices.scanner.camera", "devices.scanner.baudrate"}
    assert "'camera'" in found["devices.scanner.driver"]
    assert "left,top,width,height" in found["devices.scanner.roi"]


def test_build_devices_makes_a_camera_scanner(monkeypatch):
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("zxingcpp")
    from kiosk.app import build_devices

    config = parse('[devices.scanner]\ndriver = "camera"\ncamera = "1"\nsymbologies = ["QRCODE"]\n')
    devices = build_devices(config)
    try:
        scanner = devices.scanner
        assert type(scanner).__name__ == "CameraScanner"
        assert scanner.source == "1" and scanner.pipeline.symbologies == ("QRCODE",)
        assert not scanner.health().available  # not started yet
    finally:
        for _, device in devices.all():
            device.close()
    assert cv2  # imported only because the camera was chosen
