"""The faults, struck at random moments drawn from the seed: the daemon killed (and restarted
after systemd's delay), a clerk's command killed, ffmpeg killed, a recorder pulled out part way,
the S3 proxy failing requests or down for minutes, a corrupted file on a card. (A recorder whose
clock is years off docks throughout: recorder BWC1004.)"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading

from soak.load import Dock, Journal, People
from soak.station import RECORDERS, Station

KINDS = (
    "kill-daemon", "kill-client", "kill-ffmpeg", "unplug-mid-pull", "s3-errors", "s3-down", "corrupt-card",
    "disk-at-reserve",
)  # fmt: skip


class Faults:
    """Strikes one fault every ``mean_seconds`` on average (exponential gaps), kind by the seed."""

    def __init__(self, station: Station, dock: Dock, people: People, journal: Journal, rng: random.Random,
                 mean_seconds: float, kinds: list[str]) -> None:  # fmt: skip
        self.station, self.dock, self.people, self.journal, self.rng = station, dock, people, journal, rng
        self.mean_seconds = mean_seconds
        self.kinds = kinds
        self.down_until = 0.0

    def run(self, stop: threading.Event) -> None:
        """Faults in rounds: each kind once a round, in an order drawn from the seed (so a short
        run meets every kind, and a long one meets them evenly); the daemon's kill every second
        round only, so that some of its runs last long enough to judge its memory."""
        deck: list[str] = []
        rounds = 0
        while not stop.wait(self.rng.expovariate(1 / self.mean_seconds)):
            if not deck:
                rounds += 1
                deck = [k for k in self.kinds if k != "kill-daemon" or rounds % 2 == 0]
                self.rng.shuffle(deck)
            kind = deck.pop()
            getattr(self, kind.replace("-", "_"))()

    def kill_daemon(self) -> None:
        self.journal.fault("kill-daemon")
        self.station.kill_daemon()

    def kill_client(self) -> None:
        """A clerk's extract killed while it writes its file (the next one: see People.extract)."""
        self.people.kill_next_write = True

    def kill_ffmpeg(self) -> None:
        pid = self.station.daemon_pid()
        if pid is None:
            return
        children = subprocess.run(
            ["pgrep", "-P", str(pid), "-x", "ffmpeg|ffprobe"], capture_output=True, text=True
        )
        for child in children.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
                self.journal.fault("kill-ffmpeg", pid=int(child))

    def unplug_mid_pull(self) -> None:
        self.dock.unplug_mid.add(self.rng.choice(RECORDERS).serial)

    def corrupt_card(self) -> None:
        self.dock.corrupt_next.add(self.rng.choice([r for r in RECORDERS if r.filesystem == "vfat"]).serial)

    def s3_errors(self) -> None:
        """A burst of failed requests, and the next object sent corrupted on the way: one byte
        flipped (moto, unlike S3, does not check the checksum sent with it, so only the daemon's
        read-back can find it)."""
        faults = [self.rng.choice(("500", "503", "drop", "stall")) for _ in range(self.rng.randrange(2, 8))]
        self.station.proxy.plan.setdefault("any", []).extend(faults)
        self.station.proxy.plan.setdefault("object", []).append("corrupt")
        self.journal.fault("s3-errors", faults=[*faults, "corrupt"])

    def disk_at_reserve(self) -> None:
        """The vault's disk filled past its reserve for a while, then freed (pulls must wait)."""
        if (self.station.disk / "ballast").exists():
            return
        seconds = self.rng.uniform(15, 60)
        ballast = self.station.fill_disk(below_reserve_mb=self.rng.randrange(1, 200))
        self.journal.fault("disk-at-reserve", seconds=round(seconds))
        threading.Timer(seconds, lambda: ballast.unlink(missing_ok=True)).start()

    def s3_down(self) -> None:
        seconds = self.rng.uniform(20, 120)
        self.station.proxy.down_for(seconds)
        self.journal.fault("s3-down", seconds=round(seconds))
