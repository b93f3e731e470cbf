"""The demo ILS: a SIP2 server on its own SQLite database that behaves like the real ones.

Used by `kiosk demo`, `kiosk ils serve`, the tests and the benchmarks:

    seed_demo("ils.db", clock)                       # the demo library (see `db` for what is in it)
    with DemoIls("ils.db", clock=clock, behaviour=Behaviour(terminator="\\r\\n")).start() as ils:
        host, port = ils.address                     # SIP2 account: kiosk / kiosk-demo
        ils.faults.drop_after = 10                   # break things while a client talks to it
    loans_report("ils.db")                           # {"loans": [...], "holds": [...], "log": [...]}
"""

from sync.demo_ils.behaviour import Behaviour, Faults, HeldRequest
from sync.demo_ils.db import (
    HELD_ITEM, HOLD_PATRON, SIP_LOCATION, SIP_PASSWORD, SIP_USER, DemoIlsError, loans_report, place_hold,
    seed_demo, set_item_status,
)
from sync.demo_ils.server import DemoIls

__all__ = [
    "Behaviour", "DemoIls", "DemoIlsError", "Faults", "HELD_ITEM", "HeldRequest", "HOLD_PATRON",
    "SIP_LOCATION", "SIP_PASSWORD", "SIP_USER", "loans_report", "place_hold", "seed_demo", "set_item_status",
]
