"""Alerts: alerts ls|test (the conditions in force; a test message through a channel)."""

from __future__ import annotations

import json

import click

from custody.cli.base import Session, cli, json_option, pass_session
from custody.cli.listing import KEY, TEXT, Column, Listing
from custody.cli.render import _say, show_listing, wide_option
from custody.i18n import _
from custody.operations import NoRequest, alerts
from custody.vault.timestamps import local_display


@cli.group("alerts")
def alerts_group() -> None:
    """Alerts: duties pushed to mail and group chats instead of waiting for 'custody status'.

    The daemon checks the duties every [alerts] check_seconds and sends each
    condition once when it starts, again every repeat_hours while it lasts, and
    once when it ends, through the channels of [alerts.channels.NAME] (smtp,
    webhook, wecom, dingtalk, journal); quiet_hours hold messages until they end.

    \b
    Example:
      custody alerts ls
    """


@alerts_group.command("ls")
@wide_option
@json_option
@pass_session
def alerts_ls(session: Session, as_json: bool) -> None:
    """The conditions in force as the daemon last checked them, oldest first.

    \b
    Example:
      custody alerts ls --json
    """
    found = session.perform("alerts_ls", NoRequest())
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=1))
        return
    table = Listing(
        Column("condition", KEY), Column("since", time=True, drop=2), Column("last said", time=True, drop=1),
        Column("what", TEXT), title="alerts in force",
    )  # fmt: skip
    for row in found["conditions"]:
        table.add_row(row["key"], local_display(row["since"]), local_display(row["last_said"]), row["text"])
    show_listing(table)
    for channel, count in sorted(found["waiting"].items()):
        _say(_("{channel}: {count} message(s) waiting to be sent").format(channel=channel, count=count))


@alerts_group.command("test")
@click.argument("channel")
@json_option
@pass_session
def alerts_test(session: Session, channel: str, as_json: bool) -> None:
    """Send a test message through CHANNEL now (custodians, admins; audited).

    \b
    Example:
      custody alerts test mail
    """
    sent = session.perform("alerts_test", alerts.TestChannel(channel))
    if as_json:
        click.echo(json.dumps(sent, indent=1))
        return
    _say(_("test message sent through {channel} ({kind})").format(channel=sent["channel"], kind=sent["kind"]))
