"""Sending one alert message through one channel: e-mail through an SMTP relay (STARTTLS, a
password from a systemd credential or a file), webhooks (a generic JSON POST, and the text
messages of WeCom and DingTalk group robots), or the journal. Each send has a timeout and raises
SendFailed saying why; nothing here retries (the outbox does)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from pathlib import Path

from custody.config_alerts import ChannelSettings
from custody.errors import CustodyError, Said
from custody.vault.alerts import Message

log = logging.getLogger("custody.alerts")


class SendFailed(CustodyError):
    """alert channel {channel}: {why}"""

    exit_code = 9


def send(channel: ChannelSettings, message: Message, station: str) -> None:
    """Send ``message`` through ``channel``; raise SendFailed."""
    try:
        if channel.kind == "smtp":
            _mail(channel, message, station)
        elif channel.kind == "journal":
            log.warning("%s: %s", message.subject, message.text)
        else:
            _post(channel, webhook_body(channel.kind, message, station))
    except SendFailed:
        raise
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        raise SendFailed(
            channel=channel.name, why=Said("{kind}: {exc}", kind=type(exc).__name__, exc=exc)
        ) from exc


def webhook_body(kind: str, message: Message, station: str) -> dict:
    """The JSON a webhook gets: WeCom's and DingTalk's robots take a text message; a generic
    receiver gets the fields."""
    content = f"{message.subject}\n{station}\n{message.text}"
    if kind in ("wecom", "dingtalk"):
        return {"msgtype": "text", "text": {"content": content}}
    return {
        "source": "custody", "station": station, "condition": message.key, "state": message.state,
        "subject": message.subject, "text": message.text, "at": message.created_at,
    }  # fmt: skip


def _secret(channel: ChannelSettings, credential: str, file: str) -> str:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if credential and directory and (Path(directory) / credential).is_file():
        return (Path(directory) / credential).read_text().strip()
    if file:
        return Path(file).read_text().strip()
    if credential:
        raise SendFailed(
            channel=channel.name,
            why=Said("no systemd credential {credential} ($CREDENTIALS_DIRECTORY)", credential=credential),
        )
    return ""


def _mail(channel: ChannelSettings, message: Message, station: str) -> None:
    mail = EmailMessage()
    mail["From"], mail["To"] = channel.sender, ", ".join(channel.recipients)
    mail["Subject"] = message.subject
    mail.set_content(
        f"{station}\n\n{message.text}\n\n(condition {message.key}, {message.state}, {message.created_at})"
    )
    with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_seconds) as relay:
        if channel.starttls:
            relay.starttls(context=ssl.create_default_context(cafile=channel.ca_file or None))
        password = _secret(channel, channel.password_credential, channel.password_file)
        if channel.username:
            relay.login(channel.username, password)
        relay.send_message(mail)


def _post(channel: ChannelSettings, body: dict) -> None:
    url = channel.url
    if channel.kind == "dingtalk":
        secret = _secret(channel, channel.secret_credential, channel.secret_file)
        if secret:  # DingTalk's signed robots: timestamp and HMAC-SHA256 signature in the query
            stamp = str(int(time.time() * 1000))
            digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
            signature = urllib.parse.quote_plus(base64.b64encode(digest))
            url += ("&" if "?" in url else "?") + f"timestamp={stamp}&sign={signature}"
    request = urllib.request.Request(
        url, data=json.dumps(body, ensure_ascii=False).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=channel.timeout_seconds) as answer:
            said = answer.read(4096)
    except urllib.error.HTTPError as exc:
        raise SendFailed(
            channel=channel.name, why=Said("the receiver answered HTTP {code}", code=exc.code)
        ) from exc
    if channel.kind in ("wecom", "dingtalk"):  # these answer 200 with an error code in the body
        try:
            code = json.loads(said or b"{}").get("errcode", 0)
        except ValueError:
            code = 0
        if code:
            raise SendFailed(
                channel=channel.name, why=Said("the robot refused the message (errcode {code})", code=code)
            )
