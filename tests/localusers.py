"""Real local users for the access tests: made with useradd, commands run as them with setpriv.

They run the system's python3 with custody on PYTHONPATH: the venv's
interpreter may live where other users cannot execute it (under /root).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
SYSTEM_PYTHON = "/usr/bin/python3"


@contextlib.contextmanager
def local_users(group: str, members: tuple[str, ...], outsiders: tuple[str, ...] = ()) -> Iterator[None]:
    """``members`` in a new ``group``, ``outsiders`` not; all removed afterwards (and before, if left over)."""

    def remove() -> None:
        for user in (*members, *outsiders):
            subprocess.run(["userdel", "-f", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)

    remove()
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    for user in (*members, *outsiders):
        extra = ["-G", group] if user in members else []
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", *extra, user],
            check=True,
            capture_output=True,
        )
    try:
        yield
    finally:
        remove()


def run_as(user: str, *command: str, socket_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` as ``user`` with their own groups (CUSTODY_SOCKET set when given)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "CUSTODY_SOCKET")}
    env.update(PYTHONPATH=f"{REPO}:{SITE_PACKAGES}", HOME="/")
    if socket_path is not None:
        env["CUSTODY_SOCKET"] = str(socket_path)
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *command],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
    )


def custody_as(user: str, home: Path, socket_path: Path | None, *args: str) -> subprocess.CompletedProcess:
    """The real `custody --home HOME ARGS...` as ``user``."""
    return run_as(user, SYSTEM_PYTHON, "-m", "custody", "--home", str(home), *args, socket_path=socket_path)
