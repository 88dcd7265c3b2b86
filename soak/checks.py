"""The invariants checked at the end of a run, against the generator's ground truth (the checks
made during the run are in soak.load: wiped files already in the vault, extracts identical, killed
commands leaving nothing, roles enforced)."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path

from custody.vault.timestamps import to_text
from soak.ground import Ledger
from soak.load import Journal
from soak.station import Station

# The daemon's memory, descriptors and threads may not grow over a run of the daemon (one restart
# to the next) of ``min_run`` seconds or more, judged after its first ``warm_up`` seconds on the
# lowest value of each ``window`` (memory saws up and down with the work in hand; a leak raises
# the floor): growth fails when the floor's slope is above the limit per hour AND the floor rose
# by more than the absolute amount (a short run's noise is not a trend).
SLOPE_LIMITS_PER_HOUR = {"rss_kb": 64 * 1024, "fds": 30, "threads": 10}


@dataclass(frozen=True)
class Flatness:
    name: str
    warm_up: float
    min_run: float
    window: float
    rise_limits: dict


# Runs of 8 minutes or more (three whole minutes after the warm-up): fine limits on minute floors
# after a 5-minute warm-up (the daemon's memory climbs for its first minutes as media work,
# replication and the people's requests start, then holds: at 141-172 MiB with one malloc arena,
# stop 31's soaks; with two it climbed by steps to 185-215 MiB, which this check failed).
FINE = Flatness("fine", warm_up=300, min_run=480, window=60,
                rise_limits={"rss_kb": 16 * 1024, "fds": 10, "threads": 4})  # fmt: skip
# A short run (the broken builds' minute) can show only gross growth: 10-second floors after a
# 20-second warm-up, limits above a daemon's own warm-up (its memory grows ~90 MiB as media work
# and replication start).
GROSS = Flatness("gross", warm_up=20, min_run=45, window=10,
                 rise_limits={"rss_kb": 160 * 1024, "fds": 20, "threads": 12})  # fmt: skip
MIN_FLAT_SECONDS = FINE.min_run
STATUS_P99_SECONDS = 1.0

INVARIANTS = (
    "every-file-exactly-once",
    "nothing-but-what-was-docked",
    "credited-to-the-right-officer",
    "right-recording-window",
    "right-deadline",
    "wiped-before-durable",
    "extract-identical",
    "exports-verify",
    "web-download-identical",
    "no-half-written-files",
    "roles-enforced",
    "disposed-only-when-due",
    "every-denial-audited",
    "audit-chain-and-catalog-verify",
    "verify-against-offsite",
    "replicas-match",
    "no-orphan-objects-or-uploads",
    "no-staging-files-or-mounts",
    "memory-descriptors-threads-flat",
    "status-p99-within-a-second",
)


def check_items(items: list[dict], ledger: Ledger, journal: Journal) -> None:
    """Every readable file generated is in the vault exactly once, byte for byte (its SHA-256),
    credited to its officer, with the recording window its name gives and the deadline that
    follows; and the vault holds nothing else."""
    by_sha = collections.Counter(item["sha256"] for item in items)
    known = ledger.files
    for sha, count in by_sha.items():
        if count > 1:
            journal.violation("every-file-exactly-once", f"{sha[:12]} is in the vault {count} times")
        if sha not in known:
            names = [i["name"] for i in items if i["sha256"] == sha]
            journal.violation("nothing-but-what-was-docked", f"{names} ({sha[:12]}) was never on a recorder")
    for footage in ledger.expected():
        if footage.sha256 not in by_sha:
            journal.violation("every-file-exactly-once", f"{footage.name} from {footage.source} is missing")
    for item in items:
        footage = known.get(item["sha256"])
        if footage is None:
            continue
        if item["credited_officer"] != footage.officer and item["tags"].get("officer") != footage.officer:
            journal.violation(
                "credited-to-the-right-officer",
                f"{item['id']} ({footage.name}) credited to {item['credited_officer']}, not {footage.officer}",
            )
        if item["recorded_start"] != to_text(footage.recorded_start):
            journal.violation(
                "right-recording-window",
                f"{item['id']} ({footage.name}) recorded from {item['recorded_start']}, "
                f"not {to_text(footage.recorded_start)}",
            )
        if footage.clock_off and not item["clock_suspect"]:
            journal.violation(
                "right-deadline", f"{item['id']} ({footage.name}): a clock years off not flagged"
            )
        if not footage.clock_off and item["late"] != (footage.age != "new"):
            journal.violation(
                "right-deadline",
                f"{item['id']} ({footage.name}, recorded {footage.age}) "
                + ("stored in time but marked late" if item["late"] else "stored late but not marked late"),
            )
        if footage.disposed:
            journal.violation(
                "disposed-only-when-due",
                f"{item['id']} ({footage.name}) was disposed of but is still in the vault",
            )


def check_denials(events: list[dict], journal: Journal) -> None:
    """Every refusal the people met is in the audit chain (a ``denied`` event per attempt)."""
    audited = collections.Counter(
        (e["actor"], e["details"].get("action")) for e in events if e["action"] == "denied"
    )
    expected = collections.Counter((d["user"], d["action"]) for d in journal.denied_expected)
    for key, count in expected.items():
        if audited[key] < count:
            journal.violation(
                "every-denial-audited", f"{key[0]} refused {key[1]} {count} times, audited {audited[key]}"
            )


def _lines_not_same(report: str) -> str:
    """The lines of ``replicate check --json`` that are not "=" (what made it fail), as JSON;
    the report's tail when it is not such a list."""
    try:
        lines = json.loads(report)
        return json.dumps([line for line in lines if line.get("mark") != "="])[:4000]
    except (ValueError, AttributeError, TypeError):
        return report[-400:]


def check_station(station: Station, journal: Journal) -> None:
    """verify (chain, catalog, objects), verify against the offsite anchors, the replicas checked
    by download, nothing left in the bucket that is not the vault's, nothing left half done."""
    verified = station.custody("verify", "--json", check=False)
    report = json.loads(verified.stdout or "{}")
    if verified.returncode != 0 or not report.get("ok"):
        journal.violation("audit-chain-and-catalog-verify", verified.stdout[-400:] + verified.stderr[-200:])
    against = station.custody("verify", "--against", "offsite", "--json", check=False)
    if against.returncode != 0 or not json.loads(against.stdout or "{}").get("ok"):
        journal.violation("verify-against-offsite", against.stdout[-400:] + against.stderr[-200:])
    checked = station.custody("replicate", "check", "--download", "--json", check=False)
    (station.work / "replicate-check.json").write_text(checked.stdout)  # (kept with a failed run)
    client = station.s3.client()
    if checked.returncode != 0:
        journal.violation("replicas-match", _lines_not_same(checked.stdout) + checked.stderr[-400:])
        # The bucket goes with the run: every version and delete marker is kept with the station.
        pages = list(client.get_paginator("list_object_versions").paginate(Bucket=station.bucket))
        kept = {
            group: [v for page in pages for v in page.get(group) or []]
            for group in ("Versions", "DeleteMarkers")
        }
        (station.work / "bucket-versions.json").write_text(json.dumps(kept, default=str, indent=1))
    local = {p.name for p in (station.home / "objects" / "sha256").rglob("*") if p.is_file()}
    listing = client.get_paginator("list_object_versions").paginate(Bucket=station.bucket)
    for page in listing:
        for version in page.get("Versions", []):
            key = version["Key"]
            if "/objects/sha256/" in key and key.rsplit("/", 1)[-1] not in local:
                journal.violation(
                    "no-orphan-objects-or-uploads", f"s3://{station.bucket}/{key} is not the vault's"
                )
    uploads = client.list_multipart_uploads(Bucket=station.bucket).get("Uploads", [])
    if uploads:
        journal.violation("no-orphan-objects-or-uploads", f"{len(uploads)} multipart uploads left open")


def check_left_behind(station: Station, journal: Journal) -> None:
    """After the daemon's clean stop (before anything opens the vault again and sweeps): no staging
    file, no mount, no decrypted copy left."""
    staging = list((station.home / "objects" / "staging").iterdir())
    if staging:
        journal.violation("no-staging-files-or-mounts", f"staging holds {[p.name for p in staging][:5]}")
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(str(station.home))]  # fmt: skip
    if mounts:
        journal.violation("no-staging-files-or-mounts", f"mounts left: {mounts}")
    decrypted = (
        list((station.home / "run" / "media").glob("*")) if (station.home / "run" / "media").exists() else []
    )
    if decrypted:
        journal.violation(
            "no-staging-files-or-mounts", f"decrypted copies left: {[p.name for p in decrypted][:5]}"
        )


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, per hour."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return 3600 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def check_flat(samples: list[dict], journal: Journal, flatness: Flatness = FINE) -> list[str]:
    """The daemon's memory, descriptors and threads, per run of the daemon long enough to say;
    return what was checked."""
    by_pid: dict[int, list[dict]] = collections.defaultdict(list)
    for sample in samples:
        if "pid" in sample and "rss_kb" in sample:
            by_pid[sample["pid"]].append(sample)
    checked = []
    for pid, run in by_pid.items():
        if run[-1]["t"] - run[0]["t"] < flatness.min_run:
            continue
        for measure, limit in SLOPE_LIMITS_PER_HOUR.items():
            floors = window_floors(run, measure, run[0]["t"] + flatness.warm_up, flatness.window)
            if len(floors) < 3:
                continue
            slope = slope_per_hour(floors)
            rise = max(v for _, v in floors[-2:]) - min(v for _, v in floors[:2])
            checked.append(
                f"{measure} of daemon {pid} over {len(floors)} x {flatness.window:g} s: "
                f"floor {slope:+.0f}/h, rose {rise:+.0f}"
            )
            if slope > limit and rise > flatness.rise_limits[measure]:
                journal.violation(
                    "memory-descriptors-threads-flat",
                    f"daemon {pid}'s {measure} floor grew {slope:.0f} per hour ({rise:+.0f} over the run)",
                )
    return checked


def window_floors(
    run: list[dict], measure: str, since: float, window: float = 60
) -> list[tuple[float, float]]:
    """(window's start, lowest value in it) for each whole ``window`` seconds of ``run`` from ``since``."""
    floors: dict[int, float] = {}
    for sample in run:
        if sample["t"] >= since and measure in sample:
            index = int((sample["t"] - since) // window)
            floors[index] = min(floors.get(index, sample[measure]), sample[measure])
    last = int((run[-1]["t"] - since) // window)
    return [(since + window * m, v) for m, v in sorted(floors.items()) if m < last]  # (whole windows only)


def status_p99(samples: list[dict]) -> float | None:
    times = sorted(s["status_seconds"] for s in samples if "status_seconds" in s)
    if not times:
        return None
    return times[min(len(times) - 1, int(0.99 * len(times)))]


def check_status(samples: list[dict], journal: Journal) -> float | None:
    p99 = status_p99(samples)
    if p99 is not None and p99 > STATUS_P99_SECONDS:
        journal.violation("status-p99-within-a-second", f"status took {p99:.2f} s at the 99th percentile")
    return p99
