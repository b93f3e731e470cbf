"""The window: renders a `State` each frame and turns taps into button ids.

`poll()` is the one place `pygame.event.get()` is called. Taps are mouse-button events only: SDL
synthesises them from touch, so FINGER* events are ignored and a touch is never counted twice. A
tap is a press and a release on the same button of the last rendered frame.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pygame

from kiosk.session import State
from ui import screens
from ui.theme import Fonts, find_fonts
from ui.widgets import Canvas, rrect

log = logging.getLogger(__name__)

PANEL_WIDTH = 320
_PAGING = ("page-prev", "page-next")


@dataclass(frozen=True)
class Status:
    """Header facts the app supplies each frame."""

    library_name: str  # e.g. "서울역 스마트도서관"
    wall: datetime.datetime  # current local time, for the header clock
    offline: bool = False  # the library system (ILS) is unreachable: show a badge
    notices: tuple[str, ...] = ()  # short staff-facing device warnings, may be empty


@dataclass(frozen=True)
class PanelButton:
    """A button of the demo-only side panel that plays the simulated devices."""

    id: str  # e.g. "sim:card:04A1B2C3"; returned by poll() when clicked
    label: str  # e.g. "회원 카드 1 (정상)"
    key: str = ""  # optional keyboard shortcut, a pygame key name like "1" or "o"
    group: str = ""  # heading to group buttons under, e.g. "카드 리더"


@dataclass(frozen=True)
class Frame:
    """What one render drew: the screen, its tappable buttons and every string, in order."""

    screen: str
    buttons: dict[str, pygame.Rect]  # every visible, enabled button id -> rect (kiosk coords)
    texts: tuple[str, ...]  # every logical string drawn on the kiosk screen (before wrapping)


class Display:
    """The kiosk screen (and, in the windowed demo, the simulator panel on its right).

    pygame has one window per process, so only the most recently created Display may draw.
    """

    _active: Display | None = None

    def __init__(self, *, width: int = 1280, height: int = 800, fullscreen: bool = False,
                 headless: bool = False, font_path: str | None = None,
                 bold_font_path: str | None = None, panel: Sequence[PanelButton] = (),
                 title: str = "Library kiosk") -> None:
        if headless and not os.environ.get("SDL_VIDEODRIVER"):
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        # Only the modules we need: pygame.init() would also open the audio device (slow, noisy).
        pygame.display.init()
        pygame.font.init()
        self.fonts = Fonts(find_fonts(font_path, bold_font_path))
        self._panel = tuple(panel)
        panel_w = PANEL_WIDTH if self._panel else 0
        flags = pygame.FULLSCREEN if fullscreen else 0
        self._window = pygame.display.set_mode((width + panel_w, height), flags)
        pygame.display.set_caption(title)
        if fullscreen:
            pygame.mouse.set_visible(False)  # a touch kiosk shows no pointer
        win_w, win_h = self._window.get_size()
        self._kiosk_rect = pygame.Rect(0, 0, win_w - panel_w, win_h)
        self._kiosk = self._window.subsurface(self._kiosk_rect)
        self._panel_rect = pygame.Rect(self._kiosk_rect.right, 0, panel_w, win_h)
        self._panel_rects: dict[str, pygame.Rect] = {}
        self._keys = {b.key.lower(): b.id for b in self._panel if b.key}
        self._page = 0
        self._pages = 1
        self._page_screen: str | None = None
        self._pressed: str | None = None
        self._frame: Frame | None = None
        self._closed = False
        Display._active = self

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._kiosk_rect.w}x{self._kiosk_rect.h}"
        return f"<Display {state} screen={self._frame.screen if self._frame else None!r}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def size(self) -> tuple[int, int]:
        """The kiosk screen's size (without the panel)."""
        return self._kiosk_rect.size

    @property
    def korean(self) -> bool:
        """Whether a Korean-capable font was found."""
        return self.fonts.choice.korean

    @property
    def last_frame(self) -> Frame | None:
        return self._frame

    # ------------------------------------------------------------------ drawing

    def render(self, state: State, now: float, status: Status) -> Frame:
        """Draw the whole frame for `state` and flip. `now` is monotonic seconds (countdowns)."""
        if self._closed or Display._active is not self:
            # drawing on a window another Display replaced (or closed) would crash SDL
            raise RuntimeError("this Display is closed (pygame has one window per process)")
        if state.screen != self._page_screen:
            self._page_screen, self._page = state.screen, 0
        canvas = Canvas(self._kiosk, self.fonts)
        screens.draw(canvas, state, now, status, self._page)
        self._pages = canvas.pages
        self._page = min(self._page, self._pages - 1)
        if self._panel:
            self._draw_panel()
        pygame.display.flip()
        self._frame = Frame(state.screen, dict(canvas.buttons), tuple(canvas.texts))
        return self._frame

    def _draw_panel(self) -> None:
        """The demo's simulator panel: grouped buttons that play the card reader, scanner, doors."""
        win, area, fonts = self._window, self._panel_rect, self.fonts
        win.fill((28, 33, 44), area)
        win.fill((56, 64, 80), (area.x, 0, 2, area.h))
        x, w = area.x + 16, area.w - 32
        y = 14
        head = fonts.render("시뮬레이터 · Simulator", 17, (255, 255, 255), True)
        win.blit(head, (x, y))
        y += 36
        groups: list[str] = []
        for b in self._panel:
            if b.group not in groups:
                groups.append(b.group)
        n_heads = sum(1 for g in groups if g)
        # shrink the buttons if the panel is long, never below a clickable size
        bh = max(26, min(40, (area.h - y - 10 - n_heads * 30) // max(1, len(self._panel)) - 6))
        self._panel_rects = {}
        for group in groups:
            if group:
                win.blit(fonts.render(group, 14, (150, 162, 184), True), (x, y + 6))
                y += 30
            for b in (b for b in self._panel if b.group == group):
                rect = pygame.Rect(x, y, w, bh)
                pressed = self._pressed == b.id
                rrect(win, (86, 98, 124) if pressed else (46, 54, 70), rect, 8)
                label = fonts.render(b.label, 15, (235, 239, 245))
                if label.get_width() > w - 60:
                    label = label.subsurface((0, 0, w - 60, label.get_height()))
                win.blit(label, label.get_rect(midleft=(rect.x + 12, rect.centery)))
                if b.key:
                    key = fonts.render(b.key, 13, (28, 33, 44), True)
                    kr = pygame.Rect(0, 0, max(24, key.get_width() + 12), 22)
                    kr.midright = (rect.right - 8, rect.centery)
                    rrect(win, (200, 208, 222), kr, 6)
                    win.blit(key, key.get_rect(center=kr.center))
                self._panel_rects[b.id] = rect
                y += bh + 6
            y += 4

    # ------------------------------------------------------------------ input

    def _hit(self, pos: tuple[int, int]) -> str | None:
        if self._kiosk_rect.collidepoint(pos):
            if self._frame is None:
                return None
            # later buttons are drawn on top (a modal): the last one that contains pos wins
            hits = [bid for bid, rect in self._frame.buttons.items() if rect.collidepoint(pos)]
            return hits[-1] if hits else None
        for bid, rect in self._panel_rects.items():
            if rect.collidepoint(pos):
                return bid
        return None

    def poll(self) -> list[str]:
        """Ids tapped since the last poll (kiosk or panel buttons), and "quit" on close/Escape."""
        out: list[str] = []
        for ev in pygame.event.get():
            if ev.type == pygame.QUIT:
                out.append("quit")
            elif ev.type == pygame.KEYDOWN:
                if ev.key == pygame.K_ESCAPE:
                    out.append("quit")
                    continue
                bid = self._keys.get(pygame.key.name(ev.key).lower()) or self._keys.get(
                    (getattr(ev, "unicode", "") or "").lower())
                if bid:
                    out.append(bid)
            elif ev.type == pygame.MOUSEBUTTONDOWN and ev.button == 1:
                self._pressed = self._hit(ev.pos)
            elif ev.type == pygame.MOUSEBUTTONUP and ev.button == 1:
                hit = self._hit(ev.pos)
                if hit is not None and hit == self._pressed:
                    if hit in _PAGING:
                        self.turn_page(hit)
                    else:
                        out.append(hit)
                self._pressed = None
            # FINGERDOWN/UP/MOTION: deliberately ignored, SDL already sent the mouse events.
        return out

    def turn_page(self, bid: str) -> None:
        """Show the previous or next page ("page-prev" / "page-next") of a long list."""
        step = 1 if bid == "page-next" else -1
        self._page = max(0, min(self._pages - 1, self._page + step))

    # ------------------------------------------------------------------ output

    def screenshot(self, path: str | os.PathLike[str]) -> None:
        """Save the kiosk screen (not the panel) as a PNG."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self._kiosk.copy(), str(target))

    def close(self) -> None:
        """Close the window (idempotent). The font module stays up: cached fonts remain valid."""
        if self._closed:
            return
        self._closed = True
        self._panel_rects = {}
        if Display._active is self:
            Display._active = None
            pygame.display.quit()
