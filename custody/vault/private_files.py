"""Files this process writes for itself, where nobody else can redirect them.

The daemon runs as root. A file it writes through a path (``open(path, "w")``)
follows any symbolic link planted there, and a folder another user may write
to lets that user plant one: a custodian once had the daemon's retention
report overwrite the master key that way. So every file written here is
created ``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to a folder descriptor, in a
folder owned by this process's user that no one else may write to, and put in
place by a rename inside that same folder descriptor.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from custody.errors import CustodyError


class UnsafeFolder(CustodyError):
    """cannot write in {folder}: {why}"""

    exit_code = 2


def open_private_folder(folder: Path, create: bool = True) -> int:
    """Return a descriptor of ``folder`` (made 0700 when missing) after checking it is ours alone.

    Raise UnsafeFolder when it is a symbolic link, not a folder, owned by
    another user, or writable by group or others; OSError when it cannot be
    made or opened.
    """
    if create:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700, parents=True)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if folder.is_symlink():
            raise UnsafeFolder(folder=folder, why="it is a symbolic link") from exc
        raise
    facts = os.fstat(fd)
    problem = None
    if facts.st_uid != os.geteuid():
        problem = f"it belongs to uid {facts.st_uid}, not to this process (uid {os.geteuid()})"
    elif facts.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"others may write to it (mode {stat.S_IMODE(facts.st_mode):o}): make it 0700 or 0750"
    if problem is not None:
        os.close(fd)
        raise UnsafeFolder(folder=folder, why=problem)
    return fd


def write_private_file(folder: Path, name: str, data: bytes, mode: int = 0o600) -> Path:
    """Write ``data`` as ``folder/name`` atomically, never through a link; return the path.

    A new partial file is created exclusively (a leftover or planted one is
    removed first, never followed), fsynced, and renamed over ``name``
    inside the same folder descriptor. Raise UnsafeFolder (see
    open_private_folder), ValueError for a name with a slash, OSError.
    """
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"not a plain file name: {name!r}")
    dir_fd = open_private_folder(folder)
    partial = f".{name}.partial"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=dir_fd)  # removes a planted link itself, not what it names
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(partial, flags, mode, dir_fd=dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial, dir_fd=dir_fd)
        raise
    finally:
        os.close(dir_fd)
    return folder / name
