"""Render every screen from representative sample states to PNGs, for design review.

    python -m ui.gallery OUTDIR [--lang ko|en] [--size 1280x800]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.rules import Reason, Standing, refusal
from kiosk.session import DoorJob, LoanLine, Receipt, Settings, ShelfItem, State

if TYPE_CHECKING:
    from ui.display import Status

TODAY = dt.date(2026, 11, 2)
WALL = dt.datetime(2026, 11, 2, 14, 5)
NOW = 1000.0

_BOOKS = (
    ("채식주의자", "한강"), ("소년이 온다", "한강"), ("아몬드", "손원평"), ("불편한 편의점", "김호연"),
    ("82년생 김지영", "조남주"), ("달러구트 꿈 백화점", "이미예"), ("지구에서 한아뿐", "정세랑"),
    ("파친코 1", "이민진 (신혜빈 옮김)"), ("죽고 싶지만 떡볶이는 먹고 싶어", "백세희"),
    ("어떻게 말해줘야 할지 몰랐던 나를 위한 다정한 심리학 수업", "김아무개"), ("코스모스", "칼 세이건"),
    ("사피엔스", "유발 하라리"), ("총, 균, 쇠", "재레드 다이아몬드"), ("미움받을 용기", "기시미 이치로, 고가 후미타케"),
    ("トットちゃん 창가의 토토", "구로야나기 데쓰코"), ("The Little Prince", "Antoine de Saint-Exupéry"),
    ("작별하지 않는다", "한강"), ("피프티 피플", "정세랑"), ("역행자", "자청"), ("세이노의 가르침", "세이노"),
    ("밝은 밤", "최은영"), ("쇼코의 미소", "최은영"), ("트렌드 코리아 2026", "김난도 외"), ("해리 포터와 마법사의 돌", "J.K. 롤링"),
    ("서울 골목길 산책", "박서울"), ("나의 라임 오렌지나무", "J.M. 바스콘셀로스"), ("데미안", "헤르만 헤세"),
    ("어린 왕자", "생텍쥐페리"), ("모모", "미하엘 엔데"), ("연금술사", "파울로 코엘료"),
)


def shelf(n: int) -> tuple[ShelfItem, ...]:
    """n sample books in lockers 1..n."""
    return tuple(ShelfItem(i + 1, f"EM{1000000000 + 17 * i:010d}", *_BOOKS[i % len(_BOOKS)]) for i in range(n))


def member(**changes: object) -> Standing:
    base = Standing("29010000123456", "홍길동", loans_here=2, loans_network=3)
    return replace(base, **changes)


def samples(lang: str = "ko") -> list[tuple[str, State, float, Status]]:
    """(name, state, now, status) for every screen and the notable variants of each."""
    from ui.display import Status

    settings = Settings(language=lang)
    base = State(settings=settings, lang=lang, today=TODAY, last_activity=NOW, screen_since=NOW)
    st = Status("서울역 스마트도서관", WALL)
    who = member()
    loan_job = DoorJob("j1", "loan", 7, "EM1000000017", "소년이 온다", who.member_id, TODAY + dt.timedelta(days=14))
    ret_job = DoorJob("j2", "return", 15, "EM1000000102", "죽고 싶지만 떡볶이는 먹고 싶어")
    loans = (
        LoanLine("EM1000000017", "소년이 온다", TODAY + dt.timedelta(days=14)),
        LoanLine("EM1000000034", "달러구트 꿈 백화점", TODAY + dt.timedelta(days=5)),
        LoanLine("EM1000000051", "어떻게 말해줘야 할지 몰랐던 나를 위한 다정한 심리학 수업", TODAY - dt.timedelta(days=3), True),
    )
    logged = replace(base, member=who)
    out = [
        ("01-idle", base, NOW, st),
        ("02-idle-offline", base, NOW, replace(st, offline=True, notices=("카드 리더 응답 없음",))),
        ("03-pin", replace(base, screen="pin", credential="04A1B2C3", pin="12"), NOW, st),
        ("04-pin-wrong", replace(base, screen="pin", credential="04A1B2C3", pin="",
                                 notice=refusal(Reason.WRONG_PIN, left=2)), NOW, st),
        ("05-pin-ready", replace(base, screen="pin", credential="04A1B2C3", pin="1234"), NOW, st),
        ("06-menu", replace(logged, screen="menu"), NOW, st),
        ("07-borrow", replace(logged, screen="borrow", shelf=shelf(24), selected=shelf(24)[5].item), NOW, st),
        ("08-borrow-paged", replace(logged, screen="borrow", shelf=shelf(30)), NOW, st),
        ("09-borrow-loading", replace(logged, screen="borrow", busy=True), NOW + 0.3, st),
        ("10-borrow-empty", replace(logged, screen="borrow"), NOW, st),
        ("11-door-unlocked", replace(logged, screen="open-door", job=loan_job, door="unlocked",
                                     door_since=NOW - 8), NOW, st),
        ("12-door-open-return", replace(base, screen="open-door", job=ret_job, door="open", door_since=NOW - 5), NOW, st),
        ("13-door-left-open", replace(logged, screen="open-door", job=loan_job, door="open", door_since=NOW - 70,
                                      door_warned=True), NOW, st),
        ("14-return", replace(base, screen="return"), NOW, st),
        ("15-return-checking", replace(base, screen="return", busy=True), NOW + 0.4, st),
        ("16-my-loans", replace(logged, screen="my-loans", loans=loans), NOW, st),
        ("17-my-loans-empty", replace(logged, screen="my-loans"), NOW, st),
        ("18-receipt-loan", replace(logged, screen="receipt", receipt=Receipt("loan", loan_job.item, loan_job.title, 7,
                                                                            loan_job.due)), NOW + 3, st),
        ("18b-receipt-loan-due-as-the-library-wrote-it",
         replace(logged, screen="receipt", receipt=Receipt("loan", loan_job.item, loan_job.title, 7, loan_job.due,
                                                           due_text="12/06/2026")), NOW + 3, st),
        ("19-receipt-return", replace(base, screen="receipt", receipt=Receipt("return", ret_job.item, ret_job.title, 15)),
         NOW + 3, st),
        ("20-inactivity-warning", replace(logged, screen="menu", warned=True, last_activity=NOW - 78), NOW, st),
        ("21-busy", replace(logged, screen="menu", busy=True), NOW + 0.2, st),
        ("16b-my-loans-renewed", replace(logged, screen="my-loans", loans=(replace(loans[0], renewed=True),) + loans[1:],
                                         notice=refusal(Reason.RENEWAL_REFUSED, message="예약된 자료입니다")), NOW, st),
    ]
    errors = (
        refusal(Reason.LIBRARY_LIMIT, limit=5), refusal(Reason.FINES, amount=1500),
        refusal(Reason.SUSPENDED, date="2026-11-20"), refusal(Reason.NOT_OUR_ITEM),
        refusal(Reason.NO_EMPTY_LOCKER), refusal(Reason.DOOR_TIMEOUT, slot=7),
        refusal(Reason.ILS_UNAVAILABLE), refusal(Reason.ILS_REFUSED, message="예약된 자료라 대출할 수 없습니다. 예약자: 김**"),
        refusal(Reason.PIN_LOCKED),
        refusal(Reason.ON_HOLD, message="다른 이용자가 예약한 자료입니다"),
        refusal(Reason.PIN_LOCKED, offline="yes"),  # wrong PINs counted by the kiosk while offline
        refusal(Reason.NETWORK_LIMIT, limit=30, message="책이음 통합 대출 한도(30권)를 초과했습니다"),
    )
    for i, why in enumerate(errors):
        holder = logged if why.reason not in (Reason.NOT_OUR_ITEM, Reason.NO_EMPTY_LOCKER, Reason.PIN_LOCKED) else base
        out.append((f"{22 + i}-error-{why.reason.value}", replace(holder, screen="error", notice=why), NOW + 2, st))
    return out


def main(argv: list[str] | None = None) -> int:
    """Write one PNG per sample state into OUTDIR; print their paths."""
    parser = argparse.ArgumentParser(prog="python -m ui.gallery", description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--lang", choices=("ko", "en"), default="ko")
    parser.add_argument("--size", default="1280x800", help="WIDTHxHEIGHT of the kiosk screen")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from ui.display import Display

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    with Display(width=width, height=height, headless=True) as display:
        if not display.korean:
            print("warning: no Korean font found; Korean text will not render", file=sys.stderr)
        for name, state, now, status in samples(args.lang):
            display.render(state, now, status)
            path = out / f"{name}-{args.lang}.png"
            display.screenshot(path)
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
