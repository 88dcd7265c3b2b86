"""Tags on items: case number, party and officer (the rule's three), a note, retention categories
added, confidentiality; all or nothing, each change an audit event, the history kept."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from custody.errors import CustodyError, Said, UsageError
from custody.vault import access, case_access, case_tables, holdings, registry
from custody.vault.catalog import Item
from custody.vault.items import REQUIRED_TAGS, TAG_NAMES, is_hidden_character
from custody.vault.service import VaultService, locked

if TYPE_CHECKING:
    from custody.vault.vault import Change

MAX_TAG_LENGTH = 500


class UnknownCategory(CustodyError):
    """no retention category {category!r}: use one of {known}, or add it under [retention.categories]"""

    exit_code = 2


@dataclass(frozen=True)
class TagChange:
    item: Item
    changed: dict[str, tuple[str | None, str]]


class Tags(VaultService):
    """Setting and reading items' tags (``vault.tags``)."""

    @locked
    def apply(
        self,
        refs: list[str],
        values: dict[str, str],
        categories: Iterable[str] = (),
        known_categories: Iterable[str] = (),
        confidentiality: str | None = None,
        clear: bool = False,
        unregistered_officer: bool = False,
    ) -> list[TagChange]:
        """Set tags and add retention categories on every item in one transaction (audited per item).

        ``values`` maps tag names (case, party, officer, note) to new values;
        an empty value clears the tag, and clearing one of the three tags the
        rule requires (case, party, officer) needs ``clear`` (an empty
        argument is more often a mistake than a wish). An officer must be
        registered unless ``unregistered_officer`` (a badge typed with a
        letter l for a 1 is refused: Vault.OfficerNotFound). ``categories`` are retention categories
        to add (never removed here: shortening retention needs a second
        person's approval); each must be one of ``known_categories``. Items
        already so tagged are left alone. Raise UsageError for a bad name or
        value, UnknownCategory, Vault.ItemNotFound, all before anything
        changes.
        """
        vault = self.vault
        vault.authorize("tag")
        categories = list(dict.fromkeys(categories))
        self._check(values, categories, known_categories, confidentiality, clear, unregistered_officer)
        try:
            items = vault.resolve_all(refs)
        except (vault.ItemNotFound, vault.AmbiguousItem) as exc:
            vault.record_failure("tag", {"refs": list(refs)[:20], "reason": exc.message})
            raise
        if "case" in values:
            for item in items:
                archived = case_tables.archived_case_of(vault.catalog, item.number, item.tags.get("case"))
                if archived is not None and values["case"] != item.tags.get("case"):
                    raise case_tables.CaseArchived(
                        case=archived,
                        what=Said("{item_id} is part of its file and cannot leave it", item_id=item.item_id),
                    )
        changes: list[TagChange] = []
        with vault.change() as change:
            levels = case_access.item_levels(change.catalog)
            for item in items:
                changed = self._change_item(change, item, values, categories, confidentiality, levels)
                if changed:
                    changes.append(TagChange(item=item, changed=changed))
        return changes

    def _check(
        self, values, categories, known_categories, confidentiality, clear, unregistered_officer
    ) -> None:
        """Refuse a tagging that cannot be done, before anything changes (see apply)."""
        if not values and not categories and confidentiality is None:
            raise UsageError(
                reason="nothing to tag: give at least one of --case, --party, --officer, --category, --note, --confidentiality"
            )
        levels = self.vault.settings.access.confidentiality_levels
        if confidentiality is not None and confidentiality not in levels:
            raise UsageError(
                reason=Said(
                    "no confidentiality level {confidentiality!r}: use one of {known}",
                    confidentiality=confidentiality,
                    known=", ".join(levels),
                )
            )
        for name, value in values.items():
            check_tag_value(name, value)
            if value == "" and name in REQUIRED_TAGS and not clear:
                raise UsageError(
                    reason=Said(
                        '--{name} "" would take the {name} tag off: add --clear if that is what you mean',
                        name=name,
                    )
                )
        officer = values.get("officer")
        if officer and not unregistered_officer and registry.officer(self.vault.catalog, officer) is None:
            raise registry.OfficerNotFound(
                badge=officer, hint=" (or tag with --unregistered if they are not an officer of this station)"
            )
        known = sorted(known_categories)
        for category in categories:
            if category not in known:
                raise UnknownCategory(category=category, known=", ".join(known))

    def tag_in_change(self, change: Change, item: Item, values: dict[str, str]) -> dict:
        """Set tags on one item as part of ``change`` (a case filing its records, linking footage);
        the values are checked as ``apply`` checks them. Return what changed."""
        for name, value in values.items():
            check_tag_value(name, value)
        return self._change_item(change, item, values, [], None, {})

    def _change_item(
        self,
        change: Change,
        item: Item,
        values: dict[str, str],
        categories: list[str],
        confidentiality: str | None,
        levels: dict[int, str],
    ) -> dict[str, tuple[str | None, str]]:
        """Make one item's part of a tagging; return what changed (name -> (old, new))."""
        catalog, actor = change.catalog, self.vault.actor
        changed = {
            name: (item.tags.get(name), value)
            for name, value in values.items()
            if item.tags.get(name, "") != value
        }
        if changed:
            seq = change.record(
                "tag", item.number, {name: {"from": old, "to": new} for name, (old, new) in changed.items()}
            )
            for name, (_old, new) in changed.items():
                catalog.add_tag(item.number, name, new, change.at, actor, seq)
        had = holdings.item_categories(catalog, item.number)
        gained = [c for c in categories if c not in had]
        if gained:
            seq = change.record("category-added", item.number, {"categories": gained})
            for category in gained:
                holdings.add_item_category(catalog, item.number, category, change.at, actor, seq)
            changed["retention categories"] = (", ".join(had) or None, ", ".join(had + gained))
        level_now = levels.get(item.number, access.NORMAL)
        if confidentiality is not None and confidentiality != level_now:
            seq = change.record("confidentiality", item.number, {"from": level_now, "to": confidentiality})
            case_access.set_item_level(catalog, item.number, confidentiality, change.at, actor, seq)
            changed["confidentiality"] = (level_now, confidentiality)
            self.vault.cases.forget()
        return changed

    @locked
    def history(self, item: Item) -> list[dict]:
        """Every value each tag of ``item`` has had: name, value, set_at, set_by, audit_seq."""
        return self.vault.catalog.tag_history(item.number)


def check_tag_value(name: str, value: str) -> None:
    """Refuse (UsageError) a tag name we do not know, or a value with hidden characters or too long."""
    if name not in TAG_NAMES:
        raise UsageError(
            reason=Said("unknown tag {name!r}: use one of {known}", name=name, known=", ".join(TAG_NAMES))
        )
    if any(is_hidden_character(char) for char in value):
        raise UsageError(
            reason=Said(
                "--{name} value contains a line break, a control character or a bidi override: type it plainly",
                name=name,
            )
        )
    if len(value) > MAX_TAG_LENGTH:
        raise UsageError(
            reason=Said(
                "--{name} value is longer than {max_tag_length} characters",
                name=name,
                max_tag_length=MAX_TAG_LENGTH,
            )
        )
