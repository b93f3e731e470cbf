"""A USB or CSI camera as a barcode scanner: OpenCV capture on a thread, the barcode pipeline.

OpenCV is imported here only, and only when the config selects `driver = "camera"`. The
thread grabs frames, turns them gray, and hands the region of interest to the pipeline
(`drivers/barcode_pipeline.py`) unless the scene has not changed since the last decoded frame
(the idle cost); accepted codes are debounced and emitted as `CodeRead`.

A camera that does not open, or stops giving frames (unplugged, a loose ribbon), marks the
scanner unavailable with the reason and is reopened every `reopen_s` until it comes back.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from drivers.barcode_pipeline import SYMBOLOGIES, BarcodePipeline, ChangeDetector, Debouncer, PipelineError
from drivers.base import CodeRead, DeviceError, Emit, Health
from kiosk.identifiers import IdentifierRules, mask

log = logging.getLogger("kiosk.camera")


def _noop(event: object) -> None:
    return None


def _cv2() -> Any:
    try:
        return importlib.import_module("cv2")
    except ImportError as exc:
        raise DeviceError("the camera driver needs OpenCV (pip install 'library-kiosk[camera]'): "
                          f"{exc}") from exc


def _cv2_if_installed() -> Any:
    try:
        return importlib.import_module("cv2")
    except ImportError:
        return None  # frames are turned gray with numpy instead


def open_capture(source: str, width: int, height: int) -> Any:
    """An OpenCV capture of `source`: a camera index ("0") or a device path ("/dev/video0",
    a stable /dev/v4l/by-id/... link), asking for width × height and the freshest frame."""
    cv2 = _cv2()
    target: int | str = int(source) if source.isdigit() else source
    if sys.platform.startswith("linux"):
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
    else:
        capture = cv2.VideoCapture(target)
    if capture.isOpened():
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a stale queued frame only adds latency
    return capture


def read_image(path: str) -> Any:
    """A picture file (PNG, JPEG, WebP...) as a grayscale array, or None when it is no image.
    Raises OSError when the file cannot be read."""
    import numpy as np

    cv2 = _cv2()
    data = np.fromfile(path, dtype=np.uint8)  # unlike cv2.imread, any file name works
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None


class CameraScanner:
    """Barcodes from a camera. Options come from `[devices.scanner]` of the config."""

    def __init__(
        self,
        *,
        camera: str = "0",
        width: int = 640,
        height: int = 480,
        decoders: str = "zxing,zbar",
        symbologies: Sequence[str] = SYMBOLOGIES,
        roi: str = "",
        debounce_s: float = 2.0,
        member_patterns: Sequence[str] = (r"\d{14}",),
        item_patterns: Sequence[str] = (r"EM\d{10}",),
        accept_isbn: bool = True,
        reopen_s: float = 2.0,
        failed_reads: int = 5,
        idle_every: int = 10,
        clock: Callable[[], float] | None = None,
        capture: Callable[[str, int, int], Any] | None = None,
    ) -> None:
        self.source = str(camera)
        self.width, self.height = width, height
        self.reopen_s = reopen_s
        self.failed_reads = failed_reads
        try:
            rules = IdentifierRules(member_patterns=tuple(member_patterns), item_patterns=tuple(item_patterns),
                                    accept_isbn=accept_isbn)
            self.pipeline = BarcodePipeline(decoders=decoders, symbologies=symbologies, roi=roi, rules=rules)
        except PipelineError:
            raise
        except ImportError as exc:  # zxing-cpp, pyzbar or libzbar missing
            raise DeviceError(f"the camera driver cannot load a decoder ({exc}); install "
                              "'library-kiosk[camera]' and Debian's libzbar0") from exc
        self._open = capture or open_capture
        self._cv2 = _cv2() if capture is None else _cv2_if_installed()  # for cvtColor
        self._changes = ChangeDetector(every=idle_every)
        self._debounce = Debouncer(debounce_s, clock or time.monotonic)
        self._emit: Emit = _noop
        self._capture: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._health = Health(False, "not started")
        self._failures = 0
        self._pass = 0
        self._jobs = self.pipeline.jobs()
        self._jobs_left = 0  # pieces of work still to try on the current scene
        self._in_view: list[str] = []  # what the last decoded frame showed
        self.counts = {"frames": 0, "decoded": 0, "skipped": 0, "reads": 0, "repeats": 0,
                       "frame_errors": 0, "opens": 0, "open_failures": 0}

    # -- lifecycle

    def start(self, emit: Emit) -> None:
        """Begin capturing on a thread; the camera is opened there, so a slow one never
        holds up the kiosk's start."""
        if self._thread is not None:
            return
        self._emit = emit
        self._stop.clear()
        self._health = Health(False, f"opening camera {self.source}")
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and release the camera. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if thread is None or not thread.is_alive():
            self._release()
        # else: a read still blocked in the driver; the thread releases the camera when it
        # returns, never under its feet.
        self._emit = _noop
        self._health = Health(False, "closed")

    def __enter__(self) -> CameraScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> Health:
        return self._health

    def __repr__(self) -> str:
        c = self.counts
        state = "ok" if self._health.available else self._health.reason
        return (f"<CameraScanner {self.source} {self.width}x{self.height} {state}; frames={c['frames']} "
                f"decoded={c['decoded']} reads={c['reads']} rejected={self.pipeline.rejected}>")

    # -- the capture loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                usable = self.step()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one frame
                log.exception("camera %s: a frame failed", self.source)
                self._mark(Health(False, f"camera {self.source} failed: {exc}; reopening"))
                self._release()
                usable = False
            if not usable:
                self._stop.wait(self.reopen_s)
        self._release()

    def step(self) -> bool:
        """Open the camera if needed, read one frame and decode it. False when the camera is
        not usable now (the loop waits `reopen_s` before the next try)."""
        if self._capture is None and not self._open_camera():
            return False
        try:
            ok, frame = self._capture.read()
        except Exception as exc:  # noqa: BLE001 - a backend error is a failed frame
            log.warning("camera %s: read failed: %s", self.source, exc)
            ok, frame = False, None
        if not ok or frame is None:
            self._failures += 1
            self.counts["frame_errors"] += 1
            if self._failures >= self.failed_reads:
                self._mark(Health(False, f"camera {self.source} stopped giving frames "
                                         f"({self._failures} failed reads): check its cable; reopening"))
                self._release()
                return False
            return True
        self._failures = 0
        self._mark(Health(True))
        self.process(frame)
        return True

    def process(self, frame: Any) -> list[CodeRead]:
        """Decode one BGR or gray frame; emit and return the codes that pass the debounce."""
        self.counts["frames"] += 1
        if getattr(frame, "ndim", 2) == 3 and self._cv2 is not None:
            frame = self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2GRAY)
        region = self.pipeline.region(frame)
        change = self._changes.check(region)
        if change == "changed":
            self._jobs_left = len(self._jobs)  # a new scene gets every piece of work once
        if change == "still" and not self._jobs_left:
            self.counts["skipped"] += 1
            self._debounce.still_in_view(self._in_view)
            return []
        self.counts["decoded"] += 1
        # The first decoder's plain pass on every decoded frame, plus, while the scene is new,
        # one more piece of the pipeline's work in turn (the other decoder, then each extra
        # pass): a hard code held still gets every kind of help within a few frames, and no
        # frame pays for all of it. A scene already looked at gets the cheap plain pass only,
        # every `idle_every` frames: that is the idle cost.
        first = self.pipeline.decoder_names[:1]
        jobs = [("plain", first)]
        if self._jobs_left and self._jobs:
            jobs.append(self._jobs[self._pass % len(self._jobs)])
            self._pass += 1
            self._jobs_left -= 1
        found = []
        for stage, decoders in jobs:
            found = self.pipeline.decode_job(region, stage, decoders)
            if found:
                break
        out = []
        reads = self.pipeline.accept(found)
        self._in_view = [read.text for read in reads]
        if reads:
            self._jobs_left = 0  # the scene is understood
        for read in reads:
            if self._debounce.admit(read.text):
                self.counts["reads"] += 1
                log.info("camera read %s %s (%s, %s pass)", read.symbology, mask(read.text), read.decoder, read.stage)
                event = CodeRead(read.text, read.symbology)
                out.append(event)
                self._emit(event)
            else:
                self.counts["repeats"] += 1
        return out

    # -- helpers

    def _open_camera(self) -> bool:
        try:
            capture = self._open(self.source, self.width, self.height)
            opened = capture is not None and capture.isOpened()
        except Exception as exc:  # noqa: BLE001 - a missing device is an error to report, not a crash
            capture, opened = None, False
            reason = f"camera {self.source} did not open: {exc}"
        else:
            reason = (f"camera {self.source} did not open: is it plugged in, and is the kiosk's user in "
                      "the 'video' group?")
        if not opened:
            self.counts["open_failures"] += 1
            if capture is not None:
                try:
                    capture.release()
                except Exception:  # noqa: BLE001
                    pass
            self._mark(Health(False, reason))
            return False
        self.counts["opens"] += 1
        self._capture, self._failures = capture, 0
        return True

    def _release(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            try:
                capture.release()
            except Exception:  # noqa: BLE001 - releasing a dead camera may fail too
                log.debug("camera %s: release failed", self.source, exc_info=True)

    def _mark(self, health: Health) -> None:
        if health != self._health:
            if health.available:
                log.info("camera %s: available", self.source)
            else:
                log.warning("camera %s: unavailable: %s", self.source, health.reason)
        self._health = health
