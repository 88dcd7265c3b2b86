"""One soak run: set the station up, run the load and the faults for the asked minutes, settle,
check the invariants, write the report. Return the summary."""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from custody.vault.timestamps import to_text
from soak import breaks, checks, report
from soak.faults import Faults
from soak.ground import Ledger
from soak.load import Browser, Dock, Drops, Journal, People
from soak.monitor import Monitor, replica_waiting
from soak.station import RECORDERS, Station, readable_copy_of_custody

REPO = Path(__file__).resolve().parents[1]
SETTLE_SECONDS = 900  # the most the station gets, after the faults stop, to catch up


def testbed():
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    if "libumockdev-preload" not in os.environ.get("LD_PRELOAD", ""):
        raise SystemExit("soak: run under umockdev-wrapper (make soak does)")
    return UMockdev.Testbed.new()


def run(
    minutes: float, seed: int, out: Path, broken: list[str], fault_every: float, kinds: list[str]
) -> dict:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="custody-soak-", dir="/tmp"))
    work.chmod(0o755)
    python_path, must_fail = None, []
    if broken:
        python_path = readable_copy_of_custody(REPO / "custody", work / "broken")
        must_fail = breaks.apply(work / "broken" / "custody", broken)
    journal, ledger = Journal(), Ledger()
    bed = testbed()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with Station(work, bed, python_path) as station:
            summary = _drive(station, rng, minutes, journal, ledger, fault_every, kinds)
    finally:
        if (work / "daemon.log").exists():
            shutil.copy(work / "daemon.log", out / "daemon.log")
        if journal.violations and not broken:
            print(f"soak: violations: the station is kept in {work} to look at", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary.update(
        seed=seed,
        minutes=minutes,
        broken=broken,
        must_fail=must_fail,
        may_fail=sorted(breaks.may_fail(broken)),
    )
    samples = summary.pop("_samples")
    summary["plots"] = report.write_plots(out, samples, journal.faults, summary.pop("_stored"))
    report.write_samples(out, samples, journal.faults)
    report.write_summary(out, summary)
    return summary


def _drive(station: Station, rng: random.Random, minutes: float, journal: Journal, ledger: Ledger,
           fault_every: float, kinds: list[str]) -> dict:  # fmt: skip
    dock = Dock(station, RECORDERS, ledger, journal, random.Random(rng.getrandbits(64)))
    drops = Drops(station, ledger, journal, random.Random(rng.getrandbits(64)))
    people = People(station, ledger, journal, random.Random(rng.getrandbits(64)))
    browser = Browser(station, ledger, journal, random.Random(rng.getrandbits(64)))
    faults = Faults(station, dock, people, journal, random.Random(rng.getrandbits(64)), fault_every, kinds)
    monitor = Monitor(station, journal)
    stored: list[tuple[float, int]] = []
    stop_load, stop_watch = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=dock.cycle, args=(stop_load,), name="dock"),
        threading.Thread(target=drops.run, args=(stop_load,), name="drops"),
        threading.Thread(target=people.run, args=(stop_load,), name="people"),
        threading.Thread(target=browser.run, args=(stop_load,), name="browser"),
        threading.Thread(target=faults.run, args=(stop_load,), name="faults"),
    ]
    watchers = [
        threading.Thread(target=monitor.run, args=(stop_watch,), name="monitor"),
        threading.Thread(target=_count_stored, args=(station, journal, stored, stop_watch), name="stored"),
    ]
    for thread in threads + watchers:
        thread.start()
    try:
        time.sleep(minutes * 60)
    except KeyboardInterrupt:  # (Ctrl-C: the threads are asked to stop, then the station is taken down)
        stop_load.set()
        stop_watch.set()
        for thread in threads + watchers:
            thread.join(timeout=30)
        raise
    stop_load.set()
    for thread in threads:
        thread.join()
    journal.event("load-stopped")
    station.proxy.plan.clear()
    station.proxy.down_until = 0.0
    (station.disk / "ballast").unlink(missing_ok=True)  # (a disk the last fault filled is freed now)
    if station.daemon_pid() is None:
        station.start_daemon()
    dock.cycle(threading.Event(), final=True)  # every card docked once more, to the end
    settled = _settle(station, journal)
    stop_watch.set()
    for thread in watchers:
        thread.join()
    items = station.items()
    station.stop_daemon()
    shutil.rmtree(people.outbox, ignore_errors=True)  # (the people's extracts and discs, checked)
    checks.check_left_behind(station, journal)
    checks.check_items(items, ledger, journal)
    events = json.loads(station.custody("log", "--json").stdout)
    checks.check_denials(events, journal)
    checks.check_station(station, journal)
    flatness = checks.FINE if minutes * 60 >= checks.FINE.min_run else checks.GROSS
    flat = checks.check_flat(monitor.samples, journal, flatness)
    p99 = checks.check_status(monitor.samples, journal)
    failed = sorted({v["invariant"] for v in journal.violations})
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settled_in_seconds": settled,
        "files_generated": ledger.count(),
        "files_expected": len(ledger.expected()),
        "bytes_generated": sum(f.size for f in ledger.files.values()),
        "items_in_vault": len(items),
        "docks": dock.docks,
        "drops": sum(e["kind"] in ("dropped", "dropped-again") for e in journal.events),
        "files_wiped_by_custody": sum(e.get("files", 0) for e in journal.events if e["kind"] == "wiped"),
        "people_actions": people.done,
        "activity": _activity(journal.events),
        "denials_expected_and_audited": len(journal.denied_expected),
        "daemon_starts": len(station.daemon_starts),
        "daemon_exits_unbidden": station.unbidden_exits,  # (restarted as systemd would)
        "faults": report.fault_counts(journal.faults),
        "fault_kinds": kinds,
        "s3_faults_met": dict(
            sorted(collections.Counter(f"{kind} {fault}" for kind, fault in station.proxy.injected).items())
        ),
        "invariants": list(checks.INVARIANTS),
        "flatness_checked": flat,
        "flatness_judged": flatness.name,
        "status_p99_seconds": p99,
        "status_samples": sum("status_seconds" in s for s in monitor.samples),
        "exports_not_made": [
            e.get("said", "") for e in journal.events if e["kind"] == "export" and e.get("code") not in (0, 1)
        ][:5],
        "violations": journal.violations,
        "failed_invariants": failed,
        "_samples": monitor.samples,
        "_stored": stored,
    }


def _count_stored(station: Station, journal: Journal, stored: list, stop: threading.Event) -> None:
    """Items in the catalog every 5 s (read-only, beside the daemon: SQLite in WAL mode)."""
    while not stop.wait(5.0):
        try:
            with sqlite3.connect(f"file:{station.home / 'catalog.db'}?mode=ro", uri=True, timeout=5) as db:
                stored.append((journal.now(), db.execute("SELECT count(*) FROM items").fetchone()[0]))
        except sqlite3.Error:
            pass


def _settle(station: Station, journal: Journal) -> float:
    """Wait until the media queue and the replication queue are empty; return how long it took."""
    from custody.ingestd import api

    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < SETTLE_SECONDS:
        try:
            status = api.call(station.run / "api.sock", "status", {}, timeout=30)
        except Exception:  # (the daemon restarting)
            time.sleep(1)
            continue
        jobs = status.get("media_jobs") or {}
        busy = sum(n for state, n in jobs.items() if state in ("queued", "running"))
        waiting = replica_waiting(status) + _deletions_due(station)
        quiet = quiet + 1 if busy == 0 and waiting == 0 else 0
        if quiet >= 3:
            return round(time.monotonic() - started, 1)
        time.sleep(2)
    journal.violation(
        "replicas-match", f"the station did not catch up within {SETTLE_SECONDS} s of the faults"
    )
    return round(time.monotonic() - started, 1)


def _deletions_due(station: Station) -> int:
    """Replica deletions of disposed objects the daemon has still to make (read-only, beside it)."""
    try:
        with sqlite3.connect(f"file:{station.home / 'catalog.db'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(
                "SELECT count(*) FROM replica_deletions WHERE state != 'done' AND not_before <= ?",
                [to_text(datetime.now(UTC))],
            ).fetchone()[0]
    except sqlite3.Error:
        return 1  # (not known yet: not settled)


def _activity(events: list[dict]) -> dict[str, dict[str, int]]:
    """What was done, by kind, and how it ended (ok, or the command's exit code)."""
    counts: dict[str, dict[str, int]] = {}
    for event in events:
        outcome = "ok" if event.get("ok") or event.get("code") == 0 else str(event.get("code", "done"))
        if event.get("ok") is False:
            outcome = "refused or failed"
        by_outcome = counts.setdefault(event["kind"], {})
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
    return dict(sorted(counts.items()))
