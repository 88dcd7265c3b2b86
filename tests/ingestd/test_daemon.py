"""The docking daemon end to end: umockdev hotplug, real images on loop devices, FUSE mounts."""

from __future__ import annotations

import json
import shutil
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custody.vault.timestamps import to_text
from tests.docking import (
    DaemonProcess,
    FakeRecorder,
    exfat_image,
    fat_image,
    loop_device,
    mounts_under,
    sha256_file,
    wait_for,
)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
SERIAL = "BWC0042"
BADGE = "031245"

pytestmark = pytest.mark.slow


def recorder_tree(root: Path, clip_library: Path, recorded: datetime) -> dict[str, Path]:
    """A recorder's volume: clips named RECORDER_OFFICER_LOCALTIME.MP4 (bwc-badge), one minute apart."""
    dcim = root / "DCIM" / "100BWC"
    dcim.mkdir(parents=True)
    files = {}
    for n, clip in enumerate(sorted(clip_library.glob("CLIP*.MP4"))):
        local = (recorded + timedelta(minutes=n)).astimezone(SHANGHAI)
        name = f"{SERIAL}_{BADGE}_{local:%Y%m%d%H%M%S}.MP4"
        shutil.copy(clip, dcim / name)
        files[name] = dcim / name
    (root / "DCIM" / "100BWC" / "NOTES.TXT").write_text("not footage")
    return files


def register(custody, profile: str = "bwc-badge") -> None:
    custody("init")
    custody("officer", "add", BADGE, "--name", "Wang Li", "--unit", "Traffic 2")
    custody("recorder", "add", SERIAL, "--officer", BADGE, "--from", "2020-01-01", "--profile", profile)


def items(custody, *args) -> list[dict]:
    return json.loads(custody("ls", "--json", *args).stdout)


def sessions(custody) -> list[dict]:
    return json.loads(custody("status", "--json").stdout)["sessions"]


def finished_session(custody, count: int = 1):
    def check():
        done = [s for s in sessions(custody) if s["state"] not in ("pulling",)]
        return done if len(done) >= count else None

    return check


@pytest.mark.parametrize("filesystem", ["vfat", "exfat"])
def test_daemon_pulls_every_file_of_a_docked_recorder_read_only(
    filesystem, tmp_path, home, custody, testbed, clip_library
):
    recorded = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    files = recorder_tree(tmp_path / "volume", clip_library, recorded)
    build = fat_image if filesystem == "vfat" else exfat_image
    image = build(tmp_path / "recorder.img", tmp_path / "volume")
    image_sha_before = sha256_file(image)
    register(custody)
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image) as device:
        recorder = FakeRecorder(SERIAL, device, filesystem)
        recorder.plug(testbed)
        wait_for(finished_session(custody), "the dock session to finish")
        pulled = items(custody)
        recorder.unplug(testbed)
        assert daemon.stop() == 0, daemon.log()
    assert mounts_under(home) == [], "a mount was left behind"
    assert sha256_file(image) == image_sha_before, "the recorder image changed"

    assert sorted(i["name"] for i in pulled) == sorted(files)
    for item in pulled:
        assert item["sha256"] == sha256_file(files[item["name"]])
        assert item["recorder"] == SERIAL
        assert item["credited_officer"] == BADGE
        assert item["tags"]["officer"] == BADGE
        assert item["late"] is False and item["clock_suspect"] is False
        # The name carries Shanghai local time; the vault stores UTC.
        n = sorted(files).index(item["name"])
        assert item["recorded_start"] == to_text(recorded + timedelta(minutes=n))
        assert item["recorded_source"] == "filename"
        assert item["recorded_end"] > item["recorded_start"]  # the clip's duration from ffprobe
    [session] = sessions(custody)
    assert (session["state"], session["files_found"], session["files_new"]) == ("done", 3, 3)
    assert session["undocked_at"] is not None
