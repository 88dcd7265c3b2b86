"""The web platform's fixtures: a daemon serving local users (tests.ingestd.served), and
`custody web` running as its own service user (cst-web) through the system's python."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from custody.ingestd import api
from tests.ingestd.served import (
    AUDITOR,
    CLERK,
    CLERK2,
    CUSTODIAN,
    OFFICER,
    SUPERVISOR,
    WEB,
    extra_config,  # noqa: F401  (a fixture)
    served_vault,  # noqa: F401  (a fixture)
    users,  # noqa: F401  (a fixture)
)
from tests.localusers import SYSTEM_PYTHON, pythonpath_for_others
from tests.web.platform import PASSWORD


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def web(served_vault, custody, tmp_path):  # noqa: F811  (the fixture imported above)
    """custody web as cst-web on a free loopback port; accounts for two clerks, the officer, an auditor,
    a custodian and a supervisor."""
    home, socket_path, outbox, _daemon = served_vault
    for login in (
        CLERK,
        CLERK2,
        OFFICER,
        AUDITOR,
        CUSTODIAN,
        SUPERVISOR,
    ):  # (the vault's own user adds them, through the socket)
        api.call(socket_path, "account_set", {"login": login, "password": PASSWORD, "new": True})
    state = Path(outbox.parent) / "web-state"
    state.mkdir()
    os.chown(state, *_ids(WEB))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD",)}
    env.update(PYTHONPATH=pythonpath_for_others(), HOME="/", CUSTODY_SOCKET=str(socket_path))
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        ["setpriv", f"--reuid={WEB}", f"--regid={WEB}", "--init-groups", SYSTEM_PYTHON, "-m", "custody", "web",
         "--port", str(port), "--secret-file", str(state / "session.key")],
        env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/sign-in", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, (tmp_path / "web.log").read_text()
            time.sleep(0.2)
    yield {
        "base": base,
        "home": home,
        "socket": socket_path,
        "secret": state / "session.key",
        "outbox": outbox,
    }
    process.terminate()
    process.wait(timeout=10)
    log.close()


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid
