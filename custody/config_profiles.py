"""[profiles.NAME] of the config: how custody recognises a kind of recorder and reads its files,
and the profiles shipped with it (in a file of its own: custody.config builds them)."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field

from custody.errors import ConfigError, Said


@dataclass(frozen=True)
class RecorderProfile:
    """How to recognise one kind of recorder and read its files."""

    description: str = ""
    # Match rules on the device (udev properties); empty means "any". The
    # patterns are shell-style (fnmatch), ids are 4 hex digits.
    usb_vendor_id: str = ""
    usb_product_id: str = ""
    serial_pattern: str = ""
    volume_label: str = ""
    filesystems: list[str] = field(default_factory=lambda: ["vfat", "exfat"])
    # Folders (relative to the volume root) holding footage, and the extensions pulled.
    media_folders: list[str] = field(default_factory=lambda: ["DCIM"])
    extensions: list[str] = field(
        default_factory=lambda: [
            ".mp4",
            ".mov",
            ".avi",
            ".mkv",
            ".ts",
            ".jpg",
            ".jpeg",
            ".wav",
            ".mp3",
            ".m4a",
        ]
    )
    # A regular expression matched against the file name. Named groups:
    # start (required, read with start_format), and optionally recorder,
    # officer and important (any non-empty text marks the file important).
    filename_pattern: str = ""
    start_format: str = "%Y%m%d%H%M%S"
    # The recorder clock's zone (IANA name): recorders write local time without one.
    clock_timezone: str = "UTC"
    # Delete files from the recorder after ingest: "never", or "after_vault"
    # (once the session is over, each file whose vault copy re-hashes right is
    # deleted from the recorder, mounted read-write for that alone; each
    # deletion audited), or "after_replica" (the same, and only once the copy
    # is also verified on every [targets.NAME]: usually at the next dock).
    wipe: str = "never"


def default_profiles() -> dict[str, RecorderProfile]:
    """Return the profiles shipped with custody (a config file may add or replace any)."""
    return {
        "dcim": RecorderProfile(
            description="Generic USB mass-storage recorder or camera with a DCIM folder",
        ),
        "timestamped": RecorderProfile(
            description="Recorder naming files by local start time, e.g. 20261126_143005_0001.MP4",
            filename_pattern=r"^(?P<start>\d{8}_\d{6})",
            start_format="%Y%m%d_%H%M%S",
            clock_timezone="Asia/Shanghai",
        ),
        "phone-card": RecorderProfile(
            description=(
                "A phone's or camera's memory card: photos, videos, voice notes and documents in any "
                "folder, phone-style names (IMG_/VID_/PXL_/AUD_20261126_143005...) read in local time"
            ),
            media_folders=[],  # every folder (DCIM, Pictures, Movies, Recordings, Documents, ...)
            extensions=[
                *(
                    ".jpg",
                    ".jpeg",
                    ".heic",
                    ".heif",
                    ".png",
                    ".dng",
                    ".webp",
                    ".gif",
                    ".bmp",
                    ".tif",
                    ".tiff",
                ),
                *(".mp4", ".mov", ".avi", ".mkv", ".ts", ".mts", ".m2ts", ".3gp", ".m4v", ".webm"),
                *(".wav", ".mp3", ".m4a", ".aac", ".amr", ".ogg", ".opus", ".flac", ".3gpp"),
                *(".pdf", ".doc", ".docx", ".odt", ".txt", ".rtf"),
            ],
            filename_pattern=r"^(?:IMG|VID|PXL|MVIMG|AUD|REC|Screenshot)_(?P<start>\d{8}_\d{6})",
            start_format="%Y%m%d_%H%M%S",
            clock_timezone="Asia/Shanghai",
        ),
        "bwc-badge": RecorderProfile(
            description=(
                "Law-enforcement recorder naming files RECORDER_OFFICER_START[_IMP], "
                "e.g. BWC0042_031245_20261126143005_IMP.MP4"
            ),
            filename_pattern=(
                r"^(?P<recorder>[A-Za-z0-9]+)_(?P<officer>[A-Za-z0-9]+)_(?P<start>\d{14})(?P<important>_IMP)?"
            ),
            start_format="%Y%m%d%H%M%S",
            clock_timezone="Asia/Shanghai",
        ),
    }


WIPE_MODES = ("never", "after_vault", "after_replica")


def check_profile(profile: RecorderProfile, dotted: str, path) -> None:
    """Raise ConfigError naming what is wrong with [``dotted``] (its zone, its file name pattern, its wipe)."""
    try:
        zoneinfo.ZoneInfo(profile.clock_timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            path=path,
            key=f"{dotted}.clock_timezone",
            problem=Said(
                "unknown time zone {clock_timezone!r} (use an IANA name such as Asia/Shanghai or UTC)",
                clock_timezone=profile.clock_timezone,
            ),
        ) from None
    if profile.filename_pattern:
        try:
            pattern = re.compile(profile.filename_pattern)
        except re.error as exc:
            raise ConfigError(
                path=path,
                key=f"{dotted}.filename_pattern",
                problem=Said("not a regular expression: {error}", error=exc),
            ) from None
        if "start" not in pattern.groupindex:
            raise ConfigError(
                path=path, key=f"{dotted}.filename_pattern", problem="needs a named group (?P<start>...)"
            )
    if profile.wipe not in WIPE_MODES:
        raise ConfigError(
            path=path,
            key=f"{dotted}.wipe",
            problem=Said(
                "must be one of {modes}, got {wipe!r}", modes=", ".join(WIPE_MODES), wipe=profile.wipe
            ),
        )
