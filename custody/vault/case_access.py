"""Access records: confidentiality levels, who is named on a case, officers' logins.

:class:`CaseAccess` is the service (``vault.cases``) that changes them, each
change through ``vault.change()`` (locked, one transaction, audited); what
the records allow (``sight``, ``visible_records``) is decided here by the
rules of custody.vault.access.
The functions below it are the tables' SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from custody.errors import Said, UsageError
from custody.vault import access
from custody.vault.catalog import Catalog, Item, ItemFilter
from custody.vault.registry import OfficerNotFound, check_registry_text, officer
from custody.vault.service import locked
from custody.vault.supervision import supervised_badges

_Record = TypeVar("_Record")
LIST_CHUNK = 2000  # items read at a time for a page of what a caller may see


@dataclass(frozen=True)
class Sight:
    """What one caller may see: an item, a case."""

    item: Callable[[Item], bool]
    case: Callable[[str], bool]


if TYPE_CHECKING:
    from custody.vault.vault import Vault


class CaseAccess:
    """Who sees a case's footage, and which login is which officer (``vault.cases``); what the
    caller may see of it all (``sight``, ``visible_records``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._cached_sight: Sight | None = None

    def sight(self) -> Sight:
        """Tests of whether the caller may see an item or a case, with the access records read once
        for this opening of the vault (one request): the changes that alter them drop it."""
        if self._cached_sight is None:
            self._cached_sight = self._read_sight()
        return self._cached_sight

    def forget(self) -> None:
        """Drop what this caller may see, worked out once per open: case access just changed."""
        self._cached_sight = None

    def may_see(self, items: Iterable[int] = (), case: str | None = None) -> bool:
        """Whether a record naming these item numbers and this case may be shown to the caller
        (see ``visible_records``)."""
        return bool(self.visible_records([(items, case)], lambda named: named))

    def visible_records(
        self, records: Iterable[_Record], names: Callable[[_Record], tuple[Iterable[int], str | None]]
    ) -> list[_Record]:
        """The records (holds, exports, requests, findings, late items, jobs) that may be shown to
        the caller: those whose every named item and case the caller may see. ``names(record)``
        gives its item numbers and its case (or None); the items are read in one query.

        A number with no item (disposed of) hides nothing.
        """
        records = list(records)
        if self.vault.caller.owner:
            return records
        sight = self.sight()
        named = [(record, *names(record)) for record in records]
        numbers = sorted({number for _record, items, _case in named for number in items})
        with self.vault.serialized():
            found = {item.number: item for item in self.vault.catalog.items_by_ids(numbers)}
        return [
            record
            for record, items, case in named
            if (case is None or sight.case(case)) and all(sight.item(found[n]) for n in items if n in found)
        ]

    @locked
    def visible_items(self, where: ItemFilter) -> list[Item]:
        """The items matching ``where`` that the caller may see; with a limit, that page of them,
        read from the catalog a chunk at a time."""
        sees = self.sight().item
        caller = self.vault.caller
        if not set(caller.roles) & {access.CLERK, access.CUSTODIAN, access.AUDITOR}:
            # An officer or a supervisor sees at most their officers' footage: asked of SQL first.
            badges = badges_of(self.vault.catalog, caller.name) | supervised_badges(
                self.vault.catalog, self.vault.settings, caller
            )
            where = dataclasses.replace(where, officer_any=tuple(sorted(badges)))
        if where.limit is None:
            return [item for item in self.vault.catalog.list_items(where) if sees(item)]
        wanted, seen, skipped = where.offset + where.limit, [], 0
        while len(seen) < wanted:
            chunk = self.vault.catalog.list_items(
                dataclasses.replace(where, limit=LIST_CHUNK, offset=skipped)
            )
            seen += [item for item in chunk if sees(item)]
            skipped += len(chunk)
            if len(chunk) < LIST_CHUNK:
                break
        return seen[where.offset : wanted]

    def _read_sight(self) -> Sight:
        levels = self.vault.settings.access.confidentiality_levels
        rank = {level: n for n, level in enumerate(levels)}
        with self.vault.serialized():
            levels_of_items = item_levels(self.vault.catalog)
            levels_of_cases = case_levels(self.vault.catalog)
            staff = case_staff(self.vault.catalog)
            badges = badges_of(self.vault.catalog, self.vault.caller.name) | supervised_badges(
                self.vault.catalog, self.vault.settings, self.vault.caller
            )

        def sees(item: Item) -> bool:
            case = item.tags.get("case")
            level = max(
                levels_of_items.get(item.number, access.NORMAL),
                levels_of_cases.get(case, access.NORMAL) if case else access.NORMAL,
                key=lambda name: rank.get(name, len(levels)),
            )
            officer = item.credited_officer or item.tags.get("officer")
            return access.can_see(
                self.vault.caller, access.ItemAccess(case, officer, level), staff.get(case, set()), badges
            )

        def sees_case(case: str) -> bool:  # (no officer is credited with a whole case)
            level = levels_of_cases.get(case, access.NORMAL)
            return access.can_see(
                self.vault.caller, access.ItemAccess(case, None, level), staff.get(case, set()), badges
            )

        return Sight(sees, sees_case)

    def set_confidentiality(self, case: str, level: str) -> None:
        """Set a case's confidentiality (its items are at least that; audited).

        Raise UsageError for an unknown level, AccessDenied without the custodian role.
        """
        vault = self.vault
        with vault.serialized():
            vault.authorize("case", f"case {case}")
            levels = vault.settings.access.confidentiality_levels
            if level not in levels:
                raise UsageError(
                    reason=Said(
                        "no confidentiality level {level!r}: use one of {known}",
                        level=level,
                        known=", ".join(levels),
                    )
                )
            with vault.change() as change:
                seq = change.record("confidentiality", None, {"case": case, "level": level})
                set_case_level(change.catalog, case, level, change.at, vault.actor, seq)
            self.forget()

    def add_staff(self, case: str, logins: Iterable[str]) -> list[str]:
        """Name users on a case (they see its restricted footage if their role allows); return those added."""
        vault = self.vault
        added = []
        with vault.serialized():
            vault.authorize("case", f"case {case}")
            with vault.change() as change:
                for login in logins:
                    check_registry_text("login", login, required=True)
                    seq = change.record("case-staff-added", None, {"case": case, "login": login})
                    if add_case_staff(change.catalog, case, login, change.at, vault.actor, seq):
                        added.append(login)
            self.forget()
        return added

    def link_officer_login(self, badge: str, login: str) -> None:
        """Say which login is officer ``badge`` (an officer user then sees their own footage)."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("registry", f"officer {badge}")
            check_registry_text("login", login, required=True)
            with vault.change() as change:
                if officer(change.catalog, badge) is None:
                    raise OfficerNotFound(badge=badge)
                set_officer_login(change.catalog, badge, login, change.at, vault.actor)
                change.record("officer-login", None, {"badge": badge, "login": login})
            self.forget()


def set_item_level(catalog: Catalog, item: int, level: str, at: str, by: str, seq: int) -> None:
    catalog.db.execute(
        "INSERT INTO confidentiality (item, level, set_at, set_by, audit_seq) VALUES (?, ?, ?, ?, ?)",
        [item, level, at, by, seq],
    )


def set_case_level(catalog: Catalog, case: str, level: str, at: str, by: str, seq: int) -> None:
    catalog.db.execute(
        "INSERT INTO confidentiality (case_name, level, set_at, set_by, audit_seq) VALUES (?, ?, ?, ?, ?)",
        [case, level, at, by, seq],
    )


def item_levels(catalog: Catalog) -> dict[int, str]:
    """Every item's current level where one was ever set."""
    rows = catalog.db.execute(
        "SELECT item, level FROM confidentiality WHERE id IN "
        "(SELECT max(id) FROM confidentiality WHERE item IS NOT NULL GROUP BY item)"
    )
    return dict(rows.fetchall())


def case_levels(catalog: Catalog) -> dict[str, str]:
    rows = catalog.db.execute(
        "SELECT case_name, level FROM confidentiality WHERE id IN "
        "(SELECT max(id) FROM confidentiality WHERE case_name IS NOT NULL GROUP BY case_name)"
    )
    return dict(rows.fetchall())


def add_case_staff(catalog: Catalog, case: str, login: str, at: str, by: str, seq: int) -> bool:
    cursor = catalog.db.execute(
        "INSERT OR IGNORE INTO case_staff (case_name, login, added_at, added_by, audit_seq) VALUES (?, ?, ?, ?, ?)",
        [case, login, at, by, seq],
    )
    return cursor.rowcount > 0


def case_staff(catalog: Catalog) -> dict[str, set[str]]:
    """case -> the logins named on it."""
    staff: dict[str, set[str]] = {}
    for case, login in catalog.db.execute("SELECT case_name, login FROM case_staff"):
        staff.setdefault(case, set()).add(login)
    return staff


def set_officer_login(catalog: Catalog, badge: str, login: str, at: str, by: str) -> None:
    catalog.db.execute(
        "INSERT INTO officer_logins (badge, login, set_at, set_by) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (badge) DO UPDATE SET login = excluded.login, set_at = excluded.set_at, set_by = excluded.set_by",
        [badge, login, at, by],
    )


def badges_of(catalog: Catalog, login: str) -> set[str]:
    return {row[0] for row in catalog.db.execute("SELECT badge FROM officer_logins WHERE login = ?", [login])}
