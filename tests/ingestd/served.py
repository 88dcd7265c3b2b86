"""A daemon serving a vault to real local users with every role: the fixtures the socket tests share.

Users are created with useradd and run the real command with setpriv (the
system's python3, since the venv's interpreter lives under /root). The vault
home is root's, mode 0700: they can reach it only through the socket.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.docking import DaemonProcess
from tests.localusers import local_users

GROUP = "cst-access"
CLERK, CLERK2, OFFICER, AUDITOR, NO_ROLE, OUTSIDER = (
    "cst-clerk1", "cst-clerk2", "cst-officer", "cst-auditor", "cst-nobody", "cst-stranger",
)  # fmt: skip
IN_GROUP = (CLERK, CLERK2, OFFICER, AUDITOR, NO_ROLE)
CUSTODIAN, CUSTODIAN2, ADMIN = "cst-custodian1", "cst-custodian2", "cst-admin"
SUPERVISOR = "cst-supervisor"  # supervises unit UNIT (officer BADGE's)
UNIT = "一中队"
WEB = "cst-web"  # the web platform's service user ([web] service_user where a test sets it)
STAFF = (CUSTODIAN, CUSTODIAN2, ADMIN, WEB, SUPERVISOR)  # in the group too; not among the load test's clients
BADGE, OTHER_BADGE = "031245", "099999"
RESTRICTED_CASE = "2026-SECRET"


@pytest.fixture(scope="module")
def users():
    with local_users(GROUP, IN_GROUP + STAFF, (OUTSIDER,)):
        yield


@pytest.fixture
def extra_config(request) -> str:
    """More custody.toml for a test's daemon (parametrize indirectly): lines before its first table
    belong to [access]; its watch folder is made empty."""
    text = getattr(request, "param", "")
    for folder in re.findall(r'watch_folders = \["([^"]+)"\]', text):
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True)
    return text


@pytest.fixture
def served_vault(home, custody, footage, testbed, tmp_path, users, extra_config):
    """Four items: EV-1, EV-2 (officer 031245, case 2026-0001), EV-3 (031245, a restricted case
    naming clerk1), EV-4 (another officer); a daemon serving the socket to the group."""
    folder = Path(tempfile.mkdtemp(prefix="custody-access-", dir="/tmp"))
    folder.chmod(0o755)
    custody("init")
    roles = {
        "clerk": [CLERK, CLERK2],
        "officer": [OFFICER],
        "auditor": [f"@{GROUP}-auditors", AUDITOR],
        "custodian": [CUSTODIAN, CUSTODIAN2],
        "admin": [ADMIN],
        "supervisor": [SUPERVISOR],
    }
    (home / "custody.toml").write_text(  # the extra config's first lines are still [access]'s
        f'[access]\nsocket = "{folder}/api.sock"\nsocket_group = "{GROUP}"\n'
        + extra_config
        + "[access.roles]\n"
        + "".join(f"{role} = {json.dumps(members)}\n" for role, members in roles.items())
        + '[station]\norganisation = "Test County Public Security Bureau"\n'
        + f'[supervision.scopes]\n"{SUPERVISOR}" = ["{UNIT}"]\n'
    )
    custody("officer", "add", BADGE, "--name", "Wang Li", "--unit", UNIT)
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
    yield home, folder / "api.sock", outbox, daemon
    daemon.stop()
    shutil.rmtree(folder)
