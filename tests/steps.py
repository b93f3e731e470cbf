"""What a patron does at a kiosk under test, and what the demo ILS then holds."""

from sync.demo_ils import loans_report


def login(k, uid="04A1B2C3", pin="1234"):
    k.devices.card_reader.present(bytes.fromhex(uid))
    k.pump()
    for d in pin:
        k.tap(f"pin:{d}")
    k.tap("pin-ok")


def choose(k, item):
    k.tap("borrow")
    k.tap(f"item:{item}")
    k.tap("confirm")


def open_and_close(k, slot):
    k.devices.locks.open_door(slot)
    k.devices.locks.close_door(slot)
    k.pump()


def ils_loans(ils) -> dict:
    return {row["item"]: row for row in loans_report(ils.db_path)["loans"]}


def ils_log(ils, item) -> list:
    return [e for e in loans_report(ils.db_path)["log"] if e["item"] == item]
