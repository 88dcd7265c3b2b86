"""Proof: verify, anchor, the signing key, the audit log, whoami."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from custody.cli.base import Session, cli, json_option, pass_session
from custody.cli.render import (
    _events_table,
    _ProgressFromDaemon,
    _say,
    _size,
    console,
    show_fields,
    show_listing,
    wide_option,
)
from custody.config import Settings
from custody.errors import CustodyError, Said
from custody.i18n import N_, _
from custody.ingestd import api
from custody.operations import NoRequest, integrity
from custody.operations.items import ReadLog
from custody.vault import access
from custody.vault.proof import CatalogDifference
from custody.vault.timestamps import local_display
from custody.vault.wording import station_documents


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

    for text in anchor_texts:  # a mistyped anchor is told at once, before the vault is asked
        anchors.parse_token(text)
    remote = session.daemon_socket() is not None
    named = [integrity.TYPED + text for text in anchor_texts]
    for kind, name in against:
        if kind == "offsite":
            named.append(integrity.OFFSITE if name is None else f"{integrity.OFFSITE}:{name}")
        else:
            named.append(_disc_anchor(name, remote))
    request = integrity.Verify(items=tuple(items), against=tuple(named))
    if as_json:
        report = session.perform("verify", request)
    else:
        with _ProgressFromDaemon() as drawing:
            report = session.perform("verify", request, drawing if console.is_terminal else None)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        for problem in report["object_problems"]:
            label = problem["item"] or problem["sha256"] or ""
            _say(f"{problem['kind'].upper():<8} {label}: {problem['problem']}")
        for problem in report["audit_problems"]:
            _say(f"AUDIT    seq {problem['seq']}: {problem['problem']}")
        for difference in report["catalog_problems"]:
            _say(f"CATALOG  {CatalogDifference(**difference)}")
        for problem in report["anchor_problems"]:
            _say(f"ANCHOR   {problem['anchor']}: {problem['problem']}")
        for problem in report["archive_problems"]:
            _say(f"ARCHIVE  {problem}")
        anchored = (
            _("; against {count} anchor(s)").format(count=len(report["anchors"])) if report["anchors"] else ""
        )
        archives = report["archives_checked"]
        _say(
            _("checked {objects} object(s), {size}; audit chain {events} event(s), {checkpoints} checkpoint(s)").format(
                objects=report["objects_checked"], size=_size(report["bytes_checked"]),
                events=report["audit_events"], checkpoints=report["audit_checkpoints"],
            )
            + anchored
            + (_("; {count} archived case file(s)").format(count=archives) if archives else "")
            + ": "
            + (_("OK") if report["ok"] else _("FAILED"))
        )  # fmt: skip
    if not report["ok"]:
        sys.exit(1)


def _disc_anchor(target: str, remote: bool) -> str:
    """An evidence disc's anchor for a verify request, read here with this process's own rights
    (the daemon opens no path it is given): its whole record in-process, its checkpoint through
    the daemon (a request line is at most 64 KiB)."""
    if remote:
        return integrity.TYPED + read_disc_anchor(target).checkpoints[0].token()
    record, public_key = _disc_record(target)
    return integrity.DISC + json.dumps(
        {"source": f"disc {target}", "record": record, "public_key": public_key}, ensure_ascii=False
    )


def read_disc_anchor(target: str):
    """The anchor an evidence disc carries, read with this process's own rights: a folder copied from a
    disc, or an ISO image or drive. Raise AnchorUnreadable."""
    from custody.vault import anchors

    record, public_key = _disc_record(target)
    return anchors.from_disc_record(record, public_key, f"disc {target}")


def _disc_record(target: str) -> tuple[str, str]:
    """The custody record and public key an evidence disc carries (see read_disc_anchor)."""
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
            source=target, problem=Said("no custody record readable there ({problem})", problem=problem)
        ) from exc
    return record, public_key


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
    point = session.perform("anchor", NoRequest())
    if as_json:
        click.echo(json.dumps(point, indent=1))
        return
    head = point["head_hash"]
    grouped = " ".join(head[i : i + 8] for i in range(0, 64, 8))
    signed = _("event {seq}, signed {when} (UTC {utc})").format(
        seq=point["seq"], when=local_display(point["signed_at"]), utc=point["signed_at"]
    )
    show_fields([
        (N_("vault"), point["vault"]), (N_("checkpoint"), signed), (N_("head hash"), grouped),
        (N_("signed by"), _("key {fingerprint}").format(fingerprint=point["key_fingerprint"])),
        (N_("for paper"), f"{point['seq']}/{head[:16]}"), (N_("token"), point["token"]),
    ])  # fmt: skip


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
        rotated = vault.integrity.rotate_signing_key()
    if as_json:
        click.echo(json.dumps({"old": rotated.old_fingerprint, "new": rotated.new_fingerprint}))
        return
    _say(
        _("signing key {old} handed over to {new}").format(
            old=rotated.old_fingerprint, new=rotated.new_fingerprint
        )
    )


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
    events = session.perform("log", ReadLog(item))
    if as_json:
        click.echo(json.dumps(events, indent=1))
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
        result = {
            **caller.as_dict(),
            "via": "in-process",
            "vault": str(session.home),
            "station": station_documents(settings),
        }
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    roles_text = ", ".join(result["roles"]) or _("none (you may only run 'custody whoami')")
    _say(
        _("{user} (uid {uid}, groups {groups})").format(
            user=result["user"], uid=result["uid"], groups=", ".join(result["groups"])
        )
    )
    _say(
        _("roles: {roles}").format(roles=roles_text)
        + (_("; the vault's own user") if result["vault_owner"] else "")
    )
    _say(_("via: {via} ({vault})").format(via=result["via"], vault=result["vault"]))
