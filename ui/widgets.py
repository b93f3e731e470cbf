"""Drawing primitives and widgets, and the recorder behind `Frame.texts` / `Frame.buttons`.

Every screen draws through a `Canvas`: it renders (cached) text, wraps and ellipsises it so
Korean never overflows its box, draws antialiased rounded shapes, and records each string drawn
and each enabled button's rect. Hit-testing and the scenario runner use that record, so what is
tested is exactly what was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pygame

from ui import theme
from ui.theme import Color, Fonts, Metrics

ELLIPSIS = "…"

# --------------------------------------------------------------------------- antialiased shapes


@lru_cache(maxsize=256)
def _corner(radius: int, color: Color) -> pygame.Surface:
    """A top-left quarter disc, drawn 4x larger and scaled down (pygame.draw does not antialias)."""
    big = pygame.Surface((radius * 4, radius * 4), pygame.SRCALPHA)
    # transparent pixels carry the same RGB, or smoothscale would blend in a dark fringe
    big.fill((*color, 0))
    pygame.draw.circle(big, color, (radius * 4, radius * 4), radius * 4)
    return pygame.transform.smoothscale(big, (radius, radius))


@lru_cache(maxsize=1024)
def _corners(radius: int, color: Color) -> tuple[pygame.Surface, ...]:
    tl = _corner(radius, color)
    return (tl, pygame.transform.flip(tl, True, False), pygame.transform.flip(tl, False, True),
            pygame.transform.flip(tl, True, True))


def rrect(surface: pygame.Surface, color: Color, rect: pygame.Rect, radius: int) -> None:
    """Fill a rounded rectangle with antialiased corners."""
    rect = pygame.Rect(rect)
    r = max(0, min(radius, rect.w // 2, rect.h // 2))
    if r < 2:
        surface.fill(color, rect)
        return
    surface.fill(color, (rect.x + r, rect.y, rect.w - 2 * r, rect.h))
    surface.fill(color, (rect.x, rect.y + r, r, rect.h - 2 * r))
    surface.fill(color, (rect.right - r, rect.y + r, r, rect.h - 2 * r))
    tl, tr, bl, br = _corners(r, color)
    surface.blit(tl, (rect.x, rect.y))
    surface.blit(tr, (rect.right - r, rect.y))
    surface.blit(bl, (rect.x, rect.bottom - r))
    surface.blit(br, (rect.right - r, rect.bottom - r))


def rrect_outlined(surface: pygame.Surface, fill: Color, border: Color, rect: pygame.Rect,
                   radius: int, width: int) -> None:
    """A rounded rectangle with a border of `width` pixels (outer shape, then inner fill)."""
    rect = pygame.Rect(rect)
    rrect(surface, border, rect, radius)
    rrect(surface, fill, rect.inflate(-2 * width, -2 * width), max(0, radius - width))


@lru_cache(maxsize=256)
def _shadow(w: int, h: int, radius: int, blur: int) -> pygame.Surface:
    # Blurred at a quarter of the size and scaled up: 16x fewer pixels to blur, and a shadow has
    # no detail to lose. Keeps the first frame fast on a Pi.
    k = 4
    full = (w + 4 * blur, h + 4 * blur)
    small = pygame.Surface((full[0] // k + 1, full[1] // k + 1), pygame.SRCALPHA)
    small.fill((20, 30, 50, 0))
    pygame.draw.rect(small, (20, 30, 50, 46), (2 * blur // k, 2 * blur // k, w // k, h // k),
                     border_radius=max(1, radius // k))
    small = pygame.transform.gaussian_blur(small, max(1, blur // k))
    return pygame.transform.smoothscale(small, full)


def drop_shadow(surface: pygame.Surface, rect: pygame.Rect, radius: int, blur: int, offset: int) -> None:
    """A soft drop shadow under `rect` (blurred once per size, then cached)."""
    shade = _shadow(rect.w, rect.h, radius, max(1, blur))
    surface.blit(shade, (rect.x - 2 * blur, rect.y - 2 * blur + offset))


def disc(surface: pygame.Surface, color: Color, center: tuple[int, int], radius: int) -> None:
    """A filled antialiased circle."""
    rrect(surface, color, pygame.Rect(center[0] - radius, center[1] - radius, 2 * radius, 2 * radius), radius)


# --------------------------------------------------------------------------- text layout


_WRAPS: dict[tuple, list[str]] = {}


def wrap(fonts: Fonts, text: str, width: int, size: int, bold: bool = False,
         max_lines: int = 0) -> list[str]:
    """Break `text` into lines no wider than `width` (cached: screens redraw every frame).

    Korean breaks between words (어절) like English; a word wider than the line (a long title
    without spaces) is broken between characters. With `max_lines`, the last line is ellipsised.
    """
    key = (id(fonts), text, width, size, bold, max_lines)
    lines = _WRAPS.get(key)
    if lines is None:
        if len(_WRAPS) > 4000:
            _WRAPS.clear()
        lines = _WRAPS[key] = _wrap(fonts, text, width, size, bold, max_lines)
    return lines


def balanced(fonts: Fonts, text: str, width: int, size: int, bold: bool = False,
             max_lines: int = 0) -> list[str]:
    """Like `wrap`, but lines of similar length: a heading never leaves one word alone below."""
    lines = wrap(fonts, text, width, size, bold, max_lines)
    if len(lines) < 2 or (max_lines and len(lines) >= max_lines and lines[-1].endswith(ELLIPSIS)):
        return lines
    lo, hi = width // 2, width  # the narrowest width that still needs no more lines
    while hi - lo > 8:
        mid = (lo + hi) // 2
        if len(wrap(fonts, text, mid, size, bold)) <= len(lines):
            hi = mid
        else:
            lo = mid
    return wrap(fonts, text, hi, size, bold, max_lines)


def _wrap(fonts: Fonts, text: str, width: int, size: int, bold: bool, max_lines: int) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            candidate = f"{line} {word}" if line else word
            if fonts.width(candidate, size, bold) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            # the word alone: break it by characters when it is too wide on its own
            for ch in word:
                if fonts.width(line + ch, size, bold) > width and line:
                    lines.append(line)
                    line = ch
                else:
                    line += ch
        lines.append(line)
    if max_lines and len(lines) > max_lines:
        kept = lines[:max_lines]
        kept[-1] = ellipsize(fonts, kept[-1] + " " + " ".join(lines[max_lines:]), width, size, bold)
        return kept
    return lines


def ellipsize(fonts: Fonts, text: str, width: int, size: int, bold: bool = False) -> str:
    """`text`, cut and ended with "…" if it is wider than `width`."""
    if fonts.width(text, size, bold) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if fonts.width(text[:mid].rstrip() + ELLIPSIS, size, bold) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ELLIPSIS


# --------------------------------------------------------------------------- the canvas


@dataclass(frozen=True)
class Style:
    """How a button looks in one of its kinds."""

    fill: Color
    ink: Color
    border: Color | None = None


STYLES = {
    "primary": Style(theme.ACCENT, theme.WHITE),
    "normal": Style(theme.SURFACE, theme.NAVY, theme.LINE),
    "navy": Style(theme.NAVY, theme.WHITE),
    "danger": Style(theme.RED, theme.WHITE),
    "ghost": Style(theme.NAVY_2, theme.WHITE),  # on the navy header
    "disabled": Style(theme.DISABLED, theme.DISABLED_INK),
    "selected": Style(theme.ACCENT_SOFT, theme.INK, theme.ACCENT),
}


class Canvas:
    """A surface to draw one frame on, recording texts and enabled buttons as it goes."""

    def __init__(self, surface: pygame.Surface, fonts: Fonts) -> None:
        self.surface = surface
        self.fonts = fonts
        self.m = Metrics(surface.get_width(), surface.get_height())
        self.texts: list[str] = []
        self.buttons: dict[str, pygame.Rect] = {}
        self.pages = 1  # set by a paged screen: how many pages its list needs
        self.status = None  # the app's Status for this frame (header facts)

    @property
    def rect(self) -> pygame.Rect:
        return self.surface.get_rect()

    # ---------------------------------------------------------------- text

    def line_height(self, size: int) -> int:
        # Noto CJK's own line gap is ~1.45 em; 1.32 em reads better in short UI paragraphs.
        return round(size * 1.32)

    def text(self, text: str, pos: tuple[int, int], size: int, color: Color = theme.INK, *,
             bold: bool = False, anchor: str = "topleft", max_width: int = 0,
             record: bool = True) -> pygame.Rect:
        """One line of text, ellipsised to `max_width`. `anchor` is a pygame.Rect attribute."""
        if record:
            self.texts.append(text)
        shown = ellipsize(self.fonts, text, max_width, size, bold) if max_width else text
        surf = self.fonts.render(shown, size, color, bold)
        rect = surf.get_rect(**{anchor: pos})
        self.surface.blit(surf, rect)
        return rect

    def paragraph(self, text: str, box: pygame.Rect, size: int, color: Color = theme.INK, *,
                  bold: bool = False, align: str = "left", valign: str = "top",
                  max_lines: int = 0, line_height: int = 0, balance: bool = False) -> pygame.Rect:
        """Wrapped text inside `box` (never wider; at most as many lines as fit or `max_lines`).

        Returns the rect the lines actually cover.
        """
        self.texts.append(text)
        lh = line_height or self.line_height(size)
        fit = max(1, box.h // lh) if box.h else 0
        limit = min(x for x in (max_lines, fit) if x) if (max_lines or fit) else 0
        lines = (balanced if balance else wrap)(self.fonts, text, box.w, size, bold, limit)
        total = lh * len(lines)
        y = box.y
        if valign == "center":
            y = box.centery - total // 2
        elif valign == "bottom":
            y = box.bottom - total
        covered = pygame.Rect(box.x, y, 0, total)
        for line in lines:
            surf = self.fonts.render(line, size, color, bold)
            # centre each glyph run in its line box: Noto's surface is taller than the line
            r = surf.get_rect(centery=y + lh // 2)
            if align == "center":
                r.centerx = box.centerx
            elif align == "right":
                r.right = box.right
            else:
                r.x = box.x
            self.surface.blit(surf, r)
            covered.union_ip(pygame.Rect(r.x, y, r.w, lh))
            y += lh
        return covered

    def measure(self, text: str, size: int, bold: bool = False) -> int:
        return self.fonts.width(text, size, bold)

    # ---------------------------------------------------------------- shapes

    def fill(self, color: Color, rect: pygame.Rect | None = None) -> None:
        self.surface.fill(color, rect)

    def box(self, rect: pygame.Rect, fill: Color = theme.SURFACE, *, radius: int | None = None,
            border: Color | None = theme.LINE, border_w: int = 0, shadow: bool = True) -> None:
        """A card: rounded, optionally outlined, with a soft drop shadow."""
        r = self.m.radius if radius is None else radius
        if shadow:
            drop_shadow(self.surface, pygame.Rect(rect), r, self.m.px(7), self.m.px(4))
        if border is not None:
            rrect_outlined(self.surface, fill, border, rect, r, border_w or max(1, self.m.px(1.5)))
        else:
            rrect(self.surface, fill, rect, r)

    def scrim(self, rect: pygame.Rect, rgba: tuple[int, int, int, int] = theme.SCRIM) -> None:
        veil = pygame.Surface(rect.size, pygame.SRCALPHA)
        veil.fill(rgba)
        self.surface.blit(veil, rect.topleft)

    # ---------------------------------------------------------------- buttons

    def button(self, bid: str, rect: pygame.Rect, label: str, *, kind: str = "normal",
               enabled: bool = True, size: int = 0, sub: str = "", icon: str = "",
               icon_size: int = 0, radius: int | None = None, layout: str = "row") -> pygame.Rect:
        """A button; recorded in `buttons` only when enabled.

        kind: primary, normal, navy, danger, ghost, selected. layout "row" puts the icon left of
        the label; "tile" stacks icon, label and sub-label (menu tiles).
        """
        from ui import (
            icons,  # icons draws with widgets' shapes; import here to avoid a cycle
        )

        style = STYLES["disabled" if not enabled else kind]
        r = self.m.radius if radius is None else radius
        shadow = enabled and kind not in ("ghost",)
        if style.border is not None:
            bw = self.m.px(3) if kind == "selected" else max(1, self.m.px(2))
            self.box(rect, style.fill, radius=r, border=style.border, border_w=bw, shadow=shadow)
        else:
            self.box(rect, style.fill, radius=r, border=None, shadow=shadow)
        size = size or self.m.font(28)
        sub_size = max(13, round(size * 0.6))
        if layout == "tile":
            isz = icon_size or self.m.px(72)
            lh = self.line_height(size)
            block = isz + self.m.px(18) + lh + (self.line_height(sub_size) + self.m.px(4) if sub else 0)
            y = rect.centery - block // 2
            if icon:
                icons.draw(self.surface, icon, pygame.Rect(rect.centerx - isz // 2, y, isz, isz), style.ink)
            y += isz + self.m.px(18)
            self.text(label, (rect.centerx, y + lh // 2), size, style.ink, bold=True, anchor="center",
                      max_width=rect.w - self.m.px(24))
            if sub:
                y += lh + self.m.px(4)
                sub_color = theme.INK_2 if kind == "normal" and enabled else style.ink
                self.text(sub, (rect.centerx, y + self.line_height(sub_size) // 2), sub_size,
                          sub_color, anchor="center", max_width=rect.w - self.m.px(24))
        else:
            isz = icon_size or round(size * 1.15)
            gap = self.m.px(12) if icon else 0
            avail = rect.w - self.m.px(28) - (isz + gap if icon else 0)
            shown = ellipsize(self.fonts, label, avail, size, True)
            w = self.measure(shown, size, True) + (isz + gap if icon else 0)
            x = rect.centerx - w // 2
            if icon:
                icons.draw(self.surface, icon, pygame.Rect(x, rect.centery - isz // 2, isz, isz), style.ink)
                x += isz + gap
            self.texts.append(label)
            surf = self.fonts.render(shown, size, style.ink, True)
            self.surface.blit(surf, surf.get_rect(midleft=(x, rect.centery)))
            if sub:
                self.text(sub, (rect.centerx, rect.bottom - self.m.px(10)), sub_size, style.ink,
                          anchor="midbottom", max_width=rect.w - self.m.px(20))
        if enabled:
            self.buttons[bid] = pygame.Rect(rect)
        return rect

    def drop_buttons(self, keep: tuple[str, ...]) -> None:
        """Make every button except `keep` untappable (a modal covers them)."""
        self.buttons = {k: v for k, v in self.buttons.items() if k in keep}

    def chip(self, text: str, pos: tuple[int, int], size: int, fill: Color, ink: Color, *,
             anchor: str = "topleft", bold: bool = True, icon: str = "") -> pygame.Rect:
        """A small pill with text (badges: offline, overdue, counts)."""
        from ui import icons

        pad_x, pad_y = round(size * 0.7), round(size * 0.28)
        isz = round(size * 1.1) if icon else 0
        gap = round(size * 0.35) if icon else 0
        w = self.measure(text, size, bold) + 2 * pad_x + isz + gap
        h = self.line_height(size) + 2 * pad_y
        rect = pygame.Rect(0, 0, w, h)
        setattr(rect, anchor, pos)
        rrect(self.surface, fill, rect, h // 2)
        x = rect.x + pad_x
        if icon:
            icons.draw(self.surface, icon, pygame.Rect(x, rect.centery - isz // 2, isz, isz), ink)
            x += isz + gap
        self.text(text, (x, rect.centery), size, ink, bold=bold, anchor="midleft")
        return rect
