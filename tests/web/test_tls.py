"""The web platform on the office network: with a certificate it serves HTTPS only, and its
session cookie is Secure (never sent over plain HTTP), HttpOnly and SameSite."""

from __future__ import annotations

import os
import ssl
import subprocess
import time

import httpx
import pytest

from custody.ingestd import api
from tests.certs import self_signed
from tests.ingestd.served import CLERK, WEB
from tests.localusers import SYSTEM_PYTHON, pythonpath_for_others
from tests.web.conftest import _ids, free_port
from tests.web.platform import PASSWORD, WEB_CONFIG

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_with_a_certificate_the_platform_speaks_https_and_its_cookie_is_secure(served_vault, tmp_path):
    _home, socket_path, outbox, _daemon = served_vault
    api.call(socket_path, "account_set", {"login": CLERK, "password": PASSWORD, "new": True})
    state = outbox.parent / "tls-state"
    state.mkdir()
    cert, key = self_signed(state)
    for path in (state, cert, key):
        os.chown(path, *_ids(WEB))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(PYTHONPATH=pythonpath_for_others(), HOME="/", CUSTODY_SOCKET=str(socket_path))
    with open(tmp_path / "web.log", "wb") as log:
        process = subprocess.Popen(
            ["setpriv", f"--reuid={WEB}", f"--regid={WEB}", "--init-groups", SYSTEM_PYTHON, "-m", "custody", "web",
             "--port", str(port), "--secret-file", str(state / "session.key"),
             "--tls-certificate", str(cert), "--tls-key", str(key)],
            env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    trusted = ssl.create_default_context(cafile=str(cert))
    client = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trusted, timeout=30)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.get("/sign-in")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "web.log"
                ).read_text()
                time.sleep(0.2)
        signed = client.post("/sign-in", data={"login": CLERK, "password": PASSWORD})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "custody_session=" in cookie and "secure" in cookie and "httponly" in cookie
        assert "samesite=lax" in cookie
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served on that port
            httpx.get(f"http://127.0.0.1:{port}/sign-in", timeout=5)
    finally:
        client.close()  # (an open keep-alive connection would hold up the server's stop)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
