"""Alerts (issue 21): a real SMTP server on loopback (aiosmtpd, STARTTLS and a login), webhook
receivers on loopback (WeCom- and DingTalk-shaped bodies, one that fails, one that hangs), the
duties checked through the service API with a clock the test controls; then the daemon itself."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from custody.config import load_settings
from custody.ingestd.alerting import AlertWorker, deliver
from custody.vault import Vault
from tests.certs import self_signed
from tests.docking import DaemonProcess, wait_for

SERIAL, BADGE = "BWC7", "031245"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SMTP_USER, SMTP_PASSWORD = "custody-alerts", "relay secret 1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """What the SMTP server received (only after STARTTLS and a good login)."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy))
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


class Hooks:
    """Webhook receivers: /ok answers as a robot does, /fail with HTTP 500, /hang until released."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict]] = {}
        self.release = threading.Event()
        self.hanging = threading.Event()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = self.path.split("?")[0]
                hooks.posts.setdefault(path, []).append(body)
                if path == "/hang":
                    hooks.hanging.set()
                    hooks.release.wait(60)
                self.send_response(500 if path == "/fail" else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def receivers(tmp_path):
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        authenticator=authenticate, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    hooks = Hooks()
    password = tmp_path / "relay-password"
    password.write_text(SMTP_PASSWORD + "\n")
    yield {"mailbox": mailbox, "hooks": hooks, "smtp_port": port, "ca": cert, "password": password}
    controller.stop()
    hooks.close()


def alerts_config(receivers, extra: str = "", hooks: tuple[str, ...] = ("wecom", "dingtalk", "json")) -> str:
    base = receivers["hooks"].base
    text = (
        "\n[alerts]\ncheck_seconds = 1\nrepeat_hours = 24\n" + extra
        + "[alerts.channels.mail]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\n"
        + f"port = {receivers['smtp_port']}\nsender = \"custody@station.test\"\n"
        + "recipients = [\"duty-officer@station.test\"]\n"
        + f"username = \"{SMTP_USER}\"\npassword_file = \"{receivers['password']}\"\nca_file = \"{receivers['ca']}\"\n"
    )  # fmt: skip
    for name in hooks:
        kind = name if name in ("wecom", "dingtalk") else "webhook"
        path = {"wecom": "/ok/wecom", "dingtalk": "/ok/dingtalk", "json": "/ok/json"}.get(name, f"/{name}")
        text += f'[alerts.channels.{name}]\nkind = "{kind}"\nurl = "{base}{path}"\ntimeout_seconds = 2\n'
    return text


@pytest.fixture
def station(custody, home):
    """A vault with an officer and their recorder, assigned five days before T0 and never docked."""
    custody("init", "--organisation", "某县综合行政执法局")
    custody("officer", "add", BADGE, "--name", "王力")
    custody(
        "recorder", "add", SERIAL, "--officer", BADGE, "--from", (T0 - timedelta(days=5)).date().isoformat()
    )
    return home


def configured(home: Path, text: str) -> Vault:
    with open(home / "custody.toml", "a", encoding="utf-8") as config:
        config.write(text)
    return Vault(load_settings(home), "custody-daemon")


def send_all(vault: Vault, now: datetime) -> None:
    for name in vault.settings.alerts.channels:
        deliver(vault, name, now)


def test_an_overdue_recorder_is_mailed_once_repeated_then_resolved_after_a_dock(station, receivers, custody):
    mailbox, hooks = receivers["mailbox"], receivers["hooks"]
    with configured(station, alerts_config(receivers)) as vault:
        [condition] = vault.alerts.evaluate(T0)
        assert condition.key == f"recorder_overdue:{SERIAL}"
        send_all(vault, T0)
        [mail] = mailbox.messages
        assert "执法记录仪未按时接入" in mail["Subject"] and mail["To"] == "duty-officer@station.test"
        body = mail.get_content()
        assert SERIAL in body and BADGE in body and "某县综合行政执法局" in body
        [wecom] = hooks.posts["/ok/wecom"]
        [dingtalk] = hooks.posts["/ok/dingtalk"]
        for robot in (wecom, dingtalk):
            assert robot["msgtype"] == "text" and SERIAL in robot["text"]["content"]
        [generic] = hooks.posts["/ok/json"]
        assert (generic["condition"], generic["state"]) == (condition.key, "firing")

        # Once: the next checks say nothing new until the repeat is due; then "still".
        for hours in (1, 12):
            vault.alerts.evaluate(T0 + timedelta(hours=hours))
            send_all(vault, T0 + timedelta(hours=hours))
        assert len(mailbox.messages) == 1
        vault.alerts.evaluate(T0 + timedelta(hours=24))
        send_all(vault, T0 + timedelta(hours=24))
        assert len(mailbox.messages) == 2 and "still" in mailbox.messages[1]["Subject"]

        # Docked: the condition ends, and that is said once.
        docked = T0 + timedelta(hours=25)
        session = vault.registry.open_dock_session(SERIAL, "/dev/test", "dcim", docked.isoformat(), {})
        vault.registry.close_dock_session(session, "done", {}, [])
        assert vault.alerts.evaluate(docked + timedelta(minutes=1)) == []
        send_all(vault, docked + timedelta(minutes=1))
        assert len(mailbox.messages) == 3 and "resolved" in mailbox.messages[2]["Subject"]
        assert hooks.posts["/ok/json"][-1]["state"] == "resolved"
        vault.alerts.evaluate(docked + timedelta(hours=2))  # within the window again: nothing to say
        send_all(vault, docked + timedelta(hours=2))
        assert len(mailbox.messages) == 3
    events = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "alert-sent"]
    assert len(events) == 3 * 4  # three messages on each of four channels
    assert {e["details"]["condition"] for e in events} == {condition.key}
    assert all("text" not in e["details"] and "王力" not in json.dumps(e["details"]) for e in events)


def test_quiet_hours_hold_messages_until_they_end_and_a_test_message_goes_at_once(station, receivers):
    mailbox = receivers["mailbox"]
    night = datetime(2026, 12, 1, 23, 30).astimezone()  # the station's local time
    with configured(station, alerts_config(receivers, 'quiet_hours = "22:00-07:00"\n', hooks=())) as vault:
        vault.alerts.evaluate(night)
        send_all(vault, night)
        assert mailbox.messages == []
        vault.alerts.queue_test("mail", night)
        send_all(vault, night)
        assert [m["Subject"] for m in mailbox.messages] == ["custody: test message / 测试消息"]
        morning = datetime(2026, 12, 2, 7, 0).astimezone()
        send_all(vault, morning - timedelta(minutes=1))
        assert len(mailbox.messages) == 1
        send_all(vault, morning)
        assert len(mailbox.messages) == 2 and SERIAL in mailbox.messages[1].get_content()


def test_a_failing_receiver_is_retried_with_backoff_and_a_hanging_one_delays_no_other_channel(
    station, receivers
):
    mailbox, hooks = receivers["mailbox"], receivers["hooks"]
    with configured(station, alerts_config(receivers, hooks=("fail", "hang"))) as vault:
        vault.alerts.evaluate(T0)
        assert deliver(vault, "fail", T0) == 0
        assert len(hooks.posts["/fail"]) == 1
        deliver(vault, "fail", T0 + timedelta(seconds=20))  # before its backoff (30 s): not tried
        assert len(hooks.posts["/fail"]) == 1
        deliver(vault, "fail", T0 + timedelta(seconds=31))
        assert len(hooks.posts["/fail"]) == 2
        deliver(vault, "fail", T0 + timedelta(seconds=31 + 59))  # the next waits 60 s
        assert len(hooks.posts["/fail"]) == 2

        # The daemon's senders: the hanging receiver holds its own channel only.
        stop = threading.Event()
        worker = AlertWorker(vault, stop, clock=lambda: T0 + timedelta(hours=1))
        worker.start()
        try:
            wait_for(hooks.hanging.is_set, "the hanging receiver to be asked")
            wait_for(lambda: mailbox.messages, "the mail, while the hanging receiver still holds its request")
            assert not hooks.release.is_set()
        finally:
            hooks.release.set()
            stop.set()
            worker.join(timeout=30)
    assert SERIAL in mailbox.messages[0].get_content()


def test_the_daemon_mails_an_overdue_recorder_and_alerts_ls_and_test_work(
    station, receivers, custody, testbed, tmp_path
):
    mailbox = receivers["mailbox"]
    with open(station / "custody.toml", "a", encoding="utf-8") as config:
        config.write(alerts_config(receivers, hooks=()))
    daemon = DaemonProcess(station, testbed, tmp_path / "daemon.log")
    try:
        wait_for(lambda: mailbox.messages, "the overdue recorder's mail from the daemon")
        assert SERIAL in mailbox.messages[0].get_content()
        listed = json.loads(custody("alerts", "ls", "--json").stdout)
        assert [c["key"] for c in listed["conditions"]] == [f"recorder_overdue:{SERIAL}"]
        assert SERIAL in custody("alerts", "ls").stdout
        custody("alerts", "test", "mail")
        wait_for(lambda: len(mailbox.messages) >= 2, "the test mail")
        assert "测试消息" in mailbox.messages[-1]["Subject"]
        refused = custody("alerts", "test", "no-such", expect=2)
        assert "no alert channel no-such" in refused.stderr
    finally:
        daemon.stop()
