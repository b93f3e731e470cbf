"""Colours, sizes and fonts of the kiosk UI.

Fonts are discovered once (explicit path > Noto Sans CJK at Debian's paths > NanumGothic >
pygame's built-in font, which cannot draw Hangul). Rendered text surfaces are cached by
(font, size, colour, text): a frame is then mostly blits, which keeps the Pi's CPU cool. Nothing
is preloaded: a Font object opens its file lazily and glyphs are rasterised on first use, so the
first idle frame comes up fast.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass

import pygame

log = logging.getLogger(__name__)

Color = tuple[int, int, int]

# --------------------------------------------------------------------------- palette
# Calm and high contrast: a deep navy header, a warm off-white body, one warm accent for the
# primary action, red reserved for errors and warnings.

NAVY = (17, 38, 74)
NAVY_2 = (32, 58, 104)  # a lighter navy for header chips and pressed states
INK = (24, 32, 48)  # body text
INK_2 = (84, 94, 112)  # secondary text
INK_3 = (130, 138, 152)  # hints, placeholders
BG = (245, 243, 238)  # off-white body
SURFACE = (255, 255, 255)  # cards
LINE = (222, 218, 208)  # card borders, dividers
ACCENT = (200, 84, 20)  # warm orange; white bold text on it has 4.4:1 contrast
ACCENT_SOFT = (253, 236, 222)  # selected card fill
ACCENT_DARK = (160, 64, 12)
RED = (196, 30, 40)
RED_SOFT = (253, 232, 232)
GREEN = (22, 128, 92)  # success check only
GREEN_SOFT = (224, 244, 236)
AMBER = (240, 176, 48)  # staff device notices (not a patron error)
DISABLED = (226, 223, 216)
DISABLED_INK = (150, 150, 150)
WHITE = (255, 255, 255)
SCRIM = (10, 20, 40, 170)

# --------------------------------------------------------------------------- fonts

NOTO_REGULAR = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
NOTO_BOLD = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
_CANDIDATES: tuple[tuple[str, str], ...] = (
    (NOTO_REGULAR, NOTO_BOLD),
    ("/usr/share/fonts/opentype/noto/NotoSansCJKkr-Regular.otf", "/usr/share/fonts/opentype/noto/NotoSansCJKkr-Bold.otf"),
    ("/usr/share/fonts/truetype/nanum/NanumGothic.ttf", "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf"),
    ("/usr/share/fonts/truetype/nanum/NanumBarunGothic.ttf", "/usr/share/fonts/truetype/nanum/NanumBarunGothicBold.ttf"),
)


@dataclass(frozen=True)
class FontChoice:
    """The font files the UI will use. A path of None means pygame's built-in font."""

    regular: str | None
    bold: str | None
    korean: bool  # whether the regular font is believed to draw Hangul


def find_fonts(font_path: str | None = None, bold_font_path: str | None = None) -> FontChoice:
    """Pick the font files: explicit paths first, then Noto CJK, then NanumGothic, then built-in.

    Only checks that files exist (cheap); `korean_font_available()` also renders a glyph.
    """
    if font_path:
        if os.path.isfile(font_path):
            bold = bold_font_path if bold_font_path and os.path.isfile(bold_font_path) else font_path
            return FontChoice(font_path, bold, True)
        log.error("font file %s does not exist; looking for a Korean font instead", font_path)
    for regular, bold in _CANDIDATES:
        if os.path.isfile(regular):
            return FontChoice(regular, bold if os.path.isfile(bold) else regular, True)
    log.warning(
        "no Korean-capable font found (install fonts-noto-cjk): Korean text will not render"
    )
    return FontChoice(None, None, False)


def draws_hangul(font: pygame.font.Font) -> bool:
    """True when `font` has a real glyph for Hangul (not the notdef box it draws for U+0378)."""
    probe = font.render("한", True, (0, 0, 0))
    tofu = font.render("\u0378", True, (0, 0, 0))
    if probe.get_size() != tofu.get_size():
        return True
    return pygame.image.tobytes(probe, "RGBA") != pygame.image.tobytes(tofu, "RGBA")


def korean_font_available(font_path: str | None = None) -> bool:
    """Whether the UI would find a font that draws Korean (for `kiosk doctor`)."""
    choice = find_fonts(font_path)
    if choice.regular is None:
        return False
    if not pygame.font.get_init():
        pygame.font.init()
    try:
        return draws_hangul(pygame.font.Font(choice.regular, 24))
    except (OSError, pygame.error):
        return False


class Fonts:
    """Font objects by (bold, size), and an LRU cache of rendered text surfaces."""

    def __init__(self, choice: FontChoice, cache_size: int = 1500) -> None:
        self.choice = choice
        self._fonts: dict[tuple[bool, int], pygame.font.Font] = {}
        self._surfaces: OrderedDict[tuple, pygame.Surface] = OrderedDict()
        self._widths: dict[tuple, int] = {}
        self._cache_size = cache_size

    def font(self, size: int, bold: bool = False) -> pygame.font.Font:
        key = (bold, size)
        font = self._fonts.get(key)
        if font is None:
            path = self.choice.bold if bold else self.choice.regular
            try:
                font = pygame.font.Font(path, size)
            except (OSError, pygame.error) as exc:
                log.error("cannot open font %s (%s); using the built-in font", path, exc)
                font = pygame.font.Font(None, size)
            if bold and self.choice.bold is None:
                font.bold = True  # the built-in font has no bold file: let SDL embolden
            self._fonts[key] = font
        return font

    def render(self, text: str, size: int, color: Color, bold: bool = False) -> pygame.Surface:
        """The text as a surface with per-pixel alpha (cached)."""
        key = (text, size, color, bold)
        surface = self._surfaces.get(key)
        if surface is not None:
            self._surfaces.move_to_end(key)
            return surface
        surface = self.font(size, bold).render(text, True, color)
        self._surfaces[key] = surface
        if len(self._surfaces) > self._cache_size:
            self._surfaces.popitem(last=False)
        return surface

    def width(self, text: str, size: int, bold: bool = False) -> int:
        """Rendered width in pixels (cached; wrapping measures the same words every frame)."""
        key = (text, size, bold)
        w = self._widths.get(key)
        if w is None:
            if len(self._widths) > 20000:
                self._widths.clear()
            w = self.font(size, bold).size(text)[0]
            self._widths[key] = w
        return w

    def ascent(self, size: int, bold: bool = False) -> int:
        return self.font(size, bold).get_ascent()


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Metrics:
    """Sizes designed for 1280x800, scaled to the real window (1024x600 gives 0.75)."""

    width: int
    height: int

    @property
    def s(self) -> float:
        return min(self.width / 1280, self.height / 800)

    def px(self, value: float) -> int:
        """A design-space length (at 1280x800) in real pixels."""
        return max(1, round(value * self.s))

    def font(self, value: float) -> int:
        # Text below ~13 px is unreadable at arm's length; keep a floor on small screens.
        return max(13, round(value * self.s))

    @property
    def touch(self) -> int:
        """Minimum height of a touch target: 88 px at 1280x800, never under 64 px."""
        return max(64, self.px(88))

    @property
    def header(self) -> int:
        return max(52, self.px(72))

    @property
    def margin(self) -> int:
        return self.px(40)

    @property
    def radius(self) -> int:
        return self.px(18)
