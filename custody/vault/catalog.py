"""The SQLite catalog: items, their tag history, pending ingests and the audit tables.

Opened through sqlite-utils in WAL mode with FULL sync (a committed ingest
survives a power cut). The schema is created and upgraded by the numbered
migrations of custody.vault.migrations, applied in order at open; ``PRAGMA user_version`` records
the last one applied.

Tags are history: setting a tag appends a row; an item's current value for a
tag is its newest row. An empty value clears a tag.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from custody.errors import CustodyError
from custody.vault.items import REQUIRED_TAGS, TAG_NAMES, format_item_id
from custody.vault.migrations import MIGRATIONS

# Columns an ingest record may set beyond the basic ones (the docking station's facts).
DOCK_COLUMNS = (
    "recorder_serial",
    "credited_officer",
    "recorded_source",
    "docked_at",
    "deadline",
    "late",
    "clock_suspect",
    "important",
    "dock_session",
    "previous_item",
)

_ITEM_COLUMNS = (
    "id, sha256, size, original_name, source_path, source, source_mtime, "
    "recorded_start, recorded_end, ingested_at, ingested_by, key_id, " + ", ".join(DOCK_COLUMNS)
)


def _current_tag_sql(name: str) -> str:
    return (
        f"(SELECT nullif(value, '') FROM tags WHERE tags.item = items.id AND tags.name = '{name}' "
        "ORDER BY tags.id DESC LIMIT 1)"
    )


_ITEM_SELECT = (
    f"SELECT {_ITEM_COLUMNS}, "
    + ", ".join(f"{_current_tag_sql(name)} AS tag_{name}" for name in TAG_NAMES)
    + " FROM items"
)


class CatalogNewer(CustodyError):
    """catalog {path} has schema version {found}, newer than this custody knows ({known}): upgrade custody"""

    exit_code = 4


@dataclass(frozen=True)
class Item:
    """One catalogued original with its current tags."""

    number: int
    sha256: str
    size: int
    original_name: str
    source_path: str
    source: str
    source_mtime: str | None
    recorded_start: str | None
    recorded_end: str | None
    ingested_at: str
    ingested_by: str
    key_id: str
    tags: dict[str, str]
    recorder_serial: str | None = None
    credited_officer: str | None = None
    recorded_source: str | None = None
    docked_at: str | None = None
    deadline: str | None = None
    late: bool = False
    clock_suspect: bool = False
    important: bool = False
    dock_session: int | None = None
    previous_item: int | None = None

    @property
    def item_id(self) -> str:
        return format_item_id(self.number)

    @property
    def untagged(self) -> list[str]:
        return [name for name in REQUIRED_TAGS if not self.tags.get(name)]

    def as_dict(self) -> dict:
        return {
            "id": self.item_id,
            "sha256": self.sha256,
            "size": self.size,
            "name": self.original_name,
            "source_path": self.source_path,
            "source": self.source,
            "source_mtime": self.source_mtime,
            "recorded_start": self.recorded_start,
            "recorded_end": self.recorded_end,
            "ingested_at": self.ingested_at,
            "ingested_by": self.ingested_by,
            "key_id": self.key_id,
            "tags": self.tags,
            "recorder": self.recorder_serial,
            "credited_officer": self.credited_officer,
            "recorded_source": self.recorded_source,
            "docked_at": self.docked_at,
            "deadline": self.deadline,
            "late": self.late,
            "clock_suspect": self.clock_suspect,
            "important": self.important,
            "dock_session": self.dock_session,
            "previous_item": format_item_id(self.previous_item) if self.previous_item else None,
        }


@dataclass(frozen=True)
class ItemFilter:
    """What ``ls`` asks for; every field that is set must hold (AND)."""

    case: str | None = None  # exactly this case number (exports, holds: never a neighbour's)
    officer: str | None = None
    party: str | None = None
    # A clerk's search: case numbers starting with, party names and file names containing
    # (letters in any case).
    case_prefix: str | None = None
    party_contains: str | None = None
    name_contains: str | None = None
    untagged: bool = False
    recorder: str | None = None
    late: bool = False
    damaged: bool = False
    important: bool = False  # marked important on the recorder
    # Only items credited to (else tagged with) one of these officers: what an officer or a
    # supervisor may see at most, narrowed in SQL before each item is checked (not a client's field).
    officer_any: tuple[str, ...] | None = None
    since: str | None = None
    until: str | None = None
    limit: int | None = None
    offset: int = 0  # (with limit) the matching items to skip first
    newest_first: bool = False


class Catalog:
    """The vault's SQLite catalog at ``path``."""

    def __init__(self, path: Path, busy_timeout_seconds: float = 30.0) -> None:
        self.path = path
        # isolation_level=None: no implicit transactions; every write goes
        # through transaction(), which takes the write lock up front.
        # check_same_thread=False: the daemon's pull workers share the vault;
        # the Vault serialises every catalog call with its lock.
        connection = sqlite3.connect(
            str(path), timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        self.db = sqlite_utils.Database(connection)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block as one write transaction (joined when one is already open)."""
        if self.db.conn.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read the block's queries from one moment of the catalog (a read transaction: writers
        in other connections go on; WAL keeps this one's view)."""
        if self.db.conn.in_transaction:
            yield
            return
        self.db.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise CatalogNewer(path=self.path, found=version, known=len(MIGRATIONS))
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                current = self.db.execute("PRAGMA user_version").fetchone()[0]
                if current >= number:  # another process migrated first
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    # -- meta -------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    # -- items ------------------------------------------------------------

    def insert_item(self, record: dict) -> int:
        """Insert an item from an ingest record; return its number."""
        dock = record.get("dock") or {}
        extra = [name for name in DOCK_COLUMNS if name in dock]
        columns = ", ".join(extra)
        values = ", ".join(f":{name}" for name in extra)
        cursor = self.db.execute(
            "INSERT INTO items (sha256, size, original_name, source_path, source_path_bytes, "
            "source, source_mtime, recorded_start, recorded_end, ingested_at, ingested_by, key_id"
            + (f", {columns}" if extra else "")
            + ") VALUES (:sha256, :size, :original_name, :source_path, :source_path_bytes, :source, "
            ":source_mtime, :recorded_start, :recorded_end, :ingested_at, :ingested_by, :key_id"
            + (f", {values}" if extra else "")
            + ")",
            {
                **{k: v for k, v in record.items() if k != "dock"},
                **{name: dock[name] for name in extra},
                "source_path_bytes": bytes.fromhex(record["source_path_hex"]),
            },
        )
        return cursor.lastrowid

    def item(self, number: int) -> Item | None:
        rows = self._items(f"{_ITEM_SELECT} WHERE items.id = ?", [number])
        return rows[0] if rows else None

    def items_by_ids(self, numbers: list[int]) -> list[Item]:
        """The items with these numbers, in id order (missing ones left out)."""
        if not numbers:
            return []
        return self._items(
            f"{_ITEM_SELECT} WHERE items.id IN (SELECT value FROM json_each(?)) ORDER BY items.id",
            [json.dumps(sorted(set(numbers)))],
        )

    def item_by_sha256(self, sha256: str) -> Item | None:
        rows = self._items(f"{_ITEM_SELECT} WHERE items.sha256 = ?", [sha256])
        return rows[0] if rows else None

    def items_by_sha256_prefix(self, prefix: str, limit: int = 10) -> list[Item]:
        # 'g' sorts after every hex digit: the range is exactly the names with this prefix.
        return self._items(
            f"{_ITEM_SELECT} WHERE items.sha256 >= ? AND items.sha256 < ? "
            f"ORDER BY items.sha256 LIMIT {int(limit)}",
            [prefix, prefix + "g"],
        )

    def list_items(self, where: ItemFilter) -> list[Item]:
        """Return the items matching ``where``, in id order (newest first when it says so), a page of
        them when it has a limit."""
        clauses: list[str] = []
        params: dict[str, object] = {}
        for name, value in (("case", where.case), ("officer", where.officer), ("party", where.party)):
            if value is not None:
                clauses.append(
                    f"items.id IN (SELECT t.item FROM tags t WHERE t.name = :name_{name} "
                    f"AND t.value = :value_{name} AND t.id = (SELECT max(t2.id) FROM tags t2 "
                    f"WHERE t2.item = t.item AND t2.name = :name_{name}))"
                )
                params[f"name_{name}"] = name
                params[f"value_{name}"] = value
        if where.case_prefix:
            # A range on the tags index (name, value), then the current value must still match.
            clauses.append(
                "items.id IN (SELECT t.item FROM tags t WHERE t.name = 'case' AND t.value >= :case_lo "
                "AND t.value < :case_hi AND t.id = (SELECT max(t2.id) FROM tags t2 "
                "WHERE t2.item = t.item AND t2.name = 'case'))"
            )
            params["case_lo"], params["case_hi"] = where.case_prefix, where.case_prefix + "\U0010ffff"
        if where.party_contains:
            clauses.append(f"instr(lower({_current_tag_sql('party')}), lower(:party_part)) > 0")
            params["party_part"] = where.party_contains
        if where.name_contains:
            clauses.append("instr(lower(items.original_name), lower(:name_part)) > 0")
            params["name_part"] = where.name_contains
        if where.untagged:
            clauses.append("(" + " OR ".join(f"{_current_tag_sql(n)} IS NULL" for n in REQUIRED_TAGS) + ")")
        if where.recorder is not None:
            clauses.append("items.recorder_serial = :recorder")
            params["recorder"] = where.recorder
        if where.late:
            clauses.append("items.late = 1")
        if where.damaged:
            clauses.append(
                "items.id IN (SELECT item FROM media WHERE json_extract(facts, '$.integrity.result') = 'damaged')"
            )
        if where.important:
            clauses.append("items.important = 1")
        if where.officer_any is not None:
            names = [f":officer_any_{n}" for n in range(len(where.officer_any))] or ["NULL"]
            clauses.append(
                f"coalesce(nullif(items.credited_officer, ''), {_current_tag_sql('officer')}) IN ({', '.join(names)})"
            )
            params.update({f"officer_any_{n}": badge for n, badge in enumerate(where.officer_any)})
        if where.since:
            clauses.append("coalesce(recorded_start, ingested_at) >= :since")
            params["since"] = where.since
        if where.until:
            clauses.append("coalesce(recorded_start, ingested_at) <= :until")
            params["until"] = where.until
        sql = _ITEM_SELECT
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY items.id DESC" if where.newest_first else " ORDER BY items.id"
        if where.limit is not None:
            sql += f" LIMIT {int(where.limit)} OFFSET {int(where.offset)}"
        return self._items(sql, params)

    def item_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM items").fetchone()[0]

    def total_size(self) -> int:
        return self.db.execute("SELECT coalesce(sum(size), 0) FROM items").fetchone()[0]

    def object_size(self, sha256: str) -> int:
        """Return the plaintext size of an item's or a derivative's object (0 when unknown)."""
        row = self.db.execute(
            "SELECT size FROM items WHERE sha256 = ? UNION ALL SELECT size FROM derivatives WHERE sha256 = ? LIMIT 1",
            [sha256, sha256],
        ).fetchone()
        return row[0] if row else 0

    def all_sha256(self) -> Iterator[tuple[int, str]]:
        yield from self.db.execute("SELECT id, sha256 FROM items ORDER BY id")

    def _items(self, sql: str, params) -> list[Item]:
        return [_item_from_row(row) for row in self.db.query(sql, params)]

    # -- tags -------------------------------------------------------------

    def set_recording_window(self, number: int, start: str, end: str, source: str) -> None:
        """Give an item that had none its recording window (read from its media after ingest)."""
        self.db.execute(
            "UPDATE items SET recorded_start = ?, recorded_end = ?, recorded_source = ? "
            "WHERE id = ? AND recorded_start IS NULL",
            [start, end, source, number],
        )

    def add_tag(self, number: int, name: str, value: str, at: str, actor: str, seq: int) -> None:
        self.db.execute(
            "INSERT INTO tags (item, name, value, set_at, set_by, audit_seq) VALUES (?, ?, ?, ?, ?, ?)",
            [number, name, value, at, actor, seq],
        )
        if name == "case" and value:  # a case number first used as a tag is a case from then on
            added = self.db.execute(
                "INSERT OR IGNORE INTO cases (case_name, opened_at, opened_by, from_tags) VALUES (?, ?, ?, 1)",
                [value, at, actor],
            )
            if added.rowcount:
                self.db.execute(
                    "INSERT INTO case_stages (case_name, stage, moved_at, moved_by, reason, audit_seq) "
                    "VALUES (?, 'initiation', ?, ?, 'a case number used as a tag', ?)",
                    [value, at, actor, seq],
                )

    def tag_history(self, number: int) -> list[dict]:
        return list(
            self.db.query(
                "SELECT name, value, set_at, set_by, audit_seq FROM tags WHERE item = ? ORDER BY id",
                [number],
            )
        )

    # -- pending ingests (crash recovery) ----------------------------------

    def add_intent(self, sha256: str, record: dict, at: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO ingest_intents (sha256, record, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (sha256) DO UPDATE SET record = excluded.record",
                [sha256, json.dumps(record), at],
            )

    def remove_intent(self, sha256: str) -> None:
        self.db.execute("DELETE FROM ingest_intents WHERE sha256 = ?", [sha256])

    def intents(self) -> list[tuple[str, dict]]:
        return [
            (row["sha256"], json.loads(row["record"]))
            for row in self.db.query("SELECT sha256, record FROM ingest_intents ORDER BY created_at")
        ]


def _item_from_row(row: dict) -> Item:
    tags = {name: row[f"tag_{name}"] for name in TAG_NAMES if row[f"tag_{name}"]}
    return Item(
        number=row["id"],
        sha256=row["sha256"],
        size=row["size"],
        original_name=row["original_name"],
        source_path=row["source_path"],
        source=row["source"],
        source_mtime=row["source_mtime"],
        recorded_start=row["recorded_start"],
        recorded_end=row["recorded_end"],
        ingested_at=row["ingested_at"],
        ingested_by=row["ingested_by"],
        key_id=row["key_id"],
        tags=tags,
        recorder_serial=row["recorder_serial"],
        credited_officer=row["credited_officer"],
        recorded_source=row["recorded_source"],
        docked_at=row["docked_at"],
        deadline=row["deadline"],
        late=bool(row["late"]),
        clock_suspect=bool(row["clock_suspect"]),
        important=bool(row["important"]),
        dock_session=row["dock_session"],
        previous_item=row["previous_item"],
    )
