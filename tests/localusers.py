"""Real local users for the access tests: made with useradd, commands run as them with setpriv.

They run the system's python3 with custody on PYTHONPATH: the venv's
interpreter may live where other users cannot execute it (under /root).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
SYSTEM_PYTHON = "/usr/bin/python3"


def readable_by_others(path: Path) -> bool:
    """Whether a user who is neither owner nor in the group can reach and read ``path``."""
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH or (folder == path and not mode & stat.S_IROTH):
            return False
    return True


@functools.cache
def pythonpath_for_others(repo: Path = REPO, site_packages: Path = SITE_PACKAGES) -> str:
    """PYTHONPATH that lets other users run this checkout's custody with the venv's packages.

    The checkout and the venv where others may read them; otherwise (a clone
    in a 0700 folder, such as under /root) a copy of what they cannot read,
    in a folder they can, made once per run and removed at its end.
    """
    copy: Path | None = None
    entries = []
    for name, source, package in (("code", repo, repo / "custody"), ("site", site_packages, site_packages)):
        if readable_by_others(package):
            entries.append(str(source))
            continue
        if copy is None:
            copy = Path(tempfile.mkdtemp(prefix="custody-tests-readable-"))
            copy.chmod(0o755)
            atexit.register(shutil.rmtree, copy, ignore_errors=True)
        target = copy / name / "custody" if name == "code" else copy / name
        shutil.copytree(package, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        for folder, _subfolders, files in os.walk(copy / name):
            os.chmod(folder, 0o755)
            for file in files:
                path = os.path.join(folder, file)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | 0o444)
        entries.append(str(copy / name))
    return ":".join(entries)


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


def run_as(
    user: str, *command: str, socket_path: Path | None = None, python_path: str | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` as ``user`` with their own groups (CUSTODY_SOCKET set when given), with this
    checkout's custody or the one on ``python_path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "CUSTODY_SOCKET")}
    env.update(PYTHONPATH=python_path or pythonpath_for_others(), HOME="/")
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
