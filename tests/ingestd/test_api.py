"""The daemon's API socket: identity from the kernel, the socket's group as the door, limits.

Real local users (useradd) run the real `custody` command (with the system's
python3: the venv's interpreter lives under /root) against a real socket.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from custody.config import Settings
from custody.ingestd import api
from custody.ingestd.api import ApiServer
from custody.ingestd.api_handlers import api_handlers
from custody.ingestd.pipeline import READ_WHOLE_AT_MOST
from custody.vault import ItemFilter, Vault
from custody.vault.access import RoleMap
from tests.docking import wait_for
from tests.localusers import SYSTEM_PYTHON, custody_as, local_users, run_as

GROUP = "cst-api"
CLERK, NO_ROLE, OUTSIDER = "cst-clerk", "cst-norole", "cst-outsider"


@pytest.fixture(scope="module")
def users():
    """A group that may use the socket, two of its members (one a clerk), and a user outside it."""
    with local_users(GROUP, (CLERK, NO_ROLE), (OUTSIDER,)):
        yield


@pytest.fixture
def served(tmp_path, users):
    """A vault (0700, root's) and its API socket in a folder everyone may traverse."""
    settings = Settings(home=tmp_path / "vault")
    Vault.init(settings, "root").close()
    # As in the daemon: its own vault holds the write lock for as long as it serves, so the
    # requests' openings never sweep the staging folder under a concurrent upload.
    held = Vault(settings, "root", writer=True)
    folder = Path(tempfile.mkdtemp(prefix="custody-api-", dir="/tmp"))
    folder.chmod(0o755)
    server = ApiServer(
        folder / "api.sock",
        api_handlers(settings),
        RoleMap({"clerk": [CLERK]}),
        owner_uid=os.geteuid(),
        group=GROUP,
        request_timeout=2.0,
    )
    server.start()
    yield settings, server
    server.stop()
    held.close()
    shutil.rmtree(folder)


RAW_CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\\n")
print(s.makefile().readline())
"""


def test_whoami_through_the_socket_is_the_kernels_identity_whatever_the_request_says(served):
    settings, server = served
    clerk = custody_as(CLERK, settings.home, server.path, "whoami", "--json")
    assert clerk.returncode == 0, clerk.stderr
    me = json.loads(clerk.stdout)
    assert me["user"] == CLERK and me["uid"] == pwd.getpwnam(CLERK).pw_uid
    assert me["roles"] == ["clerk"] and me["via"] == "daemon" and me["vault_owner"] is False
    assert GROUP in me["groups"]

    # A client that claims to be root, in the arguments and beside them, is still the clerk.
    forged = json.dumps({"op": "whoami", "user": "root", "uid": 0, "args": {"user": "root", "uid": 0}})
    raw = run_as(CLERK, SYSTEM_PYTHON, "-I", "-c", RAW_CLIENT, str(server.path), forged)
    assert raw.returncode == 0, raw.stderr
    reply = json.loads(raw.stdout)
    assert reply["ok"] and reply["result"]["user"] == CLERK and reply["result"]["uid"] != 0

    nobody = custody_as(NO_ROLE, settings.home, server.path, "whoami", "--json")
    assert nobody.returncode == 0, nobody.stderr
    assert json.loads(nobody.stdout)["roles"] == []  # least privilege: in the group, but no role


def test_a_user_outside_the_sockets_group_cannot_connect_nor_read_the_vault(served):
    settings, server = served
    refused = custody_as(OUTSIDER, settings.home, server.path, "whoami")
    assert refused.returncode == 7
    assert "permission denied: ask the custodian to add you to the socket's group" in refused.stderr
    assert oct(server.path.stat().st_mode & 0o777) == "0o660"
    assert oct(settings.home.stat().st_mode & 0o777) == "0o700"
    for user in (OUTSIDER, CLERK):
        direct = run_as(user, "cat", str(settings.home / "catalog.sqlite"))
        assert direct.returncode != 0 and "Permission denied" in direct.stderr


def _exchange(path: Path, payload: bytes, shut: bool = False) -> dict:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        client.sendall(payload)
        if shut:
            client.shutdown(socket.SHUT_WR)
        return json.loads(client.makefile().readline())


def test_malformed_oversized_cut_off_and_stalled_requests_get_errors_while_others_are_served(served):
    _settings, server = served
    assert "not JSON" in _exchange(server.path, b"no json here\n")["error"]
    assert "larger than" in _exchange(server.path, b'{"op": "' + b"x" * (70 * 1024) + b'"}\n')["error"]
    assert "cut off" in _exchange(server.path, b'{"op": "whoami"', shut=True)["error"]
    assert "unknown request" in _exchange(server.path, b'{"op": "format-disk"}\n')["error"]
    assert "JSON object" in _exchange(server.path, b"[1, 2]\n")["error"]

    # A client that connects and says nothing holds only its own connection.
    stalled = socket.socket(socket.AF_UNIX)
    stalled.connect(str(server.path))
    answered = []
    worker = threading.Thread(target=lambda: answered.append(_exchange(server.path, b'{"op": "whoami"}\n')))
    worker.start()
    worker.join(timeout=30)
    assert answered and answered[0]["ok"]
    reply = json.loads(stalled.makefile().readline())
    assert "no whole request within 2 s" in reply["error"]
    stalled.close()


def test_a_client_sending_too_fast_is_slowed_down_and_others_are_not(tmp_path):
    settings = Settings(home=tmp_path / "vault")
    server = ApiServer(
        tmp_path / "api.sock",
        api_handlers(settings),
        RoleMap({}),
        owner_uid=os.geteuid(),
        max_requests_per_second=5,
    )
    server.start()
    try:
        answered = 0  # asked as fast as answers come, until one is refused (however slow the machine)
        for _ in range(1000):
            reply = _exchange(server.path, b'{"op": "whoami"}\n')
            if not reply["ok"]:
                break
            answered += 1
        assert not reply["ok"] and "too many requests" in reply["error"]
        assert answered >= 10  # the burst, then the rate
        time.sleep(1.0)
        assert _exchange(server.path, b'{"op": "whoami"}\n')["ok"]  # it recovers
    finally:
        server.stop()


def test_the_daemon_refuses_a_vault_home_or_key_file_others_may_read(tmp_path):
    settings = Settings(home=tmp_path / "vault")
    Vault.init(settings, "root").close()

    def start_daemon() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "custody", "--home", str(settings.home), "daemon"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    settings.home.chmod(0o750)
    loose_home = start_daemon()
    assert loose_home.returncode == 4
    assert f"vault home {settings.home} is mode 750" in loose_home.stderr
    settings.home.chmod(0o700)
    key = settings.home / "keys" / "master.key"
    key.chmod(0o640)
    loose_key = start_daemon()
    assert loose_key.returncode == 4 and "lets others read it" in loose_key.stderr
    assert not (settings.home / "api.sock").exists()


def test_systemd_socket_activation_starts_the_daemon_at_the_first_request_which_it_serves(
    tmp_path, users, testbed
):
    """systemd's own socket-activation tool: it binds the socket, waits for a client, then starts
    `custody daemon` with the socket as fd 3 (LISTEN_FDS), exactly as a .socket unit does."""
    settings = Settings(home=tmp_path / "vault")
    Vault.init(settings, "root").close()
    (settings.home / "custody.toml").write_text(f'[access.roles]\nclerk = ["{CLERK}"]\n')
    folder = Path(tempfile.mkdtemp(prefix="custody-activate-", dir="/tmp"))
    folder.chmod(0o755)
    path = folder / "api.sock"
    activator = subprocess.Popen(
        [
            "systemd-socket-activate", "--listen", str(path),
            "-E", f"UMOCKDEV_DIR={testbed.get_root_dir()}", "-E", "LD_PRELOAD",
            sys.executable, "-m", "custody", "--home", str(settings.home), "daemon",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: path.is_socket(), "systemd-socket-activate to listen")
        path.chmod(0o666)  # what the unit's SocketMode does (0660 with SocketGroup in production)
        assert not (settings.home / "run" / "status.json").exists()  # nothing started yet
        clerk = custody_as(CLERK, settings.home, path, "whoami", "--json")  # starts the daemon
        assert clerk.returncode == 0, clerk.stderr
        me = json.loads(clerk.stdout)
        assert me["via"] == "daemon" and me["user"] == CLERK and me["roles"] == ["clerk"]
        # A daemon that answers says it runs: `status` through it never reports it not running
        # (it once wrote its status only after the rest of its start-up).
        assert json.loads((settings.home / "run" / "status.json").read_text())["pid"] == activator.pid
        listed = custody_as(CLERK, settings.home, path, "ls", "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
    finally:
        activator.send_signal(signal.SIGTERM)
        output = activator.communicate(timeout=120)[0]
    assert activator.returncode == 0, output
    assert path.is_socket()  # systemd's socket: the daemon leaves it in place
    shutil.rmtree(folder)


# -- ingest of a client's own files through the socket ------------------------------


def _items_and_events(settings: Settings) -> tuple[list, list]:
    with Vault(settings, "root") as vault:
        return vault.list_items(ItemFilter()), vault.events()


def test_a_clerk_ingests_their_own_files_read_with_their_own_rights_and_a_user_without_the_role_cannot(
    served, tmp_path
):
    settings, server = served
    folder = Path(tempfile.mkdtemp(prefix="custody-upload-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        clip = folder / "CLIP0001.MP4"
        clip.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks, the last one short
        clerk_uid = pwd.getpwnam(CLERK).pw_uid
        os.chown(clip, clerk_uid, -1)
        clip.chmod(0o600)  # the clerk's own file, private to them
        secret = folder / "secret.bin"
        secret.write_bytes(b"root's, not the clerk's")
        secret.chmod(0o600)
        result = custody_as(
            CLERK, settings.home, server.path, "ingest", str(folder), "--officer", "031245", "--json"
        )  # fmt: skip
        assert result.returncode == 1, result.stderr  # one file failed
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(lines) == 3, result.stderr
        stored, secret_file, summary = lines
        assert stored["status"] == "new" and stored["size"] == clip.stat().st_size
        # The folder is read by the clerk's process, as the clerk: root's file is refused to them,
        # though the daemon is root.
        assert secret_file["status"] == "error" and "permission denied" in secret_file["message"]
        assert summary["summary"]["new"] == 1 and summary["summary"]["failed"] == 1

        items, events = _items_and_events(settings)
        [item] = items
        assert item.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest() == stored["sha256"]
        assert item.ingested_by == CLERK and item.source == "upload" and item.tags["officer"] == "031245"
        ingest = next(e for e in events if e.action == "ingest")
        assert ingest.actor == CLERK and ingest.details["path"] == str(clip)
        failed = next(e for e in events if e.action == "ingest-failed")
        assert failed.actor == CLERK and failed.details["path"] == str(secret)

        refused = custody_as(NO_ROLE, settings.home, server.path, "ingest", str(folder))
        assert refused.returncode == 13 and "may not ingest" in refused.stderr
        items, events = _items_and_events(settings)
        assert len(items) == 1
        assert events[-1].action == "denied" and events[-1].details["action"] == "ingest"
        assert events[-1].details["uid"] == pwd.getpwnam(NO_ROLE).pw_uid
    finally:
        shutil.rmtree(folder)


def _announce(path: str, size: int) -> dict:
    return {"path_hex": path.encode().hex(), "size": size, "mtime_ns": 0}


def test_an_upload_abandoned_short_cut_off_stalled_or_misframed_stores_nothing_and_others_are_served(served):
    settings, server = served
    staging = settings.home / "objects" / "staging"

    def send_then(finish) -> dict:
        """One file announced as 3 MiB, 1 MiB of it sent, then ``finish(sending)``; the file's answer."""

        answers = []

        def converse(sending: api.Sending) -> None:
            sending.message(_announce("/clips/A.MP4", 3 << 20))
            sending.chunk(os.urandom(1 << 20))
            finish(sending)
            answers.append(sending.answer())
            sending.message({"end": True})

        api.upload(server.path, "ingest", {}, converse)
        return answers[0]

    # The client gives up (its file changed): nothing kept, the reason recorded, the session goes on.
    abandoned = send_then(
        lambda sending: sending.abandon("/clips/A.MP4 was modified while it was being read")
    )
    assert abandoned["status"] == "error" and "modified while" in abandoned["message"]
    # The client sends fewer bytes than it announced.
    short = send_then(lambda sending: sending.end())
    assert short["status"] == "error" and "sent 1048576 bytes, announced 3145728" in short["message"]

    # The client goes away, stalls, or sends a chunk larger than the limit, part way through a file.
    def raw_upload(then: bytes, close: bool) -> bytes:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(server.path))
            client.sendall(b'{"op": "ingest", "args": {}}\n')
            reader = client.makefile("rb")
            assert json.loads(reader.readline())["send"] is True
            client.sendall(json.dumps(_announce("/clips/B.MP4", 3 << 20)).encode() + b"\n")
            client.sendall(struct.pack(">I", 65536) + os.urandom(65536) + then)
            if close:
                return b""
            return reader.readline()

    assert raw_upload(b"", close=True) == b""
    stalled = json.loads(raw_upload(b"", close=False))  # the server's timeout is 2 s
    assert not stalled["ok"] and "upload ended" in stalled["error"]
    misframed = json.loads(raw_upload(struct.pack(">I", 64 << 20), close=False))
    assert not misframed["ok"] and "a chunk of 67108864 bytes" in misframed["error"]

    assert _exchange(server.path, b'{"op": "whoami"}\n')["ok"]  # still serving

    def failures() -> list[str]:
        return [e.details["reason"] for e in _items_and_events(settings)[1] if e.action == "ingest-failed"]

    # The closed client's thread notices on its next read: wait for its failure to be recorded.
    wait_for(lambda: sum("upload cut off" in reason for reason in failures()) == 3, "the cut-off uploads")
    assert any("modified while" in reason for reason in failures())
    assert list(staging.iterdir()) == []
    assert _items_and_events(settings)[0] == []


def test_a_copy_of_an_item_sent_through_the_socket_is_recognised_before_anything_is_staged(served):
    """Issue 18: a duplicate costs no vault writes, through the socket too, and the daemon takes no
    client's word for a content: a file up to READ_WHOLE_AT_MOST is received into memory, hashed
    there, and recorded as a duplicate with nothing staged, while its bytes are still coming."""
    settings, server = served
    staging = settings.home / "objects" / "staging"
    content = os.urandom(2 << 20)
    answers, staged_mid_transfer = [], []

    def send(name: str, pause: bool) -> None:
        def converse(sending: api.Sending) -> None:
            sending.message(_announce(f"/photos/{name}", len(content)))
            sending.chunk(content[: 1 << 20])
            if pause:  # (time for a staging file to appear, were the bytes sealed as they come)
                time.sleep(0.3)
                staged_mid_transfer.append(sorted(p.name for p in staging.iterdir()))
            sending.chunk(content[1 << 20 :])
            sending.end()
            answers.append(sending.answer())
            sending.message({"end": True})

        api.upload(server.path, "ingest", {}, converse)

    send("IMG0001.JPG", pause=False)
    send("COPY.JPG", pause=True)
    first, copy = answers
    assert first["status"] == "new"
    assert copy["status"] == "duplicate" and copy["id"] == first["id"]
    assert staged_mid_transfer == [[]]
    items, events = _items_and_events(settings)
    assert len(items) == 1 and [e.action for e in events].count("duplicate-seen") == 1


def test_a_large_file_of_an_items_size_sent_through_the_socket_is_hashed_before_anything_is_written(served):
    """Beyond what the daemon receives into memory: a file of an item's size is hashed as it
    comes, nothing staged; a copy is a duplicate, another file is asked for again and then sealed."""
    settings, server = served
    staging = settings.home / "objects" / "staging"
    size = READ_WHOLE_AT_MOST + (1 << 20)
    content, other = os.urandom(size), os.urandom(size)
    staged_mid_transfer = []

    def send(name: str, data: bytes, again: bool = False) -> dict:
        answers = []

        def converse(sending: api.Sending) -> None:
            sending.message(_announce(f"/video/{name}", len(data)) | ({"again": True} if again else {}))
            for at in range(0, len(data), 1 << 20):
                sending.chunk(data[at : at + (1 << 20)])
                if at == 2 << 20:
                    time.sleep(0.3)  # (time for a staging file to appear, were the bytes sealed)
                    staged_mid_transfer.append(sorted(p.name for p in staging.iterdir()))
            sending.end()
            answers.append(sending.answer())
            sending.message({"end": True})

        api.upload(server.path, "ingest", {}, converse)
        return answers[0]

    first = send("CLIP0001.MP4", content)
    assert first["status"] == "new"
    copy = send("COPY.MP4", content)
    assert copy["status"] == "duplicate" and copy["id"] == first["id"]
    resend = send("CLIP0002.MP4", other)
    assert resend == {"status": "resend", "name": "/video/CLIP0002.MP4"}
    assert staged_mid_transfer[1:] == [[], []]  # the copy, then the new file: hashed, not sealed
    again = send("CLIP0002.MP4", other, again=True)
    assert again["status"] == "new" and again["sha256"] == hashlib.sha256(other).hexdigest()
    items, events = _items_and_events(settings)
    assert len(items) == 2 and [e.action for e in events].count("duplicate-seen") == 1
    assert list(staging.iterdir()) == []
