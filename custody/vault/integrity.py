"""Proof of the vault: objects re-hashed, the audit chain and its signatures checked, the catalog
proved against the chain, anchors compared; the newest checkpoint; the signing key's rotation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from custody.vault import (
    anchors,
    derivatives,
    disposal_records,
    keys,
    proof,
)
from custody.vault.audit import ChainProblem
from custody.vault.items import (
    format_item_id,
)
from custody.vault.objects import ObjectStore
from custody.vault.sealing import ObjectDamaged, ProgressCallback
from custody.vault.service import VaultService, locked


@dataclass(frozen=True)
class ObjectProblem:
    kind: str  # "missing", "damaged", "orphan", "stray"
    sha256: str | None
    item: str | None
    problem: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "item": self.item, "sha256": self.sha256, "problem": self.problem}


@dataclass(frozen=True)
class VerifyReport:
    objects_checked: int
    bytes_checked: int
    object_problems: list[ObjectProblem]
    chain_events: int
    chain_checkpoints: int
    chain_problems: list[ChainProblem]
    catalog_problems: list[proof.CatalogDifference] = field(default_factory=list)
    anchors_checked: list[str] = field(default_factory=list)
    anchor_problems: list[anchors.AnchorProblem] = field(default_factory=list)
    archives_checked: int = 0
    archive_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.object_problems
            or self.chain_problems
            or self.catalog_problems
            or self.anchor_problems
            or self.archive_problems
        )

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "object_problems": [p.as_dict() for p in self.object_problems],
            "audit_events": self.chain_events,
            "audit_checkpoints": self.chain_checkpoints,
            "audit_problems": [{"seq": p.seq, "problem": p.problem} for p in self.chain_problems],
            "catalog_problems": [p.as_dict() for p in self.catalog_problems],
            "anchors": self.anchors_checked,
            "anchor_problems": [p.as_dict() for p in self.anchor_problems],
            "archives_checked": self.archives_checked,
            "archive_problems": self.archive_problems,
        }


class Integrity(VaultService):
    """Proof of the vault: verify, anchor, the signing key's rotation (``vault.integrity``)."""

    def verify(
        self,
        refs: list[str] | None = None,
        on_progress: ProgressCallback | None = None,
        against: Iterable[anchors.PublishedChain] = (),
    ) -> VerifyReport:
        """Re-hash objects, match items with objects, check the audit chain, and prove the catalog.

        The chain is checked link by link and every checkpoint against the
        signing key the chain pins; the catalog is proved against the chain
        (proof.prove_catalog); with ``against``, the chain is compared with
        anchors kept off the machine (anchors.compare). With ``refs`` only
        those items' objects are re-hashed (the rest is always checked).
        Never repairs anything. The check itself is audited.
        """
        self.vault.authorize("verify")
        against = list(against)
        with (
            self.vault.serialized(),
            self.vault.catalog.snapshot(),
        ):  # the chain and the tables read at one moment
            chain = self.vault.audit.verify()
            catalog_problems = proof.prove_catalog(self.vault.catalog)
            anchor_problems = [
                problem for anchor in against for problem in anchors.compare(self.vault.audit, anchor)
            ]
        chosen = {item.number for item in self.vault.resolve_all(refs)} if refs else None
        targets = self._objects_of(chosen)
        problems: list[ObjectProblem] = []
        checked_bytes = 0
        for item_id, sha256 in targets:
            try:
                checked_bytes += self.vault.objects.check(sha256, evict_cache=True, on_progress=on_progress)
            except FileNotFoundError:
                problems.append(ObjectProblem("missing", sha256, item_id, "object file is missing"))
            except ObjectDamaged as exc:
                problems.append(ObjectProblem("damaged", sha256, item_id, exc.fields["problem"]))
        if any(p.kind == "missing" for p in problems):
            # A disposal running beside this check removes rows, then files: gone from both is no problem.
            still = {sha for _label, sha in self._objects_of(None)}
            problems = [p for p in problems if p.kind != "missing" or p.sha256 in still]
        archives_checked, archive_problems = 0, []
        if not refs:
            problems += self._unreferenced_objects()
            # Archived case files: each signed record's signature, and the hashes its index lists.
            archives_checked, archive_problems = self.vault.casefiles.check_archives()
        report = VerifyReport(
            objects_checked=len(targets),
            bytes_checked=checked_bytes,
            object_problems=problems,
            chain_events=chain.events,
            chain_checkpoints=chain.checkpoints,
            chain_problems=chain.problems,
            catalog_problems=catalog_problems,
            anchors_checked=[anchor.source for anchor in against],
            anchor_problems=anchor_problems,
            archives_checked=archives_checked,
            archive_problems=archive_problems,
        )
        with self.vault.change() as change:
            change.record(
                "verify",
                details={
                    "scope": sorted(format_item_id(n) for n in chosen) if chosen else "all",
                    "objects_checked": report.objects_checked,
                    "ok": report.ok,
                    "object_problems": len(problems),
                    "audit_problems": [p.seq for p in chain.problems][:50],
                    "catalog_problems": len(catalog_problems),
                    "anchors": report.anchors_checked,
                    "anchor_problems": len(anchor_problems),
                    "archive_problems": len(archive_problems),
                },
            )
        return report

    def anchor(self) -> anchors.Checkpoint | None:
        """Sign the chain's head (when new events wait) and return the newest checkpoint, for the
        paper register (``custody anchor``). Needs the 'verify' role; audited as an access."""
        self.vault.authorize("verify")
        self.vault.checkpoint()
        with self.vault.serialized():
            return anchors.latest(self.vault.audit)

    def rotate_signing_key(self) -> keys.RotatedKey:
        """Replace the key that signs checkpoints, handing over with an event the old key signs.

        The new key is written first (beside the old one, then renamed over
        it), then the rotation event and a checkpoint by the new key commit.
        Only the vault's own user (in-process) may. Raise AccessDenied.
        """
        self.vault.authorize("keys")
        with self.vault.serialized():
            new_key = keys.Ed25519PrivateKey.generate()
            signing_path = self.vault.settings.home_path(self.vault.settings.keys.signing_key_file)
            old_fingerprint = keys.public_key_fingerprint(self.vault.audit.public_key)
            # Staged first, the event committed, then renamed in: a crash between is finished at the
            # next open (_recover), so the key on disk is always the one the chain pins.
            pending = keys.stage_signing_key(signing_path, new_key)
            try:
                self.vault.audit.rotate(self.vault.actor, new_key)
            except BaseException:
                pending.unlink(missing_ok=True)
                raise
            keys.install_signing_key(pending, signing_path, self.vault.home / keys.PUBLIC_KEY_NAME)
            return keys.RotatedKey(old_fingerprint, keys.public_key_fingerprint(new_key.public_key()))

    @locked
    def bytes_to_verify(self, refs: list[str] | None = None) -> int:
        """Return how many plaintext bytes verify(refs) will read (originals and derivatives)."""
        chosen = {item.number for item in self.vault.resolve_all(refs)} if refs else None
        return sum(self.vault.catalog.object_size(sha) for _label, sha in self._objects_of(chosen))

    @locked
    def _objects_of(self, chosen: set[int] | None) -> list[tuple[str, str]]:
        """Return (label, sha256) of the originals and derivatives of ``chosen`` items (None: all)."""
        targets = [
            (format_item_id(number), sha256)
            for number, sha256 in self.vault.catalog.all_sha256()
            if chosen is None or number in chosen
        ]
        targets += [
            (f"{format_item_id(number)} {role}", sha256)
            for number, role, sha256 in derivatives.all_objects(self.vault.catalog)
            if chosen is None or number in chosen
        ]
        return targets

    def _unreferenced_objects(self) -> list[ObjectProblem]:
        """Files in the object store that nothing accounts for: strays (not object names), orphans.

        The daemon's ingests, media jobs and disposals go on while this runs.
        Each records an intent before an object file appears and replaces it
        by the catalog row in one transaction, and a disposal marks its
        tombstone done only once its files are gone. So the store is listed
        first, then what accounts for a file is read, work in progress first:
        a file listed is then accounted for, unless it is a real orphan or
        was removed since (checked again).
        """
        names = list(self.vault.objects.names())
        with self.vault.serialized():
            accounted = {sha for sha, _record in self.vault.catalog.intents()}
            accounted |= {intent["sha256"] for intent in derivatives.intents(self.vault.catalog)}
            for gone in disposal_records.tombstones(self.vault.catalog):
                if gone["state"] != "done":  # being disposed of: rows gone, files going
                    accounted |= {gone["sha256"], *(d["sha256"] for d in gone["derivatives"])}
            accounted |= {sha for _number, sha in self.vault.catalog.all_sha256()}
            accounted |= {sha for _number, _role, sha in derivatives.all_objects(self.vault.catalog)}
        problems = []
        for name in names:
            if name in accounted:
                continue  # catalogued, or work in progress or interrupted (settled at the next open)
            if not ObjectStore.is_object_name(name):
                problems.append(
                    ObjectProblem("stray", None, None, f"unexpected file {name} in the object store")
                )
            elif self.vault.objects.exists(name):
                problems.append(ObjectProblem("orphan", name, None, "object has no catalog item"))
        return problems
