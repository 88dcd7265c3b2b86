"""A dock session: every new file of one media source (a docked recorder, a watch folder) into the vault.

The stages, in order (see :meth:`DockSession.stages`): skip files this
recorder already gave the vault (same path, size and mtime), pull the file
(one pass: hash, encrypt, write, read back), read its recording times
(container first, then the profile's filename pattern in the recorder's time
zone, then the file's time: from a FAT/exFAT card's own directory entries,
see :mod:`custody.devices.card_times`, else the mount's mtime), skip content already in the vault, store it
with recorder, credited officer, deadline and flags. Files are stored in groups, made durable together
(see ``IngestSession.flush``); a session stores its group as soon as every file it found is decided
or waiting in the group (the last pulled, or the rest left by a cancel), so none is left waiting.

A session can be cancelled (recorder undocked, daemon stopping): the file
being read is abandoned cleanly (nothing partial stays) and queued files are
left for the next dock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from custody.config import RecorderProfile, Settings
from custody.devices.card_times import (
    CardUnreadable,
    EntryTime,
    entry_key,
    read_card_times,
    reads_directory_times,
)
from custody.devices.events import MediaSource
from custody.devices.profiles import is_footage, read_filename
from custody.ingestd.media import probe_recording_times
from custody.ingestd.pipeline import (
    DUPLICATE,
    ERROR,
    KNOWN,
    NEW,
    FileTask,
    IngestObserver,
    IngestRecord,
    IngestSession,
    IngestSource,
    IngestSummary,
    PullCancelled,
    Skipped,
)
from custody.vault import Item, Vault
from custody.vault.intake import DockFacts
from custody.vault.timestamps import to_text

log = logging.getLogger(__name__)

# How often a pull paused by a full vault disk looks for space again.
DISK_FULL_RETRY_SECONDS = 2.0

# Files whose container ffprobe is asked for recording times (photos: filename or mtime).
PROBED_EXTENSIONS = {
    ".mp4",
    ".mov",
    ".avi",
    ".mkv",
    ".ts",
    ".mts",
    ".m4v",
    ".3gp",
    ".wav",
    ".mp3",
    ".m4a",
    ".aac",
}


class DockSession(IngestSession):
    """One pull of one media source. Thread-safe: workers call :meth:`process` concurrently."""

    def __init__(
        self,
        vault: Vault,
        source: MediaSource,
        settings: Settings,
        session_id: int | None,
        docked_at: datetime,
        observer: IngestObserver | None = None,
    ) -> None:
        paths = source.paths or [source.root]
        super().__init__(
            vault,
            IngestSource(paths=paths, source=f"{source.kind}:{source.serial}"),
            settings.ingest,
            observer,
        )
        self.media = source
        self.profile: RecorderProfile = settings.profiles[source.profile_name]
        self.dock_settings = settings.dock
        self.media_settings = settings.media
        self.targets = list(settings.targets)
        self.session_id = session_id
        self.docked_at = docked_at
        self.summary = IngestSummary()
        self.errors: list[str] = []
        self.cancel_reason: str | None = None
        self._cancelled = threading.Event()
        self._lock = threading.RLock()
        self.files_total = 0
        self.files_done = 0
        self.bytes_total = 0
        self.bytes_done = 0
        self.in_flight = 0
        self.waiting_for_space = 0  # pulls paused because the vault's disk is at its reserve
        self._out_of_space: set[int] = set()  # ids of tasks whose pull met a full vault disk
        self.discovered_all = False
        self.started = time.monotonic()
        self.reading: list[str] = []  # files being pulled right now (one per worker)
        # File times from the card's own FAT/exFAT directory entries (the mount's mtimes can be wrong).
        self.card_times: dict[str, EntryTime] = {}
        self.card_times_problem: str | None = None

    # -- the pipeline -----------------------------------------------------

    def stages(self) -> list[Callable[[FileTask], None]]:
        return [
            self.skip_known,  # this recorder gave the vault this file (path, size, mtime) before
            self.recognise_duplicate,  # an item of its size exists: hash it first, write nothing if held
            self.pull,  # read once: hash, encrypt, write to staging, read back
            self.read_recording_times,  # container, else filename pattern, else mtime; officer; deadline
            self.skip_duplicate,  # same content already in the vault: audit it, remember the file
        ]  # then stored with its group: renamed into place, catalogued with the dock facts, audited

    def discover(self, summary: IngestSummary) -> list[FileTask]:
        """Return the source's footage files (per the profile), oldest estimated deadline first."""
        self.read_card_times()
        tasks = []
        for task in super().discover(summary):
            relative = self._relative(task.path)
            if task.outcome is None and not is_footage(relative, self.profile):
                summary.other_skipped += 1
                self.observer.skipped(
                    Skipped(task.path, f"not footage for profile {self.media.profile_name}")
                )
                continue
            task.relative = relative
            tasks.append(task)
        tasks.sort(key=self.estimated_deadline)
        with self._lock:
            self.files_total = len(tasks)
            self.bytes_total = sum(t.size for t in tasks)
            self.discovered_all = True
        return tasks

    def process(self, task: FileTask, summary: IngestSummary) -> None:
        super().process(task, summary)
        self._flush_when_all_decided()

    def _wait_for_storing(self) -> None:
        """A group stored behind that failed part way (its files are counted, as failed or stored)
        is logged: the session goes on, and its remaining files are pulled."""
        try:
            super()._wait_for_storing()
        except Exception:
            log.exception("%s: storing a group of files failed", self.media.serial)

    def _flush_when_all_decided(self) -> None:
        """Store the group once no other file of the source can join it (every file found is
        decided, or waits in the group)."""
        with self._lock:
            all_decided = self.discovered_all and self.files_done + self.waiting >= self.files_total
        if all_decided:
            self.flush()

    def skip_known(self, task: FileTask) -> None:
        number = self.vault.registry.known_file(self.media.serial, task.relative, task.size, task.mtime_ns)
        if number is None:
            return
        task.outcome = KNOWN
        task.message = "pulled at an earlier dock"

    def pull(self, task: FileTask) -> None:
        if self._cancelled.is_set():
            task.drop(f"{task.display_path} not pulled: {self.cancel_reason}; it is pulled at the next dock")
            return
        with self._lock:
            self.in_flight += 1
            self.reading.append(task.relative or task.display_path)
        try:
            while True:
                super().pull(task)
                if id(task) not in self._out_of_space:
                    break
                self._out_of_space.discard(id(task))
                if not self._wait_for_space(task):
                    task.drop(
                        f"{task.display_path} not pulled: the vault's disk was full, then {self.cancel_reason}; "
                        "it is pulled at the next dock"
                    )
                    break
        finally:
            with self._lock:
                self.in_flight -= 1
                self.reading.remove(task.relative or task.display_path)

    def vault_disk_full(self, task: FileTask, exc) -> None:
        """The vault's disk is at its reserve: the pull waits for space (see pull); the recorder is
        left as it is (nothing is wiped that is not stored) and the daemon goes on serving."""
        log.warning("%s: pulls paused: %s", self.media.serial, exc.message)
        self._out_of_space.add(id(task))

    def _wait_for_space(self, task: FileTask) -> bool:
        """Wait until ``task`` fits above the reserve; False when the session is cancelled first."""
        with self._lock:
            self.waiting_for_space += 1
        try:
            while not self._cancelled.wait(DISK_FULL_RETRY_SECONDS):
                try:
                    self.vault.objects.check_room(task.size)
                except Vault.DiskFull:
                    continue
                log.info("%s: the vault's disk has room again; pulls resume", self.media.serial)
                return True
            return False
        finally:
            with self._lock:
                self.waiting_for_space -= 1

    def read_card_times(self) -> None:
        """Read file times from the directory entries of a FAT/exFAT card (once, before any file).

        A card that cannot be read that way keeps the mount's times; the
        problem is logged and each item's ``recorded_source`` says
        ``file-mtime``, so nobody takes such a time for a directory entry's.
        """
        identity = self.media.identity
        if self.media.kind != "usb" or identity is None or not reads_directory_times(identity.fs_type):
            return
        try:
            self.card_times = read_card_times(identity.devnode)
        except CardUnreadable as exc:
            self.card_times_problem = str(exc)
            log.warning(
                "%s: file times come from the mount, not the card's directory: %s", identity.describe(), exc
            )

    def file_time(self, task: FileTask) -> tuple[datetime, str]:
        """Return a file's last-written time in UTC and where it was read.

        From the card's directory entry when there is one (in the recorder
        clock's zone for FAT, by its own UTC offset for exFAT), else from
        the mount's mtime.
        """
        entry = self.card_times.get(entry_key(task.relative or self._relative(task.path)))
        if entry is not None:
            return entry.to_utc(self.profile.clock_timezone), entry.source
        return datetime.fromtimestamp(task.mtime_ns / 1e9, UTC), "file-mtime"

    def progress(self, nbytes: int) -> None:
        if self._cancelled.is_set():
            raise PullCancelled(self.cancel_reason or "cancelled")
        with self._lock:
            self.bytes_done += nbytes
        super().progress(nbytes)

    def read_recording_times(self, task: FileTask) -> None:
        """Work out recording start/end, the credited officer, the deadline and the flags."""
        name = os.path.basename(task.path)
        start = end = None
        source = None
        if Path(name).suffix.lower() in PROBED_EXTENSIONS:
            times = probe_recording_times(
                Path(task.path), self.media_settings.ffprobe, self.media_settings.probe_timeout_seconds
            )
            if times.start is not None:
                start, end, source = times.start, times.end, "container"
            duration = times.duration
        else:
            duration = None
        from_name = read_filename(name, self.profile)
        if start is None and from_name and from_name.start:
            start, source = from_name.start, "filename"
            end = start + timedelta(seconds=duration) if duration is not None else None
        if start is None:
            start, source = self.file_time(task)
            end = None
        if end is None:
            end = start
        serial = self.media.serial
        if self.media.kind == "watch":
            serial = from_name.recorder if from_name and from_name.recorder else ""
        officer = self.vault.registry.officer_at(serial, to_text(start)) if serial else None
        if officer is None and from_name and from_name.officer:
            officer = from_name.officer
        now = datetime.now(UTC)
        deadline = end + timedelta(hours=self.dock_settings.window_hours)
        suspect = start > now + timedelta(
            minutes=self.dock_settings.suspect_future_minutes
        ) or start < now - timedelta(days=self.dock_settings.suspect_past_days)
        task.recorded = (to_text(start), to_text(end))
        task.facts = DockFacts(
            recorded_source=source,
            recorder_serial=serial or None,
            credited_officer=officer,
            docked_at=to_text(self.docked_at),
            deadline=to_text(deadline),
            # A suspect clock makes the deadline meaningless: flagged as suspect, not as late.
            late=now > deadline and not suspect,
            clock_suspect=suspect,
            important=bool(from_name and from_name.important),
            dock_session=self.session_id,
            previous_item=self.vault.registry.latest_item_at_path(self.media.serial, task.relative),
        )

    def recognise_duplicate(self, task: FileTask) -> None:
        if self._cancelled.is_set():
            return  # (pull reports the cancellation)
        super().recognise_duplicate(task)

    def duplicate_found(self, task: FileTask, existing: Item) -> None:
        super().duplicate_found(task, existing)
        self.vault.registry.remember_recorder_file(existing, self._recorder_file(task))

    # -- helpers ----------------------------------------------------------

    def _record(self, task: FileTask) -> IngestRecord:
        base = super()._record(task)
        facts = task.facts or DockFacts()
        recorded_start, recorded_end = task.recorded or (None, None)
        tags = {"officer": facts.credited_officer} if facts.credited_officer else {}
        return IngestRecord(
            original_name=base.original_name,
            source_path=task.relative or base.source_path,
            source_path_bytes=base.source_path_bytes,
            source=base.source,
            source_mtime=to_text(self.file_time(task)[0]),
            recorded_start=recorded_start,
            recorded_end=recorded_end,
            tags=tags,
            dock=facts,
            recorder_file=self._recorder_file(task),
        )

    def _recorder_file(self, task: FileTask) -> tuple:
        return (self.media.serial, task.relative, task.size, task.mtime_ns, self.session_id)

    def _relative(self, path: str) -> str:
        root = os.fspath(self.media.root)
        try:
            return os.path.relpath(path, root)
        except ValueError:
            return path

    def _count(self, summary: IngestSummary, task: FileTask) -> None:
        with self._lock:
            super()._count(summary, task)
            self.files_done += 1
            if task.outcome == ERROR and task.message and len(self.errors) < 200:
                self.errors.append(task.message)
            if task.outcome == KNOWN:  # never read, but part of the recorder's total
                self.bytes_done += task.size

    def estimated_deadline(self, task: FileTask) -> float:
        """A deadline estimate before any file is read: filename time, else the file's time, plus the window."""
        from_name = read_filename(os.path.basename(task.path), self.profile)
        start = (
            from_name.start.timestamp()
            if from_name and from_name.start
            else self.file_time(task)[0].timestamp()
        )
        return start + self.dock_settings.window_hours * 3600

    # -- wiping the recorder -------------------------------------------------

    def wipe(self, root: Path) -> int:
        """Delete from the recorder, mounted read-write at ``root``, every file safe in the vault.

        A file is deleted only when the vault holds it (pulled now or at an
        earlier dock), its vault copy re-hashes right from the disk, the
        recorder's file still has the size and mtime it was pulled with, and,
        with ``wipe = "after_replica"``, its copy is verified on every target. Each
        deletion is audited; anything else is left and noted in the session's
        errors. Return how many files were deleted.
        """
        wiped = 0
        for task in list(self.summary.tasks):
            if task.outcome not in (NEW, DUPLICATE, KNOWN) or not task.relative:
                continue
            number = self.vault.registry.known_file(
                self.media.serial, task.relative, task.size, task.mtime_ns
            )
            item = self.vault.item_number(number) if number is not None else None
            target = root / task.relative
            try:
                if item is None:
                    raise RuntimeError("not recorded as pulled from this recorder")
                if self.profile.wipe == "after_replica":
                    missing = self.vault.targets_without_verified_copy(item, self.targets)
                    if missing:
                        raise RuntimeError(f"not yet verified off-site on {', '.join(missing)}")
                self.vault.originals.check_item(item)
                info = os.stat(target, follow_symlinks=False)
                if (info.st_size, info.st_mtime_ns) != (task.size, task.mtime_ns):
                    raise RuntimeError("changed on the recorder since it was pulled")
                os.unlink(target)
            except (OSError, RuntimeError, Vault.ItemDamaged) as exc:
                reason = exc.message if isinstance(exc, Vault.ItemDamaged) else str(exc)
                self.errors.append(f"{task.relative} not wiped: {reason}")
                continue
            self.vault.registry.record_wipe(item, self._recorder_file(task))
            wiped += 1
        return wiped

    # -- control and progress -------------------------------------------------

    def cancel(self, reason: str) -> None:
        """Stop pulling: the file being read is abandoned, queued files are left for the next dock."""
        self.cancel_reason = reason
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def skip_unpulled(self, task: FileTask) -> None:
        """Account for a queued file not pulled because the session was cancelled."""
        with self._lock:
            self.files_done += 1
            self.summary.tasks.append(task)
        self._flush_when_all_decided()

    @property
    def finished(self) -> bool:
        with self._lock:
            return self.discovered_all and self.files_done >= self.files_total and self.in_flight == 0

    def counts(self) -> dict:
        s = self.summary
        return {
            "files_found": self.files_total,
            "files_new": s.new,
            "files_duplicate": s.duplicate,
            "files_known": s.known,
            "files_failed": s.failed,
            "bytes_new": s.bytes_new,
        }

    def _state(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.finished:
            return "done"
        return "waiting: vault disk full" if self.waiting_for_space else "pulling"

    def status(self) -> dict:
        """Live progress for ``custody status``: file n of m, bytes, rate, ETA."""
        with self._lock:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            rate = self.bytes_done / elapsed
            remaining = max(self.bytes_total - self.bytes_done, 0)
            return {
                "session": self.session_id,
                "serial": self.media.serial,
                "kind": self.media.kind,
                "profile": self.media.profile_name,
                "device": self.media.identity.devnode if self.media.identity else str(self.media.root),
                "docked_at": to_text(self.docked_at),
                "state": self._state(),
                "files_done": self.files_done,
                "files_total": self.files_total,
                "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total,
                "rate_bytes_per_second": round(rate),
                "eta_seconds": round(remaining / rate) if rate > 0 and remaining else 0,
                "reading": list(self.reading),
                **self.counts(),
                "errors": self.errors[-5:],
            }
