"""Access records in the catalog: confidentiality levels, who is named on a case, officers' logins.

Plain SQL over the catalog's connection; the Vault service wraps each change
in a transaction with its audit event and decides what the records allow
(custody.vault.access).
"""

from __future__ import annotations

from custody.vault.catalog import Catalog


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
