"""Derivatives (playable copies, thumbnails) in the catalog.

A derivative is an object like an original (sealed, named by its SHA-256),
linked to its item with its role and how it was made: the tool's version,
its exact arguments, the source's and the output's SHA-256, start and end.
Plain SQL over the catalog's connection; the Vault service wraps each change
in a transaction with its audit event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id

PLAYABLE = "playable"
THUMBNAIL = "thumbnail"
ROLES = (PLAYABLE, THUMBNAIL)


@dataclass(frozen=True)
class MadeCopy:
    """A derivative file media work made (not sealed yet), and exactly how (its provenance)."""

    role: str  # "playable" or "thumbnail"
    path: Path
    method: str  # "remux", "transcode" or "frame"
    tool: str  # the binary's version line
    arguments: list[str]  # the command line as run, input and output as placeholders
    started_at: str
    finished_at: str


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


def insert(catalog: Catalog, item: int, role: str, record: dict) -> int:
    """Record a derivative made of ``item`` (in the caller's transaction); return its row id."""
    fields = (
        "sha256",
        "size",
        "key_id",
        "method",
        "tool",
        "source_sha256",
        "started_at",
        "finished_at",
        "made_by",
    )
    row = {"item": item, "role": role, **{name: record[name] for name in fields}}
    return catalog.db["derivatives"].insert({**row, "arguments": json.dumps(record["arguments"])}).last_rowid


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
