"""The replication queue's rows: one per object and configured target.

A row is added in the transaction that stores the object (an item or a
derivative), so whatever waits to go off-site is counted the moment it
exists: ``status``, the lag alert and a person's "is it all off-site yet?"
read this table. The replicator also adds rows for objects stored before a
target was configured.
"""

from __future__ import annotations

from collections.abc import Iterable

from custody.vault.catalog import Catalog
from custody.vault.sealing import sealed_size


def queue_object(catalog: Catalog, targets: Iterable[str], sha256: str, size: int, at: str) -> int:
    """Queue the object (``size`` bytes of plaintext) for every target that has no row for it yet,
    in the caller's transaction; return how many rows were added."""
    added = 0
    for name in targets:
        added += catalog.db.execute(
            "INSERT OR IGNORE INTO replicas (sha256, target, state, size, next_attempt, queued_at) "
            "VALUES (?, ?, 'queued', ?, ?, ?)",
            [sha256, name, sealed_size(size), at, at],
        ).rowcount
    return added
