"""The camera adapter on a synthetic video stream: OpenCV's VideoCapture is replaced by a fake
that plays frames, fails, or is not there, and the adapter's own code does the rest."""

from __future__ import annotations

import queue

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("zxingcpp")
pytest.importorskip("pyzbar.pyzbar")

import barcode_images as bi  # noqa: E402
from drivers import registry  # noqa: E402
from drivers.base import CodeRead  # noqa: E402
from drivers.camera import CameraScanner  # noqa: E402


def bgr(gray: np.ndarray) -> np.ndarray:
    return np.dstack([gray, gray, gray])


class Stream:
    """What the fake cameras play: frames (None is a failed read), and whether a device is there."""

    def __init__(self, frames=(), *, present=True, loop=False):
        self.frames = list(frames)
        self.present = present
        self.loop = loop
        self.opened: list[tuple] = []
        self.released = 0
        self.settings: dict[int, float] = {}

    def capture_class(self):
        stream = self

        class FakeVideoCapture:
            def __init__(self, *args):
                stream.opened.append(args)
                self._open = stream.present
                self._i = 0

            def isOpened(self):  # noqa: N802 - OpenCV's name
                return self._open

            def set(self, prop, value):
                stream.settings[prop] = value
                return True

            def read(self):
                if not stream.present or not self._open:
                    return False, None
                if self._i >= len(stream.frames):
                    if not stream.loop or not stream.frames:
                        return False, None
                    self._i = 0
                frame = stream.frames[self._i]
                self._i += 1
                if isinstance(frame, Exception):
                    raise frame
                return (frame is not None), frame

            def release(self):
                stream.released += 1
                self._open = False

        return FakeVideoCapture


@pytest.fixture
def camera(monkeypatch):
    """Build a CameraScanner whose cv2.VideoCapture plays a Stream; time is a list to move."""
    made = []

    def build(stream: Stream, **options):
        monkeypatch.setattr(cv2, "VideoCapture", stream.capture_class())
        now = options.pop("now", [0.0])
        scanner = CameraScanner(clock=lambda: now[0], **options)
        made.append(scanner)
        return scanner

    yield build
    for scanner in made:
        scanner.close()


MEMBER = bi.sample("11110100000001", "QRCODE")
BOOK = bi.sample("EM0000000001", "CODE128", "glare")
EMPTY = bi.empty(3)


def test_a_phone_held_up_is_read_once_and_again_after_it_was_away(camera):
    now = [0.0]
    reads: list[CodeRead] = []
    stream = Stream([bgr(EMPTY)] * 2 + [bgr(MEMBER)] * 5 + [bgr(EMPTY)] * 2 + [bgr(MEMBER)] * 2)
    scanner = camera(stream, now=now, camera="/dev/video2", width=800, height=600)
    scanner._emit = reads.append
    for _ in range(len(stream.frames)):
        assert scanner.step()
        now[0] += 0.5  # two frames a second, to keep the arithmetic simple
    # Held 2.5 s: one read. Away 1 s and back: still the same visit (debounce 2 s)...
    assert reads == [CodeRead("11110100000001", "QRCODE")]
    now[0] += 5
    stream.frames = [bgr(EMPTY), bgr(MEMBER)]
    scanner._release()
    scanner.step(), scanner.step()
    # ...shown again after a while: read again.
    assert reads == [CodeRead("11110100000001", "QRCODE")] * 2
    assert stream.opened[0][0] == "/dev/video2"
    assert stream.settings[cv2.CAP_PROP_FRAME_WIDTH] == 800 and stream.settings[cv2.CAP_PROP_FRAME_HEIGHT] == 600
    assert scanner.health().available


def test_a_camera_index_opens_by_number(camera):
    stream = Stream([bgr(EMPTY)])
    camera(stream, camera="0").step()
    assert stream.opened[0][0] == 0


def test_the_thread_emits_reads_and_closes(camera):
    stream = Stream([bgr(EMPTY), bgr(BOOK), bgr(BOOK)], loop=True)
    scanner = camera(stream, reopen_s=0.01)
    inbox: queue.Queue = queue.Queue()
    scanner.start(inbox.put)
    assert inbox.get(timeout=10) == CodeRead("EM0000000001", "CODE128")
    scanner.close()
    scanner.close()  # idempotent
    assert stream.released >= 1
    assert not scanner.health().available
    assert inbox.empty()  # the same book in view the whole time: one read


def test_a_camera_that_does_not_open_says_why_and_is_found_once_plugged_in(camera):
    stream = Stream([bgr(BOOK)], present=False)
    scanner = camera(stream, camera="/dev/v4l/by-id/usb-cam-video-index0")
    assert not scanner.step()
    health = scanner.health()
    assert not health.available
    assert "/dev/v4l/by-id/usb-cam-video-index0" in health.reason and "did not open" in health.reason
    stream.present = True
    reads = []
    scanner._emit = reads.append
    assert scanner.step()
    assert scanner.health().available
    assert reads == [CodeRead("EM0000000001", "CODE128")]


def test_frames_that_stop_coming_mark_it_unavailable_and_it_reopens(camera):
    stream = Stream([bgr(EMPTY)] + [None] * 5 + [bgr(MEMBER)])
    scanner = camera(stream, failed_reads=5)
    assert scanner.step() and scanner.health().available
    for _ in range(4):
        assert scanner.step()  # a few dropped frames are not yet a dead camera
    assert scanner.health().available
    assert not scanner.step()
    assert "stopped giving frames" in scanner.health().reason
    assert stream.released == 1
    # Plugged back in: a fresh capture starts the stream again.
    stream.frames = [bgr(MEMBER)]
    reads = []
    scanner._emit = reads.append
    assert scanner.step()
    assert scanner.health().available and len(stream.opened) == 2
    assert reads == [CodeRead("11110100000001", "QRCODE")]
    assert scanner.counts["frame_errors"] == 5


def test_a_backend_that_raises_counts_as_failed_frames(camera):
    stream = Stream([RuntimeError("select() timeout")] * 3 + [bgr(EMPTY)])
    scanner = camera(stream, failed_reads=3)
    assert scanner.step() and scanner.step()
    assert not scanner.step()
    assert not scanner.health().available


def test_a_still_scene_costs_few_decodes(camera):
    stream = Stream([bgr(EMPTY)] * 60)
    scanner = camera(stream, idle_every=10)
    work = len(scanner.pipeline.jobs())
    for _ in range(60):
        scanner.step()
    # A new scene gets every piece of the pipeline's work once, one piece a frame; after that
    # only a cheap look every tenth frame.
    assert scanner.counts["frames"] == 60
    assert scanner.counts["decoded"] == work + (60 - work) // 10
    assert scanner.counts["skipped"] == 60 - scanner.counts["decoded"]


def test_a_hard_code_held_still_is_read_within_a_few_frames(camera):
    # A Code 39 label at a slant: neither decoder reads it as it is; the camera's rotated
    # passes do, each confirmed by a neighbouring angle.
    label = bi.sample("EM0000000025", "CODE39", "rotated")
    stream = Stream([bgr(label)] * 20)
    scanner = camera(stream)
    reads = []
    scanner._emit = reads.append
    frames = 0
    while not reads and frames < 20:
        scanner.step()
        frames += 1
    assert reads == [CodeRead("EM0000000025", "CODE39")]
    assert frames <= len(scanner.pipeline.jobs())


def test_misreads_and_foreign_codes_never_reach_the_kiosk(camera):
    frames = [bi.sample(t, s) for t, s in (("https://example.org/", "QRCODE"), ("11110100000001\x1b", "QRCODE"),
                                           ("8801234567893", "EAN13"), ("X" * 200, "QRCODE"))]
    stream = Stream([bgr(f) for f in frames])
    scanner = camera(stream)
    reads = []
    scanner._emit = reads.append
    for _ in frames:
        scanner.step()
    assert reads == []
    assert scanner.pipeline.rejected == 4


def test_region_of_interest_and_symbologies_from_the_options(camera):
    stream = Stream([bgr(BOOK), bgr(MEMBER)])
    scanner = camera(stream, symbologies=["QRCODE"], roi="0.1,0.1,0.8,0.8")
    reads = []
    scanner._emit = reads.append
    scanner.step(), scanner.step()
    assert reads == [CodeRead("11110100000001", "QRCODE")]


def test_the_registry_builds_it_by_name(monkeypatch):
    stream = Stream([bgr(MEMBER)])
    monkeypatch.setattr(cv2, "VideoCapture", stream.capture_class())
    scanner = registry.create("scanner", "camera", camera="1", decoders="zbar", debounce_s=1.0)
    try:
        reads = []
        scanner._emit = reads.append
        scanner.step()
        assert reads == [CodeRead("11110100000001", "QRCODE")]
        assert "CameraScanner 1" in repr(scanner)
    finally:
        scanner.close()
