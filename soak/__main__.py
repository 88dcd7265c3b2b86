"""python -m soak: a busy station under random faults (see soak/__init__.py and README, "Soak").

    SOAK_MINUTES (default 30), SOAK_SEED (default: a new one, printed), SOAK_OUT (default
    soak-runs/<UTC time>-seed<SEED>); --break NAME (repeatable) runs a deliberately broken build;
    --faults KIND,... strikes only those kinds.
Exits 1 when an invariant was violated (each named), 0 when none was.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from soak.breaks import BREAKS
from soak.faults import KINDS
from soak.run import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes",
        type=float,
        default=float(os.environ.get("SOAK_MINUTES", "30")),
        help="how long the load and the faults last (SOAK_MINUTES; default 30)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ.get("SOAK_SEED") or random.randrange(1 << 31)),
        help="replays a run: the same load and faults in the same order (SOAK_SEED; default a new one)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ["SOAK_OUT"]) if os.environ.get("SOAK_OUT") else None,
        help="the report's folder (SOAK_OUT; default soak-runs/<UTC time>-seed<SEED>)",
    )
    parser.add_argument(
        "--break",
        dest="broken",
        action="append",
        default=[],
        choices=sorted(BREAKS),
        metavar="NAME",
        help=f"soak a deliberately broken build (repeatable): {', '.join(sorted(BREAKS))}",
    )
    parser.add_argument("--fault-every", type=float, default=45.0, help="mean seconds between faults")
    parser.add_argument(
        "--faults",
        default=",".join(KINDS),
        help=f"the kinds struck, comma-separated (default: all: {','.join(KINDS)})",
    )
    args = parser.parse_args()
    kinds = [k for k in args.faults.split(",") if k]
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--faults: kinds among {', '.join(KINDS)}")
    if os.geteuid() != 0:
        print("soak: run as root (loop devices, mounts, local users): make soak", file=sys.stderr)
        return 2
    out = args.out or Path("soak-runs") / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-seed{args.seed}"
    print(f"soak: seed {args.seed}, {args.minutes:g} minutes, report in {out}", flush=True)
    try:
        summary = run(args.minutes, args.seed, out, args.broken, args.fault_every, kinds)
    except KeyboardInterrupt:
        print("soak: interrupted: the station is taken down, nothing is judged", file=sys.stderr, flush=True)
        os._exit(130)  # (a thread still waiting on a recorder's pull is not waited for)
    print(
        f"soak: {summary['files_generated']} files generated, {summary['items_in_vault']} items, "
        f"{summary['docks']} docks, faults {summary['faults']}, status p99 {summary['status_p99_seconds']} s"
    )
    for violation in summary["violations"]:
        print(f"VIOLATION {violation['invariant']}: {violation['detail']}")
    print(f"soak: {len(summary['violations'])} violations; report {out}/summary.json")
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
