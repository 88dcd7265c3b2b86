"""Anchors: what the vault once published of its audit chain, kept where root on this machine cannot reach.

Whoever holds the vault's files and keys (root on its machine) can truncate
the chain with its checkpoints, roll the whole home back to last week, or
rewrite every event and re-sign it. The chain cannot catch that by itself;
what it once showed the outside world can. Three kinds of anchor:

- the **replica**: every checkpoint goes to each S3 target as soon as it is
  signed, in audit segments under Object Lock (no one can take them back);
- an **evidence disc**: its signed record carries the checkpoint of the day
  it was made;
- the **paper register**: ``custody anchor`` prints the latest checkpoint,
  short enough to copy by hand or send by mail.

:func:`compare` names every way the vault's chain is shorter than, older
than, or different from an anchor. An anchor is believed only when its
signature holds under the key it names (a forged anchor proves nothing).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody.errors import CustodyError, Said
from custody.vault.audit import AuditChain, checkpoint_message, load_public_pem
from custody.vault.keys import public_key_fingerprint, signature_is_valid

TOKEN_PREFIX = "custody-anchor/v1/"
# What a person copies from paper: the event number and (at least 16 hex digits of) its hash.
_PAPER = re.compile(r"^\s*(\d+)\s*[/:\s]\s*([0-9a-fA-F]{16,64})\s*$")


class AnchorUnreadable(CustodyError):
    """cannot read the anchor {source}: {problem}"""

    exit_code = 2


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint as published: the chain's head hash at event ``seq``."""

    vault: str
    seq: int
    head_hash: str  # 64 hex digits, or a prefix written on paper
    signed_at: str = ""
    signature: str = ""
    key_fingerprint: str = ""

    def token(self) -> str:
        """One line that carries the whole checkpoint (``verify --against-anchor TOKEN``)."""
        return (
            f"{TOKEN_PREFIX}{self.vault}/{self.seq}/{self.head_hash}/{self.signed_at}/"
            f"{self.key_fingerprint}/{self.signature}"
        )

    def signed_by(self, public_key: Ed25519PublicKey, vault_id: str = "") -> bool:
        """Whether the signature holds under ``public_key`` (for vault ``vault_id`` when the
        checkpoint does not name its vault)."""
        try:
            signature = bytes.fromhex(self.signature)
        except ValueError:
            return False
        message = checkpoint_message(self.vault or vault_id, self.seq, self.head_hash, self.signed_at)
        return signature_is_valid(public_key, signature, message)


@dataclass
class PublishedChain:
    """What one anchor shows of the chain: event hashes and signed checkpoints, and whose key."""

    source: str
    events: dict[int, str] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    public_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)  # fingerprint -> key
    problems: list[str] = field(default_factory=list)  # what is wrong with the anchor itself

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        if checkpoint not in self.checkpoints:
            self.checkpoints.append(checkpoint)


@dataclass(frozen=True)
class AnchorProblem:
    source: str
    seq: int | None
    problem: str

    def as_dict(self) -> dict:
        return {"anchor": self.source, "seq": self.seq, "problem": self.problem}

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}"


def parse_token(text: str) -> PublishedChain:
    """The anchor a person typed: a whole token from ``custody anchor``, or ``SEQ/HASH`` from paper.

    Raise AnchorUnreadable when it is neither.
    """
    text = text.strip()
    published = PublishedChain(source="anchor " + (text[:40] + "..." if len(text) > 40 else text))
    if text.startswith(TOKEN_PREFIX):
        parts = text[len(TOKEN_PREFIX) :].split("/")
        if len(parts) != 6 or not parts[1].isdigit():
            raise AnchorUnreadable(
                source=published.source, problem="not a whole anchor token (copy it again)"
            )
        vault, seq, head, signed_at, fingerprint, signature = parts
        published.add_checkpoint(Checkpoint(vault, int(seq), head.lower(), signed_at, signature, fingerprint))
        return published
    paper = _PAPER.match(text)
    if paper is None:
        raise AnchorUnreadable(
            source=published.source,
            problem=Said(
                "expected '{prefix}...' (from custody anchor) or 'SEQ/HASH' from the paper register",
                prefix=TOKEN_PREFIX,
            ),
        )
    published.add_checkpoint(Checkpoint("", int(paper.group(1)), paper.group(2).lower()))
    return published


def from_disc_record(record_text: str, public_key_pem: str, source: str) -> PublishedChain:
    """The anchor an evidence disc carries: its signed record's checkpoint and event hashes.

    Raise AnchorUnreadable when the record cannot be read.
    """
    try:
        record = json.loads(record_text)
        point = record["checkpoint"]
        checkpoint = Checkpoint(
            record["vault"], int(point["seq"]), point["head"], point["at"], point["signature"], ""
        )
        events = {int(event["seq"]): event["hash"] for event in record.get("events", [])}
    except (ValueError, KeyError, TypeError) as exc:
        raise AnchorUnreadable(
            source=source, problem=Said("its custody record is not readable ({error})", error=exc)
        ) from exc
    published = PublishedChain(source=source, events=events)
    key = load_public_pem(public_key_pem)
    if key is not None:
        fingerprint = public_key_fingerprint(key)
        published.public_keys[fingerprint] = key
        checkpoint = Checkpoint(
            checkpoint.vault,
            checkpoint.seq,
            checkpoint.head_hash,
            checkpoint.signed_at,
            checkpoint.signature,
            fingerprint,
        )
    published.add_checkpoint(checkpoint)
    return published


def latest(chain: AuditChain) -> Checkpoint | None:
    """The newest signed checkpoint of ``chain`` (what ``custody anchor`` prints)."""
    row = chain.latest_checkpoint()
    if row is None:
        return None
    return Checkpoint(
        chain.vault_id,
        row["seq"],
        row["head_hash"],
        row["signed_at"],
        row["signature"],
        row["key_fingerprint"],
    )


def compare(chain: AuditChain, published: PublishedChain) -> list[AnchorProblem]:
    """Every way ``chain`` is shorter than, older than, or different from what ``published`` shows.

    A checkpoint whose signature does not hold under the key it names is
    not believed, and is itself reported (a forged anchor proves nothing).
    Checkpoints named by fingerprint are checked against the anchor's keys,
    then the keys the chain pins.
    """
    source = published.source
    problems = [AnchorProblem(source, None, text) for text in published.problems]
    head_seq, _head = chain.head()
    local = dict(chain.db.execute("SELECT seq, hash FROM audit"))
    pinned, _key_problems = chain.pinned_keys()
    known_keys = {key.fingerprint: key.public_key for key in pinned if key.public_key is not None}
    current = public_key_fingerprint(chain.public_key)
    for fingerprint in published.public_keys:
        if fingerprint not in known_keys and fingerprint != current:
            problems.append(
                AnchorProblem(
                    source,
                    None,
                    f"it was signed with key {fingerprint}, which this vault's chain never pinned "
                    f"(the vault signs with {current} now): the signing key was replaced",
                )
            )
    believed = _believed(chain, published, known_keys, current, problems)
    problems += _checkpoints_not_held(source, believed, local, head_seq)
    problems += _events_not_held(published, local, head_seq, problems)
    return problems


def _believed(
    chain: AuditChain,
    published: PublishedChain,
    known_keys: dict[str, Ed25519PublicKey],
    current: str,
    problems: list[AnchorProblem],
) -> list[Checkpoint]:
    """The published checkpoints that are this vault's and hold their signatures; each one that
    is not is added to ``problems``."""
    source = published.source
    believed: list[Checkpoint] = []
    for checkpoint in sorted(published.checkpoints, key=lambda c: c.seq):
        if checkpoint.vault and checkpoint.vault != chain.vault_id:
            problems.append(
                AnchorProblem(
                    source,
                    checkpoint.seq,
                    f"it is vault {checkpoint.vault}'s, not this vault ({chain.vault_id})",
                )
            )
            continue
        if checkpoint.signature:
            fingerprint = checkpoint.key_fingerprint
            if fingerprint and fingerprint not in known_keys and fingerprint not in published.public_keys:
                problems.append(
                    AnchorProblem(
                        source,
                        checkpoint.seq,
                        f"its checkpoint at event {checkpoint.seq} was signed with key {fingerprint}, which this "
                        f"vault's chain does not pin (it signs with {current} now): the signing key was replaced",
                    )
                )
                continue
            key = published.public_keys.get(fingerprint) or known_keys.get(fingerprint)
            candidates = [key] if key is not None else [*published.public_keys.values(), *known_keys.values()]
            if not any(checkpoint.signed_by(candidate, chain.vault_id) for candidate in candidates):
                problems.append(
                    AnchorProblem(
                        source,
                        checkpoint.seq,
                        f"its checkpoint at event {checkpoint.seq} does not hold its signature: not believed",
                    )
                )
                continue
        believed.append(checkpoint)
    return believed


def _checkpoints_not_held(
    source: str, believed: list[Checkpoint], local: dict[int, str], head_seq: int
) -> list[AnchorProblem]:
    """Believed checkpoints the chain no longer reaches, or holds otherwise."""
    problems = []
    for checkpoint in believed:
        seq = checkpoint.seq
        if seq > head_seq:
            when = f" (signed {checkpoint.signed_at})" if checkpoint.signed_at else ""
            problems.append(
                AnchorProblem(
                    source,
                    seq,
                    f"the vault's chain ends at event {head_seq}, but event {seq} was published{when}: "
                    "events were removed, or the vault was rolled back to an older copy",
                )
            )
        elif not local.get(seq, "").startswith(checkpoint.head_hash):
            problems.append(
                AnchorProblem(
                    source,
                    seq,
                    f"event {seq} is not what was published (hash {local.get(seq, 'missing')[:16]}... here, "
                    f"{checkpoint.head_hash[:16]}... published): the chain was rewritten, or cut short "
                    "and written on",
                )
            )
    return problems


def _events_not_held(
    published: PublishedChain, local: dict[int, str], head_seq: int, found: list[AnchorProblem]
) -> list[AnchorProblem]:
    """Published event hashes the chain differs from, or no longer reaches (unless ``found`` says so)."""
    source = published.source
    problems = []
    differing = [
        seq
        for seq, digest in sorted(published.events.items())
        if seq <= head_seq and local.get(seq) != digest
    ]
    if differing:
        problems.append(
            AnchorProblem(
                source,
                differing[0],
                f"{len(differing)} event(s) differ from what was published, the first at event {differing[0]}: "
                "the chain was rewritten",
            )
        )
    beyond = [seq for seq in published.events if seq > head_seq]
    if beyond and not any(p.seq is not None and p.seq > head_seq for p in [*found, *problems]):
        problems.append(
            AnchorProblem(
                source,
                max(beyond),
                f"the vault's chain ends at event {head_seq}, but events up to {max(beyond)} were published: "
                "events were removed, or the vault was rolled back to an older copy",
            )
        )
    return problems
