"""The platform in a browser on the demo vault (run by scripts/demo-web under umockdev-wrapper).

Serves the vault ``make demo`` left (or any vault home given) to a browser: a daemon serving its
socket, and `custody web` as its own unprivileged user (custody-web-demo, made if missing) on
127.0.0.1. Demo accounts for each role are custody accounts with one printed password. It runs
until Ctrl-C, then stops both.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository
from custody.ingestd import api  # noqa: E402
from tests.localusers import SYSTEM_PYTHON, pythonpath_for_others  # noqa: E402

SERVICE_USER = "custody-web-demo"
PASSWORD = "custody demo 2026"
ACCOUNTS = {  # login: role
    "demo-clerk": "clerk", "demo-officer": "officer", "demo-custodian": "custodian",
    "demo-auditor": "auditor", "demo-lead": "supervisor",
}  # fmt: skip
BADGE = "031245"  # the demo's officer
MARK = "# --- added by scripts/demo-web ---"


def configure(home: Path, run: Path) -> None:
    """Give the demo vault a socket the service user may reach, roles for the demo accounts, and
    the web platform's service user (once: the block is added one time)."""
    config = home / "custody.toml"
    text = config.read_text(encoding="utf-8") if config.exists() else ""
    if MARK in text:
        return
    roles = "".join(f'{role} = ["{login}"]\n' for login, role in ACCOUNTS.items())
    block = (
        f'\n{MARK}\n[access]\nsocket = "{run}/api.sock"\nsocket_group = "{SERVICE_USER}"\n'
        f'[access.roles]\n{roles}[web]\nservice_user = "{SERVICE_USER}"\n'
        f'[supervision.scopes]\n"demo-lead" = ["*"]\n'
    )
    if re.search(r"^\[(access|web|supervision)[.\]]", text, re.MULTILINE):
        raise SystemExit(f"{config} has its own [access] or [web]: start the platform as the README says")
    config.write_text(text + block, encoding="utf-8")


def free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def main(home: Path, port: int) -> None:
    if not (home / "catalog.db").exists():
        raise SystemExit(f"no vault at {home}: run make demo first, or name a vault home")
    if subprocess.run(["id", SERVICE_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", SERVICE_USER], check=True)  # fmt: skip
    run = home.parent / "run"
    run.mkdir(exist_ok=True)
    run.chmod(0o755)
    state = home.parent / "web-state"
    state.mkdir(exist_ok=True)
    entry = pwd.getpwnam(SERVICE_USER)
    os.chown(state, entry.pw_uid, entry.pw_gid)
    home.parent.chmod(0o755)  # the service user reaches the socket's folder (the vault stays 0700)
    configure(home, run)
    subprocess.run(["custody", "--home", str(home), "officer", "login", BADGE, "demo-officer"],
                   capture_output=True)  # fmt: skip
    if not free(port):
        raise SystemExit(f"port {port} is in use: give another (scripts/demo-web HOME PORT)")
    testbed = UMockdev.Testbed.new()
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    log = open(home.parent / "web-demo.log", "ab")  # noqa: SIM115 (lives as long as the servers)
    daemon = subprocess.Popen(["custody", "--home", str(home), "daemon"],
                              env={**env, "UMOCKDEV_DIR": testbed.get_root_dir()}, stdout=log, stderr=log)  # fmt: skip
    socket_path = run / "api.sock"
    deadline = time.monotonic() + 60
    while True:  # (a socket file left by an earlier run may be there already: ask until answered)
        try:
            api.call(socket_path, "whoami", timeout=5)
            break
        except api.ApiUnavailable:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start: see {home.parent / 'web-demo.log'}") from None
            time.sleep(0.2)
    for login in ACCOUNTS:
        try:
            api.call(socket_path, "account_set", {"login": login, "password": PASSWORD, "new": True})
        except api.ApiError:  # (there from an earlier run: set its password again)
            api.call(socket_path, "account_set", {"login": login, "password": PASSWORD})
    web = subprocess.Popen(
        ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--init-groups", SYSTEM_PYTHON, "-m",
         "custody", "web", "--port", str(port), "--secret-file", str(state / "session.key")],
        env={**env, "PYTHONPATH": pythonpath_for_others(), "HOME": "/", "CUSTODY_SOCKET": str(socket_path)},
        cwd="/", stdout=log, stderr=log,
    )  # fmt: skip
    time.sleep(2)
    if web.poll() is not None:
        daemon.send_signal(signal.SIGTERM)
        raise SystemExit(f"custody web did not start: see {home.parent / 'web-demo.log'}")
    print(f"\nThe platform is at http://127.0.0.1:{port}/ (Chinese; English by the switch at the top right)")
    print(f"Sign in as any of {', '.join(f'{login} ({role})' for login, role in ACCOUNTS.items())}")
    print(f"with the password: {PASSWORD}")
    print("Ctrl-C stops it.", flush=True)
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            if web.poll() is not None or daemon.poll() is not None:
                print(f"a server stopped: see {home.parent / 'web-demo.log'}")
                break
    finally:
        for process in (web, daemon):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        print("stopped")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: scripts/demo-web VAULT_HOME [PORT]")
    main(Path(sys.argv[1]).resolve(), int(sys.argv[2]) if len(sys.argv) > 2 else 8420)
