"""Every string the patron sees, in Korean (first) and English, plus dates, money and refusals.

`t(key, lang, **kw)` formats a string; `reason_text(refusal, lang)` gives (what happened, what to
do next) for every `Reason`. Korean follows the polite style of public-library notices
(합쇼체 for facts, "~해 주세요" for requests).
"""

from __future__ import annotations

import datetime as dt

from kiosk.rules import Reason, Refusal

LANGS = ("ko", "en")

STRINGS: dict[str, dict[str, str]] = {
    "ko": {
        # header
        "lang.switch": "English",
        "offline": "오프라인",
        # idle
        "idle.welcome": "어서 오세요",
        "idle.tagline": "책을 빌리고 반납하는 무인 스마트도서관입니다",
        "idle.how": "도서관 회원증을 카드 리더에 대거나, 모바일 회원증 바코드를 스캐너에 보여 주세요",
        "idle.step.card": "회원증 태그",
        "idle.or": "또는",
        "idle.step.phone": "모바일 회원증",
        "idle.return": "책 반납하기",
        "idle.return.sub": "회원증 없이 바로 반납할 수 있습니다",
        "idle.hint": "대출하려면 먼저 회원 인증을 해 주세요",
        # pin
        "pin.title": "비밀번호를 입력해 주세요",
        "pin.sub": "회원증 비밀번호 {min}자리 이상을 입력한 뒤 확인을 눌러 주세요",
        "pin.del": "지우기",
        "pin.ok": "확인",
        "pin.privacy": "비밀번호는 화면에 표시되지 않습니다",
        # menu
        "menu.greeting": "{name}님, 안녕하세요",
        "menu.sub": "원하시는 서비스를 선택해 주세요",
        "menu.greeting.anon": "회원님, 안녕하세요",
        "menu.loans.here": "이 도서관 대출",
        "menu.loans.network": "책이음 전체 대출",
        "menu.count": "{n} / {limit}권",
        "menu.borrow": "대출하기",
        "menu.borrow.sub": "보관함의 책을 골라 빌립니다",
        "menu.return": "반납하기",
        "menu.return.sub": "빈 보관함에 책을 넣습니다",
        "menu.loans": "내 대출 현황",
        "menu.loans.sub": "빌린 책과 반납 예정일",
        "logout": "로그아웃",
        # borrow
        "borrow.title": "대출할 책을 골라 주세요",
        "borrow.count": "보관함에 있는 책 {n}권",
        "borrow.confirm": "대출하고 보관함 열기",
        "borrow.pick": "책을 먼저 골라 주세요",
        "borrow.empty": "지금 보관함에 빌릴 수 있는 책이 없습니다",
        "borrow.empty.sub": "새 책은 매일 채워집니다. 다음에 다시 들러 주세요",
        "borrow.loading": "보관함의 책을 불러오는 중입니다…",
        "locker": "{n}번 보관함",
        "locker.short": "보관함",
        "locker.no": "{n}번",
        "back": "뒤로",
        "cancel": "취소",
        "page": "{page} / {pages}",
        "prev": "이전",
        "next": "다음",
        # open door
        "door.opened": "{n}번 보관함이 열렸습니다",
        "door.take": "책을 꺼낸 뒤 문을 꼭 닫아 주세요",
        "door.put": "책을 넣은 뒤 문을 꼭 닫아 주세요",
        "door.countdown": "{s}초 안에 문을 열어 주세요",
        "door.countdown.sub": "시간이 지나면 문이 다시 잠기고 요청이 취소됩니다",
        "door.open": "문이 열려 있습니다. 닫아 주세요",
        "door.close.now": "문을 닫아 주세요",
        "door.close.sub": "문이 오래 열려 있습니다. 문을 닫아야 처리가 끝납니다",
        "door.recording": "기록하는 중입니다…",
        "door.map": "보관함 위치",
        "door.book.loan": "대출할 책",
        "door.book.return": "반납할 책",
        # return
        "return.title": "반납할 책의 바코드를 스캐너에 보여 주세요",
        "return.sub": "책에 붙은 도서관 바코드 라벨을 스캐너 앞에 천천히 대 주세요",
        "return.step1": "바코드 라벨 찾기",
        "return.step2": "스캐너에 비추기",
        "return.step3": "열린 보관함에 넣기",
        "return.checking": "확인 중…",
        # my loans
        "loans.title": "내 대출 현황",
        "loans.count": "대출 중인 책 {n}권",
        "loans.overdue.count": "연체 {n}권",
        "loans.due": "반납 예정일",
        "loans.overdue": "연체",
        "loans.empty": "지금 대출 중인 책이 없습니다",
        "loans.empty.sub": "보관함에서 읽고 싶은 책을 골라 보세요",
        "loans.loading": "대출 목록을 불러오는 중입니다…",
        "loans.renew": "연장",
        "loans.renewed": "연장됨",
        # receipt
        "receipt.loan": "대출이 완료되었습니다",
        "receipt.return": "반납이 완료되었습니다",
        "receipt.due": "반납 예정일: {date}",
        "receipt.thanks.loan": "즐거운 독서 되세요",
        "receipt.thanks.return": "이용해 주셔서 감사합니다",
        "receipt.continue": "계속 이용하기",
        "receipt.ok": "확인",
        "receipt.finish": "끝내기",
        "receipt.auto": "{s}초 후 자동으로 닫힙니다",
        # error
        "error.ok": "확인",
        "error.ils": "도서관 안내",
        # overlays
        "busy": "잠시만 기다려 주세요…",
        "warn.title": "곧 자동으로 로그아웃됩니다 ({s}초)",
        "warn.sub": "계속 이용하시려면 아래 버튼을 눌러 주세요",
        "warn.stay": "계속 이용하기",
        # refusals
        "r.blocked": "대출이 정지된 회원증입니다",
        "r.blocked.next": "도서관 안내데스크에 문의해 주세요",
        "r.card-lost": "분실 신고된 회원증입니다",
        "r.card-lost.next": "신분증을 가지고 도서관 안내데스크에 문의해 주세요",
        "r.expired": "회원 자격이 만료되었습니다 ({date} 만료)",
        "r.expired.generic": "회원 자격이 만료되었습니다",
        "r.expired.next": "안내데스크나 도서관 홈페이지에서 회원 자격을 갱신해 주세요",
        "r.fines": "미납 연체료 {amount}이 있습니다",
        "r.fines.generic": "미납 연체료가 있습니다",
        "r.fines.next": "안내데스크에서 연체료를 납부한 뒤 다시 이용해 주세요",
        "r.suspended": "{date}까지 대출이 정지되어 있습니다",
        "r.suspended.generic": "대출 정지 기간입니다",
        "r.suspended.next": "정지 기간이 끝난 뒤 다시 이용해 주세요. 반납은 지금도 할 수 있습니다",
        "r.overdue": "반납 기한이 지난 책이 {count}권 있습니다",
        "r.overdue.generic": "반납 기한이 지난 책이 있습니다",
        "r.overdue.next": "연체된 책을 먼저 반납한 뒤 다시 이용해 주세요",
        "r.library-limit": "이 도서관의 대출 한도({limit}권)에 도달했습니다",
        "r.library-limit.generic": "이 도서관의 대출 한도에 도달했습니다",
        "r.library-limit.next": "책을 반납한 뒤 다시 이용해 주세요",
        "r.network-limit": "책이음 전체 대출 한도({limit}권)에 도달했습니다",
        "r.network-limit.generic": "책이음 전체 대출 한도에 도달했습니다",
        "r.network-limit.next": "다른 도서관에서 빌린 책을 반납한 뒤 다시 이용해 주세요",
        "r.unknown-card": "등록되지 않은 카드입니다",
        "r.unknown-card.next": "도서관 회원증이 맞는지 확인해 주세요. 계속 안 되면 안내데스크에 문의해 주세요",
        "r.unknown-barcode": "인식할 수 없는 바코드입니다",
        "r.unknown-barcode.next": "회원증이나 책에 붙은 도서관 바코드를 다시 보여 주세요",
        "r.wrong-pin": "비밀번호가 틀렸습니다. 남은 횟수: {left}회",
        "r.wrong-pin.generic": "비밀번호가 틀렸습니다",
        "r.wrong-pin.next": "비밀번호를 다시 입력해 주세요",
        "r.pin-locked": "비밀번호를 여러 번 틀려 로그인할 수 없습니다",
        "r.pin-locked.next": "안내데스크에 문의하시거나 도서관 홈페이지에서 비밀번호를 다시 설정해 주세요",
        "r.pin-locked.offline": "비밀번호를 여러 번 틀려, 도서관 시스템에 연결되지 않은 지금은 이 회원증으로 로그인할 수 없습니다",
        "r.pin-locked.offline.next": "반납은 지금도 할 수 있습니다. 연결이 돌아온 뒤 다시 로그인하시거나 안내데스크에 문의해 주세요",
        "r.not-our-item": "이 도서관의 책이 아닙니다",
        "r.not-our-item.next": "책을 빌린 도서관에 반납해 주세요",
        "r.isbn-not-copy": "ISBN 바코드로는 처리할 수 없습니다",
        "r.isbn-not-copy.next": "책에 붙은 도서관 바코드 라벨을 스캐너에 보여 주세요",
        "r.already-in-locker": "이미 보관함에 반납된 책입니다",
        "r.already-in-locker.next": "다른 책이라면 바코드를 다시 보여 주시고, 도움이 필요하면 안내데스크에 문의해 주세요",
        "r.item-not-available": "선택하신 책은 지금 대출할 수 없습니다",
        "r.item-not-available.next": "다른 책을 골라 주세요",
        "r.system-fault": "일시적인 오류로 요청을 처리하지 못했습니다",
        "r.system-fault.next": "잠시 후 다시 시도해 주세요. 계속되면 안내데스크에 문의해 주세요",
        "r.no-empty-locker": "빈 보관함이 없어 지금은 반납할 수 없습니다",
        "r.no-empty-locker.next": "가까운 다른 스마트도서관이나 도서관 안내데스크에 반납해 주세요",
        "r.door-timeout": "{slot}번 보관함 문을 제시간에 열지 않아 대출이 취소되었습니다",
        "r.door-timeout.return": "{slot}번 보관함 문을 제시간에 열지 않아 반납이 취소되었습니다",
        "r.door-timeout.generic": "보관함 문을 제시간에 열지 않아 대출이 취소되었습니다",
        "r.door-timeout.next": "처음부터 다시 시도해 주세요",
        "r.lock-fault": "{slot}번 보관함 문이 열리지 않습니다",
        "r.lock-fault.generic": "보관함 문이 열리지 않습니다",
        "r.lock-fault.next": "불편을 드려 죄송합니다. 다른 책을 이용하시거나 안내데스크에 문의해 주세요",
        "r.store-fault": "기기에 일시적인 문제가 생겼습니다",
        "r.store-fault.next": "잠시 후 다시 시도해 주세요. 계속되면 안내데스크에 문의해 주세요",
        "r.ils-unavailable": "도서관 시스템이 응답하지 않습니다",
        "r.ils-unavailable.next": "잠시 후 다시 시도해 주세요",
        "r.ils-refused": "도서관 시스템이 요청을 처리하지 못했습니다",
        "r.ils-refused.next": "자세한 내용은 도서관 안내데스크에 문의해 주세요",
        "r.on-hold": "다른 회원이 예약한 책입니다",
        "r.on-hold.next": "다른 책을 골라 주세요. 이 책은 예약 순서대로 대출됩니다",
        "r.charged-elsewhere": "이 책은 도서관 기록에 다른 회원에게 대출 중으로 되어 있습니다",
        "r.charged-elsewhere.next": "다른 책을 골라 주세요. 직원이 확인하겠습니다",
        "r.renewal-refused": "이 책은 대출을 연장할 수 없습니다",
        "r.renewal-refused.next": "예약이 있거나 연장 횟수를 다 쓴 책입니다. 반납일까지 반납해 주세요",
        "r.renewal-refused.unconfirmed": "앞서 요청하신 대출 연장이 처리되었는지 확인할 수 없습니다",
        "r.renewal-refused.unconfirmed.next": "두 번 연장되지 않도록 다시 요청하지 않습니다. 안내데스크에 문의해 주세요",
        "r.offline-new-member": "지금은 도서관 시스템에 연결할 수 없어 처음 이용하시는 회원증으로는 대출할 수 없습니다",
        "r.offline-new-member.next": "반납은 지금도 할 수 있습니다. 대출은 연결이 돌아온 뒤 다시 시도해 주세요",
        "r.offline-limit": "연결이 끊긴 동안에는 {limit}권까지만 빌릴 수 있습니다",
        "r.offline-limit.generic": "연결이 끊긴 동안 빌릴 수 있는 만큼 모두 빌리셨습니다",
        "r.offline-limit.next": "도서관 시스템에 다시 연결되면 더 빌릴 수 있습니다",
        "r.out-of-service": "이 스마트도서관은 점검 중이라 지금은 이용할 수 없습니다",
        "r.out-of-service.next": "직원에게 알렸습니다. 가까운 도서관에서 대출과 반납을 해 주세요",
        "r.offline-no-lending": "도서관 시스템에 연결할 수 없어 지금은 대출할 수 없습니다",
        "r.offline-no-lending.next": "반납은 지금도 할 수 있습니다. 대출은 잠시 후 다시 시도해 주세요",
        "menu.offline": "도서관 시스템과 연결이 끊겨 오프라인으로 운영 중입니다. {limit}권까지 빌릴 수 있으며, 대출 기록은 연결되는 대로 도서관에 전달됩니다",
    },
    "en": {
        "lang.switch": "한국어",
        "offline": "Offline",
        "idle.welcome": "Welcome",
        "idle.tagline": "Borrow and return books here, any time",
        "idle.how": "Tap your library card on the card reader, or show your mobile library card barcode to the scanner",
        "idle.step.card": "Library card",
        "idle.or": "or",
        "idle.step.phone": "Mobile card",
        "idle.return": "Return a book",
        "idle.return.sub": "No library card needed",
        "idle.hint": "To borrow, sign in with your library card first",
        "pin.title": "Enter your PIN",
        "pin.sub": "Enter your library card PIN ({min} digits or more), then press OK",
        "pin.del": "Delete",
        "pin.ok": "OK",
        "pin.privacy": "Your PIN is never shown on screen",
        "menu.greeting": "Hello, {name}",
        "menu.sub": "What would you like to do?",
        "menu.greeting.anon": "Hello",
        "menu.loans.here": "Loans here",
        "menu.loans.network": "All libraries (책이음)",
        "menu.count": "{n} of {limit}",
        "menu.borrow": "Borrow",
        "menu.borrow.sub": "Pick a book from a locker",
        "menu.return": "Return",
        "menu.return.sub": "Put a book in an empty locker",
        "menu.loans": "My loans",
        "menu.loans.sub": "Your books and due dates",
        "logout": "Log out",
        "borrow.title": "Choose a book to borrow",
        "borrow.count": "{n} books in the lockers",
        "borrow.confirm": "Borrow and open locker",
        "borrow.pick": "Choose a book first",
        "borrow.empty": "There are no books to borrow right now",
        "borrow.empty.sub": "The lockers are restocked every day. Please come back soon",
        "borrow.loading": "Loading the books in the lockers…",
        "locker": "Locker {n}",
        "locker.short": "Locker",
        "locker.no": "{n}",
        "back": "Back",
        "cancel": "Cancel",
        "page": "{page} / {pages}",
        "prev": "Previous",
        "next": "Next",
        "door.opened": "Locker {n} is open",
        "door.take": "Take out the book, then close the door firmly",
        "door.put": "Put the book in, then close the door firmly",
        "door.countdown": "Open the door within {s} s",
        "door.countdown.sub": "After that the door locks again and the request is cancelled",
        "door.open": "The door is open. Please close it",
        "door.close.now": "Please close the door",
        "door.close.sub": "The door has been open for a long time. Close it to finish",
        "door.recording": "Recording…",
        "door.map": "Where it is",
        "door.book.loan": "Your book",
        "door.book.return": "Returning",
        "return.title": "Show the book's barcode to the scanner",
        "return.sub": "Hold the library barcode label on the book in front of the scanner",
        "return.step1": "Find the label",
        "return.step2": "Show it to the scanner",
        "return.step3": "Put it in the locker",
        "return.checking": "Checking…",
        "loans.title": "My loans",
        "loans.count": "{n} books on loan",
        "loans.overdue.count": "{n} overdue",
        "loans.due": "Due",
        "loans.overdue": "Overdue",
        "loans.empty": "You have no books on loan",
        "loans.empty.sub": "Why not pick one from the lockers?",
        "loans.loading": "Loading your loans…",
        "loans.renew": "Renew",
        "loans.renewed": "Renewed",
        "receipt.loan": "Your loan is complete",
        "receipt.return": "Your return is complete",
        "receipt.due": "Due: {date}",
        "receipt.thanks.loan": "Enjoy your reading",
        "receipt.thanks.return": "Thank you",
        "receipt.continue": "Continue",
        "receipt.ok": "OK",
        "receipt.finish": "Finish",
        "receipt.auto": "Closes by itself in {s} s",
        "error.ok": "OK",
        "error.ils": "Message from the library",
        "busy": "Please wait…",
        "warn.title": "You will be logged out soon ({s} s)",
        "warn.sub": "Press the button below to keep going",
        "warn.stay": "Continue",
        "r.blocked": "This library card is blocked",
        "r.blocked.next": "Please ask at the library's information desk",
        "r.card-lost": "This card has been reported lost",
        "r.card-lost.next": "Please bring photo ID to the library's information desk",
        "r.expired": "Your membership expired on {date}",
        "r.expired.generic": "Your membership has expired",
        "r.expired.next": "Please renew it at the information desk or on the library's website",
        "r.fines": "You have unpaid fines of {amount}",
        "r.fines.generic": "You have unpaid fines",
        "r.fines.next": "Please pay them at the information desk, then try again",
        "r.suspended": "Borrowing is suspended until {date}",
        "r.suspended.generic": "Borrowing is suspended",
        "r.suspended.next": "You can borrow again after that date. Returns are welcome now",
        "r.overdue": "You have {count} overdue books",
        "r.overdue.one": "You have 1 overdue book",
        "r.overdue.generic": "You have overdue books",
        "r.overdue.next": "Please return them first, then borrow again",
        "r.library-limit": "You have reached this library's limit of {limit} loans",
        "r.library-limit.generic": "You have reached this library's loan limit",
        "r.library-limit.next": "Please return a book, then try again",
        "r.network-limit": "You have reached the limit of {limit} loans across all libraries (책이음)",
        "r.network-limit.generic": "You have reached the loan limit across all libraries (책이음)",
        "r.network-limit.next": "Please return a book borrowed from any library, then try again",
        "r.unknown-card": "This card is not registered",
        "r.unknown-card.next": "Check that it is your library card. If it still fails, ask at the information desk",
        "r.unknown-barcode": "That barcode was not recognised",
        "r.unknown-barcode.next": "Please show your library card or the library barcode label on the book",
        "r.wrong-pin": "Wrong PIN. Tries left: {left}",
        "r.wrong-pin.generic": "Wrong PIN",
        "r.wrong-pin.next": "Please enter your PIN again",
        "r.pin-locked": "Too many wrong PINs: you cannot sign in now",
        "r.pin-locked.next": "Ask at the information desk, or reset your PIN on the library's website",
        "r.pin-locked.offline": "Too many wrong PINs: this card cannot sign in while the library system is unreachable",
        "r.pin-locked.offline.next": "You can still return books. Sign in again once the connection is back, or ask at the information desk",
        "r.not-our-item": "This book belongs to another library",
        "r.not-our-item.next": "Please return it to the library you borrowed it from",
        "r.isbn-not-copy": "That is the book's ISBN, not its library barcode",
        "r.isbn-not-copy.next": "Please show the library barcode label stuck on the book",
        "r.already-in-locker": "This book has already been returned to a locker",
        "r.already-in-locker.next": "If it is a different book, scan it again; otherwise ask at the information desk",
        "r.item-not-available": "This book cannot be borrowed right now",
        "r.item-not-available.next": "Please choose another book",
        "r.system-fault": "Something went wrong and your request was not completed",
        "r.system-fault.next": "Please try again in a moment. If it keeps happening, ask at the information desk",
        "r.no-empty-locker": "All lockers are full, so returns are not possible right now",
        "r.no-empty-locker.next": "Please return it at another smart library nearby or at the library desk",
        "r.door-timeout": "Locker {slot} was not opened in time, so the loan was cancelled",
        "r.door-timeout.return": "Locker {slot} was not opened in time, so the return was cancelled",
        "r.door-timeout.generic": "The locker was not opened in time, so the loan was cancelled",
        "r.door-timeout.next": "Please start again",
        "r.lock-fault": "Locker {slot} will not open",
        "r.lock-fault.generic": "The locker will not open",
        "r.lock-fault.next": "Sorry for the trouble. Please choose another book or ask at the information desk",
        "r.store-fault": "The kiosk has a temporary problem",
        "r.store-fault.next": "Please try again in a moment. If it keeps happening, ask at the information desk",
        "r.ils-unavailable": "The library system is not answering",
        "r.ils-unavailable.next": "Please try again in a moment",
        "r.ils-refused": "The library system could not process the request",
        "r.ils-refused.next": "Please ask at the library's information desk for details",
        "r.on-hold": "This book is reserved for another member",
        "r.on-hold.next": "Please choose another book; reserved books are lent in turn",
        "r.charged-elsewhere": "The library's records show this copy on loan to someone else",
        "r.charged-elsewhere.next": "Please choose another book; staff will check this one",
        "r.renewal-refused": "This loan cannot be renewed",
        "r.renewal-refused.next": "It may be reserved, or renewed as often as allowed. Please return it by the due date",
        "r.renewal-refused.unconfirmed": "We cannot tell whether your earlier renewal went through",
        "r.renewal-refused.unconfirmed.next": "So that it is not renewed twice, it is not asked for again. Please ask at the information desk",
        "r.offline-new-member": "The library system cannot be reached, so a card used here for the first time cannot borrow now",
        "r.offline-new-member.next": "You can still return books. Please try borrowing again once the connection is back",
        "r.offline-limit": "While the connection is down you can borrow up to {limit} book(s)",
        "r.offline-limit.generic": "You have borrowed as many books as the kiosk lends while offline",
        "r.offline-limit.next": "You can borrow more once the library system is reachable again",
        "r.out-of-service": "This kiosk is being serviced and cannot be used now",
        "r.out-of-service.next": "Staff have been told. Please borrow and return at a library nearby",
        "r.offline-no-lending": "The library system cannot be reached, so books cannot be borrowed now",
        "r.offline-no-lending.next": "You can still return books. Please try borrowing again in a while",
        "menu.offline": "The kiosk is offline: the library system cannot be reached. You can borrow up to {limit} book(s); your loans reach the library as soon as it is back",
    },
}

_WEEKDAYS = {
    "ko": ("월", "화", "수", "목", "금", "토", "일"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _lang(lang: str) -> str:
    return lang if lang in STRINGS else "ko"


def t(key: str, lang: str, **kw: object) -> str:
    """The string `key` in `lang` (Korean if unknown), formatted with `kw`.

    A missing English string falls back to Korean, and a missing key shows the key itself, so
    a gap is visible on screen instead of crashing the kiosk.
    """
    table = STRINGS[_lang(lang)]
    text = table.get(key) or STRINGS["ko"].get(key) or key
    return text.format(**kw) if kw else text


def format_date(day: dt.date | None, lang: str) -> str:
    """ko "2026-11-16 (월)", en "Mon 16 Nov 2026" (no locale: the Pi image may lack ko_KR)."""
    if day is None:
        return "-"
    wd = _WEEKDAYS[_lang(lang)][day.weekday()]
    if _lang(lang) == "ko":
        return f"{day.isoformat()} ({wd})"
    return f"{wd} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def format_short_date(day: dt.date, lang: str) -> str:
    """The header's date: ko "11월 22일 (토)", en "Sat 22 Nov"."""
    wd = _WEEKDAYS[_lang(lang)][day.weekday()]
    if _lang(lang) == "ko":
        return f"{day.month}월 {day.day}일 ({wd})"
    return f"{wd} {day.day} {_MONTHS[day.month - 1]}"


def format_won(amount: int | str, lang: str) -> str:
    """ko "1,500원", en "₩1,500"."""
    try:
        value = int(str(amount).replace(",", "").strip())
    except ValueError:
        return str(amount)
    return f"{value:,}원" if _lang(lang) == "ko" else f"₩{value:,}"


def _date_detail(text: str, lang: str) -> str:
    try:
        return format_date(dt.date.fromisoformat(text), lang)
    except ValueError:
        return text


def reason_text(refusal: Refusal, lang: str) -> tuple[str, str]:
    """(what happened, what to do next) for a refusal, in `lang`, using its details."""
    reason = refusal.reason
    key = "r." + reason.value
    nxt = t(key + ".next", lang)
    d = refusal.detail
    if reason is Reason.ILS_REFUSED:
        # The library's own words are the most precise explanation we have: show them as given.
        message = d("message").strip()
        return (message or t(key, lang)), nxt
    if reason is Reason.WRONG_PIN:
        return (t(key, lang, left=d("left")) if d("left") else t(key + ".generic", lang)), nxt
    if reason is Reason.PIN_LOCKED and d("offline"):  # counted by the kiosk, while offline
        return t(key + ".offline", lang), t(key + ".offline.next", lang)
    if reason is Reason.RENEWAL_REFUSED and d("unconfirmed"):  # an earlier renewal's answer was lost
        return t(key + ".unconfirmed", lang), t(key + ".unconfirmed.next", lang)
    if reason in (Reason.EXPIRED, Reason.SUSPENDED):
        date = d("date")
        return (t(key, lang, date=_date_detail(date, lang)) if date else t(key + ".generic", lang)), nxt
    if reason is Reason.FINES:
        amount = d("amount")
        return (t(key, lang, amount=format_won(amount, lang)) if amount else t(key + ".generic", lang)), nxt
    if reason is Reason.OVERDUE:
        count = d("count")
        if not count:
            return t(key + ".generic", lang), nxt
        if count == "1" and _lang(lang) == "en":
            return t(key + ".one", lang), nxt
        return t(key, lang, count=count), nxt
    if reason in (Reason.LIBRARY_LIMIT, Reason.NETWORK_LIMIT, Reason.OFFLINE_LIMIT):
        limit = d("limit")
        return (t(key, lang, limit=limit) if limit else t(key + ".generic", lang)), nxt
    if reason is Reason.DOOR_TIMEOUT:
        slot = d("slot")
        if not slot:
            return t(key + ".generic", lang), nxt
        variant = key + ".return" if d("kind") == "return" else key
        return t(variant, lang, slot=slot), nxt
    if reason is Reason.LOCK_FAULT:
        slot = d("slot")
        return (t(key, lang, slot=slot) if slot else t(key + ".generic", lang)), nxt
    return t(key, lang), nxt
