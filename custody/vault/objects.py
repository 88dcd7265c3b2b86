"""Content-addressed object files: where sealed objects live and how they get there.

An object is stored at ``objects/sha256/ab/cd/<sha256>``, named by the SHA-256
of the original bytes. Writing is atomic: seal into ``objects/staging/`` on the
same filesystem, fsync the file, rename it into place, fsync the directory. A
crash leaves either a staging file (swept at the next open) or a whole object.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from custody.vault.keys import MasterKey
from custody.vault.sealing import ObjectDamaged, ProgressCallback, seal, unseal

_HEX = frozenset("0123456789abcdef")


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
        """Seal ``source`` into a staging file, fsync it and return it.

        On any error the staging file is removed and the error propagates.
        """
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="seal-", suffix=".part")
        path = Path(name)
        try:
            with open(fd, "wb") as destination:
                sealed = seal(source, destination, self.master, expected_size, on_progress)
                destination.flush()
                os.fsync(destination.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StagedObject(path=path, sha256=sealed.sha256, size=sealed.size)

    def store_staged(self, staged: StagedObject) -> Path:
        """Move a staged object to its final name atomically and make that durable.

        An object already stored under the same name is replaced: both hold the
        same plaintext, and the new one was just written and fsynced.
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
    ) -> int:
        """Decrypt, authenticate and re-hash the stored object; return its plaintext size.

        With ``evict_cache`` the object's pages are dropped from the page cache
        first, so the disk's copy is what gets checked. Raise ObjectDamaged
        naming the object (FileNotFoundError when it is absent).
        """
        hasher = hashlib.sha256()
        size = 0
        for chunk in self.read(sha256, evict_cache=evict_cache):
            hasher.update(chunk)
            size += len(chunk)
            if on_progress:
                on_progress(len(chunk))
        if hasher.hexdigest() != sha256:
            raise ObjectDamaged(sha256=sha256, problem=f"its plaintext hashes to {hasher.hexdigest()}")
        return size

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


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
