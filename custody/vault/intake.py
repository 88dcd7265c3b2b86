"""Sealing files into the vault: a source stream staged (hashed, encrypted, read back), then made a
catalogued item in crash-safe steps (intent, object, item with its tags, event and media job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from custody.vault import (
    media_queue,
    registry,
    replica_queue,
)
from custody.vault.catalog import DOCK_COLUMNS, Item
from custody.vault.items import (
    format_item_id,
)
from custody.vault.objects import StagedObject
from custody.vault.sealing import ObjectDamaged, ProgressCallback
from custody.vault.service import VaultService, locked
from custody.vault.timestamps import utc_now


@dataclass(frozen=True)
class DockFacts:
    """What a dock learned about a file before it is sealed: the recorder, the officer credited, the
    recording window's source, the deadline and the flags (the catalog's DOCK_COLUMNS); None: not known."""

    recorder_serial: str | None = None
    credited_officer: str | None = None
    recorded_source: str | None = (
        None  # "container", "filename", "fat-directory", "exfat-directory", "file-mtime"
    )
    docked_at: str | None = None
    deadline: str | None = None
    late: bool | None = None
    clock_suspect: bool | None = None
    important: bool | None = None
    dock_session: int | None = None
    previous_item: int | None = None  # the item this file replaces (same recorder path, changed since)

    def columns(self) -> dict:
        """The catalog columns this sets (flags as 0/1), as the ingest record keeps them."""
        found = {name: getattr(self, name) for name in DOCK_COLUMNS if getattr(self, name) is not None}
        return {name: int(value) if isinstance(value, bool) else value for name, value in found.items()}


@dataclass(frozen=True)
class IngestRecord:
    """What is known about a file when it is sealed, before it becomes an item."""

    original_name: str
    source_path: str
    source_path_bytes: bytes
    source: str
    source_mtime: str | None = None
    recorded_start: str | None = None
    recorded_end: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # The docking station's facts: recorder, credited officer, deadline...
    dock: DockFacts = field(default_factory=DockFacts)
    # (serial, path, size, mtime_ns, session): remembered so a re-dock skips the file.
    recorder_file: tuple | None = None


class Intake(VaultService):
    """Files sealed into the vault and catalogued (``vault.intake``)."""

    def stage(
        self, source: BinaryIO, expected_size: int | None, on_progress: ProgressCallback | None = None
    ) -> StagedObject:
        """Seal a source stream into staging in one pass, read back from the device (see
        ObjectStore.stage); it is made durable when it is stored (``store_group``).

        Raise AccessDenied (recorded) unless the caller may ingest.
        """
        self.vault.authorize("ingest")
        return self.vault.objects.stage(source, expected_size, on_progress, sync=False)

    def discard(self, staged: StagedObject) -> None:
        self.vault.objects.discard(staged)

    @locked
    def store(self, staged: StagedObject, record: IngestRecord) -> Item:
        """Make a staged object a catalogued item (``store_group`` of one). Raise ObjectDamaged when
        its read-back from the device fails (nothing of it is kept)."""
        (stored,) = self.store_group([(staged, record)])
        if isinstance(stored, ObjectDamaged):
            raise stored
        return stored

    def store_group(self, group: list[tuple[StagedObject, IngestRecord]]) -> list[Item | ObjectDamaged]:
        """Make staged objects catalogued items, made durable together; return, in order, each
        item, or the ObjectDamaged that kept a file out (its copy read back from the device did not
        authenticate; nothing of it is kept).

        The contents of ``group`` are distinct. First the objects are made durable and read back
        (ObjectStore.settle: one sync for the group). Then, as order matters for crash safety, the
        intents (the items' records) are committed in one transaction; the objects are renamed
        into place and the renames made durable, once for the group; the items, their tags, audit
        events and media jobs are committed in one transaction, which removes the intents. A crash
        at any point leaves each file whole in the vault or absent: the next open finishes or
        undoes every intent on its own (see Vault._recover). Raise OSError (the group is not
        stored) when the disk fails the sync or a rename.

        The vault's lock is held only for the two commits: while the disk syncs, other threads
        (the next group being sealed, the daemon's readers) go on; the objects in between are
        accounted for by their intents (see Integrity).
        """
        settled = self.vault.objects.settle([staged for staged, _ in group])
        at = utc_now()
        sound = [
            (staged, record)
            for staged, (_, record) in zip(settled, group, strict=True)
            if isinstance(staged, StagedObject)
        ]
        records = [self._full_record(staged, record, at) for staged, record in sound]
        with self.vault.serialized(), self.vault.catalog.transaction():
            for full in records:
                self.vault.catalog.add_intent(full["sha256"], full, at)
        self.vault.objects.store_staged_group([staged for staged, _ in sound])
        with self.vault.change():  # (the commits below join this one transaction)
            numbers = iter([self._insert_item(full) for full in records])
        return [
            self._stored_item(next(numbers)) if isinstance(outcome, StagedObject) else outcome
            for outcome in settled
        ]

    def _stored_item(self, number: int) -> Item:
        with self.vault.serialized():  # (the daemon's threads share the catalog's connection)
            item = self.vault.catalog.item(number)
        assert item is not None
        return item

    def _full_record(self, staged: StagedObject, record: IngestRecord, at: str) -> dict:
        """The catalog record of a staged file, as its intent keeps it until it is an item."""
        return {
            "sha256": staged.sha256,
            "size": staged.size,
            "original_name": record.original_name,
            "source_path": record.source_path,
            "source_path_hex": record.source_path_bytes.hex(),
            "source": record.source,
            "source_mtime": record.source_mtime,
            "recorded_start": record.recorded_start,
            "recorded_end": record.recorded_end,
            "ingested_at": at,
            "ingested_by": self.vault.actor,
            "key_id": self.vault.master.key_id,
            "tags": record.tags,
            "dock": record.dock.columns(),
            "recorder_file": list(record.recorder_file) if record.recorder_file else None,
        }

    def commit_item(self, record: dict, recovered: bool = False) -> Item:
        """Catalogue one item whose object is in place (recovery finishes an intent this way)."""
        return self._stored_item(self._insert_item(record, recovered))

    def _insert_item(self, record: dict, recovered: bool = False) -> int:
        """Insert the item, its tags, its ingest event and its media job, and remove its intent, in one
        change (joined when the caller's change is open); return the item's number."""
        with self.vault.change() as change:
            number = change.catalog.insert_item(record)
            details = {
                "sha256": record["sha256"],
                "size": record["size"],
                "name": record["original_name"],
                "path": record["source_path"],
                "source": record["source"],
                "key_id": record["key_id"],
                # The tags it came with: verify proves the catalog's tags from the chain alone.
                "tags": record["tags"],
            }
            dock = record.get("dock") or {}
            for name in (
                "recorder_serial",
                "credited_officer",
                "recorded_source",
                "deadline",
                "dock_session",
            ):
                if dock.get(name) is not None:
                    details[name] = dock[name]
            for flag in ("late", "clock_suspect", "important"):
                if dock.get(flag):
                    details[flag] = True
            if dock.get("previous_item"):
                details["supersedes"] = format_item_id(dock["previous_item"])
            if recovered:
                details["recovered_after_interruption"] = True
                details["started_by"] = record["ingested_by"]
            seq = change.record("ingest", number, details)
            for name, value in record["tags"].items():
                change.catalog.add_tag(number, name, value, record["ingested_at"], self.vault.actor, seq)
            if record.get("recorder_file"):
                serial, path, size, mtime_ns, session = record["recorder_file"]
                registry.remember_file(change.catalog, serial, path, size, mtime_ns, number, session)
            # Media work (metadata first) is queued in the same transaction: no item is ever missed.
            media_queue.enqueue(change.catalog, media_queue.MEDIA, number, record["ingested_at"])
            # And its copies off-site, so that status counts them as waiting from now on.
            replica_queue.queue_object(
                change.catalog,
                self.vault.settings.targets,
                record["sha256"],
                record["size"],
                record["ingested_at"],
            )
            change.catalog.remove_intent(record["sha256"])
        return number

    @locked
    def size_known(self, size: int) -> bool:
        """Whether an item of exactly ``size`` bytes is in the vault (a file of another size cannot
        be a duplicate, and is sealed without being read twice)."""
        row = self.vault.catalog.db.execute("SELECT 1 FROM items WHERE size = ? LIMIT 1", [size]).fetchone()
        return row is not None

    @locked
    def record_duplicate(self, existing: Item, record: IngestRecord) -> None:
        """Audit that a file already in the vault was offered again."""
        with self.vault.change() as change:
            change.record(
                "duplicate-seen",
                existing.number,
                {"path": record.source_path, "source": record.source, "sha256": existing.sha256},
            )
