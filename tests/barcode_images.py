"""Barcode pictures made on the spot, for the pipeline tests and bench/barcodes.py.

The codes come from independent generators (segno for QR, python-barcode for the linear codes:
neither is a decoder the kiosk uses), drawn module by module, then put into a 640×480 scene and
spoilt the way phones and book labels spoil them in front of a kiosk's camera.
"""

from __future__ import annotations

import numpy as np

SCENE = (480, 640)  # rows, columns: a camera frame

# What the kiosk reads: 책이음 member numbers (phones show QR or Code 128), accession numbers
# (등록번호, Code 39 or Code 128 labels), ISBNs (EAN-13 on the cover).
SAMPLES = {
    "QRCODE": ["11110100000001", "11110100000017", "EM0000000042"],
    "CODE128": ["11110100000002", "EM0000000001", "EM0000000077"],
    "CODE39": ["EM0000000025", "EM0000000100", "EM0000000003"],
    "EAN13": ["9788954602563", "9791163030911", "9788937460449"],
}

DEGRADATIONS = ("clean", "blur", "perspective", "glare", "low-contrast", "rotated", "dark-mode",
                "small", "moire")


def isbn13(first12: str) -> str:
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(first12))
    return first12 + str((10 - total % 10) % 10)


def modules(text: str, symbology: str) -> np.ndarray:
    """The code as a 2-D array of modules: 1 is dark. Linear codes are one row."""
    if symbology == "QRCODE":
        import segno

        return np.array(segno.make(text, error="m", micro=False).matrix, dtype=np.uint8)
    import barcode

    if symbology == "CODE39":
        code = barcode.get_barcode_class("code39")(text, add_checksum=False)
    elif symbology == "CODE128":
        code = barcode.get_barcode_class("code128")(text)
    elif symbology == "EAN13":
        code = barcode.get_barcode_class("ean13")(text[:12])
        assert code.get_fullcode() == text, "the sample ISBN's check digit is wrong"
    else:
        raise ValueError(symbology)
    row = code.build()[0]
    return np.array([[1 if ch == "1" else 0 for ch in row]], dtype=np.uint8)


def draw(text: str, symbology: str, *, module_px: int = 3, quiet: int = 10, bar_height: int = 90) -> np.ndarray:
    """Black on white, with a quiet zone of `quiet` modules."""
    m = modules(text, symbology)
    if m.shape[0] == 1:
        m = np.repeat(m, max(1, bar_height // module_px), axis=0)
        quiet_rows = 2
    else:
        quiet_rows = quiet // 2
    m = np.pad(m, ((quiet_rows, quiet_rows), (quiet, quiet)))
    img = np.where(np.kron(m, np.ones((module_px, module_px), dtype=np.uint8)) == 1, 0, 255)
    return img.astype(np.uint8)


def background(rng: np.random.Generator, shape: tuple[int, int] = SCENE) -> np.ndarray:
    """A dull, uneven desk under a kiosk camera: a gradient, some blobs and sensor noise."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    base = 120 + 40 * (x / w) + 20 * np.sin(y / 37.0) * np.cos(x / 53.0)
    for _ in range(6):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(20, 90)
        base -= 30 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2.0 * r * r))
    return np.clip(base + rng.normal(0, 3, shape), 0, 255).astype(np.uint8)


def place(code: np.ndarray, rng: np.random.Generator, shape: tuple[int, int] = SCENE) -> np.ndarray:
    scene = background(rng, shape)
    h, w = code.shape
    if h > shape[0] or w > shape[1]:
        import cv2

        scale = min(shape[0] / h, shape[1] / w) * 0.95
        code = cv2.resize(code, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
        h, w = code.shape
    top, left = (shape[0] - h) // 2, (shape[1] - w) // 2
    scene[top:top + h, left:left + w] = code
    return scene


def degrade(img: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    """One of DEGRADATIONS applied to a grayscale scene."""
    import cv2

    h, w = img.shape
    if how == "clean":
        out = img
    elif how == "blur":
        out = cv2.GaussianBlur(img, (0, 0), 1.6)
    elif how == "perspective":
        d = 0.12
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[w * d, h * d * 0.5], [w * (1 - d * 0.3), 0], [w, h], [w * d * 0.4, h * (1 - d)]])
        out = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=128)
    elif how == "glare":
        y, x = np.mgrid[0:h, 0:w]
        cy, cx = h * 0.45, w * 0.38
        spot = 230 * np.exp(-((y - cy) ** 2 / (2 * (h * 0.12) ** 2) + (x - cx) ** 2 / (2 * (w * 0.07) ** 2)))
        out = np.clip(img.astype(np.float32) * 0.8 + spot, 0, 255).astype(np.uint8)
    elif how == "low-contrast":
        out = (100 + img.astype(np.float32) * (40 / 255.0)).astype(np.uint8)
    elif how == "rotated":
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 37, 0.8)
        out = cv2.warpAffine(img, m, (w, h), borderValue=128)
    elif how == "dark-mode":  # a phone in dark mode: light bars on a dark screen
        out = 255 - img
    elif how == "small":  # far from the camera: about a third of the size
        small = cv2.resize(img, (w // 3, h // 3), interpolation=cv2.INTER_AREA)
        out = background(rng, img.shape)
        out[h // 3:h // 3 + small.shape[0], w // 3:w // 3 + small.shape[1]] = small
    elif how == "moire":
        # A screen photographed: the picture on a grid of sub-pixels, resampled by the
        # camera at a slightly different pitch, so the grid beats into moiré bands.
        big = cv2.resize(img, (w * 3, h * 3), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        grid = np.ones((h * 3, w * 3), np.float32)
        grid[:, 2::3] = 0.45
        grid[2::3, :] *= 0.6
        screen = big * grid + 25
        m = cv2.getRotationMatrix2D((w * 1.5, h * 1.5), 2.0, 1.0)
        screen = cv2.warpAffine(screen, m, (w * 3, h * 3), borderValue=60)
        out = cv2.resize(screen, (w, h), interpolation=cv2.INTER_LINEAR)
        out = np.clip(out * 1.15 - 10, 0, 255).astype(np.uint8)
    else:
        raise ValueError(how)
    noise = rng.normal(0, 2.0, out.shape)
    return np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def sample(text: str, symbology: str, how: str = "clean", *, seed: int = 0) -> np.ndarray:
    """A 640×480 camera frame showing `text` as `symbology`, spoilt `how`."""
    rng = np.random.default_rng(seed)
    module_px = 6 if symbology == "QRCODE" else 3
    return degrade(place(draw(text, symbology, module_px=module_px), rng), how, rng)


def empty(seed: int = 0) -> np.ndarray:
    """A 640×480 frame with no code in it."""
    return background(np.random.default_rng(seed))


def generated() -> list[tuple[str, str, str, np.ndarray]]:
    """(symbology, expected text, degradation, frame) for every sample and degradation."""
    out = []
    for symbology, texts in SAMPLES.items():
        for i, text in enumerate(texts):
            for j, how in enumerate(DEGRADATIONS):
                out.append((symbology, text, how, sample(text, symbology, how, seed=i * 31 + j)))
    return out
