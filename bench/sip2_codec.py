"""The SIP2 codec's throughput: decoding a patron information response, encoding a checkout.

The 64 is what the kiosk decodes after every login (a Hangul name, counts, three charged items,
limits, a fee, a screen message, AY/AZ); the 11 is what it encodes for every loan. Each figure is
the best of several repeats, since a busy machine only ever makes a run slower.

    python bench/sip2_codec.py [--repeats N] [--check]

With --check the script exits with status 1 when decoding is below the target rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.clock import KST  # noqa: E402
from sync.sip2.codec import DEFAULT, decode, encode, make  # noqa: E402

DECODE_TARGET = 50_000  # decodes of the 64 per second
NOW = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=KST)

PATRON_INFORMATION = make(
    "patron_information_response",
    [
        ("AO", "111101"), ("AA", "11110100000001"), ("AE", "김민준"),
        ("BZ", "0005"), ("CA", "0003"), ("CB", "0010"), ("BL", "Y"), ("CQ", "Y"),
        ("BH", "KRW"), ("BV", "1500"),
        ("AU", "EM0000000001"), ("AU", "EM0000000002"), ("AU", "EM0000000003"),
        ("AF", "연체된 도서가 1권 있습니다. 연체료 1,500원"),
    ],
    patron_status="          Y   ", language="011", transaction_date=NOW,
    hold_items_count=1, overdue_items_count=1, charged_items_count=3, fine_items_count=1,
    recall_items_count=0, unavailable_holds_count=0,
)

CHECKOUT = make(
    "checkout",
    [("AO", "111101"), ("AA", "11110100000001"), ("AB", "EM0000000004"), ("AC", ""), ("AD", "1234"), ("BO", "N")],
    sc_renewal_policy=True, no_block=False, transaction_date=NOW, nb_due_date=None,
)


def rate(work: Callable[[], object], number: int, repeats: int) -> float:
    """Calls per second: the best of `repeats` timed loops of `number` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            work()
        best = min(best, time.perf_counter() - started)
    return number / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000, help="calls per repeat")
    parser.add_argument("--check", action="store_true", help=f"fail below {DECODE_TARGET:,} decodes/s")
    args = parser.parse_args()

    frame = encode(PATRON_INFORMATION, DEFAULT, sequence=3)
    decoded = decode(frame, DEFAULT)
    assert decoded.checksum_ok and decoded.fields == PATRON_INFORMATION.fields, "the 64 does not round-trip"
    request = encode(CHECKOUT, DEFAULT, sequence=4)

    decodes = rate(lambda: decode(frame, DEFAULT), args.number, args.repeats)
    encodes = rate(lambda: encode(CHECKOUT, DEFAULT, sequence=4), args.number, args.repeats)

    verdict = "ok" if decodes >= DECODE_TARGET else "BELOW TARGET"
    print(f"SIP2 codec, utf-8, error detection on, best of {args.repeats} x {args.number:,} calls")
    print(f"  decode 64 patron information response ({len(frame)} bytes): {decodes:9,.0f} /s  "
          f"({1e6 / decodes:5.1f} us each; target {DECODE_TARGET:,} /s: {verdict})")
    print(f"  encode 11 checkout ({len(request)} bytes):                    {encodes:9,.0f} /s  "
          f"({1e6 / encodes:5.1f} us each)")
    return 1 if args.check and decodes < DECODE_TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
