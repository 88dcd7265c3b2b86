"""What makes a replica self-describing, and how a vault is rebuilt from it.

Beside the objects, each target holds, all sealed with the master key like
objects (the provider reads nothing)::

    <prefix>vault/identity/<sha256>                 vault id, the audit signing key pair
    <prefix>items/EV-000123/<seq>-<sha256>          the item's catalog record, signed
    <prefix>registry/<seq>-<sha256>                 officers, recorders, assignments, signed
    <prefix>audit/<first>-<last>-<sha256>           audit events and signed checkpoints

``<seq>`` is the audit chain's head when the document was written, so the
newest document of an item sorts last. The name's SHA-256 is the plaintext's,
which unsealing checks. :func:`restore` rebuilds a vault home from these and
the objects alone, given the master key.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from custody.config import Settings
from custody.errors import CustodyError, Said
from custody.vault import keys
from custody.vault.anchors import Checkpoint as AnchorCheckpoint
from custody.vault.anchors import PublishedChain
from custody.vault.audit import ROTATION, canonical_json, load_public_pem
from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id
from custody.vault.objects import ObjectStore, StagedObject, verify_plaintext
from custody.vault.offsite.target import ReplicaUnavailable, S3Target
from custody.vault.sealing import seal, unseal
from custody.vault.timestamps import to_text, utc_now

log = logging.getLogger(__name__)

FORMAT = 1
_HEAD_NAMED = re.compile(r"\d{12}-")
# Catalog tables an item's sidecar carries, with the column naming the item.
ITEM_TABLES = (
    ("items", "id"),
    ("tags", "item"),
    ("derivatives", "item"),
    ("media", "item"),
    ("item_categories", "item"),
    ("confidentiality", "item"),
)
# The registry document: whole tables (or the rows the condition picks) that belong to no one item.
# Holds, categories, confidentiality and staff of cases go too: a restored vault keeps what keeps
# footage (a hold, a permanent category) and who may see it, as the chain says; and the case files.
REGISTRY_TABLES = {
    "officers": "1",
    "recorders": "1",
    "assignments": "1",
    "officer_logins": "1",
    "holds": "1",
    "case_categories": "1",
    "case_staff": "1",
    "confidentiality": "item IS NULL",
    # Case files: cases and their stages, written records, links and exemptions, archived versions
    # (parents before children: restore inserts them in this order).
    "cases": "1",
    "case_handlers": "1",
    "case_stages": "1",
    "documents": "1",
    "case_links": "1",
    "recording_exemptions": "1",
    "case_archives": "1",
    # Supervision: samples before their reviews.
    "supervision_samples": "1",
    "supervision_reviews": "1",
}


class RestoreFailed(CustodyError):
    """restore from {target} stopped: {problem}"""

    exit_code = 9


# -- sealing small documents ---------------------------------------------------


def seal_document(document: dict, master: keys.MasterKey) -> tuple[str, bytes]:
    """Return (sha256 of the JSON, the sealed bytes) for a document."""
    sealed = io.BytesIO()
    result = seal(io.BytesIO(canonical_json(document)), sealed, master)
    return result.sha256, sealed.getvalue()


def unseal_document(sealed: bytes, master: keys.MasterKey, sha256: str) -> dict:
    """Authenticate, re-hash and parse a sealed document; raise ObjectDamaged when it fails."""
    plain = io.BytesIO()
    verify_plaintext(unseal(io.BytesIO(sealed), master, sha256), sha256, sink=plain)
    return json.loads(plain.getvalue())


def sign(document: dict, signing_key, public_key) -> dict:
    return {
        "document": document,
        "key_fingerprint": keys.public_key_fingerprint(public_key),
        "signature": signing_key.sign(canonical_json(document)).hex(),
    }


def signed_document(envelope: dict, public_key, what: str) -> dict:
    """Return the document of a signed envelope; raise RestoreFailed when the signature fails.

    ``public_key`` is the vault's key, or {fingerprint: key} of every key its
    chain pinned (a sidecar signed before a rotation carries the old key's).
    """
    try:
        signature = bytes.fromhex(envelope["signature"])
        document = envelope["document"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RestoreFailed(
            target="replica", problem=Said("{what} is not a signed document", what=what)
        ) from exc
    if isinstance(public_key, dict):
        public_key = public_key.get(envelope.get("key_fingerprint"))
    if public_key is None or not keys.signature_is_valid(public_key, signature, canonical_json(document)):
        raise RestoreFailed(target="replica", problem=Said("{what} fails its signature", what=what))
    return document


# -- writing the description ---------------------------------------------------


@dataclass
class DescribeSummary:
    sidecars: int = 0
    audit_events: int = 0
    registry: bool = False
    identity: bool = False


def describe(
    vault, target: S3Target, retain_until: datetime | None, lock_for: Callable[[str], tuple[datetime, bool]]
) -> DescribeSummary:
    """Bring the target's description of the vault up to date (identity, sidecars, registry, audit).

    ``lock_for(sha256)`` is replication's retention rule: each sidecar records
    its item's retain-until and legal hold as the replicas are locked.
    """
    summary = DescribeSummary()
    name = target.name
    with vault.serialized():
        catalog: Catalog = vault.catalog
        meta = dict(
            catalog.db.execute("SELECT name, value FROM replica_meta WHERE target = ?", [name]).fetchall()
        )
        head, _hash = vault.audit.head()
        scanned = int(meta.get("sidecars_seq", "0"))
        changed = [
            row[0]
            for row in catalog.db.execute(
                "SELECT DISTINCT item FROM audit WHERE seq > ? AND item IS NOT NULL ORDER BY item", [scanned]
            )
        ]
        documents = {number: _item_document(catalog, number, lock_for) for number in changed}
        registry = {
            table: _rows(catalog, f"SELECT * FROM {table} WHERE {condition}", [])
            for table, condition in REGISTRY_TABLES.items()
        }
        vault_id = catalog.get_meta("vault_id")
        created_at = catalog.get_meta("created_at")
    master, audit = vault.master, vault.audit

    identity = {
        "format": FORMAT,
        "vault_id": vault_id,
        "created_at": created_at,
        "master_key_id": master.key_id,
        "signing_key": keys.signing_key_pem(audit.signing_key),
    }
    identity_sha, sealed = seal_document(identity, master)
    if meta.get("identity") != identity_sha:
        # Named by the chain's head: after a key rotation the newest identity sorts last.
        target.put_blob(f"vault/identity/{head:012d}-{identity_sha}", sealed, None)
        _set_meta(vault, name, "identity", identity_sha)
        summary.identity = True
    for number, document in documents.items():
        if document is None:
            continue
        sha256, sealed = seal_document(sign(document, audit.signing_key, audit.public_key), master)
        target.put_blob(f"items/{format_item_id(number)}/{head:012d}-{sha256}", sealed, retain_until)
        summary.sidecars += 1
    _set_meta(vault, name, "sidecars_seq", str(head))
    registry_sha, sealed = seal_document(sign(registry, audit.signing_key, audit.public_key), master)
    if meta.get("registry") != registry_sha:
        target.put_blob(f"registry/{head:012d}-{registry_sha}", sealed, retain_until)
        _set_meta(vault, name, "registry", registry_sha)
        summary.registry = True
    summary.audit_events = publish_audit(vault, target, retain_until)
    return summary


def published_chain(target: S3Target, master) -> PublishedChain:
    """What the target holds of the audit chain: every version of every audit segment, and the keys.

    Every version is read, not only the newest: Object Lock keeps the one the
    vault wrote, and a version put over it (by whoever may write to the
    bucket) is itself named as a problem of the anchor. Raise
    ReplicaUnavailable when the bucket cannot be read.
    """
    published = PublishedChain(source=f"offsite target {target.name}")

    def forged(key: str, version: str | None) -> None:
        published.problems.append(f"{key} version {version} does not authenticate: put there by someone else")

    for key, versions in sorted(target.versions_under("vault/identity/").items()):
        for version, identity, failure in _unsealed_versions(target, key, master, versions):
            try:
                private = (
                    None
                    if failure
                    else serialization.load_pem_private_key(identity["signing_key"].encode(), password=None)
                )
            except (KeyError, ValueError, TypeError):
                private = None
            if private is None:
                forged(key, version)
                continue
            public = private.public_key()
            published.public_keys[keys.public_key_fingerprint(public)] = public
    seen: dict[int, str] = {}
    for key, versions in sorted(target.versions_under("audit/").items()):
        for version, segment, failure in _unsealed_versions(target, key, master, versions):
            if failure:
                forged(key, version)
                continue
            for event in segment.get("events", []):
                seq, digest = int(event["seq"]), event["hash"]
                if seen.get(seq, digest) != digest:
                    published.problems.append(f"event {seq} was published twice, differently ({key})")
                seen[seq] = digest
            for point in segment.get("checkpoints", []):
                published.add_checkpoint(
                    AnchorCheckpoint(
                        target_vault_id(segment, point),
                        int(point["seq"]),
                        point["head_hash"],
                        point["signed_at"],
                        point["signature"],
                        point.get("key_fingerprint", ""),
                    )
                )
    published.events = seen
    return published


def target_vault_id(segment: dict, point: dict) -> str:
    """The vault a published checkpoint belongs to ("" where the segment does not say: not checked)."""
    return str(point.get("vault") or segment.get("vault") or "")


def publish_audit(vault, target: S3Target, retain_until: datetime | None) -> int:
    """Send the target the audit events and signed checkpoints it has not had; return how many events.

    The audit segments are the vault's anchors off the machine (with Object
    Lock, nobody can take them back): ``custody verify --against offsite``
    compares the chain with them. Cheap when nothing is new (one catalog read).
    """
    name = target.name
    with vault.serialized():
        catalog: Catalog = vault.catalog
        meta = dict(
            catalog.db.execute(
                "SELECT name, value FROM replica_meta WHERE target = ? AND name IN ('audit_seq', 'checkpoint_seq')",
                [name],
            ).fetchall()
        )
        exported = int(meta.get("audit_seq", "0"))
        signed = int(meta.get("checkpoint_seq", "0"))
        events = list(catalog.db.query("SELECT * FROM audit WHERE seq > ? ORDER BY seq", [exported]))
        # Checkpoints apart from events: the one signing a run's last event is made after that run.
        checkpoints = list(catalog.db.query("SELECT * FROM checkpoints WHERE seq > ? ORDER BY seq", [signed]))
    if not events and not checkpoints:
        return 0
    segment = {"format": FORMAT, "vault": vault.audit.vault_id, "events": events, "checkpoints": checkpoints}
    sha256, sealed = seal_document(segment, vault.master)
    # Keys sort in chain order; a segment of checkpoints alone sorts before the next events.
    first, last = (events[0]["seq"], events[-1]["seq"]) if events else (exported + 1, exported)
    target.put_blob(f"audit/{first:012d}-{last:012d}-{sha256}", sealed, retain_until)
    _set_meta(vault, name, "audit_seq", str(last))
    if checkpoints:
        _set_meta(vault, name, "checkpoint_seq", str(checkpoints[-1]["seq"]))
    return len(events)


def _rows(catalog: Catalog, sql: str, params: list) -> list[dict]:
    """Catalog rows as JSON can carry them (a BLOB becomes {"hex": ...})."""
    return [
        {k: {"hex": v.hex()} if isinstance(v, bytes) else v for k, v in row.items()}
        for row in catalog.db.query(sql, params)
    ]


def _row(encoded: dict) -> dict:
    return {
        k: bytes.fromhex(v["hex"]) if isinstance(v, dict) and set(v) == {"hex"} else v
        for k, v in encoded.items()
    }


def _item_document(
    catalog: Catalog, number: int, lock_for: Callable[[str], tuple[datetime, bool]]
) -> dict | None:
    rows = {
        table: _rows(catalog, f"SELECT * FROM {table} WHERE {column} = ?", [number])
        for table, column in ITEM_TABLES
    }
    if not rows["items"]:
        tombstone = _rows(catalog, "SELECT * FROM tombstones WHERE item = ?", [number])
        if not tombstone:
            return None
        # The newest document of a disposed item says so: a restore must not bring it back.
        request = _rows(catalog, "SELECT * FROM disposition_requests WHERE id = ?", [tombstone[0]["request"]])
        return {"format": FORMAT, "item": number, "tombstone": tombstone[0], "request": request[0]}
    retain_until, legal_hold = lock_for(rows["items"][0]["sha256"])
    retention = {"retain_until": to_text(retain_until), "legal_hold": legal_hold}
    return {"format": FORMAT, "item": number, "rows": rows, "retention": retention}


def _set_meta(vault, target: str, name: str, value: str) -> None:
    with vault.change() as change:
        change.catalog.db.execute(
            "INSERT INTO replica_meta (target, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (target, name) DO UPDATE SET value = excluded.value",
            [target, name, value],
        )


# -- rebuilding a vault ------------------------------------------------------------


@dataclass
class RestoreReport:
    items: int = 0
    objects: int = 0
    audit_events: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "items": self.items,
            "objects": self.objects,
            "audit_events": self.audit_events,
            "checkpoints": self.checkpoints,
            "problems": self.problems,
        }


def restore(settings: Settings, target_name: str, master_key_file: Path, actor: str) -> RestoreReport:
    """Rebuild the vault home ``settings.home`` from target ``target_name`` and the master key.

    The home must hold no vault yet (a custody.toml naming the target may be
    there). Every object is downloaded, authenticated and re-hashed before it
    is placed; the audit chain is checked link by link and its checkpoints'
    signatures; every sidecar's signature is checked. Raise RestoreFailed on
    the first thing that does not hold; a failed restore leaves no catalog.
    """
    from custody.vault.vault import CATALOG_NAME, make_home_private

    if target_name not in settings.targets:
        raise RestoreFailed(
            target=target_name,
            problem=Said(
                "no [targets.{target_name}] in {config_path}: put the target's table there first",
                target_name=target_name,
                config_path=settings.config_path,
            ),
        )
    home = settings.home
    if (home / CATALOG_NAME).exists():
        raise RestoreFailed(
            target=target_name,
            problem=Said("{home} already holds a vault: restore into a new home", home=home),
        )
    target = S3Target(target_name, settings.targets[target_name])
    master = keys.read_master_key_file(master_key_file)
    report = RestoreReport()
    created_home = not home.exists()
    try:
        identity = _newest_document(target, "vault/identity/", master, "the vault identity", report)
        if identity.get("master_key_id") != master.key_id:
            raise RestoreFailed(
                target=target_name, problem="this master key is not the replicated vault's (key id differs)"
            )
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        public_key = _restore_keys(settings, master, identity)
        if not settings.config_path.exists():
            raise RestoreFailed(
                target=target_name, problem=Said("{config_path} is missing", config_path=settings.config_path)
            )
        ObjectStore.create_layout(home / "objects")
        numbers, objects = _restore_catalog(settings, target, master, identity, public_key, report)
        store = ObjectStore(home / "objects", master, direct_io=settings.vault.direct_io)
        object_versions = target.versions_under("objects/sha256/")
        for sha256 in objects:
            _restore_object(store, target, sha256, object_versions.get(target.object_key(sha256), []), report)
            report.objects += 1
        make_home_private(home)
        _open_restored(settings, actor, target, objects, len(numbers), report)
        report.items = len(numbers)
        return report
    except BaseException:
        _remove_partial_restore(home, created_home)
        raise


def _restore_keys(settings: Settings, master, identity: dict):
    """Write the master and signing keys into the new home; return the signing key's public half."""
    from custody.vault.vault import PUBLIC_KEY_NAME

    keys.write_master_key(settings.home_path(settings.keys.master_key_file), master)
    signing_key = serialization.load_pem_private_key(identity["signing_key"].encode(), password=None)
    keys.write_signing_key(
        settings.home_path(settings.keys.signing_key_file), settings.home / PUBLIC_KEY_NAME, signing_key
    )
    return signing_key.public_key()


def _restore_catalog(
    settings: Settings, target: S3Target, master, identity: dict, public_key, report: RestoreReport
) -> tuple[list[int], list[str]]:
    """Rebuild the catalog (chain, items, registry) in one transaction; return the items' numbers
    and every object (originals and derivatives) to download."""
    from custody.vault.vault import CATALOG_NAME

    catalog = Catalog(settings.home / CATALOG_NAME, settings.catalog.busy_timeout_seconds)
    try:
        with catalog.transaction():
            catalog.set_meta("vault_id", identity["vault_id"])
            catalog.set_meta("created_at", identity["created_at"])
            _restore_audit(catalog, target, master, report)
            signers = _pinned_public_keys(catalog, public_key)
            numbers = _restore_items(catalog, target, master, signers, report)
            _restore_registry(catalog, target, master, signers, report)
        objects = [
            sha256
            for (sha256,) in catalog.db.execute(
                "SELECT sha256 FROM items UNION SELECT sha256 FROM derivatives"
            )
        ]
    finally:
        catalog.close()
    return numbers, objects


def _open_restored(
    settings: Settings, actor: str, target: S3Target, objects: list[str], items: int, report: RestoreReport
) -> None:
    """Open the restored vault, check its chain, mark its replicas and record the restore."""
    from custody.vault.vault import Vault

    vault = Vault(settings, actor, writer=True)
    try:
        chain = vault.audit.verify()
        if chain.problems:
            raise RestoreFailed(
                target=target.name,
                problem=Said("the audit chain does not hold: {problem}", problem=chain.problems[0]),
            )
        _mark_replicated(vault, target, objects)
        vault.record(
            "restored",
            {
                "from": target.name,
                "bucket": settings.targets[target.name].bucket,
                "items": items,
                "objects": report.objects,
                "audit_events": report.audit_events,
            },
        )
    finally:
        vault.close()


def _remove_partial_restore(home: Path, created_home: bool) -> None:
    """A failed restore leaves no catalog, objects or keys (nor the home, when it made it)."""
    from custody.vault.vault import CATALOG_NAME

    for leftover in (home / CATALOG_NAME, home / "objects", home / "keys"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{leftover}{suffix}").unlink(missing_ok=True)
    if created_home:
        shutil.rmtree(home, ignore_errors=True)


def _mark_replicated(vault, target: S3Target, objects: list[str]) -> None:
    """The restored vault knows its source holds every object and its description up to now."""
    now = utc_now()
    with vault.change() as change:
        db = change.catalog.db
        for sha256 in objects:
            path = vault.objects.path_for(sha256)
            size = path.stat().st_size
            db.execute(
                "INSERT OR REPLACE INTO replicas (sha256, target, state, size, next_attempt, queued_at, "
                "uploaded_at, verified_at, verified_by, checksum) "
                "VALUES (?, ?, 'verified', ?, ?, ?, ?, ?, 'restore', ?)",
                [sha256, target.name, size, now, now, now, now, target.expected_checksum(path, size)],
            )
        head, _hash = vault.audit.head()
        signed = vault.audit.last_checkpoint_seq()
        for name, value in (
            ("identity", "restored"),
            ("sidecars_seq", head),
            ("audit_seq", head),
            ("checkpoint_seq", signed),
        ):
            db.execute(
                "INSERT OR REPLACE INTO replica_meta (target, name, value) VALUES (?, ?, ?)",
                [target.name, name, str(value)],
            )


def _newest_document(
    target: S3Target, folder: str, master, what: str, report: RestoreReport | None = None
) -> dict:
    # Names led by the chain's head ("<seq>-<sha256>") sort in time; an older vault's identity
    # was named by its hash alone: those count as older than any named by a head.
    found = sorted(
        target.keys_under(folder),
        key=lambda key: (_HEAD_NAMED.match(key.rsplit("/", 1)[-1]) is not None, key),
    )
    if not found:
        raise RestoreFailed(
            target=target.name,
            problem=Said("{what} is not in the bucket (nothing was replicated?)", what=what),
        )
    return _document_at(target, found[-1], master, what, report)


def _document_at(
    target: S3Target,
    key: str,
    master,
    what: str,
    report: RestoreReport | None = None,
    versions: list[str] | None = None,
) -> dict:
    """The sealed document at ``key``: its newest version that authenticates.

    A newer version that does not (someone put one over it: Object Lock stops
    deletes, not additions) is reported in ``report.problems`` as an alarm and
    passed over. Raise RestoreFailed when no version holds.
    """
    versions = versions if versions is not None else (target.versions(key) or [None])
    failures: list[tuple[str | None, CustodyError]] = []
    for version, document, failure in _unsealed_versions(target, key, master, versions):
        if failure is not None:
            failures.append((version, failure))
            continue
        if report is not None:
            for bad, exc in failures:
                report.problems.append(
                    f"ALARM: {key} version {bad} does not authenticate ({exc.message}): a newer version "
                    f"was put over the sealed one; version {version} was used"
                )
        return document
    newest = failures[0][1]
    problem = str(newest.fields.get("problem", ""))
    if problem.startswith("sealed with master key"):
        raise RestoreFailed(
            target=target.name,
            problem=Said("this master key is not the replicated vault's ({problem})", problem=problem),
        ) from newest
    raise RestoreFailed(
        target=target.name,
        problem=Said(
            "{what} ({key}) fails its check in every version ({count}): {message}",
            what=what,
            key=key,
            count=len(failures),
            message=newest.message,
        ),
    ) from newest


def _unsealed_versions(target: S3Target, key: str, master, versions: list[str | None]):
    """Yield (version, document, None) for each version of the sealed document ``key`` that
    authenticates, (version, None, the error) for each that does not, in the order given.
    Raise ReplicaUnavailable when the bucket cannot be read."""
    sha256 = key.rsplit("/", 1)[-1].rsplit("-", 1)[-1]  # "<head>-<sha256>", or the hash alone
    for version in versions:
        try:
            yield version, unseal_document(target.get_blob(key, version), master, sha256), None
        except CustodyError as exc:
            if isinstance(exc, ReplicaUnavailable):
                raise
            yield version, None, exc


def _restore_audit(catalog: Catalog, target: S3Target, master, report: RestoreReport) -> None:
    expected = 1
    for key in target.keys_under("audit/"):
        segment = _document_at(target, key, master, "an audit segment", report)
        for event in segment["events"]:
            if event["seq"] != expected:
                raise RestoreFailed(
                    target=target.name,
                    problem=Said("audit event {expected} is missing from the replica", expected=expected),
                )
            catalog.db["audit"].insert(event)
            expected += 1
            report.audit_events += 1
        for checkpoint in segment["checkpoints"]:
            catalog.db["checkpoints"].insert(checkpoint, ignore=True)
            report.checkpoints += 1


def _pinned_public_keys(catalog: Catalog, current) -> dict:
    """{fingerprint: public key} of the vault's key and every key its restored chain rotated through."""
    found = {keys.public_key_fingerprint(current): current}
    for (text,) in catalog.db.execute("SELECT details FROM audit WHERE action = ?", [ROTATION]):
        details = json.loads(text)
        for field_name in ("from_public_key", "to_public_key"):
            key = load_public_pem(details.get(field_name, ""))
            if key is not None:
                found[keys.public_key_fingerprint(key)] = key
    return found


def _restore_items(
    catalog: Catalog, target: S3Target, master, public_key, report: RestoreReport
) -> list[int]:
    newest: dict[str, str] = {}
    for key in target.keys_under("items/"):
        item_id = key.split("/")[1]
        newest[item_id] = key  # keys sort by head seq: the last is the newest
    numbers = []
    for item_id, key in sorted(newest.items()):
        document = signed_document(
            _document_at(target, key, master, f"{item_id}'s sidecar", report),
            public_key,
            f"{item_id}'s sidecar",
        )
        if "tombstone" in document:
            catalog.db["disposition_requests"].insert(_row(document["request"]), ignore=True)
            catalog.db["tombstones"].insert(_row(document["tombstone"]), ignore=True)
            continue
        for table, _column in ITEM_TABLES:
            for row in document["rows"].get(table, []):
                catalog.db[table].insert(_row(row))
        numbers.append(document["item"])
    return numbers


def _restore_registry(catalog: Catalog, target: S3Target, master, public_key, report: RestoreReport) -> None:
    found = target.keys_under("registry/")
    if not found:
        return
    document = signed_document(
        _document_at(target, found[-1], master, "the registry", report), public_key, "the registry"
    )
    for table in REGISTRY_TABLES:
        for row in document.get(table, []):
            catalog.db[table].insert(_row(row))


def _restore_object(
    store: ObjectStore, target: S3Target, sha256: str, versions: list[str], report: RestoreReport
) -> None:
    """Download a sealed object into staging, authenticate and re-hash it, then put it in place.

    Its newest version that authenticates is used; each newer one that does
    not is an alarm in ``report.problems``. Raise RestoreFailed when none holds.
    """
    staging = store.staging / f"seal-restore-{sha256[:16]}-{os.getpid()}.part"
    failures: list[str] = []
    try:
        for version in versions or [None]:
            try:
                with open(staging, "wb") as sink:
                    target.download_to(sha256, sink, version)
                    sink.flush()
                    os.fsync(sink.fileno())
                with open(staging, "rb") as source:
                    size = verify_plaintext(unseal(source, store.master, sha256), sha256)
            except CustodyError as exc:
                if isinstance(exc, ReplicaUnavailable):
                    raise
                failures.append(f"version {version}: {exc.message}")
                continue
            for failure in failures:
                report.problems.append(
                    f"ALARM: object {sha256} {failure}: a newer version was put over the sealed one; "
                    f"version {version} was used"
                )
            store.store_staged(StagedObject(path=staging, sha256=sha256, size=size))
            log.info("restored object %s (%d bytes)", sha256, size)
            return
        raise RestoreFailed(
            target=target.name,
            problem=Said(
                "object {sha256} fails its check in every version: {failures}",
                sha256=sha256,
                failures="; ".join(failures),
            ),
        )
    finally:
        staging.unlink(missing_ok=True)
