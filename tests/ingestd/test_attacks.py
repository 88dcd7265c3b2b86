"""Real users with real roles attack the root daemon through its socket: paths it would open for
them, stalled connections, an upload that lies about its size, a vault disk that fills up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from custody.ingestd import api
from custody.operations import OPERATIONS, request_fields
from tests.docking import DaemonProcess, wait_for
from tests.ingestd.served import CLERK, CUSTODIAN, GROUP, NO_ROLE
from tests.localusers import SYSTEM_PYTHON, custody_as, run_as
from tests.vault.test_disc_export import small_filesystem

pytestmark = pytest.mark.slow


def test_no_operation_takes_a_path_and_one_given_anyway_is_refused_unopened(served_vault):
    """Every operation the socket serves takes a request of plain values (no field is a path: the
    daemon never opens a path a client names); a request that adds a path under any name is
    refused before anything runs, and the named folder never appears."""
    _home, socket_path, _outbox, _daemon = served_vault
    served = sorted(OPERATIONS)  # (each answers below: a refusal naming the field, not "unknown request")
    assert len(served) >= 30
    tried = 0
    for name in served:
        assert all(kind in PLAIN for _field, kind, _required in request_fields(OPERATIONS[name].request)), (
            name
        )
        field = ("report_dir", "out", "path", "iso", "against_file")[tried % 5]
        target = Path(tempfile.gettempdir()) / f"custody-attack-{os.getpid()}-{tried}" / "reports"
        time.sleep(0.1)  # (within the per-user rate limit, which has its own test)
        with pytest.raises(api.ApiError) as refused:
            api.call(socket_path, name, {field: str(target)})
        assert f"no field '{field}'" in refused.value.message, (name, field)
        assert not target.exists() and not target.parent.exists(), (name, field)
        tried += 1
    assert tried >= 30


PLAIN = {
    "text",
    "text or null",
    "a whole number",
    "a whole number or null",
    "true or false",
    "a list of text",
}


def test_a_custodian_cannot_make_the_daemon_write_through_a_planted_link(served_vault, tmp_path):
    home, socket_path, _outbox, _daemon = served_vault
    master = home / "keys" / "master.key"
    before = master.read_bytes()
    trap = Path(tempfile.mkdtemp(prefix="custody-trap-", dir="/tmp"))
    trap.chmod(0o777)
    try:
        today = datetime.now(UTC).date().isoformat()
        link = trap / f".retention-plan-{today}.json.partial"
        link.symlink_to(master)
        for spelling in (["--report-dir", str(trap)], [f"--report-dir={trap}"]):
            result = custody_as(CUSTODIAN, home, socket_path, "retention", "plan", *spelling)
            assert result.returncode == 2, result.stderr
            assert "names a file on the vault's machine" in result.stderr
            assert "Traceback" not in result.stderr
        assert master.read_bytes() == before
        assert sorted(p.name for p in trap.iterdir()) == [link.name]
        # The vault's own user in-process: a folder someone else owns is refused, whatever is in it.
        os.chown(trap, 65534, 65534)
        from custody.retention.plan import write_report
        from custody.vault.private_files import UnsafeFolder

        with pytest.raises(UnsafeFolder, match="belongs to uid 65534"):
            write_report({"evaluated_at": today}, trap)
        assert master.read_bytes() == before
    finally:
        shutil.rmtree(trap)


def test_a_link_planted_in_the_daemons_own_folder_is_replaced_never_followed(tmp_path):
    from custody.vault.private_files import write_private_file

    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "master.key"
    victim.write_bytes(b"secret")
    (folder / ".status.json.partial").symlink_to(victim)
    (folder / "status.json").symlink_to(victim)
    write_private_file(folder, "status.json", b"{}")
    assert victim.read_bytes() == b"secret"
    assert not (folder / "status.json").is_symlink() and (folder / "status.json").read_bytes() == b"{}"


STALLER = """
import socket, sys, time
held = []
for _ in range(int(sys.argv[2])):
    connection = socket.socket(socket.AF_UNIX)
    connection.connect(sys.argv[1])
    held.append(connection)
print("holding", flush=True)
time.sleep(float(sys.argv[3]))
"""


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_stalled_connections_of_one_user_cannot_exhaust_the_daemon(served_vault):
    home, socket_path, _outbox, daemon = served_vault
    assert custody_as(CLERK, home, socket_path, "ls", "--json").returncode == 0
    baseline = _threads(daemon.process.pid)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    staller = subprocess.Popen(
        ["setpriv", f"--reuid={NO_ROLE}", f"--regid={NO_ROLE}", "--init-groups",
         SYSTEM_PYTHON, "-I", "-c", STALLER, str(socket_path), "400", "8"],
        env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert staller.stdout.readline().strip() == "holding", staller.stderr.read()
        time.sleep(0.5)
        # 16 served for that user at most (the default cap); the other 384 were refused at once.
        assert _threads(daemon.process.pid) <= baseline + 16 + 6  # (not 400: a few for the daemon's own work)
        served = custody_as(CLERK, home, socket_path, "ls", "--json")  # someone else is still served
        assert served.returncode == 0, served.stderr
    finally:
        staller.kill()
        staller.wait()
    assert "too many open connections" in daemon.log()


LIAR = """
import json, socket, sys
path, announced, sent = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
connection = socket.socket(socket.AF_UNIX)
connection.connect(path)
reader = connection.makefile("rb")
def line(message):
    connection.sendall(json.dumps(message).encode() + b"\\n")
line({"op": "ingest", "args": {}})
assert json.loads(reader.readline())["send"]
line({"path_hex": b"/home/clerk/lie.mp4".hex(), "size": announced, "mtime_ns": 0})
connection.sendall(len(sent).to_bytes(4, "big") + sent + (0).to_bytes(4, "big"))
print(reader.readline().decode().strip())
line({"end": True})
print(reader.readline().decode().strip())
"""


@pytest.fixture
def daemon_on_small_disk(tmp_path, testbed, users):
    """A daemon whose vault is on a 96 MB filesystem (16 MB kept in reserve), serving the group's
    clerk on its socket and pulling a watch folder."""
    with small_filesystem(tmp_path / "disk", 96 << 20) as disk:
        home = disk / "vault"
        folder = Path(tempfile.mkdtemp(prefix="custody-disk-", dir="/tmp"))
        folder.chmod(0o755)
        drop = tmp_path / "drop"
        drop.mkdir()
        run = subprocess.run(
            [_python(), "-m", "custody", "--home", str(home), "init"], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        (home / "custody.toml").write_text(
            f"[vault]\nmin_free_mb = 16\n"
            f'[dock]\nwatch_folders = ["{drop}"]\nwatch_settle_seconds = 0.5\n'
            f'[access]\nsocket = "{folder}/api.sock"\nsocket_group = "{GROUP}"\nmax_upload_mb = 150\n'
            f'[access.roles]\nclerk = ["{CLERK}"]\n'
        )
        daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
        try:
            yield home, folder / "api.sock", drop, daemon
        finally:
            daemon.stop()
            shutil.rmtree(folder)


def _python() -> str:
    import sys

    return sys.executable


def _liar(socket_path: Path, announced: int, sent: bytes) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    result = subprocess.run(
        ["setpriv", f"--reuid={CLERK}", f"--regid={CLERK}", "--init-groups",
         SYSTEM_PYTHON, "-I", "-c", LIAR, str(socket_path), str(announced), sent.decode()],
        env=env, cwd="/", capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _free(path: Path) -> int:
    facts = os.statvfs(path)
    return facts.f_bavail * facts.f_frsize


def test_an_upload_that_lies_about_its_size_fails_alone_and_leaks_no_space(daemon_on_small_disk):
    home, socket_path, _drop, daemon = daemon_on_small_disk
    free_before = _free(home)
    # More than the disk holds: refused before a byte is kept (it stopped the daemon before).
    [answer, final] = _liar(socket_path, 120 << 20, b"12345")
    assert answer["result"]["status"] == "error" and "vault disk full" in answer["result"]["message"]
    assert final["ok"] and final["result"]["failed"] == 1
    # More than one upload may bring ([access] max_upload_mb = 150).
    [answer, _final] = _liar(socket_path, 151 << 20, b"12345")
    assert "more than the 150 MB one upload may bring" in answer["result"]["message"]
    # Within both, but a lie: 20 MB announced (and allocated), 5 bytes sent.
    [answer, _final] = _liar(socket_path, 20 << 20, b"12345")
    assert "sent 5 bytes, announced 20971520" in answer["result"]["message"]
    assert list((home / "objects" / "staging").iterdir()) == []
    assert _free(home) >= free_before - (1 << 20)  # (the catalog grew by the audit events)
    assert daemon.process.poll() is None
    status = custody_as(CLERK, home, socket_path, "status", "--json")
    assert status.returncode == 0, status.stderr


def test_a_full_vault_disk_pauses_pulls_and_they_resume_when_space_returns(daemon_on_small_disk):
    home, socket_path, drop, daemon = daemon_on_small_disk
    filler = home.parent / "filler"
    with open(filler, "wb") as sink:  # leave 8 MB: below the 16 MB reserve
        sink.truncate(0)
        os.posix_fallocate(sink.fileno(), 0, _free(home) - (8 << 20))
    (drop / "CLIP0001.MP4").write_bytes(os.urandom(2 << 20))

    def waiting() -> bool:
        return any(
            s.get("state") == "waiting: vault disk full" for s in (daemon.status() or {}).get("watch", [])
        )

    wait_for(waiting, "the pull to wait for space")
    status = custody_as(CLERK, home, socket_path, "status")
    assert status.returncode == 0 and "vault disk full" in status.stdout, status.stdout + status.stderr
    assert json.loads(custody_as(CLERK, home, socket_path, "status", "--json").stdout)["vault_disk"]["full"]
    assert (drop / "CLIP0001.MP4").exists()  # nothing is taken from the source that is not stored
    filler.unlink()

    def stored() -> bool:
        listing = custody_as(CLERK, home, socket_path, "ls", "--json")
        return listing.returncode == 0 and len(json.loads(listing.stdout)) == 1

    wait_for(stored, "the pull to resume once space returned")
    assert daemon.process.poll() is None
    assert "pulls paused" in daemon.log() and "pulls resume" in daemon.log()


def test_connection_caps_are_config_keys_that_name_themselves(tmp_path):
    from custody.config import ConfigError, settings_from_dict

    for key in ("max_connections_per_user", "max_connections", "max_upload_mb"):
        with pytest.raises(ConfigError, match=rf"access\.{key}: must be more than 0"):
            settings_from_dict({"access": {key: 0}}, home=tmp_path)
    with pytest.raises(ConfigError, match=r"vault\.min_free_mb: must be 0 or more"):
        settings_from_dict({"vault": {"min_free_mb": -1}}, home=tmp_path)


def test_a_role_given_in_the_config_takes_effect_on_sighup(served_vault):
    """Role changes in [access] needed a restart before; a SIGHUP now does."""
    import signal

    home, socket_path, _outbox, daemon = served_vault
    refused = custody_as(NO_ROLE, home, socket_path, "ls", "--json")
    assert refused.returncode == 13, refused.stderr
    config = home / "custody.toml"
    config.write_text(config.read_text().replace("auditor = [", f'auditor = ["{NO_ROLE}", ', 1))
    daemon.process.send_signal(signal.SIGHUP)

    def promoted() -> bool:
        answer = custody_as(NO_ROLE, home, socket_path, "whoami", "--json")
        return answer.returncode == 0 and "auditor" in json.loads(answer.stdout)["roles"]

    wait_for(promoted, "the daemon to take the new role")
    assert custody_as(NO_ROLE, home, socket_path, "ls", "--json").returncode == 0
    assert "config reloaded" in daemon.log()


def test_a_clerk_reaches_the_stations_vault_and_hears_plain_errors(served_vault, tmp_path):
    """A clerk whose `custody` found the daemon's socket was told to create a vault of their own;
    an extract through the daemon into a folder the clerk may not write ended in a traceback."""
    from tests.localusers import run_as

    home, socket_path, _outbox, _daemon = served_vault
    # No --home, no CUSTODY_HOME: the daemon serving the station's vault answers.
    found = run_as(CLERK, SYSTEM_PYTHON, "-m", "custody", "ls", "--json", socket_path=socket_path)
    assert found.returncode == 0, found.stderr
    assert [item["id"] for item in json.loads(found.stdout)][:2] == ["EV-000001", "EV-000002"]
    in_utc = custody_as(CLERK, home, socket_path, "--utc", "ls")  # (the request carries it to the daemon)
    assert in_utc.returncode == 0 and " UTC" in in_utc.stdout, in_utc.stderr
    closed = Path(tempfile.mkdtemp(prefix="custody-closed-", dir="/tmp"))
    closed.chmod(0o755)  # root's: the clerk may not write here
    try:
        refused = custody_as(CLERK, home, socket_path, "extract", "EV-000001", "--out", str(closed / "x.mp4"))
        assert refused.returncode == 5 and "Traceback" not in refused.stderr, refused.stderr
        assert refused.stderr.strip() == (
            f"custody: cannot write {closed / 'x.mp4'}: permission denied: choose a folder you may write to"
        )
        missing = custody_as(CLERK, home, socket_path, "extract", "EV-000001", "--out", "/nonexistent/x.mp4")
        assert missing.returncode == 5 and "no such folder: create it first" in missing.stderr
    finally:
        shutil.rmtree(closed)


UPLOAD_NAMING = """
import json, os, sys
from pathlib import Path
from custody.ingestd import api
socket_path, named, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
answers = []
def converse(sending):
    sending.message({"path_hex": os.fsencode(named).hex(), "size": size, "mtime_ns": 0})
    sending.chunk(os.urandom(size))
    sending.end()
    answers.append(sending.answer())
    sending.message({"end": True})
api.upload(Path(socket_path), "ingest", {"officer": None, "recorder": None}, converse)
print(json.dumps(answers[0]))
"""


def test_an_upload_naming_a_file_only_root_may_read_is_judged_by_the_bytes_sent(served_vault, footage):
    """The name a client gives an uploaded file is for the record: the root daemon never opens it.
    (Recognising duplicates before sealing once hashed the named path: a clerk naming a root-only
    copy of an item learned that it was one, and the bytes sent were never read.)"""
    _home, socket_path, _outbox, _daemon = served_vault
    secret = Path(tempfile.mkdtemp(prefix="custody-rootonly-", dir="/tmp"))  # 0700, root's
    try:
        held = secret / "held.mp4"
        shutil.copyfile(sorted(footage.glob("CLIP*.MP4"))[0], held)  # the content of an item
        size = held.stat().st_size
        assert size <= api.STREAM_CHUNK
        said = run_as(CLERK, SYSTEM_PYTHON, "-c", UPLOAD_NAMING, str(socket_path), str(held), str(size))
        assert said.returncode == 0, said.stderr
        answer = json.loads(said.stdout)
        assert answer["status"] == "new", answer  # the bytes sent: random, a new item
    finally:
        shutil.rmtree(secret)
