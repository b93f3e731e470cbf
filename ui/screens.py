"""One drawing function per screen name; `draw()` composes header, screen and overlays.

Screens only read the immutable `State` (and the clock value `now` for countdowns); they never
change it. Taps come back through the buttons the canvas records.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import pygame

from kiosk.rules import Reason
from kiosk.session import State
from ui import chrome, icons, theme
from ui.i18n import format_date, reason_text, t
from ui.widgets import Canvas, disc, rrect, wrap

if TYPE_CHECKING:
    from ui.display import Status


def draw(c: Canvas, state: State, now: float, status: Status, page: int = 0) -> None:
    """Draw the whole kiosk screen for `state` onto the canvas."""
    c.status = status
    c.fill(theme.BG)
    chrome.header(c, state, status, now)
    SCREENS.get(state.screen, idle)(c, state, now, page)
    if state.warned:
        chrome.inactivity(c, state, now)


# --------------------------------------------------------------------------- idle


def idle(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang = c.m, state.lang
    b = chrome.body(c)
    top = b.y + m.px(40)
    right_w = round(b.w * 0.36)
    left = pygame.Rect(b.x, top, b.w - right_w - m.px(40), b.bottom - top - m.px(40))
    # welcome, with the library's name
    name = c.status.library_name if c.status is not None else ""
    y = top
    if name:
        y = c.text(name, (left.x, y), m.font(24), theme.ACCENT_DARK, bold=True, max_width=left.w).bottom
    y = c.text(t("idle.welcome", lang), (left.x, y - m.px(4)), m.font(60), theme.NAVY, bold=True,
               max_width=left.w).bottom
    y = c.paragraph(t("idle.tagline", lang), pygame.Rect(left.x, y, left.w, 0), m.font(22),
                    theme.INK_2, max_lines=2).bottom
    # how to start: a card with the sentence and the two ways to sign in
    card = pygame.Rect(left.x, y + m.px(28), left.w, left.bottom - y - m.px(28))
    c.box(card)
    inner = card.inflate(-m.px(64), -m.px(56))
    how, how_size = t("idle.how", lang), m.font(28)
    n_how = len(wrap(c.fonts, how, inner.w, how_size, True, 3))
    d = min(m.px(112), inner.h // 2)
    label_h = c.line_height(m.font(18)) + m.px(10)
    gap = m.px(36)
    block = n_how * c.line_height(how_size) + gap + d + label_h
    y0 = inner.y + max(0, (inner.h - block) // 2)
    got = c.paragraph(how, pygame.Rect(inner.x, y0, inner.w, 0), how_size, theme.INK, bold=True,
                      align="center", max_lines=3, balance=True)
    cy = got.bottom + gap + d // 2
    or_text = t("idle.or", lang)
    or_w = c.measure(or_text, m.font(20)) + m.px(64)
    centers = (inner.centerx - or_w // 2 - d // 2, inner.centerx + or_w // 2 + d // 2)
    for cx, (icon, key) in zip(centers, (("card", "idle.step.card"), ("phone", "idle.step.phone"))):
        disc(c.surface, (234, 238, 246), (cx, cy), d // 2)
        isz = round(d * 0.58)
        icons.draw(c.surface, icon, pygame.Rect(cx - isz // 2, cy - isz // 2, isz, isz), theme.NAVY)
        c.text(t(key, lang), (cx, cy + d // 2 + m.px(10)), m.font(18), theme.INK_2, bold=True, anchor="midtop")
    c.text(or_text, (inner.centerx, cy), m.font(20), theme.INK_3, anchor="center")
    # return without logging in
    ret = pygame.Rect(b.right - right_w, top, right_w, left.h)
    c.button("return", ret, t("idle.return", lang), kind="primary", layout="tile", icon="return",
             icon_size=m.px(112), size=m.font(40), sub=t("idle.return.sub", lang), radius=m.px(28))


# --------------------------------------------------------------------------- pin


def pin(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang, cfg = c.m, state.lang, state.settings
    b = chrome.body(c)
    foot = chrome.footer(c)
    top = b.y + m.px(32)
    gap = m.px(14)
    key_w = m.px(168)
    key_h = min(m.px(150), max(m.touch, (foot.bottom - top - 3 * gap) // 4))
    pad = pygame.Rect(0, 0, 3 * key_w + 2 * gap, 4 * key_h + 3 * gap)
    pad.bottomright = (b.right, foot.bottom)
    left = pygame.Rect(b.x, pad.y, pad.x - b.x - m.px(64), pad.h)
    # title and help
    disc(c.surface, (226, 232, 244), (left.x + m.px(32), left.y + m.px(32)), m.px(32))
    icons.draw(c.surface, "lock", pygame.Rect(left.x + m.px(13), left.y + m.px(13), m.px(38), m.px(38)), theme.NAVY)
    y = left.y + m.px(84)
    y = c.paragraph(t("pin.title", lang), pygame.Rect(left.x, y, left.w, 0), m.font(40), theme.INK,
                    bold=True, max_lines=2, balance=True).bottom
    y = c.paragraph(t("pin.sub", lang, min=cfg.pin_min_digits), pygame.Rect(left.x, y + m.px(6), left.w, 0),
                    m.font(21), theme.INK_2, max_lines=3).bottom
    # the digits, as dots: never the digits themselves
    field = pygame.Rect(left.x, y + m.px(28), left.w, m.px(96))
    error = state.notice is not None
    c.box(field, border=theme.RED if error else theme.LINE, border_w=m.px(2), shadow=False)
    slots = max(cfg.pin_min_digits, min(cfg.pin_max_digits, len(state.pin) + 1))
    r, step = m.px(11), m.px(44)
    x0 = field.centerx - (slots - 1) * step // 2
    for i in range(slots):
        center = (x0 + i * step, field.centery)
        if i < len(state.pin):
            disc(c.surface, theme.NAVY, center, r)
        else:
            disc(c.surface, (200, 196, 188), center, r)
            disc(c.surface, theme.SURFACE, center, r - max(2, m.px(2.5)))
    y = field.bottom + m.px(18)
    if state.notice is not None:
        what, _ = reason_text(state.notice, lang)
        note = pygame.Rect(left.x, y, left.w, m.px(60))
        rrect(c.surface, theme.RED_SOFT, note, m.px(14))
        icons.draw(c.surface, "alert", pygame.Rect(note.x + m.px(14), note.centery - m.px(15), m.px(30), m.px(30)), theme.RED)
        c.paragraph(what, pygame.Rect(note.x + m.px(52), note.y, note.w - m.px(64), note.h), m.font(22),
                    theme.RED, bold=True, valign="center", max_lines=2)
    else:
        c.text(t("pin.privacy", lang), (left.x, y), m.font(18), theme.INK_3, max_width=left.w)
    cancel = pygame.Rect(left.x, foot.y, m.px(220), foot.h)
    c.button("cancel", cancel, t("cancel", lang), icon="back", size=m.font(26))
    # keypad
    keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok"]
    ok_enabled = len(state.pin) >= cfg.pin_min_digits
    for i, key in enumerate(keys):
        rect = pygame.Rect(pad.x + (i % 3) * (key_w + gap), pad.y + (i // 3) * (key_h + gap), key_w, key_h)
        if key == "del":
            c.button("pin-del", rect, t("pin.del", lang), size=m.font(24), icon="delete",
                     enabled=bool(state.pin))
        elif key == "ok":
            c.button("pin-ok", rect, t("pin.ok", lang), kind="primary", size=m.font(30), enabled=ok_enabled)
        else:
            c.button(f"pin:{key}", rect, key, size=m.font(42))


# --------------------------------------------------------------------------- menu


def menu(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang = c.m, state.lang
    b = chrome.body(c)
    member = state.member
    name = member.name if member else ""
    policy = state.settings.policy
    top = b.y + m.px(40)
    # loans summary, top right
    stats = []
    if member is not None:
        stats = [("menu.loans.here", member.loans_here, policy.library_limit),
                 ("menu.loans.network", member.loans_network, policy.network_limit)]
    sw, sh, sg = m.px(236), m.px(104), m.px(16)
    x = b.right - len(stats) * sw - (len(stats) - 1) * sg
    for i, (key, n, limit) in enumerate(stats):
        box = pygame.Rect(x + i * (sw + sg), top, sw, sh)
        c.box(box, shadow=False)
        c.text(t(key, lang), (box.x + m.px(20), box.y + m.px(14)), m.font(17), theme.INK_2,
               max_width=sw - m.px(40))
        full = n >= limit
        c.text(t("menu.count", lang, n=n, limit=limit), (box.x + m.px(20), box.y + m.px(40)), m.font(28),
               theme.RED if full else theme.NAVY, bold=True)
        bar = pygame.Rect(box.x + m.px(20), box.bottom - m.px(18), sw - m.px(40), m.px(6))
        rrect(c.surface, (232, 229, 222), bar, bar.h // 2)
        frac = min(1.0, n / limit) if limit else 1.0
        if frac > 0:
            rrect(c.surface, theme.RED if full else theme.ACCENT, pygame.Rect(bar.x, bar.y, max(bar.h, round(bar.w * frac)), bar.h), bar.h // 2)
    text_w = x - b.x - m.px(32)
    greeting = t("menu.greeting", lang, name=name) if name else t("menu.greeting.anon", lang)
    y = c.paragraph(greeting, pygame.Rect(b.x, top - m.px(4), text_w, 0),
                    m.font(44), theme.INK, bold=True, max_lines=2).bottom
    y = c.text(t("menu.sub", lang), (b.x, y + m.px(4)), m.font(22), theme.INK_2, max_width=text_w).bottom
    notes = list(member.messages[:2]) if member is not None else []
    if member is not None and member.offline:
        # decided from the kiosk's cache: say what that means for the patron
        notes.insert(0, t("menu.offline", lang, limit=state.settings.offline_max_loans))
    if notes:
        # the library's own notes for this member (e.g. a hold is waiting), shown as given
        y = max(y, top + sh) + m.px(14)
        for msg in notes[:2]:
            note = pygame.Rect(b.x, y, b.w, m.px(44))
            rrect(c.surface, (232, 238, 248), note, m.px(12))
            c.text(msg, (note.x + m.px(18), note.centery), m.font(18), theme.NAVY, anchor="midleft",
                   max_width=note.w - m.px(36))
            y = note.bottom + m.px(8)
    y = max(y, top + sh)
    foot = chrome.footer(c)
    tiles_top = y + m.px(28)
    tiles = pygame.Rect(b.x, tiles_top, b.w, foot.y - m.px(24) - tiles_top)
    gap = m.px(24)
    w = (tiles.w - 2 * gap) // 3
    specs = (("borrow", "menu.borrow", "borrow", "primary"), ("return", "menu.return", "return", "normal"),
             ("my-loans", "menu.loans", "list", "normal"))
    for i, (bid, key, icon, kind) in enumerate(specs):
        rect = pygame.Rect(tiles.x + i * (w + gap), tiles.y, w, tiles.h)
        c.button(bid, rect, t(key, lang), kind=kind, layout="tile", icon=icon, size=m.font(36),
                 sub=t(key + ".sub", lang), icon_size=min(m.px(88), tiles.h // 3), radius=m.px(24))
    out = pygame.Rect(0, foot.y, m.px(250), foot.h)
    out.right = foot.right
    c.button("logout", out, t("logout", lang), icon="logout", size=m.font(26))


# --------------------------------------------------------------------------- borrow


def _grid(c: Canvas, area: pygame.Rect) -> tuple[int, int, int]:
    """Columns, rows and gap for the book cards: 6x4 = 24 at 1280x800, scaled with the window."""
    m = c.m
    gap = m.px(14)
    cols = max(2, (area.w + gap) // (m.px(180) + gap))
    rows = max(1, (area.h + gap) // (m.px(112) + gap))
    return cols, rows, gap


def borrow(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang = c.m, state.lang
    b = chrome.body(c)
    foot = chrome.footer(c)
    top = b.y + m.px(22)
    title_rect = c.text(t("borrow.title", lang), (b.x, top), m.font(32), theme.INK, bold=True,
                        max_width=b.w // 2)
    if state.shelf:
        c.text(t("borrow.count", lang, n=len(state.shelf)), (b.right, title_rect.centery), m.font(19),
               theme.INK_2, anchor="midright")
    area = pygame.Rect(b.x, title_rect.bottom + m.px(14), b.w, foot.y - m.px(22) - title_rect.bottom - m.px(14))
    cols, rows, gap = _grid(c, area)
    per_page = cols * rows
    pages = max(1, math.ceil(len(state.shelf) / per_page))
    c.pages = pages
    page = min(page, pages - 1)
    if not state.shelf:
        if state.busy:
            _loading(c, area, t("borrow.loading", lang), now)
        else:
            _empty(c, area, "book", t("borrow.empty", lang), t("borrow.empty.sub", lang))
    cw = (area.w - (cols - 1) * gap) // cols
    ch = (area.h - (rows - 1) * gap) // rows
    for i, item in enumerate(state.shelf[page * per_page:(page + 1) * per_page]):
        rect = pygame.Rect(area.x + (i % cols) * (cw + gap), area.y + (i // cols) * (ch + gap), cw, ch)
        _book_card(c, rect, item, item.item == state.selected, lang)
    back = pygame.Rect(foot.x, foot.y, m.px(200), foot.h)
    c.button("cancel", back, t("back", lang), icon="back", size=m.font(26))
    ok = pygame.Rect(0, foot.y, m.px(400), foot.h)
    ok.right = foot.right
    c.button("confirm", ok, t("borrow.confirm", lang), kind="primary", enabled=state.selected is not None,
             icon="borrow", size=m.font(27))
    chrome.pager(c, pygame.Rect(back.right, foot.y, ok.x - back.right, foot.h), page, pages, lang)


def _book_card(c: Canvas, rect: pygame.Rect, item, selected: bool, lang: str) -> None:
    """A book on the shelf: locker number, title (2 lines), author. The whole card is the button."""
    m = c.m
    bid = f"item:{item.item}"
    if selected:
        c.box(rect, theme.ACCENT_SOFT, border=theme.ACCENT, border_w=m.px(3), radius=m.px(16))
    else:
        c.box(rect, theme.SURFACE, border=theme.LINE, radius=m.px(16))
    c.buttons[bid] = pygame.Rect(rect)
    pad = m.px(12)
    inner = rect.inflate(-2 * pad, -2 * pad)
    size = m.font(13)
    chip = c.chip(t("locker", lang, n=item.slot), inner.topleft, size,
                  theme.ACCENT if selected else (238, 241, 247), theme.WHITE if selected else theme.NAVY)
    if selected:
        center = (rect.right - m.px(24), rect.y + m.px(24))
        disc(c.surface, theme.ACCENT, center, m.px(14))
        icons.draw(c.surface, "check", pygame.Rect(center[0] - m.px(11), center[1] - m.px(11), m.px(22), m.px(22)), theme.WHITE)
    author_size = m.font(14)
    author_h = c.line_height(author_size)
    title_size = m.font(19)
    title_box = pygame.Rect(inner.x, chip.bottom + m.px(3), inner.w, inner.bottom - author_h - chip.bottom - m.px(3))
    c.paragraph(item.title, title_box, title_size, theme.INK, bold=True, max_lines=2,
                line_height=round(title_size * 1.2), balance=True)
    c.text(item.author, (inner.x, inner.bottom - author_h), author_size, theme.INK_2, max_width=inner.w)


def _empty(c: Canvas, area: pygame.Rect, icon: str, title: str, sub: str) -> None:
    m = c.m
    center = (area.centerx, area.centery - m.px(70))
    disc(c.surface, (234, 238, 246), center, m.px(64))
    icons.draw(c.surface, icon, pygame.Rect(center[0] - m.px(38), center[1] - m.px(38), m.px(76), m.px(76)), theme.NAVY)
    y = c.paragraph(title, pygame.Rect(area.x, center[1] + m.px(88), area.w, 0), m.font(30), theme.INK,
                    bold=True, align="center", max_lines=2).bottom
    c.paragraph(sub, pygame.Rect(area.x, y + m.px(6), area.w, 0), m.font(21), theme.INK_2, align="center",
                max_lines=2)


def _loading(c: Canvas, area: pygame.Rect, label: str, now: float) -> None:
    m = c.m
    chrome.spinner(c, (area.centerx, area.centery - m.px(30)), m.px(26), now)
    c.text(label, (area.centerx, area.centery + m.px(30)), m.font(24), theme.INK_2, anchor="midtop")


# --------------------------------------------------------------------------- open door


def open_door(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang, cfg = c.m, state.lang, state.settings
    b = chrome.body(c)
    job = state.job
    slot = job.slot if job else 0
    top = b.y + m.px(32)
    if state.door_warned:
        banner = pygame.Rect(b.x, top, b.w, m.px(108))
        rrect(c.surface, theme.RED, banner, m.px(20))
        icons.draw(c.surface, "alert", pygame.Rect(banner.x + m.px(26), banner.centery - m.px(30), m.px(60), m.px(60)), theme.WHITE)
        c.text(t("door.close.now", lang), (banner.x + m.px(104), banner.centery - m.px(15)), m.font(38),
               theme.WHITE, bold=True, anchor="midleft", max_width=banner.w - m.px(130))
        c.text(t("door.close.sub", lang), (banner.x + m.px(104), banner.centery + m.px(26)), m.font(19),
               (255, 226, 226), anchor="midleft", max_width=banner.w - m.px(130))
        top = banner.bottom + m.px(24)
    map_w = round(b.w * 0.34)
    left = pygame.Rect(b.x, top, b.w - map_w - m.px(40), b.bottom - m.px(32) - top)
    # the locker number, very large
    badge = pygame.Rect(left.x, left.y, m.px(156), m.px(156))
    rrect(c.surface, theme.ACCENT, badge, m.px(28))
    c.text(str(slot), (badge.centerx, badge.centery - m.px(12)), m.font(88), theme.WHITE, bold=True,
           anchor="center", record=False)
    c.text(t("locker.short", lang), (badge.centerx, badge.bottom - m.px(14)), m.font(17), theme.WHITE,
           bold=True, anchor="midbottom", record=False)
    hx = badge.right + m.px(28)
    head = pygame.Rect(hx, badge.y, left.right - hx, badge.h)
    got = c.paragraph(t("door.opened", lang, n=slot), pygame.Rect(head.x, head.y + m.px(4), head.w, 0),
                      m.font(42), theme.INK, bold=True, max_lines=2, balance=True)
    what = "door.take" if job and job.kind == "loan" else "door.put"
    c.paragraph(t(what, lang), pygame.Rect(head.x, got.bottom + m.px(10), head.w, 0), m.font(26),
                theme.ACCENT_DARK, bold=True, max_lines=2)
    y = badge.bottom + m.px(24)
    # the book
    if job is not None:
        card = pygame.Rect(left.x, y, left.w, m.px(108))
        c.box(card, shadow=False)
        icons.draw(c.surface, "book", pygame.Rect(card.x + m.px(24), card.centery - m.px(24), m.px(48), m.px(48)), theme.NAVY)
        tx = card.x + m.px(96)
        key = "door.book.loan" if job.kind == "loan" else "door.book.return"
        c.text(t(key, lang), (tx, card.y + m.px(16)), m.font(16), theme.INK_3)
        c.paragraph(job.title, pygame.Rect(tx, card.y + m.px(42), card.right - tx - m.px(20), card.h - m.px(48)),
                    m.font(24), theme.INK, bold=True, max_lines=2, line_height=m.px(30))
        y = card.bottom + m.px(18)
    # door state at the bottom of the column: countdown, open, or recording
    status = pygame.Rect(left.x, 0, left.w, m.px(124))
    status.bottom = left.bottom
    if status.y < y:
        status.y, status.h = y, max(m.px(90), left.bottom - y)
    tint = theme.RED_SOFT if state.door_warned else (234, 238, 246)
    ink = theme.RED if state.door_warned else theme.NAVY
    if state.door == "unlocked":
        left_s = max(0.0, cfg.door_open_timeout_s - (now - state.door_since))
        c.box(status, tint, border=None, shadow=False)
        icons.draw(c.surface, "clock", pygame.Rect(status.x + m.px(24), status.y + m.px(20), m.px(44), m.px(44)), ink)
        c.text(t("door.countdown", lang, s=math.ceil(left_s)), (status.x + m.px(86), status.y + m.px(42)),
               m.font(27), ink, bold=True, anchor="midleft", max_width=status.w - m.px(110))
        bar = pygame.Rect(status.x + m.px(86), status.y + m.px(74), status.w - m.px(112), m.px(10))
        rrect(c.surface, (210, 216, 230), bar, bar.h // 2)
        frac = left_s / cfg.door_open_timeout_s if cfg.door_open_timeout_s else 0
        if frac > 0:
            rrect(c.surface, ink, pygame.Rect(bar.x, bar.y, max(bar.h, round(bar.w * frac)), bar.h), bar.h // 2)
        c.text(t("door.countdown.sub", lang), (bar.x, bar.bottom + m.px(8)), m.font(17), theme.INK_2,
               max_width=bar.w)
    elif state.door == "open":
        c.box(status, tint, border=None, shadow=False)
        icons.draw(c.surface, "door", pygame.Rect(status.x + m.px(22), status.centery - m.px(26), m.px(52), m.px(52)), ink)
        c.paragraph(t("door.open", lang), pygame.Rect(status.x + m.px(92), status.y, status.w - m.px(112), status.h),
                    m.font(28), ink, bold=True, valign="center", max_lines=2)
    elif state.door == "recording":
        c.box(status, tint, border=None, shadow=False)
        chrome.spinner(c, (status.x + m.px(48), status.centery), m.px(16), now)
        c.text(t("door.recording", lang), (status.x + m.px(92), status.centery), m.font(26), theme.NAVY,
               bold=True, anchor="midleft")
    _locker_map(c, pygame.Rect(left.right + m.px(40), left.y, map_w, left.h), slot, state, now)


def _locker_map(c: Canvas, rect: pygame.Rect, slot: int, state: State, now: float) -> None:
    """The locker bank as a grid (6 wide, 24 or more), the open one highlighted."""
    m = c.m
    c.box(rect)
    c.text(t("door.map", state.lang), (rect.x + m.px(24), rect.y + m.px(20)), m.font(18), theme.INK_2, bold=True)
    cols = 4
    count = max(24, slot)
    rows = math.ceil(count / cols)
    area = pygame.Rect(rect.x + m.px(24), rect.y + m.px(62), rect.w - m.px(48), rect.h - m.px(86))
    gap = m.px(6)
    cw = (area.w - (cols - 1) * gap) // cols
    ch = min(cw, (area.h - (rows - 1) * gap) // rows)
    grid_h = rows * ch + (rows - 1) * gap
    y0 = area.y + (area.h - grid_h) // 2
    # the frame of the locker bank
    frame = pygame.Rect(area.x - m.px(8), y0 - m.px(8), area.w + m.px(16), grid_h + m.px(16))
    rrect(c.surface, (214, 218, 228), frame, m.px(10))
    num = m.font(14 if ch < m.px(40) else 16)
    for i in range(count):
        n = i + 1
        cell = pygame.Rect(area.x + (i % cols) * (cw + gap), y0 + (i // cols) * (ch + gap), cw, ch)
        if n == slot:
            pulse = 0.5 + 0.5 * math.sin(now * 4)
            halo = cell.inflate(m.px(6) + round(pulse * m.px(4)), m.px(6) + round(pulse * m.px(4)))
            rrect(c.surface, (246, 196, 160), halo, m.px(8))
            rrect(c.surface, theme.ACCENT, cell, m.px(6))
            c.text(str(n), cell.center, m.font(20), theme.WHITE, bold=True, anchor="center", record=False)
        else:
            rrect(c.surface, (244, 245, 248), cell, m.px(5))
            c.text(str(n), cell.center, num, theme.INK_3, anchor="center", record=False)


# --------------------------------------------------------------------------- return


def return_(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang = c.m, state.lang
    b = chrome.body(c)
    foot = chrome.footer(c)
    top = b.y + m.px(48)
    art_w = round(b.w * 0.38)
    left = pygame.Rect(b.x, top, b.w - art_w - m.px(48), foot.y - top - m.px(24))
    y = c.paragraph(t("return.title", lang), pygame.Rect(left.x, top, left.w, 0), m.font(40), theme.INK,
                    bold=True, max_lines=3, balance=True).bottom
    y = c.paragraph(t("return.sub", lang), pygame.Rect(left.x, y + m.px(10), left.w, 0), m.font(22),
                    theme.INK_2, max_lines=3).bottom + m.px(36)
    if state.busy:
        box = pygame.Rect(left.x, y, left.w, m.px(96))
        c.box(box, (234, 238, 246), border=None, shadow=False)
        chrome.spinner(c, (box.x + m.px(52), box.centery), m.px(18), now)
        c.text(t("return.checking", lang), (box.x + m.px(96), box.centery), m.font(30), theme.NAVY,
               bold=True, anchor="midleft")
    else:
        steps = ("return.step1", "return.step2", "return.step3")
        for i, key in enumerate(steps):
            row = pygame.Rect(left.x, y + i * m.px(68), left.w, m.px(56))
            disc(c.surface, theme.NAVY if i < 2 else theme.LINE, (row.x + m.px(24), row.centery), m.px(24))
            c.text(str(i + 1), (row.x + m.px(24), row.centery), m.font(22),
                   theme.WHITE if i < 2 else theme.INK_2, bold=True, anchor="center", record=False)
            c.text(t(key, lang), (row.x + m.px(66), row.centery), m.font(24), theme.INK if i < 2 else theme.INK_2,
                   bold=i < 2, anchor="midleft", max_width=row.w - m.px(70))
    art = pygame.Rect(b.right - art_w, top, art_w, foot.bottom - top)
    _scanner_art(c, art, now, state.busy)
    back = pygame.Rect(foot.x, foot.y, m.px(220), foot.h)
    c.button("cancel", back, t("cancel", lang), icon="back", size=m.font(26))


def _scanner_art(c: Canvas, rect: pygame.Rect, now: float, busy: bool) -> None:
    """A book held above a scanner, its barcode crossed by the red scan line."""
    m = c.m
    c.box(rect)
    cx = rect.centerx
    # the book, tilted slightly is too costly; upright and friendly
    book = pygame.Rect(0, 0, round(rect.w * 0.52), round(rect.h * 0.46))
    book.midtop = (cx, rect.y + round(rect.h * 0.09))
    rrect(c.surface, (39, 74, 140), book, m.px(10))
    spine = pygame.Rect(book.x, book.y, m.px(16), book.h)
    rrect(c.surface, (28, 55, 108), spine, m.px(8))
    label = pygame.Rect(0, 0, round(book.w * 0.66), round(book.h * 0.34))
    label.midbottom = (book.centerx + m.px(6), book.bottom - m.px(18))
    rrect(c.surface, theme.WHITE, label, m.px(4))
    bars = label.inflate(-m.px(20), -m.px(24))
    x, widths, i = bars.x, (3, 1, 2, 1, 1, 3, 2, 1, 3, 1, 2, 2, 1, 1, 3, 1, 2), 0
    while x < bars.right - m.px(3):
        w = max(1, m.px(widths[i % len(widths)]))
        if i % 2 == 0:
            c.fill(theme.INK, pygame.Rect(x, bars.y, w, bars.h))
        x += w + max(1, m.px(2))
        i += 1
    # the scanner below, with its window and a beam
    scanner = pygame.Rect(0, 0, round(rect.w * 0.62), round(rect.h * 0.16))
    scanner.midbottom = (cx, rect.bottom - round(rect.h * 0.09))
    beam_top = label.centery
    light = (252, 214, 214) if not busy else (214, 236, 226)
    pygame.draw.polygon(c.surface, light, [(scanner.x + m.px(30), scanner.y), (scanner.right - m.px(30), scanner.y),
                                           (label.right - m.px(4), beam_top), (label.x + m.px(4), beam_top)])
    # re-draw the label over the beam so the barcode stays crisp
    rrect(c.surface, theme.WHITE, label, m.px(4))
    x, i = bars.x, 0
    while x < bars.right - m.px(3):
        w = max(1, m.px(widths[i % len(widths)]))
        if i % 2 == 0:
            c.fill(theme.INK, pygame.Rect(x, bars.y, w, bars.h))
        x += w + max(1, m.px(2))
        i += 1
    sweep = (math.sin(now * 3) + 1) / 2
    line_y = bars.y + round(sweep * bars.h)
    c.fill(theme.RED if not busy else theme.GREEN, pygame.Rect(label.x + m.px(2), line_y - m.px(1), label.w - m.px(4), m.px(3)))
    rrect(c.surface, (46, 52, 66), scanner, m.px(16))
    window = scanner.inflate(-m.px(60), -round(scanner.h * 0.55))
    rrect(c.surface, theme.RED if not busy else theme.GREEN, window, window.h // 2)


# --------------------------------------------------------------------------- my loans


def my_loans(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang = c.m, state.lang
    b = chrome.body(c)
    foot = chrome.footer(c)
    top = b.y + m.px(22)
    title = c.text(t("loans.title", lang), (b.x, top), m.font(32), theme.INK, bold=True, max_width=b.w // 2)
    loans = state.loans
    overdue = sum(1 for x in loans if x.overdue)
    right = b.right
    if overdue:
        right = c.chip(t("loans.overdue.count", lang, n=overdue), (right, title.centery), m.font(17),
                       theme.RED, theme.WHITE, anchor="midright").x - m.px(10)
    if loans:
        c.chip(t("loans.count", lang, n=len(loans)), (right, title.centery), m.font(17), (226, 232, 244),
               theme.NAVY, anchor="midright")
    y = title.bottom + m.px(16)
    # Room for why a renewal was refused, kept whether or not there is one: the rows never move
    # under a patron's finger (tapping the same spot again must not renew another book).
    band = pygame.Rect(b.x, y, b.w, c.line_height(m.font(20)) + m.px(20))
    if state.notice is not None:
        what, _ = reason_text(state.notice, lang)
        message = state.notice.detail("message").strip()
        if message and message != what:
            what = f"{what} · {message}"
        c.box(band, theme.RED_SOFT, radius=m.px(12), border=None, shadow=False)
        c.text(what, (band.x + m.px(20), band.centery), m.font(20), theme.RED, bold=True, anchor="midleft",
               max_width=band.w - m.px(40))
    y = band.bottom + m.px(12)
    area = pygame.Rect(b.x, y, b.w, foot.y - m.px(22) - y)
    row_h = max(m.touch - m.px(8), m.px(84))
    per_page = max(1, area.h // row_h)
    pages = max(1, math.ceil(len(loans) / per_page))
    c.pages = pages
    page = min(page, pages - 1)
    if not loans:
        if state.busy:
            _loading(c, area, t("loans.loading", lang), now)
        else:
            _empty(c, area, "list", t("loans.empty", lang), t("loans.empty.sub", lang))
    else:
        shown = loans[page * per_page:(page + 1) * per_page]
        card = pygame.Rect(area.x, area.y, area.w, row_h * len(shown))
        c.box(card)
        for i, line in enumerate(shown):
            row = pygame.Rect(card.x, card.y + i * row_h, card.w, row_h)
            if i:
                c.fill(theme.LINE, pygame.Rect(row.x + m.px(24), row.y, row.w - m.px(48), max(1, m.px(1))))
            _loan_row(c, row, line, lang, busy=state.busy)
    back = pygame.Rect(foot.x, foot.y, m.px(200), foot.h)
    c.button("cancel", back, t("back", lang), icon="back", size=m.font(26))
    out = pygame.Rect(0, foot.y, m.px(250), foot.h)
    out.right = foot.right
    c.button("logout", out, t("logout", lang), icon="logout", size=m.font(26))
    chrome.pager(c, pygame.Rect(back.right, foot.y, out.x - back.right, foot.h), page, pages, lang)


def _loan_row(c: Canvas, row: pygame.Rect, line, lang: str, *, busy: bool = False) -> None:
    m = c.m
    red = line.overdue
    icon_c = (row.x + m.px(52), row.centery)
    disc(c.surface, theme.RED_SOFT if red else (234, 238, 246), icon_c, m.px(26))
    icons.draw(c.surface, "book", pygame.Rect(icon_c[0] - m.px(16), icon_c[1] - m.px(16), m.px(32), m.px(32)),
               theme.RED if red else theme.NAVY)
    # Right to left: the renew button (not for overdue books), the due date, its label.
    action = pygame.Rect(0, 0, m.px(140), min(row.h - m.px(16), m.px(64)))
    action.midright = (row.right - m.px(20), row.centery)
    if line.renewed and not red:
        c.chip(t("loans.renewed", lang), action.center, m.font(17), (222, 244, 230), theme.GREEN,
               anchor="center", icon="check")
    elif not red:
        c.button("renew:" + line.item, action, t("loans.renew", lang), icon="return", size=m.font(20),
                 enabled=not busy)
    due_w = m.px(300)
    tx = row.x + m.px(98)
    tw = action.x - due_w - tx - m.px(24)
    c.text(line.title, (tx, row.centery - m.px(2)), m.font(23), theme.INK, bold=True, anchor="bottomleft",
           max_width=tw)
    c.text(line.item, (tx, row.centery + m.px(4)), m.font(16), theme.INK_3, anchor="topleft", max_width=tw)
    dx = action.x - m.px(24)
    date = line.due_text or format_date(line.due, lang)
    c.text(date, (dx, row.centery + m.px(2)), m.font(22), theme.RED if red else theme.INK, bold=True,
           anchor="midright")
    label_x = dx - c.measure(date, m.font(22), True) - m.px(14)
    if red:
        c.chip(t("loans.overdue", lang), (label_x, row.centery + m.px(2)), m.font(15), theme.RED, theme.WHITE,
               anchor="midright")
    else:
        c.text(t("loans.due", lang), (label_x, row.centery + m.px(2)), m.font(16), theme.INK_2, anchor="midright")


# --------------------------------------------------------------------------- receipt and error


def _medallion(c: Canvas, center: tuple[int, int], icon: str, fg, bg) -> None:
    m = c.m
    disc(c.surface, bg, center, m.px(58))
    disc(c.surface, fg, center, m.px(40))
    icons.draw(c.surface, icon, pygame.Rect(center[0] - m.px(28), center[1] - m.px(28), m.px(56), m.px(56)), theme.WHITE)


def receipt(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang = c.m, state.lang
    b = chrome.body(c)
    foot = chrome.footer(c)
    r = state.receipt
    kind = r.kind if r else "return"
    card = pygame.Rect(0, 0, min(b.w, m.px(760)), 0)
    rows: list[str] = []
    if r is not None:
        rows = [t("locker", lang, n=r.slot)]
        if kind == "loan":
            rows.insert(0, t("receipt.due", lang, date=r.due_text or format_date(r.due, lang)))
        title_lines = wrap(c.fonts, r.title, card.w - m.px(140), m.font(26), True, 2)
        card.h = m.px(56) + len(title_lines) * m.px(36) + m.px(10) + len(rows) * m.px(38)
    # centre the whole block between the header and the buttons
    block = m.px(116) + m.px(28) + c.line_height(m.font(42)) + (m.px(28) + card.h if r else 0) + m.px(60)
    y = b.y + max(m.px(24), (foot.y - m.px(30) - b.y - block) // 2)
    _medallion(c, (b.centerx, y + m.px(58)), "check", theme.GREEN, theme.GREEN_SOFT)
    y = c.text(t("receipt.loan" if kind == "loan" else "receipt.return", lang), (b.centerx, y + m.px(142)),
               m.font(42), theme.INK, bold=True, anchor="midtop", max_width=b.w).bottom
    if r is not None:
        card.midtop = (b.centerx, y + m.px(28))
        c.box(card)
        icons.draw(c.surface, "book", pygame.Rect(card.x + m.px(32), card.y + m.px(30), m.px(56), m.px(56)), theme.NAVY)
        tx = card.x + m.px(112)
        ty = c.paragraph(r.title, pygame.Rect(tx, card.y + m.px(26), card.right - tx - m.px(28), 0), m.font(26),
                         theme.INK, bold=True, max_lines=2, line_height=m.px(36)).bottom + m.px(10)
        for i, text in enumerate(rows):
            due = i == 0 and kind == "loan"
            c.text(text, (tx, ty + i * m.px(38)), m.font(22), theme.ACCENT_DARK if due else theme.INK_2,
                   bold=due, max_width=card.right - tx - m.px(28))
        y = card.bottom
    c.text(t("receipt.thanks.loan" if kind == "loan" else "receipt.thanks.return", lang),
           (b.centerx, y + m.px(22)), m.font(21), theme.INK_2, anchor="midtop")
    # buttons: keep going, or finish (members only)
    bw, gap = m.px(320), m.px(24)
    if state.member is not None:
        row = pygame.Rect(0, foot.y, 2 * bw + gap, foot.h)
        row.centerx = b.centerx
        c.button("logout", pygame.Rect(row.x, row.y, bw, row.h), t("receipt.finish", lang), icon="logout",
                 size=m.font(27))
        c.button("confirm", pygame.Rect(row.x + bw + gap, row.y, bw, row.h), t("receipt.continue", lang),
                 kind="primary", size=m.font(27))
    else:
        ok = pygame.Rect(0, foot.y, bw, foot.h)
        ok.centerx = b.centerx
        c.button("confirm", ok, t("receipt.ok", lang), kind="primary", size=m.font(28))
    _auto_close(c, state, now, foot)


def _auto_close(c: Canvas, state: State, now: float, foot: pygame.Rect) -> None:
    left = math.ceil(max(0.0, state.settings.notice_s - (now - state.screen_since)))
    c.text(t("receipt.auto", state.lang, s=left), (foot.centerx, foot.y - c.m.px(14)), c.m.font(16),
           theme.INK_3, anchor="midbottom")


def error(c: Canvas, state: State, now: float, page: int) -> None:
    m, lang = c.m, state.lang
    b = chrome.body(c)
    foot = chrome.footer(c)
    refusal = state.notice
    what, nxt = reason_text(refusal, lang) if refusal else (t("r.store-fault", lang), t("r.store-fault.next", lang))
    ils = refusal is not None and refusal.reason is Reason.ILS_REFUSED and bool(refusal.detail("message"))
    width = min(b.w, m.px(980))
    big, small = m.font(40), m.font(26)
    n_what = len(wrap(c.fonts, what, width, big, True, 3))
    n_next = len(wrap(c.fonts, nxt, width, small, False, 3))
    chip_h = c.line_height(m.font(16)) + m.px(24) if ils else 0
    block = m.px(116) + m.px(30) + chip_h + n_what * c.line_height(big) + m.px(16) + n_next * c.line_height(small)
    y = b.y + max(m.px(24), (foot.y - m.px(30) - b.y - block) // 2)
    _medallion(c, (b.centerx, y + m.px(58)), "alert", theme.RED, theme.RED_SOFT)
    y += m.px(146)
    if ils:
        y = c.chip(t("error.ils", lang), (b.centerx, y), m.font(16), (226, 232, 244), theme.NAVY,
                   anchor="midtop").bottom + m.px(12)
    box = pygame.Rect(b.centerx - width // 2, y, width, 0)
    y = c.paragraph(what, box, big, theme.INK, bold=True, align="center", max_lines=3, balance=True).bottom
    y = c.paragraph(nxt, pygame.Rect(box.x, y + m.px(16), box.w, 0), small, theme.INK_2, align="center",
                    max_lines=3, balance=True).bottom
    said = refusal.detail("message").strip() if refusal is not None and not ils else ""
    if said and said != what:
        # A friendly reason above; the library's own words below, as it gave them.
        y = c.chip(t("error.ils", lang), (b.centerx, y + m.px(22)), m.font(15), (226, 232, 244), theme.NAVY,
                   anchor="midtop").bottom
        c.paragraph(said, pygame.Rect(box.x, y + m.px(8), box.w, 0), m.font(20), theme.INK_2, align="center",
                    max_lines=2)
    ok = pygame.Rect(0, foot.y, m.px(320), foot.h)
    ok.centerx = b.centerx
    c.button("confirm", ok, t("error.ok", lang), kind="primary", size=m.font(28))
    _auto_close(c, state, now, foot)


SCREENS: dict[str, Callable[[Canvas, State, float, int], None]] = {
    "idle": idle,
    "pin": pin,
    "menu": menu,
    "borrow": borrow,
    "open-door": open_door,
    "return": return_,
    "my-loans": my_loans,
    "receipt": receipt,
    "error": error,
}
