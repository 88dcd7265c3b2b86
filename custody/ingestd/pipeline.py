"""The ingest pipeline: files of a source become sealed vault items.

The same pipeline serves ``custody ingest`` (files and folders), the docking
daemon (a recorder's read-only mount) and files sent through the daemon's
socket. Its stages are listed in one place, :meth:`IngestSession.stages`; each
is a function of one file task. A file that cannot go on is given an outcome and
a reason by the stage that found out, never by an exception crossing stages;
the other files go on. A file the stages leave sealed and new is stored with its
group (:meth:`IngestSession.flush`), made durable together, and only then
counted and reported.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io
import os
import stat
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from custody.config import IngestSettings
from custody.errors import CustodyError
from custody.vault import IngestRecord, Item, Vault
from custody.vault.intake import DockFacts
from custody.vault.items import printable_name
from custody.vault.objects import StagedObject
from custody.vault.sealing import ObjectDamaged
from custody.vault.timestamps import to_text

# How a file found on a recorder or in a folder is opened: never through a link, and never
# waiting (a file swapped for a FIFO between discovery and open would block the open for ever
# while the vault's write lock is held); what it is is then checked with fstat before reading.
SOURCE_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

NEW, DUPLICATE, KNOWN, ERROR = "new", "duplicate", "known", "error"

# Sealed files are made durable in groups: one sync, one transaction for their intents and one for
# their items, instead of those per file (a card of photos would otherwise spend most of its time
# waiting for the disk). A group is stored once it holds this many files or bytes, and at the end
# of the source; while one group is stored (waiting for the disk), the next is sealed (the CPU).
GROUP_FILES = 64
GROUP_BYTES = 64 << 20

# A file up to this size is read once, into memory: a duplicate is recognised from those bytes
# without a write, a new file is sealed from them (larger ones are hashed first when an item of
# their size exists, then read again as they are sealed).
READ_WHOLE_AT_MOST = 4 << 20


class PullCancelled(Exception):
    """The source went away (recorder undocked, daemon stopping) while a file was read."""


@dataclass(frozen=True)
class IngestSource:
    """Where the files come from and what is known about all of them."""

    paths: list[Path]
    source: str = "import"
    officer: str | None = None
    recorder: str | None = None  # serial of the recorder the files came from, when known


@dataclass
class FileTask:
    """One regular file on its way into the vault."""

    path: str
    size: int
    mtime_ns: int
    relative: str = ""  # path inside the source (a recorder's volume), for recognising it on re-dock
    # What the docking station learnt: the recording window, and the facts it keeps with the item.
    recorded: tuple[str, str] | None = None
    facts: DockFacts | None = None
    staged: StagedObject | None = None
    outcome: str | None = None
    item: Item | None = None
    message: str | None = None
    warning: str | None = None
    # (item id, sha256) as the daemon reported them, for a file sent through its socket
    reported: tuple[str, str] | None = None

    @property
    def display_path(self) -> str:
        return printable_name(self.path)

    @property
    def item_id(self) -> str | None:
        return self.item.item_id if self.item else self.reported[0] if self.reported else None

    def drop(self, message: str) -> None:
        self.outcome, self.message = ERROR, message

    def as_dict(self) -> dict:
        result = {
            "id": self.item_id,
            "sha256": self.item.sha256 if self.item else self.reported[1] if self.reported else None,
            "size": self.size,
            "name": self.display_path,
            "status": self.outcome,
        }
        if self.message:
            result["message"] = self.message
        if self.warning:
            result["warning"] = self.warning
        return result


@dataclass(frozen=True)
class Skipped:
    """A path discovery passed over, and why (hidden, symlink, not a regular file)."""

    path: str
    reason: str
    hidden: bool = False


@dataclass
class IngestSummary:
    new: int = 0
    duplicate: int = 0
    known: int = 0
    failed: int = 0
    hidden_skipped: int = 0
    other_skipped: int = 0
    bytes_new: int = 0
    tasks: list[FileTask] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def add(self, task: FileTask) -> None:
        """Count a file whose outcome is decided."""
        self.tasks.append(task)
        if task.outcome == NEW:
            self.new += 1
            self.bytes_new += task.size
        elif task.outcome == DUPLICATE:
            self.duplicate += 1
        elif task.outcome == KNOWN:
            self.known += 1
        else:
            self.failed += 1

    def as_dict(self) -> dict:
        return {
            "new": self.new,
            "duplicate": self.duplicate,
            "known": self.known,
            "failed": self.failed,
            "hidden_skipped": self.hidden_skipped,
            "other_skipped": self.other_skipped,
            "bytes_new": self.bytes_new,
        }


class IngestObserver(Protocol):
    """What a session tells whoever watches it (a progress bar, a JSON printer, the daemon)."""

    def discovered(self, files: int, total_bytes: int) -> None: ...

    def skipped(self, skipped: Skipped) -> None: ...

    def progress(self, nbytes: int) -> None: ...

    def file_done(self, task: FileTask) -> None: ...


class SilentObserver:
    def discovered(self, files: int, total_bytes: int) -> None:
        pass

    def skipped(self, skipped: Skipped) -> None:
        pass

    def progress(self, nbytes: int) -> None:
        pass

    def file_done(self, task: FileTask) -> None:
        pass


class IngestSession:
    """One ingest of one source into one vault."""

    def __init__(
        self,
        vault: Vault,
        source: IngestSource,
        settings: IngestSettings,
        observer: IngestObserver | None = None,
    ) -> None:
        self.vault = vault
        self.source = source
        self.settings = settings
        self.observer = observer or SilentObserver()
        # Sealed files waiting to be stored with their group, each with the summary that counts it.
        self._group: list[tuple[FileTask, IngestSummary]] = []
        self._group_bytes = 0
        self._group_lock = threading.RLock()  # (a daemon may flush a session from another thread)
        self._storing: threading.Thread | None = None  # the group being stored behind, if any
        self._storing_contents: set[str] = set()  # the sha256 of its files
        self._storing_failed: BaseException | None = None
        self._finish_lock = threading.Lock()  # files are counted by the sealing and the storing thread

    # How many files or bytes a group holds at most (see GROUP_FILES); 1 stores each file at once.
    group_files = GROUP_FILES
    # Whether a full group is stored by a thread of its own while the next is sealed.
    store_behind = True

    def run(self) -> IngestSummary:
        """Discover every file, then take each through the stages; return the summary."""
        summary = IngestSummary()
        for task in self.discover(summary):
            self.process(task, summary)
        self.flush()
        return summary

    def stages(self) -> list[Callable[[FileTask], None]]:
        """The stages every file goes through, in order; a file they leave sealed and undecided is
        then stored with its group (see ``flush``)."""
        return [
            self.recognise_duplicate,  # an item of its size exists: hash it first, write nothing if held
            self.pull,  # read once: hash, encrypt, write to staging, read back from disk
            self.skip_duplicate,  # already in the vault: audit it, keep nothing new
        ]

    def discover(self, summary: IngestSummary) -> list[FileTask]:
        """Return the files to ingest, counting (and telling the observer) what is skipped."""
        return discover_files(self.source.paths, self.settings.skip_names, summary, self.observer)

    def process(self, task: FileTask, summary: IngestSummary) -> None:
        """Take one file through the stages until one decides its outcome; count it. A file sealed
        and new joins the group, and is counted when the group is stored (``flush``).

        A file already decided (one discovery could not read) only has its failure recorded.
        """
        for stage in self.stages():
            if task.outcome is not None:
                break
            stage(task)
        if task.outcome is None and task.staged is not None:
            with self._group_lock:
                self._group.append((task, summary))
                self._group_bytes += task.size
                if len(self._group) >= self.group_files or self._group_bytes >= GROUP_BYTES:
                    self.flush(wait=not self.store_behind)
            return
        if task.outcome is None:  # pragma: no cover - a stage forgot to decide
            task.drop("internal error: no stage decided this file's outcome")
        self.finish(task, summary)

    def flush(self, wait: bool = True) -> None:
        """Store the group of sealed files, durable together (Intake.store_group); only then is
        each one counted and reported stored. When storing fails, every file of the group fails
        with the reason (nothing of them is kept but what the vault's recovery finishes).

        The group stored before is waited for first (one is stored at a time, in order). Without
        ``wait`` this group is stored by a thread of its own and flush returns at once; with it,
        flush returns once every file given to it so far is decided. Raise what the storing
        thread raised (an observer's error), once.
        """
        with self._group_lock:
            self._wait_for_storing()  # (raising, it leaves this group to the next flush)
            group, self._group, self._group_bytes = self._group, [], 0
            if not group:
                return
            if wait:
                self._store(group)
                return
            self._storing_contents = {task.staged.sha256 for task, _ in group if task.staged}  # (distinct)
            self._storing = threading.Thread(
                target=self._store_behind, args=(group,), name="custody-store", daemon=True
            )
            self._storing.start()

    def _wait_for_storing(self) -> None:
        if self._storing is not None:
            self._storing.join()
            self._storing, self._storing_contents = None, set()
        failed, self._storing_failed = self._storing_failed, None
        if failed is not None:
            raise failed

    def _store_behind(self, group: list[tuple[FileTask, IngestSummary]]) -> None:
        try:
            self._store(group)
        except BaseException as exc:  # (raised in the sealing thread at its next flush)
            self._storing_failed = exc

    @property
    def waiting(self) -> int:
        """How many sealed files wait to be stored, or are being stored, not yet counted (at most
        over-counted for a moment as a group stored behind is counted, never under-counted)."""
        return len(self._group) + len(self._storing_contents)

    def _store(self, group: list[tuple[FileTask, IngestSummary]]) -> None:
        try:
            items = self.vault.intake.store_group([(task.staged, self._record(task)) for task, _ in group])
        except Exception as exc:  # (each file must be counted, whatever went wrong)
            reason = exc.message if isinstance(exc, CustodyError) else f"{type(exc).__name__}: {exc}"
            for task, _ in group:
                self.vault.intake.discard(task.staged)
                task.drop(f"{task.display_path} not stored: {reason}")
        else:
            for (task, _), stored in zip(group, items, strict=True):
                if isinstance(stored, ObjectDamaged):
                    task.drop(damaged_on_disk(task, stored))
                else:
                    task.outcome, task.item = NEW, stored
        failure: Exception | None = None
        for task, summary in group:
            task.staged = None
            try:
                self.finish(task, summary)
            except Exception as exc:  # (every file of the group is counted first)
                failure = failure or exc
        if failure is not None:
            raise failure

    def finish(self, task: FileTask, summary: IngestSummary) -> None:
        """Record a decided file's failure, if it failed; count it; tell the observer. The file is
        counted even when recording its failure fails (raised after)."""
        with self._finish_lock:
            try:
                if task.outcome == ERROR:
                    self.vault.record_failure(
                        "ingest", {"path": task.relative or task.display_path, "reason": task.message}
                    )
            finally:
                self._count(summary, task)
                self.observer.file_done(task)

    # -- stages -----------------------------------------------------------

    def pull(self, task: FileTask) -> None:
        """Seal the file into staging, refusing files that change or vanish while read."""
        try:
            fd = os.open(task.path, SOURCE_OPEN_FLAGS)
        except OSError as exc:
            task.drop(read_error(task, exc, before=True))
            return
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                task.drop(f"{task.display_path} is no longer a regular file; not read")
                return
            with open(fd, "rb", buffering=0, closefd=False) as source:
                stream: BinaryIO = source
                if before.st_size <= READ_WHOLE_AT_MOST:
                    # Read once, into memory: recognised as held from these bytes, else sealed from them.
                    data = read_up_to(source, before.st_size + 1)  # (one more: a file that grew is seen)
                    if not change_while_reading(before, os.fstat(fd), len(data)) and self._held(task, data):
                        return
                    stream = io.BytesIO(data)
                staged = self.vault.intake.stage(stream, before.st_size, self.progress)
            after = os.fstat(fd)
        except OSError as exc:
            task.drop(read_error(task, exc, before=False))
            return
        except PullCancelled as exc:
            task.drop(f"{task.display_path} not stored: {exc}; it is pulled again at the next dock")
            return
        except Vault.DiskFull as exc:
            self.vault_disk_full(task, exc)
            return
        except ObjectDamaged as exc:
            task.drop(damaged_on_disk(task, exc))
            return
        finally:
            os.close(fd)
        changed = change_while_reading(before, after, staged.size)
        if changed:
            self.vault.intake.discard(staged)
            task.drop(f"{task.display_path} {changed}; nothing stored: pull it again")
            return
        task.staged = staged
        if staged.size == 0:
            task.warning = "empty file"

    def _held(self, task: FileTask, data: bytes) -> bool:
        """Whether the vault holds ``data`` (the whole file, read once): then it is recorded as a
        duplicate, and nothing is written."""
        if not self.vault.intake.size_known(len(data)):
            return False
        existing = self.vault.item_by_sha256(hashlib.sha256(data).hexdigest())
        if existing is None:
            return False
        self._held_already(task, existing)
        return True

    def vault_disk_full(self, task: FileTask, exc: CustodyError) -> None:
        """The vault's disk is at its reserve: this file fails alone (the rest are still tried)."""
        task.drop(f"{task.display_path} not stored: {exc.message}")

    def progress(self, nbytes: int) -> None:
        """Called as bytes are read; the daemon's sessions raise PullCancelled here to stop a pull."""
        self.observer.progress(nbytes)

    def recognise_duplicate(self, task: FileTask) -> None:
        """A file the vault already holds costs no vault writes: when an item of the same size
        exists, the file is hashed first (read only) and, when its content is held, recorded as a
        duplicate without being sealed (a duplicate is recognised even on a full vault disk). A file
        that cannot be read, or changes while hashed, is left to ``pull``, which reports it. A file
        small enough to be read whole into memory is left to ``pull`` too: it reads it once."""
        if task.size <= READ_WHOLE_AT_MOST or not self.vault.intake.size_known(task.size):
            return
        sha256 = self.content_hash(task)
        existing = self.vault.item_by_sha256(sha256) if sha256 else None
        if existing is None:
            return  # (read again as it is sealed: its bytes are counted then)
        self._held_already(task, existing)

    def _held_already(self, task: FileTask, existing: Item) -> None:
        """Record a file recognised before sealing as item ``existing``, and count its bytes read."""
        self.duplicate_found(task, existing)
        with contextlib.suppress(PullCancelled):  # (decided already: a stop ends the next file)
            self.progress(task.size)

    def content_hash(self, task: FileTask) -> str | None:
        """The SHA-256 of the file ``task`` names, read from this machine's filesystem (None when it
        cannot be read whole and unchanged). A session whose paths a client names reads no path."""
        return hash_unchanged(task.path)

    def skip_duplicate(self, task: FileTask) -> None:
        assert task.staged is not None
        waiting = {queued.staged.sha256 for queued, _ in self._group if queued.staged}
        if task.staged.sha256 in waiting | self._storing_contents:
            self.flush()  # the same content waits to be stored: it is an item once stored
        existing = self.vault.item_by_sha256(task.staged.sha256)
        if existing is None:
            self.refuse_disposed(task)
            return
        self.vault.intake.discard(task.staged)
        task.staged = None
        self.duplicate_found(task, existing)

    def refuse_disposed(self, task: FileTask) -> None:
        """Content disposed of by an approved request is not taken in again (a copy under another
        name, a card never wiped): the disposal would be undone without anyone deciding it. The
        file is left where it is and reported failed, naming the disposal."""
        assert task.staged is not None
        disposed = self.vault.disposals.tombstone_of_content(task.staged.sha256)
        if disposed is None:
            return
        self.vault.intake.discard(task.staged)
        task.staged = None
        task.drop(
            f"{task.display_path} not stored: its content was disposed of as {disposed['item']} on "
            f"{disposed['executed_at'][:10]} ({disposed['request']}); content disposed of is not taken in again"
        )

    def duplicate_found(self, task: FileTask, existing: Item) -> None:
        """The file's content is item ``existing``: audit the offer, store nothing new."""
        self.vault.intake.record_duplicate(existing, self._record(task))
        task.outcome, task.item = DUPLICATE, existing
        task.message = f"already in the vault as {existing.item_id}"

    # -- helpers ----------------------------------------------------------

    def _record(self, task: FileTask) -> IngestRecord:
        raw_path = os.fsencode(task.path)
        return IngestRecord(
            original_name=printable_name(os.path.basename(task.path)),
            source_path=task.display_path,
            source_path_bytes=raw_path,
            source=self.source.source,
            source_mtime=to_text(datetime.fromtimestamp(task.mtime_ns / 1e9, UTC)),
            tags={"officer": self.source.officer} if self.source.officer else {},
            dock=DockFacts(recorder_serial=self.source.recorder or None),
        )

    @staticmethod
    def _count(summary: IngestSummary, task: FileTask) -> None:
        summary.add(task)


def discover_files(
    paths: list[Path], skip_names: list[str], summary: IngestSummary, observer: IngestObserver
) -> list[FileTask]:
    """Return the files under ``paths`` to ingest, counting in ``summary`` (and telling
    ``observer``) what is skipped."""
    tasks: list[FileTask] = []
    for found in discover(paths, skip_names):
        if isinstance(found, Skipped):
            if found.hidden:
                summary.hidden_skipped += 1
            else:
                summary.other_skipped += 1
            observer.skipped(found)
        else:
            tasks.append(found)
    observer.discovered(len(tasks), sum(t.size for t in tasks))
    return tasks


# Deeper than any recorder or phone writes; a deeper tree is someone's trap (1,200 levels once
# raised RecursionError and ingested nothing): that folder fails alone, the rest is walked.
MAX_FOLDER_DEPTH = 64


def discover(paths: list[Path], skip_names: list[str]) -> Iterator[FileTask | Skipped]:
    """Yield a FileTask for every regular file under ``paths`` and a Skipped for the rest.

    Folders are walked in name order without following symlinks, with a
    stack rather than recursion. Names matching ``skip_names`` are skipped
    as hidden (a hidden folder is skipped whole and counted once). A path
    that does not exist or cannot be listed, and a folder nested deeper than
    MAX_FOLDER_DEPTH, yield a FileTask already marked as failed, so it is
    reported; the walk goes on.
    """
    for top in paths:
        # (path, depth, explicit); reversed onto the stack so names come off in order
        pending: list[tuple[str, int, bool]] = [(os.fspath(top), 0, True)]
        while pending:
            path, depth, explicit = pending.pop()
            children = yield from _discover_entry(path, skip_names, explicit, depth)
            pending.extend((os.path.join(path, child), depth + 1, False) for child in reversed(children))


def _discover_entry(
    path: str, skip_names: list[str], explicit: bool, depth: int
) -> Generator[FileTask | Skipped, None, list[str]]:
    """Yield what ``path`` is (a file, a skip, a failure); return a folder's child names to walk."""
    name = os.path.basename(path.rstrip("/")) or path
    if not explicit and _is_hidden(name, skip_names):
        yield Skipped(path, "hidden", hidden=True)
        return []
    try:
        info = os.lstat(path)
    except OSError as exc:
        task = FileTask(path=path, size=0, mtime_ns=0)
        task.drop(read_error(task, exc, before=True))
        yield task
        return []
    if stat.S_ISLNK(info.st_mode):
        yield Skipped(path, "symbolic link, not followed")
    elif stat.S_ISDIR(info.st_mode):
        if depth >= MAX_FOLDER_DEPTH:
            task = FileTask(path=path, size=0, mtime_ns=0)
            task.drop(
                f"folder {printable_name(path)} is nested more than {MAX_FOLDER_DEPTH} levels deep; not walked"
            )
            yield task
            return []
        try:
            return sorted(os.listdir(path))
        except OSError as exc:
            task = FileTask(path=path, size=0, mtime_ns=0)
            task.drop(f"cannot list folder {printable_name(path)}: {exc.strerror}")
            yield task
    elif stat.S_ISREG(info.st_mode):
        yield FileTask(path=path, size=info.st_size, mtime_ns=info.st_mtime_ns)
    else:
        yield Skipped(path, "not a regular file")
    return []


def _is_hidden(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def hash_unchanged(path: str) -> str | None:
    """The SHA-256 of the regular file at ``path`` (not followed if a link), or None when it cannot
    be read whole or changes while it is read."""
    try:
        fd = os.open(path, SOURCE_OPEN_FLAGS)
    except OSError:
        return None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return None
        with open(fd, "rb", buffering=0, closefd=False) as source:
            digest = hashlib.file_digest(source, "sha256")
            read = source.tell()
        after = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if change_while_reading(before, after, read) else digest.hexdigest()


def read_up_to(source: BinaryIO, at_most: int) -> bytes:
    """Up to ``at_most`` bytes of ``source``, fewer only at its end: a read may return fewer bytes
    than asked (FUSE, pipes) and is repeated; an error part way is raised (OSError)."""
    parts, have = [], 0
    while have < at_most and (chunk := source.read(at_most - have)):
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def change_while_reading(before: os.stat_result, after: os.stat_result, read: int) -> str | None:
    if after.st_nlink == 0:
        return "vanished while it was being read"
    if read != before.st_size or after.st_size != before.st_size:
        return f"changed size while it was being read ({before.st_size} -> {read} bytes read)"
    if after.st_mtime_ns != before.st_mtime_ns:
        return "was modified while it was being read"
    return None


def damaged_on_disk(task: FileTask, exc: ObjectDamaged) -> str:
    return f"{task.display_path} not stored: the copy on disk did not verify ({exc.message}); check the vault's disk"


def read_error(task: FileTask, exc: OSError, before: bool) -> str:
    where = task.display_path
    if exc.errno == errno.ENOENT:
        return f"{where} vanished before it could be read"
    if not before:
        return f"cannot read {where}: {exc.strerror or exc} part way through (damaged medium?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot read {where}: permission denied"
    if exc.errno == errno.ELOOP:
        return f"{where} became a symbolic link; not followed"
    if exc.errno == errno.EIO:
        return f"cannot read {where}: input/output error (damaged medium?)"
    stage = "open" if before else "read"
    return f"cannot {stage} {where}: {exc.strerror or exc}"
