"""What every screen shares: the header, the body and footer areas, paging, and the overlays
(busy indicator, inactivity warning)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pygame

from kiosk.session import State
from ui import icons, theme
from ui.i18n import format_short_date, t
from ui.widgets import Canvas, disc, rrect

if TYPE_CHECKING:
    from ui.display import Status


def body(c: Canvas) -> pygame.Rect:
    """The area under the header, inside the side margins."""
    m = c.m
    return pygame.Rect(m.margin, m.header, c.rect.w - 2 * m.margin, c.rect.h - m.header)


def footer(c: Canvas) -> pygame.Rect:
    """The row of big buttons at the bottom of the body."""
    m = c.m
    b = body(c)
    return pygame.Rect(b.x, c.rect.h - m.px(24) - m.touch, b.w, m.touch)


def header(c: Canvas, state: State, status: Status, now: float = 0.0) -> None:
    """Navy bar: library name, busy indicator, staff notices, offline badge, clock, language."""
    m = c.m
    bar = pygame.Rect(0, 0, c.rect.w, m.header)
    c.fill(theme.NAVY, bar)
    lang = state.lang
    # logo mark and library name
    mark = pygame.Rect(m.px(28), 0, m.px(44), m.px(44))
    mark.centery = bar.centery
    rrect(c.surface, theme.ACCENT, mark, m.px(11))
    icons.draw(c.surface, "book", mark.inflate(-m.px(14), -m.px(14)), theme.WHITE)
    name_x = mark.right + m.px(14)
    # the language button, right-aligned; a real touch target even inside the slim header
    lang_rect = pygame.Rect(0, 0, m.px(170), max(48, m.px(56)))
    lang_rect.midright = (bar.right - m.px(20), bar.centery)
    c.button("lang", lang_rect, t("lang.switch", lang), kind="ghost", size=m.font(21), icon="globe",
             radius=lang_rect.h // 2)
    # clock
    x = lang_rect.x - m.px(24)
    wall = status.wall
    time_rect = c.text(wall.strftime("%H:%M"), (x, bar.centery - m.px(1)), m.font(28), theme.WHITE,
                       bold=True, anchor="midright")
    date_rect = c.text(format_short_date(wall.date(), lang), (time_rect.x - m.px(12), bar.centery),
                       m.font(17), (190, 200, 222), anchor="midright")
    right = date_rect.x - m.px(18)
    if status.offline:
        badge = c.chip(t("offline", lang), (right, bar.centery), m.font(16), theme.RED, theme.WHITE,
                       anchor="midright", icon="offline")
        right = badge.x - m.px(14)
    reserve = m.px(260) if state.busy else 0  # room for the busy pill after the name
    name_w = max(m.px(120), min(m.px(420), right - name_x - m.px(16) - reserve))
    name_rect = c.text(status.library_name, (name_x, bar.centery), m.font(24), theme.WHITE, bold=True,
                       anchor="midleft", max_width=name_w)
    after_name = name_rect.right
    if state.busy:
        after_name = busy(c, state, now, (after_name + m.px(24), bar.centery))
    if status.notices:
        # Staff-facing device warnings: discreet amber text, never an alarm for the patron.
        space = right - after_name - m.px(40)
        if space > m.px(80):
            note = " · ".join(status.notices)
            size = m.font(15)
            shown = c.measure(note, size, True) + m.px(40)
            chip_rect = pygame.Rect(0, 0, min(space, shown), c.line_height(size) + m.px(10))
            chip_rect.midleft = (after_name + m.px(28), bar.centery)
            rrect(c.surface, theme.AMBER, chip_rect, chip_rect.h // 2)
            disc(c.surface, theme.NAVY, (chip_rect.x + m.px(14), chip_rect.centery), m.px(4))
            c.text(note, (chip_rect.x + m.px(26), chip_rect.centery), size, theme.NAVY, bold=True,
                   anchor="midleft", max_width=chip_rect.w - m.px(36))


def spinner(c: Canvas, center: tuple[int, int], radius: int, now: float, color=theme.NAVY) -> None:
    """Eight dots chasing each other round a circle (one revolution a second)."""
    head = int(now * 8) % 8
    base = c.surface.get_at(center)[:3] if c.rect.collidepoint(center) else theme.BG
    for i in range(8):
        angle = 2 * math.pi * i / 8 - math.pi / 2
        fade = ((head - i) % 8) / 8  # 0 for the head, nearly 1 for the tail
        col = tuple(round(a + (b - a) * fade * 0.85) for a, b in zip(color, base))
        pt = (round(center[0] + radius * math.cos(angle)), round(center[1] + radius * math.sin(angle)))
        disc(c.surface, col, pt, max(2, radius // 4))


def pager(c: Canvas, area: pygame.Rect, page: int, pages: int, lang: str) -> None:
    """Previous / "2 / 3" / next, centred in `area`; the buttons are handled by Display."""
    m = c.m
    if pages <= 1:
        return
    bw = m.touch + m.px(16)
    label = t("page", lang, page=page + 1, pages=pages)
    lw = c.measure(label, m.font(24), True) + m.px(40)
    total = 2 * bw + lw
    x = area.centerx - total // 2
    prev_rect = pygame.Rect(x, area.y, bw, area.h)
    next_rect = pygame.Rect(x + bw + lw, area.y, bw, area.h)
    c.button("page-prev", prev_rect, "", icon="prev", enabled=page > 0, icon_size=m.px(34))
    c.text(label, ((prev_rect.right + next_rect.x) // 2, area.centery), m.font(24), theme.INK,
           bold=True, anchor="center")
    c.button("page-next", next_rect, "", icon="next", enabled=page < pages - 1, icon_size=m.px(34))


def busy(c: Canvas, state: State, now: float, midleft: tuple[int, int]) -> int:
    """A subtle pill in the header: the kiosk is waiting for the library or the disk.

    In the header it never covers the screen's own content. Returns its right edge.
    """
    m = c.m
    size = m.font(17)
    label = t("busy", state.lang)
    pill = pygame.Rect(0, 0, c.measure(label, size, True) + m.px(70), m.px(44))
    pill.midleft = midleft
    rrect(c.surface, theme.NAVY_2, pill, pill.h // 2)
    spinner(c, (pill.x + m.px(24), pill.centery), m.px(9), now, theme.WHITE)
    c.text(label, (pill.x + m.px(44), pill.centery), size, theme.WHITE, bold=True, anchor="midleft")
    return pill.right


def inactivity(c: Canvas, state: State, now: float) -> None:
    """The modal before the automatic logout; only `stay` (and the header's `lang`) stay live."""
    m = c.m
    lang = state.lang
    below = pygame.Rect(0, m.header, c.rect.w, c.rect.h - m.header)
    c.scrim(below)
    c.drop_buttons(keep=("lang",))
    card = pygame.Rect(0, 0, min(c.rect.w - 2 * m.margin, m.px(700)), m.px(430))
    card.center = below.center
    c.box(card, theme.SURFACE, radius=m.px(28), border=None, shadow=False)
    seconds = math.ceil(state.seconds_left(now))
    ring = (card.centerx, card.y + m.px(84))
    disc(c.surface, theme.ACCENT_SOFT, ring, m.px(50))
    icons.draw(c.surface, "clock", pygame.Rect(ring[0] - m.px(32), ring[1] - m.px(32), m.px(64), m.px(64)),
               theme.ACCENT)
    inner = card.inflate(-m.px(64), 0)
    title = pygame.Rect(inner.x, card.y + m.px(152), inner.w, m.px(100))
    got = c.paragraph(t("warn.title", lang, s=seconds), title, m.font(32), theme.INK, bold=True,
                      align="center", max_lines=2)
    c.paragraph(t("warn.sub", lang), pygame.Rect(inner.x, got.bottom + m.px(8), inner.w, m.px(60)),
                m.font(20), theme.INK_2, align="center", max_lines=2)
    button = pygame.Rect(0, 0, m.px(380), m.touch)
    button.midbottom = (card.centerx, card.bottom - m.px(32))
    c.button("stay", button, t("warn.stay", lang), kind="primary", size=m.font(28))
