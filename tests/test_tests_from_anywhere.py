"""`make test` from any clone root can make: the tests that run as other users give them a readable
copy of what they cannot read (a clone in a 0700 folder, as under /root, said "No module named custody")."""

from __future__ import annotations

import shutil
import subprocess

from tests.localusers import REPO, SITE_PACKAGES, SYSTEM_PYTHON, local_users, pythonpath_for_others


def test_another_user_runs_custody_from_a_clone_in_a_private_folder(tmp_path):
    private = tmp_path / "root-home"
    private.mkdir()
    private.chmod(0o700)
    clone = private / "custody-clone"
    shutil.copytree(REPO / "custody", clone / "custody", ignore=shutil.ignore_patterns("__pycache__"))
    path = pythonpath_for_others(clone, SITE_PACKAGES)
    assert str(clone) not in path  # a readable copy stands in for it
    with local_users("cst-anywhere", ("cst-anywhere1",)):
        ran = subprocess.run(
            ["setpriv", "--reuid=cst-anywhere1", "--regid=cst-anywhere1", "--init-groups",
             SYSTEM_PYTHON, "-c", "import custody.cli, sys; print(custody.cli.__file__)"],
            env={"PYTHONPATH": path, "HOME": "/", "PATH": "/usr/bin:/bin"}, cwd="/", capture_output=True, text=True,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().endswith("custody/cli/__init__.py") and str(clone) not in ran.stdout
