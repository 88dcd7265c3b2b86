"""API socket benchmarks: the same commands through the daemon's socket and in-process.

- ls:      `custody ls --json` over 10,000 items, as a clerk through the socket
           vs the vault's own user in-process (goal: at most 1.2x its time, issue 17)
- extract: a 1 GiB item, as a clerk through the socket (the clerk's process
           writes the file) vs in-process (goal: at least 0.8x its throughput)
- ingest:  a 1 GiB file, as a clerk through the socket (the clerk's process
           reads and streams it) vs the vault's own user in-process, each run
           twice (new, then duplicate: the same reading, sealing and read-back),
           best of two (goal, ours: at least 0.8x its throughput)

Both sides run the same interpreter (the system's python3 with custody on
PYTHONPATH: the venv's interpreter may live where other users cannot run it).
Run as root under umockdev-wrapper (make bench): it creates a local user and
group for the clerk, and removes them after.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from custody.vault.catalog import Catalog  # noqa: E402
from custody.vault.timestamps import utc_now  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
SYSTEM_PYTHON = "/usr/bin/python3"
USER, GROUP = "custody-bench", "custody-bench"
ITEMS = 10_000


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _env(socket_path: Path | None) -> dict:
    """The commands' environment: through the socket at ``socket_path``, or (None) in-process.

    The vault's own user goes through a serving daemon too, unless its socket is
    elsewhere: in-process runs point CUSTODY_SOCKET where nothing listens.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "CUSTODY_SOCKET")}
    env.update(PYTHONPATH=f"{REPO}:{SITE_PACKAGES}")
    env["CUSTODY_SOCKET"] = str(socket_path) if socket_path else "/nonexistent/custody-bench.sock"
    return env


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd="/", capture_output=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}: {result.stderr.decode()[-500:]}")
    return elapsed


def add_items(home: Path, count: int) -> None:
    """Catalog rows for ``count`` tagged items (ls reads the catalog only)."""
    catalog = Catalog(home / "catalog.db")
    now = utc_now()
    with catalog.transaction():
        catalog.db.conn.executemany(
            "INSERT INTO items (sha256, size, original_name, source_path, source_path_bytes, source, "
            "ingested_at, ingested_by, key_id) VALUES (?, 1000, ?, ?, x'', 'bench', ?, 'bench', 'k')",
            ((f"{n:064x}", f"F{n}.MP4", f"DCIM/F{n}.MP4", now) for n in range(1, count + 1)),
        )
        catalog.db.conn.executemany(
            "INSERT INTO tags (item, name, value, set_at, set_by, audit_seq) "
            "SELECT id, 'case', 'BENCH-' || (id % 50), ?, 'bench', 0 FROM items WHERE id > ?",
            [(now, 0)],
        )
    catalog.close()


def bench_access(workdir: Path) -> bool:
    subprocess.run(["userdel", "-f", USER], capture_output=True)
    subprocess.run(["groupdel", GROUP], capture_output=True)
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", USER], check=True
    )
    workdir = workdir.resolve()
    home = workdir / "access-home"  # the vault's, 0700 inside the bench's 0700 folder
    shared = Path(tempfile.mkdtemp(prefix="custody-bench-access-", dir=workdir.parent))
    shared.chmod(0o755)  # the clerk reaches the socket and writes extracts here
    run_folder = shared / "run"
    run_folder.mkdir()
    run_folder.chmod(0o755)
    outbox = shared / "out"
    outbox.mkdir()
    outbox.chmod(0o1777)
    socket_path = run_folder / "api.sock"
    custody = [SYSTEM_PYTHON, "-m", "custody", "--home", str(home)]
    as_clerk = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", *custody]
    daemon = None
    try:
        subprocess.run([*custody, "init"], check=True, capture_output=True, env=_env(None))
        big = workdir / "BIG0001.MP4"
        with open(big, "wb") as sink:
            for _ in range(1024):
                sink.write(os.urandom(1 << 20))
        local_in = [timed([*custody, "ingest", str(big)], _env(None)) for _ in range(2)]
        big.unlink()
        add_items(home, ITEMS - 1)
        (home / "custody.toml").write_text(
            f'[access]\nsocket = "{socket_path}"\nsocket_group = "{GROUP}"\n'
            f'max_requests_per_second = 0\n[access.roles]\nclerk = ["{USER}"]\n'
        )
        testbed = UMockdev.Testbed.new()
        daemon = subprocess.Popen(
            [*custody, "daemon"],
            env={**_env(None), "UMOCKDEV_DIR": testbed.get_root_dir()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while not socket_path.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the daemon did not start")
            time.sleep(0.1)

        # ls --json of 10,000 items: interleaved, best of five.
        local, remote = [], []
        for _ in range(5):
            local.append(timed([*custody, "ls", "--json"], _env(None)))
            remote.append(timed([*as_clerk, "ls", "--json"], _env(socket_path)))
        check = subprocess.run(
            [*as_clerk, "ls", "--json"], env=_env(socket_path), capture_output=True, cwd="/"
        )
        assert len(json.loads(check.stdout)) == ITEMS
        ls_ratio = min(remote) / min(local)

        # extract of the 1 GiB item: interleaved, best of three.
        local_x, remote_x = [], []
        for n in range(3):
            out = outbox / f"local{n}.mp4"
            local_x.append(timed([*custody, "extract", "EV-000001", "--out", str(out)], _env(None)))
            out.unlink()
            out = outbox / f"remote{n}.mp4"
            remote_x.append(timed([*as_clerk, "extract", "EV-000001", "--out", str(out)], _env(socket_path)))
            out.unlink()
        extract_ratio = min(local_x) / min(remote_x)  # throughput over the socket / in-process

        # ingest of a 1 GiB file of the clerk's: new, then duplicate; best of two.
        own = outbox / "OWN0001.MP4"
        with open(own, "wb") as sink:
            for _ in range(1024):
                sink.write(os.urandom(1 << 20))
        own.chmod(0o644)
        remote_in = [timed([*as_clerk, "ingest", str(own)], _env(socket_path)) for _ in range(2)]
        own.unlink()
        ingest_ratio = min(local_in) / min(remote_in)
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=120)
        subprocess.run(["userdel", "-f", USER], capture_output=True)
        subprocess.run(["groupdel", GROUP], capture_output=True)
        shutil.rmtree(shared, ignore_errors=True)
    mb = 1024 * (1 << 20) / 1e6
    print(f"API socket vs in-process ({ITEMS:,} items; a 1 GiB item)")
    print(f"  ls --json in-process (vault's user)   {min(local):6.3f} s")
    print(f"  ls --json through the socket (clerk)  {min(remote):6.3f} s")
    print(
        f"  ratio                                 {ls_ratio:6.2f}x  (goal <= 1.2x: {verdict(ls_ratio <= 1.2)})"
    )
    print(f"  extract in-process                    {min(local_x):6.2f} s  {mb / min(local_x):6.0f} MB/s")
    print(f"  extract through the socket            {min(remote_x):6.2f} s  {mb / min(remote_x):6.0f} MB/s")
    print(
        f"  throughput ratio                      {extract_ratio:6.2f}x  (goal >= 0.8x: {verdict(extract_ratio >= 0.8)})"
    )
    print(f"  ingest in-process (vault's user)      {min(local_in):6.2f} s  {mb / min(local_in):6.0f} MB/s")
    print(f"  ingest through the socket (clerk)     {min(remote_in):6.2f} s  {mb / min(remote_in):6.0f} MB/s")
    print(
        f"  throughput ratio                      {ingest_ratio:6.2f}x  (goal >= 0.8x: {verdict(ingest_ratio >= 0.8)})"
    )
    return ls_ratio <= 1.2 and extract_ratio >= 0.8 and ingest_ratio >= 0.8
