"""The docking station's records in the catalog: officers, recorders, assignments,
dock sessions, the files already pulled from each recorder, unknown devices.

Plain SQL over the catalog's connection; the Vault service wraps each change in
a transaction with its audit event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from custody.vault.catalog import Catalog
from custody.vault.timestamps import utc_now


@dataclass(frozen=True)
class Officer:
    badge: str
    name: str
    unit: str
    added_at: str
    added_by: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Assignment:
    serial: str
    badge: str
    valid_from: str
    valid_until: str | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Recorder:
    serial: str
    vendor: str
    model: str
    profile: str
    added_at: str
    added_by: str
    retired_at: str | None
    current_officer: str | None  # the assignment in force now (not one that starts later)
    last_docked: str | None
    # The next assignment that starts after now, if any: (badge, from).
    upcoming_officer: str | None = None
    upcoming_from: str | None = None

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DockSessionRecord:
    id: int
    serial: str
    officer: str | None
    device: str
    profile: str
    docked_at: str
    undocked_at: str | None
    finished_at: str | None
    state: str
    files_found: int
    files_new: int
    files_duplicate: int
    files_known: int
    files_failed: int
    files_wiped: int
    bytes_new: int
    errors: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class UnknownDevice:
    key: str
    identity: dict
    first_seen: str
    last_seen: str
    times: int

    def as_dict(self) -> dict:
        return asdict(self)


# -- officers -------------------------------------------------------------


def officer(catalog: Catalog, badge: str) -> Officer | None:
    rows = list(catalog.db.query("SELECT * FROM officers WHERE badge = ?", [badge]))
    return Officer(**rows[0]) if rows else None


def officers(catalog: Catalog) -> list[Officer]:
    return [Officer(**row) for row in catalog.db.query("SELECT * FROM officers ORDER BY badge")]


def insert_officer(catalog: Catalog, officer: Officer) -> None:
    catalog.db.execute(
        "INSERT INTO officers (badge, name, unit, added_at, added_by) VALUES (?, ?, ?, ?, ?)",
        [officer.badge, officer.name, officer.unit, officer.added_at, officer.added_by],
    )


# -- recorders and assignments ----------------------------------------------

# The officer of each recorder at :now (an assignment that starts later is upcoming, not current).
_RECORDER_SELECT = """
    SELECT r.*,
        (SELECT a.badge FROM assignments a WHERE a.serial = r.serial AND a.valid_from <= :now
            AND (a.valid_until IS NULL OR a.valid_until > :now)
         ORDER BY a.valid_from DESC, a.id DESC LIMIT 1) AS current_officer,
        (SELECT max(s.docked_at) FROM dock_sessions s WHERE s.serial = r.serial) AS last_docked,
        (SELECT a.badge FROM assignments a WHERE a.serial = r.serial AND a.valid_from > :now
            AND (a.valid_until IS NULL OR a.valid_until > a.valid_from)
         ORDER BY a.valid_from LIMIT 1) AS upcoming_officer,
        (SELECT a.valid_from FROM assignments a WHERE a.serial = r.serial AND a.valid_from > :now
            AND (a.valid_until IS NULL OR a.valid_until > a.valid_from)
         ORDER BY a.valid_from LIMIT 1) AS upcoming_from
    FROM recorders r
"""


def recorder(catalog: Catalog, serial: str, now: str | None = None) -> Recorder | None:
    """The recorder ``serial`` with its officer at ``now`` (default: the present moment)."""
    rows = list(
        catalog.db.query(
            _RECORDER_SELECT + " WHERE r.serial = :serial", {"serial": serial, "now": now or utc_now()}
        )
    )
    return Recorder(**rows[0]) if rows else None


def recorders(catalog: Catalog, now: str | None = None) -> list[Recorder]:
    """Every recorder with its officer at ``now`` (default: the present moment) and the next one."""
    return [
        Recorder(**row)
        for row in catalog.db.query(_RECORDER_SELECT + " ORDER BY r.serial", {"now": now or utc_now()})
    ]


def insert_recorder(
    catalog: Catalog, serial: str, vendor: str, model: str, profile: str, at: str, actor: str
):
    catalog.db.execute(
        "INSERT INTO recorders (serial, vendor, model, profile, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?)",
        [serial, vendor, model, profile, at, actor],
    )


def retire_recorder(catalog: Catalog, serial: str, at: str) -> None:
    catalog.db.execute("UPDATE recorders SET retired_at = ? WHERE serial = ?", [at, serial])
    catalog.db.execute(
        "UPDATE assignments SET valid_until = ? WHERE serial = ? AND valid_until IS NULL", [at, serial]
    )


def assignments(catalog: Catalog, serial: str) -> list[Assignment]:
    return [
        Assignment(**row)
        for row in catalog.db.query(
            "SELECT serial, badge, valid_from, valid_until FROM assignments WHERE serial = ? ORDER BY valid_from",
            [serial],
        )
    ]


def assign(
    catalog: Catalog, serial: str, badge: str, valid_from: str, at: str, actor: str
) -> Assignment | None:
    """Make ``badge`` the recorder's officer from ``valid_from`` on; return the assignment it ends.

    Assignments starting at or after ``valid_from`` are superseded: they end
    where they start (kept, never deleted, so the history stays visible).
    """
    previous_rows = list(
        catalog.db.query(
            "SELECT serial, badge, valid_from, valid_until FROM assignments WHERE serial = ? "
            "AND valid_from < ? AND (valid_until IS NULL OR valid_until > ?) ORDER BY valid_from DESC LIMIT 1",
            [serial, valid_from, valid_from],
        )
    )
    catalog.db.execute(
        "UPDATE assignments SET valid_until = ? WHERE serial = ? AND valid_from < ? "
        "AND (valid_until IS NULL OR valid_until > ?)",
        [valid_from, serial, valid_from, valid_from],
    )
    catalog.db.execute(
        "UPDATE assignments SET valid_until = valid_from WHERE serial = ? AND valid_from >= ? "
        "AND (valid_until IS NULL OR valid_until > valid_from)",
        [serial, valid_from],
    )
    catalog.db.execute(
        "INSERT INTO assignments (serial, badge, valid_from, valid_until, set_at, set_by) "
        "VALUES (?, ?, ?, NULL, ?, ?)",
        [serial, badge, valid_from, at, actor],
    )
    return Assignment(**previous_rows[0]) if previous_rows else None


def officer_at(catalog: Catalog, serial: str, when: str) -> str | None:
    """Return the badge assigned to recorder ``serial`` at UTC time text ``when``, or None."""
    row = catalog.db.execute(
        "SELECT badge FROM assignments WHERE serial = ? AND valid_from <= ? "
        "AND (valid_until IS NULL OR valid_until > ?) ORDER BY valid_from DESC, id DESC LIMIT 1",
        [serial, when, when],
    ).fetchone()
    return row[0] if row else None


# -- dock sessions ------------------------------------------------------------


def open_session(catalog: Catalog, serial: str, device: str, profile: str, docked_at: str) -> int:
    """Record a new dock session; the officer is the one assigned to the recorder when it was docked."""
    cursor = catalog.db.execute(
        "INSERT INTO dock_sessions (serial, officer, device, profile, docked_at, state) "
        "VALUES (?, ?, ?, ?, ?, 'pulling')",
        [serial, officer_at(catalog, serial, docked_at), device, profile, docked_at],
    )
    return cursor.lastrowid


def close_session(catalog: Catalog, session_id: int, fields: dict) -> None:
    values = dict(fields)
    if "errors" in values:
        values["errors"] = json.dumps(values["errors"], ensure_ascii=False)
    assignments_sql = ", ".join(f"{name} = :{name}" for name in values)
    catalog.db.execute(
        f"UPDATE dock_sessions SET {assignments_sql} WHERE id = :id", {**values, "id": session_id}
    )


def interrupt_open_sessions(catalog: Catalog, at: str) -> list[int]:
    """Mark sessions a killed daemon left open as interrupted; return their ids."""
    ids = [row[0] for row in catalog.db.execute("SELECT id FROM dock_sessions WHERE state = 'pulling'")]
    catalog.db.execute(
        "UPDATE dock_sessions SET state = 'interrupted', finished_at = ? WHERE state = 'pulling'", [at]
    )
    return ids


def sessions(catalog: Catalog, limit: int = 20, serial: str | None = None) -> list[DockSessionRecord]:
    where = "WHERE serial = ?" if serial else ""
    params = [serial] if serial else []
    rows = catalog.db.query(
        f"SELECT * FROM dock_sessions {where} ORDER BY id DESC LIMIT {int(limit)}", params
    )
    return [DockSessionRecord(**{**row, "errors": json.loads(row["errors"])}) for row in rows]


# -- files already pulled -------------------------------------------------------


def known_file(catalog: Catalog, serial: str, path: str, size: int, mtime_ns: int) -> int | None:
    """Return the item number a file with this identity on this recorder became, or None."""
    row = catalog.db.execute(
        "SELECT item FROM recorder_files WHERE serial = ? AND path = ? AND size = ? AND mtime_ns = ?",
        [serial, path, size, mtime_ns],
    ).fetchone()
    return row[0] if row else None


def latest_item_at_path(catalog: Catalog, serial: str, path: str) -> int | None:
    row = catalog.db.execute(
        "SELECT item FROM recorder_files WHERE serial = ? AND path = ? ORDER BY rowid DESC LIMIT 1",
        [serial, path],
    ).fetchone()
    return row[0] if row else None


def remember_file(
    catalog: Catalog, serial: str, path: str, size: int, mtime_ns: int, item: int, session: int | None
) -> None:
    catalog.db.execute(
        "INSERT OR IGNORE INTO recorder_files (serial, path, size, mtime_ns, item, session) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [serial, path, size, mtime_ns, item, session],
    )


def mark_wiped(catalog: Catalog, serial: str, path: str, size: int, mtime_ns: int, at: str) -> None:
    catalog.db.execute(
        "UPDATE recorder_files SET wiped_at = ? WHERE serial = ? AND path = ? AND size = ? AND mtime_ns = ?",
        [at, serial, path, size, mtime_ns],
    )


# -- unknown devices ------------------------------------------------------------


def note_unknown_device(catalog: Catalog, key: str, identity: dict, at: str) -> None:
    catalog.db.execute(
        "INSERT INTO unknown_devices (key, identity, first_seen, last_seen, times) VALUES (?, ?, ?, ?, 1) "
        "ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen, times = times + 1, "
        "identity = excluded.identity",
        [key, json.dumps(identity, sort_keys=True), at, at],
    )


def unknown_devices(catalog: Catalog, limit: int = 20) -> list[UnknownDevice]:
    rows = catalog.db.query(f"SELECT * FROM unknown_devices ORDER BY last_seen DESC LIMIT {int(limit)}")
    return [UnknownDevice(**{**row, "identity": json.loads(row["identity"])}) for row in rows]


# -- the 24-hour window ---------------------------------------------------------


def late_items(catalog: Catalog, since: str | None) -> list[dict]:
    where = " AND coalesce(recorded_start, ingested_at) >= ?" if since else ""
    params = [since] if since else []
    return list(
        catalog.db.query(
            "SELECT id, original_name, recorder_serial, credited_officer, recorded_start, recorded_end, "
            "deadline, ingested_at, clock_suspect FROM items WHERE late = 1" + where + " ORDER BY deadline",
            params,
        )
    )


def silent_recorders(catalog: Catalog, cutoff: str, now: str | None = None) -> list[dict]:
    """Return active recorders assigned at ``now`` (default: the present) not docked since ``cutoff``.

    The assignment in force now decides (one that starts tomorrow neither
    makes a recorder assigned nor hides it from this list).
    """
    return list(
        catalog.db.query(
            """
            SELECT r.serial, a.badge AS officer, a.valid_from AS assigned_from,
                (SELECT max(s.docked_at) FROM dock_sessions s WHERE s.serial = r.serial) AS last_docked
            FROM recorders r JOIN assignments a ON a.id = (
                SELECT b.id FROM assignments b WHERE b.serial = r.serial AND b.valid_from <= :now
                    AND (b.valid_until IS NULL OR b.valid_until > :now)
                ORDER BY b.valid_from DESC, b.id DESC LIMIT 1)
            WHERE r.retired_at IS NULL
              AND coalesce((SELECT max(s.docked_at) FROM dock_sessions s WHERE s.serial = r.serial),
                           a.valid_from) < :cutoff
            ORDER BY r.serial
            """,
            {"cutoff": cutoff, "now": now or utc_now()},
        )
    )
