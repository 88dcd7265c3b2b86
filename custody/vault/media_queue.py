"""The media job queue in the catalog: what is to be done to which item, and how it went.

A job is claimed (queued -> running, attempts + 1) in one transaction, so two
runners never take the same job; a runner that dies leaves its jobs running,
and the next runner to open the vault as writer puts them back in the queue.
A job whose run fails (a crash, a time-out) goes back to the queue until it
has failed ``max_attempts`` times, then stays failed with its last error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from custody.vault.catalog import Catalog

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


def facts(catalog: Catalog, item: int) -> dict | None:
    row = catalog.db.execute("SELECT facts FROM media WHERE item = ?", [item]).fetchone()
    return json.loads(row[0]) if row else None
