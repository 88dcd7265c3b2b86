"""File times read from a FAT or exFAT card's own directory entries, not from the mount.

Why: what a mount reports as a file's mtime on these cards cannot be trusted.
Debian's fusefat adds one month to every FAT date (not invertible: Jan 31
reads as "Feb 31"), and every FAT driver must guess the zone of a FAT time,
which is the recorder clock's local time with no zone at all. So custody
reads the directory entries of the device itself (read-only, the same bytes
the mount reads) and applies the zone itself:

- FAT12/16/32: the last-written date and time are local time of the
  recorder's clock (2-second resolution); the profile's ``clock_timezone``
  says which zone that is.
- exFAT: the last-modified timestamp has a 10 ms field and, when its "valid"
  bit is set, the writer's UTC offset. With an offset the time is exact;
  without one the profile's zone applies, as for FAT.

Only directory entries are read, never file contents. A card is outside
data: cluster chains are bounded by the cluster count and checked for loops,
folders nest at most :data:`MAX_DEPTH` deep, and anything malformed raises
:class:`CardUnreadable` (the caller falls back to the mount's times and says so).

No maintained library fits: dissect.fat reads both formats but is AGPL (this
product is proprietary), and pyfatfs has no exFAT and pulls PyFilesystem2.
"""

from __future__ import annotations

import os
import struct
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# How deep folders may nest before the rest of a card is ignored (the walk of a mount stops there too).
MAX_DEPTH = 64
# How many directory entries a card may hold before reading stops (a hostile image cannot keep us busy).
MAX_ENTRIES = 1_000_000
# How large one folder may be (its entries are read into memory): a hostile card whose folder
# claims the whole volume must not make the root daemon read gigabytes.
MAX_DIRECTORY_BYTES = 64 << 20

FAT_FILESYSTEMS = {"vfat", "fat", "msdos", "fat12", "fat16", "fat32"}
EXFAT_FILESYSTEMS = {"exfat"}


class CardUnreadable(Exception):
    """The device's directory entries could not be read (not FAT/exFAT, damaged, or unreadable)."""


@dataclass(frozen=True)
class EntryTime:
    """A file's last-modified time as its directory entry holds it."""

    local: datetime  # naive: the recorder clock's wall time
    utc_offset_minutes: int | None  # exFAT's recorded offset, when its valid bit is set
    filesystem: str  # "fat" or "exfat"

    def to_utc(self, clock_timezone: str) -> datetime:
        """Return the time in UTC: by the entry's own offset, else by the recorder clock's zone."""
        if self.utc_offset_minutes is not None:
            return (self.local - timedelta(minutes=self.utc_offset_minutes)).replace(tzinfo=UTC)
        return self.local.replace(tzinfo=zoneinfo.ZoneInfo(clock_timezone)).astimezone(UTC)

    @property
    def source(self) -> str:
        """The name a recording window read from this entry carries (``recorded_source``)."""
        return f"{self.filesystem}-directory"


def reads_directory_times(fs_type: str) -> bool:
    """Return True when custody reads file times from this filesystem's directory entries."""
    return fs_type.lower() in FAT_FILESYSTEMS | EXFAT_FILESYSTEMS


def read_card_times(device: str | os.PathLike) -> dict[str, EntryTime]:
    """Return every file's directory-entry time on a FAT or exFAT volume, keyed by :func:`entry_key`.

    ``device`` is a block device or an image file holding the volume (not a
    partition table). Raises CardUnreadable when it is neither FAT nor exFAT,
    is damaged, or cannot be read.
    """
    try:
        with open(device, "rb", buffering=0) as volume:
            boot = _read_at(volume, 0, 512)
            if boot[3:11] == b"EXFAT   ":
                return _ExfatReader(volume, boot).times()
            return _FatReader(volume, boot).times()
    except OSError as exc:
        raise CardUnreadable(f"cannot read {os.fspath(device)}: {exc.strerror or exc}") from exc
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise CardUnreadable(f"damaged directory on {os.fspath(device)}: {exc}") from exc


def entry_key(relative: str) -> str:
    """Return the lookup key of a path relative to the volume root (FAT names ignore case)."""
    return relative.strip("/").casefold()


def _read_at(volume, offset: int, size: int) -> bytes:
    data = os.pread(volume.fileno(), size, offset)
    if len(data) != size:
        raise CardUnreadable(f"the volume ends before byte {offset + size}")
    return data


def _fat_datetime(date: int, time: int, centiseconds: int = 0) -> datetime | None:
    """Return a FAT date and time as a naive datetime, or None when they do not name a real time."""
    try:
        stamp = datetime(
            1980 + (date >> 9),
            (date >> 5) & 0x0F,
            date & 0x1F,
            time >> 11,
            (time >> 5) & 0x3F,
            (time & 0x1F) * 2,
        )
    except ValueError:
        return None
    return stamp + timedelta(milliseconds=10 * min(centiseconds, 199))


class _Walker:
    """What the two formats share: bounded cluster chains and a bounded folder walk."""

    cluster_count: int
    cluster_size: int

    def __init__(self, volume) -> None:
        self.volume = volume
        self.entries_seen = 0
        self.found: dict[str, EntryTime] = {}

    def next_cluster(self, cluster: int) -> int | None:  # pragma: no cover - each format has its own
        raise NotImplementedError

    def cluster_offset(self, cluster: int) -> int:  # pragma: no cover
        raise NotImplementedError

    def chain(self, first: int) -> list[int]:
        """Return a cluster chain, refusing one that loops or leaves the volume."""
        clusters: list[int] = []
        seen: set[int] = set()
        cluster: int | None = first
        while cluster is not None:
            if not 2 <= cluster < self.cluster_count + 2 or cluster in seen:
                raise CardUnreadable(f"a cluster chain loops or leaves the volume at cluster {cluster}")
            seen.add(cluster)
            clusters.append(cluster)
            cluster = self.next_cluster(cluster)
        return clusters

    def read_clusters(self, clusters: list[int]) -> bytes:
        if len(clusters) * self.cluster_size > MAX_DIRECTORY_BYTES:
            raise CardUnreadable(f"a folder larger than {MAX_DIRECTORY_BYTES >> 20} MiB")
        return b"".join(_read_at(self.volume, self.cluster_offset(c), self.cluster_size) for c in clusters)

    def count_entry(self) -> None:
        self.entries_seen += 1
        if self.entries_seen > MAX_ENTRIES:
            raise CardUnreadable(f"more than {MAX_ENTRIES} directory entries")


class _FatReader(_Walker):
    """FAT12, FAT16 and FAT32: 8.3 entries with VFAT long names."""

    def __init__(self, volume, boot: bytes) -> None:
        super().__init__(volume)
        (self.sector_size, per_cluster, reserved, fats, root_entries, total16, _media, fat16) = (
            struct.unpack_from("<HBHBHHBH", boot, 11)
        )
        total32, fat32, self.root_cluster = struct.unpack_from("<II4xI", boot, 32)
        if (
            self.sector_size not in (512, 1024, 2048, 4096)
            or per_cluster == 0
            or per_cluster & (per_cluster - 1)
        ):
            raise CardUnreadable("not a FAT or exFAT volume (no valid boot sector)")
        if fats == 0 or reserved == 0 or boot[510:512] != b"\x55\xaa":
            raise CardUnreadable("not a FAT or exFAT volume (no valid boot sector)")
        fat_sectors = fat16 or fat32
        total = total16 or total32
        root_sectors = (root_entries * 32 + self.sector_size - 1) // self.sector_size
        self.fat_offset = reserved * self.sector_size
        self.root_offset = (reserved + fats * fat_sectors) * self.sector_size
        self.root_size = root_entries * 32
        first_data = reserved + fats * fat_sectors + root_sectors
        self.data_offset = first_data * self.sector_size
        self.cluster_size = per_cluster * self.sector_size
        self.cluster_count = (total - first_data) // per_cluster
        if self.cluster_count <= 0:
            raise CardUnreadable("not a FAT or exFAT volume (no data area)")
        self.bits = 12 if self.cluster_count < 4085 else 16 if self.cluster_count < 65525 else 32
        self.fat = _read_at(volume, self.fat_offset, fat_sectors * self.sector_size)

    def next_cluster(self, cluster: int) -> int | None:
        if self.bits == 32:
            value = struct.unpack_from("<I", self.fat, cluster * 4)[0] & 0x0FFFFFFF
            end = 0x0FFFFFF8
        elif self.bits == 16:
            value, end = struct.unpack_from("<H", self.fat, cluster * 2)[0], 0xFFF8
        else:
            pair = struct.unpack_from("<H", self.fat, cluster * 3 // 2)[0]
            value, end = (pair >> 4 if cluster & 1 else pair & 0x0FFF), 0xFF8
        return None if value >= end or value < 2 else value

    def cluster_offset(self, cluster: int) -> int:
        return self.data_offset + (cluster - 2) * self.cluster_size

    def times(self) -> dict[str, EntryTime]:
        if self.bits == 32:
            root = self.read_clusters(self.chain(self.root_cluster))
        else:
            root = _read_at(self.volume, self.root_offset, self.root_size)
        self.walk(root, "", 0)
        return self.found

    def walk(self, directory: bytes, prefix: str, depth: int) -> None:
        long_parts: dict[int, str] = {}
        long_checksum = None
        for offset in range(0, len(directory) - 31, 32):
            entry = directory[offset : offset + 32]
            if entry[0] == 0x00:
                return
            self.count_entry()
            if entry[0] == 0xE5:
                long_parts, long_checksum = {}, None
                continue
            attributes = entry[11]
            if attributes & 0x3F == 0x0F:  # a piece of a long name, last piece first
                order = entry[0] & 0x3F
                if entry[0] & 0x40:
                    long_parts, long_checksum = {}, entry[13]
                long_parts[order] = (entry[1:11] + entry[14:26] + entry[28:32]).decode("utf-16-le", "replace")
                continue
            name = self.short_name(entry)
            if long_parts and long_checksum == _short_name_checksum(entry[0:11]):
                joined = "".join(long_parts[k] for k in sorted(long_parts))
                name = joined.split("\x00", 1)[0]
            long_parts, long_checksum = {}, None
            if attributes & 0x08 or name in (".", ".."):  # the volume label, or a folder's links
                continue
            path = f"{prefix}{name}"
            if attributes & 0x10:
                first = struct.unpack_from("<H", entry, 20)[0] << 16 | struct.unpack_from("<H", entry, 26)[0]
                if depth + 1 < MAX_DEPTH and first >= 2:
                    self.walk(self.read_clusters(self.chain(first)), path + "/", depth + 1)
                continue
            date, time = struct.unpack_from("<H", entry, 24)[0], struct.unpack_from("<H", entry, 22)[0]
            stamp = _fat_datetime(date, time)
            if stamp is not None:
                self.found[entry_key(path)] = EntryTime(stamp, None, "fat")

    @staticmethod
    def short_name(entry: bytes) -> str:
        """Return an 8.3 name as Linux shows it (lower case where the NT case bits say so)."""
        raw = bytearray(entry[0:11])
        if raw[0] == 0x05:
            raw[0] = 0xE5
        base = raw[0:8].decode("cp437").rstrip(" ")
        extension = raw[8:11].decode("cp437").rstrip(" ")
        if entry[12] & 0x08:
            base = base.lower()
        if entry[12] & 0x10:
            extension = extension.lower()
        return f"{base}.{extension}" if extension else base


def _short_name_checksum(name: bytes) -> int:
    total = 0
    for byte in name:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


class _ExfatReader(_Walker):
    """exFAT: entry sets of a File entry, a Stream Extension and File Name entries."""

    def __init__(self, volume, boot: bytes) -> None:
        super().__init__(volume)
        fat_offset, fat_length, heap_offset, self.cluster_count, self.root_cluster = struct.unpack_from(
            "<IIIII", boot, 80
        )
        sector_shift, cluster_shift = boot[108], boot[109]
        if not 9 <= sector_shift <= 12 or sector_shift + cluster_shift > 25 or boot[510:512] != b"\x55\xaa":
            raise CardUnreadable("not a FAT or exFAT volume (no valid exFAT boot sector)")
        self.sector_size = 1 << sector_shift
        self.cluster_size = 1 << (sector_shift + cluster_shift)
        self.heap_offset = heap_offset * self.sector_size
        self.fat = _read_at(volume, fat_offset * self.sector_size, fat_length * self.sector_size)

    def next_cluster(self, cluster: int) -> int | None:
        value = struct.unpack_from("<I", self.fat, cluster * 4)[0]
        return None if value >= 0xFFFFFFF7 or value < 2 else value

    def cluster_offset(self, cluster: int) -> int:
        return self.heap_offset + (cluster - 2) * self.cluster_size

    def times(self) -> dict[str, EntryTime]:
        self.walk(self.read_clusters(self.chain(self.root_cluster)), "", 0)
        return self.found

    def walk(self, directory: bytes, prefix: str, depth: int) -> None:
        offset = 0
        while offset + 32 <= len(directory):
            kind = directory[offset]
            if kind == 0x00:
                return
            self.count_entry()
            if kind != 0x85:  # not a File entry in use: skip it alone
                offset += 32
                continue
            secondary = directory[offset + 1]
            entry_set = directory[offset : offset + 32 * (secondary + 1)]
            offset += 32 * (secondary + 1)
            if secondary < 2 or len(entry_set) < 32 * (secondary + 1) or entry_set[32] != 0xC0:
                continue
            attributes = struct.unpack_from("<H", entry_set, 4)[0]
            stamp = struct.unpack_from("<I", entry_set, 12)[0]
            centiseconds, offset_byte = entry_set[21], entry_set[23]
            flags, name_length = entry_set[33], entry_set[35]
            first, data_length = struct.unpack_from("<IQ", entry_set, 32 + 20)
            name = "".join(
                entry_set[32 * i + 2 : 32 * i + 32].decode("utf-16-le", "replace")
                for i in range(2, secondary + 1)
                if entry_set[32 * i] == 0xC1
            )[:name_length]
            path = f"{prefix}{name}"
            if attributes & 0x10:
                if depth + 1 < MAX_DEPTH and first >= 2 and data_length:
                    if flags & 0x02:  # NoFatChain: the folder's clusters are contiguous
                        count = -(-data_length // self.cluster_size)
                        if first + count > self.cluster_count + 2:
                            raise CardUnreadable(f"folder {path!r} runs past the end of the volume")
                        clusters = list(range(first, first + count))
                    else:
                        clusters = self.chain(first)
                    self.walk(self.read_clusters(clusters)[:data_length], path + "/", depth + 1)
                continue
            local = _fat_datetime(stamp >> 16, stamp & 0xFFFF, centiseconds)
            if local is None:
                continue
            utc_offset = None
            if offset_byte & 0x80:
                seven_bits = offset_byte & 0x7F
                utc_offset = 15 * (seven_bits - 128 if seven_bits & 0x40 else seven_bits)
            self.found[entry_key(path)] = EntryTime(local, utc_offset, "exfat")
