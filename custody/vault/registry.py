"""The docking station's records: officers, recorders, assignments, dock sessions, the files
already pulled from each recorder, unknown devices.

:class:`Registry` is the service (``vault.registry``): it checks, authorizes
and makes each change through ``vault.change()`` (locked, one transaction,
audited) and owns its errors. The functions below it are the tables' SQL.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from custody.errors import CustodyError, Said, UsageError
from custody.vault.catalog import Catalog, Item
from custody.vault.items import is_hidden_character
from custody.vault.timestamps import utc_now

if TYPE_CHECKING:
    from custody.vault.vault import Vault


class OfficerExists(CustodyError):
    """officer {badge} is already registered ({name}); officers are never renumbered"""

    exit_code = 5


class OfficerNotFound(CustodyError):
    """no officer {badge} is registered: check the badge number, or add one with 'custody officer add {badge} --name NAME'{hint}"""

    def __init__(self, badge: str, hint: str = "") -> None:
        super().__init__(badge=badge, hint=hint)

    exit_code = 5


class RecorderExists(CustodyError):
    """recorder {serial} is already registered: use 'custody recorder assign' to change its officer"""

    exit_code = 5


class RecorderNotFound(CustodyError):
    """no recorder {serial} is registered: add it with 'custody recorder add {serial}'"""

    exit_code = 5


class RecorderRetired(CustodyError):
    """recorder {serial} was retired on {retired_at}: it cannot be assigned or retired again"""

    exit_code = 5


class UnknownProfile(CustodyError):
    """no recorder profile {profile!r}: use one of {known} or add [profiles.{profile}] to custody.toml"""

    exit_code = 2


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


def _locked(method: Callable) -> Callable:
    """Run a reading method holding the vault's lock (the daemon's workers share one connection)."""

    @functools.wraps(method)
    def locked(self: Registry, *args, **kwargs):
        with self.vault.serialized():
            return method(self, *args, **kwargs)

    return locked


def check_registry_text(label: str, value: str, required: bool) -> None:
    """Refuse an empty (when ``required``), hidden-character or over-long badge, name or serial."""
    if required and not value.strip():
        raise UsageError(reason=Said("{label} must not be empty", label=label))
    if any(is_hidden_character(char) for char in value):
        raise UsageError(
            reason=Said("{label} contains a line break, a control character or a bidi override", label=label)
        )
    if len(value) > 200:
        raise UsageError(reason=Said("{label} is longer than 200 characters", label=label))


class Registry:
    """Officers, recorders and their assignments, dock sessions (``vault.registry``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    # -- officers and recorders ---------------------------------------------

    def add_officer(self, badge: str, name: str, unit: str = "") -> Officer:
        """Register an officer; raise OfficerExists, UsageError on a bad value."""
        self.vault.authorize("registry")
        for label, value in (("badge", badge), ("--name", name), ("--unit", unit)):
            check_registry_text(label, value, required=label != "--unit")
        with self.vault.change() as change:
            existing = officer(change.catalog, badge)
            if existing is not None:
                raise OfficerExists(badge=badge, name=existing.name)
            added = Officer(badge, name, unit, change.at, self.vault.actor)
            insert_officer(change.catalog, added)
            change.record("officer-add", details={"badge": badge, "name": name, "unit": unit})
        return added

    @_locked
    def officers(self) -> list[Officer]:
        self.vault.authorize("report")
        return officers(self.vault.catalog)

    def add_recorder(
        self,
        serial: str,
        profile: str = "",
        officer_badge: str | None = None,
        valid_from: str | None = None,
        vendor: str = "",
        model: str = "",
    ) -> Recorder:
        """Register a recorder by USB serial, optionally assigned to an officer from ``valid_from``.

        Raise RecorderExists, OfficerNotFound, UnknownProfile.
        """
        vault = self.vault
        vault.authorize("registry")
        check_registry_text("serial", serial, required=True)
        if profile and profile not in vault.settings.profiles:
            raise UnknownProfile(profile=profile, known=", ".join(sorted(vault.settings.profiles)))
        with vault.change() as change:
            at = change.at
            if recorder(change.catalog, serial) is not None:
                raise RecorderExists(serial=serial)
            if officer_badge is not None and officer(change.catalog, officer_badge) is None:
                raise OfficerNotFound(badge=officer_badge)
            insert_recorder(change.catalog, serial, vendor, model, profile, at, vault.actor)
            details = {
                "serial": serial,
                "profile": profile or "(matched by rules)",
                "vendor": vendor,
                "model": model,
            }
            if officer_badge is not None:
                assign(change.catalog, serial, officer_badge, valid_from or at, at, vault.actor)
                details.update(officer=officer_badge, valid_from=valid_from or at)
            change.record("recorder-add", details=details)
            result = recorder(change.catalog, serial)
        assert result is not None
        return result

    def assign_recorder(self, serial: str, badge: str, valid_from: str | None = None) -> Assignment | None:
        """Assign recorder ``serial`` to officer ``badge`` from ``valid_from`` (default now).

        Files recorded from then on are credited to ``badge``. Return the
        assignment this one ends. Raise RecorderNotFound, RecorderRetired,
        OfficerNotFound.
        """
        self.vault.authorize("registry")
        with self.vault.change() as change:
            at = change.at
            self._active_recorder(change.catalog, serial)
            if officer(change.catalog, badge) is None:
                raise OfficerNotFound(badge=badge)
            ended = assign(change.catalog, serial, badge, valid_from or at, at, self.vault.actor)
            change.record(
                "recorder-assign",
                details={
                    "serial": serial,
                    "officer": badge,
                    "valid_from": valid_from or at,
                    "previous_officer": ended.badge if ended else None,
                },
            )
        return ended

    @staticmethod
    def _active_recorder(catalog: Catalog, serial: str) -> Recorder:
        """Return the registered, not retired recorder; raise RecorderNotFound or RecorderRetired."""
        found = recorder(catalog, serial)
        if found is None:
            raise RecorderNotFound(serial=serial)
        if found.retired_at:
            raise RecorderRetired(serial=serial, retired_at=found.retired_at)
        return found

    def retire_recorder(self, serial: str) -> Recorder:
        """Retire a recorder: it is no longer ingested when docked; its history stays."""
        self.vault.authorize("registry")
        with self.vault.change() as change:
            self._active_recorder(change.catalog, serial)
            retire_recorder(change.catalog, serial, change.at)
            change.record("recorder-retire", details={"serial": serial})
            result = recorder(change.catalog, serial)
        assert result is not None
        return result

    @_locked
    def recorders(self) -> list[Recorder]:
        self.vault.authorize("report")
        return recorders(self.vault.catalog)

    @_locked
    def recorder(self, serial: str) -> Recorder | None:
        return recorder(self.vault.catalog, serial)

    @_locked
    def assignments(self, serial: str) -> list[Assignment]:
        return assignments(self.vault.catalog, serial)

    @_locked
    def officer_at(self, serial: str, when: str) -> str | None:
        return officer_at(self.vault.catalog, serial, when)

    # -- dock sessions ---------------------------------------------------------

    def open_dock_session(
        self, serial: str, device: str, profile: str, docked_at: str, identity: dict
    ) -> int:
        """Record that a recorder was docked and its pull begins; return the session id."""
        with self.vault.change() as change:
            session_id = open_session(change.catalog, serial, device, profile, docked_at)
            change.record(
                "recorder-docked",
                details={"session": session_id, "serial": serial, "profile": profile, "device": identity},
            )
        return session_id

    def close_dock_session(self, session_id: int, state: str, counts: dict, errors: list[str]) -> None:
        """Record how a dock session ended (done, interrupted, failed) with its counts."""
        with self.vault.change() as change:
            close_session(
                change.catalog,
                session_id,
                {**counts, "state": state, "finished_at": change.at, "errors": errors[:50]},
            )
            change.record(
                "dock-session-closed",
                details={"session": session_id, "state": state, **counts, "errors": errors[:10]},
            )

    def record_undock(self, session_id: int | None, serial: str, device: str) -> None:
        """Record that a recorder went away (its session, if any, says when)."""
        with self.vault.change() as change:
            if session_id is not None:
                close_session(change.catalog, session_id, {"undocked_at": change.at})
            change.record(
                "recorder-undocked", details={"session": session_id, "serial": serial, "device": device}
            )

    def interrupt_open_dock_sessions(self) -> list[int]:
        """Close, as interrupted, the sessions a stopped or killed daemon left open."""
        with self.vault.change() as change:
            ids = interrupt_open_sessions(change.catalog, change.at)
            if ids:
                change.record("dock-sessions-interrupted", details={"sessions": ids})
        return ids

    @_locked
    def dock_sessions(self, limit: int = 20, serial: str | None = None) -> list[DockSessionRecord]:
        self.vault.authorize("status")
        return sessions(self.vault.catalog, limit, serial)

    @_locked
    def known_file(self, serial: str, path: str, size: int, mtime_ns: int) -> int | None:
        return known_file(self.vault.catalog, serial, path, size, mtime_ns)

    @_locked
    def latest_item_at_path(self, serial: str, path: str) -> int | None:
        return latest_item_at_path(self.vault.catalog, serial, path)

    def remember_recorder_file(self, item: Item, recorder_file: tuple) -> None:
        """Remember that a recorder file (already in the vault as ``item``) was seen: skip it next time."""
        serial, path, size, mtime_ns, session = recorder_file
        with self.vault.change() as change:
            remember_file(change.catalog, serial, path, size, mtime_ns, item.number, session)

    def record_wipe(self, item: Item, recorder_file: tuple) -> None:
        """Audit that a recorder file, safe in the vault as ``item``, was deleted from the recorder."""
        serial, path, size, mtime_ns, session = recorder_file
        with self.vault.change() as change:
            mark_wiped(change.catalog, serial, path, size, mtime_ns, change.at)
            change.record(
                "recorder-file-wiped",
                item.number,
                {"serial": serial, "path": path, "size": size, "session": session, "sha256": item.sha256},
            )

    def record_unknown_device(self, key: str, identity: dict, reason: str) -> None:
        """Audit a device that was docked but not ingested, and remember it for ``status``."""
        with self.vault.change() as change:
            note_unknown_device(change.catalog, key, {**identity, "reason": reason}, change.at)
            change.record("unknown-device-docked", details={"reason": reason, "device": identity})

    @_locked
    def unknown_devices(self, limit: int = 20) -> list[UnknownDevice]:
        self.vault.authorize("status")
        return unknown_devices(self.vault.catalog, limit)

    @_locked
    def late_items(self, since: str | None = None) -> list[dict]:
        self.vault.authorize("report")
        return self.vault.cases.visible_records(
            late_items(self.vault.catalog, since), lambda row: ([row["id"]], None)
        )

    @_locked
    def silent_recorders(self, cutoff: str) -> list[dict]:
        self.vault.authorize("report")
        return silent_recorders(self.vault.catalog, cutoff)


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
