"""The export registry in the catalog: one row per disc export, good or failed.

Plain SQL over the catalog's connection; the exporter wraps each change in a
transaction with its audit event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id

EXPORT_PREFIX = "EXP-"
MAKING, VERIFIED, FAILED = "making", "verified", "failed"


def format_export_id(number: int) -> str:
    return f"{EXPORT_PREFIX}{number:06d}"


def parse_export_id(text: str) -> int | None:
    text = text.strip().upper()
    digits = text.removeprefix(EXPORT_PREFIX)
    return int(digits) if digits.isdigit() and text != digits else None


@dataclass(frozen=True)
class ExportRecord:
    id: int
    case_name: str
    items: list[int]
    maker: str
    extractor: str
    playable: bool
    media: str
    capacity: int
    destination: str
    started_at: str
    started_by: str
    pid: int | None
    staging: str | None
    finished_at: str | None
    state: str
    error: str | None
    discs: list[dict]
    verified_at: str | None
    verification: dict | None

    @property
    def export_id(self) -> str:
        return format_export_id(self.id)

    def as_dict(self) -> dict:
        return {
            "id": self.export_id,
            "case": self.case_name,
            "items": [format_item_id(n) for n in self.items],
            "maker": self.maker,
            "extractor": self.extractor,
            "playable": self.playable,
            "media": self.media,
            "capacity": self.capacity,
            "destination": self.destination,
            "started_at": self.started_at,
            "started_by": self.started_by,
            "finished_at": self.finished_at,
            "state": self.state,
            "error": self.error,
            "discs": self.discs,
            "verified_at": self.verified_at,
            "verification": self.verification,
        }


def _record(row: dict) -> ExportRecord:
    return ExportRecord(
        id=row["id"],
        case_name=row["case_name"],
        items=json.loads(row["items"]),
        maker=row["maker"],
        extractor=row["extractor"],
        playable=bool(row["playable"]),
        media=row["media"],
        capacity=row["capacity"],
        destination=row["destination"],
        started_at=row["started_at"],
        started_by=row["started_by"],
        pid=row["pid"],
        staging=row["staging"],
        finished_at=row["finished_at"],
        state=row["state"],
        error=row["error"],
        discs=json.loads(row["discs"]),
        verified_at=row["verified_at"],
        verification=json.loads(row["verification"]) if row["verification"] else None,
    )


def insert(catalog: Catalog, fields: dict) -> int:
    row = {**fields, "items": json.dumps(fields["items"]), "discs": json.dumps(fields["discs"])}
    return catalog.db["exports"].insert(row).last_rowid


def set_staging(catalog: Catalog, number: int, staging: str | None) -> None:
    catalog.db.execute("UPDATE exports SET staging = ? WHERE id = ?", [staging, number])


def finish(catalog: Catalog, number: int, state: str, at: str, discs: list[dict], error: str | None) -> None:
    catalog.db.execute(
        "UPDATE exports SET state = ?, finished_at = ?, discs = ?, error = ?, staging = NULL WHERE id = ?",
        [state, at, json.dumps(discs), error, number],
    )


def record_verification(catalog: Catalog, number: int, at: str, verification: dict) -> None:
    catalog.db.execute(
        "UPDATE exports SET verified_at = ?, verification = ? WHERE id = ?",
        [at, json.dumps(verification), number],
    )


def get(catalog: Catalog, number: int) -> ExportRecord | None:
    rows = list(catalog.db.query("SELECT * FROM exports WHERE id = ?", [number]))
    return _record(rows[0]) if rows else None


def all_exports(catalog: Catalog, case: str | None = None) -> list[ExportRecord]:
    if case is None:
        rows = catalog.db.query("SELECT * FROM exports ORDER BY id")
    else:
        rows = catalog.db.query("SELECT * FROM exports WHERE case_name = ? ORDER BY id", [case])
    return [_record(row) for row in rows]


def unfinished(catalog: Catalog) -> list[ExportRecord]:
    return [_record(row) for row in catalog.db.query("SELECT * FROM exports WHERE state = ?", [MAKING])]


def case_is_known(catalog: Catalog, case: str) -> bool:
    """Whether ``case`` was ever named: on any item's tag history, a case category or a hold."""
    row = catalog.db.execute(
        "SELECT EXISTS (SELECT 1 FROM tags WHERE name = 'case' AND value = ?) "
        "OR EXISTS (SELECT 1 FROM case_categories WHERE case_name = ?) "
        "OR EXISTS (SELECT 1 FROM holds WHERE case_name = ?)",
        [case, case, case],
    ).fetchone()
    return bool(row[0])
