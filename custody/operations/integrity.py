"""Operations of proof: verify and anchor."""

from __future__ import annotations

import json
from dataclasses import dataclass

from custody.errors import Said, UsageError
from custody.i18n import N_
from custody.operations.base import ByteProgress, Context, NoRequest, operation
from custody.vault import Vault, anchors

# How an anchor is named in a verify request (``against``), each in the order given:
OFFSITE = "offsite"  # every replica target's published chain; "offsite:NAME" one target's
TYPED = "anchor:"  # + a token from ``custody anchor``, or SEQ/HASH from the paper register
DISC = "disc:"  # + JSON {"source", "record", "public_key"}: what an evidence disc carries, read by the client


@dataclass(frozen=True)
class Verify:
    items: tuple[str, ...] = ()  # only these items' objects re-hashed (the rest is always checked)
    against: tuple[str, ...] = ()


@operation("verify", Verify, "verify")
def verify(vault: Vault, request: Verify, context: Context) -> dict:
    """Re-hash objects, check the audit chain and its signatures, prove the catalog, compare anchors.

    Never repairs anything. Progress (when asked) is a byte bar labelled
    "verify". Raise UsageError for an anchor that names no replica target,
    AnchorUnreadable for one that cannot be read.
    """
    published = [_anchor(vault, text) for text in request.against]
    published = [chain for group in published for chain in group]
    items = list(request.items)
    if context.progress is None:
        return vault.integrity.verify(items, against=published).as_dict()
    bar = ByteProgress(N_("verify"), context.progress)  # (said in the client's language)
    bar.start(vault.integrity.bytes_to_verify(items))
    try:
        return vault.integrity.verify(items, bar.advance, against=published).as_dict()
    finally:
        bar.finish()


def _anchor(vault: Vault, text: str) -> list[anchors.PublishedChain]:
    if text == OFFSITE or text.startswith(OFFSITE + ":"):
        return _offsite_anchors(vault, text.split(":", 1)[1] if ":" in text else None)
    if text.startswith(TYPED):
        return [anchors.parse_token(text[len(TYPED) :])]
    if text.startswith(DISC):
        try:
            disc = json.loads(text[len(DISC) :])
            return [anchors.from_disc_record(disc["record"], disc["public_key"], str(disc["source"]))]
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                reason=Said(
                    "verify: a disc anchor must be JSON with source, record, public_key ({exc})", exc=exc
                )
            ) from exc
    raise UsageError(
        reason=Said(
            "verify: {given!r} is not offsite, offsite:NAME, anchor:TEXT or disc:JSON", given=text[:40]
        )
    )


def _offsite_anchors(vault: Vault, name: str | None) -> list[anchors.PublishedChain]:
    """What each replica target (or target ``name``) holds of the chain. Raise UsageError, ReplicaUnavailable."""
    from custody.vault.offsite.published import published_chain
    from custody.vault.offsite.target import S3Target

    settings = vault.settings
    if name is not None and name not in settings.targets:
        raise UsageError(
            reason=Said(
                "no [targets.{name}] in custody.toml: use one of {known}",
                name=name,
                known=", ".join(settings.targets) or "(none)",
            )
        )
    names = [name] if name else list(settings.targets)
    if not names:
        raise UsageError(reason="--against offsite: this vault has no replica target ([targets.NAME])")
    return [published_chain(S3Target(each, settings.targets[each]), vault.master) for each in names]


@operation("anchor", NoRequest, "verify")
def anchor(vault: Vault, request: NoRequest, context: Context) -> dict:
    """The audit chain's newest signed checkpoint, to keep off this machine."""
    point = vault.integrity.anchor()
    if point is None:
        raise UsageError(reason="the audit chain has no signed checkpoint yet")
    return {
        "vault": point.vault,
        "seq": point.seq,
        "head_hash": point.head_hash,
        "signed_at": point.signed_at,
        "key_fingerprint": point.key_fingerprint,
        "signature": point.signature,
        "token": point.token(),
    }
