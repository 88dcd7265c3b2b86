"""Access records: confidentiality levels, who is named on a case, officers' logins.

:class:`CaseAccess` is the service (``vault.cases``) that changes them, each
change through ``vault.change()`` (locked, one transaction, audited); what
the records allow is decided by the vault's visibility (custody.vault.access).
The functions below it are the tables' SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from custody.errors import UsageError
from custody.vault.catalog import Catalog
from custody.vault.registry import OfficerNotFound, check_registry_text, officer

if TYPE_CHECKING:
    from custody.vault.vault import Vault


class CaseAccess:
    """Who sees a case's footage, and which login is which officer (``vault.cases``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def set_confidentiality(self, case: str, level: str) -> None:
        """Set a case's confidentiality (its items are at least that; audited).

        Raise UsageError for an unknown level, AccessDenied without the custodian role.
        """
        vault = self.vault
        with vault.serialized():
            vault.authorize("case", f"case {case}")
            levels = vault.settings.access.confidentiality_levels
            if level not in levels:
                raise UsageError(reason=f"no confidentiality level {level!r}: use one of {', '.join(levels)}")
            with vault.change() as change:
                seq = change.record("confidentiality", None, {"case": case, "level": level})
                set_case_level(change.catalog, case, level, change.at, vault.actor, seq)
            vault.forget_visibility()

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
            vault.forget_visibility()
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
            vault.forget_visibility()


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
