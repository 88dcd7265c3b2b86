"""What retention weighs, as the vault records it: items' and cases' retention categories, active
holds, which objects belong to which items, and the items a plan must look at."""

from __future__ import annotations

import json
from collections.abc import Iterable

from custody.vault import (
    holdings,
    registry,
)
from custody.vault.catalog import Item, ItemFilter
from custody.vault.holdings import HoldRecord
from custody.vault.service import VaultService, locked
from custody.vault.tagging import UnknownCategory
from custody.vault.timestamps import utc_now


class RetentionRecords(VaultService):
    """What retention weighs: categories, holds, object owners, candidates (``vault.retention``)."""

    @locked
    def add_case_categories(self, case: str, categories: list[str], known: Iterable[str]) -> list[str]:
        """Add retention categories to a case: they apply to every item of the case (audited)."""
        self.vault.authorize("retention")
        known = sorted(known)
        for category in categories:
            if category not in known:
                raise UnknownCategory(category=category, known=", ".join(known))
        registry.check_registry_text("--case", case, required=True)
        with self.vault.change() as change:
            current = holdings.case_categories(change.catalog).get(case, frozenset())
            new = [c for c in categories if c not in current]
            if new:
                seq = change.record("case-category-added", None, {"case": case, "categories": new})
                for category in new:
                    holdings.add_case_category(
                        change.catalog, case, category, utc_now(), self.vault.actor, seq
                    )
        return new

    @locked
    def item_categories(self, item: Item) -> list[str]:
        return holdings.item_categories(self.vault.catalog, item.number)

    @locked
    def object_owners(self) -> dict[str, list[int]]:
        """sha256 -> the items whose original or derivative that object is."""
        owners: dict[str, list[int]] = {}
        for sha256, number in self.vault.catalog.db.execute(
            "SELECT sha256, id FROM items UNION SELECT sha256, item FROM derivatives"
        ):
            owners.setdefault(sha256, []).append(number)
        return owners

    @locked
    def case_categories(self) -> dict[str, frozenset[str]]:
        return holdings.case_categories(self.vault.catalog)

    @locked
    def candidates(self, start_until: str) -> tuple[list[Item], int]:
        """Items a plan must look at, and how many items there are in all.

        The items with a category, a hold, or a case that has either (their
        retention is not the plain floor), and every other item whose
        retention start (recording, else ingest) is at or before
        ``start_until``: found by an index range, not by reading every item.
        Only what the caller may see, counted or not.
        """
        self.vault.authorize("report")
        db = self.vault.catalog.db
        special = {row[0] for row in db.execute("SELECT item FROM item_categories")}
        special |= {
            row[0]
            for row in db.execute("SELECT item FROM holds WHERE released_at IS NULL AND item IS NOT NULL")
        }
        cases = {row[0] for row in db.execute("SELECT case_name FROM case_categories")}
        cases |= {
            row[0]
            for row in db.execute(
                "SELECT case_name FROM holds WHERE released_at IS NULL AND case_name IS NOT NULL"
            )
        }
        if cases:
            # Items ever tagged with such a case; the evaluation looks at the current value.
            special |= {
                row[0]
                for row in db.execute(
                    "SELECT DISTINCT item FROM tags WHERE name = 'case' AND value IN (SELECT value FROM json_each(?))",
                    [json.dumps(sorted(cases))],
                )
            }
        due = {
            row[0]
            for row in db.execute(
                "SELECT id FROM items WHERE coalesce(recorded_start, ingested_at) <= ?", [start_until]
            )
        }
        candidates = self.vault.catalog.items_by_ids(sorted(special | due))
        if self.vault.caller.owner:
            return candidates, db.execute("SELECT count(*) FROM items").fetchone()[0]
        sees = self.vault.cases.sight().item  # what the caller may not see is not even counted
        total = sum(1 for item in self.vault.catalog.list_items(ItemFilter()) if sees(item))
        return [item for item in candidates if sees(item)], total

    @locked
    def context(
        self,
    ) -> tuple[dict[int, frozenset[str]], dict[str, frozenset[str]], list[HoldRecord]]:
        """What retention weighs besides the items: their categories, case categories, active holds."""
        return (
            holdings.all_item_categories(self.vault.catalog),
            holdings.case_categories(self.vault.catalog),
            holdings.holds(self.vault.catalog, active_only=True),
        )
