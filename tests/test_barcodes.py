"""The camera's barcode pipeline on real photographs and on pictures made here.

The photographs are the zxing-cpp project's samples kept beside the repository in
../shared/testdata/barcodes (see its README); the tests that need them skip when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zxingcpp")
pytest.importorskip("pyzbar.pyzbar")
cv2 = pytest.importorskip("cv2")

import barcode_images as bi  # noqa: E402
from drivers.barcode_pipeline import (EXTRA_PASSES, BarcodePipeline, ChangeDetector, Debouncer,  # noqa: E402
                                      PipelineError, ZbarDecoder, ZxingDecoder, accepted_kind, parse_roi)
from kiosk.identifiers import IdentifierRules, Kind  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "barcodes"

# Samples whose file does not say what the picture holds (see bench/barcodes.py).
EXPECTED_FIXES = {"ean13-2/23.webp": "9784872348880"}  # the digits printed under its bars
TWO_CODES = {"qrcode-2/16.webp"}  # a "double QR": an outer and an inner code, the file names the inner


def photographs() -> list[tuple[str, str, str | None, Path]]:
    """(set, key, expected text or None for a picture without a code, path)."""
    out = []
    for folder in sorted(p for p in PHOTOS.iterdir() if p.is_dir()):
        kind = folder.name.rsplit("-", 1)[0]
        for image in sorted(folder.iterdir()):
            if image.suffix not in (".png", ".webp", ".jpg"):
                continue
            key = f"{folder.name}/{image.name}"
            text_file = image.with_suffix(".txt")
            if kind == "falsepositives":
                out.append((kind, key, None, image))
            elif text_file.exists():  # a structured-append part has no text of its own
                expected = text_file.read_text(encoding="utf-8").replace("\r\n", "\n")
                out.append((kind, key, EXPECTED_FIXES.get(key, expected), image))
    return out


needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"no sample photographs in {PHOTOS}")


@pytest.fixture(scope="module")
def pipeline():
    return BarcodePipeline()


@needs_photos
def test_real_photographs_pipeline_reads_as_many_as_the_better_decoder_and_never_misreads(pipeline):
    zxing, zbar = ZxingDecoder(), ZbarDecoder()
    hits: dict[str, list[int]] = {}
    misreads = []
    false_positives = []
    empty_ones = 0
    for kind, key, expected, path in photographs():
        if expected is None:
            empty_ones += 1
            if empty_ones % 4:  # every fourth one keeps the test quick; the bench takes all
                continue
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None or min(gray.shape) < 8:  # the 1×1 and 1×100 pictures
            continue
        found = [c.text.replace("\r\n", "\n") for c in pipeline.decode(gray)]
        if expected is None:
            false_positives += [(key, t) for t in found]
            continue
        row = hits.setdefault(kind, [0, 0, 0, 0])
        row[0] += 1
        row[1] += expected in found
        row[2] += expected in [c.text.replace("\r\n", "\n") for c in zxing.decode(gray)]
        row[3] += expected in [c.text.replace("\r\n", "\n") for c in zbar.decode(gray)]
        if key not in TWO_CODES:
            misreads += [(key, t) for t in found if t != expected]
    assert set(hits) == {"code128", "code39", "ean13", "qrcode"}
    for kind, (total, ours, zx, zb) in hits.items():
        assert ours >= max(zx, zb), f"{kind}: pipeline {ours}, zxing-cpp {zx}, zbar {zb} of {total}"
        assert ours >= 0.85 * total, f"{kind}: only {ours} of {total}"
    assert misreads == []
    assert false_positives == []


def test_generated_codes_are_read_and_classified(pipeline):
    cases = [("11110100000001", "QRCODE", Kind.MEMBER), ("11110100000002", "CODE128", Kind.MEMBER),
             ("EM0000000001", "CODE128", Kind.ITEM), ("EM0000000025", "CODE39", Kind.ITEM),
             ("9788954602563", "EAN13", Kind.ISBN)]
    for text, symbology, kind in cases:
        reads = pipeline.read(bi.sample(text, symbology))
        assert [(r.text, r.symbology, r.kind) for r in reads] == [(text, symbology, kind)]


@pytest.mark.parametrize("how", [h for h in bi.DEGRADATIONS if h != "clean"])
def test_phone_screens_and_worn_labels_are_read(pipeline, how):
    """Glare, moiré, dark mode, slant, blur, low contrast, perspective, distance."""
    cases = [("11110100000001", "QRCODE"), ("EM0000000001", "CODE128"), ("9788954602563", "EAN13")]
    if how != "small":  # a Code 39 label a metre away is too fine for any decoder here
        cases.append(("EM0000000025", "CODE39"))
    for text, symbology in cases:
        found = [c.text for c in pipeline.decode(bi.sample(text, symbology, how, seed=7))]
        assert found == [text], f"{symbology} {how}: {found}"


@pytest.mark.parametrize("degrees", [20, 60, 80])
def test_a_label_held_at_any_slant_is_read(pipeline, degrees):
    rng = np.random.default_rng(degrees)
    frame = bi.place(bi.draw("EM0000000001", "CODE128"), rng)
    h, w = frame.shape
    turned = cv2.warpAffine(frame, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 0.8), (w, h), borderValue=128)
    assert [c.text for c in pipeline.decode(turned)] == ["EM0000000001"]


def test_light_bars_on_a_dark_screen_need_the_inverted_pass(pipeline):
    frame = bi.sample("EM0000000077", "CODE128", "dark-mode")
    assert ZxingDecoder().decode(frame) == [] and ZbarDecoder().decode(frame) == []
    [read] = pipeline.read(frame)
    assert (read.text, read.stage) == ("EM0000000077", "inverted")


def test_nothing_is_read_in_an_empty_scene(pipeline):
    for seed in range(3):
        assert pipeline.decode(bi.empty(seed)) == []


def test_a_code_that_is_no_identifier_never_reaches_the_patron():
    pipeline = BarcodePipeline()
    frames = {
        "a web address": bi.sample("https://example.org/a", "QRCODE"),
        "a product code": bi.sample("8801234567893", "EAN13"),  # EAN-13, but not an ISBN
        "a bell character": bi.sample("11110100000001\x07", "QRCODE"),
        "a line break": bi.sample("EM0000000001\r\n", "QRCODE"),
        "a member number too short": bi.sample("1111010000001", "CODE128"),
    }
    for what, frame in frames.items():
        assert pipeline.decode(frame), f"{what}: the code itself should decode"
        assert pipeline.read(frame) == [], what
    assert pipeline.rejected == len(frames)


def test_four_thousand_characters_are_rejected():
    pipeline = BarcodePipeline()
    import segno

    matrix = np.pad(np.array(segno.make("1" * 4000, error="l").matrix, dtype=np.uint8), 4)
    frame = np.where(np.kron(matrix, np.ones((2, 2), np.uint8)) == 1, 0, 255).astype(np.uint8)
    assert [len(c.text) for c in pipeline.decode(frame)] == [4000]
    assert pipeline.read(frame) == []
    assert accepted_kind("1" * 4000, IdentifierRules()) is None


def test_acceptance_follows_the_configured_patterns():
    rules = IdentifierRules(member_patterns=(r"\d{14}",), item_patterns=(r"EM\d{10}", r"JG\d{8}"))
    assert accepted_kind("11110100000001", rules) is Kind.MEMBER
    assert accepted_kind("JG12345678", rules) is Kind.ITEM
    assert accepted_kind("9788954602563", rules) is Kind.ISBN
    assert accepted_kind("9788954602564", rules) is None  # a wrong check digit
    assert accepted_kind(" 11110100000001", rules) is None  # a camera adds no spaces
    assert accepted_kind("11110100000001\x00", rules) is None
    assert accepted_kind("9788954602563", IdentifierRules(accept_isbn=False)) is None


def test_symbologies_and_decoders_are_configurable():
    only_qr = BarcodePipeline(symbologies=["QRCODE"])
    assert only_qr.decode(bi.sample("EM0000000001", "CODE128")) == []
    assert [c.text for c in only_qr.decode(bi.sample("EM0000000001", "QRCODE"))] == ["EM0000000001"]
    for decoders, used in (("zxing", "zxing"), ("zbar", "zbar"), ("zbar,zxing", "zbar")):
        p = BarcodePipeline(decoders=decoders)
        [c] = p.decode(bi.sample("EM0000000001", "CODE128"))
        assert c.decoder == used
    # one then the other: zbar reads what zxing-cpp cannot
    both = BarcodePipeline(decoders="zxing,zbar")
    frame = bi.sample("EM0000000025", "CODE39", "blur", seed=2)
    assert ZxingDecoder().decode(frame) == []
    assert [(c.text, c.decoder) for c in both.decode(frame)] == [("EM0000000025", "zbar")]
    with pytest.raises(PipelineError, match="decoders"):
        BarcodePipeline(decoders="zxing,quagga")
    with pytest.raises(PipelineError, match="symbologies"):
        BarcodePipeline(symbologies=["PDF417"])


def test_region_of_interest():
    frame = bi.empty(1)
    code = bi.draw("EM0000000042", "CODE128", module_px=2)
    frame[20:20 + code.shape[0], 10:10 + code.shape[1]] = code  # top left corner
    assert [c.text for c in BarcodePipeline(roi="0,0,0.6,0.5").decode(frame)] == ["EM0000000042"]
    assert BarcodePipeline(roi="0.3,0.3,0.7,0.7").decode(frame) == []
    assert parse_roi("") is None
    for bad in ("0,0,1", "0.5,0.5,0.6,0.1", "a,b,c,d", "0,0,0,1"):
        with pytest.raises(PipelineError, match="roi"):
            parse_roi(bad)


def test_a_colour_frame_is_read_like_a_gray_one(pipeline):
    gray = bi.sample("11110100000017", "QRCODE")
    assert [c.text for c in pipeline.decode(np.dstack([gray, gray, gray]))] == ["11110100000017"]


def test_two_different_readings_of_one_linear_code_are_both_dropped():
    from drivers.barcode_pipeline import Candidate, unambiguous

    a, b = Candidate("5030159003930", "EAN13", "zxing"), Candidate("7034759003930", "EAN13", "zxing")
    assert unambiguous([a, b]) == []
    assert unambiguous([a, a]) == [a, a]
    qr1, qr2 = Candidate("x", "QRCODE", "zxing"), Candidate("y", "QRCODE", "zxing")
    assert unambiguous([qr1, qr2, a]) == [qr1, qr2, a]


def test_debounce_lets_the_same_code_through_once_while_it_stays_in_view():
    now = [100.0]
    d = Debouncer(2.0, clock=lambda: now[0])
    assert d.admit("EM0000000001")
    for _ in range(10):  # held in front of the camera for 5 s
        now[0] += 0.5
        assert not d.admit("EM0000000001")
    assert d.admit("11110100000001")  # another code at once
    now[0] += 2.5  # taken away, shown again
    assert d.admit("EM0000000001")


def test_a_still_scene_is_decoded_only_now_and_then():
    detector = ChangeDetector(every=10)
    still = bi.empty(0)
    decided = [detector.changed(still) for _ in range(30)]
    assert decided.count(True) == 3  # the first frame, then every 10th
    moved = bi.sample("EM0000000001", "CODE128")
    assert detector.changed(moved)
    noisy = np.clip(moved.astype(int) + np.random.default_rng(1).normal(0, 2, moved.shape), 0, 255).astype(np.uint8)
    assert not detector.changed(noisy)  # sensor noise is not a change


def test_every_extra_pass_keeps_the_picture_usable():
    frame = bi.sample("EM0000000001", "CODE128")
    for name, make in EXTRA_PASSES:
        out = make(frame)
        assert out is None or (out.dtype == np.uint8 and out.ndim == 2 and out.size > 0), name


def test_a_zbar_reading_of_a_reworked_picture_needs_a_second_opinion():
    from drivers.barcode_pipeline import Candidate

    p = BarcodePipeline()
    region = bi.empty(5)
    pending: dict = {}
    # A misread EAN-13 with a valid check digit, as zbar gives them in thresholded pictures
    guess = Candidate("9780140017700", "EAN13", "zbar", "threshold")
    assert p._confirmed([guess], pending, region) == []
    again = Candidate("9780140017700", "EAN13", "zbar", "enlarged")
    assert p._confirmed([again], pending, region) == [again]  # two different passes agree
    assert p._confirmed([Candidate("9780140017700", "EAN13", "zbar", "threshold")], {}, region) == []
    # zxing-cpp, QR codes, and pictures only remapped in gray are believed at once
    for c in (Candidate("9780140017700", "EAN13", "zxing", "threshold"),
              Candidate("11110100000001", "QRCODE", "zbar", "threshold"),
              Candidate("EM0000000025", "CODE39", "zbar", "stretched")):
        assert p._confirmed([c], {}, region) == [c]
    # a rotated pass: the picture turned 5° further must give the same text
    assert p._confirmed([Candidate("EM0000000025", "CODE39", "zbar", "rotated-30")], {}, region) == []
    slanted = bi.sample("EM0000000025", "CODE39", "rotated")
    c = Candidate("EM0000000025", "CODE39", "zbar", "rotated-30")
    assert p._confirmed([c], {}, slanted) == [c]
