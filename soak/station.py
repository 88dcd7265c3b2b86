"""The station under test: a vault, its daemon (restarted as systemd would after a kill), real local
users with roles, and an S3 server on loopback behind a fault-injecting proxy."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.docking import host
from tests.localusers import local_users, pythonpath_for_others, run_as
from tests.s3 import FaultyProxy, S3Server, local_s3_server

GROUP = "cst-soak"
CLERK, CUSTODIAN, AUDITOR = "cst-soak-clerk", "cst-soak-custodian", "cst-soak-auditor"
CUSTODIAN2 = "cst-soak-custodian2"  # a disposition's second person
WEB = "cst-soak-web"  # custody web's service user
USERS = (CLERK, CUSTODIAN, CUSTODIAN2, AUDITOR, WEB)
WEB_PASSWORD = "soak horse battery staple"
RESTART_DELAY_SECONDS = 2.0  # custody-daemon.service: RestartSec=2
OFFICERS = ("031245", "031246", "031247", "031248")
VAULT_DISK_MB = 4096
RESERVE_MB = 256  # [vault] min_free_mb's default
ORGANISATION = "Soak County Public Security Bureau"


@dataclass(frozen=True)
class Recorder:
    serial: str
    officer: str
    filesystem: str  # vfat or exfat
    profile: str  # soak-keep, soak-wipe (after_vault) or soak-wipe-replica (after_replica)
    clock_off: bool = False

    @property
    def wipes(self) -> bool:
        return self.profile.startswith("soak-wipe")


RECORDERS = (
    Recorder("BWC1001", OFFICERS[0], "vfat", "soak-wipe"),
    Recorder("BWC1002", OFFICERS[1], "exfat", "soak-keep"),
    Recorder("BWC1003", OFFICERS[2], "vfat", "soak-wipe-replica"),
    Recorder("BWC1004", OFFICERS[3], "vfat", "soak-keep", clock_off=True),
)
DROP_SERIAL = "DROP01"  # in dropped files' names; not a registered recorder: the name credits the officer


def config_text(run: Path, drops: Path, s3: S3Server, proxy: FaultyProxy, bucket: str) -> str:
    profile = (
        'filename_pattern = "^(?P<recorder>[A-Za-z0-9]+)_(?P<officer>[A-Za-z0-9]+)_(?P<start>\\\\d{14})"\n'
        'start_format = "%Y%m%d%H%M%S"\nclock_timezone = "Asia/Shanghai"\n'
    )
    return (
        f'[access]\nsocket = "{run}/api.sock"\nsocket_group = "{GROUP}"\n'
        "max_requests_per_second = 200.0\n"
        f'[access.roles]\nclerk = ["{CLERK}"]\ncustodian = ["{CUSTODIAN}", "{CUSTODIAN2}"]\nauditor = ["{AUDITOR}"]\n'
        f'[station]\norganisation = "{ORGANISATION}"\n'
        f'[web]\nservice_user = "{WEB}"\nsession_minutes = 120\n'
        f'[dock]\nwatch_folders = ["{drops}"]\nwatch_settle_seconds = 1.0\nwatch_profile = "soak-keep"\n'
        # Recorder clocks trusted 1,000 days back: old footage found in a drawer (up to ~2.7 years)
        # keeps its recording time, so some of it is past its two years; a clock 3+ years off is
        # still suspect.
        "suspect_past_days = 1000\n"
        f"[profiles.soak-keep]\n{profile}"
        f'[profiles.soak-wipe]\n{profile}wipe = "after_vault"\n'
        f'[profiles.soak-wipe-replica]\n{profile}wipe = "after_replica"\n'
        "[media]\nworkers = 1\n"
        + s3.target_toml(bucket, verify="download").replace(s3.endpoint, proxy.endpoint)
        + "timeout_seconds = 10.0\npart_size_mb = 5\n"
    )


class Station:
    """The vault home, the S3 server and proxy, and the daemon; ``custody(...)`` runs the real
    command as root, ``as_user(user, ...)`` as a local user through the socket."""

    def __init__(self, work: Path, testbed, python_path: str | None) -> None:
        self.work = work
        self.disk = work / "vault-disk"  # the vault's own filesystem (an ext4 image), to fill up
        self.home = self.disk / "vault"
        self.run = work / "run"
        self.drops = work / "drops"
        self.testbed = testbed
        self.python_path = python_path  # a broken build's copy of custody, first on the path
        self.daemon: subprocess.Popen | None = None
        self.daemon_starts: list[float] = []
        self.restarting = threading.Lock()
        self.stopping = False  # (the end: a daemon stopped is not restarted)
        self.unbidden_exits: list[int] = []  # exit codes of daemons that died by themselves
        self._stack = contextlib.ExitStack()

    # -- set-up ---------------------------------------------------------------------------------

    def __enter__(self) -> Station:
        for folder in (self.run, self.drops, self.disk):
            folder.mkdir(parents=True)
            folder.chmod(0o755)
        image = self.work / "vault-disk.img"
        host("truncate", "-s", f"{VAULT_DISK_MB}M", image)
        host("mkfs.ext4", "-q", image)
        host("mount", "-o", "loop", image, self.disk)
        self._stack.callback(lambda: host("umount", "-l", self.disk))
        self._stack.enter_context(local_users(GROUP, USERS))
        endpoint = self._stack.enter_context(local_s3_server())
        self.s3 = S3Server(endpoint, "test", "test")
        self.proxy = FaultyProxy(endpoint, stall_seconds=12.0)
        self._stack.callback(self.proxy.close)
        self.bucket = self.s3.new_bucket(object_lock=True)
        self.custody("init")
        (self.home / "custody.toml").write_text(
            config_text(self.run, self.drops, self.s3, self.proxy, self.bucket), encoding="utf-8"
        )
        for badge in OFFICERS:
            self.custody("officer", "add", badge, "--name", f"Officer {badge}")
        for recorder in RECORDERS:
            self.custody("recorder", "add", recorder.serial, "--officer", recorder.officer, "--from", "2015-01-01",
                         "--profile", recorder.profile)  # fmt: skip
        self.start_daemon()
        self._start_web()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_daemon()
        self._stack.close()

    # -- commands -------------------------------------------------------------------------------

    def env(self) -> dict:
        env = dict(os.environ)
        env["UMOCKDEV_DIR"] = self.testbed.get_root_dir()
        env["CUSTODY_SOCKET"] = str(self.run / "api.sock")
        env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_CONFIG_FILE="/nonexistent",
                   AWS_SHARED_CREDENTIALS_FILE="/nonexistent")  # fmt: skip
        env.pop("AWS_PROFILE", None)
        # The daemon and root's commands run the checkout the soak runs from (or the broken build),
        # never a custody installed elsewhere in the interpreter's path.
        env["PYTHONPATH"] = self.python_path or str(Path(__file__).resolve().parents[1])
        return env

    def custody(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """The real command as root (through the daemon when it serves)."""
        result = subprocess.run(
            [sys.executable, "-m", "custody", "--home", str(self.home), *args],
            capture_output=True, text=True, env=self.env(), cwd=self.work, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(
                f"custody {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def custody_json(self, *args: str) -> object:
        return json.loads(self.custody(*args, "--json").stdout)

    def items(self) -> list[dict]:
        """Every item in the vault (``ls --json`` as root)."""
        return self.custody_json("ls")  # type: ignore[return-value]

    def vault_hashes(self) -> set[str]:
        return {item["sha256"] for item in self.items()}

    def others_path(self) -> str:
        """PYTHONPATH for custody run by the people and the web service: the broken build's copy
        when one is tested (what a person's own process does, writing a file, is the build's too)."""
        return self.python_path or pythonpath_for_others()

    def bucket_hashes(self) -> set[str]:
        """The objects the off-site bucket holds (their names: the originals' SHA-256), read from
        the S3 server itself, not through the proxy."""
        names = set()
        for page in self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            names.update(
                o["Key"].rsplit("/", 1)[-1]
                for o in page.get("Contents", [])
                if "/objects/sha256/" in o["Key"]
            )
        return names

    def as_user(self, user: str, *args: str) -> subprocess.CompletedProcess:
        """The real command as a local user, through the socket."""
        return run_as(user, "/usr/bin/python3", "-m", "custody", "--home", str(self.home), *args,
                      socket_path=self.run / "api.sock", python_path=self.others_path())  # fmt: skip

    # -- the daemon -----------------------------------------------------------------------------

    def start_daemon(self) -> None:
        log = open(self.work / "daemon.log", "ab")  # noqa: SIM115 (the daemon's own, for its life)
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "custody", "--home", str(self.home), "daemon"],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.work,
            start_new_session=True,  # (a Ctrl-C at the terminal is the soak's to handle, not the daemon's)
        )  # fmt: skip
        log.close()
        self.daemon_starts.append(time.monotonic())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited {self.daemon.returncode} at start; see daemon.log")
            status = self.status_file()
            if status and status.get("pid") == self.daemon.pid and status.get("running"):
                return
            time.sleep(0.1)
        raise RuntimeError("the daemon did not start within 120 s")

    def restart_if_died(self) -> bool:
        """systemd's Restart=on-failure: a daemon that exited by itself (not killed by a fault, whose
        restart is the fault's, nor stopped at the end) is started again after the restart delay,
        and its exit recorded in ``unbidden_exits``; return whether it was."""
        if self.stopping or not self.restarting.acquire(blocking=False):
            return False
        try:
            if self.daemon is None or self.daemon.poll() is None:
                return False
            self.unbidden_exits.append(self.daemon.returncode)
            time.sleep(RESTART_DELAY_SECONDS)
            self.start_daemon()
            return True
        finally:
            self.restarting.release()

    def kill_daemon(self) -> None:
        """SIGKILL, then start again after systemd's restart delay."""
        with self.restarting:
            if self.daemon is not None and self.daemon.poll() is None:
                self.daemon.send_signal(signal.SIGKILL)
                self.daemon.wait()
            time.sleep(RESTART_DELAY_SECONDS)
            self.start_daemon()

    def _start_web(self) -> None:
        """custody web as its own service user on a free loopback port, a clerk's account on it."""
        import pwd
        import socket

        from custody.ingestd import api

        api.call(
            self.run / "api.sock", "account_set", {"login": CLERK, "password": WEB_PASSWORD, "new": True}
        )
        state = self.work / "web-state"
        state.mkdir(mode=0o700)
        user = pwd.getpwnam(WEB)
        os.chown(state, user.pw_uid, user.pw_gid)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        env.update(PYTHONPATH=self.others_path(), HOME="/", CUSTODY_SOCKET=str(self.run / "api.sock"))
        log = open(self.work / "web.log", "ab")  # noqa: SIM115 (the web service's own, for its life)
        self.web = subprocess.Popen(
            ["setpriv", f"--reuid={WEB}", f"--regid={WEB}", "--init-groups", "/usr/bin/python3", "-m", "custody",
             "web", "--port", str(port), "--secret-file", str(state / "session.key")],
            env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self._stack.callback(self.web.terminate)
        self.web_base = f"http://127.0.0.1:{port}"
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.web_base}/sign-in", timeout=2)
                return
            except httpx.TransportError:
                if self.web.poll() is not None:
                    raise RuntimeError("custody web exited at start; see web.log") from None
                time.sleep(0.2)
        raise RuntimeError("custody web did not start within 60 s")

    def stop_daemon(self) -> None:
        self.stopping = True
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=180)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()

    def fill_disk(self, below_reserve_mb: int) -> Path:
        """Fill the vault's disk to ``below_reserve_mb`` under its reserve ([vault] min_free_mb)
        with a ballast file beside the vault; return it (deleting it frees the disk again)."""
        facts = os.statvfs(self.disk)
        free = facts.f_bavail * facts.f_frsize
        ballast = self.disk / "ballast"
        size = max(free - (RESERVE_MB - below_reserve_mb) * 2**20, 0)
        host("fallocate", "-l", str(size), ballast)
        return ballast

    def status_file(self) -> dict | None:
        try:
            return json.loads((self.home / "run" / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def daemon_pid(self) -> int | None:
        return self.daemon.pid if self.daemon is not None and self.daemon.poll() is None else None


def readable_copy_of_custody(source: Path, into: Path) -> str:
    """PYTHONPATH for a copy of ``source`` (a custody package) that every user may read."""
    shutil.copytree(source, into / "custody", ignore=shutil.ignore_patterns("__pycache__"))
    for folder, _dirs, files in os.walk(into):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    others = pythonpath_for_others().split(":")
    return ":".join([str(into), *others[1:]])
