"""The media job queue: what is to be done to which item, how it went, and what it made.

:class:`MediaQueue` is the service (``vault.media``): it claims jobs, seals
what a job made, records facts and verdicts, and owns the queue's rules (a
whole file's foreground stage queues its full decode check; a full check's
verdict outranks a fast one). Each change goes through ``vault.change()``,
so it is locked, in one transaction, and audited. The functions below it are
the table's SQL.

A job is claimed (queued -> running, attempts + 1) in one transaction, so two
runners never take the same job; a runner that dies leaves its jobs running,
and the next runner to open the vault as writer puts them back in the queue.
A job whose run fails (a crash, a time-out) goes back to the queue until it
has failed ``max_attempts`` times, then stays failed with its last error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from custody.vault import derivatives, replica_queue
from custody.vault.catalog import Catalog, Item
from custody.vault.derivatives import Derivative, MadeCopy
from custody.vault.items import format_item_id
from custody.vault.objects import StagedObject
from custody.vault.timestamps import to_text

if TYPE_CHECKING:
    from custody.vault.vault import Vault

# The foreground media stage of an item (one decrypted copy, then each step): today, metadata.
MEDIA = "media"
# The full decode check: slow, low priority, one at a time, after the foreground stage.
DECODE = "decode-check"


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    item: int
    state: str
    attempts: int
    last_error: str | None
    queued_at: str
    started_at: str | None
    finished_at: str | None
    seconds: float | None

    def as_dict(self) -> dict:
        return asdict(self)


class MediaQueue:
    """The media work of an open vault (``vault.media``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def claim(self, kind: str = MEDIA) -> Job | None:
        """Take the oldest queued job of ``kind``, or None when there is none to take."""
        with self.vault.change() as change:
            return claim(change.catalog, change.at, kind)

    def finish(
        self, job: Job, facts: dict, seconds: float, made: Iterable[MadeCopy] = ()
    ) -> list[Derivative]:
        """Seal the derivatives ``made`` and commit them with the item's facts and the job's end, together.

        Each of ``made`` (a MadeCopy) names a file and how it was made.
        Sealing runs outside the vault's lock (it takes as long as the copy is
        big). A crash between storing an object and the commit leaves an
        intent the next open turns into a removal, so no object is orphaned
        and the job, queued again, is done once. Raise Vault.ItemNotFound.
        """
        objects = self.vault.objects
        staged: list[tuple[MadeCopy, StagedObject]] = []
        try:
            for copy in made:
                with open(copy.path, "rb") as source:
                    size = os.fstat(source.fileno()).st_size
                    staged.append((copy, objects.stage(source, size)))
            return self._commit(job, facts, seconds, staged)
        finally:
            for _copy, obj in staged:
                objects.discard(obj)  # nothing left once stored

    def _commit(
        self, job: Job, facts: dict, seconds: float, staged: list[tuple[MadeCopy, StagedObject]]
    ) -> list[Derivative]:
        vault = self.vault
        with vault.serialized():
            item = vault.catalog.item(job.item)
            if item is None:
                raise vault.ItemNotFound(ref=format_item_id(job.item))
            with vault.change() as change:
                intents = [
                    derivatives.add_intent(change.catalog, job.item, copy.role, obj.sha256, change.at)
                    for copy, obj in staged
                ]
            try:
                for _copy, obj in staged:
                    vault.objects.store_staged(obj)
                with vault.change() as change:
                    for copy, obj in staged:
                        record = {
                            "sha256": obj.sha256,
                            "size": obj.size,
                            "key_id": vault.master.key_id,
                            "method": copy.method,
                            "tool": copy.tool,
                            "arguments": copy.arguments,
                            "source_sha256": item.sha256,
                            "started_at": copy.started_at,
                            "finished_at": copy.finished_at,
                            "made_by": vault.actor,
                        }
                        derivatives.insert(change.catalog, job.item, copy.role, record)
                        replica_queue.queue_object(
                            change.catalog, vault.settings.targets, obj.sha256, obj.size, change.at
                        )
                        provenance = {k: v for k, v in record.items() if k not in ("key_id", "made_by")}
                        change.record("derivative-made", job.item, {"role": copy.role, **provenance})
                    earlier = (facts_of(change.catalog, job.item) or {}).get("integrity") or {}
                    if earlier.get("level") == "full":
                        facts["integrity"] = earlier  # a full decode check's verdict outranks the fast one
                    store_facts(change.catalog, job.item, facts, change.at)
                    _read_recording_window(change, item, facts)
                    finish(change.catalog, job.id, change.at, seconds)
                    if (facts.get("integrity") or {}).get("result") == "ok":
                        enqueue(change.catalog, DECODE, job.item, change.at)
                    for intent in intents:
                        derivatives.remove_intent(change.catalog, intent)
            except BaseException:
                with vault.change() as change:
                    for (_copy, obj), intent in zip(staged, intents, strict=True):
                        if not derivatives.is_referenced(change.catalog, obj.sha256):
                            vault.objects.path_for(obj.sha256).unlink(missing_ok=True)
                        derivatives.remove_intent(change.catalog, intent)
                raise
            return derivatives.of_item(vault.catalog, job.item)

    def finish_decode(self, job: Job, errors: list[str], seconds: float) -> None:
        """Record the full decode check's verdict on the item and mark the job done, together."""
        with self.vault.change() as change:
            facts = facts_of(change.catalog, job.item) or {}
            if errors:
                facts["integrity"] = {"result": "damaged", "level": "full", "errors": errors}
                change.record("damage-found", job.item, {"level": "full", "errors": errors[:3]})
            else:
                facts["integrity"] = {"result": "ok", "level": "full", "errors": []}
            store_facts(change.catalog, job.item, facts, change.at)
            finish(change.catalog, job.id, change.at, seconds)

    def put_back(self, job: Job, error: str) -> None:
        """Queue a job again without counting its run as an attempt (the vault's disk was full:
        the station's state, not the job's failure)."""
        with self.vault.change() as change:
            change.catalog.db.execute(
                "UPDATE jobs SET state = 'queued', attempts = max(attempts - 1, 0), last_error = ?, "
                "finished_at = ? WHERE id = ?",
                [error[:2000], change.at, job.id],
            )

    def fail(self, job: Job, error: str, max_attempts: int) -> str:
        """Record a failed run; return the job's state (queued again, or failed for good)."""
        with self.vault.change() as change:
            state = fail(change.catalog, job.id, error, change.at, max_attempts)
            if state == "failed":
                change.record(
                    "media-job-failed", job.item, {"job": job.id, "kind": job.kind, "error": error[:500]}
                )
        return state

    def requeue_running(self) -> int:
        """Put jobs a killed runner left running back in the queue; return how many."""
        with self.vault.change() as change:
            return requeue_running(change.catalog)

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """Jobs by state (of one ``kind``, or all of them for whoever may see the status)."""
        with self.vault.serialized():
            if kind is None:
                self.vault.authorize("status")
            return counts(self.vault.catalog, kind)

    def failed(self, limit: int = 20) -> list[Job]:
        """Jobs failed for good, of items the caller may see."""
        with self.vault.serialized():
            self.vault.authorize("status")
            return self.vault.cases.visible_records(
                failed(self.vault.catalog, limit), lambda job: ([job.item], None)
            )

    def facts(self, item: Item) -> dict | None:
        """What the media work read from an item (container, streams, integrity...), None before it ran."""
        with self.vault.serialized():
            return facts_of(self.vault.catalog, item.number)

    def derivatives(self, item: Item) -> list[Derivative]:
        """The playable copy and thumbnail made of an item."""
        with self.vault.serialized():
            return derivatives.of_item(self.vault.catalog, item.number)


def _read_recording_window(change, item: Item, facts: dict) -> None:
    """An item that came with no recording time (ingested by hand, uploaded) takes it from its
    media facts, as a docked file does: the container's creation time (with its duration), else
    a photo's EXIF capture time (local time where no offset is written). Audited; inside the
    caller's change. Items with a recording time keep it."""
    if item.recorded_start is not None:
        return
    start, source = None, None
    if facts.get("creation_time"):
        start, source = datetime.fromisoformat(facts["creation_time"]).astimezone(UTC), "container"
    elif facts.get("capture_time"):
        taken = datetime.fromisoformat(facts["capture_time"])
        start, source = (taken if taken.tzinfo else taken.astimezone()), "exif"
    if start is None:
        return
    end = start + timedelta(seconds=facts["duration"]) if facts.get("duration") else start
    change.catalog.set_recording_window(item.number, to_text(start), to_text(end), source)
    change.record(
        "recording-time-read",
        item.number,
        {"recorded_start": to_text(start), "recorded_end": to_text(end), "source": source},
    )


def enqueue(catalog: Catalog, kind: str, item: int, at: str) -> None:
    catalog.db.execute(
        "INSERT OR IGNORE INTO jobs (kind, item, state, queued_at) VALUES (?, ?, 'queued', ?)",
        [kind, item, at],
    )


def claim(catalog: Catalog, at: str, kind: str = MEDIA) -> Job | None:
    """Take the oldest queued job of ``kind`` (the caller holds a write transaction).

    A decode check is only taken when no foreground media job waits: it must
    never delay them.
    """
    blocker = (
        " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.state = 'queued' AND j.kind = ?)"
        if kind != MEDIA
        else ""
    )
    params = [kind, MEDIA] if blocker else [kind]
    row = catalog.db.execute(
        f"SELECT id FROM jobs WHERE state = 'queued' AND kind = ?{blocker} ORDER BY id LIMIT 1", params
    ).fetchone()
    if row is None:
        return None
    catalog.db.execute(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?, finished_at = NULL WHERE id = ?",
        [at, row[0]],
    )
    return job(catalog, row[0])


def job(catalog: Catalog, job_id: int) -> Job:
    [row] = catalog.db.query("SELECT * FROM jobs WHERE id = ?", [job_id])
    return Job(**row)


def finish(catalog: Catalog, job_id: int, at: str, seconds: float) -> None:
    catalog.db.execute(
        "UPDATE jobs SET state = 'done', finished_at = ?, seconds = ?, last_error = NULL WHERE id = ?",
        [at, seconds, job_id],
    )


def fail(catalog: Catalog, job_id: int, error: str, at: str, max_attempts: int) -> str:
    """Put a failed run back in the queue, or fail the job for good after ``max_attempts``; return its state."""
    attempts = catalog.db.execute("SELECT attempts FROM jobs WHERE id = ?", [job_id]).fetchone()[0]
    state = "failed" if attempts >= max_attempts else "queued"
    catalog.db.execute(
        "UPDATE jobs SET state = ?, last_error = ?, finished_at = ? WHERE id = ?",
        [state, error[:2000], at, job_id],
    )
    return state


def requeue_running(catalog: Catalog) -> int:
    """Put jobs a stopped or killed runner left running back in the queue; return how many."""
    return catalog.db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'").rowcount


def counts(catalog: Catalog, kind: str | None = None) -> dict[str, int]:
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    return {
        row[0]: row[1]
        for row in catalog.db.execute(f"SELECT state, count(*) FROM jobs {where} GROUP BY state", params)
    }


def failed(catalog: Catalog, limit: int = 20) -> list[Job]:
    rows = catalog.db.query(f"SELECT * FROM jobs WHERE state = 'failed' ORDER BY id DESC LIMIT {int(limit)}")
    return [Job(**row) for row in rows]


def store_facts(catalog: Catalog, item: int, facts: dict, at: str) -> None:
    catalog.db.execute(
        "INSERT INTO media (item, facts, probed_at) VALUES (?, ?, ?) "
        "ON CONFLICT (item) DO UPDATE SET facts = excluded.facts, probed_at = excluded.probed_at",
        [item, json.dumps(facts, sort_keys=True, ensure_ascii=False), at],
    )


def facts_of(catalog: Catalog, item: int) -> dict | None:
    row = catalog.db.execute("SELECT facts FROM media WHERE item = ?", [item]).fetchone()
    return json.loads(row[0]) if row else None
