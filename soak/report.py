"""The run's report: summary.json and PNG plots over time (files stored, queues, the daemon's
memory, descriptors and threads, status latency), each fault marked where it struck."""

from __future__ import annotations

import collections
import json
from pathlib import Path

FAULT_COLOURS = {
    "kill-daemon": "red", "kill-client": "orange", "kill-ffmpeg": "purple", "unplug-mid-pull": "brown",
    "s3-errors": "grey", "s3-down": "black", "corrupt-card": "green", "disk-at-reserve": "blue",
}  # fmt: skip


def write_summary(folder: Path, summary: dict) -> Path:
    path = folder / "summary.json"
    path.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_plots(
    folder: Path, samples: list[dict], faults: list[dict], stored: list[tuple[float, int]]
) -> list[str]:
    """One PNG of five panels; return the files written (none when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    panels = (
        ("files stored in the vault", [(t, n) for t, n in stored]),
        ("media and replication queues", None),
        ("daemon RSS (MiB)", [(s["t"], s["rss_kb"] / 1024) for s in samples if "rss_kb" in s]),
        ("daemon descriptors and threads", None),
        ("status answered in (s)", [(s["t"], s["status_seconds"]) for s in samples if "status_seconds" in s]),
    )
    figure, axes = plt.subplots(len(panels), 1, figsize=(11, 13), sharex=True)
    for axis, (title, points) in zip(axes, panels, strict=True):
        axis.set_title(title, fontsize=10, loc="left")
        if title.startswith("media"):
            _line(axis, [(s["t"], s["media_queued"]) for s in samples if "media_queued" in s], "media jobs")
            _line(
                axis,
                [(s["t"], s["replica_waiting"]) for s in samples if "replica_waiting" in s],
                "replication",
            )
            axis.legend(fontsize=8, loc="upper right")
        elif title.startswith("daemon descriptors"):
            _line(axis, [(s["t"], s["fds"]) for s in samples if "fds" in s], "descriptors")
            _line(axis, [(s["t"], s["threads"]) for s in samples if "threads" in s], "threads")
            axis.legend(fontsize=8, loc="upper right")
        else:
            _line(axis, points or [], None)
        for fault in faults:
            axis.axvline(
                fault["t"], color=FAULT_COLOURS.get(fault["kind"], "grey"), alpha=0.35, linewidth=0.8
            )
    axes[-1].set_xlabel("seconds into the run")
    handles = [plt.Line2D([], [], color=colour, label=kind) for kind, colour in FAULT_COLOURS.items()]
    figure.legend(handles=handles, loc="lower center", ncol=8, fontsize=8, title="faults")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    path = folder / "soak.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return [path.name]


def _line(axis, points: list[tuple[float, float]], label: str | None) -> None:
    if points:
        axis.plot([t for t, _ in points], [v for _, v in points], linewidth=0.9, label=label)


def fault_counts(faults: list[dict]) -> dict[str, int]:
    return dict(sorted(collections.Counter(f["kind"] for f in faults).items()))


def write_samples(folder: Path, samples: list[dict], faults: list[dict]) -> None:
    """Every sample (samples.csv) and every fault (faults.json), for a closer look than the plots."""
    import csv

    columns = ("t", "pid", "rss_kb", "fds", "threads", "status_seconds", "media_queued", "replica_waiting")
    with open(folder / "samples.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([sample.get(c, "") for c in columns] for sample in samples)
    (folder / "faults.json").write_text(json.dumps(faults, indent=1) + "\n", encoding="utf-8")
