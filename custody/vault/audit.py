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

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id
from custody.vault.keys import public_key_fingerprint, public_key_pem, signature_is_valid
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


# The one way the signing key changes: an event signed by the key it replaces.
ROTATION = "signing-key-rotated"


def rotation_message(vault_id: str, after_seq: int, old_fingerprint: str, new_public_pem: str) -> bytes:
    """What the old key signs to hand over to the new one (after event ``after_seq``)."""
    return canonical_json(
        {"vault": vault_id, "after": after_seq, "from": old_fingerprint, "to_public_key": new_public_pem}
    )


def load_public_pem(pem: str) -> Ed25519PublicKey | None:
    """The Ed25519 public key in ``pem``, or None when it is not one."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


@dataclass(frozen=True)
class PinnedKey:
    """A signing key the chain itself names: in force from event ``since`` on."""

    since: int
    fingerprint: str
    public_key: Ed25519PublicKey | None  # None: named by fingerprint only (the init event)


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

    def pinned_keys(self) -> tuple[list[PinnedKey], list[ChainProblem]]:
        """The signing keys the chain itself names, oldest first, and what is wrong with them.

        The init event (seq 1) pins the key's fingerprint recorded at ``init``;
        each ``signing-key-rotated`` event, signed by the key in force, hands
        over to the next. The key this vault signs with now must be the last
        one: a key generated in the home and used to re-sign every checkpoint
        is not, so it is caught here. (A chain rewritten whole, init event
        included, takes anchors kept off the machine: ``verify --against``.)
        """
        problems: list[ChainProblem] = []
        first = self.db.execute("SELECT action, details FROM audit WHERE seq = 1").fetchone()
        if first is None:
            return [], problems
        details = json.loads(first[1]) if first[0] == "init" else {}
        if not details.get("signing_key"):
            problems.append(
                ChainProblem(1, "the chain does not begin with an init event naming its signing key")
            )
            return [], problems
        current_fingerprint = public_key_fingerprint(self.public_key)
        pinned = [PinnedKey(0, details["signing_key"], None)]
        for seq, text in self.db.execute(
            "SELECT seq, details FROM audit WHERE action = ? ORDER BY seq", [ROTATION]
        ):
            rotation = json.loads(text)
            old = load_public_pem(rotation.get("from_public_key", ""))
            new = load_public_pem(rotation.get("to_public_key", ""))
            before = pinned[-1]
            if old is None or new is None or public_key_fingerprint(old) != before.fingerprint:
                problems.append(ChainProblem(seq, f"event {seq} rotates from a key the chain does not pin"))
                continue
            message = rotation_message(
                self.vault_id, seq - 1, before.fingerprint, rotation.get("to_public_key", "")
            )
            try:
                signature = bytes.fromhex(rotation.get("signature", ""))
            except ValueError:
                signature = b""
            if not signature_is_valid(old, signature, message):
                problems.append(
                    ChainProblem(seq, f"event {seq} rotates the signing key without the old key's signature")
                )
                continue
            pinned[-1] = PinnedKey(before.since, before.fingerprint, old)
            pinned.append(PinnedKey(seq, public_key_fingerprint(new), new))
        if pinned[-1].public_key is None and current_fingerprint == pinned[-1].fingerprint:
            pinned[-1] = PinnedKey(pinned[-1].since, pinned[-1].fingerprint, self.public_key)
        if current_fingerprint != pinned[-1].fingerprint:
            problems.append(
                ChainProblem(
                    0,
                    f"this vault's signing key ({current_fingerprint}) is not the key its chain pins "
                    f"({pinned[-1].fingerprint}): the key was replaced outside an audited rotation",
                )
            )
        return pinned, problems

    def rotate(self, actor: str, new_key: Ed25519PrivateKey) -> int:
        """Hand signing over to ``new_key``: an event signed by the current key (inside the caller's
        transaction, or its own); from it on, checkpoints are signed by ``new_key``. Return its seq.
        Raise RuntimeError without the current key."""
        if self.signing_key is None:
            raise RuntimeError("this vault was opened without its signing key")
        new_pem = public_key_pem(new_key.public_key()).decode()
        with self.catalog.transaction():
            head, _hash = self.head()
            old_fingerprint = public_key_fingerprint(self.public_key)
            signature = self.signing_key.sign(rotation_message(self.vault_id, head, old_fingerprint, new_pem))
            seq = self.append(
                actor,
                ROTATION,
                details={
                    "from": old_fingerprint,
                    "to": public_key_fingerprint(new_key.public_key()),
                    "from_public_key": public_key_pem(self.public_key).decode(),
                    "to_public_key": new_pem,
                    "signature": signature.hex(),
                },
            )
            before = self.signing_key, self.public_key
            self.signing_key, self.public_key = new_key, new_key.public_key()
            try:
                self.checkpoint()
            except BaseException:
                self.signing_key, self.public_key = before
                raise
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

        pinned, key_problems = self.pinned_keys()
        problems += key_problems
        checkpoints = list(self.db.query("SELECT * FROM checkpoints ORDER BY seq"))
        for checkpoint in checkpoints:
            seq = checkpoint["seq"]
            message = checkpoint_message(self.vault_id, seq, checkpoint["head_hash"], checkpoint["signed_at"])
            try:
                signature = bytes.fromhex(checkpoint["signature"])
            except ValueError:
                signature = b""
            in_force = [key for key in pinned if key.since <= seq]
            key = in_force[-1] if in_force else None
            if key is None or key.public_key is None:
                problems.append(
                    ChainProblem(
                        seq, f"checkpoint at event {seq}: the chain pins no key it can be checked with"
                    )
                )
            elif not signature_is_valid(key.public_key, signature, message):
                problems.append(
                    ChainProblem(
                        seq,
                        f"checkpoint at event {seq} is not signed by this vault's key (the one its chain pins, {key.fingerprint})",
                    )
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
