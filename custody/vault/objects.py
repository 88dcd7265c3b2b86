"""Content-addressed object files: where sealed objects live and how they get there.

An object is stored at ``objects/sha256/ab/cd/<sha256>``, named by the SHA-256
of the original bytes. Writing is atomic: seal into ``objects/staging/`` on the
same filesystem, fsync the file, rename it into place, fsync the directory. A
crash leaves either a staging file (swept at the next open) or a whole object.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from custody.vault.keys import MasterKey
from custody.vault.sealing import ObjectDamaged, ProgressCallback, seal, sealed_size, unseal

_HEX = frozenset("0123456789abcdef")
_PAGE = os.sysconf("SC_PAGE_SIZE")
# How much is written between fdatasyncs that let the read-back follow the writer.
FLUSH_EVERY = 64 << 20


@dataclass(frozen=True)
class StagedObject:
    """A sealed object written and fsynced in staging, not yet in the store."""

    path: Path
    sha256: str
    size: int


class ObjectStore:
    """The object files under ``root`` (``<home>/objects``)."""

    def __init__(self, root: Path, master: MasterKey) -> None:
        self.root = root
        self.master = master
        self.staging = root / "staging"
        self.store = root / "sha256"

    @staticmethod
    def create_layout(root: Path) -> None:
        """Create an empty object store at ``root``."""
        for directory in (root, root / "staging", root / "sha256"):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.store / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def stage(
        self,
        source: BinaryIO,
        expected_size: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> StagedObject:
        """Seal ``source`` into a staging file, make it durable, read it back from disk; return it.

        The read-back follows the writer: every FLUSH_EVERY bytes the file is
        fdatasync'ed and those pages evicted from the page cache, and a second
        thread reads them back from disk, authenticates and re-hashes them
        while sealing goes on. So the copy checked is the disk's, at little
        extra time. Raise ObjectDamaged when the read-back disagrees; on any
        error the staging file is removed and the error propagates.
        """
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="seal-", suffix=".part")
        path = Path(name)
        readback = _ReadBehindWriter(path)
        checker = threading.Thread(target=readback.check, args=(self.master,), name="custody-readback")
        try:
            if expected_size:
                # Allocating up front makes large writes several times faster on ext4.
                os.posix_fallocate(fd, 0, sealed_size(expected_size))
            checker.start()
            flushed = 0

            def make_durable(written: int) -> None:
                nonlocal flushed
                if written - flushed >= FLUSH_EVERY:
                    os.fdatasync(fd)
                    readback.made_durable(written)
                    flushed = written

            with open(fd, "wb", closefd=False) as destination:
                sealed = seal(source, destination, self.master, expected_size, on_progress, make_durable)
                destination.flush()
                os.ftruncate(fd, destination.tell())
                os.fsync(fd)
            readback.finished(sealed.sha256)
            checker.join()
            readback.raise_problem(sealed.sha256)
        except BaseException:
            readback.abort()
            if checker.is_alive():
                checker.join()
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        return StagedObject(path=path, sha256=sealed.sha256, size=sealed.size)

    def store_staged(self, staged: StagedObject) -> Path:
        """Move a staged object to its final name atomically and make that durable.

        An object already stored under the same name is replaced: both hold the
        same plaintext, and the new one was just written, fsynced and read back.
        """
        final = self.path_for(staged.sha256)
        self._make_durable_dirs(final.parent)
        os.replace(staged.path, final)
        _fsync_directory(final.parent)
        return final

    def discard(self, staged: StagedObject) -> None:
        staged.path.unlink(missing_ok=True)

    def check(
        self,
        sha256: str,
        evict_cache: bool = False,
        on_progress: ProgressCallback | None = None,
        sink: BinaryIO | None = None,
    ) -> int:
        """Decrypt, authenticate and re-hash the stored object; return its plaintext size.

        With ``evict_cache`` the object's pages are dropped from the page cache
        first, so the disk's copy is what gets checked. With ``sink`` the
        plaintext is also written there as it is checked (bytes already written
        stay written when a later segment fails). Raise ObjectDamaged naming the
        object (FileNotFoundError when it is absent).
        """
        return verify_plaintext(self.read(sha256, evict_cache=evict_cache), sha256, on_progress, sink)

    def read(self, sha256: str, evict_cache: bool = False) -> Iterator[bytes]:
        """Yield the authenticated plaintext of an object (see sealing.unseal).

        The caller hashes what it reads when it needs the name checked too.
        Raise FileNotFoundError when the object is absent, ObjectDamaged when it
        fails authentication.
        """
        with open(self.path_for(sha256), "rb", buffering=0) as source:
            if evict_cache:
                os.posix_fadvise(source.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            yield from unseal(source, self.master, sha256)

    def sweep_staging(self) -> int:
        """Remove staging files left by an interrupted write; return how many."""
        removed = 0
        for leftover in self.staging.glob("seal-*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def staging_files(self) -> list[Path]:
        return sorted(self.staging.glob("seal-*.part"))

    def names(self) -> Iterator[str]:
        """Yield the name (sha256) of every object file, and any stray file's name as found."""
        for top in sorted(self.store.iterdir()):
            for middle in sorted(top.iterdir()):
                for entry in sorted(middle.iterdir()):
                    yield entry.name

    @staticmethod
    def is_object_name(name: str) -> bool:
        return len(name) == 64 and set(name) <= _HEX

    def _make_durable_dirs(self, directory: Path) -> None:
        missing = []
        current = directory
        while not current.exists():
            missing.append(current)
            current = current.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):
                new.mkdir(mode=0o700)
            _fsync_directory(new.parent)


def verify_plaintext(
    chunks: Iterable[bytes],
    sha256: str | Callable[[], str],
    on_progress: ProgressCallback | None = None,
    sink: BinaryIO | None = None,
) -> int:
    """Consume plaintext ``chunks`` (optionally copying them to ``sink``); return their size.

    ``sha256`` is the name they must hash to, or a callable giving it once the
    chunks end. Raise ObjectDamaged when they hash to something else.
    """
    hasher = hashlib.sha256()
    size = 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
        if on_progress:
            on_progress(len(chunk))
    name = sha256 if isinstance(sha256, str) else sha256()
    if hasher.hexdigest() != name:
        raise ObjectDamaged(sha256=name, problem=f"its plaintext hashes to {hasher.hexdigest()}")
    return size


class _ReadBehindWriter(io.RawIOBase):
    """Reads a file that another thread is writing, only where it is already on disk.

    The writer calls made_durable(n) after an fdatasync covering the first n
    bytes; those pages are then clean and are evicted here, so reads go to the
    disk. finished(sha256) after the final fsync releases the rest.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._changed = threading.Condition()
        self._readable_to = 0
        self._evicted_to = 0
        self._done = False
        self._aborted = False
        self._position = 0
        self._sha256: str | None = None
        self._problem: BaseException | None = None

    def readable(self) -> bool:
        return True

    def made_durable(self, size: int) -> None:
        # Only whole pages can be evicted: the page holding byte `size` is
        # still being filled, so reading stops before it until the next round.
        page_start = size - size % _PAGE
        os.posix_fadvise(self._fd, self._evicted_to, page_start - self._evicted_to, os.POSIX_FADV_DONTNEED)
        with self._changed:
            self._evicted_to = self._readable_to = page_start
            self._changed.notify_all()

    def finished(self, sha256: str) -> None:
        os.posix_fadvise(self._fd, self._evicted_to, 0, os.POSIX_FADV_DONTNEED)
        with self._changed:
            self._sha256, self._done = sha256, True
            self._changed.notify_all()

    def abort(self) -> None:
        with self._changed:
            self._aborted = True
            self._changed.notify_all()

    def read(self, size: int = -1) -> bytes:
        # A read of "everything" (size < 0) has to wait for the writer to finish.
        wanted_end = self._position + size if size >= 0 else float("inf")
        with self._changed:
            self._changed.wait_for(lambda: self._aborted or self._done or self._readable_to >= wanted_end)
            if self._aborted:
                raise _WriterAborted
            limit = None if self._done else self._readable_to
        if size < 0:
            size = os.fstat(self._fd).st_size - self._position
        want = size if limit is None else min(size, limit - self._position)
        data = os.pread(self._fd, want, self._position)
        self._position += len(data)
        return data

    def check(self, master: MasterKey) -> None:
        """Thread body: authenticate and re-hash everything read back; keep any problem."""
        try:

            def name() -> str:  # known only once the writer has finished
                return self._sha256 or ""

            verify_plaintext(unseal(self, master, name), name)
        except _WriterAborted:
            pass
        except BaseException as exc:
            self._problem = exc
        finally:
            os.close(self._fd)

    def raise_problem(self, sha256: str) -> None:
        if isinstance(self._problem, ObjectDamaged):
            raise ObjectDamaged(
                sha256=sha256, problem=f"read back from disk, {self._problem.fields['problem']}"
            )
        if self._problem is not None:
            raise self._problem


class _WriterAborted(Exception):
    """The write being read back failed; the reader stops quietly."""


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
