"""File times read from real FAT and exFAT images' directory entries (no mount: the bytes themselves)."""

from __future__ import annotations

import os
import struct
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path

import pytest

from custody.devices.card_times import CardUnreadable, entry_key, read_card_times
from tests.conftest import not_media
from tests.docking import exfat_image, fat_image, host

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")

# Recorder-clock times (Shanghai wall time) across a year end, month ends, a leap day and a DST-free zone.
CLOCK_TIMES = {
    "DCIM/100MEDIA/JAN31.JPG": datetime(2021, 1, 31, 23, 59, 58),
    "DCIM/100MEDIA/YEAREND.JPG": datetime(2021, 12, 31, 23, 30, 0),
    "DCIM/100MEDIA/LEAPDAY.JPG": datetime(2024, 2, 29, 7, 0, 0),  # 2024-02-28 23:00 UTC
    "DCIM/100MEDIA/MARCH1.JPG": datetime(2024, 3, 1, 0, 0, 0),
    "DCIM/100MEDIA/a long name, 30 April.jpg": datetime(2023, 4, 30, 12, 34, 56),
    "DCIM/NEWYEAR.JPG": datetime(2022, 1, 1, 0, 0, 0),
}


def card_tree(root: Path, times: dict[str, datetime], zone=SHANGHAI) -> dict[str, datetime]:
    """Write the files with those wall-clock times in ``zone``; return each one's true UTC time."""
    expected = {}
    for relative, wall in times.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(not_media(1000))
        moment = wall.replace(tzinfo=zone).astimezone(UTC)
        os.utime(path, (moment.timestamp(), moment.timestamp()))
        expected[relative] = moment
    return expected


def test_fat32_times_are_the_recorder_clock_read_in_its_zone(tmp_path):
    expected = card_tree(tmp_path / "card", CLOCK_TIMES)
    image = fat_image(tmp_path / "card.img", tmp_path / "card", zone="Asia/Shanghai")
    found = read_card_times(image)
    for relative, moment in expected.items():
        entry = found[entry_key(relative)]
        assert entry.filesystem == "fat" and entry.utc_offset_minutes is None
        assert entry.local == CLOCK_TIMES[relative], relative  # the wall time, as the card holds it
        assert entry.to_utc("Asia/Shanghai") == moment, relative
    assert len(found) == len(expected)  # folders, the volume label and "." / ".." are not files


@pytest.mark.parametrize("fat_bits", ["12", "16"])
def test_small_fat_volumes_are_read_too(tmp_path, fat_bits):
    expected = card_tree(tmp_path / "card", {"DCIM/A.JPG": datetime(2024, 2, 29, 12, 0, 0)})
    image = tmp_path / "card.img"
    host("truncate", "-s", "4M" if fat_bits == "12" else "32M", image)
    host("mkfs.vfat", "-F", fat_bits, image)
    host("mcopy", "-s", "-m", "-i", image, tmp_path / "card" / "DCIM", "::/", zone="Asia/Shanghai")
    [entry] = read_card_times(image).values()
    assert entry.to_utc("Asia/Shanghai") == expected["DCIM/A.JPG"]


def test_exfat_times_use_the_offset_the_card_recorded_not_the_profile_zone(tmp_path):
    # The camera's clock ran in New York time and wrote its offset: the profile's zone must not apply.
    new_york = zoneinfo.ZoneInfo("America/New_York")
    expected = card_tree(tmp_path / "card", CLOCK_TIMES, zone=new_york)
    image = exfat_image(tmp_path / "card.img", tmp_path / "card", zone="America/New_York")
    found = read_card_times(image)
    assert len(found) == len(expected)
    for relative, moment in expected.items():
        entry = found[entry_key(relative)]
        assert entry.filesystem == "exfat"
        # exfat-fuse writes the writer's offset of today (-5 h or -4 h), self-consistent with the wall time.
        assert entry.utc_offset_minutes in (-300, -240)
        assert entry.to_utc("Asia/Shanghai") == moment, relative


def test_exfat_times_without_an_offset_are_read_in_the_profile_zone(tmp_path):
    expected = card_tree(tmp_path / "card", CLOCK_TIMES)
    image = exfat_image(tmp_path / "card.img", tmp_path / "card", zone="Asia/Shanghai")
    cleared = clear_exfat_offsets(image)
    assert cleared == len(expected) + 2  # the files and the two folders
    found = read_card_times(image)
    for relative, moment in expected.items():
        entry = found[entry_key(relative)]
        assert entry.utc_offset_minutes is None
        assert entry.to_utc("Asia/Shanghai") == moment, relative


def test_a_card_whose_cluster_chain_loops_is_refused_not_walked_for_ever(tmp_path):
    card_tree(tmp_path / "card", {"DCIM/A.JPG": datetime(2024, 1, 1)})
    image = fat_image(tmp_path / "card.img", tmp_path / "card")
    with open(image, "r+b") as disk:  # make the root folder's cluster point at itself
        boot = disk.read(512)
        sector, reserved = struct.unpack_from("<H", boot, 11)[0], struct.unpack_from("<H", boot, 14)[0]
        root = struct.unpack_from("<I", boot, 44)[0]
        disk.seek(reserved * sector + root * 4)
        disk.write(struct.pack("<I", root))
    with pytest.raises(CardUnreadable, match="loops"):
        read_card_times(image)


def test_something_that_is_not_a_card_is_refused(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(not_media(1 << 20))
    with pytest.raises(CardUnreadable, match="not a FAT or exFAT volume"):
        read_card_times(junk)
    with pytest.raises(CardUnreadable, match="cannot read"):
        read_card_times(tmp_path / "missing.img")


def clear_exfat_offsets(image: Path) -> int:
    """Clear the UTC-offset "valid" bit of every File entry's modified time (as cameras that write no
    offset leave it), fixing each entry set's checksum; return how many entries changed."""
    data = bytearray(image.read_bytes())
    changed = 0
    for offset in range(0, len(data) - 96, 32):
        if data[offset] == 0x85 and data[offset + 32] == 0xC0 and data[offset + 64] == 0xC1:
            data[offset + 23] = 0
            count = data[offset + 1]
            checksum = 0
            for index, byte in enumerate(data[offset : offset + 32 * (count + 1)]):
                if index in (2, 3):
                    continue
                checksum = (((checksum & 1) << 15) + (checksum >> 1) + byte) & 0xFFFF
            struct.pack_into("<H", data, offset + 2, checksum)
            changed += 1
    image.write_bytes(data)
    return changed


def test_a_folder_that_claims_the_whole_card_is_refused_not_read_into_memory(tmp_path, monkeypatch):
    """A hostile card: its root folder's cluster chain runs through every cluster of the volume."""
    from custody.devices import card_times

    card_tree(tmp_path / "card", {"DCIM/A.JPG": datetime(2024, 1, 1)})
    image = fat_image(tmp_path / "card.img", tmp_path / "card")
    with open(image, "r+b") as disk:
        boot = disk.read(512)
        sector, reserved = struct.unpack_from("<H", boot, 11)[0], struct.unpack_from("<H", boot, 14)[0]
        per_cluster, fats, total = boot[13], boot[16], struct.unpack_from("<I", boot, 32)[0]
        fat_sectors, root = struct.unpack_from("<I", boot, 36)[0], struct.unpack_from("<I", boot, 44)[0]
        last = (total - reserved - fats * fat_sectors) // per_cluster + 1  # the volume's last cluster
        disk.seek(reserved * sector + root * 4)
        disk.write(
            b"".join(struct.pack("<I", n + 1) for n in range(root, last)) + struct.pack("<I", 0x0FFFFFFF)
        )
    monkeypatch.setattr(card_times, "MAX_DIRECTORY_BYTES", 1 << 20)  # a small card stands for a big one
    with pytest.raises(CardUnreadable, match="a folder larger than 1 MiB"):
        read_card_times(image)
