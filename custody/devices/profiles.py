"""Recorder profiles: which profile fits a device, which files are footage, what a name says."""

from __future__ import annotations

import fnmatch
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from custody.config import RecorderProfile
from custody.devices.events import DeviceIdentity


@dataclass(frozen=True)
class FilenameFacts:
    """What a file name told, per the profile's filename pattern."""

    start: datetime | None  # aware, UTC
    recorder: str | None = None
    officer: str | None = None
    important: bool = False


def profile_matches(profile: RecorderProfile, identity: DeviceIdentity) -> bool:
    """Return True when every match rule the profile sets holds for the device."""
    rules = (
        (profile.usb_vendor_id, identity.vendor_id, False),
        (profile.usb_product_id, identity.product_id, False),
        (profile.serial_pattern, identity.serial, True),
        (profile.volume_label, identity.fs_label, True),
    )
    for wanted, actual, pattern in rules:
        if not wanted:
            continue
        if pattern:
            if not fnmatch.fnmatchcase(actual, wanted):
                return False
        elif wanted.lower() != actual.lower():
            return False
    return not (profile.filesystems and identity.fs_type and identity.fs_type not in profile.filesystems)


def choose_profile(
    profiles: dict[str, RecorderProfile], identity: DeviceIdentity, registered: str = ""
) -> str | None:
    """Return the profile for a device: the registered one, else the most specific that matches.

    Profiles with more match rules are tried first (a vendor's profile beats
    the generic "dcim"); ties go by name. None when nothing matches.
    """
    if registered:
        return registered if registered in profiles else None

    def specificity(name: str) -> tuple[int, str]:
        p = profiles[name]
        rules = sum(bool(v) for v in (p.usb_vendor_id, p.usb_product_id, p.serial_pattern, p.volume_label))
        return (-rules, name)

    for name in sorted(profiles, key=specificity):
        profile = profiles[name]
        rules = (profile.usb_vendor_id, profile.usb_product_id, profile.serial_pattern, profile.volume_label)
        # Rule-less profiles other than the generic one are for explicit registration only.
        if not any(rules) and name != "dcim":
            continue
        if profile_matches(profile, identity):
            return name
    return None


def is_footage(relative: str, profile: RecorderProfile) -> bool:
    """Return True when a path relative to the volume root is under a media folder with a media extension."""
    path = PurePosixPath(relative)
    if path.suffix.lower() not in {e.lower() for e in profile.extensions}:
        return False
    if not profile.media_folders:
        return True
    top = path.parts[0].lower() if len(path.parts) > 1 else ""
    return any(top == folder.strip("/").lower() for folder in profile.media_folders)


def read_filename(name: str, profile: RecorderProfile) -> FilenameFacts | None:
    """Return what the profile's filename pattern reads from ``name``, or None when it does not match.

    The start time is read in the recorder clock's zone and returned in UTC.
    """
    if not profile.filename_pattern:
        return None
    match = re.search(profile.filename_pattern, name)
    if not match:
        return None
    groups = match.groupdict()
    start = None
    if groups.get("start"):
        try:
            local = datetime.strptime(groups["start"], profile.start_format)
        except ValueError:
            return None
        start = local.replace(tzinfo=zoneinfo.ZoneInfo(profile.clock_timezone)).astimezone(UTC)
    return FilenameFacts(
        start=start,
        recorder=groups.get("recorder") or None,
        officer=groups.get("officer") or None,
        important=bool(groups.get("important")),
    )
