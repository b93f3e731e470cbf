"""One contract for every barcode scanner: the simulated one and each real adapter over its
faked lowest layer (camera frames, a loop:// serial port, recorded key events)."""

from __future__ import annotations

import queue

import numpy as np
import pytest

from drivers import registry
from drivers.base import CodeRead

MEMBER, BOOK = "11110100000001", "EM0000000042"


class SimRig:
    def __init__(self, monkeypatch):
        self.scanner = registry.create("scanner", "simulated")

    def present(self, text):
        self.scanner.show(text)


class CameraRig:
    def __init__(self, monkeypatch):
        cv2 = pytest.importorskip("cv2")
        pytest.importorskip("zxingcpp")
        pytest.importorskip("pyzbar.pyzbar")
        import barcode_images as bi

        self.bi = bi
        rig = self
        self.frame = np.dstack([bi.empty(9)] * 3)

        class FakeVideoCapture:
            def __init__(self, *args):
                pass

            def isOpened(self):  # noqa: N802
                return True

            def set(self, *args):
                return True

            def read(self):
                return True, rig.frame

            def release(self):
                pass

        monkeypatch.setattr(cv2, "VideoCapture", FakeVideoCapture)
        self.scanner = registry.create("scanner", "camera", reopen_s=0.01)

    def present(self, text):
        self.frame = np.dstack([self.bi.sample(text, "QRCODE" if text.isdigit() else "CODE128")] * 3)


class SerialRig:
    def __init__(self, monkeypatch):
        serial = pytest.importorskip("serial")
        self.port = serial.serial_for_url("loop://", timeout=0.05)
        self.scanner = registry.create("scanner", "serial", port="/dev/ttyACM0", reopen_s=0.01,
                                       open_port=lambda url, **kw: self.port)

    def present(self, text):
        self.port.write(text.encode("ascii") + b"\r\n")


class HidRig:
    def __init__(self, monkeypatch):
        pytest.importorskip("evdev")
        from fake_evdev import EvdevWorld, typed

        self.typed = typed
        self.world = EvdevWorld().install(monkeypatch)
        self.world.plugged.add("/dev/input/by-id/usb-scanner-event-kbd")
        self.scanner = registry.create("scanner", "hid", evdev_path="/dev/input/by-id/usb-scanner-event-kbd",
                                       reopen_s=0.01, poll_interval_s=0.02)

    def present(self, text):
        self.world.send(self.typed(text))


@pytest.fixture(params=[SimRig, CameraRig, SerialRig, HidRig], ids=["simulated", "camera", "serial", "hid"])
def rig(request, monkeypatch):
    r = request.param(monkeypatch)
    yield r
    r.scanner.close()


def test_a_code_shown_is_reported_with_its_text(rig):
    inbox: queue.Queue = queue.Queue()
    assert not rig.scanner.health().available  # not started
    rig.scanner.start(inbox.put)
    rig.present(MEMBER)
    first = inbox.get(timeout=20)
    assert isinstance(first, CodeRead) and first.text == MEMBER
    rig.present(BOOK)
    second = inbox.get(timeout=20)
    assert second.text == BOOK
    assert rig.scanner.health().available


def test_close_is_idempotent_and_leaves_it_unavailable(rig):
    rig.scanner.start(lambda event: None)
    rig.scanner.close()
    rig.scanner.close()
    assert not rig.scanner.health().available
    assert type(rig.scanner).__name__ in repr(rig.scanner)
