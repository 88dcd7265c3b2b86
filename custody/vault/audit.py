"""The audit chain: every action on the vault as a hash-linked, signed record.

Each event's hash is the SHA-256 of its canonical JSON (sorted keys, no
spaces, UTF-8), which includes the previous event's hash; the first event
links to 64 zeros. A checkpoint is the vault's Ed25519 signature over
(vault id, sequence number, head hash, time).

What verification catches: any edited, deleted or inserted event (its own hash
or the next link breaks), and a rewritten chain whose hashes were all
recomputed (the signed checkpoints no longer match). What it cannot catch on
its own: someone who deletes the newest events *and* every checkpoint after
them; that is why checkpoints also leave the machine (replicas, discs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id
from custody.vault.keys import public_key_fingerprint, signature_is_valid
from custody.vault.timestamps import utc_now

GENESIS = "0" * 64


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(seq: int, at: str, actor: str, action: str, item: int | None, details: str, prev: str) -> str:
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "item": item,
        "details": details,
        "prev": prev,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def checkpoint_message(vault_id: str, seq: int, head_hash: str, signed_at: str) -> bytes:
    return canonical_json({"vault": vault_id, "seq": seq, "head": head_hash, "at": signed_at})


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: str
    actor: str
    action: str
    item: int | None
    details: dict
    hash: str

    def as_dict(self) -> dict:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "item": format_item_id(self.item) if self.item is not None else None,
            "details": self.details,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class ChainProblem:
    """One broken link: the sequence number where it shows and what is wrong."""

    seq: int
    problem: str


@dataclass(frozen=True)
class ChainReport:
    events: int
    checkpoints: int
    last_checkpoint_seq: int
    problems: list[ChainProblem]

    @property
    def intact(self) -> bool:
        return not self.problems


class AuditChain:
    """Appends to, signs and verifies the chain kept in the catalog's audit tables."""

    def __init__(
        self,
        catalog: Catalog,
        vault_id: str,
        signing_key: Ed25519PrivateKey | None,
        public_key: Ed25519PublicKey,
    ) -> None:
        self.catalog = catalog
        self.vault_id = vault_id
        self.signing_key = signing_key
        self.public_key = public_key

    @property
    def db(self):
        return self.catalog.db

    def append(self, actor: str, action: str, item: int | None = None, details: dict | None = None) -> int:
        """Append one event (inside the caller's transaction, or its own); return its seq."""
        details_text = canonical_json(details or {}).decode()
        with self.catalog.transaction():
            row = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            at = utc_now()
            digest = event_hash(seq, at, actor, action, item, details_text, prev)
            self.db.execute(
                "INSERT INTO audit (seq, at, actor, action, item, details, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [seq, at, actor, action, item, details_text, prev, digest],
            )
        return seq

    def head(self) -> tuple[int, str]:
        row = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def last_checkpoint_seq(self) -> int:
        row = self.db.execute("SELECT max(seq) FROM checkpoints").fetchone()
        return row[0] or 0

    def checkpoint(self) -> int | None:
        """Sign the current head unless it is already signed; return the seq signed, if any."""
        if self.signing_key is None:
            return None
        with self.catalog.transaction():
            seq, head_hash = self.head()
            if seq == 0 or seq <= self.last_checkpoint_seq():
                return None
            signed_at = utc_now()
            signature = self.signing_key.sign(checkpoint_message(self.vault_id, seq, head_hash, signed_at))
            self.db.execute(
                "INSERT INTO checkpoints (seq, head_hash, signed_at, key_fingerprint, signature) "
                "VALUES (?, ?, ?, ?, ?)",
                [seq, head_hash, signed_at, public_key_fingerprint(self.public_key), signature.hex()],
            )
        return seq

    def latest_checkpoint(self) -> dict | None:
        """The newest signed checkpoint as stored (seq, head_hash, signed_at, key_fingerprint, signature)."""
        rows = list(self.db.query("SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1"))
        return rows[0] if rows else None

    def excerpt(self, items: list[int], seqs: list[int], up_to: int) -> list[dict]:
        """The events about ``items``, plus the events ``seqs``, up to seq ``up_to``, exactly as hashed.

        Each is a dict with the hashed fields (``details`` as its stored text,
        ``prev``) and ``hash``: what a verifier needs to recompute it.
        """
        rows = self.db.execute(
            "SELECT seq, at, actor, action, item, details, prev_hash, hash FROM audit "
            "WHERE (item IN (SELECT value FROM json_each(?)) OR seq IN (SELECT value FROM json_each(?))) "
            "AND seq <= ? ORDER BY seq",
            [json.dumps(items), json.dumps(seqs), up_to],
        )
        return [
            {
                "seq": seq,
                "at": at,
                "actor": actor,
                "action": action,
                "item": item,
                "details": details,
                "prev": prev,
                "hash": digest,
            }
            for seq, at, actor, action, item, details, prev, digest in rows
        ]

    def sign(self, message: bytes) -> str:
        """Sign ``message`` with the vault's key; return the signature in hex. Raise RuntimeError without a key."""
        if self.signing_key is None:
            raise RuntimeError("this vault was opened without its signing key")
        return self.signing_key.sign(message).hex()

    def events(self, item: int | None = None) -> Iterator[AuditEvent]:
        if item is None:
            rows = self.db.query("SELECT * FROM audit ORDER BY seq")
        else:
            rows = self.db.query("SELECT * FROM audit WHERE item = ? ORDER BY seq", [item])
        for row in rows:
            yield AuditEvent(
                seq=row["seq"],
                at=row["at"],
                actor=row["actor"],
                action=row["action"],
                item=row["item"],
                details=json.loads(row["details"]),
                hash=row["hash"],
            )

    def verify(self) -> ChainReport:
        """Recompute every link and check every checkpoint; report each broken one by seq."""
        problems: list[ChainProblem] = []
        recomputed: dict[int, str] = {}
        expected_seq, prev = 1, GENESIS
        count = 0
        for row in self.db.execute(
            "SELECT seq, at, actor, action, item, details, prev_hash, hash FROM audit ORDER BY seq"
        ):
            seq, at, actor, action, item, details, prev_hash, stored_hash = row
            count += 1
            if seq != expected_seq:
                missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
                problems.append(ChainProblem(expected_seq, f"audit event(s) {missing} missing"))
            if prev_hash != prev:
                problems.append(ChainProblem(seq, f"event {seq} does not link to the event before it"))
            digest = event_hash(seq, at, actor, action, item, details, prev_hash)
            if digest != stored_hash:
                problems.append(
                    ChainProblem(seq, f"event {seq} was altered (its hash does not match its content)")
                )
            recomputed[seq] = digest
            # Link the next event to what this one really hashes to, so an edit
            # shows at the edited event and, if its stored hash was also
            # changed, at the next one too.
            prev = digest
            expected_seq = seq + 1

        checkpoints = list(self.db.query("SELECT * FROM checkpoints ORDER BY seq"))
        for checkpoint in checkpoints:
            seq = checkpoint["seq"]
            message = checkpoint_message(self.vault_id, seq, checkpoint["head_hash"], checkpoint["signed_at"])
            try:
                signature = bytes.fromhex(checkpoint["signature"])
            except ValueError:
                signature = b""
            if not signature_is_valid(self.public_key, signature, message):
                problems.append(
                    ChainProblem(seq, f"checkpoint at event {seq} is not signed by this vault's key")
                )
            if seq not in recomputed:
                problems.append(
                    ChainProblem(seq, f"checkpoint at event {seq} names an event that is missing")
                )
            elif recomputed[seq] != checkpoint["head_hash"]:
                problems.append(
                    ChainProblem(seq, f"chain up to event {seq} differs from what its checkpoint signed")
                )
        problems.sort(key=lambda p: p.seq)
        last = checkpoints[-1]["seq"] if checkpoints else 0
        return ChainReport(
            events=count, checkpoints=len(checkpoints), last_checkpoint_seq=last, problems=problems
        )
