"""Media jobs in the running daemon: hostile input stays contained, a kill loses and repeats nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import not_media
from tests.docking import DaemonProcess, wait_for
from tests.ingestd.test_copies import mjpeg_avi, png_bomb
from tests.ingestd.test_jobs import tagged_clip


def status(custody) -> dict:
    return json.loads(custody("status", "--json").stdout)


def daemon_with_drop_folder(tmp_path: Path, home: Path, custody, testbed, media: str):
    """A new vault whose daemon watches tmp_path/drop, with ``media`` as its [media] settings."""
    drop = tmp_path / "drop"
    drop.mkdir()
    custody("init")
    (home / "custody.toml").write_text(
        f'[dock]\nwatch_folders = ["{drop}"]\nwatch_settle_seconds = 0.5\n\n[media]\n{media}\n'
    )
    return drop, DaemonProcess(home, testbed, tmp_path / "daemon.log")


def transcodes_running(daemon: DaemonProcess) -> list[int]:
    """Pids of libx264 ffmpeg processes the daemon started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == daemon.process.pid and b"libx264" in command:
            found.append(int(entry.name))
    return found


def test_not_media_empty_and_a_decompression_bomb_end_with_clear_results_and_the_daemon_runs_on(
    tmp_path, home, custody, testbed
):
    drop, daemon = daemon_with_drop_folder(
        tmp_path, home, custody, testbed, "memory_limit_mb = 512\nmax_attempts = 2"
    )
    png_bomb(tmp_path / "BOMB.JPG")  # a PNG named as a photo: content decides, not the name
    (tmp_path / "RANDOM.MP4").write_bytes(not_media(200_000))
    (tmp_path / "EMPTY.MP4").write_bytes(b"")
    tagged_clip(tmp_path / "GOOD.MP4")
    for name in ("BOMB.JPG", "RANDOM.MP4", "EMPTY.MP4", "GOOD.MP4"):
        os.rename(tmp_path / name, drop / name)

    def settled():
        counts = status(custody)["media_jobs"]
        return counts.get("failed") == 1 and not counts.get("queued") and not counts.get("running")

    wait_for(settled, "the media jobs to settle", timeout=180)
    assert daemon.process.poll() is None, daemon.log()  # still serving
    [failed] = status(custody)["failed_media_jobs"]
    assert failed["attempts"] == 2 and "512 MB memory limit" in failed["last_error"]
    by_name = {item["name"]: item["id"] for item in json.loads(custody("ls", "--json").stdout)}
    assert failed["item"] == int(by_name["BOMB.JPG"].removeprefix("EV-"))
    for name in ("RANDOM.MP4", "EMPTY.MP4"):
        detail = json.loads(custody("show", by_name[name], "--json").stdout)
        assert detail["media"]["integrity"]["result"] == "unreadable" and detail["derivatives"] == []
    good = json.loads(custody("show", by_name["GOOD.MP4"], "--json").stdout)
    assert {d["role"] for d in good["derivatives"]} == {"playable", "thumbnail"}
    assert "512 MB memory limit" in custody("status").stdout
    assert daemon.stop() == 0, daemon.log()


@pytest.mark.slow  # (make test-quick leaves it out)
def test_killing_the_daemon_during_three_transcodes_repeats_each_job_once_and_orphans_nothing(
    tmp_path, home, custody, testbed
):
    # The first daemon transcodes with x264's slowest preset (about 10 s for one clip alone here,
    # against 2 s at the default), so the three transcodes overlap on any machine: with the
    # default preset the first clip's transcode could end before the third one began.
    drop, daemon = daemon_with_drop_folder(
        tmp_path, home, custody, testbed, 'workers = 3\nplayable_preset = "veryslow"'
    )
    clips = [
        mjpeg_avi(tmp_path / f"OLD{number}.AVI", seconds=30, tone=300 + 100 * number)
        for number in range(1, 4)
    ]
    for clip in clips:  # all three at once, once made
        os.rename(clip, drop / clip.name)
    wait_for(lambda: len(transcodes_running(daemon)) == 3, "three transcodes to run", timeout=180)
    transcoders = transcodes_running(daemon)
    daemon.kill()
    # The transcoders die with the daemon: none goes on writing plaintext.
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in transcoders), "transcoders to die")
    assert status(custody)["media_jobs"] == {"running": 3}

    config = home / "custody.toml"  # the restarted daemon works at the default speed
    config.write_text(config.read_text().replace('playable_preset = "veryslow"\n', ""))
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon2.log")
    wait_for(lambda: status(custody)["media_jobs"] == {"done": 6}, "every job to finish", timeout=300)
    assert daemon.stop() == 0, daemon.log()

    events = json.loads(custody("log", "--json").stdout)
    made = [(e["item"], e["details"]["role"]) for e in events if e["action"] == "derivative-made"]
    assert sorted(made) == sorted(
        (f"EV-00000{n}", role) for n in (1, 2, 3) for role in ("playable", "thumbnail")
    )
    for number in (1, 2, 3):
        roles = [
            d["role"]
            for d in json.loads(custody("show", f"EV-00000{number}", "--json").stdout)["derivatives"]
        ]
        assert roles == ["playable", "thumbnail"]
    report = json.loads(custody("verify", "--json").stdout)
    assert report["ok"] and report["objects_checked"] == 9  # no orphan, none missing
    assert list((home / "run" / "media").iterdir()) == []  # no plaintext left behind


@pytest.mark.slow  # (make test-quick leaves it out)
def test_verify_while_the_daemon_makes_copies_reports_no_false_orphan_or_missing_object(
    tmp_path, home, custody, testbed
):
    """Copies sealed while verify runs (it lists the store after checking every object) are
    catalogued by then, or still intents: never orphans."""
    drop, daemon = daemon_with_drop_folder(tmp_path, home, custody, testbed, "workers = 2")
    clips = [mjpeg_avi(tmp_path / f"CLIP{n}.AVI", seconds=4, tone=300 + 60 * n) for n in range(6)]
    for clip in clips:
        os.rename(clip, drop / clip.name)
    checked = []
    deadline = time.monotonic() + 300  # a hang guard, not a speed limit
    while status(custody)["media_jobs"].get("done", 0) < 12:  # 6 media jobs and 6 decode checks
        assert time.monotonic() < deadline, "the media jobs never finished"
        report = json.loads(custody("verify", "--json").stdout)  # exit 0: ok
        assert report["ok"], report
        checked.append(report["objects_checked"])
        time.sleep(0.1)  # (a poll: through the daemon, which limits requests per second per user)
    assert len(set(checked)) > 1, checked  # copies were made while verify ran
    assert json.loads(custody("verify", "--json").stdout)["objects_checked"] == 6 * 3
    assert daemon.stop() == 0, daemon.log()
