"""Access control end to end: a real daemon, real local users running `custody` through its socket.

Users are created with useradd and run the real command with setpriv (the
system's python3, since the venv's interpreter lives under /root). The vault
home is root's, mode 0700: they can reach it only through the socket.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.docking import DaemonProcess

REPO = Path(__file__).resolve().parents[2]
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
SYSTEM_PYTHON = "/usr/bin/python3"
GROUP = "cst-access"
CLERK, CLERK2, OFFICER, AUDITOR, NO_ROLE, OUTSIDER = (
    "cst-clerk1", "cst-clerk2", "cst-officer", "cst-auditor", "cst-nobody", "cst-stranger",
)  # fmt: skip
IN_GROUP = (CLERK, CLERK2, OFFICER, AUDITOR, NO_ROLE)
BADGE, OTHER_BADGE = "031245", "099999"
RESTRICTED_CASE = "2026-SECRET"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def users():
    def remove() -> None:
        for user in (*IN_GROUP, OUTSIDER):
            subprocess.run(["userdel", "-f", user], capture_output=True)
        subprocess.run(["groupdel", GROUP], capture_output=True)

    remove()
    subprocess.run(["groupadd", GROUP], check=True)
    for user in (*IN_GROUP, OUTSIDER):
        extra = ["-G", GROUP] if user in IN_GROUP else []
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", *extra, user],
            check=True,
        )
    yield
    remove()


@pytest.fixture
def served_vault(home, custody, footage, testbed, tmp_path, users):
    """Four items: EV-1, EV-2 (officer 031245, case 2026-0001), EV-3 (031245, a restricted case
    naming clerk1), EV-4 (another officer); a daemon serving the socket to the group."""
    folder = Path(tempfile.mkdtemp(prefix="custody-access-", dir="/tmp"))
    folder.chmod(0o755)
    custody("init")
    roles = {"clerk": [CLERK, CLERK2], "officer": [OFFICER], "auditor": [f"@{GROUP}-auditors", AUDITOR]}
    (home / "custody.toml").write_text(
        f'[access]\nsocket = "{folder}/api.sock"\nsocket_group = "{GROUP}"\n[access.roles]\n'
        + "".join(f"{role} = {json.dumps(members)}\n" for role, members in roles.items())
    )
    custody("officer", "add", BADGE, "--name", "Wang Li")
    custody("officer", "login", BADGE, OFFICER)
    clips = sorted(footage.glob("CLIP*.MP4"))
    custody("ingest", *map(str, clips), "--officer", BADGE)
    custody("ingest", str(footage / "LONG0001.MP4"), "--officer", OTHER_BADGE)
    custody("tag", "EV-000001", "EV-000002", "--case", "2026-0001", "--party", "Li Si")
    custody("tag", "EV-000003", "--case", RESTRICTED_CASE, "--party", "Zhao Liu")
    custody("case", "confidentiality", RESTRICTED_CASE, "restricted")
    custody("case", "staff", RESTRICTED_CASE, CLERK)
    outbox = folder / "out"
    outbox.mkdir(mode=0o777)
    outbox.chmod(0o1777)
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    yield home, folder / "api.sock", outbox
    daemon.stop()
    shutil.rmtree(folder)


def as_user(user: str, home: Path, socket_path: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "CUSTODY_SOCKET")}
    env.update(PYTHONPATH=f"{REPO}:{SITE_PACKAGES}", HOME="/")
    if socket_path is not None:
        env["CUSTODY_SOCKET"] = str(socket_path)
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", SYSTEM_PYTHON, "-m", "custody",
         "--home", str(home), *args],
        env=env, cwd="/", capture_output=True, text=True,
    )  # fmt: skip


def listed(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [item["id"] for item in json.loads(result.stdout)]


def denied_events(custody) -> list[dict]:
    return [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "denied"]


def test_each_role_does_its_job_and_nothing_else_and_every_refusal_is_audited(served_vault, custody):
    home, socket_path, outbox = served_vault

    # A clerk tags and extracts (the file is written by the clerk's own process).
    tagged = as_user(CLERK, home, socket_path, "tag", "EV-000001", "--note", "reviewed")
    assert tagged.returncode == 0, tagged.stderr
    out = outbox / "ev1.mp4"
    extracted = as_user(CLERK, home, socket_path, "extract", "EV-000001", "--out", str(out))
    assert extracted.returncode == 0, extracted.stderr
    assert out.stat().st_uid == pwd.getpwnam(CLERK).pw_uid
    original = json.loads(custody("show", "EV-000001", "--json").stdout)
    assert (
        subprocess.run(["sha256sum", str(out)], capture_output=True, text=True).stdout.split()[0]
        == original["sha256"]
    )
    assert original["tags"]["note"] == "reviewed"
    assert [e["actor"] for e in original["events"] if e["action"] in ("tag", "extract")][-2:] == [
        CLERK,
        CLERK,
    ]

    # An officer sees only their own normal items, and cannot tag.
    assert listed(as_user(OFFICER, home, socket_path, "ls", "--json")) == ["EV-000001", "EV-000002"]
    refused = as_user(OFFICER, home, socket_path, "tag", "EV-000001", "--note", "mine")
    assert refused.returncode == 13 and "may not tag" in refused.stderr
    hidden = as_user(OFFICER, home, socket_path, "show", "EV-000004")
    assert hidden.returncode == 5 and "no item EV-000004" in hidden.stderr

    # An auditor reads everything, including the log, and changes nothing.
    assert listed(as_user(AUDITOR, home, socket_path, "ls", "--json")) == [
        f"EV-00000{n}" for n in range(1, 5)
    ]
    log = as_user(AUDITOR, home, socket_path, "log", "--json")
    assert log.returncode == 0 and any(e["action"] == "ingest" for e in json.loads(log.stdout))
    for command in (
        ["tag", "EV-000002", "--note", "x"],
        ["extract", "EV-000002", "--out", str(outbox / "a.mp4")],
    ):
        result = as_user(AUDITOR, home, socket_path, *command)
        assert result.returncode == 13, result.stderr
    assert not (outbox / "a.mp4").exists()

    # A user with no role gets nothing but whoami.
    nothing = as_user(NO_ROLE, home, socket_path, "ls")
    assert nothing.returncode == 13 and "only run 'custody whoami'" in nothing.stderr
    assert as_user(NO_ROLE, home, socket_path, "whoami").returncode == 0

    # Every refusal is a denied event naming the caller's uid, the action and the target.
    denied = {(e["actor"], e["details"]["action"], e["details"]["uid"]) for e in denied_events(custody)}
    uid = {user: pwd.getpwnam(user).pw_uid for user in IN_GROUP}
    assert (OFFICER, "tag", uid[OFFICER]) in denied
    assert (OFFICER, "see", uid[OFFICER]) in denied
    assert (AUDITOR, "tag", uid[AUDITOR]) in denied
    assert (AUDITOR, "extract", uid[AUDITOR]) in denied
    assert (NO_ROLE, "ls", uid[NO_ROLE]) in denied
    assert "ok" in custody("verify").stdout.lower() or True  # the chain with all of them still verifies
    assert json.loads(custody("verify", "--json").stdout)["ok"] is True


def test_restricted_footage_is_seen_only_by_the_clerks_named_on_its_case(served_vault, custody):
    home, socket_path, outbox = served_vault
    assert "EV-000003" not in listed(as_user(CLERK2, home, socket_path, "ls", "--json"))
    assert listed(as_user(CLERK2, home, socket_path, "ls", "--json", "--case", RESTRICTED_CASE)) == []
    for command in (["show", "EV-000003"], ["extract", "EV-000003", "--out", str(outbox / "no.mp4")]):
        refused = as_user(CLERK2, home, socket_path, *command)
        assert refused.returncode == 5 and "no item EV-000003" in refused.stderr
    assert not (outbox / "no.mp4").exists()

    assert "EV-000003" in listed(as_user(CLERK, home, socket_path, "ls", "--json"))
    shown = as_user(CLERK, home, socket_path, "show", "EV-000003", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["tags"]["case"] == RESTRICTED_CASE
    fetched = as_user(CLERK, home, socket_path, "extract", "EV-000003", "--out", str(outbox / "ev3.mp4"))
    assert fetched.returncode == 0, fetched.stderr


def test_without_the_daemon_a_user_who_does_not_own_the_vault_is_told_how_to_reach_it(served_vault):
    home, _socket_path, _outbox = served_vault
    refused = as_user(CLERK, home, None, "ls")
    assert refused.returncode == 13
    assert "belongs to another user: use it through the custody daemon's socket" in refused.stderr
    outsider = as_user(OUTSIDER, home, _socket_path, "ls")
    assert outsider.returncode == 7 and "permission denied" in outsider.stderr
