"""Media jobs: work on sealed originals, taken from the catalog's persistent queue.

``custody media run`` and the daemon run them with a bounded pool of
workers, one media tool process each. Each job reads a private decrypted
copy of the original (media tools need a seekable file), never the recorder.
The foreground job of an item: metadata, the fast integrity check, the
playable copy and the thumbnail (sealed as derivatives), then continuity
analysis of its recorder's segments around it.
A job that fails (tool crashed, killed by its limits) is tried again up to
``[media] max_attempts`` times; a file the tool reads but does not understand
is a result ("unreadable"), not a failure, and a full vault disk is the
station's state: the daemon's job waits for room without losing an attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from custody.config import Settings
from custody.errors import CustodyError
from custody.ingestd import continuity
from custody.ingestd.media import (
    ToolFailed,
    decode_check,
    fast_check,
    make_playable,
    make_thumbnail,
    probe_facts,
)
from custody.vault import Vault
from custody.vault.derivatives import MadeCopy
from custody.vault.items import format_item_id
from custody.vault.media_queue import DECODE, MEDIA, Job
from custody.vault.objects import VaultDiskFull
from custody.vault.timestamps import from_text, to_text

log = logging.getLogger(__name__)

DISK_FULL_WAIT_SECONDS = 10  # how long media work waits after meeting a full vault disk


@dataclass
class JobSummary:
    done: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"done": self.done, "retried": self.retried, "failed": self.failed, "errors": self.errors}


class MediaJobs:
    """Runs queued media jobs against one vault (opened as the writer)."""

    def __init__(self, vault: Vault, settings: Settings) -> None:
        self.vault = vault
        self.settings = settings.media
        self.continuity = settings.continuity
        self.workers = self.settings.workers or os.cpu_count() or 1
        self.summary = JobSummary()
        self._lock = threading.Lock()
        self._continuity_lock = threading.Lock()
        self._until_empty = True
        self._room_awaited_until = 0.0  # (time.monotonic()) a full vault disk holds media work back

    def run(
        self,
        stop: threading.Event | None = None,
        until_empty: bool = True,
        pause: Callable[[], bool] | None = None,
    ) -> JobSummary:
        """Work the queue with the pool until it is empty (``until_empty``) or ``stop`` is set.

        While ``pause()`` is true no new job is started (the daemon pauses media
        work while recorders are being pulled: the 24-hour window comes first).
        """
        stop = stop or threading.Event()
        self._pause = pause or (lambda: False)
        self._until_empty = until_empty
        requeued = self.vault.media.requeue_running()
        if requeued:
            log.warning("%d media jobs were cut off by an earlier stop; queued again", requeued)
        threads = [
            threading.Thread(
                target=self._work, args=(stop, until_empty, MEDIA), name=f"media-{n}", daemon=True
            )
            for n in range(self.workers)
        ]
        # One full decode check at a time, at the lowest priority, only when no foreground job waits.
        threads.append(
            threading.Thread(
                target=self._work, args=(stop, until_empty, DECODE), name="decode-check", daemon=True
            )
        )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.summary

    def _work(self, stop: threading.Event, until_empty: bool, kind: str) -> None:
        while not stop.is_set():
            if self._pause() or time.monotonic() < self._room_awaited_until:
                stop.wait(0.5)
                continue
            job = self.vault.media.claim(kind)
            if job is None:
                # A decode check may wait behind foreground jobs other workers still run.
                if until_empty and (kind == MEDIA or not self._foreground_pending()):
                    return
                stop.wait(0.2 if until_empty else 1.0)
                continue
            try:
                self.run_job(job)
            except Exception:  # a worker never dies: a job it cannot finish must not be left running
                log.exception("media job %d (%s of item %d): its runner failed", job.id, job.kind, job.item)
                with contextlib.suppress(Exception):
                    self.vault.media.fail(
                        job, "internal error in the media runner", self.settings.max_attempts
                    )

    def _foreground_pending(self) -> bool:
        counts = self.vault.media.counts(MEDIA)
        return bool(counts.get("queued") or counts.get("running"))

    def foreground_stage(self, original: Path) -> dict:
        """Metadata, then the fast integrity check; return the facts with an ``integrity`` verdict.

        ``integrity.result`` is ``ok``, ``damaged`` (a recognised format that
        does not read whole; ffmpeg's first error lines kept) or
        ``unreadable`` (not media ffmpeg knows).
        """
        limit = self.settings.memory_limit_mb << 20
        timeout = self.settings.probe_timeout_seconds
        facts = probe_facts(original, self.settings.ffprobe, timeout, limit)
        if "unreadable" in facts:
            result = "damaged" if facts.pop("recognised") else "unreadable"
            facts["integrity"] = {"result": result, "level": "probe", "errors": facts.pop("errors")}
            return facts
        errors = fast_check(original, self.settings.ffmpeg, timeout, limit)
        facts["integrity"] = {"result": "damaged" if errors else "ok", "level": "fast", "errors": errors}
        return facts

    def make_copies(self, original: Path, facts: dict) -> list[MadeCopy]:
        """Make the playable copy and the thumbnail beside ``original``; return what was made.

        For a damaged original a copy is made when ffmpeg can; when it cannot,
        that is written into ``facts`` (a result: trying again would not
        help). For a whole original, raise ToolFailed so the job is retried.
        """
        damaged = (facts.get("integrity") or {}).get("result") != "ok"
        made: list[MadeCopy] = []
        try:
            for role, make in (("playable", make_playable), ("thumbnail", make_thumbnail)):
                target = original.with_name(f"{original.name}.{role}")
                try:
                    copy = make(original, target, facts, self.settings)
                except ToolFailed as exc:
                    if not damaged:
                        raise
                    facts[role] = {"error": str(exc)}
                    continue
                if copy is not None:
                    made.append(copy)
        except BaseException:
            for copy in made:
                copy.path.unlink(missing_ok=True)  # plaintext never outlives its job
            raise
        return made

    def run_job(self, job: Job) -> None:
        """Run one claimed job and record how it went."""
        started = time.monotonic()
        made: list[MadeCopy] = []
        try:
            if job.kind not in (MEDIA, DECODE):
                raise ToolFailed(f"unknown job kind {job.kind!r}")
            with self.vault.originals.plaintext_copy(job.item) as original:
                try:
                    if job.kind == MEDIA:
                        facts = self.foreground_stage(original)
                        made = self.make_copies(original, facts)
                        self.vault.media.finish(job, facts, time.monotonic() - started, made)
                    else:
                        errors = decode_check(
                            original,
                            self.settings.ffmpeg,
                            self.settings.decode_timeout_seconds,
                            self.settings.memory_limit_mb << 20,
                        )
                        self.vault.media.finish_decode(job, errors, time.monotonic() - started)
                finally:
                    for copy in made:
                        copy.path.unlink(missing_ok=True)  # plaintext: sealed in the vault or not kept
        except Exception as exc:
            if isinstance(exc, VaultDiskFull) and not self._until_empty:
                # The station's disk, not the job: the daemon's job waits for room without losing
                # an attempt (three quick tries at a full disk failed it for good). A run told to
                # empty the queue still counts it, or it would never end.
                self.vault.media.put_back(job, exc.message)
                self._room_awaited_until = time.monotonic() + DISK_FULL_WAIT_SECONDS
                with self._lock:
                    self.summary.retried += 1
                log.warning(
                    "media job %d (%s of item %d): %s; queued again, media work waits %d s",
                    job.id, job.kind, job.item, exc.message, DISK_FULL_WAIT_SECONDS,
                )  # fmt: skip
                return
            # Every failure ends this job alone (a full vault disk, a tool, a bug): before, anything
            # but a tool's or the disk's error killed the worker and left the job "running" for ever.
            if isinstance(exc, CustodyError):
                message = exc.message
            elif isinstance(exc, ToolFailed | OSError):
                message = str(exc)
            else:
                log.exception("media job %d (%s of item %d) failed", job.id, job.kind, job.item)
                message = f"internal error: {type(exc).__name__}: {exc}"
            state = self.vault.media.fail(job, message, self.settings.max_attempts)
            with self._lock:
                if state == "failed":
                    self.summary.failed += 1
                    self.summary.errors.append(f"job {job.id} ({job.kind}) failed for good: {message}")
                else:
                    self.summary.retried += 1
            log.warning("media job %d (%s of item %d): %s; %s", job.id, job.kind, job.item, message, state)
            if job.kind == MEDIA and state == "failed":
                # No longer awaited: the analysis its neighbours left to the last job is made now.
                try:
                    self.check_continuity(job.item)
                except Exception:
                    log.exception("continuity analysis around item %d failed", job.item)
            return
        if job.kind == MEDIA:
            self.check_continuity(job.item)
        with self._lock:
            self.summary.done += 1

    def check_continuity(self, number: int) -> list:
        """Look for interruptions, overlaps and order problems around item ``number``; return new findings.

        Its recorder's segments starting within a day either side are
        compared (a shift's recordings, bounded however long the history),
        once none of those items waits for its media job.
        """
        item = self.vault.item_number(number)
        if item is None or not item.recorder_serial or not item.recorded_start:
            return []
        # One analysis at a time: one that read the segments before another
        # job's facts landed must not record after that job's analysis.
        with self._continuity_lock:
            return self._check_continuity(item)

    def _check_continuity(self, item) -> list:
        start = from_text(item.recorded_start)
        since, until = to_text(start - timedelta(days=1)), to_text(start + timedelta(days=1))
        # Findings are stable once made: while a neighbour's media is unread, whether it fills a
        # hole is unknown. The last of the recorder's jobs to end makes the analysis.
        if self.vault.continuity.segments_awaiting_media(item.recorder_serial, since, until):
            return []
        rows = self.vault.continuity.recording_segments(item.recorder_serial, since, until)
        segments = [s for s in (continuity.Segment.from_row(row) for row in rows) if s is not None]
        found = continuity.find(
            segments,
            item.recorder_serial,
            self.continuity.gap_tolerance_seconds,
            self.continuity.run_break_seconds,
        )
        new = self.vault.continuity.record(item.recorder_serial, [s.item for s in segments], found)
        for finding in new:
            log.warning(
                "%s: %s of %.1f s on recorder %s between %s and %s",
                finding.finding_id,
                finding.kind,
                finding.seconds,
                finding.recorder_serial,
                format_item_id(finding.before_item),
                format_item_id(finding.after_item),
            )
        return new
