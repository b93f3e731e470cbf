"""Card readers: what one poll costs, over the same fakes the tests use.

For the MFRC522 the figure that matters on a Pi is SPI transfers per poll (each one is an ioctl
of two bytes; tens of microseconds on a Pi 4 from Python): with no card on the reader, the
`mfrc522` package's own MFRC522_Request reads ComIrqReg 2,000 times, the adapter stops at the
chip's timer. Times here are this machine's Python overhead only (the fake SPI answers at once).

    python bench/card_readers.py [--polls N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import pytest  # noqa: E402  (only for its MonkeyPatch, to put the fakes in sys.modules)

from fake_evdev import typed  # noqa: E402
from fake_mfrc522 import FakeCard, FakeChip, install  # noqa: E402

UID = bytes.fromhex("04A1B2C3")


def per_poll(fn, polls: int) -> float:
    started = time.perf_counter()
    for _ in range(polls):
        fn()
    return (time.perf_counter() - started) / polls * 1e6


def mfrc522(polls: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        _gpio, spidev = install(mp)
        chip = FakeChip()
        spidev.chips[(0, 0)] = chip
        from drivers.mfrc522_reader import Mfrc522Reader

        t = [0.0]
        reader = Mfrc522Reader(clock=lambda: t[0])
        reader.attach(lambda event: None)
        reader.step()

        def adapter_poll() -> None:
            reader.step()
            t[0] += 0.1

        rows = []
        for label, card in (("no card", None), ("card held", FakeCard(UID)), ("7-byte card held", FakeCard(bytes.fromhex("04112233445566"), sak=0))):
            chip.card = None if card is None else chip.tap(card)
            before = chip.transfers
            us = per_poll(adapter_poll, polls)
            rows.append((f"adapter, {label}", (chip.transfers - before) / polls, us))
        chip.remove()
        package = reader._chip
        before = chip.transfers
        us = per_poll(lambda: package.MFRC522_Request(package.PICC_REQIDL), max(1, polls // 10))
        rows.append(("package MFRC522_Request, no card", (chip.transfers - before) / max(1, polls // 10), us))
        reader.close()
    print(f"{'MFRC522 poll':38} {'SPI transfers':>14} {'µs/poll here':>13}")
    for label, transfers, us in rows:
        print(f"{label:38} {transfers:14.0f} {us:13.0f}")


def nfc(polls: int) -> None:
    from fake_pn533 import Pn533World
    from fake_rcs380 import Rcs380World

    for world_class in (Pn533World, Rcs380World):
        nfc_one(world_class, polls)


def nfc_one(world_class, polls: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        world = world_class().install(mp)
        from drivers.nfc_reader import NfcReader

        t = [0.0]
        reader = NfcReader(clock=lambda: t[0])
        reader.attach(lambda event: None)
        reader.step()
        for label, card in (("no card", None), ("card held", ("A", UID))):
            world.card = card

            def poll() -> None:
                reader.step()
                t[0] += 0.1

            driver = "pn533" if world_class.__name__.startswith("Pn533") else "rcs380"
            print(f"nfcpy connect() poll, {driver:6}, {label:9} {per_poll(poll, polls):7.0f} µs/poll here "
                  f"(nfcpy's own {driver} driver over a fake USB transport)")
        reader.close()


def key_decoding(repeats: int) -> None:
    from drivers.keyboard_wedge import KeyDecoder

    events = typed("EM0000000001") * repeats
    decoder = KeyDecoder()
    started = time.perf_counter()
    for event in events:
        decoder.feed_event(event)
    elapsed = time.perf_counter() - started
    print(f"key decoding: {len(events) / elapsed:,.0f} events/s ({repeats / elapsed:,.0f} 12-character lines/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=500)
    args = parser.parse_args()
    mfrc522(args.polls)
    nfc(args.polls)
    key_decoding(2000)


if __name__ == "__main__":
    main()
