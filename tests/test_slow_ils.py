"""An ILS that acts late: it sits on a request (a lock wait, a busy database) past the kiosk's
response timeout, answers other requests meanwhile, and then carries the first one out.

Item information (17) tells what the ILS has done so far, not what it is still doing, so an
unknown outcome settled at once can be settled wrong.
"""

import threading

import pytest

from steps import choose, ils_loans, login, sip2_kiosk
from sync.demo_ils import HeldRequest
from sync.sip2.client import Client, ClientSettings


@pytest.fixture
def kiosk(tmp_path, clock, ils):
    k = sip2_kiosk(tmp_path, clock, ils, backoff_initial_s=1.0)
    yield k
    k.close()


def test_a_checkout_the_ils_carries_out_after_the_kiosk_gave_up_is_taken_back(kiosk, ils, clock):
    login(kiosk)
    held = HeldRequest()
    ils.faults.hold_next = held  # the checkout: the ILS sits on it past the kiosk's timeout
    choose(kiosk, "EM0000000003")
    assert kiosk.state.screen == "error" and kiosk.devices.locks.unlocked() == []
    held.release()
    assert held.carried_out.wait(10)  # now the ILS lends it, after the kiosk has given up
    clock.advance(3600)
    kiosk.sync_now()
    assert "EM0000000003" not in ils_loans(ils)  # the book never left its locker


def test_the_demo_ils_sits_on_a_held_request_and_answers_others_meanwhile(ils, clock):
    def client():
        return Client(ClientSettings(host=ils.address[0], port=ils.address[1], user="kiosk",
                                     password="kiosk-demo", institution="111101", response_timeout_s=5),
                      clock=clock)

    held = HeldRequest()
    with client() as first, client() as second:
        first.connect()
        ils.faults.hold_next = held
        answers = []
        lending = threading.Thread(
            target=lambda: answers.append(first.checkout("11110100000001", "EM0000000003")))
        lending.start()
        assert held.arrived.wait(5)
        assert second.item_information("EM0000000003").circulation_status == "03"  # not lent yet
        held.release()
        lending.join(5)
        assert held.carried_out.is_set() and answers[0].ok
        assert second.item_information("EM0000000003").circulation_status == "04"
    assert ils.faults.hold_next is None  # one request only
