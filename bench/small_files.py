"""Many small files (issue 18, goal 2): custody's ingest of a card of photos against a copy that
fsyncs each file and then its folder, measured in the same run.

Two cards: ``BENCH_SMALL_FILES`` files of 20 KB (default 5,000), and a mixed card of
``BENCH_MIXED_PHOTOS`` photos of 3 MB (default 2,000) with ``BENCH_MIXED_VIDEOS`` videos of
200 MB (default 20). Every file's content is distinct (no duplicate is recognised). Both
baselines read the same files from the page cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.__main__ import timed, verdict

GOAL = 3.0

# The baseline: what any careful copy does (each file made durable, then its folder).
FSYNC_COPY = """
import os, sys
source, target = sys.argv[1], sys.argv[2]
for folder, _, names in os.walk(source):
    out = os.path.join(target, os.path.relpath(folder, source))
    os.makedirs(out, exist_ok=True)
    for name in sorted(names):
        with open(os.path.join(folder, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
            while chunk := f.read(1 << 20):
                g.write(chunk)
            g.flush()
            os.fsync(g.fileno())
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
"""


def make_card(root: Path, sizes: list[tuple[str, int, int]]) -> int:
    """Write (folder, count, size) groups of distinct random files under ``root``; return the bytes."""
    total = 0
    for folder, count, size in sizes:
        where = root / folder
        where.mkdir(parents=True, exist_ok=True)
        for n in range(count):
            (where / f"{folder}_{n:05d}.jpg").write_bytes(n.to_bytes(4, "big") + os.urandom(size - 4))
            total += size
    subprocess.run(
        ["cat", *map(str, sorted(root.rglob("*")))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return total


def compare(workdir: Path, card: Path, label: str, files: int, nbytes: int) -> bool:
    """Three interleaved runs of the baseline and of custody ingest; print the best of each."""
    copy = workdir / "copy"
    baseline_times, custody_times = [], []
    for _ in range(3):
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["sync"], check=True)
        baseline_times.append(timed([sys.executable, "-c", FSYNC_COPY, str(card), str(copy)])[0])
        shutil.rmtree(copy, ignore_errors=True)
        home = workdir / "home"
        shutil.rmtree(home, ignore_errors=True)
        custody = [sys.executable, "-m", "custody", "--home", str(home)]
        subprocess.run([*custody, "init"], check=True, capture_output=True)
        subprocess.run(["sync"], check=True)
        report = workdir / "report.json"
        with open(report, "w") as out:
            custody_times.append(timed([*custody, "ingest", str(card), "--json"], stdout=out)[0])
        stored = json.loads(report.read_text().splitlines()[-1])["summary"]
        if stored.get("new") != files:
            raise SystemExit(f"custody ingest stored {stored.get('new')} of {files} files: {stored}")
        shutil.rmtree(home)
    baseline, ours = min(baseline_times), min(custody_times)
    ratio = ours / baseline
    mb = nbytes / 1e6
    print(f"{label} (best of 3)")
    print(
        f"  python copy, fsync each file    {baseline:6.2f} s  {files / baseline:7.0f} files/s  {mb / baseline:6.0f} MB/s"
    )
    print(
        f"  custody ingest                  {ours:6.2f} s  {files / ours:7.0f} files/s  {mb / ours:6.0f} MB/s"
    )
    print(f"  custody / copy                  {ratio:6.2f}x  (goal <= {GOAL:g}x: {verdict(ratio <= GOAL)})")
    print(
        f"  runs: copy {', '.join(f'{t:.2f}' for t in baseline_times)} s; custody {', '.join(f'{t:.2f}' for t in custody_times)} s"
    )
    return ratio <= GOAL


def bench_small_files(workdir: Path) -> bool:
    count = int(os.environ.get("BENCH_SMALL_FILES", "5000"))
    photos = int(os.environ.get("BENCH_MIXED_PHOTOS", "2000"))
    videos = int(os.environ.get("BENCH_MIXED_VIDEOS", "20"))
    results = []
    card = workdir / "card"
    nbytes = make_card(card, [("DCIM", count, 20_000)])
    results.append(compare(workdir, card, f"{count:,} files of 20 KB", count, nbytes))
    shutil.rmtree(card)
    if photos or videos:
        nbytes = make_card(card, [("PHOTO", photos, 3_000_000), ("VIDEO", videos, 200_000_000)])
        label = f"a mixed card: {photos:,} photos of 3 MB and {videos} videos of 200 MB"
        results.append(compare(workdir, card, label, photos + videos, nbytes))
        shutil.rmtree(card)
    return all(results)
