"""What a patron does at a kiosk under test, and what the demo ILS then holds."""

import datetime as dt
import uuid

from kiosk.app import DEMO_SIP_PASSWORD, build, sip2_settings
from kiosk.config import Config, LibrarySection, OfflineSection, Sip2Section
from kiosk.session import DoorJob
from kiosk.store import Item, Stamp
from sync.demo_ils import loans_report


BOOT = "boot-test"  # the boot id of events queued by tests


def sip2_kiosk(tmp_path, clock, ils, *, backoff_initial_s=5.0, **offline):
    """A started kiosk (simulated devices, its store on disk) whose library is the demo ILS on
    loopback, with short timeouts; `offline`: its [offline] settings. The caller closes it."""
    config = Config(library=LibrarySection(backend="sip2", seed="demo"),
                    sip2=Sip2Section(response_timeout_s=0.3, connect_timeout_s=0.3,
                                     backoff_initial_s=backoff_initial_s),
                    offline=OfflineSection(**offline))
    settings = sip2_settings(config, host=ils.address[0], port=ils.address[1], password=DEMO_SIP_PASSWORD)
    k = build(config, clock=clock, db_path=tmp_path / "kiosk.db", sip2=settings)
    k.start()
    return k


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


def queue_loan(store, clock, item, member, *, slot=None, boot=BOOT, days=14):
    """A loan the kiosk recorded while the library was not told (its checkout waits in the
    outbox): the door job is committed, then the loan, as the app does. Returns the event id."""
    slot = slot if slot is not None else (store.slot_of(item) or 1)
    job = DoorJob(f"loan-{uuid.uuid4().hex[:12]}", "loan", slot, item, item, member,
                  clock.now().date() + dt.timedelta(days=days))
    store.begin_door_job(job, clock.now())
    return store.record_loan(job, Stamp(clock.now(), True, boot))


def queue_return(store, clock, item, *, slot=1, boot=BOOT):
    """A return the kiosk recorded into locker `slot` whose checkin waits in the outbox."""
    if store.item(item) is None:
        store.add_items([Item(item, item, "")])  # a book from the library's shelves
    store.put_in_slot(slot, None, clock.now())
    job = DoorJob(f"return-{uuid.uuid4().hex[:12]}", "return", slot, item, item)
    store.begin_door_job(job, clock.now())
    return store.record_return(job, Stamp(clock.now(), True, boot))
