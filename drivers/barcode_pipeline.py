"""The camera's barcode pipeline: grayscale frames in, accepted codes out.

Pure image work on numpy arrays (no OpenCV: the capture adapter, `drivers/camera.py`, owns that),
so the camera thread, `kiosk scan` and the benchmark run exactly the same code. The stages:

1. region of interest: the part of the frame where a phone or a book is held;
2. change detection: a cheap 1/8-scale thumbnail says whether anything moved since the last
   decoded frame; a still scene is decoded only now and then (the idle cost);
3. decoding with zxing-cpp and/or pyzbar, restricted to the configured symbologies, one decoder
   after the other ("zxing,zbar": zbar runs only when zxing-cpp found nothing);
4. when the plain frame gives nothing, extra passes for what phones and labels do to a picture:
   light bars on a dark screen (inverted), glare and low contrast (stretched, locally
   thresholded), moiré and blur (averaged down), codes held at a slant (rotated), small codes
   far away (enlarged);
5. acceptance: a text is kept only when it is printable, not absurdly long, and matches a
   member, accession number (등록번호) or valid ISBN-13 pattern of the config, so a misread
   never reaches the patron;
6. debouncing: the same code held in view is reported once, then again only after it has been
   out of sight for `debounce_s`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kiosk.identifiers import IdentifierRules, Kind, classify

SYMBOLOGIES = ("CODE128", "CODE39", "EAN13", "QRCODE")
DECODERS = ("zxing", "zbar")
MAX_TEXT = 64  # the longest member, item or ISBN text worth looking at; anything longer is junk


class PipelineError(ValueError):
    """A pipeline setting is wrong (an unknown decoder or symbology, a bad region of interest)."""


@dataclass(frozen=True)
class Candidate:
    """A text a decoder found in a frame, before acceptance."""

    text: str
    symbology: str  # one of SYMBOLOGIES
    decoder: str  # "zxing" or "zbar"
    stage: str = "plain"  # which pass found it
    quality: int = 0  # zbar: how many scan lines agreed (linear codes); zxing-cpp: 0


def parse_decoders(value: str | Sequence[str]) -> tuple[str, ...]:
    """"zxing", "zbar", "zxing,zbar" (one, then the other when the first found nothing)."""
    names = tuple(n.strip().lower() for n in (value.split(",") if isinstance(value, str) else value) if n.strip())
    if not names or any(n not in DECODERS for n in names) or len(set(names)) != len(names):
        raise PipelineError(f"decoders: found {value!r}, expected \"zxing\", \"zbar\", \"zxing,zbar\" or \"zbar,zxing\"")
    return names


def parse_symbologies(value: Iterable[str]) -> tuple[str, ...]:
    names = tuple(str(n).strip().upper().replace("-", "").replace(" ", "") for n in value)
    names = tuple("QRCODE" if n == "QR" else n for n in names)
    unknown = [n for n in names if n not in SYMBOLOGIES]
    if not names or unknown:
        raise PipelineError(f"symbologies: found {list(value)!r}, expected some of {', '.join(SYMBOLOGIES)}")
    return names


def parse_roi(value: str | Sequence[float] | None) -> tuple[float, float, float, float] | None:
    """"left,top,width,height" as fractions of the frame ("0.2,0.1,0.6,0.8"); "" is the whole frame."""
    if value is None or value == "" or value == ():
        return None
    try:
        parts = tuple(float(p) for p in (value.split(",") if isinstance(value, str) else value))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise PipelineError(f"roi: found {value!r}, expected \"left,top,width,height\" as fractions, e.g. \"0.2,0.1,0.6,0.8\"")
    left, top, width, height = parts
    if not (0 <= left < 1 and 0 <= top < 1 and 0 < width and 0 < height
            and left + width <= 1.0001 and top + height <= 1.0001):
        raise PipelineError(f"roi: found {value!r}, expected a region inside the frame (fractions from 0 to 1)")
    return parts


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A uint8 grayscale view of a BGR, BGRA or grayscale frame (BT.601 weights, integer maths)."""
    if frame.ndim == 2:
        return frame if frame.dtype == np.uint8 else np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        b, g, r = (frame[:, :, i].astype(np.uint16) for i in range(3))
        return ((b * 29 + g * 150 + r * 77) >> 8).astype(np.uint8)
    raise PipelineError(f"not an image: an array of shape {frame.shape}")


def crop(gray: np.ndarray, roi: tuple[float, float, float, float] | None) -> np.ndarray:
    if roi is None:
        return gray
    h, w = gray.shape[:2]
    left, top, width, height = roi
    x0, y0 = int(left * w), int(top * h)
    x1, y1 = min(w, max(x0 + 1, int(round((left + width) * w)))), min(h, max(y0 + 1, int(round((top + height) * h))))
    return gray[y0:y1, x0:x1]


def _printable(text: str) -> bool:
    return all(ch.isprintable() for ch in text)


# -- decoders


class ZxingDecoder:
    """zxing-cpp, restricted to the configured formats; it tries rotation and inversion itself."""

    name = "zxing"

    def __init__(self, symbologies: Sequence[str] = SYMBOLOGIES) -> None:
        import zxingcpp

        f = zxingcpp.BarcodeFormat
        # Code 39 with its readings (Full ASCII, as zbar is set to read it too); QR Model 1 and
        # 2, not Micro QR or rMQR, which no phone or library shows.
        table = {"CODE128": (f.Code128,), "CODE39": (f.Code39,), "EAN13": (f.EAN13,),
                 "QRCODE": (f.QRCodeModel2, f.QRCodeModel1)}
        formats = tuple(x for s in symbologies for x in table[s])
        families = {"CODE128": f.Code128, "CODE39": f.Code39, "EAN13": f.EAN13, "QRCODE": f.QRCode}
        # A result's `symbology` is its family (Code 39 for Code 39 Extended); `format` the variant.
        self._names = {fmt: s for s in symbologies for fmt in (*table[s], families[s])}
        self._zx = zxingcpp
        self._formats = zxingcpp.BarcodeFormats(formats) if hasattr(zxingcpp, "BarcodeFormats") else formats

    def _symbology(self, result: Any) -> str | None:
        return self._names.get(getattr(result, "symbology", None)) or self._names.get(result.format)

    def decode(self, gray: np.ndarray) -> list[Candidate]:
        found = []
        for r in self._zx.read_barcodes(gray, formats=self._formats, text_mode=self._zx.TextMode.Plain):
            symbology = self._symbology(r)
            if symbology is not None and r.valid:
                found.append(Candidate(r.text, symbology, self.name))
        return found


class ZbarDecoder:
    """zbar through pyzbar's ctypes bindings, with one scanner kept for every frame.

    pyzbar's own `decode()` creates a scanner per call and raises on symbols whose orientation
    zbar leaves unknown, so the few calls are made here directly.
    """

    name = "zbar"

    def __init__(self, symbologies: Sequence[str] = SYMBOLOGIES, *, density: int = 1) -> None:
        from pyzbar import wrapper as w  # loads libzbar (Debian: libzbar0)

        self._w = w
        wanted = {getattr(w.ZBarSymbol, s) for s in symbologies}
        self._names = {int(getattr(w.ZBarSymbol, s)): s for s in symbologies}
        self._scanner = w.zbar_image_scanner_create()
        for symbol in w.ZBarSymbol:
            if symbol is not w.ZBarSymbol.NONE:
                w.zbar_image_scanner_set_config(self._scanner, symbol, w.ZBarConfig.CFG_ENABLE, int(symbol in wanted))
        if density != 1:  # scan every n-th row and column: n times faster, for the extra passes
            for config in (w.ZBarConfig.CFG_X_DENSITY, w.ZBarConfig.CFG_Y_DENSITY):
                w.zbar_image_scanner_set_config(self._scanner, w.ZBarSymbol.NONE, config, density)
        if w.ZBarSymbol.CODE39 in wanted:  # Full ASCII Code 39, as zxing-cpp reads it
            w.zbar_image_scanner_set_config(self._scanner, w.ZBarSymbol.CODE39, w.ZBarConfig.CFG_ASCII, 1)

    def decode(self, gray: np.ndarray) -> list[Candidate]:
        w = self._w
        from ctypes import c_void_p, cast, string_at

        pixels = np.ascontiguousarray(gray, dtype=np.uint8).tobytes()
        height, width = gray.shape[:2]
        image = w.zbar_image_create()
        found = []
        try:
            w.zbar_image_set_format(image, 0x30303859)  # fourcc 'Y800': 8-bit gray
            w.zbar_image_set_size(image, width, height)
            w.zbar_image_set_data(image, cast(pixels, c_void_p), len(pixels), None)
            if w.zbar_scan_image(self._scanner, image) > 0:
                symbol = w.zbar_image_first_symbol(image)
                while symbol:
                    data = string_at(w.zbar_symbol_get_data(symbol), w.zbar_symbol_get_data_length(symbol))
                    name = self._names.get(int(symbol.contents.type))
                    try:
                        text = data.decode("ascii")
                    except UnicodeDecodeError:
                        # zbar guesses the character set of QR bytes (Shift-JIS, Big5...) and
                        # often guesses wrong; the kiosk's codes are ASCII, so a non-ASCII
                        # text from zbar is more likely a misread than a code.
                        text = None
                    if name and text is not None:
                        found.append(Candidate(text, name, self.name, quality=w.zbar_symbol_get_quality(symbol)))
                    symbol = w.zbar_symbol_next(symbol)
        finally:
            w.zbar_image_destroy(image)
        return found

    def close(self) -> None:
        if self._scanner:
            self._w.zbar_image_scanner_destroy(self._scanner)
            self._scanner = None

    def __del__(self) -> None:  # the scanner is C memory
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def make_decoder(name: str, symbologies: Sequence[str], *, density: int = 1) -> ZxingDecoder | ZbarDecoder:
    return ZxingDecoder(symbologies) if name == "zxing" else ZbarDecoder(symbologies, density=density)


LINEAR = ("CODE128", "CODE39", "EAN13")


def unambiguous(found: list[Candidate]) -> list[Candidate]:
    """Drop linear codes of one symbology that disagree with each other in the same picture.

    Two different EAN-13 texts from one photo are nearly always one label read twice, once
    wrongly (upside down, through glare): a 1-in-10 check digit lets such misreads through.
    Which is right cannot be told, so neither is taken and the next decoder or pass decides.
    Several different QR codes are fine: they carry their own error correction.
    """
    texts: dict[str, set[str]] = {}
    for c in found:
        texts.setdefault(c.symbology, set()).add(c.text)
    return [c for c in found if c.symbology not in LINEAR or len(texts[c.symbology]) == 1]


# -- image passes for hard pictures


def invert(gray: np.ndarray) -> np.ndarray:
    return 255 - gray


def stretch(gray: np.ndarray) -> np.ndarray:
    """Stretch the 1st..99th percentile of gray levels over 0..255 (low contrast, a dim screen)."""
    hist = np.bincount(gray.ravel(), minlength=256).cumsum()
    lo = int(np.searchsorted(hist, hist[-1] * 0.01))
    hi = int(np.searchsorted(hist, hist[-1] * 0.99))
    if hi - lo < 2:
        return gray
    lut = np.clip((np.arange(256) - lo) * 255.0 / (hi - lo), 0, 255).astype(np.uint8)
    return lut[gray]


def local_threshold(gray: np.ndarray, window: int = 0, offset: int = 4) -> np.ndarray:
    """Black where a pixel is darker than the mean around it (glare, uneven light)."""
    h, w = gray.shape
    k = window or max(15, (min(h, w) // 16) | 1)
    r = k // 2
    padded = np.pad(gray.astype(np.int32), r + 1, mode="edge")
    integral = padded.cumsum(0).cumsum(1)
    s = (integral[k:k + h, k:k + w] - integral[0:h, k:k + w] - integral[k:k + h, 0:w] + integral[0:h, 0:w])
    mean = s // (k * k)
    return np.where(gray.astype(np.int32) < mean - offset, 0, 255).astype(np.uint8)


def shrink(gray: np.ndarray) -> np.ndarray:
    """Half size, each pixel the mean of four (smooths a screen's moiré and sensor noise)."""
    h, w = (gray.shape[0] // 2) * 2, (gray.shape[1] // 2) * 2
    g = gray[:h, :w].astype(np.uint16)
    return ((g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2] + 2) >> 2).astype(np.uint8)


def enlarge(gray: np.ndarray) -> np.ndarray:
    """Twice the size (a small code far from the camera)."""
    return np.repeat(np.repeat(gray, 2, axis=0), 2, axis=1)


def rotate(gray: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the centre onto a canvas big enough to keep the corners (nearest pixel)."""
    h, w = gray.shape
    a = math.radians(degrees)
    cos, sin = math.cos(a), math.sin(a)
    out_h = int(abs(h * cos) + abs(w * sin)) + 1
    out_w = int(abs(w * cos) + abs(h * sin)) + 1
    ys, xs = np.indices((out_h, out_w), dtype=np.float32)
    xs -= out_w / 2
    ys -= out_h / 2
    src_x = (xs * cos - ys * sin + w / 2).astype(np.int32)
    src_y = (xs * sin + ys * cos + h / 2).astype(np.int32)
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    out = np.full((out_h, out_w), int(np.median(gray[::4, ::4])), dtype=np.uint8)
    out[inside] = gray[src_y[inside], src_x[inside]]
    return out


def _limit(gray: np.ndarray, longest: int) -> np.ndarray:
    while max(gray.shape) > longest:
        gray = shrink(gray)
    return gray


# Extra passes, tried in this order when the plain frame gave nothing. Each takes the grayscale
# region and returns the image to decode, or None when the pass does not apply.
EXTRA_PASSES: tuple[tuple[str, Callable[[np.ndarray], np.ndarray | None]], ...] = (
    ("inverted", invert),  # light bars on a dark screen (zxing-cpp tries this itself; zbar not)
    ("stretched", stretch),
    ("shrunk", lambda g: shrink(g) if min(g.shape) >= 200 else None),
    ("threshold", lambda g: local_threshold(_limit(g, 1600))),
    # A linear code is read within about 7° of level (zxing-cpp also tries 90°), so turns 15°
    # apart cover every slant; each zbar reading of a turned picture is confirmed by the
    # picture turned 5° further (see BarcodePipeline._confirmed).
    *((f"rotated{a:+d}", lambda g, a=a: rotate(_limit(g, 1200), a)) for a in (30, -30, 45, -45, 15, -15, 75, -75)),
    ("enlarged", lambda g: enlarge(g) if max(g.shape) <= 400 else None),
)


# Passes that only remap gray levels or average neighbours: they draw no new edges, and zbar's
# readings of them are as trustworthy as of the frame itself.
_FAITHFUL = ("plain", "inverted", "stretched", "shrunk")
# Passes whose picture is small (or the plain one): zbar scans every line of them.
_EVERY_LINE = ("plain", "stretched", "shrunk", "enlarged")


# -- acceptance


def accepted_kind(text: str, rules: IdentifierRules) -> Kind | None:
    """The kind of identifier `text` is, or None when it must not reach the session.

    Unlike `classify` (which tolerates what a keyboard adds), a camera's text is taken as is:
    a control character or an absurd length means a misread or a hostile code, never an id.
    """
    if not text or len(text) > MAX_TEXT or not _printable(text) or text != text.strip():
        return None
    kind = classify(text, rules).kind
    return None if kind is Kind.UNKNOWN else kind


# -- frame skipping and debouncing


class ChangeDetector:
    """Says whether a frame differs from the last one decoded, from a 1/8-scale thumbnail.

    A still scene is still decoded every `every` frames, so a code that failed once (glare that
    moved a little) gets more tries, at a fraction of the cost.
    """

    def __init__(self, *, threshold: float = 3.0, every: int = 10, step: int = 8) -> None:
        self.threshold, self.every, self.step = threshold, max(1, every), step
        self._last: np.ndarray | None = None
        self._skipped = 0

    def check(self, gray: np.ndarray) -> str:
        """"changed", "recheck" (a still scene, due for another look) or "still" (skip it)."""
        thumb = gray[:: self.step, :: self.step].astype(np.int16)
        last, self._last = self._last, thumb
        if last is None or last.shape != thumb.shape or float(np.abs(thumb - last).mean()) >= self.threshold:
            self._skipped = 0
            return "changed"
        self._last = last  # compare against the frame last decoded, so slow drift still counts
        if self._skipped + 1 >= self.every:
            self._skipped = 0
            return "recheck"
        self._skipped += 1
        return "still"

    def changed(self, gray: np.ndarray) -> bool:
        """Whether to decode this frame at all."""
        return self.check(gray) != "still"


class Debouncer:
    """Lets a code through once while it stays in view; again after `window_s` out of sight."""

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self.window_s = window_s
        self._clock = clock or time.monotonic
        self._seen: dict[str, float] = {}

    def admit(self, text: str) -> bool:
        now = self._clock()
        self._seen = {t: at for t, at in self._seen.items() if now - at < self.window_s}
        fresh = text not in self._seen
        self._seen[text] = now
        return fresh

    def still_in_view(self, texts: Iterable[str]) -> None:
        """The codes are still there (a frame that was not decoded because nothing changed)."""
        now = self._clock()
        for text in texts:
            if text in self._seen:
                self._seen[text] = now


# -- the pipeline


@dataclass(frozen=True)
class Read:
    """An accepted code."""

    text: str
    symbology: str
    kind: Kind
    decoder: str
    stage: str


class BarcodePipeline:
    """Decode and accept codes in grayscale frames; see the module docstring for the stages."""

    def __init__(
        self,
        *,
        decoders: str | Sequence[str] = "zxing,zbar",
        symbologies: Iterable[str] = SYMBOLOGIES,
        roi: str | Sequence[float] | None = None,
        rules: IdentifierRules | None = None,
    ) -> None:
        self.decoder_names = parse_decoders(decoders)
        self.symbologies = parse_symbologies(symbologies)
        self.roi = parse_roi(roi)
        self.rules = rules or IdentifierRules()
        self.decoders = [make_decoder(n, self.symbologies) for n in self.decoder_names]
        # The extra passes give zbar pictures already cleaned up; every second scan line is
        # enough there, at half the cost (zbar dominates the time of a frame without a code).
        self.extra_decoders = [d if d.name == "zxing" else make_decoder(d.name, self.symbologies, density=2)
                               for d in self.decoders]
        self.rejected = 0  # decoded texts that matched no pattern (misreads, other codes)
        self._pending: dict[tuple[str, str], set[str]] = {}  # zbar readings awaiting a second pass

    def jobs(self) -> list[tuple[str, tuple[str, ...]]]:
        """The work of `decode` cut into (pass, decoders) pieces, after the first decoder's plain
        pass: a camera does one piece per frame, so no frame pays for all of them."""
        rest = tuple(self.decoder_names[1:])
        return ([("plain", rest)] if rest else []) + [(name, self.decoder_names) for name, _ in EXTRA_PASSES]

    def decode_job(self, region: np.ndarray, stage: str, decoders: Sequence[str]) -> list[Candidate]:
        """One piece of `jobs()` on a region that is already cropped and gray. A zbar reading
        of a linear code in an extra pass waits for another pass (of a later frame) to agree."""
        image = region if stage == "plain" else dict(EXTRA_PASSES)[stage](region)
        if image is None or region.size == 0:
            return []
        found = self._run(image, stage, decoders)
        if stage == "plain":
            return found
        if len(self._pending) > 32:  # old sightings of codes long gone
            self._pending.clear()
        return self._confirmed(found, self._pending, region)

    def _confirmed(self, found: list[Candidate], pending: dict[tuple[str, str], set[str]],
                   region: np.ndarray) -> list[Candidate]:
        """The candidates of an extra pass that may be believed.

        zbar misreads linear codes in pictures the extra passes have reworked (thresholded,
        rotated, enlarged; not merely inverted, stretched or averaged, see _FAITHFUL): on the
        sample photographs, dozens of EAN-13s with a valid check
        digit, some starting 978 like an ISBN. Such a reading is believed only when a second,
        different pass reads the same text, or, in a rotated pass, when the picture turned 5°
        further either way does (no misread of the samples survives that; 62 of 65 right
        readings do). zxing-cpp's readings and QR codes (which carry their own error
        correction) are believed at once.
        """
        out = []
        for c in found:
            if c.decoder != "zbar" or c.symbology not in LINEAR or c.stage in _FAITHFUL:
                out.append(c)
                continue
            stages = pending.setdefault((c.text, c.symbology), set())
            stages.add(c.stage)
            if len(stages) >= 2 or self._turned_agrees(region, c):
                out.append(c)
        if out:
            pending.clear()
        return out

    def _turned_agrees(self, region: np.ndarray, c: Candidate) -> bool:
        if not c.stage.startswith("rotated"):
            return False
        angle = int(c.stage[len("rotated"):])
        zbar = next(d for d in self.extra_decoders if d.name == "zbar")
        base = _limit(region, 1200)
        return any(c.text in {x.text for x in zbar.decode(rotate(base, angle + turn))} for turn in (-5, 5))

    def _run(self, image: np.ndarray, stage: str, names: Sequence[str] | None = None) -> list[Candidate]:
        for decoder in self.decoders if stage in _EVERY_LINE else self.extra_decoders:
            if names is not None and decoder.name not in names:
                continue
            found = unambiguous(decoder.decode(image))
            if found:
                return [dataclasses.replace(c, stage=stage) for c in found]
        return []

    def region(self, frame: np.ndarray) -> np.ndarray:
        """The grayscale region of interest of a frame."""
        return crop(to_gray(frame), self.roi)

    def decode(self, frame: np.ndarray, *, passes: Sequence[int] | None = None,
               cropped: bool = False) -> list[Candidate]:
        """Every code found in the region of interest, acceptable or not.

        `passes` picks which extra passes may follow an empty plain pass (indexes into
        EXTRA_PASSES); None tries them all, as `kiosk scan` does. `cropped`: the frame is
        already `region(frame)`.
        """
        region = frame if cropped else self.region(frame)
        if region.size == 0:
            return []
        found = self._run(region, "plain")
        order = range(len(EXTRA_PASSES)) if passes is None else passes
        pending: dict[tuple[str, str], set[str]] = {}
        for index in order:
            if found:
                break
            stage, make = EXTRA_PASSES[index]
            image = make(region)
            if image is not None:
                found = self._confirmed(self._run(image, stage), pending, region)
        unique: dict[tuple[str, str], Candidate] = {}
        for c in found:
            unique.setdefault((c.text, c.symbology), c)
        return list(unique.values())

    def accept(self, candidates: Iterable[Candidate]) -> list[Read]:
        reads = []
        for c in candidates:
            kind = accepted_kind(c.text, self.rules)
            if kind is None:
                self.rejected += 1
            else:
                reads.append(Read(c.text, c.symbology, kind, c.decoder, c.stage))
        return reads

    def read(self, frame: np.ndarray, *, passes: Sequence[int] | None = None, cropped: bool = False) -> list[Read]:
        """The accepted codes in a frame."""
        return self.accept(self.decode(frame, passes=passes, cropped=cropped))
