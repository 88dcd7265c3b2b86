"""Retention records in the catalog: categories on items and cases, legal holds.

Plain SQL over the catalog's connection; the Vault service wraps each change
in a transaction with its audit event. What the records mean is decided by
``custody.retention.policy``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id


@dataclass(frozen=True)
class HoldRecord:
    id: int
    item: int | None
    case_name: str | None
    reason: str
    placed_at: str
    placed_by: str
    released_at: str | None
    released_by: str | None
    release_reason: str | None

    @property
    def hold_id(self) -> str:
        return format_hold_id(self.id)

    @property
    def active(self) -> bool:
        return self.released_at is None

    def as_dict(self) -> dict:
        fields = asdict(self)
        fields.update(id=self.hold_id, item=format_item_id(self.item) if self.item else None)
        return fields


def format_hold_id(number: int) -> str:
    return f"HOLD-{number:06d}"


def parse_hold_id(text: str) -> int | None:
    digits = text.strip().upper().removeprefix("HOLD-")
    return int(digits) if digits.isdigit() and int(digits) > 0 else None


def item_categories(catalog: Catalog, item: int) -> list[str]:
    return [
        row[0]
        for row in catalog.db.execute(
            "SELECT category FROM item_categories WHERE item = ? ORDER BY category", [item]
        )
    ]


def add_item_category(catalog: Catalog, item: int, category: str, at: str, actor: str, seq: int) -> bool:
    """Record a category on an item; False when it already had it."""
    return bool(
        catalog.db.execute(
            "INSERT OR IGNORE INTO item_categories (item, category, added_at, added_by, audit_seq) VALUES (?, ?, ?, ?, ?)",
            [item, category, at, actor, seq],
        ).rowcount
    )


def case_categories(catalog: Catalog) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for case, category in catalog.db.execute("SELECT case_name, category FROM case_categories"):
        found.setdefault(case, set()).add(category)
    return {case: frozenset(categories) for case, categories in found.items()}


def add_case_category(catalog: Catalog, case: str, category: str, at: str, actor: str, seq: int) -> bool:
    return bool(
        catalog.db.execute(
            "INSERT OR IGNORE INTO case_categories (case_name, category, added_at, added_by, audit_seq) "
            "VALUES (?, ?, ?, ?, ?)",
            [case, category, at, actor, seq],
        ).rowcount
    )


def all_item_categories(catalog: Catalog) -> dict[int, frozenset[str]]:
    found: dict[int, set[str]] = {}
    for item, category in catalog.db.execute("SELECT item, category FROM item_categories"):
        found.setdefault(item, set()).add(category)
    return {item: frozenset(categories) for item, categories in found.items()}


def place_hold(catalog: Catalog, item: int | None, case: str | None, reason: str, at: str, actor: str) -> int:
    return catalog.db.execute(
        "INSERT INTO holds (item, case_name, reason, placed_at, placed_by) VALUES (?, ?, ?, ?, ?)",
        [item, case, reason, at, actor],
    ).lastrowid


def release_hold(catalog: Catalog, number: int, reason: str, at: str, actor: str) -> None:
    catalog.db.execute(
        "UPDATE holds SET released_at = ?, released_by = ?, release_reason = ? WHERE id = ?",
        [at, actor, reason, number],
    )


def hold(catalog: Catalog, number: int) -> HoldRecord | None:
    rows = list(catalog.db.query("SELECT * FROM holds WHERE id = ?", [number]))
    return HoldRecord(**rows[0]) if rows else None


def holds(catalog: Catalog, active_only: bool = True) -> list[HoldRecord]:
    where = "WHERE released_at IS NULL" if active_only else ""
    return [HoldRecord(**row) for row in catalog.db.query(f"SELECT * FROM holds {where} ORDER BY id")]


def holds_on(catalog: Catalog, number: int, case: str | None) -> list[HoldRecord]:
    """The active holds on item ``number`` or on its ``case``."""
    rows = catalog.db.query(
        "SELECT * FROM holds WHERE released_at IS NULL AND (item = ? OR case_name = ?) ORDER BY id",
        [number, case],
    )
    return [HoldRecord(**row) for row in rows]
