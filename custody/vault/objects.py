"""Content-addressed object files: where sealed objects live and how they get there.

An object is stored at ``objects/sha256/ab/cd/<sha256>``, named by the SHA-256
of the original bytes. Writing is atomic: seal into ``objects/staging/`` on the
same filesystem, fsync the file, rename it into place, fsync the directory. A
crash leaves either a staging file (swept at the next open) or a whole object.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import functools
import hashlib
import io
import mmap
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from custody.errors import CustodyError, Said
from custody.vault.keys import MasterKey
from custody.vault.sealing import (
    ObjectDamaged,
    ProgressCallback,
    SealedStream,
    seal,
    sealed_size,
    unseal,
    unseal_range,
)

_HEX = frozenset("0123456789abcdef")
# The read-back reads the object from disk in blocks of this size, each once
# the writer has passed it (a multiple of the page size, as O_DIRECT needs).
READBACK_BLOCK = 8 << 20
# Buffers of READBACK_BLOCK a large object is written through: one filled by sealing while the
# others are written to the device by a thread of their own.
WRITE_BUFFERS = 3
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class StagedObject:
    """A sealed object written and fsynced in staging, not yet in the store."""

    path: Path
    sha256: str
    size: int
    # Whether the file was fsynced, and read back from the device and authenticated; settle()
    # does what is left for a group before its objects are renamed into place.
    synced: bool = True
    read_back: bool = True


class VaultDiskFull(CustodyError):
    """vault disk full: {what} needs {needed_mb} MB and {free_mb} MB are free, of which {reserve_mb} MB are kept in reserve ([vault] min_free_mb) so the catalog and the audit chain can always commit; nothing of it was kept: free space, and it is tried again"""

    exit_code = 8


# The errors a full filesystem (or a full quota) gives a write.
_FULL = (errno.ENOSPC, errno.EDQUOT)


class ObjectStore:
    """The object files under ``root`` (``<home>/objects``)."""

    DiskFull = VaultDiskFull

    def __init__(self, root: Path, master: MasterKey, direct_io: bool = True, reserve_bytes: int = 0) -> None:
        self.root = root
        self.master = master
        self.direct_io = direct_io
        self.reserve_bytes = reserve_bytes
        self.staging = root / "staging"
        self.store = root / "sha256"

    def free_bytes(self) -> int:
        """Bytes free for this process on the object store's filesystem."""
        facts = os.statvfs(self.staging)
        return facts.f_bavail * facts.f_frsize

    def check_room(self, plaintext_size: int, what: str = "the file") -> None:
        """Return when sealing ``plaintext_size`` bytes leaves the reserve free; raise VaultDiskFull."""
        needed = sealed_size(plaintext_size)
        free = self.free_bytes()
        if free - needed < self.reserve_bytes:
            raise VaultDiskFull(
                what=what,
                needed_mb=_mb(needed),
                free_mb=_mb(free),
                reserve_mb=_mb(self.reserve_bytes),
            )

    def is_full(self) -> bool:
        """Whether the free space is at or below the reserve (nothing new is staged then)."""
        return self.free_bytes() <= self.reserve_bytes

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
        sync: bool = True,
    ) -> StagedObject:
        """Seal ``source`` into a staging file, read it back from disk, fsync it; return it.

        The sealed stream goes to the device in O_DIRECT blocks, and a second
        thread reads each block back from the device (O_DIRECT, never the page
        cache) as soon as it is written, authenticating every segment while
        sealing goes on. Authentication is the whole check: sealing hashes the
        very buffers it encrypts and the last segment's tag covers that
        SHA-256, so a read-back that authenticates holds exactly the bytes the
        name describes (``check`` and ``custody verify`` re-hash as well, as a
        fixity check independent of this code path). Without O_DIRECT (refused by the filesystem, or
        direct_io off) the whole file is read back after the final fsync, its
        cached pages evicted first. Raise ObjectDamaged when the read-back
        disagrees; on any error the staging file is removed (its space given
        back: no descriptor of it stays open) and the error propagates. Raise
        VaultDiskFull before writing when ``expected_size`` would leave less
        than the reserve free, and when the disk fills while writing.

        With ``sync`` False the object is made durable later, with its group
        (``settle``): a large one is read back as it is written but not
        fsynced; one smaller than a read-back block is written through the
        page cache and neither fsynced nor read back yet (``settle`` syncs the
        group's files together, then reads each back from the device).
        """
        self.check_room(expected_size or 0)
        deferred = not sync and expected_size is not None and sealed_size(expected_size) <= READBACK_BLOCK
        with self._staging_file(expected_size) as (fd, path):
            if deferred:
                with open(fd, "wb", closefd=False) as destination:
                    sealed = seal(source, destination, self.master, expected_size, on_progress)
                return StagedObject(path, sealed.sha256, sealed.size, synced=False, read_back=False)
            sealed, synced = self._seal_read_behind(fd, path, source, expected_size, on_progress, sync)
            return StagedObject(path, sealed.sha256, sealed.size, synced=synced)

    @contextlib.contextmanager
    def _staging_file(self, expected_size: int | None) -> Iterator[tuple[int, Path]]:
        """A new staging file (descriptor, path), removed when the block fails; a full disk is
        raised as VaultDiskFull once the file's space is given back."""
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="seal-", suffix=".part")
        path = Path(name)
        try:
            yield fd, path
        except BaseException as exc:
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in _FULL:
                os.close(fd)
                fd = -1
                raise VaultDiskFull(
                    what="the file",
                    needed_mb=_mb(sealed_size(expected_size or 0)),
                    free_mb=_mb(self.free_bytes()),
                    reserve_mb=_mb(self.reserve_bytes),
                ) from exc
            raise
        finally:
            if fd >= 0:
                os.close(fd)

    def _seal_read_behind(
        self,
        fd: int,
        path: Path,
        source: BinaryIO,
        expected_size: int | None,
        on_progress: ProgressCallback | None,
        sync: bool,
    ) -> tuple[SealedStream, bool]:
        """Seal into the staging file ``fd`` in O_DIRECT blocks read back behind the writer (see
        stage); return the sealed stream and whether the file was fsynced."""
        readback = _ReadBehindWriter(path, self.direct_io, _buffer_size(expected_size))
        # A file smaller than one read-back block is read back only once it is whole: in this
        # thread, after the fsync (a thread of its own would only wait, and costs more to start).
        behind = expected_size is None or sealed_size(expected_size) > READBACK_BLOCK
        checker = threading.Thread(target=readback.check, args=(self.master,), name="custody-readback")
        try:
            if expected_size and behind:
                # Allocating up front makes large writes several times faster on ext4.
                os.posix_fallocate(fd, 0, sealed_size(expected_size))
            if behind:
                checker.start()
            destination = _BlockWriter(
                path, self.direct_io, on_block=readback.wrote, buffer_size=_buffer_size(expected_size)
            )
            try:
                sealed = seal(source, destination, self.master, expected_size, on_progress)
                destination.finish()
            finally:
                destination.close()
            synced = sync or not readback.direct
            if synced:  # (without O_DIRECT the read-back needs the pages written out and clean)
                os.fsync(fd)
            readback.finished(sealed.sha256)
            if behind:
                checker.join()
            else:
                readback.check(self.master, prefetch=False)
            readback.raise_problem(sealed.sha256)
        except BaseException:
            readback.abort()
            if checker.is_alive():
                checker.join()
            else:
                readback.release()  # never started: its descriptor would keep the space in use
            raise
        return sealed, synced

    def settle(self, group: list[StagedObject]) -> list[StagedObject | ObjectDamaged]:
        """Make a group of staged objects durable and read back those not yet read back; return,
        in order, each object (now synced and read back) or the ObjectDamaged its read-back raised
        (that object's staging file is removed). Syncing is done once for the group (see
        _make_durable); each read-back comes from the device, the page cache bypassed or evicted.
        Raise OSError when the sync fails (nothing is settled then)."""
        self._make_durable([staged.path for staged in group if not staged.synced])
        settled: list[StagedObject | ObjectDamaged] = []
        for staged in group:
            if not staged.read_back:
                reader = _ReadBehindWriter(staged.path, self.direct_io, _buffer_size(staged.size))
                reader.finished(staged.sha256)
                reader.check(self.master, prefetch=False)
                try:
                    reader.raise_problem(staged.sha256)
                except ObjectDamaged as exc:
                    self.discard(staged)
                    settled.append(exc)
                    continue
            settled.append(dataclasses.replace(staged, synced=True, read_back=True))
        return settled

    def store_staged(self, staged: StagedObject) -> Path:
        """Move a staged object to its final name atomically and make that durable (see store_staged_group)."""
        return self.store_staged_group([staged])[0]

    def store_staged_group(self, group: list[StagedObject]) -> list[Path]:
        """Move staged objects to their final names atomically; make that durable; return the names.

        Objects not yet settled are settled first (see ``settle``; raise
        ObjectDamaged, nothing renamed, when one's read-back fails). All are renamed, then the renames are made durable, once for
        the group: a group of a few files fsyncs each folder; a larger one
        (each object usually goes to a folder of its own) syncs the filesystem
        once instead. An object already stored under the same name is
        replaced: both hold the same plaintext, and the new one was just
        written and read back.
        """
        if not all(staged.synced and staged.read_back for staged in group):
            settled = self.settle(group)
            for outcome in settled:
                if isinstance(outcome, ObjectDamaged):
                    raise outcome
        finals = [self.path_for(staged.sha256) for staged in group]
        touched: list[Path] = []  # folders whose entries changed: new folders' parents, then targets
        for folder in dict.fromkeys(final.parent for final in finals):
            touched.extend(self._make_dirs(folder))
            touched.append(folder)
        for staged, final in zip(group, finals, strict=True):
            os.replace(staged.path, final)
        self._make_durable(list(dict.fromkeys(touched)))
        return finals

    def _make_durable(self, paths: list[Path]) -> None:
        """fsync each of ``paths`` (files or folders on the store's filesystem), or, when there are
        more than SYNC_EACH_AT_MOST, the whole filesystem once (syncfs: one journal commit)."""
        if len(paths) > SYNC_EACH_AT_MOST and _syncfs(self.staging):
            return
        for path in paths:
            _fsync_path(path)

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

    def read_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        """Yield plaintext bytes ``start`` to ``end`` (inclusive) of an object, authenticated segment
        by segment (see sealing.unseal_range). Raise FileNotFoundError, ObjectDamaged."""
        with open(self.path_for(sha256), "rb", buffering=0) as source:
            yield from unseal_range(source, self.master, sha256, start, end)

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

    def _make_dirs(self, directory: Path) -> list[Path]:
        """Create the object folder ``directory`` (``<store>/ab/cd``) and its parent if missing (not
        yet durable); return the folders whose entries changed (each new folder's parent), for the
        caller to make durable. Tried with mkdir, not looked up first: most folders are new."""
        changed = []
        for folder in (directory.parent, directory):
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                continue
            changed.append(folder.parent)
        return changed


def keep_stream_buffers_on_heap() -> bool:
    """Tune glibc's allocator for streaming objects; return whether it applied.

    Sealing allocates a few 1 MiB buffers per segment. glibc serves those
    with a fresh mmap each time, so every page is faulted in and zeroed again:
    a quarter of a million faults per 2 GiB object. Raising the mmap threshold
    makes freed buffers reusable from the heap (measured here: 2 GiB staged in
    3.4 s instead of 4.1 s, peak RSS unchanged). Process-wide, so the
    composition root calls it once. No effect (False) where libc is not glibc.
    """
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc = _glibc()
    try:
        return bool(libc.mallopt(m_mmap_threshold, 64 << 20) and libc.mallopt(m_trim_threshold, 128 << 20))
    except AttributeError:  # (no libc, or not glibc)
        return False


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Cap glibc's malloc arenas for a long-running process with many threads; return whether it applied.

    The daemon answers each API request in its own thread; glibc gives
    threads their own arenas (up to 8 per core), each keeping what it freed
    up to the trim threshold, so memory climbs with every new arena. One is
    enough: Python allocates under its GIL, so threads hardly contend for
    malloc, and only the main arena gives its free top back to the system
    when ``release_freed_memory`` asks (glibc trims a thread arena's top only
    on free, above a threshold that grows with the largest buffer freed). In a
    30-minute soak with two arenas, the second one's resident part swung
    between 30 and 56 MiB and raised the daemon's floor by steps of 20-30 MiB
    while the main heap went back to 25 MiB at each trim. No effect (False)
    where libc is not glibc.
    """
    m_arena_max = -8
    try:
        return bool(_glibc().mallopt(m_arena_max, arenas))
    except AttributeError:
        return False


def release_freed_memory() -> None:
    """Hand what malloc holds freed back to the system (glibc's malloc_trim; elsewhere nothing).

    Freed memory otherwise stays with the process up to each arena's high-water
    mark: a daemon answering bursts of requests would look as if it grew.
    """
    with contextlib.suppress(AttributeError):
        _glibc().malloc_trim(0)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library, loaded once, to tune glibc's allocator; None where there is no libc.so.6."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


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
        raise ObjectDamaged(
            sha256=name, problem=Said("its plaintext hashes to {digest}", digest=hasher.hexdigest())
        )
    return size


class _BlockWriter(io.RawIOBase):
    """Writes a new file in aligned blocks with O_DIRECT, straight to the device.

    Bypassing the page cache saves a copy and lets the read-back follow right
    behind: on_block(n) is called once the first n bytes are on the device.
    A file of more than one block is written by a thread of its own, a block
    at a time, while the caller fills the next buffer (WRITE_BUFFERS in all):
    sealing does not wait for the device. The unaligned tail is written through
    the page cache by finish(), which also cuts off any preallocated space.
    Where O_DIRECT is refused, every write goes through the page cache and
    on_block is never called. An error of the writing thread is raised by the
    next write() or finish().
    """

    def __init__(
        self, path: Path, direct: bool, on_block: Callable[[int], None], buffer_size: int = READBACK_BLOCK
    ) -> None:
        super().__init__()
        self._fd, self._direct = _open_maybe_direct(path, os.O_WRONLY, direct)
        self._on_block = on_block
        self._size = buffer_size
        self._block = mmap.mmap(-1, buffer_size)  # page-aligned, as O_DIRECT needs
        self._filled = 0
        self._offset = 0  # where the block in the buffer goes in the file
        self._buffers = [self._block]
        self._spare: queue.Queue[mmap.mmap] = queue.Queue()
        self._full: queue.Queue[tuple[mmap.mmap, int, int] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if not self._direct:
            view = memoryview(data)
            while view:
                written = os.pwrite(self._fd, view, self._offset)
                view = view[written:]
                self._offset += written
            return len(data)
        view = memoryview(data)
        while view:
            room = self._size - self._filled
            taken = view[:room]
            self._block[self._filled : self._filled + len(taken)] = taken
            self._filled += len(taken)
            view = view[len(taken) :]
            if self._filled == self._size:
                self._submit(self._size)
        return len(data)

    def _submit(self, length: int) -> None:
        """Hand the filled buffer's first ``length`` bytes to the writing thread; take a free buffer."""
        if self._error is not None:
            raise self._error
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_blocks, name="custody-write", daemon=True)
            self._writer.start()
            for _ in range(WRITE_BUFFERS - 1):
                spare = mmap.mmap(-1, self._size)
                self._buffers.append(spare)
                self._spare.put(spare)
        self._full.put((self._block, length, self._offset))
        self._offset += length
        self._filled = 0
        self._block = self._spare.get()  # (waits while every other buffer is being written)

    def _write_blocks(self) -> None:
        """Thread body: write each block handed over, in order, and report it written."""
        while (block := self._full.get()) is not None:
            buffer, length, offset = block
            try:
                if self._error is None:
                    written = os.pwritev(self._fd, [memoryview(buffer)[:length]], offset)
                    if written != length:
                        raise OSError(f"short direct write ({written} of {length} bytes)")
                    self._on_block(offset + length)
            except BaseException as exc:
                self._error = exc
            finally:
                self._spare.put(buffer)
                self._full.task_done()
        self._full.task_done()

    def _drain(self) -> None:
        """Wait until every block handed over is written; raise the writing thread's error."""
        if self._writer is not None:
            self._full.join()
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """Write what is left in the buffer and set the file's final length."""
        if self._direct and self._filled:
            aligned = self._filled - self._filled % _PAGE
            tail = bytes(self._block[aligned : self._filled])
            if aligned:
                self._submit(aligned)
            self._drain()
            self._direct = False
            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            self.write(tail)
        self._drain()
        os.ftruncate(self._fd, self._offset)  # drop preallocation a shrunken source did not fill

    def close(self) -> None:
        if not self.closed:
            if self._writer is not None:
                self._error = self._error or _WriterAborted()  # (blocks still queued are not written)
                self._full.put(None)
                self._writer.join()
            os.close(self._fd)
            for buffer in self._buffers:
                buffer.close()
        super().close()


class _ReadBehindWriter(io.RawIOBase):
    """Reads back, from the device, a file that another thread is still writing.

    The writer reports how much it has written (wrote) and when the file is
    complete and fsynced (finished). Reads use O_DIRECT in aligned blocks that
    lie wholly in the written part, so every byte comes from the disk and none
    is read before it was written. Without O_DIRECT (tmpfs, some FUSE
    filesystems) nothing is read until finished, when the file's pages are
    evicted and it is read from the start.
    """

    def __init__(self, path: Path, direct: bool, buffer_size: int = READBACK_BLOCK) -> None:
        super().__init__()
        self._fd, self._direct = _open_maybe_direct(path, os.O_RDONLY, direct)
        self._size = buffer_size
        self._block = mmap.mmap(-1, buffer_size)  # page-aligned, as O_DIRECT needs
        self._changed = threading.Condition()
        self._written = 0
        self._done = False
        self._aborted = False
        self._view = memoryview(self._block)
        self._disk_position = 0  # next block to read; always a multiple of the buffer size
        self._valid = 0  # bytes of the block buffer holding file data
        self._cursor = 0  # bytes of those already handed out
        self._sha256: str | None = None
        self._problem: BaseException | None = None

    def readable(self) -> bool:
        return True

    @property
    def direct(self) -> bool:
        """Whether reads bypass the page cache (O_DIRECT), so they come from the device."""
        return self._direct

    def wrote(self, total: int) -> None:
        if self._direct and total - self._disk_position >= self._size:
            with self._changed:
                self._written = total
                self._changed.notify_all()

    def finished(self, sha256: str) -> None:
        if not self._direct:
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with self._changed:
            self._sha256, self._done = sha256, True
            self._changed.notify_all()

    def abort(self) -> None:
        with self._changed:
            self._aborted = True
            self._changed.notify_all()

    def read(self, size: int = -1) -> bytes:
        # Each byte is copied once, from the block buffer into the bytes
        # returned: copies hold the GIL, which the hashing threads need.
        parts = []
        wanted = size if size >= 0 else float("inf")
        while wanted > 0:
            available = self._valid - self._cursor
            if available == 0:
                if not self._read_block():
                    break
                continue
            taken = int(min(available, wanted))
            parts.append(bytes(self._view[self._cursor : self._cursor + taken]))
            self._cursor += taken
            wanted -= taken
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_block(self) -> bool:
        """Read the next block from the disk once it is written; return False at the end."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._aborted or self._done or self._written - self._disk_position >= self._size
            )
            if self._aborted:
                raise _WriterAborted
            done = self._done
        length = self._size
        if done:
            # Touch no more of the buffer than the file needs: O_DIRECT pins
            # every page of it, and faulting in 8 MiB per small file is slow.
            remaining = os.fstat(self._fd).st_size - self._disk_position
            length = max(0, min(self._size, -(-remaining // _PAGE) * _PAGE))
        got = os.preadv(self._fd, [self._view[:length]], self._disk_position) if length else 0
        self._disk_position += got
        self._valid, self._cursor = got, 0
        return got > 0

    def check(self, master: MasterKey, prefetch: bool = True) -> None:
        """Thread body: authenticate everything read back (see ObjectStore.stage); keep any problem.
        Without ``prefetch`` (a small object, read back once written) no thread is started."""
        try:

            def name() -> str:  # known only once the writer has finished
                return self._sha256 or ""

            for _segment in unseal(self, master, name, prefetch):
                pass
        except _WriterAborted:
            pass
        except BaseException as exc:
            self._problem = exc
        finally:
            self.release()

    def release(self) -> None:
        """Close the descriptor and the buffer (once; check does it when it ends)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._view.release()
            self._block.close()

    def raise_problem(self, sha256: str) -> None:
        if isinstance(self._problem, ObjectDamaged):
            raise ObjectDamaged(
                sha256=sha256,
                problem=Said("read back from disk, {problem}", problem=self._problem.fields["problem"]),
            )
        if self._problem is not None:
            raise self._problem


def _buffer_size(expected_size: int | None) -> int:
    """The write and read-back buffer for an object of ``expected_size`` plaintext bytes: one
    READBACK_BLOCK, or for a smaller object its sealed size in whole pages (faulting in and
    unmapping 8 MiB for each photo of a card costs more than sealing it)."""
    if expected_size is None:
        return READBACK_BLOCK
    return min(READBACK_BLOCK, -(-sealed_size(expected_size) // _PAGE) * _PAGE)


def _open_maybe_direct(path: Path, mode: int, direct: bool) -> tuple[int, bool]:
    """Open ``path`` with O_DIRECT when asked and the filesystem allows; say which it got."""
    if direct:
        try:
            return os.open(path, mode | os.O_CLOEXEC | os.O_DIRECT), True
        except OSError:
            pass  # the filesystem refuses O_DIRECT: the page-cache path still verifies
    return os.open(path, mode | os.O_CLOEXEC), False


class _WriterAborted(Exception):
    """The write being read back failed; the reader stops quietly."""


def _mb(nbytes: int) -> int:
    return -(-nbytes // (1 << 20))


# Up to this many files and folders of a group are fsynced one by one; beyond, the filesystem is
# synced once (each fsync on ext4 is a journal commit of its own, and a new object usually needs
# three: its file, its folder and that folder's parent).
SYNC_EACH_AT_MOST = 8


def _fsync_path(path: Path) -> None:
    """fsync a file or a folder by its path (any descriptor of the inode will do)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(where: Path) -> bool:
    """Make everything written to the filesystem holding ``where`` durable (syncfs(2)); return False
    where the C library has no syncfs (the caller then fsyncs each path). Raise OSError as syncfs
    reports a write-back error on that filesystem (since Linux 5.8; those since the descriptor was
    opened: an object's data errors before it are caught by its read-back from the device)."""
    syncfs = getattr(_libc_with_errno(), "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), str(where))
    finally:
        os.close(fd)
    return True


@functools.cache
def _libc_with_errno() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
