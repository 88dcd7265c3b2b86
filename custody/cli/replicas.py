"""Off-site replicas: replicate run/status/check, restore."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import click

from custody.cli.base import Session, cli, json_option, pass_session
from custody.cli.listing import KEY, TEXT, Column, Listing
from custody.cli.render import _echo, _say, _say_error, _size, show_listing, wide_option
from custody.errors import UsageError
from custody.i18n import _
from custody.vault import Vault


@cli.group()
def replicate() -> None:
    """Off-site replicas in S3-compatible buckets ([targets.NAME] in custody.toml).

    Objects go up sealed (the provider never sees footage), are verified by
    the vault itself, and are locked (Object Lock, COMPLIANCE) for at least
    two years where the bucket allows it.

    \b
    Example:
      custody replicate run --once
      custody replicate status
      custody replicate check --download
    """


def _replicator(session: Session, vault: Vault, target: str | None):
    from custody.retention.plan import replica_lock_rule
    from custody.vault.offsite.replicator import Replicator

    settings = session.settings()
    if not settings.targets:
        raise UsageError(reason="no replication target: add a [targets.NAME] table to custody.toml")
    return Replicator(vault, settings, only=target, lock_rule=replica_lock_rule(vault, settings))


@replicate.command("run")
@click.option("--once", is_flag=True, help="Send and verify everything pending now, then exit.")
@click.option(
    "--repair",
    is_flag=True,
    help="First compare each bucket with the catalog; send again what is missing or differs.",
)
@click.option("--target", help="Only this target.")
@json_option
@pass_session
def replicate_run(session: Session, once: bool, repair: bool, target: str | None, as_json: bool) -> None:
    """Send sealed objects to the targets and verify each copy (audited); exit 1 when any failed.

    Without --once, keeps following the queue (what the daemon does). A
    failure waits (backoff with jitter) and is tried again; nothing counts as
    replicated until the vault has verified it.

    \b
    Example:
      custody replicate run --once --json
      custody replicate run --once --repair
    """
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Vault(session.settings(), session.actor, writer=True) as vault:
        replicator = _replicator(session, vault, target)
        summary = replicator.run(repair=repair, stop=stop) if once else replicator.follow(stop)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        _say(
            _(
                "replicas: {uploaded} uploaded, {verified} verified, {resent} sent again, {failed} failed"
            ).format(
                uploaded=summary.uploaded,
                verified=summary.verified,
                resent=summary.resent,
                failed=summary.failed,
            )
        )
        for error in summary.errors:
            _say_error(error)
    if summary.failed:
        sys.exit(1)


@replicate.command("status")
@click.option("--target", help="Only this target.")
@wide_option
@json_option
@pass_session
def replicate_status(session: Session, target: str | None, as_json: bool) -> None:
    """Per target: objects total, replicated, verified, failing, bytes, replication lag, last error.

    \b
    Example:
      custody replicate status --json
    """
    with session.vault() as vault:
        report = _replicator(session, vault, target).status()
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    table = Listing(
        Column("target", KEY),
        Column("bucket", TEXT),
        Column("objects", justify="right"),
        Column("replicated", justify="right"),
        Column("verified", justify="right"),
        Column("failing", justify="right"),
        Column("verified bytes", drop=1, justify="right"),
        Column("lag", drop=2, justify="right"),
        title="replicas",
    )
    for row in report:
        table.add_row(
            row["target"],
            row["bucket"],
            str(row["objects"]),
            str(row["replicated"]),
            str(row["verified"]),
            str(row["failing"]),
            _size(row["verified_bytes"]),
            f"{row['lag_seconds']} s" if row["oldest_unreplicated"] else "-",
        )
    show_listing(table)
    for row in report:
        _say(_("{target}: Object Lock {state}").format(target=row["target"], state=row["object_lock"]))
        if row["last_error"]:
            _say(_("{target}: last error: {error}").format(target=row["target"], error=row["last_error"]))


@replicate.command("check")
@click.option("--target", help="Only this target.")
@click.option("--download", is_flag=True, help="Download every object and re-hash it (slow, thorough).")
@json_option
@pass_session
def replicate_check(session: Session, target: str | None, download: bool, as_json: bool) -> None:
    """Compare catalog and bucket, read-only: = same, - missing, + extra, * differs, ! error.

    Exits 1 on any line that is not '='.

    \b
    Example:
      custody replicate check
      custody replicate check --target offsite --download --json
    """
    with session.vault() as vault:
        lines = _replicator(session, vault, target).check(download=download)
    if as_json:
        click.echo(json.dumps([line.as_dict() for line in lines], indent=1))
    else:
        for line in lines:
            _echo(f"{line.mark} {line.target} {line.sha256} {line.item or '-'} {line.detail}")
        counts = {mark: sum(line.mark == mark for line in lines) for mark in "=-+*!"}
        _say("  ".join(f"{mark} {count}" for mark, count in counts.items()))
    if any(line.mark != "=" for line in lines):
        sys.exit(1)


@cli.command()
@click.option(
    "--from",
    "target",
    required=True,
    help="The [targets.NAME] to rebuild from (in the new home's custody.toml).",
)
@click.option(
    "--master-key",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The vault's master key file (from the key backup).",
)
@json_option
@pass_session
def restore(session: Session, target: str, master_key: Path, as_json: bool) -> None:
    """Rebuild a vault in a new --home from an off-site replica and the master key.

    Put a custody.toml holding the target's [targets.NAME] table in the new
    home first. Every object is downloaded and re-hashed, every sidecar's and
    checkpoint's signature checked, the audit chain checked link by link.

    \b
    Example:
      custody --home /var/lib/custody-new restore --from offsite --master-key /root/master.key
    """
    from custody.vault.offsite.published import restore as restore_vault

    report = restore_vault(session.settings(), target, master_key, session.actor)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    for problem in report.problems:
        _say(problem)
    _say(
        _(
            "restored {items} item(s), {objects} object(s), {events} audit event(s) from {target} into {home}"
        ).format(
            items=report.items,
            objects=report.objects,
            events=report.audit_events,
            target=target,
            home=session.home,
        )
    )
