"""Proof: verify, anchor, the signing key, the audit log, whoami."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from custody.cli.base import Session, cli, json_option, pass_session
from custody.cli.render import _byte_display, _events_table, _say, _size, show_listing, wide_option
from custody.config import Settings
from custody.errors import CustodyError, UsageError
from custody.ingestd import api
from custody.vault import Vault, access
from custody.vault.timestamps import local_display


class AnchorSource(click.ParamType):
    """``--against``: ``offsite`` (every target), ``offsite:NAME``, or an evidence disc (names a path)."""

    name = "offsite|offsite:NAME|DISC"

    def convert(self, value, param, ctx) -> tuple[str, str | None]:
        if isinstance(value, tuple):
            return value
        if value == "offsite":
            return ("offsite", None)
        if value.startswith("offsite:"):
            return ("offsite", value.split(":", 1)[1])
        return ("disc", value)

    @staticmethod
    def names_a_path(value: tuple[str, str | None]) -> bool:
        return value[0] == "disc"


@cli.command()
@click.argument("items", nargs=-1)
@click.option(
    "--against",
    "against",
    multiple=True,
    type=AnchorSource(),
    help="Also compare the audit chain with anchors kept off this machine: 'offsite' (the checkpoints "
    "published to every replica target), 'offsite:NAME', or an evidence disc (an ISO image, a drive, "
    "or a folder copied from a disc). Repeatable.",
)
@click.option(
    "--against-anchor",
    "anchor_texts",
    multiple=True,
    metavar="TEXT",
    help="Also compare with a checkpoint printed by 'custody anchor' (its whole token, or SEQ/HASH "
    "from the paper register). Repeatable.",
)
@json_option
@pass_session
def verify(session: Session, items: tuple[str, ...], against, anchor_texts, as_json: bool) -> None:
    """Re-hash objects, check the audit chain and its signatures, and prove the catalog against the chain.

    Without ITEMs every object is checked and every object must belong to an
    item. The catalog must be what the chain's events make it (every item
    ingested and not disposed of through an approved request, its tags,
    categories, holds, confidentiality, assignments, copies), and every
    checkpoint must be signed by the key the chain pins. Truncation, a
    rollback and a chain rewritten and re-signed on this machine are caught
    only against anchors kept elsewhere: --against, --against-anchor.
    Exits 0 only when everything holds; never repairs anything.

    \b
    Example:
      custody verify
      custody verify EV-000123 --json
      custody verify --against offsite --against /media/cdrom
      custody verify --against-anchor 1234/9f2c4e1a77d05b3e
    """
    from custody.vault import anchors

    published = [anchors.parse_token(text) for text in anchor_texts]
    settings = session.settings()
    with session.vault() as vault:
        for kind, name in against:
            if kind == "offsite":
                published += _offsite_anchors(settings, vault, name)
            else:
                published.append(read_disc_anchor(name))
        display = None if as_json else _byte_display("verify")
        if display:
            with display:
                bar = display.add_task("verify", total=vault.bytes_to_verify(list(items)))
                report = vault.verify(list(items), lambda n: display.advance(bar, n), against=published)
        else:
            report = vault.verify(list(items), against=published)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=1))
    else:
        for problem in report.object_problems:
            label = problem.item or problem.sha256 or ""
            _say(f"{problem.kind.upper():<8} {label}: {problem.problem}")
        for problem in report.chain_problems:
            _say(f"AUDIT    seq {problem.seq}: {problem.problem}")
        for difference in report.catalog_problems:
            _say(f"CATALOG  {difference}")
        for problem in report.anchor_problems:
            _say(f"ANCHOR   {problem}")
        anchored = f"; against {len(report.anchors_checked)} anchor(s)" if report.anchors_checked else ""
        _say(
            f"checked {report.objects_checked} object(s), {_size(report.bytes_checked)}; "
            f"audit chain {report.chain_events} event(s), {report.chain_checkpoints} checkpoint(s){anchored}: "
            + ("OK" if report.ok else "FAILED")
        )
    if not report.ok:
        sys.exit(1)


def _offsite_anchors(settings: Settings, vault: Vault, name: str | None) -> list:
    """What each replica target (or target ``name``) holds of the chain. Raise UsageError, ReplicaUnavailable."""
    from custody.vault.offsite.published import published_chain
    from custody.vault.offsite.target import S3Target

    if name is not None and name not in settings.targets:
        raise UsageError(
            reason=f"no [targets.{name}] in custody.toml: use one of {', '.join(settings.targets) or '(none)'}"
        )
    names = [name] if name else list(settings.targets)
    if not names:
        raise UsageError(reason="--against offsite: this vault has no replica target ([targets.NAME])")
    return [published_chain(S3Target(each, settings.targets[each]), vault.master) for each in names]


def read_disc_anchor(target: str):
    """The anchor an evidence disc carries, read with this process's own rights: a folder copied from a
    disc, or an ISO image or drive. Raise AnchorUnreadable."""
    from custody.vault import anchors
    from custody.vault.disc import optical, verifier

    path = Path(target)
    try:
        if path.is_dir():
            record = (path / verifier.RECORD).read_text(encoding="utf-8")
            public_key = (path / verifier.PUBLIC_KEY).read_text(encoding="utf-8")
        else:
            with optical.IsoFiles(target) as files:
                record = files.open(verifier.RECORD).read().decode("utf-8")
                public_key = files.open(verifier.PUBLIC_KEY).read().decode("utf-8")
    except (OSError, KeyError, UnicodeDecodeError, CustodyError) as exc:
        problem = (
            exc.message if isinstance(exc, CustodyError) else (getattr(exc, "strerror", None) or str(exc))
        )
        raise anchors.AnchorUnreadable(
            source=target, problem=f"no custody record readable there ({problem})"
        ) from exc
    return anchors.from_disc_record(record, public_key, f"disc {target}")


@cli.command()
@json_option
@pass_session
def anchor(session: Session, as_json: bool) -> None:
    """Print the audit chain's newest signed checkpoint, to keep off this machine.

    Write it in the paper register (the event number and the first 16 hex
    digits of its hash are enough), or send the whole token by mail. Later,
    'custody verify --against-anchor TEXT' shows whether the chain still
    holds what it held then: a chain cut short, rolled back or rewritten is
    caught.

    \b
    Example:
      custody anchor
      custody verify --against-anchor 1234/9f2c4e1a77d05b3e
    """
    with session.vault() as vault:
        point = vault.anchor()
    if point is None:
        raise UsageError(reason="the audit chain has no signed checkpoint yet")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "vault": point.vault,
                    "seq": point.seq,
                    "head_hash": point.head_hash,
                    "signed_at": point.signed_at,
                    "key_fingerprint": point.key_fingerprint,
                    "signature": point.signature,
                    "token": point.token(),
                },
                indent=1,
            )
        )
        return
    grouped = " ".join(point.head_hash[i : i + 8] for i in range(0, 64, 8))
    _say(f"vault       {point.vault}")
    _say(f"checkpoint  event {point.seq}, signed {local_display(point.signed_at)} (UTC {point.signed_at})")
    _say(f"head hash   {grouped}")
    _say(f"signed by   key {point.key_fingerprint}")
    _say(f"for paper   {point.seq}/{point.head_hash[:16]}")
    _say(f"token       {point.token()}")


@cli.group("keys")
def keys_group() -> None:
    """The vault's keys (the vault's own user, in-process).

    \b
    Example:
      custody keys rotate-signing
    """


@keys_group.command("rotate-signing")
@json_option
@pass_session
def keys_rotate_signing(session: Session, as_json: bool) -> None:
    """Replace the key that signs the audit chain's checkpoints.

    The old key signs the hand-over (a signing-key-rotated event), so verify
    follows the chain from one key to the next; a key changed any other way
    is reported by verify. Publish a new anchor afterwards.

    \b
    Example:
      custody keys rotate-signing
    """
    with session.vault(writer=True) as vault:
        rotated = vault.rotate_signing_key()
    if as_json:
        click.echo(json.dumps({"old": rotated.old_fingerprint, "new": rotated.new_fingerprint}))
        return
    _say(f"signing key {rotated.old_fingerprint} handed over to {rotated.new_fingerprint}")


@cli.command()
@click.option("--item", help="Only events about this item.")
@click.option("--long", is_flag=True, help="Every detail of each event (wrapped), not a one-line summary.")
@wide_option
@json_option
@pass_session
def log(session: Session, item: str | None, long: bool, as_json: bool) -> None:
    """Print the audit chain (every action on the vault, in order).

    The whole chain is for auditors; with --item, anyone who may see the
    item reads its own history. At a terminal each event is one line, its
    details summed up as key=value (cut to fit); --long shows them whole,
    and long output goes through a pager.

    \b
    Example:
      custody log --item EV-000123
      custody log --long | less
      custody log --json
    """
    with session.vault() as vault:
        events = vault.events(vault.resolve(item, purpose="show") if item else None)
    if as_json:
        click.echo(json.dumps([event.as_dict() for event in events], indent=1))
        return
    show_listing(_events_table(events, long=long))


@cli.command()
@json_option
@pass_session
def whoami(session: Session, as_json: bool) -> None:
    """Who custody takes you for: user, uid, groups and roles (the one thing anyone may ask).

    Through the daemon's socket when one serves this vault (the identity is
    the kernel's, from the socket), else in-process.

    \b
    Example:
      custody whoami --json
    """
    socket_path = session.api_socket()
    if api.is_served(socket_path):
        result = api.call(socket_path, "whoami")
    else:
        try:
            settings = session.settings()
        except (OSError, CustodyError):  # an unreadable config gives no roles
            settings = Settings(home=session.home)
        caller = access.process_caller(settings)
        result = {**caller.as_dict(), "via": "in-process", "vault": str(session.home)}
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    roles_text = ", ".join(result["roles"]) or "none (you may only run 'custody whoami')"
    _say(f"{result['user']} (uid {result['uid']}, groups {', '.join(result['groups'])})")
    _say(f"roles: {roles_text}" + ("; the vault's own user" if result["vault_owner"] else ""))
    _say(f"via: {result['via']} ({result['vault']})")
