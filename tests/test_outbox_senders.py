"""Two outbox workers of one kiosk process on one queue: the worker thread and `Kiosk.sync_now()`.

Both are senders of the same boot and the same process. The steps of the two are forced into the
worst order with events (no sleeping): each chooses the same queued loan before either has
claimed it, A claims it and asks 17, and B tries to claim it while A is about to send. Were B to
take it too (as it did while the claim named only the boot and the process), both would send the
checkout and the ILS would renew the loan.
"""

import random
import threading

from kiosk.local_library import seed_demo as seed_kiosk
from kiosk.store import Store
from steps import ils_loans, queue_loan
from sync.outbox import OutboxWorker
from sync.sip2.client import Client, ClientSettings

MEMBER = "11110100000001"
BOOT = "boot-test"
STEP_S = 5  # the longest one worker waits for the other (a bound, never reached when all is well)


def worker(db, ils, clock):
    settings = ClientSettings(host=ils.address[0], port=ils.address[1], user="kiosk", password="kiosk-demo",
                              institution="111101", response_timeout_s=2, connect_timeout_s=2)
    return OutboxWorker(Store(db, keep_member_numbers=False, clock=clock), Client(settings, clock=clock), clock,
                        rng=random.Random(1), boot=BOOT, owns=True)


def hook(obj, name, before=None, after=None):
    """Run `before` and `after` around `obj.name(...)`."""
    real = getattr(obj, name)

    def hooked(*args, **kwargs):
        if before:
            before()
        result = real(*args, **kwargs)
        if after:
            after()
        return result

    setattr(obj, name, hooked)


def test_two_workers_of_one_process_never_send_one_loan_twice(tmp_path, ils, clock):
    db = tmp_path / "kiosk.db"
    with Store(db, clock=clock) as store:
        seed_kiosk(store, clock, 24, whole_library=False)
        queue_loan(store, clock, "EM0000000003", MEMBER, boot=BOOT)
    a, b = worker(db, ils, clock), worker(db, ils, clock)
    a_chose, b_chose, a_about_to_send, b_went = (threading.Event() for _ in range(4))
    hook(a._store, "next_events", after=lambda: (a_chose.set(), b_chose.wait(STEP_S)))
    hook(b._store, "next_events", before=lambda: a_chose.wait(STEP_S), after=b_chose.set)
    hook(b._store, "claim_many", before=lambda: a_about_to_send.wait(STEP_S))
    hook(a._client, "checkout", before=lambda: (a_about_to_send.set(), b_went.wait(STEP_S)))
    hook(b._client, "checkout", after=b_went.set)
    try:
        thread = threading.Thread(target=a.drain)
        thread.start()
        b.drain()  # B must leave the loan to A: it is A's, in flight
        b_went.set()
        thread.join(10)
    finally:
        a.close()
        b.close()
    loan = ils_loans(ils)["EM0000000003"]
    assert loan["patron"] == MEMBER and loan["renewals"] == 0  # sent once: no renewal
