"""Fixtures for the docking station: real FAT32/exFAT/ext4 images on loop devices,
recorders described to umockdev, and the daemon as a real process.

The suite runs under ``umockdev-wrapper`` (make test does that): udev is
simulated, everything else (loop devices, FUSE mounts, the kernel) is real.
umockdev's preload library must not reach losetup or mount helpers, so host
commands run with it stripped from their environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from custody.config import load_settings
from custody.devices.events import MediaSource
from custody.ingestd.dock import DockSession
from custody.vault import Vault
from custody.vault.timestamps import to_text
from tests.simulated import SimulatedRecorder

HOST_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
MiB = 1 << 20


def host(*command: str | os.PathLike, zone: str | None = None) -> str:
    """Run a host command without umockdev's preload; return its stdout; raise on failure.

    ``zone`` sets the command's TZ (what mtools and exfat-fuse take for local time when they write a card).
    """
    env = HOST_ENV if zone is None else {**HOST_ENV, "TZ": zone}
    result = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command[0]} failed: {result.stderr.strip()}"
    return result.stdout


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tree_size(tree: Path) -> int:
    return sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())


def fat_image(image: Path, tree: Path, label: str = "BODYCAM", zone: str | None = None) -> Path:
    """Write a FAT32 image holding ``tree`` (filled with mtools, never mounted).

    The files keep their mtimes, written as local time of ``zone`` (as a recorder's clock would).
    """
    size = max(64 * MiB, int(tree_size(tree) * 1.1) + 48 * MiB)
    host("truncate", "-s", str(size), image)
    host("mkfs.vfat", "-F", "32", "-n", label, image)
    entries = sorted(tree.iterdir())
    if entries:
        host("mcopy", "-s", "-m", "-i", image, *entries, "::/", zone=zone)
    return image


def exfat_image(image: Path, tree: Path, label: str = "BODYCAM", zone: str | None = None) -> Path:
    """Write an exFAT image holding ``tree`` (through a read-write exfat-fuse mount).

    exfat-fuse writes each mtime as local time of ``zone`` with that zone's UTC offset.
    """
    size = max(64 * MiB, int(tree_size(tree) * 1.1) + 32 * MiB)
    host("truncate", "-s", str(size), image)
    host("mkfs.exfat", "-L", label, image)
    device = host("losetup", "--find", "--show", image).strip()
    mountpoint = Path(tempfile.mkdtemp(prefix="exfat-fill-"))
    try:
        host("mount.exfat-fuse", device, mountpoint, zone=zone)
        try:
            for entry in tree.iterdir():
                host("cp", "-r", "--preserve=timestamps", entry, mountpoint)
        finally:
            host("umount", mountpoint)
    finally:
        host("losetup", "-d", device)
        mountpoint.rmdir()
    return image


def ext4_image(image: Path, tree: Path, size: int = 256 * MiB) -> Path:
    """Write an ext4 image holding ``tree`` (symlinks and sparse files kept)."""
    host("truncate", "-s", str(size), image)
    host("mkfs.ext4", "-q", "-d", tree, image)
    return image


@contextlib.contextmanager
def loop_device(image: Path, read_only: bool = True):
    """Attach ``image`` to a free loop device; detach afterwards."""
    args = ["losetup", "--find", "--show"] + (["--read-only"] if read_only else []) + [str(image)]
    device = host(*args).strip()
    try:
        yield device
    finally:
        for _attempt in range(50):
            if subprocess.run(["losetup", "-d", device], env=HOST_ENV, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


class FakeRecorder(SimulatedRecorder):
    """A simulated recorder with a sysfs path of its own (one testbed serves the whole run)."""

    _numbers = iter(range(1, 1000))

    def __init__(self, serial: str, devnode: str, fs_type: str, label: str = "BODYCAM"):
        super().__init__(serial, devnode, fs_type, label, number=next(FakeRecorder._numbers))


@pytest.fixture(scope="session")
def testbed():
    """The run's umockdev testbed (the suite must run under umockdev-wrapper).

    One per run: a second testbed in the same process does not deliver
    uevents. Each FakeRecorder has its own sysfs path, so tests do not meet.
    """
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    bed = UMockdev.Testbed.new()
    if "libumockdev-preload" not in os.environ.get("LD_PRELOAD", "") or not UMockdev.in_mock_environment():
        pytest.fail("the docking tests need umockdev: run them with 'make test' (under umockdev-wrapper)")
    yield bed  # umockdev removes its folder when the testbed is finalised


def wait_for(condition, what: str, timeout: float = 120.0, interval: float = 0.05):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` (a hang guard, not a speed limit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


class DaemonProcess:
    """`custody daemon` as a real process, seeing the test's umockdev testbed."""

    running: ClassVar[list[DaemonProcess]] = []

    def __init__(self, home: Path, testbed, log_path: Path, extra_env: dict | None = None) -> None:
        env = dict(os.environ)
        env["UMOCKDEV_DIR"] = testbed.get_root_dir()
        env.update(extra_env or {})
        self.home = home
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "custody", "--home", str(home), "daemon"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        DaemonProcess.running.append(self)
        wait_for(self._ready, "the daemon to start")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the daemon exited {self.process.returncode} at start:\n{self.log()}")
        status = self.status()
        return bool(status and status.get("pid") == self.process.pid and status.get("running"))

    def status(self) -> dict | None:
        try:
            return json.loads((self.home / "run/status.json").read_text())
        except (OSError, ValueError):
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test():
    """A failed test must not leave its daemon (and that daemon's mounts) to the next one."""
    yield
    while DaemonProcess.running:
        daemon = DaemonProcess.running.pop()
        if daemon.process.poll() is None:
            daemon.process.send_signal(signal.SIGTERM)
            try:
                daemon.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()


def mounts_under(root: Path) -> list[str]:
    real = os.path.realpath(root)
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if line.split()[4].startswith(real + "/")]


def corrupt_fat_cluster(image: Path, path: str, cluster_index: int) -> None:
    """Mark the ``cluster_index``-th cluster of ``path`` bad in both FATs, so reading it fails part way."""
    import re
    import struct

    chain = host("mshowfat", "-i", image, f"::{path}")
    first = int(re.search(r"<(\d+)", chain).group(1))
    with open(image, "r+b") as disk:
        boot = disk.read(512)
        bytes_per_sector = struct.unpack_from("<H", boot, 11)[0]
        reserved = struct.unpack_from("<H", boot, 14)[0]
        fats = boot[16]
        fat_sectors = struct.unpack_from("<I", boot, 36)[0]
        for copy in range(fats):
            offset = (reserved + copy * fat_sectors) * bytes_per_sector + (first + cluster_index - 1) * 4
            disk.seek(offset)
            disk.write(struct.pack("<I", 0x0FFFFFF7))


def dock(home: Path, root: Path, serial: str, profile: str, wipe: bool = False) -> DockSession:
    """Run one dock session of ``root`` as recorder ``serial``, as the daemon does.

    With ``wipe`` the session then wipes ``root`` (a plain folder: writable
    already) by its profile's rule; the count is in ``session.wiped``.
    """
    settings = load_settings(home)
    docked_at = datetime.now(UTC)
    with Vault(settings, "custody-daemon", writer=True) as vault:
        session_id = vault.registry.open_dock_session(serial, str(root), profile, to_text(docked_at), {})
        source = MediaSource(root=root, serial=serial, profile_name=profile, kind="usb")
        session = DockSession(vault, source, settings, session_id, docked_at)
        for task in session.discover(session.summary):
            session.process(task, session.summary)
        session.wiped = session.wipe(root) if wipe else 0
        vault.registry.close_dock_session(session_id, "done", session.counts(), session.errors)
    return session
