"""ffprobe and ffmpeg, the one way custody reads facts out of media files, checks them and makes copies.

ffmpeg command lines are built with ffmpeg-python (``ffmpeg.input(...).output(...)
.compile()``); ffprobe's, which ffmpeg-python only runs without a time limit,
are written here. Every run goes through :func:`run_tool`: the configured
binary directly (never through a shell), with a time limit and a memory
limit, as footage is untrusted input.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import resource
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import ffmpeg as ffmpeg_python

from custody.config import MediaSettings
from custody.vault.derivatives import MadeCopy
from custody.vault.timestamps import utc_now

log = logging.getLogger(__name__)

PROBE_MEMORY_LIMIT = 1 << 30  # bytes of address space for one ffprobe (recording times at dock)
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
# What ffmpeg prints when an allocation fails: the memory limit, not the file, stopped it.
_OUT_OF_MEMORY = ("Cannot allocate memory", "get_buffer() failed")
# Containers ffmpeg reads single still pictures with: a photo, not a recording.
# The image demuxers of pictures people and cameras make. Not every "*_pipe": ffprobe matches
# random bytes to an obscure image format now and then (xbm, pictor, qdraw...), and such a file
# is no photo but unreadable.
PHOTO_FORMATS = {
    "image2", "heif",
    *(f"{name}_pipe" for name in (
        "jpeg", "jpegls", "jpegxl", "png", "tiff", "webp", "bmp", "gif", "ppm", "pgm", "pbm", "pam",
        "pgmyuv", "dpx", "exr", "j2k", "psd", "qoi", "sgi", "sunrast", "svg", "xpm", "pcx", "hdr",
    )),
}  # fmt: skip


def is_still_image(container: str | None) -> bool:
    """Whether ffprobe read the file as one picture of a kind cameras and people make (PHOTO_FORMATS)."""
    return container in PHOTO_FORMATS


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
    return run_pipeline([command], path, timeout, memory_limit, nice)


def run_pipeline(
    commands: list[list[str]], path: Path, timeout: float, memory_limit: int, nice: bool = False
) -> ToolRun:
    """Run media tools each reading the one before's output, as :func:`run_tool` runs one.

    Each has its own memory limit; ``timeout`` is for them all. The result's
    return code is the first non-zero one, its errors every tool's lines in
    order, its stdout the last one's. Raise ToolFailed as run_tool does.
    """

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        if nice:
            os.nice(19)
        # Die with the runner: a killed daemon must not leave ffmpeg writing plaintext.
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    # glibc reserves 64 MiB of address space per thread arena; a threaded
    # decoder would spend its memory limit on reservations, not on frames.
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    processes: list[subprocess.Popen] = []
    stderr_files = []
    files = contextlib.ExitStack()
    try:
        for command in commands:
            # stderr to a file each: a chatty tool must not block on a pipe nobody reads yet.
            stderr_files.append(files.enter_context(tempfile.TemporaryFile()))  # noqa: SIM115 (closed below)
            previous = processes[-1].stdout if processes else subprocess.DEVNULL
            try:
                processes.append(
                    subprocess.Popen(
                        command,
                        stdin=previous,
                        stdout=subprocess.PIPE,
                        stderr=stderr_files[-1],
                        preexec_fn=limits,
                        env=env,
                    )
                )
            except OSError as exc:
                raise ToolFailed(f"cannot run {command[0]}: {exc.strerror or exc}") from None
            if processes[:-1]:
                processes[-2].stdout.close()  # the reader owns it now: a writer sees EPIPE if it stops
        try:
            stdout, _ = processes[-1].communicate(timeout=timeout)
            deadline = time.monotonic() + timeout
            for process in processes[:-1]:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            name = os.path.basename(commands[-1][0])
            raise ToolFailed(f"{name} took longer than {timeout:g} s") from None
        errors: list[str] = []
        returncode = 0
        for command, process, stderr in zip(commands, processes, stderr_files, strict=True):
            name = os.path.basename(command[0])
            if process.returncode < 0 and process.returncode != -signal.SIGPIPE:
                raise ToolFailed(f"{name} was killed by signal {-process.returncode}")
            stderr.seek(0)
            # Tools prefix messages with the input's path: a private temporary name, not worth keeping.
            lines = stderr.read().decode("utf-8", "replace").replace(f"{path}: ", "").strip().splitlines()
            starved = next((line for line in lines if any(sign in line for sign in _OUT_OF_MEMORY)), None)
            if starved:
                raise ToolFailed(
                    f"{name} needed more than its {memory_limit >> 20} MB memory limit ({starved.strip()})"
                )
            errors += lines
            if not returncode and process.returncode > 0:
                returncode = process.returncode
        return ToolRun(returncode, stdout, errors)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        files.close()


def ffmpeg_command(
    ffmpeg: str,
    source: Path,
    target: str,
    output_options: dict,
    input_options: dict | None = None,
    streams: list[str] | None = None,
    global_options: tuple[str, ...] = (),
) -> list[str]:
    """Build one ffmpeg command line with ffmpeg-python: quiet but for errors, never interactive.

    ``streams`` are input stream specifiers mapped in order (``["v:0", "a?"]``);
    without them, ``output_options`` say what to map.
    """
    media = ffmpeg_python.input(str(source), **(input_options or {}))
    selected = [media[spec] for spec in streams] if streams else [media]
    output = ffmpeg_python.output(*selected, target, **output_options)
    return output.global_args("-nostdin", "-v", "error", *global_options).compile(
        cmd=ffmpeg, overwrite_output=True
    )


@cache
def tool_version(binary: str) -> str:
    """Return the first line of ``binary -version`` (e.g. "ffmpeg version 5.1.6-0+deb12u1"), or "unknown"."""
    try:
        result = subprocess.run(
            [binary, "-version"], capture_output=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = result.stdout.decode("utf-8", "replace").splitlines()[:1]
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


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
    if is_still_image(facts["container"]):
        facts["photo"] = True
        facts.update(_photo_facts(path, ffprobe, timeout, memory_limit))
    return facts


def _photo_facts(path: Path, ffprobe: str, timeout: float, memory_limit: int) -> dict:
    """Return a photo's EXIF capture time (as the camera's clock wrote it), GPS position, make and model."""
    command = [ffprobe, "-v", "error", "-show_entries", "frame_tags", "-of", "json", str(path)]
    result = run_tool(command, path, timeout, memory_limit)
    try:
        frames = json.loads(result.stdout or b"{}").get("frames") or [{}]
    except ValueError:
        return {}
    exif = frames[0].get("tags") or {}
    facts: dict = {}
    for name, tag in (("make", "Make"), ("model", "Model")):  # the camera or phone that took it
        if (exif.get(tag) or "").strip():
            facts[name] = exif[tag].strip()
    taken = exif.get("DateTimeOriginal") or exif.get("DateTime")
    if taken and len(taken) >= 19:
        # EXIF "YYYY:MM:DD HH:MM:SS" is the camera's local time; its zone, when written, comes apart.
        facts["capture_time"] = taken[:10].replace(":", "-") + "T" + taken[11:19]
        if exif.get("OffsetTimeOriginal"):
            facts["capture_time"] += exif["OffsetTimeOriginal"]
    latitude = _exif_degrees(exif.get("GPSLatitude"), exif.get("GPSLatitudeRef"), "S")
    longitude = _exif_degrees(exif.get("GPSLongitude"), exif.get("GPSLongitudeRef"), "W")
    if latitude is not None and longitude is not None:
        facts["location"] = f"{latitude:+09.5f}{longitude:+010.5f}/"  # ISO 6709, as video tags write it
    return facts


def _exif_degrees(text: str | None, ref: str | None, negative: str) -> float | None:
    """Turn EXIF's "31:1, 13:1, 4930:100" (degrees, minutes, seconds as rationals) into degrees."""
    if not text:
        return None
    try:
        parts = []
        for rational in text.split(","):
            top, _, bottom = rational.strip().partition(":")
            parts.append(float(top) / float(bottom or 1))
        degrees = (
            parts[0] + (parts[1] if len(parts) > 1 else 0) / 60 + (parts[2] if len(parts) > 2 else 0) / 3600
        )
    except (ValueError, ZeroDivisionError):
        return None
    return -degrees if (ref or "").strip().upper() == negative else degrees


# A packet without bytes carries nothing to decode, so it can be neither damage nor hide any.
# Valid files hold them (Vorbis in Ogg, dropped frames in AVI); ffmpeg 5.1's Vorbis decoder calls
# each one "Invalid argument", and after a copy they repeat the timestamp before them.
DROP_EMPTY_PACKETS = "noise=drop=not(size)"
# A muxer's complaint about a repeated timestamp: "... dts to muxer in stream 1: 44608 >= 44608".
_REPEATED_DTS = re.compile(r"non monotonically increasing dts to muxer in stream \d+: (-?\d+) >= (-?\d+)")
# Addresses in ffmpeg's lines ("[h264 @ 0x55d0c3a4]") differ per run: a recorded reason must not.
_ADDRESS = re.compile(r" @ 0x[0-9a-f]+\]")


def fast_check(path: Path, ffmpeg: str, timeout: float, memory_limit: int) -> list[str]:
    """Read every packet of every stream without decoding, errors fatal; return ffmpeg's error lines ([] = whole).

    Catches a truncated file of either MP4 layout in milliseconds; damaged
    bytes inside the streams need the full decode check. Empty packets are
    dropped and a repeated timestamp is no error (see DROP_EMPTY_PACKETS).
    Raise ToolFailed when ffmpeg crashes, times out or exceeds its memory limit.
    """
    command = ffmpeg_command(
        ffmpeg,
        path,
        "-",
        {"map": "0", "f": "null", "c": "copy", "bsf": DROP_EMPTY_PACKETS},
        global_options=("-xerror",),
    )
    return _damage(run_tool(command, path, timeout, memory_limit))


def decode_check(path: Path, ffmpeg: str, timeout: float, memory_limit: int) -> list[str]:
    """Decode every audio and video stream at the lowest CPU priority; return the damage found ([] = whole).

    Catches damaged bytes inside the streams too. First one ffmpeg decodes
    the file, stopping at the first error: a whole file ends there, at the
    cost of decoding alone. A file it stops on is decoded again to be sure
    and to say why: its packets copied, empty ones dropped (see
    DROP_EMPTY_PACKETS), into a second ffmpeg that decodes past every error,
    so the lines say what is wrong and where. Raise ToolFailed as fast_check does.
    """
    whole = ffmpeg_command(ffmpeg, path, "-", {"map": "0", "f": "null"}, global_options=("-xerror",))
    first = run_tool(whole, path, timeout, memory_limit, nice=True)
    if first.returncode == 0 and not first.errors:
        return []
    packets = ffmpeg_command(
        ffmpeg,
        path,
        "-",
        {"c": "copy", "bsf": DROP_EMPTY_PACKETS, "f": "nut"},
        streams=["v?", "a?"],
    )
    decode = ffmpeg_command(ffmpeg, Path("-"), "-", {"map": "0", "f": "null"}, input_options={"f": "nut"})
    return _damage(run_pipeline([packets, decode], path, timeout, memory_limit, nice=True))


def _damage(result: ToolRun) -> list[str]:
    """Return the lines of a check that say the file is damaged (at most five), addresses removed.

    Any error line counts (a whole file prints nothing at the "error" level)
    except a repeated timestamp. A failure without a line of its own gets
    one saying so, never the exit status alone.
    """
    errors = []
    for line in result.errors:
        repeated = _REPEATED_DTS.search(line)
        if repeated and repeated.group(1) == repeated.group(2):
            continue
        errors.append(_ADDRESS.sub("]", line).strip())
    if result.returncode != 0 and not errors:
        errors = [f"ffmpeg stopped with status {result.returncode} without saying why"]
    return errors[:5]


def playable_method(facts: dict) -> str | None:
    """Say how a playable copy is made: "remux", "transcode-audio", "transcode", or None (nothing to play).

    Remux when every video stream is H.264 and every audio stream AAC (or
    there is none): the recorder's own packets, untouched, in an MP4. When
    the video is H.264 but the audio is not AAC (PCM, G.711: common in
    recorders), the video packets are copied and only the audio is
    transcoded. None for a photo or a file without audio or video.
    """
    if facts.get("photo") or "unreadable" in facts:
        return None
    streams = facts.get("streams") or []
    video = [s["codec"] for s in streams if s.get("type") == "video"]
    audio = [s["codec"] for s in streams if s.get("type") == "audio"]
    if not video and not audio:
        return None
    if video and all(codec == "h264" for codec in video):
        return "remux" if all(codec == "aac" for codec in audio) else "transcode-audio"
    if not video and all(codec == "aac" for codec in audio):
        return "remux"
    return "transcode"


def make_playable(source: Path, target: Path, facts: dict, options: MediaSettings) -> MadeCopy | None:
    """Write an H.264/AAC MP4 with its index first (faststart) of ``source`` to ``target``.

    Return None when the item has nothing to play (see playable_method).
    Remux keeps every stream and the container's metadata; when the MP4
    muxer cannot hold some stream (a data track), only video and audio are
    kept. Raise ToolFailed when ffmpeg cannot make the copy.
    """
    method = playable_method(facts)
    if method is None:
        return None
    keep = {"map_metadata": "0", "movflags": "+faststart+use_metadata_tags", "f": "mp4"}
    if method == "remux":
        attempts = [
            ({"map": "0", "c": "copy", **keep}, None),
            ({"c": "copy", **keep}, ["v?", "a?"]),
        ]
    elif method == "transcode-audio":
        audio = {"vcodec": "copy", "acodec": "aac", "b:a": options.playable_audio_bitrate}
        attempts = [({**audio, **keep}, ["v", "a?"])]
    else:
        video = any(s.get("type") == "video" for s in facts.get("streams") or [])
        audio = {"acodec": "aac", "b:a": options.playable_audio_bitrate}
        if video:
            # Never enlarge; keep both sides even, as H.264 in 4:2:0 needs.
            scale = f"scale=-2:'min({options.playable_height},trunc(ih/2)*2)'"
            transcode = {
                "vcodec": "libx264",
                "preset": options.playable_preset,
                "crf": str(options.playable_crf),
                "vf": scale,
                "pix_fmt": "yuv420p",
                **audio,
            }
            attempts = [({**transcode, **keep}, ["v:0", "a?"])]
        else:
            attempts = [({**audio, **keep}, ["a:0"])]
    return _make("playable", method, source, target, attempts, options)


def make_thumbnail(source: Path, target: Path, facts: dict, options: MediaSettings) -> MadeCopy | None:
    """Write a JPEG of the frame near 10 % of the duration (a photo: the photo, smaller) to ``target``.

    Return None when the item has no picture. Raise ToolFailed when ffmpeg cannot make it.
    """
    if "unreadable" in facts or not any(s.get("type") == "video" for s in facts.get("streams") or []):
        return None
    scale = f"scale='min({options.thumbnail_width},iw)':-2"
    picture = {"frames:v": "1", "vf": scale, "q:v": "4", "f": "image2", "update": "1"}
    position = round((facts.get("duration") or 0) * 0.10, 3)
    attempts = [(picture, ["v:0"], {"ss": str(position)})] if position > 0 else []
    attempts.append((picture, ["v:0"], {}))  # from the start when seeking fails (a damaged index)
    return _make("thumbnail", "frame", source, target, attempts, options)


def _make(
    role: str, method: str, source: Path, target: Path, attempts: list[tuple], options: MediaSettings
) -> MadeCopy:
    errors: list[str] = []
    for output_options, streams, *seek in attempts:
        command = ffmpeg_command(
            options.ffmpeg, source, str(target), output_options, *(seek or [None]), streams
        )
        started = utc_now()
        result = run_tool(command, source, options.copy_timeout_seconds, options.memory_limit_mb << 20)
        if result.returncode == 0 and target.exists() and target.stat().st_size > 0:
            # The private paths say nothing: record the command with placeholders.
            arguments = [
                "INPUT" if a == str(source) else "OUTPUT" if a == str(target) else a for a in command
            ]
            arguments[0] = os.path.basename(arguments[0])
            return MadeCopy(role, target, method, tool_version(options.ffmpeg), arguments, started, utc_now())
        errors = result.errors or [f"ffmpeg exited {result.returncode}"]
        target.unlink(missing_ok=True)
    raise ToolFailed(f"ffmpeg could not make the {role} copy: {' / '.join(errors[:3])}")


def _stream_facts(stream: dict) -> dict:
    facts = {
        "index": stream.get("index"),
        "type": stream.get("codec_type"),
        "codec": stream.get("codec_name"),
    }
    created = _parse_creation_time((stream.get("tags") or {}).get("creation_time"))
    if created is not None:
        facts["creation_time"] = created.isoformat()  # a track's own time, which may differ
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
