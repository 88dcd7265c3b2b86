"""Retention plan benchmark: `retention plan` over 1,000,000 items against `SELECT count(*)` on the same catalog.

Two catalogs of BENCH_RETENTION_ITEMS items (default 1,000,000), each with a
case tag:
- "nothing due": every item recorded within the last two years less 90 days
  (the goal: at most 3x the count);
- "steady state", for information: 4 % of the items past their two years
  (an agency disposing monthly) and 12 % due within 90 days; listing those
  rows is what the plan then spends its time on.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.__main__ import build_catalog, verdict
from custody.config import Settings
from custody.retention.plan import plan
from custody.vault import Vault
from custody.vault.timestamps import to_text


def vault_with(workdir: Path, name: str, items: int, due_share: float, past_share: float) -> Settings:
    home = workdir / name
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home)
    Vault.init(settings, "bench").close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home / 'catalog.db'}{suffix}").unlink(missing_ok=True)
    catalog = build_catalog(home / "catalog.db", items, 10, "BENCH")
    now = datetime.now(UTC)
    recent = to_text(now - timedelta(days=300))
    past = to_text(now - timedelta(days=2 * 365 + 20))
    soon = to_text(now - timedelta(days=2 * 365 - 45))
    past_until = int(items * past_share)
    due_until = past_until + int(items * due_share)
    with catalog.transaction():
        catalog.db.execute("UPDATE items SET recorded_start = ?", [recent])
        catalog.db.execute("UPDATE items SET recorded_start = ? WHERE id <= ?", [past, past_until])
        catalog.db.execute(
            "UPDATE items SET recorded_start = ? WHERE id > ? AND id <= ?", [soon, past_until, due_until]
        )
    catalog.db.execute("ANALYZE")
    catalog.close()
    return settings


def timed_runs(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_retention(workdir: Path) -> bool:
    items = int(os.environ.get("BENCH_RETENTION_ITEMS", "1000000"))
    print(f"retention plan over {items:,} items vs SELECT count(*) (median of 5)")
    ok = True
    for name, due, past, goal in (("nothing due", 0.0, 0.0, 3.0), ("steady state", 0.12, 0.04, None)):
        settings = vault_with(workdir, f"retention-{name.replace(' ', '-')}", items, due, past)
        with Vault(settings, "bench") as vault:
            counting = timed_runs(
                lambda v=vault: v.catalog.db.execute("SELECT count(*) FROM items").fetchone(), 5
            )
            report = {}

            def planning(v=vault, s=settings, out=report) -> None:
                out.update(plan(v, s, datetime.now(UTC)))

            planning_time = timed_runs(planning, 5 if goal else 1)
        ratio = planning_time / counting
        listed = len(report["eligible"]) + len(report["upcoming"])
        print(f"  {name:13} count(*) {counting * 1e3:8.2f} ms   plan {planning_time * 1e3:9.1f} ms   "
              f"listed {listed:>7,}   ratio {ratio:8.1f}x" + (f"  (goal <= {goal}x: {verdict(ratio <= goal)})" if goal else "  (for information)"))  # fmt: skip
        if goal:
            ok = ok and ratio <= goal
        shutil.rmtree(settings.home, ignore_errors=True)
    return ok


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="custody-bench-", dir=os.environ.get("BENCH_DIR", ".")) as d:
        sys.exit(0 if bench_retention(Path(d)) else 1)
