"""The outbox worker against the demo ILS over loopback: delivered once, in order, never blind."""

import datetime as dt
import threading

from kiosk.local_library import seed_demo as seed_kiosk
from kiosk.session import DoorJob
from kiosk.store import Item, Stamp, Store, sender_id
from steps import BOOT, ils_loans, ils_log, queue_loan, queue_return
from sync.outbox import OutboxWorker
from sync.sip2.client import Client, ClientSettings

MEMBER = "11110100000001"


def offline_loan(store, clock, item="EM0000000003", slot=3):
    """A loan the kiosk recorded without the library (its event waits in the outbox)."""
    return queue_loan(store, clock, item, MEMBER, slot=slot, boot=BOOT)


def offline_return(store, clock, item, slot=3):
    return queue_return(store, clock, item, slot=slot, boot=BOOT)


def test_a_queued_loan_reaches_the_ils_once_with_its_original_date(worker, store, ils, clock):
    offline_loan(store, clock)
    made_at = clock.now()
    clock.advance(3 * 3600)  # delivered three hours later
    report = worker.drain()
    assert (report.delivered, report.dead) == (1, 0)
    loan = ils_loans(ils)["EM0000000003"]
    assert loan["patron"] == MEMBER and loan["renewals"] == 0
    [entry] = ils_log(ils, "EM0000000003")
    assert entry["no_block"] and entry["transaction_date"].startswith(made_at.strftime("%Y-%m-%dT%H:%M"))
    assert worker.drain().delivered == 0  # nothing twice


def test_a_queued_return_carries_the_real_return_date(worker, store, ils, clock):
    returned_at = clock.now()
    offline_return(store, clock, "EM0000000025")  # on loan to member 3 at the ILS
    clock.advance(86400)
    assert worker.drain().delivered == 1
    assert "EM0000000025" not in ils_loans(ils)
    [entry] = ils_log(ils, "EM0000000025")
    assert entry["return_date"].startswith(returned_at.strftime("%Y-%m-%dT%H:%M"))


def test_events_of_one_item_go_in_order(worker, store, ils, clock):
    offline_loan(store, clock)
    clock.advance(600)
    offline_return(store, clock, "EM0000000003")
    report = worker.drain()
    assert report.delivered == 2
    assert [e["action"] for e in ils_log(ils, "EM0000000003")] == ["checkout", "checkin"]
    assert "EM0000000003" not in ils_loans(ils)


def test_a_checkout_the_ils_already_shows_on_loan_is_not_replayed(worker, store, ils, clock, client):
    client.checkout(MEMBER, "EM0000000003")  # the same loan already reached the ILS somehow
    offline_loan(store, clock)
    offline_return(store, clock, "EM0000000003")  # a later event of the same item
    report = worker.drain()
    assert report.dead == 1 and report.delivered == 0
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 0  # no renewal caused by a replay
    [dead] = store.outbox("dead")
    assert "renew" in dead["last_error"]
    assert [e["kind"] for e in store.outbox("pending")] == ["checkin"]  # held back behind the dead letter


def fault_after_item_information(monkeypatch, client, ils, **faults):
    """Arm a demo-ILS fault for the request that follows the worker's next 17 (its checkout or
    checkin), so the fault hits that exchange on the wire."""
    real = client.item_information

    def then_fault(item):
        facts = real(item)
        monkeypatch.setattr(client, "item_information", real)
        for name, value in faults.items():
            setattr(ils.faults, name, value)
        return facts

    monkeypatch.setattr(client, "item_information", then_fault)


def test_an_unanswered_return_is_settled_without_resending(worker, store, ils, clock, client, monkeypatch):
    offline_return(store, clock, "EM0000000025")
    client.connect()
    ils.faults.drop_after = 5  # never sent before, so it goes at once: checked in, the answer lost
    report = worker.drain()
    assert report.unknown == 1
    assert [e["state"] for e in store.outbox()] == ["unknown"]
    assert worker.drain(retry_now=True).delivered == 0  # left to settle: it may still be on its way
    clock.advance(60)
    report = worker.drain()
    assert report.delivered == 1
    assert [e["action"] for e in ils_log(ils, "EM0000000025")] == ["checkin"]  # sent once


def test_an_unanswered_loan_that_did_not_happen_is_sent_again(worker, store, ils, clock, client, monkeypatch):
    offline_loan(store, clock)
    fault_after_item_information(monkeypatch, client, ils, silent=True)  # never reaches the circulation
    assert worker.drain().unknown == 1
    ils.faults.silent = False
    clock.advance(60)
    assert worker.drain().delivered == 1
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 0


def test_an_unreachable_ils_defers_with_back_off(worker, store, ils, clock):
    offline_return(store, clock, "EM0000000025")
    ils.faults.down = True
    report = worker.drain()
    assert report.deferred == 1 and "unavailable" in report.stopped
    [event] = store.outbox("pending")
    assert event["next_attempt_at"] > clock.now().isoformat()
    ils.faults.down = False
    assert worker.drain().delivered == 0  # not due yet
    clock.advance(600)
    assert worker.drain().delivered == 1


def test_a_refused_replay_is_a_dead_letter_with_the_ils_words(worker, store, ils, clock):
    # Member 2 is blocked for fines; this ILS ignores no-block, as Evergreen and FOLIO do.
    import dataclasses

    ils.behaviour = dataclasses.replace(ils.behaviour, no_block="ignored")
    job = DoorJob("job-x", "loan", 4, "EM0000000004", "x", "11110100000002", clock.now().date())
    store.begin_door_job(job, clock.now())
    store.record_loan(job, Stamp(clock.now(), True, BOOT))
    report = worker.drain()
    assert report.dead == 1
    assert "refused at replay" in store.outbox("dead")[0]["last_error"]
    assert "EM0000000004" not in ils_loans(ils)


def test_a_live_senders_event_is_left_alone_and_a_dead_ones_is_reconciled(worker, store, ils, clock):
    live = store.record_return  # a return whose checkin this very process is sending now
    store.add_items([Item("EM0000000025", "x", "")])
    store.put_in_slot(3, None, clock.now())
    job = DoorJob("ret-live", "return", 3, "EM0000000025", "x")
    store.begin_door_job(job, clock.now())
    live(job, Stamp(clock.now(), True, BOOT), claim=sender_id(BOOT))
    assert worker.drain().delivered == 0
    # The sender was a process of an earlier boot (a power cut): reconcile, then deliver.
    store.db.execute("UPDATE outbox SET claimed_by = 'old-boot:1'")
    store.db.conn.commit()
    assert worker.drain().delivered == 0  # it may still be on its way: left to settle first
    clock.advance(60)
    assert worker.drain().delivered == 1
    assert [e["action"] for e in ils_log(ils, "EM0000000025")] == ["checkin"]


def test_queue_status_counts_by_state(worker, store, ils, clock):
    offline_loan(store, clock)
    status = store.queue_status()
    assert status["counts"] == {"pending": 1} and status["oldest_undelivered"]
    worker.drain()
    assert store.queue_status() == {"counts": {"delivered": 1}, "oldest_undelivered": None, "unsynced_clock": 0}


def test_a_clock_that_jumped_back_does_not_strand_the_queue(worker, store, ils, clock):
    offline_return(store, clock, "EM0000000025")
    ils.faults.down = True
    assert worker.drain().deferred == 1
    [event] = store.outbox("pending")
    assert event["next_attempt_at"] > clock.now().isoformat()
    ils.faults.down = False
    # The kiosk booted with a date a year ahead and has just been set right: measured from the
    # corrected clock, the back-off would end in a year.
    store.db.execute("UPDATE outbox SET next_attempt_at = ?",
                     [(clock.now() + dt.timedelta(days=365)).isoformat()])
    store.db.conn.commit()
    worker._client.next_attempt_at = None
    assert worker.drain().delivered == 1


def test_a_weeks_backlog_where_the_library_refuses_some_replays(worker, store, ils, clock):
    from sync.demo_ils import Behaviour

    ils.behaviour = Behaviour(no_block="ignored")  # Evergreen, FOLIO: blocks apply to replays too
    fined = "11110100000002"  # blocked for unpaid fines at the library
    good = [f"EM{day + 1:010d}" for day in range(7)]
    refused = [f"EM{day + 8:010d}" for day in range(7)]
    for day in range(7):  # a week offline: each day a loan each, and yesterday's book back
        queue_loan(store, clock, good[day], MEMBER, slot=day + 1)
        queue_loan(store, clock, refused[day], fined, slot=day + 8)
        clock.advance(12 * 3600)
        if day:
            queue_return(store, clock, good[day - 1], slot=day)
        if day % 2:
            queue_return(store, clock, refused[day], slot=day + 8)
        clock.advance(12 * 3600)
    report = worker.drain()
    assert report.delivered == 7 + 6  # member 1's loans and returns
    assert report.dead == 7  # every loan to the blocked member: refused at replay, for staff
    dead = store.outbox("dead")
    assert {e["item"] for e in dead} == set(refused)
    assert all(e["last_error"].split(" ", 1)[1].startswith("refused at replay") for e in dead)
    # the returns of refused loans wait behind their dead letters, in order
    assert sorted(e["item"] for e in store.outbox("pending")) == [refused[d] for d in (1, 3, 5)]
    loans = ils_loans(ils)
    assert {item for item, loan in loans.items() if loan["patron"] == MEMBER} == {good[6]}
    assert not set(refused) & set(loans) and loans[good[6]]["renewals"] == 0
    checkout = next(e for e in ils_log(ils, good[0]) if e["action"] == "checkout")
    assert checkout["transaction_date"].startswith("2026-11-02")  # a week ago, as it happened


def test_two_senders_never_claim_one_event(store, clock, tmp_path):
    offline_loan(store, clock)
    [event] = store.next_events(clock.now(), lambda claim: False, count=8)  # both senders see it
    with Store(store.path, clock=clock) as other:  # a second sender with its own connection (sync beside the worker)
        assert other.claim_many([event["seq"]], sender_id(BOOT, "b"), clock.now(), lambda c: True) == {
            event["seq"]: "pending"}
    assert store.claim_many([event["seq"]], sender_id(BOOT, "a"), clock.now(), lambda c: True) == {}
    [row] = store.outbox()
    assert row["claimed_by"] == sender_id(BOOT, "b") and row["attempts"] == 1


def test_a_return_never_sent_goes_without_asking_and_a_refusal_is_looked_into(worker, store, ils, clock, client):
    offline_return(store, clock, "EM0000000025")
    client.checkin("EM0000000025")  # checked in at the desk meanwhile
    offline_return(store, clock, "EM0000000026", slot=4)
    assert worker.drain().delivered == 2
    assert [e["action"] for e in ils_log(ils, "EM0000000026")] == ["checkin"]  # one exchange: no 17
    assert [(e["action"], e["ok"]) for e in ils_log(ils, "EM0000000025")] == [("checkin", True), ("checkin", False)]
    assert store.outbox("dead") == []  # the library had it back already: 17 says so


def test_a_dead_senders_checkout_is_left_to_land_before_it_is_reconciled(tmp_path, ils, clock):
    from sync.demo_ils import HeldRequest
    from steps import queue_loan as queue

    db = tmp_path / "k2.db"
    with Store(db, clock=clock) as st:
        seed_kiosk(st, clock, 24, whole_library=False)
        queue(st, clock, "EM0000000003", MEMBER, boot="b0")
        [event] = st.outbox("pending")
        st.claim_many([event["seq"]], "b0:1", clock.now(), lambda c: False)  # a process that then died
    settings = ClientSettings(host=ils.address[0], port=ils.address[1], user="kiosk", password="kiosk-demo",
                              institution="111101", response_timeout_s=5, connect_timeout_s=2)
    held = HeldRequest()
    with Client(settings, clock=clock) as dying:  # its checkout, still on its way
        dying.connect()
        ils.faults.hold_next = held
        sending = threading.Thread(target=lambda: dying.checkout(MEMBER, "EM0000000003", no_block=True))
        sending.start()
        assert held.arrived.wait(5)
        worker = OutboxWorker(Store(db, clock=clock), Client(settings, clock=clock), clock, boot="b1", owns=True)
        try:
            assert worker.drain().delivered == 0  # not reconciled yet: it may still land
            held.release()
            sending.join(10)
            clock.advance(60)
            assert worker.drain().delivered == 1  # 17: on loan, the earlier attempt went through
        finally:
            worker.close()
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 0


def test_a_wall_clock_set_forward_does_not_cut_an_unanswered_checkouts_settling_short(tmp_path, ils, clock):
    from sync.demo_ils import HeldRequest

    settings = ClientSettings(host=ils.address[0], port=ils.address[1], user="kiosk", password="kiosk-demo",
                              institution="111101", response_timeout_s=5, connect_timeout_s=2)
    with Store(tmp_path / "k3.db", clock=clock) as st:
        seed_kiosk(st, clock, 24, whole_library=False)
        queue_loan(st, clock, "EM0000000003", MEMBER)
        [event] = st.outbox("pending")
        held = HeldRequest()
        with Client(settings, clock=clock) as slow:  # the checkout reaches a busy library...
            slow.connect()
            ils.faults.hold_next = held
            sending = threading.Thread(target=lambda: slow.checkout(MEMBER, "EM0000000003", no_block=True))
            sending.start()
            assert held.arrived.wait(5)
            st.mark_unknown(event["seq"], "no answer within 10 s", clock.now())  # ...and the kiosk gave up
            # The Pi booted without a network and kept yesterday's date; NTP has just set it right.
            clock.set_wall(clock.now() + dt.timedelta(days=1))
            worker = OutboxWorker(st, Client(settings, clock=clock), clock, boot=BOOT)
            try:
                assert worker.drain().delivered == 0  # the checkout may still land: nothing is asked yet
                held.release()
                sending.join(10)
                clock.advance(59)
                assert worker.drain().delivered == 0
                clock.advance(1)
                assert worker.drain().delivered == 1  # 17: on loan, the earlier attempt went through
            finally:
                worker._client.close()
    assert ils_loans(ils)["EM0000000003"]["renewals"] == 0
    assert [e["action"] for e in ils_log(ils, "EM0000000003")] == ["checkout"]  # sent once


def test_an_event_from_an_earlier_boot_settles_once_the_kiosk_has_run_that_long(tmp_path, clock):
    from kiosk.clock import FakeClock

    db = tmp_path / "k4.db"
    with Store(db, clock=clock, boot="boot-0") as st:
        seed_kiosk(st, clock, 24, whole_library=False)
        queue_loan(st, clock, "EM0000000003", MEMBER, boot="boot-0")
        [event] = st.outbox("pending")
        st.claim_many([event["seq"]], "boot-0:1", clock.now(), lambda c: True)  # then the power went
    # The next boot's monotonic clock starts again near zero; its wall clock is a year behind.
    rebooted = FakeClock(clock.now() - dt.timedelta(days=365), uptime=25.0)
    with Store(db, clock=rebooted, boot="boot-1") as st:
        assert st.next_events(rebooted.now(), lambda c: False, count=8) == []  # may still be landing
        rebooted.advance(35)
        assert [e["seq"] for e in st.next_events(rebooted.now(), lambda c: False, count=8)] == [event["seq"]]


def test_a_wall_clock_set_back_neither_strands_nor_shortens_a_settling_time(store, clock):
    offline_loan(store, clock)
    [event] = store.outbox("pending")
    store.claim_many([event["seq"]], sender_id(BOOT), clock.now(), lambda c: True)
    store.mark_unknown(event["seq"], "no answer", clock.now())
    clock.set_wall(clock.now() - dt.timedelta(days=365))
    assert store.next_events(clock.now(), lambda c: False, count=8) == []
    clock.advance(60)
    assert [e["seq"] for e in store.next_events(clock.now(), lambda c: False, count=8)] == [event["seq"]]


def test_a_damaged_event_is_a_dead_letter_and_the_rest_still_go(store, worker, ils, clock):
    offline_loan(store, clock, "EM0000000003", 3)
    offline_loan(store, clock, "EM0000000004", 4)
    with store.transaction() as db:
        db.execute("UPDATE outbox SET payload = '{' WHERE item = 'EM0000000003'")
    report = worker.drain()
    assert (report.delivered, report.dead) == (1, 1)
    states = {e["item"]: e["state"] for e in store.outbox()}
    assert states == {"EM0000000003": "dead", "EM0000000004": "delivered"}
    assert "damaged" in store.outbox("dead")[0]["last_error"]
    assert "EM0000000003" not in ils_loans(ils)  # nothing was sent for it


def test_a_sender_whose_process_id_went_to_another_process_counts_as_gone():
    import subprocess
    import sys

    from kiosk.store import sender_alive

    parent = sender_id(BOOT)  # this test's own process, seen from a child: alive
    script = (f"import sys; from kiosk.store import sender_alive, sender_id; "
              f"print(sender_id({BOOT!r}), sender_alive(sys.argv[1], {BOOT!r}), "
              f"sender_alive(sys.argv[1], 'boot-before'))")
    child = subprocess.run([sys.executable, "-c", script, parent], capture_output=True, text=True, check=True)
    claim, alive, earlier_boot = child.stdout.split()
    assert (alive, earlier_boot) == ("True", "False")
    assert not sender_alive(claim, BOOT)  # the child has exited
    pid, _, started = parent.partition(":")[2].partition("@")
    # The same pid, started at another moment: a dead sender's pid handed to a later process.
    assert not sender_alive(f"{BOOT}:{pid}@{int(started) + 1}", BOOT)


def test_a_claim_of_this_process_is_live_only_while_it_is_being_sent():
    from kiosk.store import sender_alive, sending

    claim = sender_id(BOOT, "w1")
    with sending(claim):
        assert sender_alive(claim, BOOT)
    assert not sender_alive(claim, BOOT)  # left behind by a write that failed: taken up again
