"""ffprobe and ffmpeg, the one way custody reads facts out of media files and checks them.

Every run goes through :func:`run_tool`: the configured binary directly
(never through a shell), with a time limit and a memory limit, as footage is
untrusted input.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_MEMORY_LIMIT = 1 << 30  # bytes of address space for one ffprobe (recording times at dock)


class ToolFailed(Exception):
    """A media tool crashed, was killed by its limits, or could not start: worth another attempt."""


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    stdout: bytes
    errors: list[str]  # stderr lines, the input's path prefix removed


def run_tool(
    command: list[str], path: Path, timeout: float, memory_limit: int, nice: bool = False
) -> ToolRun:
    """Run a media tool on ``path`` (never through a shell) within a time and memory limit.

    Raise ToolFailed when it cannot start, takes longer than ``timeout``
    seconds, or is killed (a signal, e.g. by its ``memory_limit`` bytes).
    """

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        if nice:
            os.nice(19)

    name = os.path.basename(command[0])
    try:
        result = subprocess.run(
            command, capture_output=True, timeout=timeout, preexec_fn=limits, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{name} took longer than {timeout:g} s") from None
    except OSError as exc:
        raise ToolFailed(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    if result.returncode < 0:
        raise ToolFailed(f"{name} was killed by signal {-result.returncode}")
    # Tools prefix messages with the input's path: a private temporary name, not worth keeping.
    errors = result.stderr.decode("utf-8", "replace").replace(f"{path}: ", "").strip().splitlines()
    return ToolRun(result.returncode, result.stdout, errors)


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
        result = run_tool(command, path, timeout, PROBE_MEMORY_LIMIT)
    except ToolFailed as exc:
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


def probe_facts(path: Path, ffprobe: str, timeout: float, memory_limit: int) -> dict:
    """Return what ffprobe says about a media file: container, duration, streams, times, place, device.

    A file ffprobe reads but does not understand (not media, damaged header)
    gives ``{"unreadable": "<ffprobe's first error line>"}``: a result, not a
    failure. Raise ToolFailed when ffprobe itself crashes, times out or
    exceeds ``memory_limit`` bytes, so the job is tried again.
    """
    command = [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    result = run_tool(command, path, timeout, memory_limit)
    errors = result.errors
    if result.returncode != 0:
        return {
            "unreadable": errors[-1] if errors else f"ffprobe exited {result.returncode}",
            "errors": errors[:5],
            # A message from a demuxer ("[mov,mp4,...] moov atom not found") means the
            # format was recognised and the file is broken, not that it is no media.
            "recognised": any(line.startswith("[") for line in errors),
        }
    try:
        document = json.loads(result.stdout or b"{}")
    except ValueError:
        return {"unreadable": "ffprobe printed no readable answer"}
    fmt = document.get("format", {})
    tags = {k.lower(): v for k, v in (fmt.get("tags") or {}).items()}
    streams = [_stream_facts(s) for s in document.get("streams", [])]
    created = _parse_creation_time(tags.get("creation_time"))
    facts = {
        "container": fmt.get("format_name"),
        "duration": _float(fmt.get("duration")),
        "bit_rate": _float(fmt.get("bit_rate")),
        "streams": streams,
        "creation_time": created.isoformat() if created else None,
        "location": next(
            (
                v
                for k, v in tags.items()
                if k.startswith("location") or k == "com.apple.quicktime.location.iso6709"
            ),
            None,
        ),
        "make": tags.get("make") or tags.get("com.apple.quicktime.make"),
        "model": tags.get("model") or tags.get("com.apple.quicktime.model"),
    }
    video = next((s for s in streams if s["type"] == "video"), None)
    if video:
        facts.update(video_codec=video["codec"], width=video.get("width"), height=video.get("height"))
    audio = next((s for s in streams if s["type"] == "audio"), None)
    if audio:
        facts["audio_codec"] = audio["codec"]
    return facts


def fast_check(path: Path, ffmpeg: str, timeout: float, memory_limit: int) -> list[str]:
    """Read every packet of every stream without decoding, errors fatal; return ffmpeg's error lines ([] = whole).

    Catches a truncated file of either MP4 layout in milliseconds; damaged
    bytes inside the streams need the full decode check. Raise ToolFailed when
    ffmpeg crashes, times out or exceeds its memory limit.
    """
    return _check(path, ffmpeg, ["-c", "copy"], timeout, memory_limit, nice=False)


def decode_check(path: Path, ffmpeg: str, timeout: float, memory_limit: int) -> list[str]:
    """Decode every stream, errors fatal, at the lowest CPU priority; return ffmpeg's error lines ([] = whole).

    Catches damaged bytes inside the streams too. Raise ToolFailed as fast_check does.
    """
    return _check(path, ffmpeg, [], timeout, memory_limit, nice=True)


def _check(
    path: Path, ffmpeg: str, codec: list[str], timeout: float, memory_limit: int, nice: bool
) -> list[str]:
    command = [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-xerror",
        "-i",
        str(path),
        "-map",
        "0",
        *codec,
        "-f",
        "null",
        "-",
    ]
    result = run_tool(command, path, timeout, memory_limit, nice)
    errors = result.errors or ([f"ffmpeg exited {result.returncode}"] if result.returncode != 0 else [])
    # Any error line counts: a whole file prints nothing at this level.
    return errors[:5]


def _stream_facts(stream: dict) -> dict:
    facts = {
        "index": stream.get("index"),
        "type": stream.get("codec_type"),
        "codec": stream.get("codec_name"),
    }
    if stream.get("codec_type") == "video":
        facts.update(
            width=stream.get("width"), height=stream.get("height"), frame_rate=stream.get("avg_frame_rate")
        )
    elif stream.get("codec_type") == "audio":
        facts.update(sample_rate=_float(stream.get("sample_rate")), channels=stream.get("channels"))
    return facts


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
