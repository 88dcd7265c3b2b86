"""Derivatives (playable copies, thumbnails) and continuity findings in the catalog.

A derivative is an object like an original (sealed, named by its SHA-256),
linked to its item with its role and how it was made: the tool's version,
its exact arguments, the source's and the output's SHA-256, start and end.
Plain SQL over the catalog's connection; the Vault service wraps each change
in a transaction with its audit event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id

PLAYABLE = "playable"
THUMBNAIL = "thumbnail"
ROLES = (PLAYABLE, THUMBNAIL)

INTERRUPTION = "interruption"
OVERLAP = "overlap"
OUT_OF_ORDER = "out-of-order"


@dataclass(frozen=True)
class Derivative:
    id: int
    item: int
    role: str
    sha256: str
    size: int
    key_id: str
    method: str
    tool: str
    arguments: list[str]
    source_sha256: str
    started_at: str
    finished_at: str
    made_by: str

    def as_dict(self) -> dict:
        fields = asdict(self)
        fields["item"] = format_item_id(self.item)
        return fields


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


def insert(catalog: Catalog, item: int, role: str, record: dict) -> int:
    return catalog.db.execute(
        "INSERT INTO derivatives (item, role, sha256, size, key_id, method, tool, arguments, "
        "source_sha256, started_at, finished_at, made_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            item,
            role,
            record["sha256"],
            record["size"],
            record["key_id"],
            record["method"],
            record["tool"],
            json.dumps(record["arguments"]),
            record["source_sha256"],
            record["started_at"],
            record["finished_at"],
            record["made_by"],
        ],
    ).lastrowid


def of_item(catalog: Catalog, item: int) -> list[Derivative]:
    rows = catalog.db.query("SELECT * FROM derivatives WHERE item = ? ORDER BY role", [item])
    return [_derivative(row) for row in rows]


def all_objects(catalog: Catalog) -> list[tuple[int, str, str]]:
    """Return (item, role, sha256) of every derivative."""
    return [
        (row[0], row[1], row[2])
        for row in catalog.db.execute("SELECT item, role, sha256 FROM derivatives ORDER BY item, role")
    ]


def is_referenced(catalog: Catalog, sha256: str) -> bool:
    """True when an item or a derivative names this object."""
    return bool(
        catalog.db.execute(
            "SELECT EXISTS (SELECT 1 FROM items WHERE sha256 = ?) OR "
            "EXISTS (SELECT 1 FROM derivatives WHERE sha256 = ?)",
            [sha256, sha256],
        ).fetchone()[0]
    )


def add_intent(catalog: Catalog, item: int, role: str, sha256: str, at: str) -> int:
    return catalog.db.execute(
        "INSERT INTO derivative_intents (item, role, sha256, created_at) VALUES (?, ?, ?, ?)",
        [item, role, sha256, at],
    ).lastrowid


def remove_intent(catalog: Catalog, intent: int) -> None:
    catalog.db.execute("DELETE FROM derivative_intents WHERE id = ?", [intent])


def intents(catalog: Catalog) -> list[dict]:
    return list(catalog.db.query("SELECT * FROM derivative_intents ORDER BY id"))


def _derivative(row: dict) -> Derivative:
    return Derivative(**{**row, "arguments": json.loads(row["arguments"])})


# -- continuity ---------------------------------------------------------------


def recording_segments(catalog: Catalog, serial: str, since: str, until: str) -> list[dict]:
    """Return a recorder's recordings starting in [since, until]: item, start, end, session, path.

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
        if facts.get("photo"):
            continue
        row["duration"] = facts.get("duration")
        segments.append(row)
    return segments


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
