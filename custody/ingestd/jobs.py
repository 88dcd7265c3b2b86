"""Media jobs: work on sealed originals, taken from the catalog's persistent queue.

``custody media run`` and the daemon run them with a bounded pool of
workers, one media tool process each. Each job reads a private decrypted
copy of the original (media tools need a seekable file), never the recorder.
A job that fails (tool crashed, killed by its limits) is tried again up to
``[media] max_attempts`` times; a file the tool reads but does not understand
is a result ("unreadable"), not a failure.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from custody.config import Settings
from custody.ingestd.media import ToolFailed, decode_check, fast_check, probe_facts
from custody.vault import Vault
from custody.vault.jobs import DECODE, MEDIA, Job

log = logging.getLogger(__name__)


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
        self.workers = self.settings.workers or os.cpu_count() or 1
        self.summary = JobSummary()
        self._lock = threading.Lock()

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
        requeued = self.vault.requeue_running_jobs()
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
            if self._pause():
                stop.wait(0.5)
                continue
            job = self.vault.claim_job(kind)
            if job is None:
                # A decode check may wait behind foreground jobs other workers still run.
                if until_empty and (kind == MEDIA or not self._foreground_pending()):
                    return
                stop.wait(0.2 if until_empty else 1.0)
                continue
            self.run_job(job)

    def _foreground_pending(self) -> bool:
        counts = self.vault.job_counts_of(MEDIA)
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

    def run_job(self, job: Job) -> None:
        """Run one claimed job and record how it went."""
        started = time.monotonic()
        try:
            if job.kind not in (MEDIA, DECODE):
                raise ToolFailed(f"unknown job kind {job.kind!r}")
            with self.vault.plaintext_copy(job.item) as original:
                if job.kind == MEDIA:
                    facts = self.foreground_stage(original)
                else:
                    errors = decode_check(
                        original,
                        self.settings.ffmpeg,
                        self.settings.decode_timeout_seconds,
                        self.settings.memory_limit_mb << 20,
                    )
        except (ToolFailed, Vault.ItemDamaged, OSError) as exc:
            message = exc.message if isinstance(exc, Vault.ItemDamaged) else str(exc)
            state = self.vault.fail_job(job, message, self.settings.max_attempts)
            with self._lock:
                if state == "failed":
                    self.summary.failed += 1
                    self.summary.errors.append(f"job {job.id} ({job.kind}) failed for good: {message}")
                else:
                    self.summary.retried += 1
            log.warning("media job %d (%s of item %d): %s; %s", job.id, job.kind, job.item, message, state)
            return
        if job.kind == MEDIA:
            self.vault.finish_media_job(job, facts, time.monotonic() - started)
        else:
            self.vault.finish_decode_job(job, errors, time.monotonic() - started)
        with self._lock:
            self.summary.done += 1
