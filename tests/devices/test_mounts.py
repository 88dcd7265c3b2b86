"""Read-only mounts through the kernel or a FUSE helper, and their removal."""

from __future__ import annotations

import os
import subprocess

import pytest

from custody.devices.events import DeviceIdentity
from custody.devices.mounts import Mounter, MountFailed, helper_pids, mount_options
from tests.docking import HOST_ENV, exfat_image, ext4_image, fat_image, loop_device, mounts_under


@pytest.fixture
def volume(tmp_path):
    root = tmp_path / "volume"
    (root / "DCIM").mkdir(parents=True)
    (root / "DCIM" / "CLIP.MP4").write_bytes(b"footage" * 1000)
    return root


@pytest.mark.parametrize("filesystem", ["vfat", "exfat", "ext4"])
def test_mount_is_read_only_nosuid_nodev_noexec_and_leaves_nothing(filesystem, tmp_path, volume):
    build = {"vfat": fat_image, "exfat": exfat_image, "ext4": ext4_image}[filesystem]
    image = build(tmp_path / "card.img", volume)
    mounter = Mounter(tmp_path / "mounts")
    assert oct(os.stat(tmp_path / "mounts").st_mode & 0o777) == "0o700"
    with loop_device(image) as device:
        mount = mounter.mount(
            DeviceIdentity(syspath="/sys/x", devnode=device, serial="S1", fs_type=filesystem)
        )
        assert mount.via == (
            "kernel" if filesystem == "ext4" else {"vfat": "fusefat", "exfat": "mount.exfat-fuse"}[filesystem]
        )
        assert {"ro", "nosuid", "nodev", "noexec"} <= mount_options(mount.mountpoint)
        assert (mount.mountpoint / "DCIM" / "CLIP.MP4").read_bytes() == b"footage" * 1000
        with pytest.raises(OSError):
            (mount.mountpoint / "DCIM" / "NEW.MP4").write_bytes(b"x")
        mounter.unmount(mount.mountpoint)
        assert mounts_under(tmp_path / "mounts") == []
        assert not mount.mountpoint.exists()
        assert helper_pids(mount.mountpoint) == []


def test_unsupported_filesystem_is_refused_and_nothing_is_left(tmp_path):
    mounter = Mounter(tmp_path / "mounts")
    with pytest.raises(MountFailed, match="filesystem 'hfsplus' is not supported"):
        mounter.mount(DeviceIdentity(syspath="/sys/x", devnode="/dev/null", serial="S1", fs_type="hfsplus"))
    assert list((tmp_path / "mounts").iterdir()) == []


def test_a_mount_left_by_a_killed_process_is_found_and_removed(tmp_path, volume):
    image = fat_image(tmp_path / "card.img", volume)
    leftover = tmp_path / "mounts" / "S1-loopX"
    leftover.mkdir(parents=True)
    with loop_device(image) as device:
        subprocess.run(
            ["fusefat", "-o", "ro", device, str(leftover)], env=HOST_ENV, check=True, capture_output=True
        )
        assert mounts_under(tmp_path / "mounts") == [str(leftover)]
        removed = Mounter(tmp_path / "mounts").clean_stale()
        assert [str(p) for p in removed] == [str(leftover)]
        assert mounts_under(tmp_path / "mounts") == []
        assert not leftover.exists()
