"""The ground truth the generator keeps: every file it put on a recorder's card or dropped in the
watch folder, with what custody must record of it. Never read from custody."""

from __future__ import annotations

import random
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.docking import sha256_file as sha256_of

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the recorders' clocks (profile clock_timezone)


@dataclass
class Footage:
    """One generated file: where it went and what the vault must say of it."""

    name: str
    sha256: str
    size: int
    officer: str | None  # who must be credited
    recorded_start: datetime  # as the file's name says it (UTC)
    source: str  # a recorder's serial, or "drop"
    readable: bool = True  # False: a corrupted card made it unreadable (not expected in the vault)
    on_card: bool = True  # False once the recorder's card no longer holds it (wiped by custody)
    clock_off: bool = False
    # "new" (recorded hours ago); "kept" (13-22 months ago: stored late, still within its two
    # years); "due" (over two years ago: stored late, and may be disposed of).
    age: str = "new"
    disposed: bool = False  # an approved disposition took it out of the vault


@dataclass
class Ledger:
    """Every file generated, by SHA-256 (each is unique: a random comment in its metadata)."""

    files: dict[str, Footage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, footage: Footage) -> None:
        with self._lock:
            self.files[footage.sha256] = footage

    def expected(self) -> list[Footage]:
        """The files the vault must hold exactly once at the end."""
        with self._lock:
            return [f for f in self.files.values() if f.readable and not f.disposed]

    def count(self) -> int:
        with self._lock:
            return len(self.files)


def make_clip(path: Path, seconds: float, rng: random.Random) -> None:
    """A small real H.264/AAC MP4 (160x120): distinct bytes each time (a random comment)."""
    tone = rng.randrange(200, 2000)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=15:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency={tone}:duration={seconds}", "-c:v", "libx264",
         "-preset", "ultrafast", "-c:a", "aac", "-shortest", "-metadata", f"comment=soak-{rng.getrandbits(64):x}",
         str(path)],
        check=True, capture_output=True,
    )  # fmt: skip


def recorder_batch(
    folder: Path, serial: str, officer: str, rng: random.Random, count: int, clock_off: bool
) -> list[Footage]:
    """``count`` consecutive segments of one recording, named SERIAL_OFFICER_LOCALTIME.MP4
    (profile bwc-badge's pattern), some with a hole between them; a clock years off names them
    years early."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=rng.randrange(20, 600))
    if clock_off:
        start -= timedelta(days=365 * rng.randrange(3, 8))
    made = []
    at = start
    for _ in range(count):
        seconds = rng.choice((1, 2, 3))
        name = f"{serial}_{officer}_{at.astimezone(SHANGHAI):%Y%m%d%H%M%S}.MP4"
        path = folder / name
        make_clip(path, seconds, rng)
        made.append(
            Footage(name=name, sha256=sha256_of(path), size=path.stat().st_size, officer=officer,
                    recorded_start=at, source=serial, clock_off=clock_off)
        )  # fmt: skip
        hole = rng.choice((0, 0, 0, 20))  # now and then an interruption to explain
        at += timedelta(seconds=seconds + hole)
    return made
