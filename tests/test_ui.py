"""The touch UI: every screen in both languages, taps, the panel, screenshots, translations.

Headless (SDL's dummy video driver), no sleeping: `now` is passed in, events are posted.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame
import pytest

from kiosk.rules import Reason, Refusal, refusal
from kiosk.session import DoorJob, LoanLine, Receipt, Refused, Renew, Settings, State, Tap, step
from ui import gallery, theme
from ui.display import Display, PanelButton, Status
from ui.i18n import STRINGS, format_date, format_won, reason_text, t

NOW = 1000.0
STATUS = Status("서울역 스마트도서관", dt.datetime(2026, 11, 2, 14, 5))
TODAY = dt.date(2026, 11, 2)


@pytest.fixture
def display():
    d = Display(headless=True)
    yield d
    d.close()


def base(lang: str = "ko", **changes) -> State:
    state = State(settings=Settings(language=lang), lang=lang, today=TODAY, last_activity=NOW,
                  screen_since=NOW)
    return replace(state, **changes)


def logged(lang: str = "ko", **changes) -> State:
    return base(lang, member=gallery.member(), **changes)


def click(d: Display, bid: str) -> list[str]:
    """Post a press and a release at the centre of button `bid` of the last frame; poll."""
    return touch(d, d.last_frame.buttons[bid].center)


def touch(d: Display, pos: tuple[int, int]) -> list[str]:
    """Post a press and a release at `pos`; poll."""
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=pos))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=pos))
    return d.poll()


def joined(frame) -> str:
    return "\n".join(frame.texts)


# --------------------------------------------------------------------------- every screen


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_every_sample_renders_with_lang_and_its_buttons(display, lang):
    for name, state, now, status in gallery.samples(lang):
        frame = display.render(state, now, status)
        assert frame.screen == state.screen, name
        assert "lang" in frame.buttons, name
        assert t("lang.switch", lang) in frame.texts, name
        assert frame.texts, name
        for rect in frame.buttons.values():
            assert display._kiosk_rect.contains(rect), (name, rect)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_idle(display, lang):
    frame = display.render(base(lang), NOW, STATUS)
    assert set(frame.buttons) == {"return", "lang"}
    assert t("idle.how", lang) in frame.texts
    assert t("idle.return", lang) in frame.texts
    assert "서울역 스마트도서관" in frame.texts
    if lang == "ko":
        assert "도서관 회원증을 카드 리더에 대거나, 모바일 회원증 바코드를 스캐너에 보여 주세요" in frame.texts
        assert "책 반납하기" in frame.texts


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_pin_ok_only_with_enough_digits_and_digits_never_shown(display, lang):
    frame = display.render(base(lang, screen="pin", credential="04A1B2C3", pin="739"), NOW, STATUS)
    digits = {f"pin:{i}" for i in range(10)}
    assert digits <= set(frame.buttons)
    assert {"pin-del", "cancel", "lang"} <= set(frame.buttons)
    assert "pin-ok" not in frame.buttons  # drawn disabled: 3 < pin_min_digits
    assert not any("739" in text for text in frame.texts)
    frame = display.render(base(lang, screen="pin", credential="04A1B2C3", pin="7391"), NOW, STATUS)
    assert "pin-ok" in frame.buttons
    frame = display.render(base(lang, screen="pin", credential="04A1B2C3"), NOW, STATUS)
    assert "pin-del" not in frame.buttons  # nothing to delete


def test_pin_wrong_notice(display):
    state = base("ko", screen="pin", credential="04A1B2C3", notice=refusal(Reason.WRONG_PIN, left=2))
    frame = display.render(state, NOW, STATUS)
    assert "비밀번호가 틀렸습니다. 남은 횟수: 2회" in frame.texts
    frame = display.render(replace(state, lang="en"), NOW, STATUS)
    assert "Wrong PIN. Tries left: 2" in frame.texts


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_menu(display, lang):
    frame = display.render(logged(lang, screen="menu"), NOW, STATUS)
    assert {"borrow", "return", "my-loans", "logout", "lang"} == set(frame.buttons)
    assert t("menu.greeting", lang, name="홍길동") in frame.texts
    assert t("menu.count", lang, n=2, limit=5) in frame.texts
    assert t("menu.count", lang, n=3, limit=30) in frame.texts
    if lang == "ko":
        assert {"홍길동님, 안녕하세요", "대출하기", "반납하기", "내 대출 현황", "로그아웃"} <= set(frame.texts)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_borrow_grid_selection_and_confirm(display, lang):
    shelf = gallery.shelf(24)
    frame = display.render(logged(lang, screen="borrow", shelf=shelf), NOW, STATUS)
    assert {f"item:{x.item}" for x in shelf} <= set(frame.buttons)  # 24 fit on one page
    assert "page-next" not in frame.buttons and "page-prev" not in frame.buttons
    assert "confirm" not in frame.buttons and "cancel" in frame.buttons
    assert shelf[0].title in frame.texts and t("locker", lang, n=3) in frame.texts
    frame = display.render(logged(lang, screen="borrow", shelf=shelf, selected=shelf[2].item), NOW, STATUS)
    assert "confirm" in frame.buttons
    assert t("borrow.confirm", lang) in frame.texts
    rects = [frame.buttons[f"item:{x.item}"] for x in shelf]
    assert all(r.h >= 88 for r in rects) and not any(a.colliderect(b) for i, a in enumerate(rects) for b in rects[i + 1:])


def test_borrow_empty_and_loading(display):
    frame = display.render(logged(screen="borrow"), NOW, STATUS)
    assert t("borrow.empty", "ko") in frame.texts
    frame = display.render(logged(screen="borrow", busy=True), NOW, STATUS)
    assert t("borrow.loading", "ko") in frame.texts and t("busy", "ko") in frame.texts


def test_borrow_pages_with_30_books(display):
    shelf = gallery.shelf(30)
    state = logged(screen="borrow", shelf=shelf)
    frame = display.render(state, NOW, STATUS)
    assert "page-next" in frame.buttons and "page-prev" not in frame.buttons
    assert f"item:{shelf[0].item}" in frame.buttons and f"item:{shelf[29].item}" not in frame.buttons
    assert click(display, "page-next") == []  # handled inside Display
    frame = display.render(state, NOW, STATUS)
    assert f"item:{shelf[29].item}" in frame.buttons and f"item:{shelf[0].item}" not in frame.buttons
    assert "page-prev" in frame.buttons and "page-next" not in frame.buttons
    # another screen resets the page
    display.render(logged(screen="menu"), NOW, STATUS)
    frame = display.render(state, NOW, STATUS)
    assert f"item:{shelf[0].item}" in frame.buttons


@pytest.mark.parametrize("kind", ["loan", "return"])
def test_open_door(display, kind):
    job = DoorJob("j", kind, 7, "EM1000000017", "소년이 온다")
    state = logged(screen="open-door", job=job, door="unlocked", door_since=NOW - 8)
    frame = display.render(state, NOW, STATUS)
    assert set(frame.buttons) == {"lang"}
    assert "7번 보관함이 열렸습니다" in frame.texts and "소년이 온다" in frame.texts
    expect = "책을 꺼낸 뒤 문을 꼭 닫아 주세요" if kind == "loan" else "책을 넣은 뒤 문을 꼭 닫아 주세요"
    assert expect in frame.texts
    assert "22초 안에 문을 열어 주세요" in frame.texts  # 30 s timeout, 8 s gone
    frame = display.render(replace(state, door="open", door_since=NOW), NOW, STATUS)
    assert "문이 열려 있습니다. 닫아 주세요" in frame.texts and "문을 닫아 주세요" not in frame.texts
    frame = display.render(replace(state, door="open", door_warned=True), NOW, STATUS)
    assert "문을 닫아 주세요" in frame.texts
    frame = display.render(replace(state, lang="en"), NOW, STATUS)
    assert "Locker 7 is open" in frame.texts


def test_return_screen(display):
    frame = display.render(base(screen="return"), NOW, STATUS)
    assert {"cancel", "lang"} == set(frame.buttons)
    assert "반납할 책의 바코드를 스캐너에 보여 주세요" in frame.texts
    frame = display.render(base(screen="return", busy=True), NOW, STATUS)
    assert "확인 중…" in frame.texts


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_my_loans(display, lang):
    loans = (LoanLine("EM1", "소년이 온다", dt.date(2026, 11, 16)),
             LoanLine("EM2", "아몬드", dt.date(2026, 10, 30), overdue=True))
    frame = display.render(logged(lang, screen="my-loans", loans=loans), NOW, STATUS)
    assert {"cancel", "logout", "lang"} <= set(frame.buttons)
    assert t("back", lang) in frame.texts
    assert format_date(dt.date(2026, 11, 16), lang) in frame.texts
    assert t("loans.overdue", lang) in frame.texts
    if lang == "ko":
        assert "2026-11-16 (월)" in frame.texts and "연체" in frame.texts
    else:
        assert "Mon 16 Nov 2026" in frame.texts
    frame = display.render(logged(lang, screen="my-loans"), NOW, STATUS)
    assert t("loans.empty", lang) in frame.texts


def test_my_loans_pages(display):
    loans = tuple(LoanLine(f"EM{i}", f"책 {i}", TODAY) for i in range(20))
    frame = display.render(logged(screen="my-loans", loans=loans), NOW, STATUS)
    assert "page-next" in frame.buttons and "책 19" not in frame.texts


def refused_renewal(state: State, item: str) -> State:
    """`state` after the patron taps renew on `item` and the library refuses it."""
    state, effects = step(state, Tap(button=f"renew:{item}", at=NOW))
    assert effects == (Renew(state.member.member_id, item),)
    state, _ = step(state, Refused(refusal=refusal(Reason.RENEWAL_REFUSED), at=NOW))
    assert state.screen == "my-loans" and state.notice is not None
    return state


def numbered_loans(n: int) -> tuple[LoanLine, ...]:
    return tuple(LoanLine(f"EM{i:010d}", f"책 {i}", dt.date(2026, 11, 20)) for i in range(1, n + 1))


@pytest.mark.parametrize("target", ["EM0000000002", "EM0000000004"])
def test_tapping_the_same_spot_after_a_refused_renewal_never_renews_another_book(display, target):
    """My loans: the library refuses a renewal and the kiosk says why above the list. A patron
    who taps the same spot again (to try once more) reaches that book's renew button or none;
    the notice never slides another book's button under their finger."""
    state = logged(screen="my-loans", loans=numbered_loans(4))
    spot = display.render(state, NOW, STATUS).buttons[f"renew:{target}"].center
    state = refused_renewal(state, target)
    display.render(state, NOW, STATUS)
    assert touch(display, spot) in ([f"renew:{target}"], [])


def test_a_refused_renewal_leaves_every_loan_on_the_page_it_was_on(display):
    """My loans with more books than fit on one page: after a refused renewal the notice shows,
    and the page still offers the very same books; none is pushed onto another page."""
    state = logged(screen="my-loans", loans=numbered_loans(6))
    before = display.render(state, NOW, STATUS)
    after = display.render(refused_renewal(state, "EM0000000001"), NOW, STATUS)
    assert sorted(b for b in after.buttons if b.startswith("renew:")) == sorted(
        b for b in before.buttons if b.startswith("renew:"))


def test_receipts(display):
    loan = Receipt("loan", "EM1", "소년이 온다", 7, dt.date(2026, 11, 16))
    frame = display.render(logged(screen="receipt", receipt=loan), NOW, STATUS)
    assert {"confirm", "logout"} <= set(frame.buttons)
    assert {"대출이 완료되었습니다", "소년이 온다", "반납 예정일: 2026-11-16 (월)", "7번 보관함", "계속 이용하기",
            "끝내기"} <= set(frame.texts)
    frame = display.render(base(screen="receipt", receipt=Receipt("return", "EM1", "아몬드", 3)), NOW, STATUS)
    assert "logout" not in frame.buttons and "confirm" in frame.buttons
    assert {"반납이 완료되었습니다", "아몬드", "확인"} <= set(frame.texts)


def test_a_due_date_the_kiosk_cannot_read_is_shown_in_the_librarys_words(display):
    # e.g. Koha's format_due_date in the "us" or "metric" format: 12/06/2026 could be either
    loan = Receipt("loan", "EM1", "소년이 온다", 7, dt.date(2026, 11, 16), due_text="12/06/2026")
    frame = display.render(logged(screen="receipt", receipt=loan), NOW, STATUS)
    assert "반납 예정일: 12/06/2026" in frame.texts and not any("2026-11-16" in text for text in frame.texts)
    loans = (LoanLine("EM1", "소년이 온다", None, due_text="12/06/2026"),)
    frame = display.render(logged(screen="my-loans", loans=loans), NOW, STATUS)
    assert "12/06/2026" in frame.texts


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_error_screens(display, lang):
    for reason in Reason:
        why = refusal(reason, limit=5, amount=1500, date="2026-11-20", left=2, slot=7, count=2,
                      message="예약된 자료입니다")
        frame = display.render(base(lang, screen="error", notice=why), NOW, STATUS)
        what, nxt = reason_text(why, lang)
        assert what in frame.texts and nxt in frame.texts, reason
        assert "confirm" in frame.buttons and t("error.ok", lang) in frame.texts
    frame = display.render(base("ko", screen="error", notice=refusal(Reason.LIBRARY_LIMIT, limit=5)), NOW, STATUS)
    assert {"이 도서관의 대출 한도(5권)에 도달했습니다", "책을 반납한 뒤 다시 이용해 주세요"} <= set(frame.texts)
    frame = display.render(base("en", screen="error", notice=refusal(Reason.ILS_REFUSED, message="Hold for another")),
                           NOW, STATUS)
    assert "Hold for another" in frame.texts


def test_overlays(display):
    frame = display.render(logged(screen="menu", busy=True), NOW, STATUS)
    assert "잠시만 기다려 주세요…" in frame.texts
    state = logged(screen="menu", warned=True, last_activity=NOW - 78)  # 90 s inactivity: 12 s left
    frame = display.render(state, NOW, STATUS)
    assert "곧 자동으로 로그아웃됩니다 (12초)" in frame.texts
    assert set(frame.buttons) == {"stay", "lang"}  # the modal covers the rest
    assert click(display, "stay") == ["stay"]
    frame = display.render(logged(screen="menu"), NOW, replace(STATUS, offline=True, notices=("카드 리더 오류",)))
    assert "오프라인" in frame.texts and "카드 리더 오류" in frame.texts
    frame = display.render(logged("en", screen="menu"), NOW, replace(STATUS, offline=True))
    assert "Offline" in frame.texts


def test_small_screen_1024x600():
    with Display(width=1024, height=600, headless=True) as d:
        for name, state, now, status in gallery.samples("ko") + gallery.samples("en"):
            frame = d.render(state, now, status)
            assert "lang" in frame.buttons
            for bid, rect in frame.buttons.items():
                assert d._kiosk_rect.contains(rect), (name, bid, rect)
        frame = d.render(logged(screen="borrow", shelf=gallery.shelf(24)), NOW, STATUS)
        assert sum(1 for b in frame.buttons if b.startswith("item:")) == 24


# --------------------------------------------------------------------------- input


def test_click_returns_the_button_id(display):
    display.render(logged(screen="menu"), NOW, STATUS)
    display.poll()
    assert click(display, "borrow") == ["borrow"]
    assert click(display, "lang") == ["lang"]


def test_press_and_release_on_different_buttons_is_not_a_tap(display):
    frame = display.render(logged(screen="menu"), NOW, STATUS)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=frame.buttons["borrow"].center))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=frame.buttons["return"].center))
    assert display.poll() == []


def test_finger_events_are_not_counted_twice(display):
    frame = display.render(logged(screen="menu"), NOW, STATUS)
    pos = frame.buttons["my-loans"].center
    w, h = display.size
    # what SDL sends for one touch: the finger events and the synthesised mouse events
    pygame.event.post(pygame.event.Event(pygame.FINGERDOWN, touch_id=1, finger_id=0, x=pos[0] / w, y=pos[1] / h,
                                         dx=0, dy=0, pressure=1))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=pos, touch=True))
    pygame.event.post(pygame.event.Event(pygame.FINGERUP, touch_id=1, finger_id=0, x=pos[0] / w, y=pos[1] / h,
                                         dx=0, dy=0, pressure=0))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=pos, touch=True))
    assert display.poll() == ["my-loans"]
    # finger events alone do nothing
    pygame.event.post(pygame.event.Event(pygame.FINGERDOWN, touch_id=1, finger_id=0, x=pos[0] / w, y=pos[1] / h,
                                         dx=0, dy=0, pressure=1))
    pygame.event.post(pygame.event.Event(pygame.FINGERUP, touch_id=1, finger_id=0, x=pos[0] / w, y=pos[1] / h,
                                         dx=0, dy=0, pressure=0))
    assert display.poll() == []


def test_quit_on_close_and_escape(display):
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0, unicode="\x1b", scancode=41))
    assert display.poll() == ["quit", "quit"]


def test_panel_buttons_and_shortcuts():
    panel = [PanelButton("sim:card:04A1B2C3", "회원 카드 1 (정상)", key="1", group="카드 리더"),
             PanelButton("sim:barcode:EM1000000017", "책 바코드", group="바코드"),
             PanelButton("sim:door-open", "문 열기", key="o", group="보관함 문")]
    with Display(headless=True, panel=panel) as d:
        frame = d.render(base(), NOW, STATUS)
        assert pygame.display.get_surface().get_size() == (1280 + 320, 800)
        assert not any(b.startswith("sim:") for b in frame.buttons)
        assert not any("회원 카드" in text for text in frame.texts)  # the panel is not the kiosk
        rect = d._panel_rects["sim:barcode:EM1000000017"]
        assert rect.x >= 1280
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=rect.center))
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=rect.center))
        assert d.poll() == ["sim:barcode:EM1000000017"]
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_1, mod=0, unicode="1", scancode=30))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_o, mod=0, unicode="o", scancode=18))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_x, mod=0, unicode="x", scancode=27))
        assert d.poll() == ["sim:card:04A1B2C3", "sim:door-open"]


def test_screenshot_is_the_kiosk_screen(tmp_path):
    panel = [PanelButton("sim:door-open", "문 열기", key="o")]
    with Display(width=1024, height=600, headless=True, panel=panel) as d:
        d.render(base(), NOW, STATUS)
        path = tmp_path / "shots" / "idle.png"
        d.screenshot(path)
        assert pygame.image.load(str(path)).get_size() == (1024, 600)


def test_close_is_idempotent_and_a_closed_display_refuses_to_draw():
    d = Display(headless=True)
    d.close()
    d.close()
    with pytest.raises(RuntimeError):
        d.render(base(), NOW, STATUS)


# --------------------------------------------------------------------------- fonts


def test_hangul_renders_with_the_cjk_font(display):
    assert display.korean and theme.korean_font_available()
    font = display.fonts.font(32)
    assert theme.draws_hangul(font)
    hangul = font.render("한글", True, (0, 0, 0))
    tofu = font.render("\u0378\u0378", True, (0, 0, 0))  # unassigned: the notdef box
    assert pygame.image.tobytes(hangul, "RGBA") != pygame.image.tobytes(tofu, "RGBA")
    assert not theme.draws_hangul(pygame.font.Font(None, 32))  # pygame's own font has no Hangul


def test_font_discovery_order(tmp_path):
    assert theme.find_fonts().regular == theme.NOTO_REGULAR
    assert theme.find_fonts().bold == theme.NOTO_BOLD
    fake = tmp_path / "x.ttf"
    fake.write_bytes(b"")
    assert theme.find_fonts(str(fake)).regular == str(fake)
    assert theme.find_fonts(str(tmp_path / "missing.ttf")).regular == theme.NOTO_REGULAR


def test_text_cache_reuses_surfaces(display):
    a = display.fonts.render("대출하기", 28, (0, 0, 0), True)
    assert display.fonts.render("대출하기", 28, (0, 0, 0), True) is a


# --------------------------------------------------------------------------- translations


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_reason_text_covers_every_reason(lang):
    for reason in Reason:
        for r in (Refusal(reason), refusal(reason, limit=5, amount=1500, date="2026-11-20", left=2, slot=7,
                                           count=3, message="메시지")):
            what, nxt = reason_text(r, lang)
            assert what and nxt, (reason, lang)
            assert "{" not in what + nxt, (reason, lang)
            assert what != "r." + reason.value and not nxt.startswith("r."), (reason, lang)


def test_reason_text_details():
    assert reason_text(refusal(Reason.BLOCKED), "ko") == ("대출이 정지된 회원증입니다", "도서관 안내데스크에 문의해 주세요")
    assert reason_text(refusal(Reason.LIBRARY_LIMIT, limit=5), "ko")[0] == "이 도서관의 대출 한도(5권)에 도달했습니다"
    assert "1,500원" in reason_text(refusal(Reason.FINES, amount=1500), "ko")[0]
    assert "₩1,500" in reason_text(refusal(Reason.FINES, amount=1500), "en")[0]
    assert "2026-11-20 (금)" in reason_text(refusal(Reason.SUSPENDED, date="2026-11-20"), "ko")[0]
    assert "Fri 20 Nov 2026" in reason_text(refusal(Reason.SUSPENDED, date="2026-11-20"), "en")[0]
    assert "7번" in reason_text(refusal(Reason.DOOR_TIMEOUT, slot=7), "ko")[0]
    assert reason_text(refusal(Reason.ILS_REFUSED, message="연체 중입니다"), "en")[0] == "연체 중입니다"
    assert "1 overdue book" in reason_text(refusal(Reason.OVERDUE, count=1), "en")[0]


def test_both_languages_have_the_same_keys():
    extra_en = {"r.overdue.one"}  # English plural only
    assert set(STRINGS["ko"]) == set(STRINGS["en"]) - extra_en


def test_formats():
    assert format_date(dt.date(2026, 11, 16), "ko") == "2026-11-16 (월)"
    assert format_date(dt.date(2026, 11, 16), "en") == "Mon 16 Nov 2026"
    assert format_won(1500, "ko") == "1,500원"
    assert t("locker", "ko", n=3) == "3번 보관함"
