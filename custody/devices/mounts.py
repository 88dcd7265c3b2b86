"""Read-only mounts of recorders, in a private folder, and their clean removal.

A filesystem the kernel supports is mounted by the kernel; FAT and exFAT on
kernels without them (this project's CI machines among them) go through the
FUSE helper for the filesystem. Either way the mount ends up ``ro, nosuid,
nodev, noexec``: helpers that drop an option get it re-applied by a bind
remount, and a mount that is not read-only is torn down again, never used.

Every mount lives under one root folder (0700). Whatever is found mounted
there at start-up was left by a daemon that died, and is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from custody.devices.events import DeviceIdentity
from custody.errors import CustodyError, Said

log = logging.getLogger(__name__)

MOUNT_OPTIONS = "ro,nosuid,nodev,noexec"
# Only for wiping a recorder after its files are safe in the vault.
WRITABLE_OPTIONS = "rw,nosuid,nodev,noexec"
# FUSE helpers per filesystem type (udev's ID_FS_TYPE), used when the kernel
# lacks the type: the command, and how it spells read-only and read-write.
FUSE_HELPERS: dict[str, tuple[str, str, str]] = {
    "vfat": ("fusefat", "ro", "rw+"),  # fusefat refuses plain "rw"
    "exfat": ("mount.exfat-fuse", "ro", "rw"),
}
# udev's names -> the kernel's names in /proc/filesystems
KERNEL_NAMES = {"vfat": "vfat", "exfat": "exfat", "ntfs": "ntfs3", "ext4": "ext4", "iso9660": "iso9660"}
MOUNT_TIMEOUT_SECONDS = 15.0


class MountFailed(CustodyError):
    """cannot mount {device} read-only at {mountpoint}: {reason}"""

    exit_code = 8


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: Path
    fs_type: str
    via: str  # "kernel" or the FUSE helper's name


class Mounter:
    """Mounts devices read-only under ``root`` and removes those mounts."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        self.root = Path(os.path.realpath(root))

    def mount(self, identity: DeviceIdentity, writable: bool = False) -> Mount:
        """Mount the device read-only (nosuid, nodev, noexec) in a new private folder.

        ``writable`` mounts it read-write instead (still nosuid, nodev,
        noexec): only for wiping files already safe in the vault. Raise
        MountFailed (nothing left mounted or created) when the filesystem is
        unsupported, the helper fails, or the result lacks an option.
        """
        options = WRITABLE_OPTIONS if writable else MOUNT_OPTIONS
        device = identity.devnode
        mountpoint = self.root / _folder_name(identity)
        if mountpoint.exists():
            self.unmount(mountpoint)
        mountpoint.mkdir(mode=0o700)
        fs_type = identity.fs_type
        try:
            if _kernel_supports(fs_type):
                via = "kernel"
                _run(
                    [
                        "mount",
                        "-t",
                        KERNEL_NAMES.get(fs_type, fs_type),
                        "-o",
                        MOUNT_OPTIONS,
                        device,
                        str(mountpoint),
                    ]
                )
            elif fs_type in FUSE_HELPERS:
                via, read_only, read_write = FUSE_HELPERS[fs_type]
                access = read_write if writable else read_only
                _run([via, "-o", f"{access},nosuid,nodev,noexec", device, str(mountpoint)])
                _wait_for_mount(device, mountpoint)
                # Some helpers drop options (exfat-fuse drops noexec): enforce them at the VFS.
                _run(["mount", "-o", f"remount,bind,{options}", str(mountpoint)])
            else:
                raise MountFailed(
                    device=device,
                    mountpoint=mountpoint,
                    reason=Said(
                        "filesystem {filesystem!r} is not supported", filesystem=fs_type or "unknown"
                    ),
                )
            missing = set(options.split(",")) - mount_options(mountpoint)
            if missing:
                raise MountFailed(
                    device=device,
                    mountpoint=mountpoint,
                    reason=Said("mount lacks {known}", known=", ".join(sorted(missing))),
                )
        except BaseException:
            self.unmount(mountpoint)
            raise
        log.info(
            "mounted %s %s at %s via %s", device, "read-write" if writable else "read-only", mountpoint, via
        )
        return Mount(device, mountpoint, fs_type, via)

    def unmount(self, mountpoint: Path) -> None:
        """Remove a mount and its folder. The FUSE helper is stopped first, so reads in flight fail now.

        Never raises: what cannot be removed is logged and found again at the next start.
        """
        for pid in helper_pids(mountpoint):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for _attempt in range(50):
            if mountpoint not in mounted_under(self.root):
                break
            result = subprocess.run(
                ["umount", "--lazy", str(mountpoint)], env=_helper_env(), capture_output=True, text=True
            )
            if result.returncode != 0:
                time.sleep(0.1)
        for pid in helper_pids(mountpoint):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # A helper that was told to stop may take a moment to go: wait, so that
        # whoever unmounted can rely on no helper holding the device any more.
        for _attempt in range(100):
            if not helper_pids(mountpoint):
                break
            time.sleep(0.02)
        try:
            mountpoint.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove mount folder %s: %s", mountpoint, exc.strerror)

    def clean_stale(self) -> list[Path]:
        """Remove every mount and leftover folder under the root (a killed daemon's); return them."""
        stale = mounted_under(self.root)
        for mountpoint in sorted(stale, key=lambda p: len(p.parts), reverse=True):
            log.warning("removing mount left by an earlier run: %s", mountpoint)
            self.unmount(mountpoint)
        for leftover in self.root.iterdir():
            if leftover.is_dir() and leftover not in stale:
                with contextlib.suppress(OSError):
                    leftover.rmdir()
        return stale

    def mounts(self) -> list[Path]:
        return mounted_under(self.root)


def mounted_under(root: Path) -> list[Path]:
    """Return the mountpoints at or below ``root``, from /proc/self/mountinfo."""
    root_text = os.path.realpath(root)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as mountinfo:
        for line in mountinfo:
            point = _unescape(line.split()[4])
            if point.startswith(root_text + "/"):
                found.append(Path(point))
    return found


def mount_options(mountpoint: Path) -> set[str]:
    """Return the per-mount options (ro, nosuid, ...) of the mount at ``mountpoint``."""
    target = os.path.realpath(mountpoint)
    options: set[str] = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            if _unescape(fields[4]) == target:
                options = set(fields[5].split(","))  # the last (topmost) mount wins
    return options


def helper_pids(mountpoint: Path) -> list[int]:
    """Return the pids of processes whose command line names ``mountpoint`` (its FUSE helper)."""
    wanted = os.fsencode(os.path.realpath(mountpoint))
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                arguments = cmdline.read().split(b"\0")
        except OSError:
            continue
        if wanted in arguments:
            pids.append(int(entry))
    return pids


def _kernel_supports(fs_type: str) -> bool:
    name = KERNEL_NAMES.get(fs_type, fs_type)
    try:
        with open("/proc/filesystems", encoding="ascii") as filesystems:
            return any(line.split()[-1] == name for line in filesystems if line.strip())
    except OSError:
        return False


def _wait_for_mount(device: str, mountpoint: Path) -> None:
    deadline = time.monotonic() + MOUNT_TIMEOUT_SECONDS
    while Path(os.path.realpath(mountpoint)) not in mounted_under(mountpoint.parent):
        if time.monotonic() > deadline:
            raise MountFailed(
                device="?", mountpoint=mountpoint, reason="the FUSE helper did not mount in time"
            )
        time.sleep(0.05)


def _run(command: list[str]) -> None:
    try:
        result = subprocess.run(
            command, env=_helper_env(), capture_output=True, text=True, timeout=MOUNT_TIMEOUT_SECONDS
        )
    except FileNotFoundError:
        raise MountFailed(
            device=command[-2],
            mountpoint=command[-1],
            reason=Said("{tool} is not installed", tool=command[0]),
        ) from None
    except subprocess.TimeoutExpired:
        raise MountFailed(
            device=command[-2], mountpoint=command[-1], reason=Said("{tool} timed out", tool=command[0])
        ) from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise MountFailed(
            device=command[-2],
            mountpoint=command[-1],
            reason=Said(
                "{tool} exited {returncode}: {message}",
                tool=command[0],
                returncode=result.returncode,
                message=message[-1] if message else "no message",
            ),
        )


def _helper_env() -> dict[str, str]:
    # Never hand a preload library (a test harness's, or anyone's) to a privileged mount helper.
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}


def _folder_name(identity: DeviceIdentity) -> str:
    raw = f"{identity.serial or 'device'}-{os.path.basename(identity.devnode) or 'dev'}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw)[:100]


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)
