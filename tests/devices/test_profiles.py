"""Recorder profiles: which profile a device gets, what is footage, what a file name says."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from custody.config import RecorderProfile, default_profiles
from custody.devices.events import DeviceIdentity
from custody.devices.profiles import choose_profile, is_footage, read_filename


def identity(**fields) -> DeviceIdentity:
    return DeviceIdentity(syspath="/sys/x", devnode="/dev/sdb1", **{"fs_type": "vfat", **fields})


def test_most_specific_matching_profile_wins_and_registration_overrides():
    profiles = default_profiles()
    profiles["acme"] = RecorderProfile(usb_vendor_id="2B3C", serial_pattern="ACME*")
    assert choose_profile(profiles, identity(vendor_id="2b3c", serial="ACME01")) == "acme"
    assert choose_profile(profiles, identity(vendor_id="2b3c", serial="OTHER1")) == "dcim"
    assert (
        choose_profile(profiles, identity(vendor_id="2b3c", serial="ACME01"), registered="bwc-badge")
        == "bwc-badge"
    )
    assert choose_profile(profiles, identity(fs_type="ntfs")) is None  # dcim reads FAT and exFAT only
    assert choose_profile(profiles, identity(), registered="gone") is None


def test_volume_label_rule_is_a_shell_pattern():
    profiles = {"dcim": RecorderProfile(volume_label="BODYCAM*")}
    assert choose_profile(profiles, identity(fs_label="BODYCAM_7")) == "dcim"
    assert choose_profile(profiles, identity(fs_label="KINGSTON")) is None


def test_footage_is_under_a_media_folder_with_a_media_extension():
    profile = default_profiles()["dcim"]
    assert is_footage("DCIM/100BWC/CLIP.MP4", profile)
    assert is_footage("dcim/clip.mov", profile)
    assert not is_footage("DCIM/NOTES.TXT", profile)
    assert not is_footage("MISC/CLIP.MP4", profile)
    assert not is_footage("CLIP.MP4", profile)
    anywhere = dataclasses.replace(profile, media_folders=[])
    assert is_footage("CLIP.MP4", anywhere)


def test_filename_gives_utc_start_recorder_officer_and_important_flag():
    profile = default_profiles()["bwc-badge"]  # Asia/Shanghai clock
    facts = read_filename("BWC0042_031245_20261126143005_IMP.MP4", profile)
    assert facts.start == datetime(2026, 11, 26, 6, 30, 5, tzinfo=UTC)
    assert (facts.recorder, facts.officer, facts.important) == ("BWC0042", "031245", True)
    plain = read_filename("BWC0042_031245_20261126143005.MP4", profile)
    assert plain.important is False
    assert read_filename("GOPR0001.MP4", profile) is None
    assert read_filename("BWC0042_031245_20261399999999.MP4", profile) is None  # not a date


def test_daylight_saving_zone_is_applied_per_date():
    profile = dataclasses.replace(default_profiles()["timestamped"], clock_timezone="Europe/Berlin")
    assert read_filename("20260115_120000_0001.MP4", profile).start == datetime(
        2026, 1, 15, 11, 0, tzinfo=UTC
    )
    assert read_filename("20260715_120000_0001.MP4", profile).start == datetime(
        2026, 7, 15, 10, 0, tzinfo=UTC
    )


def test_the_shipped_phone_card_profile_takes_every_media_folder_and_phone_names():
    profile = default_profiles()["phone-card"]
    for relative in (
        "DCIM/Camera/IMG_20191220_200834.jpg",
        "Pictures/Screenshots/Screenshot_20191220_200834.png",
        "Movies/VID_20191220_200834.mp4",
        "Recordings/AUD_20191220_200834.m4a",
        "Documents/notice.pdf",
        "IMG_0001.HEIC",
    ):
        assert is_footage(relative, profile), relative
    assert not is_footage("Android/data/com.app/cache.db", profile)
    facts = read_filename("VID_20191220_200834.mp4", profile)
    assert facts is not None and facts.start == datetime(
        2019, 12, 20, 12, 8, 34, tzinfo=UTC
    )  # 20:08 in Beijing
    assert choose_profile(default_profiles(), identity()) == "dcim"  # a phone card is registered as such
