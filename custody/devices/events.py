"""The few named events device code speaks in, and the MediaSource ingest reads from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DeviceIdentity:
    """What udev says about a USB block device (a disk or one of its partitions)."""

    syspath: str
    devnode: str
    devtype: str = "disk"  # "disk" or "partition"
    serial: str = ""
    vendor_id: str = ""
    product_id: str = ""
    vendor: str = ""
    model: str = ""
    fs_type: str = ""
    fs_label: str = ""
    fs_uuid: str = ""

    @property
    def key(self) -> str:
        """A stable name for the physical device: its serial, else vendor:product, else its syspath."""
        if self.serial:
            return self.serial
        if self.vendor_id or self.product_id:
            return f"{self.vendor_id}:{self.product_id}"
        return self.syspath

    def describe(self) -> str:
        parts = [self.devnode or self.syspath]
        if self.serial:
            parts.append(f"serial {self.serial}")
        if self.vendor_id or self.product_id:
            parts.append(f"usb {self.vendor_id}:{self.product_id}")
        if self.fs_type:
            parts.append(f"{self.fs_type} {self.fs_label!r}" if self.fs_label else self.fs_type)
        return ", ".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RecorderDocked:
    """A USB disk appeared (it may not have readable media yet)."""

    identity: DeviceIdentity


@dataclass(frozen=True)
class MediaReady:
    """A USB disk or partition with a filesystem is there to be read."""

    identity: DeviceIdentity


@dataclass(frozen=True)
class RecorderUndocked:
    """A USB disk or partition went away (unplugged, or its media removed)."""

    identity: DeviceIdentity


@dataclass(frozen=True)
class FileReady:
    """A file in a watch folder is complete (its size settled, or it was closed after writing)."""

    folder: Path
    path: Path


DeviceEvent = RecorderDocked | MediaReady | RecorderUndocked


@dataclass(frozen=True)
class MediaSource:
    """A read-only tree of footage and whose it is: a mounted recorder or a watch folder."""

    root: Path
    serial: str
    profile_name: str
    kind: str  # "usb" or "watch"
    identity: DeviceIdentity | None = None
    paths: list[Path] = field(default_factory=list)  # for a watch folder: the files that are ready
