"""The daemon's alerts: a thread that checks the duties every ``[alerts] check_seconds`` and one
sender per channel, so that a receiver that fails or hangs (each send has a timeout) holds up
only its own channel's messages, never another channel, a dock or a request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from custody.errors import CustodyError
from custody.ingestd.alert_channels import SendFailed, send
from custody.vault import Vault

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def deliver(vault: Vault, channel: str, now: datetime) -> int:
    """Send the messages due on ``channel`` at ``now``, in order; a failure is recorded (retried
    later, with backoff) and ends this round for the channel. Return how many were sent."""
    settings = vault.settings.alerts.channels.get(channel)
    if settings is None:
        return 0
    station = vault.settings.station.organisation or "custody"
    count = 0
    for message in vault.alerts.due(channel, now):
        try:
            send(settings, message, station)
        except SendFailed as exc:
            due = vault.alerts.failed(message, now, exc.message)
            log.warning("%s (message %d; next attempt %s)", exc.message, message.id, due.isoformat())
            return count
        vault.alerts.sent(message, now)
        count += 1
    return count


class AlertWorker:
    """Checks the duties and sends what is due, beside everything else the daemon does."""

    def __init__(self, vault: Vault, stop: threading.Event, clock: Clock | None = None) -> None:
        self.vault = vault
        self.stop = stop
        self.clock = clock or (lambda: datetime.now(UTC))
        self._wake = {name: threading.Event() for name in vault.settings.alerts.channels}
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        settings = self.vault.settings.alerts
        if not settings.enabled or not settings.channels:
            return
        self.threads.append(threading.Thread(target=self._check, name="alerts", daemon=True))
        for name in settings.channels:
            self.threads.append(
                threading.Thread(target=self._send, args=(name,), name=f"alerts-{name}", daemon=True)
            )
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for event in self._wake.values():
            event.set()
        for thread in self.threads:
            thread.join(timeout=timeout)

    def _check(self) -> None:
        every = self.vault.settings.alerts.check_seconds
        while not self.stop.is_set():
            try:
                self.vault.alerts.evaluate(self.clock())
            except CustodyError as exc:  # (a vault that cannot be read now: said, tried again)
                log.warning("alerts: checking the duties failed: %s", exc.message)
            for event in self._wake.values():
                event.set()
            self.stop.wait(every)

    def _send(self, channel: str) -> None:
        wake = self._wake[channel]
        while not self.stop.is_set():
            wake.wait(30)  # woken after each check; on its own every 30 s for retries that come due
            wake.clear()
            if self.stop.is_set():
                return
            try:
                deliver(self.vault, channel, self.clock())
            except CustodyError as exc:
                log.warning("alerts: channel %s: %s", channel, exc.message)
