"""New files written for a person (an extract, a disc image, a report), whole or not at all.

The file is written without a name where the filesystem allows it (``O_TMPFILE``): a writer
killed part way, even by SIGKILL, leaves nothing, as the kernel frees an unnamed file with its
last descriptor. It gets its name only once synced, never over a file that exists. Where the
filesystem has no unnamed files (FAT on a USB stick, FUSE, NFS) it is written under a hidden
partial name, removed on any failure the process lives through.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from custody.errors import CustodyError, output_taken


class OutputExists(CustodyError):
    """{path} already exists: custody never overwrites a file; choose another name"""

    exit_code = 5


# What open(O_TMPFILE) says where a filesystem (or an old kernel) has no unnamed files.
_NO_UNNAMED_FILES = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL)


@contextlib.contextmanager
def new_file(out: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``out`` when the block ends without an exception.

    Raise OutputExists when ``out`` exists (before, or by the time it is named); OSError as
    it comes (a missing folder, no permission, a full or read-only disk): nothing is left then.
    """
    out = Path(out)
    if output_taken(out):
        raise OutputExists(path=out)
    folder = os.open(out.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        try:
            fd = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o666, dir_fd=folder)
        except OSError as exc:
            if exc.errno not in _NO_UNNAMED_FILES:
                raise
        else:
            with os.fdopen(fd, "wb") as sink:
                yield sink
                sink.flush()
                os.fsync(sink.fileno())
                try:  # (linkat with AT_SYMLINK_FOLLOW, as a dir_fd makes os.link call it)
                    os.link(f"/proc/self/fd/{sink.fileno()}", out.name, dst_dir_fd=folder)
                except FileExistsError:
                    raise OutputExists(path=out) from None
            return
    finally:
        os.close(folder)
    partial = out.with_name(f".{out.name}.custody-partial-{os.getpid()}")
    try:
        with open(partial, "xb") as sink:
            yield sink
            sink.flush()
            os.fsync(sink.fileno())
        link_without_overwrite(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def link_without_overwrite(source: Path, target: Path) -> None:
    """Give ``source`` the name ``target`` unless ``target`` exists (raise OutputExists)."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise OutputExists(path=target) from None
    except OSError as exc:
        # Filesystems without hard links (FAT on a USB stick): rename after a check.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if target.exists():
            raise OutputExists(path=target) from None
        os.rename(source, target)
