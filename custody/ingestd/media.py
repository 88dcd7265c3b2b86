"""ffprobe, the one way custody reads facts out of a media file.

Runs the configured binary directly (never through a shell) with a time
limit and a memory limit, as footage is untrusted input.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_MEMORY_LIMIT = 1 << 30  # bytes of address space for one ffprobe


@dataclass(frozen=True)
class RecordingTimes:
    """Start and end of a recording as the container states them (aware, UTC)."""

    start: datetime | None
    duration: float | None

    @property
    def end(self) -> datetime | None:
        if self.start is None or self.duration is None:
            return None
        return self.start + timedelta(seconds=self.duration)


def probe_recording_times(path: Path, ffprobe: str = "ffprobe", timeout: float = 20.0) -> RecordingTimes:
    """Return the container's creation time and duration; fields are None when absent or unreadable.

    Never raises for a bad file: a file ffprobe cannot read (or that takes
    longer than ``timeout``) yields RecordingTimes(None, None).
    """
    command = [
        ffprobe,
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_entries",
        "format=duration:format_tags=creation_time:stream_tags=creation_time",
        str(path),
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, timeout=timeout, preexec_fn=_limit_memory, stdin=subprocess.DEVNULL
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        log.warning("ffprobe could not read %s: %s", path, exc)
        return RecordingTimes(None, None)
    if result.returncode != 0:
        return RecordingTimes(None, None)
    try:
        document = json.loads(result.stdout or b"{}")
    except ValueError:
        return RecordingTimes(None, None)
    fmt = document.get("format", {})
    duration = _float(fmt.get("duration"))
    created = (fmt.get("tags") or {}).get("creation_time")
    if not created:
        for stream in document.get("streams", []):
            created = (stream.get("tags") or {}).get("creation_time")
            if created:
                break
    return RecordingTimes(_parse_creation_time(created), duration)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (PROBE_MEMORY_LIMIT, PROBE_MEMORY_LIMIT))


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _parse_creation_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # 1970-01-01 or 1904-01-01 is what a recorder without a clock writes: not a time.
    if moment.year < 1990:
        return None
    return moment.astimezone(UTC)
