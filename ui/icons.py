"""Simple line icons drawn with pygame primitives (no image files to ship or load).

Each icon is drawn once at 4x on a transparent surface and smooth-scaled down, which gives
antialiased edges that pygame.draw alone cannot; the result is cached by (name, size, colour).
Icons are designed on a 100x100 grid.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import pygame

from ui.theme import Color

_SS = 4  # supersampling factor

Pen = Callable[..., None]


class _Grid:
    """Draws on the big surface in 100x100 design units."""

    def __init__(self, surface: pygame.Surface, color: Color) -> None:
        self.s = surface
        self.c = color
        self.u = surface.get_width() / 100

    def p(self, x: float, y: float) -> tuple[int, int]:
        return round(x * self.u), round(y * self.u)

    def w(self, v: float) -> int:
        return max(1, round(v * self.u))

    def rect(self, x, y, w, h, r=0, width=0, color=None) -> None:
        pygame.draw.rect(self.s, color or self.c, pygame.Rect(*self.p(x, y), self.w(w), self.w(h)),
                         self.w(width) if width else 0, border_radius=self.w(r) if r else -1)

    def circle(self, x, y, r, width=0, color=None) -> None:
        pygame.draw.circle(self.s, color or self.c, self.p(x, y), self.w(r), self.w(width) if width else 0)

    def line(self, points, width) -> None:
        pts = [self.p(x, y) for x, y in points]
        pygame.draw.lines(self.s, self.c, False, pts, self.w(width))
        for pt in pts:  # round joints and caps
            pygame.draw.circle(self.s, self.c, pt, self.w(width) // 2)

    def poly(self, points, color=None) -> None:
        pygame.draw.polygon(self.s, color or self.c, [self.p(x, y) for x, y in points])

    def arc(self, x, y, r, start, stop, width) -> None:
        import math

        box = pygame.Rect(0, 0, self.w(2 * r), self.w(2 * r))
        box.center = self.p(x, y)
        pygame.draw.arc(self.s, self.c, box, math.radians(start), math.radians(stop), self.w(width))


def _card(g: _Grid) -> None:
    g.rect(8, 22, 70, 50, r=8, width=6)
    g.rect(18, 34, 14, 11, r=2)
    g.rect(18, 54, 34, 5, r=2)
    for r in (12, 22):  # contactless waves
        g.arc(78, 30, r, -40, 40, 5)


def _phone(g: _Grid) -> None:
    g.rect(26, 6, 48, 88, r=10, width=6)
    for i, x in enumerate(range(36, 66, 4)):
        g.rect(x, 30, 2 if i % 3 else 3, 30)
    g.rect(42, 80, 16, 4, r=2)


def _book(g: _Grid) -> None:
    g.line([(50, 26), (50, 84)], 6)
    g.line([(50, 26), (36, 19), (12, 19), (12, 76), (36, 76), (50, 84)], 6)
    g.line([(50, 26), (64, 19), (88, 19), (88, 76), (64, 76), (50, 84)], 6)


def _return(g: _Grid) -> None:
    # a closed book going down into a tray
    g.rect(28, 4, 44, 50, r=5, width=6)
    g.rect(28, 4, 10, 50, r=3)
    g.line([(50, 60), (50, 76)], 7)
    g.poly([(38, 70), (62, 70), (50, 84)])
    g.line([(10, 72), (10, 94), (90, 94), (90, 72)], 6)


def _borrow(g: _Grid) -> None:
    # a locker door swinging open with a book
    g.rect(10, 10, 52, 80, r=5, width=6)
    g.poly([(62, 12), (90, 22), (90, 96), (62, 88)])
    g.rect(22, 36, 28, 34, r=3)


def _list(g: _Grid) -> None:
    g.rect(14, 8, 72, 84, r=8, width=6)
    for y in (30, 50, 70):
        g.circle(30, y, 5)
        g.line([(42, y), (72, y)], 6)


def _logout(g: _Grid) -> None:
    g.line([(56, 16), (16, 16), (16, 84), (56, 84)], 7)
    g.line([(40, 50), (86, 50)], 7)
    g.line([(70, 34), (87, 50), (70, 66)], 7)


def _check(g: _Grid) -> None:
    g.line([(24, 52), (42, 70), (76, 32)], 10)


def _alert(g: _Grid) -> None:
    g.line([(50, 22), (50, 58)], 11)
    g.circle(50, 76, 7)


def _clock(g: _Grid) -> None:
    g.circle(50, 50, 40, width=7)
    g.line([(50, 26), (50, 52), (66, 62)], 7)


def _lock(g: _Grid) -> None:
    g.rect(18, 44, 64, 48, r=8)
    g.arc(50, 44, 22, 0, 180, 8)
    g.line([(28, 44), (28, 40)], 8)
    g.line([(72, 44), (72, 40)], 8)


def _globe(g: _Grid) -> None:
    g.circle(50, 50, 40, width=6)
    g.line([(10, 50), (90, 50)], 5)
    pygame.draw.ellipse(g.s, g.c, pygame.Rect(*g.p(32, 10), g.w(36), g.w(80)), g.w(5))


def _wifi_off(g: _Grid) -> None:
    for r in (16, 32):
        g.arc(50, 74, r, 40, 140, 7)
    g.circle(50, 76, 6)
    g.line([(16, 16), (84, 84)], 7)


def _arrow_left(g: _Grid) -> None:
    g.line([(62, 18), (30, 50), (62, 82)], 10)


def _arrow_right(g: _Grid) -> None:
    g.line([(38, 18), (70, 50), (38, 82)], 10)


def _back(g: _Grid) -> None:
    g.line([(84, 50), (18, 50)], 8)
    g.line([(42, 24), (16, 50), (42, 76)], 8)


def _delete(g: _Grid) -> None:
    g.line([(34, 20), (90, 20), (90, 80), (34, 80), (8, 50), (34, 20)], 6)
    g.line([(48, 36), (74, 64)], 6)
    g.line([(74, 36), (48, 64)], 6)


def _door(g: _Grid) -> None:
    g.rect(20, 8, 60, 86, r=4, width=6)
    g.circle(66, 52, 5)


def _person(g: _Grid) -> None:
    g.circle(50, 32, 18)
    g.poly([(18, 92), (22, 66), (36, 56), (64, 56), (78, 66), (82, 92)])


_ICONS: dict[str, Callable[[_Grid], None]] = {
    "card": _card, "phone": _phone, "book": _book, "return": _return, "borrow": _borrow,
    "list": _list, "logout": _logout, "check": _check, "alert": _alert, "clock": _clock,
    "lock": _lock, "globe": _globe, "offline": _wifi_off, "prev": _arrow_left,
    "next": _arrow_right, "back": _back, "delete": _delete, "door": _door, "person": _person,
}


@lru_cache(maxsize=512)
def render(name: str, size: int, color: Color) -> pygame.Surface:
    """The icon `name` as a size x size transparent surface (cached)."""
    big = pygame.Surface((size * _SS, size * _SS), pygame.SRCALPHA)
    big.fill((*color, 0))  # same RGB under the transparency: no dark fringe after smoothscale
    _ICONS[name](_Grid(big, color))
    return pygame.transform.smoothscale(big, (size, size))


def draw(surface: pygame.Surface, name: str, rect: pygame.Rect, color: Color) -> None:
    """Blit icon `name` into `rect` (square, its smaller side), centred. Unknown names draw nothing."""
    if name not in _ICONS:
        return
    size = max(8, min(rect.w, rect.h))
    icon = render(name, size, tuple(color))
    surface.blit(icon, icon.get_rect(center=rect.center))
