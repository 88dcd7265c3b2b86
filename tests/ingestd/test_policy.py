"""What the daemon decides for a docked device, before anything is mounted."""

from __future__ import annotations

import dataclasses

from custody.config import DockSettings, Settings
from custody.devices.events import DeviceIdentity
from custody.ingestd.daemon import DockPolicy
from custody.vault.registry import Recorder


def recorder(serial="BWC0042", profile="", retired_at=None) -> Recorder:
    return Recorder(
        serial, "", "", profile, "2026-01-01T00:00:00.000000Z", "clerk", retired_at, "031245", None
    )


def device(fs_type="vfat", serial="BWC0042") -> DeviceIdentity:
    return DeviceIdentity(syspath="/sys/x", devnode="/dev/sdb1", serial=serial, fs_type=fs_type)


def test_registered_recorder_is_pulled_with_its_profile_else_the_matching_one(tmp_path):
    policy = DockPolicy(Settings(home=tmp_path))
    assert policy.decide(device(), recorder(profile="bwc-badge")) == policy.decide(
        device(), recorder("X", "bwc-badge")
    )
    decision = policy.decide(device(), recorder(profile="bwc-badge"))
    assert (decision.ingest, decision.profile) == (True, "bwc-badge")
    assert policy.decide(device(), recorder()).profile == "dcim"


def test_unknown_device_is_refused_unless_configured_and_then_unassigned(tmp_path):
    refused = DockPolicy(Settings(home=tmp_path)).decide(device(serial="STRANGER"), None)
    assert (refused.ingest, refused.reason) == (False, "device is not a registered recorder")
    allowing = Settings(home=tmp_path, dock=dataclasses.replace(DockSettings(), ingest_unknown_devices=True))
    allowed = DockPolicy(allowing).decide(device(serial="STRANGER"), None)
    assert (allowed.ingest, allowed.profile) == (True, "dcim")
    assert "unassigned" in allowed.reason


def test_retired_recorder_and_unreadable_filesystem_are_refused(tmp_path):
    policy = DockPolicy(Settings(home=tmp_path))
    retired = policy.decide(device(), recorder(retired_at="2026-06-01T00:00:00.000000Z"))
    assert not retired.ingest and "retired" in retired.reason
    ntfs = policy.decide(device(fs_type="ntfs"), recorder(profile="dcim"))
    assert not ntfs.ingest and "ntfs" in ntfs.reason
