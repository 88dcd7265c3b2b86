"""Retention records: categories on items and cases, legal holds.

:class:`Holds` is the legal-hold service (``vault.holds``): it places and
releases holds, each through ``vault.change()`` (locked, one transaction,
audited), and owns their errors. The functions below are the tables' SQL.
What the records mean is decided by ``custody.retention.policy``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from custody.errors import CustodyError, UsageError
from custody.vault.catalog import Catalog, Item
from custody.vault.items import checked_reason, format_item_id
from custody.vault.registry import check_registry_text

if TYPE_CHECKING:
    from custody.vault.vault import Vault


class HoldNotFound(CustodyError):
    """no hold {ref}: use an id from 'custody hold ls' (HOLD-000001)"""

    exit_code = 5


class HoldReleased(CustodyError):
    """{ref} was already released ({released_by}, {released_at}): {reason}"""

    exit_code = 5


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


class Holds:
    """Legal holds of an open vault (``vault.holds``): nothing held is ever disposed of."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def place(self, reason: str, ref: str | None = None, case: str | None = None) -> HoldRecord:
        """Put a legal hold on one item or on a whole case (audited).

        Raise UsageError when neither or both are given or the reason is empty.
        """
        vault = self.vault
        with vault.serialized():
            vault.authorize("hold")
            if (ref is None) == (case is None):
                raise UsageError(reason="give one ITEM or --case CASE to hold")
            reason = checked_reason(reason, "why the footage is held")
            item = vault.resolve(ref) if ref is not None else None
            if case is not None:
                check_registry_text("--case", case, required=True)
            with vault.change() as change:
                number = place_hold(
                    change.catalog, item.number if item else None, case, reason, change.at, vault.actor
                )
                details = {"hold": format_hold_id(number), "reason": reason}
                if case is not None:
                    details["case"] = case
                change.record("hold-placed", item.number if item else None, details)
            placed = hold(vault.catalog, number)
        assert placed is not None
        return placed

    def release(self, ref: str, reason: str) -> HoldRecord:
        """Release a hold (audited). Raise HoldNotFound, HoldReleased, UsageError."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("hold")
            number = parse_hold_id(ref)
            found = hold(vault.catalog, number) if number else None
            if found is None:
                raise HoldNotFound(ref=ref)
            if not found.active:
                raise HoldReleased(
                    ref=found.hold_id,
                    released_by=found.released_by,
                    released_at=found.released_at,
                    reason=found.release_reason,
                )
            reason = checked_reason(reason, "why the hold ends")
            with vault.change() as change:
                release_hold(change.catalog, found.id, reason, change.at, vault.actor)
                details = {"hold": found.hold_id, "reason": reason}
                if found.case_name:
                    details["case"] = found.case_name
                change.record("hold-released", found.item, details)
            released = hold(vault.catalog, found.id)
        assert released is not None
        return released

    def listed(self, active_only: bool = True) -> list[HoldRecord]:
        """Holds (active ones only), those naming items or cases the caller may not see left out."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("report")
            return vault.cases.visible_records(
                holds(vault.catalog, active_only),
                lambda found: ([found.item] if found.item else [], found.case_name),
            )

    def on(self, item: Item) -> list[HoldRecord]:
        """The active holds on ``item`` or its case: part of what whoever may see it is shown."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("show", item=item)
            return holds_on(vault.catalog, item.number, item.tags.get("case"))


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
