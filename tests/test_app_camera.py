"""The whole kiosk with the camera as its scanner: the config picks the camera, OpenCV's
VideoCapture plays frames, and the patron sees the right screen."""

from __future__ import annotations

import threading

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("zxingcpp")
pytest.importorskip("pyzbar.pyzbar")

import barcode_images as bi  # noqa: E402
from kiosk.app import build  # noqa: E402
from kiosk.config import parse  # noqa: E402


class Scene:
    """What is in front of the camera; `looked` is set once the camera has decoded it."""

    def __init__(self, present: bool = True):
        self.frame = np.dstack([bi.empty(4)] * 3)
        self.present = present
        self.looked = threading.Event()
        self.lock = threading.Lock()
        self.reads = 0  # frames read since the last show()

    def show(self, gray: np.ndarray) -> None:
        with self.lock:
            self.looked.clear()
            self.frame = np.dstack([gray] * 3)
            self.reads = 0

    def capture_class(self):
        scene = self

        class FakeVideoCapture:
            def __init__(self, *args):
                pass

            def isOpened(self):  # noqa: N802
                return scene.present

            def set(self, *args):
                return True

            def read(self):
                with scene.lock:
                    frame = scene.frame
                    scene.reads += 1
                    if scene.reads >= 3:  # the frames before this one have been decoded
                        scene.looked.set()
                return True, frame.copy()

            def release(self):
                pass

        return FakeVideoCapture


@pytest.fixture
def camera_kiosk(tmp_path, clock, monkeypatch):
    scene = Scene()
    monkeypatch.setattr(cv2, "VideoCapture", scene.capture_class())
    config = parse('[devices.scanner]\ndriver = "camera"\ncamera = "0"\n')
    k = build(config, clock=clock, db_path=tmp_path / "kiosk.db")
    k.devices.scanner.reopen_s = 0.01
    k.start()
    yield k, scene
    k.close()


def show(k, scene, gray):
    """Hold a code up until the camera thread has read it (or looked long enough), then pump."""
    scene.show(gray)
    report = k._inbox.get(timeout=20)  # the camera thread's report
    k._inbox.put(report)
    k.pump()


def test_a_phone_barcode_in_front_of_the_camera_logs_the_member_in(camera_kiosk):
    k, scene = camera_kiosk
    show(k, scene, bi.sample("11110100000001", "QRCODE", "dark-mode"))
    assert k.state.screen == "pin"
    assert k.devices.scanner.health().available


def test_a_book_label_on_the_idle_screen_starts_its_return(camera_kiosk):
    k, scene = camera_kiosk
    show(k, scene, bi.sample("EM0000000025", "CODE128", "glare"))  # on loan to demo member 3
    # Every locker is full at the start: the return is refused with that reason.
    assert k.state.screen == "error"
    assert k.state.notice.reason.value == "no-empty-locker"


def test_a_code_that_is_no_identifier_changes_nothing(camera_kiosk):
    k, scene = camera_kiosk
    scene.show(bi.sample("https://example.org/", "QRCODE"))
    assert scene.looked.wait(timeout=20)
    k.pump()
    assert k.state.screen == "idle"
    assert k.devices.scanner.pipeline.rejected >= 1


def test_a_missing_camera_is_shown_to_staff(tmp_path, clock, monkeypatch):
    scene = Scene(present=False)
    monkeypatch.setattr(cv2, "VideoCapture", scene.capture_class())
    config = parse('[devices.scanner]\ndriver = "camera"\ncamera = "/dev/video0"\n')
    k = build(config, clock=clock, db_path=tmp_path / "kiosk.db")
    opened = threading.Event()
    original = k.devices.scanner._open_camera

    def watched():
        ok = original()
        opened.set()
        return ok

    k.devices.scanner._open_camera = watched
    k.start()
    try:
        assert opened.wait(timeout=20)
        notices = k.status().notices
        assert any(n.startswith("scanner: camera /dev/video0 did not open") for n in notices), notices
        # the card reader still logs members in
        k.devices.card_reader.present(bytes.fromhex("04A1B2C3"))
        k.pump()
        assert k.state.screen == "pin"
    finally:
        k.close()
