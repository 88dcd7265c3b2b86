"""Operations of alerts: the conditions in force, and a test message through a channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from custody.errors import Said, UsageError
from custody.ingestd.alert_channels import SendFailed, send
from custody.operations.base import Context, NoRequest, operation
from custody.vault import Vault


@operation("alerts_ls", NoRequest, "report")
def alerts_ls(vault: Vault, request: NoRequest, context: Context) -> dict:
    """The conditions in force as last checked (by the daemon), oldest first: what was said of
    each and when, and the messages still waiting per channel."""
    return vault.alerts.active()


@dataclass(frozen=True)
class TestChannel:
    channel: str


@operation("alerts_test", TestChannel, "alerts")
def alerts_test(vault: Vault, request: TestChannel, context: Context) -> dict:
    """Send a test message through a channel now (quiet hours do not hold it); audited as an
    ``alert-sent``. Raise UsageError for an unknown channel, SendFailed when it cannot be sent."""
    channel = vault.settings.alerts.channels.get(request.channel)
    if channel is None:
        known = (
            ", ".join(vault.settings.alerts.channels) or "none: add [alerts.channels.NAME] to custody.toml"
        )
        raise UsageError(
            reason=Said("no alert channel {channel} (known: {known})", channel=request.channel, known=known)
        )
    now = datetime.now(UTC)
    number = vault.alerts.queue_test(channel.name, now)
    [message] = [m for m in vault.alerts.due(channel.name, now) if m.id == number]
    try:
        send(channel, message, vault.settings.station.organisation or "custody")
    except SendFailed as exc:
        vault.alerts.failed(message, now, exc.message)
        raise
    vault.alerts.sent(message, now)
    return {"channel": channel.name, "kind": channel.kind, "sent": True}
