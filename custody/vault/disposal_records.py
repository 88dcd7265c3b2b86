"""Disposition records in the catalog: requests, approvals, tombstones, replica deletions.

Deleting evidence is planned, requested, approved by a second person and
executed item by item, each item either fully present or fully tombstoned:
the tombstone is committed first (state "deleting"), then the item's catalog
rows go, then its object files; only then is the tombstone "done". A crash
anywhere is finished by the next open. Plain SQL; the Vault service wraps
each change with its audit event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id

# Tables holding rows of an item, and the column naming it (the items row goes last).
ITEM_ROWS = (
    ("tags", "item"),
    ("jobs", "item"),
    ("media", "item"),
    ("derivatives", "item"),
    ("recorder_files", "item"),
    ("continuity", "before_item"),
    ("continuity", "after_item"),
    ("item_categories", "item"),
    ("holds", "item"),
    ("derivative_intents", "item"),
    # A case's written record or linked footage: the links and the record's row go (the archived
    # file's index, the audit chain and the tombstone keep what it was).
    ("case_links", "footage"),
    ("case_links", "document"),
    ("recording_exemptions", "document"),
    ("documents", "item"),
)


@dataclass(frozen=True)
class DispositionRequest:
    id: int
    kind: str  # "delete", or "remove-category" (shortening retention needs approval too)
    category: str | None
    items: list[int]
    reason: str
    requested_at: str
    requested_by: str
    approved_at: str | None
    approved_by: str | None
    executed_at: str | None
    executed_by: str | None
    state: str  # requested, approved, executed
    result: dict | None

    @property
    def request_id(self) -> str:
        return format_request_id(self.id)

    def as_dict(self) -> dict:
        return {
            "id": self.request_id,
            "kind": self.kind,
            "category": self.category,
            "items": [format_item_id(n) for n in self.items],
            "reason": self.reason,
            "requested_at": self.requested_at,
            "requested_by": self.requested_by,
            "approved_at": self.approved_at,
            "approved_by": self.approved_by,
            "executed_at": self.executed_at,
            "executed_by": self.executed_by,
            "state": self.state,
            "result": self.result,
        }


def format_request_id(number: int) -> str:
    return f"REQ-{number:06d}"


def parse_request_id(text: str) -> int | None:
    digits = text.strip().upper().removeprefix("REQ-")
    return int(digits) if digits.isdigit() and int(digits) > 0 else None


def add_request(
    catalog: Catalog, items: list[int], reason: str, at: str, actor: str, category: str | None = None
) -> int:
    kind = "remove-category" if category else "delete"
    row = {"kind": kind, "category": category, "items": json.dumps(items), "reason": reason}
    return (
        catalog.db["disposition_requests"]
        .insert({**row, "requested_at": at, "requested_by": actor})
        .last_rowid
    )


def remove_item_category(catalog: Catalog, item: int, category: str) -> bool:
    return bool(
        catalog.db.execute(
            "DELETE FROM item_categories WHERE item = ? AND category = ?", [item, category]
        ).rowcount
    )


def request(catalog: Catalog, number: int) -> DispositionRequest | None:
    rows = list(catalog.db.query("SELECT * FROM disposition_requests WHERE id = ?", [number]))
    if not rows:
        return None
    row = rows[0]
    return DispositionRequest(
        **{
            **row,
            "items": json.loads(row["items"]),
            "result": json.loads(row["result"]) if row["result"] else None,
        }
    )


def requests(catalog: Catalog) -> list[DispositionRequest]:
    numbers = [row[0] for row in catalog.db.execute("SELECT id FROM disposition_requests ORDER BY id")]
    return [r for r in (request(catalog, n) for n in numbers) if r is not None]


def approve(catalog: Catalog, number: int, at: str, actor: str) -> None:
    catalog.db.execute(
        "UPDATE disposition_requests SET state = 'approved', approved_at = ?, approved_by = ? WHERE id = ?",
        [at, actor, number],
    )


def executed(catalog: Catalog, number: int, at: str, actor: str, result: dict) -> None:
    catalog.db.execute(
        "UPDATE disposition_requests SET state = 'executed', executed_at = ?, executed_by = ?, result = ? WHERE id = ?",
        [at, actor, json.dumps(result), number],
    )


def add_tombstone(
    catalog: Catalog, item: int, record: dict, request_number: int, at: str, actor: str
) -> None:
    catalog.db.execute(
        "INSERT INTO tombstones (item, record, request, executed_at, executed_by, state) "
        "VALUES (?, ?, ?, ?, ?, 'deleting')",
        [item, json.dumps(record, sort_keys=True), request_number, at, actor],
    )


def tombstone(catalog: Catalog, item: int) -> dict | None:
    row = catalog.db.execute(
        "SELECT record, request, executed_at, executed_by, state FROM tombstones WHERE item = ?", [item]
    ).fetchone()
    if row is None:
        return None
    return {
        **json.loads(row[0]),
        "request": format_request_id(row[1]),
        "executed_at": row[2],
        "executed_by": row[3],
        "state": row[4],
    }


def tombstone_of_content(catalog: Catalog, sha256: str) -> dict | None:
    """The tombstone of an item whose original had this SHA-256 (the latest), or None."""
    row = catalog.db.execute(
        "SELECT item FROM tombstones WHERE json_extract(record, '$.sha256') = ? ORDER BY item DESC LIMIT 1",
        [sha256],
    ).fetchone()
    return tombstone(catalog, row[0]) if row else None


def tombstones(catalog: Catalog, state: str | None = None) -> list[dict]:
    where, params = ("WHERE state = ?", [state]) if state else ("", [])
    numbers = [
        row[0] for row in catalog.db.execute(f"SELECT item FROM tombstones {where} ORDER BY item", params)
    ]
    return [t for t in (tombstone(catalog, n) for n in numbers) if t is not None]


def set_tombstone_state(catalog: Catalog, item: int, state: str) -> None:
    catalog.db.execute("UPDATE tombstones SET state = ? WHERE item = ?", [state, item])


def delete_item_rows(catalog: Catalog, item: int) -> None:
    """Remove every catalog row of an item (the audit chain and the tombstone keep its story)."""
    for table, column in ITEM_ROWS:
        catalog.db.execute(f"DELETE FROM {table} WHERE {column} = ?", [item])
    catalog.db.execute("DELETE FROM items WHERE id = ?", [item])


def object_in_use(catalog: Catalog, sha256: str) -> bool:
    """True when an item, a derivative or a pending ingest still needs this object."""
    return bool(
        catalog.db.execute(
            "SELECT EXISTS (SELECT 1 FROM items WHERE sha256 = :s) OR EXISTS (SELECT 1 FROM derivatives WHERE sha256 = :s) "
            "OR EXISTS (SELECT 1 FROM ingest_intents WHERE sha256 = :s) "
            "OR EXISTS (SELECT 1 FROM derivative_intents WHERE sha256 = :s)",
            {"s": sha256},
        ).fetchone()[0]
    )


def queue_replica_deletion(catalog: Catalog, sha256: str, at: str) -> None:
    """Every target holding the object deletes it too; its replica rows go.

    An object deleted before (or whose deletion was dropped because it was in
    use again) is queued afresh: the same content can be disposed of twice.
    """
    for (target,) in catalog.db.execute("SELECT target FROM replicas WHERE sha256 = ?", [sha256]).fetchall():
        catalog.db.execute(
            "INSERT INTO replica_deletions (sha256, target, state, not_before) VALUES (?, ?, 'queued', ?) "
            "ON CONFLICT (sha256, target) DO UPDATE SET state = 'queued', not_before = excluded.not_before, "
            "last_error = NULL WHERE replica_deletions.state = 'done'",
            [sha256, target, at],
        )
    catalog.db.execute("DELETE FROM replicas WHERE sha256 = ?", [sha256])
