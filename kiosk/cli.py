"""The `kiosk` command.

    kiosk run [--config PATH]                 the kiosk itself (fullscreen, devices from the config)
    kiosk demo [--config PATH] [--db PATH]    the whole kiosk on simulated devices, in a window
    kiosk demo --headless --script FILE [--screenshots DIR]
                                              run a scenario; exit 0 when every expectation holds
    kiosk config check [PATH]                 validate a config file, list every problem
    kiosk ils serve --db PATH [--port N] [--seed demo] [switches]
                                              the demo library system, a SIP2 server
    kiosk ils loans --db PATH [--json]        the demo library system's loans and circulation log
    kiosk sip2 decode [FILE]                  SIP2 frames (one a line) as JSON, one object a frame
    kiosk sip2 ping [--config PATH]           log in to the ILS, send 99, print the status and timing
    kiosk sync --once [--config PATH]         deliver queued loans and returns to the ILS, then exit
    kiosk queue status [--config PATH]        the outbox: events by state, the oldest undelivered
    kiosk queue list|show ID|retry ID|resolve ID
                                              the outbox's events; send a dead letter again, or
                                              mark it settled by hand at the library
    kiosk selftest [DEVICE] [--config PATH] [--slots 1,2] [--timeout S]
                                              read a card and a barcode, pulse locks, report every
                                              door sensor; a pass/fail table, exit 1 on any fail
    kiosk scan IMAGE... [--json]              decode pictures through the camera's barcode pipeline
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
from importlib import resources
from zoneinfo import ZoneInfo
from pathlib import Path

from kiosk.config import Config, ConfigError, load

DEFAULT_CONFIG = Path("config.toml")
TOUR = "tour.scenario"


def _load_config(path: str | None) -> Config:
    if path is not None:
        return load(path)
    if DEFAULT_CONFIG.exists():
        return load(DEFAULT_CONFIG)
    return Config()


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or os.environ.get(
        "SDL_VIDEODRIVER", ""
    ) not in ("", "dummy", "offscreen")


def cmd_config_check(args: argparse.Namespace) -> int:
    path = args.path or str(DEFAULT_CONFIG)
    try:
        config = load(path)
        if config.library.backend == "sip2" and config.library.seed != "demo":
            from kiosk.config import load_secrets

            load_secrets(config)  # a real kiosk cannot log in without it
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: OK ({config.kiosk.name}, library {config.kiosk.library_code}, "
          f"{config.devices.locks.slots} lockers, database {config.database})")
    return 0


def _demo_config(config: Config) -> Config:
    ui = dataclasses.replace(config.ui, fullscreen=False)
    library = dataclasses.replace(config.library, seed="demo")
    return dataclasses.replace(config, ui=ui, library=library)


def cmd_demo(args: argparse.Namespace) -> int:
    if not args.db:  # a database of its own, in a temporary folder
        return _demo(args)
    lock = _take_database(Path(args.db), "kiosk demo")
    if lock is None:
        return 1
    with lock:
        return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    config = _demo_config(_load_config(args.config))
    headless = args.headless or args.script is not None
    if not headless and not _has_display():
        print("No display found: running the demo tour headless instead; screenshots of every "
              "screen go to demo-screenshots/. Run `kiosk demo` in a desktop session to click "
              "through it yourself.")
        headless = True
        args.screenshots = args.screenshots or "demo-screenshots"
    if headless:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        script = Path(args.script) if args.script else None
        return run_scenario(config, script, screenshots=args.screenshots, db=args.db, verbose=args.verbose)
    return _demo_window(config, args.db)


def _temp_db(db: str | None) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    if db:
        return Path(db), None
    tmp = tempfile.TemporaryDirectory(prefix="kiosk-demo-")
    return Path(tmp.name) / "kiosk.db", tmp


def run_scenario(config: Config, script: Path | None, *, screenshots: str | None = None,
                 db: str | None = None, verbose: bool = False) -> int:
    """Run a scenario file (or the built-in tour) headless; 0 when every expectation holds."""
    from kiosk.app import build
    from kiosk.clock import FakeClock
    from kiosk.scenario import Runner, ScenarioError, parse
    from ui.display import Display

    if script is None:
        name, text = TOUR, resources.files("kiosk").joinpath("scenarios", TOUR).read_text("utf-8")
    else:
        try:
            name, text = str(script), script.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"{script}: cannot read the scenario: {exc}", file=sys.stderr)
            return 2
    try:
        steps = parse(text)
    except ScenarioError as exc:
        print(f"{name}:{exc.line}: {exc.text}\n  {exc.reason}", file=sys.stderr)
        return 2
    db_path, tmp = _temp_db(db)
    clock = FakeClock()
    ils = _demo_ils(config, clock, db_path.parent)
    display = None

    def boot():
        kiosk = build(config, clock=clock, db_path=db_path, display=display,
                      sip2=ils.settings if ils else None)
        kiosk.start()
        return kiosk

    try:
        display = Display(width=config.ui.width, height=config.ui.height, headless=True,
                          font_path=config.ui.font or None, bold_font_path=config.ui.bold_font or None)
        kiosk = boot()
    except BaseException:
        if ils is not None:
            ils.close()
        raise
    shots = Path(screenshots) if screenshots else None
    runner = Runner(kiosk, clock, screenshots=shots, echo=print if verbose else None, ils=ils, restart=boot)
    try:
        runner.run(steps)
    except ScenarioError as exc:
        print(f"{name}:{exc.line}: FAILED: {exc.text}\n  {exc.reason}", file=sys.stderr)
        return 1
    finally:
        runner.kiosk.close()
        if ils is not None:
            ils.close()
        if tmp is not None:
            tmp.cleanup()
    print(f"{name}: all {len(steps)} steps passed" + (f"; screenshots in {shots}/" if shots else ""))
    return 0


def _demo_ils(config: Config, clock, folder: Path):
    """The demo's own library system on a free loopback port, when the config uses SIP2."""
    if config.library.backend != "sip2":
        return None
    from kiosk.app import DemoLibrarySystem

    return DemoLibrarySystem(config, clock, folder)


def _demo_window(config: Config, db: str | None) -> int:
    from kiosk import demo
    from kiosk.app import build
    from kiosk.clock import SystemClock
    from kiosk.identifiers import parse_uid_hex
    from ui.display import Display, PanelButton

    members = demo.MEMBERS
    panel = [
        PanelButton("sim:card:" + members[0].card_uid, f"{members[0].name} · 정상 (PIN 1234)", "1", "카드 리더"),
        PanelButton("sim:card:" + members[1].card_uid, f"{members[1].name} · 연체료 정지", "2", "카드 리더"),
        PanelButton("sim:card:" + members[2].card_uid, f"{members[2].name} · 대출 한도", "3", "카드 리더"),
        PanelButton("sim:card:DEADBEEF", "등록되지 않은 카드", "4", "카드 리더"),
        PanelButton("sim:scan:" + members[0].member_id, "모바일 회원증 (김민준)", "m", "바코드 스캐너"),
        PanelButton("sim:scan:" + demo.accession(1), f"책 {demo.accession(1)} 반납", "b", "바코드 스캐너"),
        PanelButton("sim:scan:" + demo.accession(25), f"책 {demo.accession(25)} 반납", "n", "바코드 스캐너"),
        PanelButton("sim:scan:EM0000000999", "다른 도서관 책", "x", "바코드 스캐너"),
        PanelButton("sim:door-open", "열린 보관함 문 열기", "o", "보관함 문"),
        PanelButton("sim:door-close", "보관함 문 닫기", "c", "보관함 문"),
        PanelButton("sim:door-force", "24번 강제로 열기", "f", "보관함 문"),
    ]
    if config.library.backend == "sip2":
        panel += [
            PanelButton("sim:ils-down", "연결 끊기 (오프라인)", "d", "도서관 시스템"),
            PanelButton("sim:ils-up", "다시 연결", "u", "도서관 시스템"),
        ]
    db_path, tmp = _temp_db(db)
    clock = SystemClock(ZoneInfo(config.kiosk.timezone))
    ils = _demo_ils(config, clock, db_path.parent)
    if ils is not None:
        print(f"demo library system (SIP2) on {ils.server.address[0]}:{ils.server.address[1]}, "
              f"database {ils.db_path}")
    display = Display(width=config.ui.width, height=config.ui.height, fullscreen=False, panel=panel,
                      font_path=config.ui.font or None, bold_font_path=config.ui.bold_font or None,
                      title=f"{config.kiosk.name} (demo)")
    kiosk = build(config, clock=clock, db_path=db_path, display=display, sip2=ils.settings if ils else None)
    devices = kiosk.devices

    def on_panel(action: str) -> None:
        kind, _, value = action[len("sim:"):].partition(":")
        locks = devices.locks
        if kind == "card":
            devices.card_reader.present(parse_uid_hex(value))
        elif kind == "scan":
            devices.scanner.show(value)
        elif kind == "door-open" and locks.last_unlocked is not None:
            locks.open_door(locks.last_unlocked)
        elif kind == "door-close":
            for slot in [n for n in range(1, locks.slots + 1) if locks.is_open(n)]:
                locks.close_door(slot)
        elif kind == "door-force":
            locks.open_door(locks.slots)
        elif kind == "ils-down" and ils is not None:
            ils.down()
        elif kind == "ils-up" and ils is not None:
            ils.up()

    kiosk.start()
    kiosk.start_background()
    try:
        kiosk.run(on_panel)
    finally:
        kiosk.close()
        if ils is not None:
            ils.close()
        if tmp is not None:
            tmp.cleanup()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from kiosk.app import build
    from kiosk.clock import SystemClock
    from ui.display import Display

    config = _load_config(args.config)
    lock = _take_database(config.database, "kiosk run")
    if lock is None:
        return 1
    with lock:
        display = Display(width=config.ui.width, height=config.ui.height, fullscreen=config.ui.fullscreen,
                          font_path=config.ui.font or None, bold_font_path=config.ui.bold_font or None,
                          title=config.kiosk.name)
        kiosk = build(config, clock=SystemClock(ZoneInfo(config.kiosk.timezone)), display=display)
        kiosk.start()
        kiosk.start_background()
        try:
            kiosk.run()
        finally:
            kiosk.close()
    return 0


def _take_database(db_path: Path, role: str):
    """The database's instance lock, taken for `role`; None after saying who else holds it.
    A kiosk waits for a `kiosk sync --once` to finish (it soon does); it never runs beside
    another kiosk."""
    from kiosk.instance import AlreadyRunning, InstanceLock

    lock = InstanceLock(db_path)
    try:
        lock.acquire(role)
    except AlreadyRunning as exc:
        if not exc.holder.startswith("kiosk sync"):
            print(f"{exc}: only one kiosk runs on a database (stop the other one first, e.g. "
                  f"`systemctl stop kiosk`)", file=sys.stderr)
            return None
        print(f"{exc}: waiting for it to finish", file=sys.stderr)
        lock.acquire(role, wait=True)
    except OSError as exc:
        print(f"{lock.path}: cannot take the kiosk's lock: {exc}", file=sys.stderr)
        return None
    return lock


def _behaviour(args: argparse.Namespace):
    from sync.demo_ils import Behaviour

    return Behaviour(
        terminator="\r\n" if args.terminator == "CRLF" else "\r", error_detection=args.error_detection,
        checksum=args.checksum, encoding=args.encoding, no_block=args.no_block,
        repeat_checkout=args.repeat_checkout, checked_in_ok=args.checked_in_ok,
    )


def cmd_ils_serve(args: argparse.Namespace) -> int:
    from kiosk.clock import SystemClock
    from sync.demo_ils import DemoIls, DemoIlsError, seed_demo

    db = Path(args.db)
    clock = SystemClock()
    try:
        if args.seed == "demo" and seed_demo(db, clock):
            print(f"{db}: seeded with the demo members, books and SIP2 account (user kiosk)")
        server = DemoIls(db, clock=clock, behaviour=_behaviour(args), host=args.host, port=args.port)
    except (DemoIlsError, OSError) as exc:
        print(f"kiosk ils serve: {exc}", file=sys.stderr)
        return 1
    with server:
        host, port = server.address
        print(f"demo library system: SIP2 on {host}:{port}, database {db} (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    return 0


def cmd_ils_loans(args: argparse.Namespace) -> int:
    from sync.demo_ils import DemoIlsError, loans_report

    if not Path(args.db).exists():
        print(f"{args.db}: no such database", file=sys.stderr)
        return 1
    try:
        report = loans_report(Path(args.db))
    except DemoIlsError as exc:
        print(f"kiosk ils loans: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    print(f"{len(report['loans'])} loan(s)")
    for loan in report["loans"]:
        print(f"  {loan['item']}  {loan['patron']}  due {loan['due']}  renewals {loan['renewals']}  {loan['title']}")
    print(f"{len(report['log'])} circulation event(s)")
    for entry in report["log"][-20:]:
        outcome = "ok" if entry["ok"] else "refused"
        print(f"  {entry['at']}  {entry['action']:<8} {entry['item']}  {outcome}  {entry.get('message') or ''}")
    return 0


def cmd_sip2_decode(args: argparse.Namespace) -> int:
    from sync.sip2.codec import Dialect
    from sync.sip2.tools import decode_lines

    try:
        dialect = Dialect(encoding=args.encoding, checksum_mode=args.checksum, delimiter=args.delimiter)
        source = open(args.file, "rb") if args.file and args.file != "-" else sys.stdin.buffer
    except (OSError, ValueError, LookupError) as exc:
        print(f"kiosk sip2 decode: {exc}", file=sys.stderr)
        return 2
    failed = 0
    try:
        for obj in decode_lines(source, dialect, reveal_secrets=args.reveal_secrets):
            failed += "error" in obj
            print(json.dumps(obj, ensure_ascii=False))
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    return 1 if failed else 0


def cmd_sip2_ping(args: argparse.Namespace) -> int:
    from kiosk.app import sip2_settings
    from kiosk.clock import SystemClock
    from sync.sip2.client import Client
    from sync.sip2.codec import Sip2Error

    config = _load_config(args.config)
    settings = sip2_settings(config)
    where = f"{settings.host}:{settings.port}" + (" (TLS)" if settings.tls else "")
    try:
        with Client(settings, clock=SystemClock()) as client:
            status, seconds = client.ping()
    except Sip2Error as exc:
        print(f"{where}: FAILED: {exc}", file=sys.stderr)
        return 1
    supported = ", ".join(sorted(status.supported_messages)) or "not stated"
    print(f"{where}: OK in {seconds * 1000:.1f} ms")
    print(f"  institution {status.institution or '?'}  {status.library_name or ''}".rstrip())
    print(f"  online {status.online}  checkout {status.checkout_ok}  checkin {status.checkin_ok}  "
          f"offline ok {status.offline_ok}  protocol {status.protocol_version}")
    print(f"  supports: {supported}")
    for line in status.screen_messages:
        print(f"  says: {line}")
    return 0


def _store_of(args: argparse.Namespace):
    """(config, the kiosk's store), or (config, None) after saying why there is none."""
    from kiosk.store import Store, StoreError

    config = _load_config(args.config)
    path = Path(args.db) if args.db else config.database
    if not path.exists():
        print(f"{path}: no kiosk database here (see [kiosk] data_dir)", file=sys.stderr)
        return config, None
    try:
        return config, Store(path, keep_member_numbers=config.library.backend == "local")
    except StoreError as exc:  # damaged, or of a newer kiosk: said, the file left as it is
        print(exc, file=sys.stderr)
        return config, None


def cmd_sync(args: argparse.Namespace) -> int:
    from kiosk.app import sip2_settings
    from kiosk.clock import SystemClock
    from kiosk.instance import AlreadyRunning, InstanceLock
    from sync.outbox import OutboxWorker
    from sync.sip2.client import Client

    config = _load_config(args.config)
    if config.library.backend != "sip2":
        print("[library] backend is not \"sip2\": there is no library system to deliver to", file=sys.stderr)
        return 1
    path = Path(args.db) if args.db else config.database
    if not path.exists():
        print(f"{path}: no kiosk database here (see [kiosk] data_dir)", file=sys.stderr)
        return 1
    lock = InstanceLock(path)
    try:
        lock.acquire("kiosk sync")
    except AlreadyRunning as exc:
        doing = ("it is delivering the queue already" if exc.holder.startswith("kiosk sync") else
                 "the running kiosk delivers its queue itself, as soon as the library answers")
        print(f"{exc}: {doing}; `kiosk queue status` shows how far it has got", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{lock.path}: cannot take the kiosk's lock: {exc}", file=sys.stderr)
        return 1
    with lock:
        config, store = _store_of(args)
        if store is None:
            return 1
        clock = SystemClock(ZoneInfo(config.kiosk.timezone))
        with store, Client(sip2_settings(config), clock=clock) as client:
            report = OutboxWorker(store, client, clock, backoff_initial_s=config.sip2.backoff_initial_s,
                                  backoff_max_s=config.sip2.backoff_max_s).drain()
            print(report)
            left = store.queue_status()
            audit_left = store.locker_audit_pending()
    print(_queue_line(left) + ("; the locker audit after a power cut is still to run" if audit_left else ""))
    # 0 only when everything has gone: a script (or a technician) may take 0 for "all sent".
    waiting = sum(left["counts"].get(state, 0) for state in ("pending", "inflight", "unknown"))
    return 0 if not (report.dead or report.deferred or report.unknown or waiting or audit_left) else 1


def _queue_line(status: dict) -> str:
    counts = status["counts"]
    parts = ", ".join(f"{counts.get(state, 0)} {state}"
                      for state in ("pending", "inflight", "unknown", "dead", "delivered"))
    oldest = status["oldest_undelivered"]
    return f"outbox: {parts}" + (f"; oldest undelivered from {oldest}" if oldest else "")


def _now(config: Config):
    from kiosk.clock import SystemClock

    return SystemClock(ZoneInfo(config.kiosk.timezone)).now()


def cmd_queue_status(args: argparse.Namespace) -> int:
    from kiosk.staff import age_words, queue_overview

    config, store = _store_of(args)
    if store is None:
        return 1
    with store:
        overview = queue_overview(store, _now(config))
    if args.json:
        print(json.dumps(overview, ensure_ascii=False, indent=2))
        return 0
    counts = overview["counts"]
    print("outbox: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    if overview["waiting"]:
        print(f"  {overview['waiting']} waiting for the library; the oldest since {overview['oldest_waiting']} "
              f"({age_words(overview['oldest_waiting_age_s'])})")
    if overview["unsynced_clock"]:
        print(f"  {overview['unsynced_clock']} waiting event(s) were stamped before the clock was set: "
              "they are sent with the time of sending, not their own")
    for event in overview["dead_letters"]:
        print(f"  dead letter #{event['id']}: {event['kind']} of {event['item']}: {event['reason']}")
    if overview["dead_letters"]:
        print("  fix each at the library, then: kiosk queue retry ID (send it again) or "
              "kiosk queue resolve ID --note \"...\" (settled by hand)")
    return 0


def cmd_queue_list(args: argparse.Namespace) -> int:
    from kiosk.staff import event_view

    _, store = _store_of(args)
    if store is None:
        return 1
    with store:
        rows = [event_view(row) for row in store.outbox(args.state)]
    rows = rows[-args.limit:] if args.limit else rows
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for e in rows:
        clock = "" if e["clock_synced"] else "  (clock not set)"
        print(f"#{e['id']:<6} {e['state']:<9} {e['kind']:<8} {e['item']:<16} {e['created_at']}  "
              f"tries {e['attempts']}{clock}  {e['reason']}".rstrip())
    print(f"{len(rows)} event(s)")
    return 0


def _queue_event(store, seq: int) -> dict | None:
    """Outbox event #seq, or None after saying there is none."""
    row = store.queue_event(seq) if 0 < seq < 2**63 else None
    if row is None:
        print(f"no outbox event #{seq} (see kiosk queue list)", file=sys.stderr)
    return row


def cmd_queue_show(args: argparse.Namespace) -> int:
    from kiosk.staff import event_view

    _, store = _store_of(args)
    if store is None:
        return 1
    with store:
        row = _queue_event(store, args.id)
    if row is None:
        return 1
    print(json.dumps(event_view(row, full=True), ensure_ascii=False, indent=2))
    return 0


def cmd_queue_settle(args: argparse.Namespace) -> int:
    config, store = _store_of(args)
    if store is None:
        return 1
    with store:
        row = _queue_event(store, args.id)
        if row is None:
            return 1
        if args.queue_command == "retry":
            done = store.retry_event(args.id, _now(config))
            what = "will be sent again (after item information, as always)"
        else:
            done = store.resolve_event(args.id, args.note, _now(config))
            what = "is marked settled by hand; later events of its item may go"
    if not done:
        print(f"event #{args.id} is {row['state']}, not a dead letter: nothing to do", file=sys.stderr)
        return 1
    print(f"event #{args.id} ({row['kind']} of {row['item']}) {what}")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    """Decode picture files exactly as the camera does (every extra pass at once) and say, per
    file, which codes were found and whether the kiosk would take them."""
    import time

    from drivers.barcode_pipeline import BarcodePipeline, PipelineError, accepted_kind
    from drivers.base import DeviceError

    config = _load_config(args.config)
    scanner = config.devices.scanner
    roi = scanner.roi if args.roi == "config" else args.roi
    try:
        from drivers.camera import read_image

        pipeline = BarcodePipeline(decoders=args.decoders or scanner.decoders, symbologies=scanner.symbologies,
                                   roi=roi, rules=config.identifier_rules())
    except (PipelineError, DeviceError, ImportError) as exc:
        print(f"kiosk scan: {exc}", file=sys.stderr)
        return 2
    status = 0
    for path in args.images:
        report: dict = {"file": path}
        try:
            gray = read_image(path)
        except OSError as exc:
            gray, report["error"] = None, f"cannot be read: {exc.strerror or exc}"
        else:
            if gray is None:
                report["error"] = "not a picture OpenCV can read"
        if gray is not None:
            started = time.perf_counter()
            found = pipeline.decode(gray)
            report["ms"] = round((time.perf_counter() - started) * 1000, 1)
            report["codes"] = []
            for c in found:
                kind = accepted_kind(c.text, pipeline.rules)
                report["codes"].append({"text": c.text, "symbology": c.symbology, "decoder": c.decoder,
                                        "pass": c.stage, "accepted": kind.value if kind else None})
        if "error" in report:
            status = 2
        elif not any(code["accepted"] for code in report["codes"]):
            status = max(status, 1)
        if args.json:
            print(json.dumps(report, ensure_ascii=False))
            continue
        if "error" in report:
            print(f"{path}: {report['error']}")
            continue
        codes = report["codes"]
        print(f"{path}: {len(codes) or 'no'} code{'' if len(codes) == 1 else 's'} ({report['ms']} ms)")
        for code in codes:
            verdict = code["accepted"] or "not accepted (matches no [identifiers] pattern)"
            print(f"  {code['symbology']:<8} {code['text']!r}  {verdict}  ({code['decoder']}, {code['pass']} pass)")
    return status


def _slot_list(text: str) -> list[int]:
    """"1,2,5-7" -> [1, 2, 5, 6, 7]"""
    slots: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            first, _, last = part.partition("-")
            slots.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected locker numbers such as 1,2 or 5-8") from None
    return slots


def cmd_selftest(args: argparse.Namespace) -> int:
    from kiosk import selftest
    from kiosk.clock import SystemClock

    config = _load_config(args.config)
    kinds = selftest.kinds_for(args.device, config)
    clock = SystemClock(ZoneInfo(config.kiosk.timezone))
    devices, failures = selftest.build(config, kinds, clock)
    test = selftest.SelfTest(devices, failures=failures, timeout_s=args.timeout,
                             prompt=lambda text: print(text, flush=True))
    results = test.run(kinds, args.slots)
    print(selftest.table(results))
    return 0 if all(r.ok for r in results) else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiosk", description="Self-service library locker kiosk")
    p.add_argument("-v", "--verbose", action="store_true", help="log more, echo scenario steps")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the kiosk with the devices the config names")
    run.add_argument("--config", help="config file (default: ./config.toml)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="run the whole kiosk on simulated devices with demo data")
    demo.add_argument("--config", help="config file (default: ./config.toml, else built-in defaults)")
    demo.add_argument("--headless", action="store_true", help="no window (SDL dummy video driver)")
    demo.add_argument("--script", help="scenario file to run (default with --headless: the built-in tour)")
    demo.add_argument("--screenshots", help="folder for the scenario's screenshots")
    demo.add_argument("--db", help="database file to use (default: a fresh temporary one)")
    demo.set_defaults(func=cmd_demo)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file and list every problem")
    check.add_argument("path", nargs="?", help="config file (default: ./config.toml)")
    check.set_defaults(func=cmd_config_check)

    ils = sub.add_parser("ils", help="the demo library system (a SIP2 server for demos and tests)")
    ils_sub = ils.add_subparsers(dest="ils_command", required=True)
    serve = ils_sub.add_parser("serve", help="serve SIP2 from a database (seeded with --seed demo)")
    serve.add_argument("--db", required=True, help="its database file (created if missing)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=6001, help="port (default 6001; 0 = any free port)")
    serve.add_argument("--seed", choices=["demo", "none"], default="demo",
                       help="fill an empty database with the demo data (default) or not")
    serve.add_argument("--terminator", choices=["CR", "CRLF"], default="CR", help="reply terminator (Koha: CRLF)")
    serve.add_argument("--error-detection", choices=["per-message", "required", "off"], default="per-message")
    serve.add_argument("--checksum", choices=["bytes", "codepoints"], default="bytes")
    serve.add_argument("--encoding", choices=["utf-8", "utf-8-nfd", "cp949", "cp850", "ascii"], default="utf-8")
    serve.add_argument("--no-block", choices=["honoured", "ignored"], default="honoured",
                       help="offline replays: bypass blocks (Koha) or not (Evergreen, FOLIO)")
    serve.add_argument("--repeat-checkout", choices=["renewal", "refused"], default="renewal",
                       help="a checkout of an item the patron already has (Koha, Evergreen: a renewal)")
    serve.add_argument("--checked-in-ok", action="store_true", help="a checkin of an item not on loan is ok")
    serve.set_defaults(func=cmd_ils_serve)
    loans = ils_sub.add_parser("loans", help="print the demo library system's loans and circulation log")
    loans.add_argument("--db", required=True)
    loans.add_argument("--json", action="store_true", help="JSON instead of a table")
    loans.set_defaults(func=cmd_ils_loans)

    sip2 = sub.add_parser("sip2", help="SIP2 tools for technicians")
    sip2_sub = sip2.add_subparsers(dest="sip2_command", required=True)
    decode = sip2_sub.add_parser("decode", help="decode SIP2 frames (one a line) into JSON")
    decode.add_argument("file", nargs="?", help="file of frames (default: standard input)")
    decode.add_argument("--encoding", default="utf-8", help="character set (default utf-8)")
    decode.add_argument("--checksum", choices=["bytes", "codepoints", "either"], default="either")
    decode.add_argument("--delimiter", default="|", help="field delimiter, as [sip2] delimiter (default |)")
    decode.add_argument("--reveal-secrets", action="store_true", help="show passwords and PINs (CO, AD, AC)")
    decode.set_defaults(func=cmd_sip2_decode)
    ping = sip2_sub.add_parser("ping", help="log in to the ILS, send 99, print the status and round trip")
    ping.add_argument("--config", help="config file (default: ./config.toml)")
    ping.set_defaults(func=cmd_sip2_ping)

    sync = sub.add_parser("sync", help="deliver queued loans and returns to the library system")
    sync.add_argument("--once", action="store_true", required=True,
                      help="drain the outbox once and exit (the running kiosk has its own worker)")
    sync.add_argument("--config", help="config file (default: ./config.toml)")
    sync.add_argument("--db", help="the kiosk's database (default: the config's)")
    sync.set_defaults(func=cmd_sync)
    queue = sub.add_parser("queue", help="the outbox of events for the library system")
    queue_sub = queue.add_subparsers(dest="queue_command", required=True)
    status = queue_sub.add_parser("status", help="events by state, the oldest undelivered, dead letters")
    status.add_argument("--config", help="config file (default: ./config.toml)")
    status.add_argument("--db", help="the kiosk's database (default: the config's)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_queue_status)
    from kiosk.store import OUTBOX_STATES

    listing = queue_sub.add_parser("list", help="the events, oldest first (no member numbers)")
    listing.add_argument("--state", choices=OUTBOX_STATES)
    listing.add_argument("--limit", type=int, default=0, help="only the newest N")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_queue_list)
    show = queue_sub.add_parser("show", help="one event in full (member masked)")
    show.add_argument("id", type=int)
    show.set_defaults(func=cmd_queue_show)
    retry = queue_sub.add_parser("retry", help="send a dead letter again once its cause is fixed")
    retry.add_argument("id", type=int)
    retry.set_defaults(func=cmd_queue_settle)
    resolve = queue_sub.add_parser("resolve", help="mark a dead letter settled by hand at the library")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--note", default="", help="what was done (kept with the event)")
    resolve.set_defaults(func=cmd_queue_settle)
    for command in (listing, show, retry, resolve):
        command.add_argument("--config", help="config file (default: ./config.toml)")
        command.add_argument("--db", help="the kiosk's database (default: the config's)")

    from kiosk.selftest import ALIASES

    selftest = sub.add_parser("selftest", help="test the devices the config names: a pass/fail table")
    selftest.add_argument("device", nargs="?", default="all", choices=sorted(ALIASES),
                          help="card_reader, scanner, locks, indicator or all (default)")
    selftest.add_argument("--config", help="config file (default: ./config.toml)")
    selftest.add_argument("--slots", type=_slot_list, default=[1],
                          help="lockers to unlock and watch, e.g. 1,2 or 5-8 (default: 1)")
    selftest.add_argument("--timeout", type=float, default=20.0,
                          help="seconds to wait for each card, barcode and door (default 20)")
    selftest.set_defaults(func=cmd_selftest)

    scan = sub.add_parser("scan", help="decode barcode pictures through the camera's pipeline")
    scan.add_argument("images", nargs="+", metavar="IMAGE", help="picture files (PNG, JPEG, WebP...)")
    scan.add_argument("--config", help="config file (default: ./config.toml): decoders, symbologies, patterns")
    scan.add_argument("--json", action="store_true", help="one JSON object per file")
    scan.add_argument("--decoders", help="instead of the config's: zxing, zbar, zxing,zbar")
    scan.add_argument("--roi", default="", help="left,top,width,height in fractions, or 'config' for the "
                                                "camera's (default: the whole picture)")
    scan.set_defaults(func=cmd_scan)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
