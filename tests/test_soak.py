"""The soak (make soak) can fail: its checks find each kind of violation in made-up observations,
and a short soak of a deliberately broken build fails naming exactly the invariants it breaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custody.vault.timestamps import to_text
from soak import breaks, checks
from soak.ground import Footage, Ledger
from soak.load import Journal

REPO = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def ledger_of(*footage: Footage) -> Ledger:
    ledger = Ledger()
    for f in footage:
        ledger.add(f)
    return ledger


def footage(n: int, officer: str = "031245", clock_off: bool = False, readable: bool = True) -> Footage:
    return Footage(name=f"BWC_{n}.MP4", sha256=f"{n:064x}", size=100, officer=officer,
                   recorded_start=START + timedelta(minutes=n), source="BWC", clock_off=clock_off,
                   readable=readable)  # fmt: skip


def item(f: Footage, **changes) -> dict:
    found = {"id": f"EV-{f.size:06d}", "name": f.name, "sha256": f.sha256, "credited_officer": f.officer,
             "tags": {"officer": f.officer}, "recorded_start": to_text(f.recorded_start), "late": False,
             "clock_suspect": f.clock_off}  # fmt: skip
    found.update(changes)
    return found


def failed(journal: Journal) -> set[str]:
    return {v["invariant"] for v in journal.violations}


def test_the_items_check_holds_for_a_vault_that_matches_its_ground_truth():
    one, two, lost_to_corruption = footage(1), footage(2, clock_off=True), footage(3, readable=False)
    journal = Journal()
    checks.check_items([item(one), item(two)], ledger_of(one, two, lost_to_corruption), journal)
    assert journal.violations == []


@pytest.mark.parametrize(
    ("vault", "invariant"),
    [
        (lambda one, two: [item(one)], "every-file-exactly-once"),  # two is missing
        (lambda one, two: [item(one), item(two), item(two)], "every-file-exactly-once"),
        (lambda one, two: [item(one), item(two), item(footage(9))], "nothing-but-what-was-docked"),
        (lambda one, two: [item(one, credited_officer=None, tags={}), item(two)], "credited-to-the-right-officer"),
        (lambda one, two: [item(one, recorded_start="2026-12-01T08:01:05.000000Z"), item(two)],
         "right-recording-window"),
        (lambda one, two: [item(one, late=True), item(two)], "right-deadline"),
        (lambda one, two: [item(one), item(two, clock_suspect=False)], "right-deadline"),
    ],
)  # fmt: skip
def test_the_items_check_names_each_kind_of_wrong_vault(vault, invariant):
    one, two = footage(1), footage(2, clock_off=True)
    journal = Journal()
    checks.check_items(vault(one, two), ledger_of(one, two), journal)
    assert failed(journal) == {invariant}, journal.violations


def test_old_footage_must_be_marked_late_and_disposed_footage_gone():
    due, kept = footage(1), footage(2)
    due.age, kept.age = "due", "kept"
    journal = Journal()
    checks.check_items([item(due, late=True), item(kept, late=True)], ledger_of(due, kept), journal)
    assert journal.violations == []
    checks.check_items([item(due, late=True), item(kept)], ledger_of(due, kept), journal)
    assert failed(journal) == {"right-deadline"}  # stored late, not marked so
    due.disposed = True
    journal = Journal()
    checks.check_items([item(kept, late=True)], ledger_of(due, kept), journal)
    assert journal.violations == []  # (gone, as it was disposed of: not missing)
    checks.check_items([item(due, late=True), item(kept, late=True)], ledger_of(due, kept), journal)
    assert failed(journal) == {"disposed-only-when-due"}


def test_a_refusal_missing_from_the_audit_chain_is_named():
    journal = Journal()
    journal.denied_expected += [{"user": "a", "action": "tag"}, {"user": "a", "action": "tag"}]
    events = [{"action": "denied", "actor": "a", "details": {"action": "tag"}}]
    checks.check_denials(events, journal)
    assert failed(journal) == {"every-denial-audited"}
    journal = Journal()
    journal.denied_expected.append({"user": "a", "action": "tag"})
    checks.check_denials(events, journal)
    assert journal.violations == []


def test_growth_and_slow_answers_are_named_and_short_runs_are_not_judged():
    # Memory that saws up and down with the work (up to 80 MB above its floor), after a warm-up
    # step: flat. The same with a floor rising 180 MB an hour: a leak.
    sawing = [
        {"t": t, "pid": 1, "rss_kb": (100_000 if t < 90 else 180_000) + (t * 7919) % 80_000, "fds": 20,
         "threads": 12}
        for t in range(900)
    ]  # fmt: skip
    journal = Journal()
    assert len(checks.check_flat(sawing, journal)) == 3 and journal.violations == [], journal.violations
    leaking = [{**s, "rss_kb": s["rss_kb"] + 50 * s["t"]} for s in sawing]
    checks.check_flat(leaking, journal)
    assert failed(journal) == {"memory-descriptors-threads-flat"}
    assert checks.check_flat(leaking[:280], Journal()) == []  # under 5 minutes: not judged
    slow = [{"t": t, "status_seconds": 0.05} for t in range(98)] + [{"t": 99, "status_seconds": 2.0}] * 2
    journal = Journal()
    assert checks.check_status(slow, journal) == 2.0 and failed(journal) == {"status-p99-within-a-second"}


def test_gross_growth_in_a_short_run_is_named_and_a_warm_up_is_not():
    """A minute's run is judged on 10-second floors with gross limits: a daemon warming up (memory
    up 90 MiB as media work starts) is flat; one descriptor leaked a second is not."""
    warming = [{"t": t, "pid": 1, "rss_kb": 100_000 + min(t, 100) * 900, "fds": 20 + t % 3, "threads": 12}
               for t in range(90)]  # fmt: skip
    journal = Journal()
    assert len(checks.check_flat(warming, journal, checks.GROSS)) == 3 and journal.violations == []
    leaking = [{**s, "fds": 20 + s["t"]} for s in warming]
    checks.check_flat(leaking, journal, checks.GROSS)
    assert failed(journal) == {"memory-descriptors-threads-flat"}


def test_every_invariant_has_a_broken_build_and_every_break_still_matches_its_code(tmp_path):
    import shutil

    assert {b.invariant for b in breaks.BREAKS.values()} == set(checks.INVARIANTS)
    shutil.copytree(REPO / "custody", tmp_path / "custody")
    expected = breaks.apply(tmp_path / "custody", sorted(breaks.BREAKS))
    assert sorted(expected) == sorted(b.invariant for b in breaks.BREAKS.values())
    compiled = subprocess.run([sys.executable, "-m", "compileall", "-q", str(tmp_path / "custody")],
                              capture_output=True, text=True)  # fmt: skip
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_short_soak_of_a_broken_build_fails_naming_every_invariant(tmp_path):
    """A build with one mistake per invariant (soak/breaks.py), soaked for a minute under the
    faults those mistakes need to show (a kill while an extract writes, an object corrupted on
    its way to S3) and a few more: the soak exits 1 naming every invariant, and no failure the
    mistakes do not explain. (The daemon's kill, a full disk and an S3 partition, which slow the
    whole station down for a while, are the long soak's: a minute must get through its work.)"""
    out = tmp_path / "report"
    names = sorted(breaks.BREAKS)
    kinds = ["kill-client", "s3-errors", "kill-ffmpeg", "unplug-mid-pull", "corrupt-card"]
    command = [sys.executable, "-m", "soak", "--minutes", "1", "--seed", "20261205", "--out", str(out),
               "--fault-every", "3", "--faults", ",".join(kinds), *[f"--break={name}" for name in names]]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env=dict(os.environ), timeout=1800
    )
    summary = json.loads((out / "summary.json").read_text())
    assert result.returncode == 1, result.stdout + result.stderr
    failed = set(summary["failed_invariants"])
    assert failed == set(checks.INVARIANTS), (sorted(set(checks.INVARIANTS) - failed), summary["faults"])
    assert failed <= breaks.may_fail(names)
    assert summary["files_generated"] > 0 and summary["items_in_vault"] > 0
    for invariant in failed:
        assert f"VIOLATION {invariant}:" in result.stdout
