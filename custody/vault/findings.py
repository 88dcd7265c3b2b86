"""Continuity findings in the catalog: holes, overlaps and order problems between a recorder's segments.

What counts as a finding is decided by ``custody.ingestd.continuity``; this
keeps them, open until a clerk explains them (or withdrawn when a late
segment fills the hole). Plain SQL; the Vault service audits each change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id

INTERRUPTION = "interruption"
OVERLAP = "overlap"
OUT_OF_ORDER = "out-of-order"


@dataclass(frozen=True)
class ContinuityFinding:
    """A hole, an overlap or an order problem between two of a recorder's consecutive segments."""

    id: int
    kind: str
    recorder_serial: str
    officer: str | None
    before_item: int
    after_item: int
    seconds: float
    found_at: str
    state: str  # open, explained, or withdrawn (a segment found later filled the hole)
    closed_at: str | None
    closed_by: str | None
    reason: str | None

    @property
    def finding_id(self) -> str:
        return format_gap_id(self.id)

    def as_dict(self) -> dict:
        fields = asdict(self)
        fields.update(
            id=self.finding_id,
            before_item=format_item_id(self.before_item),
            after_item=format_item_id(self.after_item),
        )
        return fields


def format_gap_id(number: int) -> str:
    return f"GAP-{number:06d}"


def parse_gap_id(text: str) -> int | None:
    """Return the number in "GAP-000012" (or "12"); None when it is not one."""
    digits = text.strip().upper().removeprefix("GAP-")
    return int(digits) if digits.isdigit() and int(digits) > 0 else None


def recording_segments(catalog: Catalog, serial: str, since: str, until: str) -> list[dict]:
    """Return a recorder's recordings (video or audio) starting in [since, until]: item, start, end,
    session, path.

    Items a later item superseded (the recorder changed the file) are left
    out; the end is the recorded end, else start plus ffprobe's duration.
    """
    rows = catalog.db.query(
        """
        SELECT i.id AS item, i.recorded_start AS start, i.recorded_end AS end_time,
               i.dock_session AS session, i.source_path AS path, i.credited_officer AS officer,
               m.facts AS facts
        FROM items i LEFT JOIN media m ON m.item = i.id
        WHERE i.recorder_serial = ? AND i.recorded_start BETWEEN ? AND ?
          AND NOT EXISTS (SELECT 1 FROM items later WHERE later.previous_item = i.id)
        ORDER BY i.recorded_start, i.id
        """,
        [serial, since, until],
    )
    segments = []
    for row in rows:
        facts = json.loads(row.pop("facts")) if row.get("facts") else {}
        # Continuity is about recordings: video or audio segments. A photo, a document, a file that
        # is no media, or one whose media job has not read it yet is not a segment (a job not yet
        # run analyses its item again when it ends).
        if facts.get("photo") or not (facts.get("video_codec") or facts.get("audio_codec")):
            continue
        row["duration"] = facts.get("duration")
        segments.append(row)
    return segments


def segments_awaiting_media(catalog: Catalog, serial: str, since: str, until: str) -> int:
    """Count a recorder's items starting in [since, until] whose media job is still to run.

    Until their media is read nobody knows whether they are segments; an
    analysis made before would record findings their facts then withdraw.
    """
    rows = catalog.db.query(
        """
        SELECT COUNT(*) AS waiting FROM items i JOIN jobs j ON j.item = i.id AND j.kind = 'media'
        WHERE i.recorder_serial = ? AND i.recorded_start BETWEEN ? AND ?
          AND j.state IN ('queued', 'running')
        """,
        [serial, since, until],
    )
    return next(iter(rows))["waiting"]


def upsert_finding(catalog: Catalog, finding: dict, at: str) -> int | None:
    """Record a finding unless it is already known; return its id when it is new."""
    cursor = catalog.db.execute(
        "INSERT INTO continuity (kind, recorder_serial, officer, before_item, after_item, seconds, found_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, before_item, after_item) DO NOTHING",
        [
            finding["kind"],
            finding["recorder_serial"],
            finding["officer"],
            finding["before_item"],
            finding["after_item"],
            finding["seconds"],
            at,
        ],
    )
    return cursor.lastrowid if cursor.rowcount else None


def open_findings_between(catalog: Catalog, serial: str, items: list[int]) -> list[ContinuityFinding]:
    """Open findings of a recorder whose two items are both among ``items``."""
    if not items:
        return []
    marks = ",".join("?" * len(items))
    rows = catalog.db.query(
        f"SELECT * FROM continuity WHERE recorder_serial = ? AND state = 'open' "
        f"AND before_item IN ({marks}) AND after_item IN ({marks})",
        [serial, *items, *items],
    )
    return [ContinuityFinding(**row) for row in rows]


def close_finding(catalog: Catalog, number: int, state: str, at: str, actor: str, reason: str) -> None:
    catalog.db.execute(
        "UPDATE continuity SET state = ?, closed_at = ?, closed_by = ?, reason = ? WHERE id = ?",
        [state, at, actor, reason, number],
    )


def finding(catalog: Catalog, number: int) -> ContinuityFinding | None:
    rows = list(catalog.db.query("SELECT * FROM continuity WHERE id = ?", [number]))
    return ContinuityFinding(**rows[0]) if rows else None


def findings(
    catalog: Catalog, open_only: bool = False, serial: str | None = None, item: int | None = None
) -> list[ContinuityFinding]:
    where, params = [], []
    if open_only:
        where.append("state = 'open'")
    if serial:
        where.append("recorder_serial = ?")
        params.append(serial)
    if item is not None:
        where.append("(before_item = ? OR after_item = ?)")
        params += [item, item]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = catalog.db.query(f"SELECT * FROM continuity {clause} ORDER BY id", params)
    return [ContinuityFinding(**row) for row in rows]
