"""Off-site replication: the persistent queue and the worker that empties it.

Every sealed object (originals and derivatives) gets one row per configured
target in the catalog's ``replicas`` table: queued -> uploaded -> verified.
A row that fails waits (exponential backoff with jitter) and is tried again;
nothing is marked replicated until the vault itself has verified it (the
checksum the server reports, or a download re-hashed, per target). Each
verification is an audit event, so the chain says where every object has a
verified copy. ``custody replicate run`` and the daemon drive
:class:`Replicator`; ``replicate check`` compares catalog and bucket.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from custody.config import Settings
from custody.errors import Said
from custody.rules import FLOOR_MONTHS, add_months
from custody.vault import disposal_records, replica_queue
from custody.vault.items import format_item_id
from custody.vault.offsite.published import describe, publish_audit
from custody.vault.offsite.target import ReplicaUnavailable, S3Target
from custody.vault.sealing import sealed_size
from custody.vault.timestamps import from_text, to_text, utc_now

log = logging.getLogger(__name__)

# An object's (retain-until, legal hold), as the retention policy decides.
LockRule = Callable[[str], tuple[datetime, bool]]
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
VERIFY_TRIES_PER_RUN = 3


@dataclass
class ReplicationSummary:
    uploaded: int = 0
    verified: int = 0
    failed: int = 0
    resent: int = 0
    aborted_uploads: int = 0
    sidecars: int = 0
    audit_events: int = 0
    deep_checked: int = 0
    locks_updated: int = 0
    deleted: int = 0
    locked: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "uploaded": self.uploaded,
            "verified": self.verified,
            "failed": self.failed,
            "resent": self.resent,
            "aborted_uploads": self.aborted_uploads,
            "sidecars": self.sidecars,
            "audit_events": self.audit_events,
            "deep_checked": self.deep_checked,
            "locks_updated": self.locks_updated,
            "deleted": self.deleted,
            "locked": self.locked,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class CheckLine:
    """One line of ``replicate check``: ``=`` same, ``-`` missing, ``+`` extra, ``*`` differs, ``!`` error."""

    mark: str
    target: str
    sha256: str
    item: str | None
    detail: str
    # A newer version was put over the sealed object; this older one authenticates (repair restores it).
    good_version: str | None = None

    def as_dict(self) -> dict:
        return {
            "mark": self.mark,
            "target": self.target,
            "sha256": self.sha256,
            "item": self.item,
            "detail": self.detail,
        }


# How soon a newly signed checkpoint leaves the machine while the daemon follows the queue.
PUBLISH_INTERVAL_SECONDS = 2.0


class Replicator:
    """Works the replication queue of one vault (opened as the writer) against its configured targets."""

    def __init__(
        self,
        vault,
        settings: Settings,
        only: str | None = None,
        lock_rule: Callable[[], LockRule] | None = None,
    ) -> None:
        """Replicate ``vault`` to its targets (or ``only`` one).

        ``lock_rule`` builds, once per run when needed, the function giving an
        object's (retain-until, legal hold): the retention policy's, handed in
        by whoever composes the program (retention depends on the vault, not
        the other way). Without it, the two-year floor and no hold.
        """
        self.vault = vault
        self.settings = settings
        names = [only] if only else list(settings.targets)
        unknown = [n for n in names if n not in settings.targets]
        if unknown:
            raise ReplicaUnavailable(
                target=unknown[0],
                problem=Said(
                    "no such target in custody.toml (configured: {targets})",
                    targets=", ".join(settings.targets) or "none",
                ),
            )
        self.targets = {name: S3Target(name, settings.targets[name]) for name in names}
        self.summary = ReplicationSummary()
        self._synced = (0, 0)  # the highest item and derivative ids already queued
        self._lock_rule_factory = lock_rule
        self._lock_rule: LockRule | None = None

    # -- the queue ------------------------------------------------------------

    def sync_queue(self) -> int:
        """Queue every object that has no row for a target yet; return how many rows were added.

        The first call looks at every object; later ones only at items and
        derivatives added since (ids only grow), so following the queue stays
        cheap however big the vault.
        """
        now = utc_now()
        added = 0
        with self._catalog() as catalog:
            items_from, derivatives_from = self._synced
            objects = list(
                catalog.db.execute(
                    "SELECT sha256, size FROM items WHERE id > ? "
                    "UNION SELECT sha256, size FROM derivatives WHERE id > ?",
                    [items_from, derivatives_from],
                )
            )
            self._synced = (
                catalog.db.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0],
                catalog.db.execute("SELECT coalesce(max(id), 0) FROM derivatives").fetchone()[0],
            )
            with catalog.transaction():
                for sha256, size in objects:
                    added += replica_queue.queue_object(catalog, self.targets, sha256, size, now)
        return added

    def run(
        self,
        everything: bool = True,
        repair: bool = False,
        stop: threading.Event | None = None,
        pause: Callable[[], bool] | None = None,
    ) -> ReplicationSummary:
        """Send and verify what is due on every target; return what happened.

        ``everything`` takes rows still waiting out a backoff too (a person
        asked for a run now). ``repair`` first compares each bucket with the
        catalog and queues again what is missing or differs there. The run
        ends early when ``stop`` is set or ``pause()`` turns true.
        """
        stop = stop or threading.Event()
        paused = pause or (lambda: False)
        self._lock_rule = None  # built afresh, when first needed, in each run
        self.sync_queue()
        for name, target in self.targets.items():
            if stop.is_set():
                break
            try:
                target.check_reachable()
                self.summary.aborted_uploads += target.abort_open_uploads()
                self.delete_disposed(name, target)
                if repair:
                    self._requeue_differences(name, target)
            except ReplicaUnavailable as exc:
                self._target_failed(name, exc.message)
                continue
            complete = True  # every due object was tried: the description may follow
            for row in self._due(name, everything):
                if stop.is_set() or paused():
                    complete = False
                    break
                try:
                    self._replicate(name, target, row)
                except ReplicaUnavailable as exc:
                    self._failed(name, row["sha256"], exc.message)
                    if not target_reachable(target):
                        self._target_failed(name, exc.message)
                        complete = False
                        break
            if complete and not stop.is_set():
                try:
                    self.refresh_locks(name, target)
                    self.deep_check(name, target)
                    # After the objects: a description never names an object the bucket lacks.
                    described = describe(
                        self.vault,
                        target,
                        add_months(datetime.now(UTC), FLOOR_MONTHS),
                        self._lock_for,
                    )
                except ReplicaUnavailable as exc:
                    self._target_failed(name, exc.message)
                    continue
                self.summary.sidecars += described.sidecars
                self.summary.audit_events += described.audit_events
        return self.summary

    def follow(
        self, stop: threading.Event, interval: float = 10.0, pause: Callable[[], bool] | None = None
    ) -> ReplicationSummary:
        """Keep working the queue (new objects, rows whose backoff has passed) until ``stop`` is set.

        While ``pause()`` is true nothing is sent (the daemon pauses while
        recorders are pulled: the 24-hour window comes first).
        """
        last_run = float("-inf")
        while not stop.is_set():
            self.publish_checkpoints()
            if (pause is None or not pause()) and time.monotonic() - last_run >= interval:
                try:
                    self.run(everything=False, stop=stop, pause=pause)
                except Exception:  # a bug must not end replication for the daemon's lifetime
                    log.exception("replication run failed; trying again in %g s", interval)
                last_run = time.monotonic()
            stop.wait(min(interval, PUBLISH_INTERVAL_SECONDS))
        return self.summary

    def publish_checkpoints(self) -> int:
        """Send every target the audit events and checkpoints signed since it last had them.

        Runs on every tick of ``follow``, pulls or not: the published chain is
        the anchor ``verify --against offsite`` checks, so it leaves the
        machine within seconds of being signed. A target that cannot be
        reached is tried again at the next tick. Return how many events went.
        """
        sent = 0
        retain_until = add_months(datetime.now(UTC), FLOOR_MONTHS)
        for name, target in self.targets.items():
            try:
                sent += publish_audit(self.vault, target, retain_until)
            except ReplicaUnavailable as exc:
                log.debug("checkpoints not published to %s yet: %s", name, exc.message)
            except Exception:
                log.exception("publishing checkpoints to %s failed", name)
        return sent

    def _replicate(self, name: str, target: S3Target, row: dict) -> None:
        sha256 = row["sha256"]
        if not self._has_row(name, sha256):
            return  # disposed of since the run listed it: its deletion is queued instead
        path = self.vault.objects.path_for(sha256)
        if not path.exists():
            self._failed(name, sha256, "the object file is missing here: run 'custody verify'")
            return
        retain_until, legal_hold = self._lock_for(sha256)
        mode = self.settings.targets[name].verify
        for _attempt in range(VERIFY_TRIES_PER_RUN):
            remote = None
            if row["state"] == "queued":
                sent = target.upload(path, sha256, retain_until, legal_hold)
                self._uploaded(name, sha256, sent.checksum, sent.version_id, retain_until, legal_hold)
                row = {**row, "state": "uploaded", "checksum": sent.checksum}
                remote = sent.remote
            if mode == "download":
                problem = target.download_problem(sha256, self.vault.master)
            else:
                problem = target.checksum_problem(sha256, path.stat().st_size, row["checksum"], remote)
            if problem is None:
                self._verified(name, sha256, mode)
                return
            # Verification failed: what the server holds is not what was sent. Send it again.
            log.warning("replica %s of %s failed verification (%s): sending it again", name, sha256, problem)
            self._requeue(name, sha256, f"verification failed: {problem}")
            self.summary.resent += 1
            row = {**row, "state": "queued"}
        self._failed(name, sha256, f"still failing verification after {VERIFY_TRIES_PER_RUN} uploads")

    def delete_disposed(self, name: str, target: S3Target) -> int:
        """Delete from the target the objects of disposed items; a locked one waits for its date.

        Each deletion is audited (``replica-deleted``); a refusal by Object
        Lock is reported (``replica-delete-locked``) and tried again after
        the retain-until date. An object in use again by then (an identical
        thumbnail of a later item) is kept and the deletion dropped
        (``replica-deletion-dropped``): every version goes when one goes.
        Return how many were deleted.
        """
        with self._catalog() as catalog:
            due = [
                row[0]
                for row in catalog.db.execute(
                    "SELECT sha256 FROM replica_deletions WHERE target = ? AND state != 'done' AND not_before <= ?",
                    [name, utc_now()],
                )
            ]
        deleted = 0
        for sha256 in due:
            if self._drop_deletion_if_in_use(name, sha256):
                continue
            locked_until = target.delete_everywhere(sha256)
            with self.vault.change() as change:
                if locked_until is None:
                    change.catalog.db.execute(
                        "UPDATE replica_deletions SET state = 'done', last_error = NULL WHERE sha256 = ? AND target = ?",
                        [sha256, name],
                    )
                    change.record("replica-deleted", None, {"target": name, "sha256": sha256})
                    deleted += 1
                else:
                    until = to_text(locked_until.astimezone(UTC))
                    change.catalog.db.execute(
                        "UPDATE replica_deletions SET state = 'locked', not_before = ?, last_error = ? "
                        "WHERE sha256 = ? AND target = ?",
                        [until, f"under Object Lock until {until}", sha256, name],
                    )
                    change.record(
                        "replica-delete-locked",
                        None,
                        {"target": name, "sha256": sha256, "retry_after": until},
                    )
                    self.summary.locked += 1
        self.summary.deleted += deleted
        return deleted

    def _drop_deletion_if_in_use(self, name: str, sha256: str) -> bool:
        """Keep an object that an item or a derivative uses again; True when its deletion was dropped."""
        with self.vault.change() as change:
            if not disposal_records.object_in_use(change.catalog, sha256):
                return False
            reason = "in use again by an item, a derivative or an ingest: kept"
            change.catalog.db.execute(
                "UPDATE replica_deletions SET state = 'done', last_error = ? WHERE sha256 = ? AND target = ?",
                [reason, sha256, name],
            )
            change.record(
                "replica-deletion-dropped", None, {"target": name, "sha256": sha256, "reason": reason}
            )
        return True

    def deep_check(self, name: str, target: S3Target) -> int:
        """Download and re-hash the share of verified replicas due today; queue again what fails.

        ``deep_check_fraction_per_day`` of the verified objects per day since
        the last deep check, those checked longest ago first. Return how many
        were checked.
        """
        fraction = self.settings.targets[name].deep_check_fraction_per_day
        now = datetime.now(UTC)
        with self._catalog() as catalog:
            last = catalog.db.execute(
                "SELECT value FROM replica_meta WHERE target = ? AND name = 'deep_checked_at'", [name]
            ).fetchone()
            verified = catalog.db.execute(
                "SELECT count(*) FROM replicas WHERE target = ? AND state = 'verified'", [name]
            ).fetchone()[0]
        if last is None:
            self._set_meta(name, "deep_checked_at", to_text(now))  # the first day starts now
            return 0
        days = (now - from_text(last[0])).total_seconds() / 86400
        due = int(verified * fraction * days)
        if fraction <= 0 or due < 1:
            return 0
        with self._catalog() as catalog:
            rows = list(
                catalog.db.execute(
                    "SELECT sha256 FROM replicas WHERE target = ? AND state = 'verified' "
                    "ORDER BY deep_checked_at IS NOT NULL, deep_checked_at LIMIT ?",
                    [name, due],
                )
            )
        for (sha256,) in rows:
            problem = target.download_problem(sha256, self.vault.master)
            with self.vault.change() as change:
                change.catalog.db.execute(
                    "UPDATE replicas SET deep_checked_at = ? WHERE sha256 = ? AND target = ?",
                    [utc_now(), sha256, name],
                )
            if problem is not None:
                log.error("replica %s of %s failed its deep check: %s", name, sha256, problem)
                self._requeue(name, sha256, f"deep check: {problem}")
                self.summary.resent += 1
        self._set_meta(name, "deep_checked_at", to_text(now))
        self.summary.deep_checked += len(rows)
        return len(rows)

    def _set_meta(self, name: str, key: str, value: str) -> None:
        with self.vault.change() as change:
            change.catalog.db.execute(
                "INSERT INTO replica_meta (target, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT (target, name) DO UPDATE SET value = excluded.value",
                [name, key, value],
            )

    def _requeue_differences(self, name: str, target: S3Target) -> None:
        # Downloads: on a server that does not validate checksums only they see damage.
        for line in self.check_target(name, target, download=True):
            if line.good_version is not None and not self.vault.objects.exists(line.sha256):
                # Overwritten, and no copy here: the sealed version is still there (Object Lock kept
                # it): copy it back on top. (With a copy here, it is sent again, below: the same bytes.)
                retain_until, legal_hold = self._lock_for(line.sha256)
                target.put_version_on_top(
                    target.object_key(line.sha256), line.good_version, retain_until, legal_hold
                )
                self.vault.record(
                    "replica-version-restored",
                    {"target": name, "sha256": line.sha256, "version": line.good_version},
                )
                self.summary.resent += 1
            elif line.mark in ("-", "*"):
                self._requeue(name, line.sha256, f"repair: {line.detail}")
                self.summary.resent += 1

    # -- checking -------------------------------------------------------------

    def check(self, download: bool = False) -> list[CheckLine]:
        """Compare catalog and bucket for every target (read-only): one line per object."""
        lines: list[CheckLine] = []
        for name, target in self.targets.items():
            try:
                lines += self.check_target(name, target, download)
            except ReplicaUnavailable as exc:
                lines.append(CheckLine("!", name, "", None, exc.message))
        return lines

    def check_target(self, name: str, target: S3Target, download: bool) -> list[CheckLine]:
        expected = self._expected(name)
        remote = target.listing()
        lines = []
        for sha256, (size, checksum, item) in sorted(expected.items()):
            if sha256 not in remote:
                lines.append(CheckLine("-", name, sha256, item, "not in the bucket"))
                continue
            if remote[sha256] != size:
                lines.append(CheckLine("*", name, sha256, item, f"size {remote[sha256]}, expected {size}"))
                continue
            try:
                if download:
                    problem = target.download_problem(sha256, self.vault.master)
                elif checksum:
                    problem = target.checksum_problem(sha256, size, checksum)
                else:
                    problem = "never uploaded by this vault"
            except ReplicaUnavailable as exc:
                lines.append(CheckLine("!", name, sha256, item, exc.message))
                continue
            lines.append(CheckLine("=" if problem is None else "*", name, sha256, item, problem or "same"))
        for extra in sorted(set(remote) - set(expected)):
            lines.append(CheckLine("+", name, extra, None, "in the bucket, not in the catalog"))
        return self._find_overwritten(name, target, expected, lines)

    def _find_overwritten(
        self, name: str, target: S3Target, expected: dict, lines: list[CheckLine]
    ) -> list[CheckLine]:
        """Objects with more than one version: the newest must authenticate, else it is an alarm.

        Object Lock stops deleting a version, not putting a newer one on top;
        a reader (restore, a download) would take the newer one. Each object
        whose newest version does not authenticate gets a ``*`` line naming
        the newest version that does (``replicate run --repair`` puts it back
        on top) and a ``replica-overwritten`` audit event.
        """
        versions = target.versions_under("objects/sha256/")
        by_sha = {line.sha256: index for index, line in enumerate(lines)}
        for sha256 in sorted(expected):
            stored = versions.get(target.object_key(sha256), [])
            if len(stored) < 2:
                continue
            good, bad = target.newest_authentic(sha256, self.vault.master, stored)
            if not bad:
                continue
            newer = ", ".join(f"{version} ({problem})" for version, problem in bad)
            detail = f"ALARM: newer version(s) put over the sealed object do not authenticate: {newer}; " + (
                f"version {good} authenticates: 'custody replicate run --repair' puts it back on top"
                if good
                else "no version authenticates: 'custody replicate run --repair' sends it again"
            )
            line = CheckLine("*", name, sha256, expected[sha256][2], detail, good_version=good)
            if sha256 in by_sha:
                lines[by_sha[sha256]] = line
            else:
                lines.append(line)
            self.vault.record(
                "replica-overwritten",
                {
                    "target": name,
                    "sha256": sha256,
                    "bad_versions": [v for v, _p in bad],
                    "good_version": good,
                },
            )
        return lines

    # -- status ---------------------------------------------------------------

    def status(self) -> list[dict]:
        """Per target: objects total / replicated / verified / failing, bytes, lag, last error, lock (read-only)."""
        now = datetime.now(UTC)
        report = []
        for name, target in self.targets.items():
            objects = self._objects(name)
            states = [row["state"] for row in objects]
            waiting = [row for row in objects if row["state"] != "verified"]
            failing = [row for row in waiting if row["last_error"]]
            oldest = min((row["since"] for row in waiting), default=None)
            last = max(failing, key=lambda row: row["next_attempt"] or "", default=None)
            report.append(
                {
                    "target": name,
                    "bucket": target.settings.bucket,
                    "endpoint": target.settings.endpoint_url or "AWS S3",
                    "objects": len(objects),
                    "replicated": states.count("uploaded") + states.count("verified"),
                    "verified": states.count("verified"),
                    "failing": len(failing),
                    "verified_bytes": sum(
                        row["sealed_size"] for row in objects if row["state"] == "verified"
                    ),
                    "oldest_unreplicated": format_item_id(
                        min(row["item"] for row in waiting if row["since"] == oldest)
                    )
                    if oldest
                    else None,
                    "lag_seconds": round((now - from_text(oldest)).total_seconds()) if oldest else 0,
                    "last_error": last["last_error"] if last else None,
                    "object_lock": _lock_state(target),
                }
            )
        return report

    # -- catalog work (under the vault's lock: the daemon shares one connection) --

    @contextlib.contextmanager
    def _catalog(self):
        with self.vault.serialized():
            yield self.vault.catalog

    def _due(self, name: str, everything: bool) -> list[dict]:
        with self._catalog() as catalog:
            sql = "SELECT * FROM replicas WHERE target = ? AND state != 'verified'"
            params: list = [name]
            if not everything:
                sql += " AND next_attempt <= ?"
                params.append(utc_now())
            return list(catalog.db.query(sql + " ORDER BY queued_at, sha256", params))

    def _objects(self, name: str) -> list[dict]:
        """Every object of the vault (originals and derivatives) with its replica row on ``name``, if any."""
        with self._catalog() as catalog:
            rows = catalog.db.query(
                """
                WITH objects AS (
                    SELECT sha256, size, id AS item, '' AS role, ingested_at AS since FROM items
                    UNION ALL
                    SELECT sha256, size, item, ' ' || role, finished_at AS since FROM derivatives
                )
                SELECT o.sha256, o.size, min(o.item) AS item, min(o.role) AS role, min(o.since) AS since,
                       r.state, r.checksum, r.last_error, r.next_attempt
                FROM objects o LEFT JOIN replicas r ON r.sha256 = o.sha256 AND r.target = ?
                GROUP BY o.sha256 ORDER BY o.sha256
                """,
                [name],
            )
            return [{**row, "sealed_size": sealed_size(row["size"])} for row in rows]

    def _expected(self, name: str) -> dict[str, tuple[int, str | None, str | None]]:
        """sha256 -> (sealed size, checksum sent, the item it belongs to) for every object."""
        return {
            row["sha256"]: (row["sealed_size"], row["checksum"], format_item_id(row["item"]) + row["role"])
            for row in self._objects(name)
        }

    def _lock_for(self, sha256: str) -> tuple[datetime, bool]:
        """(retain-until, legal hold) for an object: the retention rule's, else the two-year floor."""
        if self._lock_rule_factory is not None:
            if self._lock_rule is None:
                self._lock_rule = self._lock_rule_factory()
            return self._lock_rule(sha256)
        with self._catalog() as catalog:
            row = catalog.db.execute(
                """
                SELECT coalesce(i.recorded_start, i.ingested_at) FROM items i
                WHERE i.sha256 = ? OR i.id IN (SELECT item FROM derivatives WHERE sha256 = ?)
                ORDER BY 1 DESC LIMIT 1
                """,
                [sha256, sha256],
            ).fetchone()
        start = from_text(row[0]) if row else datetime.now(UTC)
        return add_months(start, FLOOR_MONTHS), False

    def refresh_locks(self, name: str, target: S3Target) -> int:
        """Bring replicas' Object Lock up to the retention rules after categories or holds changed.

        Retention is only ever extended (COMPLIANCE cannot be shortened, and
        is not asked to); a legal hold is set while an item is permanent or
        held and lifted when neither holds any more. Each change is audited.
        Return how many replicas changed.
        """
        if self._lock_rule_factory is None or not target.object_lock():
            return 0
        with self._catalog() as catalog:
            seen = catalog.db.execute(
                "SELECT value FROM replica_meta WHERE target = ? AND name = 'locks_seq'", [name]
            ).fetchone()
            changed_since = int(seen[0]) if seen else 0
            head = catalog.db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0]
            relevant = catalog.db.execute(
                "SELECT count(*) FROM audit WHERE seq > ? AND action IN "
                "('category-added', 'case-category-added', 'hold-placed', 'hold-released', 'category-removed')",
                [changed_since],
            ).fetchone()[0]
            rows = (
                list(
                    catalog.db.query(
                        "SELECT sha256, retain_until, legal_hold FROM replicas WHERE target = ? "
                        "AND state IN ('uploaded', 'verified')",
                        [name],
                    )
                )
                if relevant
                else []
            )
        changed = 0
        for row in rows:
            retain_until, legal_hold = self._lock_for(row["sha256"])
            stored = from_text(row["retain_until"]) if row["retain_until"] else None
            extend = stored is None or retain_until > stored
            if not extend and bool(row["legal_hold"]) == legal_hold:
                continue
            target.set_lock(row["sha256"], retain_until if extend else None, legal_hold)
            if not legal_hold and row["legal_hold"]:
                target.release_legal_hold(row["sha256"])
            with self.vault.change() as change:
                change.catalog.db.execute(
                    "UPDATE replicas SET retain_until = ?, legal_hold = ? WHERE sha256 = ? AND target = ?",
                    [to_text(retain_until if extend else stored), int(legal_hold), row["sha256"], name],
                )
                change.record(
                    "replica-lock-updated",
                    None,
                    {
                        "target": name,
                        "sha256": row["sha256"],
                        "retain_until": to_text(retain_until if extend else stored),
                        "legal_hold": legal_hold,
                    },
                )
            changed += 1
        self._set_meta(name, "locks_seq", str(head))
        self.summary.locks_updated += changed
        return changed

    def _uploaded(self, name, sha256, checksum, version_id, retain_until, legal_hold) -> None:
        with self.vault.change() as change:
            change.catalog.db.execute(
                "UPDATE replicas SET state = 'uploaded', uploaded_at = ?, checksum = ?, version_id = ?, "
                "retain_until = ?, legal_hold = ? WHERE sha256 = ? AND target = ?",
                [utc_now(), checksum, version_id, to_text(retain_until), int(legal_hold), sha256, name],
            )
        self.summary.uploaded += 1

    def _verified(self, name: str, sha256: str, how: str) -> None:
        with self.vault.change() as change:
            change.catalog.db.execute(
                "UPDATE replicas SET state = 'verified', verified_at = ?, verified_by = ?, last_error = NULL "
                "WHERE sha256 = ? AND target = ?",
                [utc_now(), how, sha256, name],
            )
            row = change.catalog.db.execute(
                "SELECT version_id, retain_until FROM replicas WHERE sha256 = ? AND target = ?",
                [sha256, name],
            ).fetchone()
            if row is None:
                return  # disposed of while it was sent: the deletion queued with it removes the copy
            change.record(
                "replica-verified",
                None,
                {"target": name, "sha256": sha256, "how": how, "version_id": row[0], "retain_until": row[1]},
            )
        self.summary.verified += 1

    def _requeue(self, name: str, sha256: str, reason: str) -> None:
        with self.vault.change() as change:
            change.catalog.db.execute(
                "UPDATE replicas SET state = 'queued', verified_at = NULL, last_error = ? "
                "WHERE sha256 = ? AND target = ?",
                [reason, sha256, name],
            )
            change.record("replica-resend", None, {"target": name, "sha256": sha256, "reason": reason})

    def _has_row(self, name: str, sha256: str) -> bool:
        with self._catalog() as catalog:
            return (
                catalog.db.execute(
                    "SELECT 1 FROM replicas WHERE sha256 = ? AND target = ?", [sha256, name]
                ).fetchone()
                is not None
            )

    def _failed(self, name: str, sha256: str, error: str) -> None:
        with self.vault.change() as change:
            row = change.catalog.db.execute(
                "SELECT attempts FROM replicas WHERE sha256 = ? AND target = ?", [sha256, name]
            ).fetchone()
            if row is None:
                return  # disposed of while it was being sent: nothing to try again
            attempts = row[0]
            wait = min(BACKOFF_BASE_SECONDS * 2**attempts, BACKOFF_MAX_SECONDS) * random.uniform(0.5, 1.5)
            change.catalog.db.execute(
                "UPDATE replicas SET attempts = attempts + 1, last_error = ?, next_attempt = ? "
                "WHERE sha256 = ? AND target = ?",
                [error[:1000], to_text(datetime.now(UTC) + timedelta(seconds=wait)), sha256, name],
            )
        self.summary.failed += 1
        self.summary.errors.append(f"{name}: {sha256[:12]}: {error}")
        log.warning("replica %s: %s: %s", name, sha256, error)

    def _target_failed(self, name: str, error: str) -> None:
        """The target itself is unreachable: every row due waits, each with the error."""
        with self.vault.change() as change:
            change.catalog.db.execute(
                "UPDATE replicas SET last_error = ? WHERE target = ? AND state != 'verified'",
                [error[:1000], name],
            )
        line = f"{name}: {error}"
        if line not in self.summary.errors:
            self.summary.errors.append(line)
            self.summary.failed += 1
        log.error("replica %s: %s", name, error)


def target_reachable(target: S3Target) -> bool:
    try:
        target.check_reachable()
    except ReplicaUnavailable:
        return False
    return True


def _lock_state(target: S3Target) -> str:
    try:
        return "enabled" if target.object_lock() else "NOT ENABLED: replicas can be deleted"
    except ReplicaUnavailable as exc:
        return f"unknown ({exc.message})"
