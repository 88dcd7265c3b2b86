"""Samples the station every second: the daemon's memory, descriptors and threads (from /proc),
how long `status` takes to answer through the socket, the media and replication queues."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from soak.load import Journal
from soak.station import Station


def _proc(pid: int) -> tuple[int, int, int] | None:
    """(RSS in kB, open descriptors, threads) of ``pid``; None when it is gone."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        descriptors = len(list(Path(f"/proc/{pid}/fd").iterdir()))
        return int(fields["VmRSS"].split()[0]), descriptors, int(fields["Threads"])
    except (OSError, KeyError, ValueError):
        return None


class Monitor:
    def __init__(self, station: Station, journal: Journal) -> None:
        self.station, self.journal = station, journal
        self.samples: list[dict] = []

    def run(self, stop: threading.Event) -> None:
        from custody.ingestd import api

        while not stop.wait(1.0):
            self.station.restart_if_died()
            sample: dict = {"t": self.journal.now()}
            pid = self.station.daemon_pid()
            if pid is not None:
                sample["pid"] = pid
                found = _proc(pid)
                if found:
                    sample["rss_kb"], sample["fds"], sample["threads"] = found
            started = time.perf_counter()
            try:
                status = api.call(self.station.run / "api.sock", "status", {}, timeout=30)
                sample["status_seconds"] = round(time.perf_counter() - started, 4)
                sample["media_queued"] = sum(
                    n
                    for state, n in (status.get("media_jobs") or {}).items()
                    if state in ("queued", "running")
                )
                sample["replica_waiting"] = replica_waiting(status)
            except Exception as exc:  # (the daemon restarting: a gap, said in the sample)
                sample["status_error"] = type(exc).__name__
            self.samples.append(sample)


def replica_waiting(status: dict) -> int:
    """Copies not yet verified on any target (``status``' replicas: one entry per target)."""
    return sum(
        int(target.get("waiting") or 0) for target in status.get("replicas") or [] if isinstance(target, dict)
    )
