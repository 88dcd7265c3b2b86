"""A vault on a disk that fills up: one clear line per file that does not fit, the rest stored, the
reserve kept for the catalog and the chain, and no space held by a failed staging file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from custody.config import Settings, VaultSettings
from custody.vault import Vault
from custody.vault.objects import ObjectStore
from tests.vault.test_disc_export import small_filesystem


def free_bytes(path: Path) -> int:
    facts = os.statvfs(path)
    return facts.f_bavail * facts.f_frsize


def test_a_file_that_would_eat_the_reserve_fails_alone_in_one_line(tmp_path, custody_at):
    with small_filesystem(tmp_path / "disk", 48 << 20) as disk:
        home = disk / "vault"
        custody = custody_at(home)
        custody("init")
        (home / "custody.toml").write_text("[vault]\nmin_free_mb = 8\n")
        card = tmp_path / "card"
        card.mkdir()
        (card / "A.MP4").write_bytes(os.urandom(1 << 20))
        (card / "C.MP4").write_bytes(os.urandom(1 << 20))
        # B leaves less than the reserve: refused before a byte is written.
        (card / "B.MP4").write_bytes(os.urandom(free_bytes(home) - (6 << 20)))
        before = free_bytes(home)
        result = custody("ingest", str(card), expect=1)
        assert "Traceback" not in result.output
        [line] = [line for line in result.stderr.splitlines() if "B.MP4" in line]
        assert "vault disk full" in line and "kept in reserve ([vault] min_free_mb)" in line
        assert "2 new" in result.stdout and "1 failed" in result.stdout
        assert list((home / "objects" / "staging").iterdir()) == []
        assert free_bytes(home) >= before - (3 << 20)  # the two small files (and the catalog's growth)
        assert json.loads(custody("verify", "--json").stdout)["ok"]


def test_a_failed_allocation_gives_its_space_back_at_once(tmp_path):
    """posix_fallocate refused (ENOSPC): before, the read-back's descriptor stayed open on the
    deleted staging file and the space never came back, so the next catalog commit failed."""
    with small_filesystem(tmp_path / "disk", 16 << 20) as disk:
        settings = Settings(home=disk / "vault", vault=VaultSettings(min_free_mb=0))
        Vault.init(settings, "clerk1").close()
        with Vault(settings, "clerk1", writer=True) as vault:
            # No reserve at all and a size the disk cannot hold: the allocation itself fails.
            vault.objects.reserve_bytes = -(1 << 40)
            before = free_bytes(disk)
            with (
                open(os.devnull, "rb") as nothing,
                pytest.raises(ObjectStore.DiskFull, match="vault disk full"),
            ):
                vault.intake.stage(nothing, 64 << 20)
            leaked = [
                os.readlink(f"/proc/self/fd/{fd}")
                for fd in os.listdir("/proc/self/fd")
                if str(disk) in _readlink(f"/proc/self/fd/{fd}")
                and "(deleted)" in _readlink(f"/proc/self/fd/{fd}")
            ]
            assert leaked == []
            assert free_bytes(disk) >= before - (64 << 10)
            vault.record("after-a-full-disk", {})  # the catalog still commits


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@pytest.fixture
def custody_at():
    """The real `custody` in-process against any home (the conftest's is tied to tmp_path/vault)."""
    from click.testing import CliRunner

    from custody.cli import cli

    def at(home: Path):
        runner = CliRunner()

        def run(*args: str, expect: int = 0):
            result = runner.invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
            assert result.exit_code == expect, result.output
            return result

        return run

    return at


def test_a_media_job_meeting_a_full_disk_fails_alone_and_the_run_ends(tmp_path, custody_at, clip_library):
    """A playable copy that cannot be sealed (the disk at its reserve) killed the worker thread
    and left its job "running": `media run --once` then waited for ever."""
    import subprocess
    import sys

    with small_filesystem(tmp_path / "disk", 48 << 20) as disk:
        home = disk / "vault"
        custody = custody_at(home)
        custody("init")
        (home / "custody.toml").write_text("[vault]\nmin_free_mb = 8\n")
        custody("ingest", str(clip_library / "CLIP0001.MP4"))
        with open(disk / "filler", "wb") as filler:  # leave less than the reserve
            os.posix_fallocate(filler.fileno(), 0, free_bytes(disk) - (6 << 20))
        try:
            run = subprocess.run(
                [sys.executable, "-m", "custody", "--home", str(home), "media", "run", "--once", "--json"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail("media run --once hung on a job that met a full disk")
        assert "Traceback" not in run.stderr
        summary = json.loads(run.stdout.splitlines()[-1])
        assert (summary["done"], summary["failed"]) == (0, 1)  # tried max_attempts times, then failed
        [job] = json.loads(custody("status", "--json").stdout)["failed_media_jobs"]
        assert "vault disk full" in job["last_error"]


def test_the_daemons_media_job_waits_for_room_on_a_full_disk_instead_of_failing_for_good(
    tmp_path, custody_at, clip_library
):
    """The daemon's media workers (MediaJobs.run without until_empty, as the daemon runs them)
    took each meeting with a full disk as an attempt: three quick tries at a disk the soak had
    filled to its reserve failed a job for good, and the item never got its playable copy. A
    full disk is the station's state: the job waits for room, its attempts untouched."""
    import threading
    import time

    from custody.config import load_settings
    from custody.ingestd.jobs import MediaJobs

    with small_filesystem(tmp_path / "disk", 48 << 20) as disk:
        home = disk / "vault"
        custody = custody_at(home)
        custody("init")
        (home / "custody.toml").write_text("[vault]\nmin_free_mb = 8\n\n[media]\nmax_attempts = 1\n")
        custody("ingest", str(clip_library / "CLIP0001.MP4"))
        filler = disk / "filler"
        with open(filler, "wb") as space:  # leave less than the reserve
            os.posix_fallocate(space.fileno(), 0, free_bytes(disk) - (6 << 20))
        settings = load_settings(home)
        stop = threading.Event()
        with Vault(settings, "custody-daemon", writer=True) as vault:
            jobs = MediaJobs(vault, settings)
            runner = threading.Thread(target=jobs.run, kwargs={"stop": stop, "until_empty": False})
            runner.start()
            try:
                until = time.monotonic() + 60
                while not (jobs.summary.retried or jobs.summary.failed) and time.monotonic() < until:
                    time.sleep(0.1)
                assert (jobs.summary.retried, jobs.summary.failed) == (1, 0)  # met the disk, not failed
                [job] = vault.catalog.db.execute("SELECT state, attempts, last_error FROM jobs").fetchall()
                assert job[0] in ("queued", "running") and "vault disk full" in job[2]
                filler.unlink()  # room again: the job is done at its next turn
                until = time.monotonic() + 60
                while not jobs.summary.done and time.monotonic() < until:
                    time.sleep(0.1)
                assert (jobs.summary.done, jobs.summary.failed) == (1, 0)
            finally:
                stop.set()
                runner.join(timeout=60)
        roles = {d["role"] for d in json.loads(custody("show", "EV-000001", "--json").stdout)["derivatives"]}
        assert roles == {"playable", "thumbnail"}
        assert json.loads(custody("status", "--json").stdout)["failed_media_jobs"] == []


def test_a_duplicate_is_recognised_without_writing_even_when_it_would_not_fit(tmp_path, custody_at):
    """Issue 18: a file the vault holds costs no vault writes. On a vault disk with little room, a
    copy of an item bigger than the room left is a duplicate, not a disk-full failure; a new file
    of the same size (not a duplicate) is still refused for room, and nothing is staged."""
    with small_filesystem(tmp_path / "disk", 64 << 20) as disk:
        home = disk / "vault"
        custody = custody_at(home)
        custody("init")
        card = tmp_path / "card"
        card.mkdir()
        big = card / "BIG.MP4"
        (home / "custody.toml").write_text("[vault]\nmin_free_mb = 0\n")
        big.write_bytes(os.urandom(free_bytes(home) - (12 << 20)))  # fits now, with room to spare
        custody("ingest", str(big))
        (home / "custody.toml").write_text("[vault]\nmin_free_mb = 8\n")
        assert free_bytes(home) < big.stat().st_size  # a second copy could never be sealed
        again = tmp_path / "again"
        again.mkdir()
        (again / "COPY.MP4").write_bytes(big.read_bytes())  # same content, another name and folder
        (again / "SAME-SIZE.MP4").write_bytes(os.urandom(big.stat().st_size))  # same size, new content
        before = free_bytes(home)
        result = custody("ingest", str(again), "--json", expect=1)
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        outcomes = {line["name"].rsplit("/", 1)[-1]: line for line in lines if "name" in line}
        assert outcomes["COPY.MP4"]["status"] == "duplicate" and outcomes["COPY.MP4"]["id"] == "EV-000001"
        assert outcomes["SAME-SIZE.MP4"]["status"] == "error"
        assert "vault disk full" in outcomes["SAME-SIZE.MP4"]["message"]
        assert list((home / "objects" / "staging").iterdir()) == []
        assert free_bytes(home) >= before - (1 << 20)  # nothing sealed: the catalog's growth only
        seen = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "duplicate-seen"]
        assert [e["item"] for e in seen] == ["EV-000001"]


def test_a_small_duplicate_is_recognised_without_writing_on_a_full_disk(tmp_path, custody_at):
    """A file small enough to be read whole into memory (read once, see pipeline.READ_WHOLE_AT_MOST):
    a copy of an item is recognised from those bytes, nothing staged, even on a disk at its
    reserve; a new one of the same size is refused for room, and stored once there is room."""
    with small_filesystem(tmp_path / "disk", 64 << 20) as disk:
        home = disk / "vault"
        custody = custody_at(home)
        custody("init")
        card = tmp_path / "card"
        card.mkdir()
        photo = card / "IMG0001.JPG"
        photo.write_bytes(os.urandom(1 << 20))
        (home / "custody.toml").write_text("[vault]\nmin_free_mb = 0\n")
        custody("ingest", str(photo))
        (home / "custody.toml").write_text("[vault]\nmin_free_mb = 8\n")
        filler = disk / "filler"
        filler.write_bytes(os.urandom(max(0, free_bytes(home) - (8 << 20) - (256 << 10))))
        assert free_bytes(home) - (8 << 20) < (1 << 20)  # a second copy could not be sealed
        again = tmp_path / "again"
        again.mkdir()
        (again / "COPY.JPG").write_bytes(photo.read_bytes())
        (again / "NEW.JPG").write_bytes(os.urandom(1 << 20))  # same size, new content: no room
        result = custody("ingest", str(again), "--json", expect=1)
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        outcomes = {line["name"].rsplit("/", 1)[-1]: line for line in lines if "name" in line}
        assert outcomes["COPY.JPG"]["status"] == "duplicate" and outcomes["COPY.JPG"]["id"] == "EV-000001"
        assert (
            outcomes["NEW.JPG"]["status"] == "error" and "vault disk full" in outcomes["NEW.JPG"]["message"]
        )
        assert list((home / "objects" / "staging").iterdir()) == []
        filler.unlink()
        assert (
            json.loads(custody("ingest", str(again / "NEW.JPG"), "--json").stdout.splitlines()[0])["status"]
            == "new"
        )
