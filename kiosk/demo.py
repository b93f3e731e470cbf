"""Demo data, the same in every part of the product: members, cards, PINs and a Korean catalog.

Members 1-3 are the ones the README and the scenarios use:
  11110100000001  card 04A1B2C3  PIN 1234  in good standing
  11110100000002  card 04A1B2C4  PIN 1234  blocked for unpaid fines
  11110100000003  card 04A1B2C5  PIN 1234  already at the per-library limit (5 loans)
Items EM0000000001… (등록번호); lockers 1-24 hold EM0000000001…EM0000000024 at start.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

LIBRARY_CODE = "111101"
DEMO_PIN = "1234"


@dataclass(frozen=True)
class DemoMember:
    member_id: str  # 책이음 number: library code + 8 digits
    card_uid: str  # the card's UID as registered (hex, reading order)
    name: str
    pin: str = DEMO_PIN
    blocked: bool = False
    card_lost: bool = False
    fines_won: int = 0
    expires_in_days: int = 900  # relative to the day the demo starts
    suspended_days: int = 0  # 대출정지: days of loan ban left
    loans_elsewhere: int = 0  # loans at other 책이음 libraries
    note: str = ""


def _member(n: int, name: str, **kw: object) -> DemoMember:
    return DemoMember(f"{LIBRARY_CODE}{n:08d}", f"04A1B2{0xC2 + n:02X}", name, **kw)  # type: ignore[arg-type]


MEMBERS: tuple[DemoMember, ...] = (
    _member(1, "김민준", note="in good standing"),
    _member(2, "이서연", fines_won=3500, note="blocked for unpaid fines (over the fine limit)"),
    _member(3, "박지훈", note="at the per-library limit (5 loans)"),
    _member(4, "최수아", expires_in_days=-30, note="membership expired"),
    _member(5, "정우진", suspended_days=7, note="loan ban (대출정지) for a late return"),
    _member(6, "강하은", card_lost=True, note="card reported lost"),
    _member(7, "조예준", loans_elsewhere=30, note="at the network-wide 책이음 limit"),
    _member(8, "윤지우", note="has an overdue loan"),
    _member(9, "장도윤"),
    _member(10, "임서윤"),
    _member(11, "한시우"),
    _member(12, "오하린"),
    _member(13, "서주원"),
    _member(14, "신지아"),
    _member(15, "권건우"),
    _member(16, "황유나"),
    _member(17, "안현우"),
    _member(18, "송채원"),
    _member(19, "전민서"),
    _member(20, "홍길동"),
    _member(21, "문소율"),
    _member(22, "배은우"),
)

# (title, author): real Korean books and well-known translations.
CATALOG: tuple[tuple[str, str], ...] = (
    ("채식주의자", "한강"), ("소년이 온다", "한강"), ("작별하지 않는다", "한강"),
    ("82년생 김지영", "조남주"), ("아몬드", "손원평"), ("불편한 편의점", "김호연"),
    ("달러구트 꿈 백화점", "이미예"), ("토지 1", "박경리"), ("태백산맥 1", "조정래"),
    ("아리랑 1", "조정래"), ("난장이가 쏘아올린 작은 공", "조세희"), ("엄마를 부탁해", "신경숙"),
    ("외딴방", "신경숙"), ("살인자의 기억법", "김영하"), ("빛의 제국", "김영하"),
    ("여행의 이유", "김영하"), ("칼의 노래", "김훈"), ("남한산성", "김훈"),
    ("하얼빈", "김훈"), ("고래", "천명관"), ("7년의 밤", "정유정"),
    ("종의 기원", "정유정"), ("시선으로부터,", "정세랑"), ("보건교사 안은영", "정세랑"),
    ("피프티 피플", "정세랑"), ("쇼코의 미소", "최은영"), ("밝은 밤", "최은영"),
    ("내게 무해한 사람", "최은영"), ("바깥은 여름", "김애란"), ("두근두근 내 인생", "김애란"),
    ("완득이", "김려령"), ("위저드 베이커리", "구병모"), ("파과", "구병모"),
    ("우리가 빛의 속도로 갈 수 없다면", "김초엽"), ("지구 끝의 온실", "김초엽"), ("천 개의 파랑", "천선란"),
    ("대도시의 사랑법", "박상영"), ("안녕, 주정뱅이", "권여선"), ("모순", "양귀자"),
    ("원미동 사람들", "양귀자"), ("무진기행", "김승옥"), ("광장", "최인훈"),
    ("삼대", "염상섭"), ("탁류", "채만식"), ("운수 좋은 날", "현진건"),
    ("메밀꽃 필 무렵", "이효석"), ("진달래꽃", "김소월"), ("하늘과 바람과 별과 시", "윤동주"),
    ("님의 침묵", "한용운"), ("입 속의 검은 잎", "기형도"), ("서른, 잔치는 끝났다", "최영미"),
    ("마당을 나온 암탉", "황선미"), ("괭이부리말 아이들", "김중미"), ("몽실 언니", "권정생"),
    ("강아지똥", "권정생"), ("구름빵", "백희나"), ("알사탕", "백희나"),
    ("나의 문화유산답사기 1", "유홍준"), ("어떻게 살 것인가", "유시민"), ("역사의 역사", "유시민"),
    ("지적 대화를 위한 넓고 얕은 지식", "채사장"), ("정재승의 과학 콘서트", "정재승"), ("열두 발자국", "정재승"),
    ("떨림과 울림", "김상욱"), ("언어의 온도", "이기주"), ("자존감 수업", "윤홍균"),
    ("트렌드 코리아 2026", "김난도 외"), ("돈의 속성", "김승호"), ("메리골드 마음 세탁소", "윤정은"),
    ("서울 자가에 대기업 다니는 김 부장 이야기 1", "송희구"), ("붕대 감기", "윤이형"), ("설민석의 한국사 대모험 1", "설민석"),
    ("나미야 잡화점의 기적", "히가시노 게이고"), ("어린 왕자", "앙투안 드 생텍쥐페리"), ("데미안", "헤르만 헤세"),
    ("사피엔스", "유발 하라리"), ("총, 균, 쇠", "재레드 다이아몬드"), ("코스모스", "칼 세이건"),
    ("이기적 유전자", "리처드 도킨스"), ("정의란 무엇인가", "마이클 샌델"), ("공정하다는 착각", "마이클 샌델"),
    ("미움받을 용기", "기시미 이치로"), ("사랑의 기술", "에리히 프롬"), ("죽음의 수용소에서", "빅터 프랭클"),
    ("아주 작은 습관의 힘", "제임스 클리어"), ("도둑맞은 집중력", "요한 하리"), ("물고기는 존재하지 않는다", "룰루 밀러"),
    ("이처럼 사소한 것들", "클레어 키건"), ("나의 라임 오렌지나무", "J. M. 바스콘셀로스"), ("모모", "미하엘 엔데"),
    ("작은 아씨들", "루이자 메이 올컷"), ("해리 포터와 마법사의 돌", "J. K. 롤링"), ("파친코 1", "이민진"),
    ("세상의 마지막 기차역", "무라세 다케시"), ("미드나잇 라이브러리", "매트 헤이그"), ("연금술사", "파울로 코엘료"),
    ("노인과 바다", "어니스트 헤밍웨이"), ("1984", "조지 오웰"), ("동물농장", "조지 오웰"),
    ("위대한 개츠비", "F. 스콧 피츠제럴드"),
)


def accession(n: int) -> str:
    return f"EM{n:010d}"


def items() -> list[tuple[str, str, str]]:
    """(accession, title, author) for the whole demo catalog."""
    return [(accession(n), title, author) for n, (title, author) in enumerate(CATALOG, start=1)]


def seed_loans(today: dt.date) -> list[tuple[str, str, dt.date, dt.date]]:
    """Loans the members already have: (item, member, loaned on, due)."""
    loans = []
    for k in range(5):  # member 3 is at the per-library limit of 5
        loans.append((accession(25 + k), MEMBERS[2].member_id, today - dt.timedelta(days=3 + k),
                      today + dt.timedelta(days=11 - k)))
    loans.append((accession(30), MEMBERS[7].member_id, today - dt.timedelta(days=20),
                  today - dt.timedelta(days=6)))  # member 8: overdue
    loans.append((accession(31), MEMBERS[8].member_id, today - dt.timedelta(days=2),
                  today + dt.timedelta(days=12)))
    return loans
