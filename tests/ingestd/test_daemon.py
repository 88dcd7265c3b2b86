"""The docking daemon end to end: umockdev hotplug, real images on loop devices, FUSE mounts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custody.ingestd.daemon import BACKGROUND_NICE
from custody.vault.timestamps import to_text
from tests.docking import (
    DaemonProcess,
    FakeRecorder,
    corrupt_fat_cluster,
    exfat_image,
    ext4_image,
    fat_image,
    host,
    loop_device,
    mounts_under,
    sha256_file,
    wait_for,
)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
SERIAL = "BWC0042"
BADGE = "031245"

pytestmark = pytest.mark.slow


def recorder_tree(root: Path, clip_library: Path, recorded: datetime) -> dict[str, Path]:
    """A recorder's volume: clips named RECORDER_OFFICER_LOCALTIME.MP4 (bwc-badge), one minute apart."""
    dcim = root / "DCIM" / "100BWC"
    dcim.mkdir(parents=True)
    files = {}
    for n, clip in enumerate(sorted(clip_library.glob("CLIP*.MP4"))):
        local = (recorded + timedelta(minutes=n)).astimezone(SHANGHAI)
        name = f"{SERIAL}_{BADGE}_{local:%Y%m%d%H%M%S}.MP4"
        shutil.copy(clip, dcim / name)
        files[name] = dcim / name
    (root / "DCIM" / "100BWC" / "NOTES.TXT").write_text("not footage")
    return files


def register(custody, profile: str = "bwc-badge") -> None:
    custody("init")
    custody("officer", "add", BADGE, "--name", "Wang Li", "--unit", "Traffic 2")
    custody("recorder", "add", SERIAL, "--officer", BADGE, "--from", "2020-01-01", "--profile", profile)


def items(custody, *args) -> list[dict]:
    return json.loads(custody("ls", "--json", *args).stdout)


def sessions(custody) -> list[dict]:
    return json.loads(custody("status", "--json").stdout)["sessions"]


def finished_session(custody, count: int = 1):
    def check():
        done = [s for s in sessions(custody) if s["state"] not in ("pulling",)]
        return done if len(done) >= count else None

    return check


def test_the_daemon_pulls_at_a_background_priority_and_answers_at_the_normal_one(
    tmp_path, home, custody, testbed
):
    """Many recorders at once saturate a small station's CPU: the pull workers and media work run
    niced, so a clerk's request (answered at the normal priority) is served first."""
    register(custody)
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")

    def nice_of_threads() -> dict[int, int]:
        found = {}
        for tid in os.listdir(f"/proc/{daemon.process.pid}/task"):
            stat = Path(f"/proc/{daemon.process.pid}/task/{tid}/stat").read_text()
            found[int(tid)] = int(stat[stat.rindex(")") + 2 :].split()[16])
        return found

    niced = wait_for(
        lambda: (lambda n: n if sum(v == BACKGROUND_NICE for v in n.values()) >= 9 else None)(
            nice_of_threads()
        ),
        "the pull workers and the media thread to lower their priority",
    )
    assert niced[daemon.process.pid] == 0, (
        "the daemon's main thread (udev, the loop) stays at the normal priority"
    )
    assert sum(v == 0 for v in niced.values()) >= 2, "the API's threads stay at the normal priority"
    custody("status")  # answered while the workers wait at their priority
    assert daemon.stop() == 0, daemon.log()


@pytest.mark.parametrize("filesystem", ["vfat", "exfat"])
def test_daemon_pulls_every_file_of_a_docked_recorder_read_only(
    filesystem, tmp_path, home, custody, testbed, clip_library
):
    recorded = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    files = recorder_tree(tmp_path / "volume", clip_library, recorded)
    build = fat_image if filesystem == "vfat" else exfat_image
    image = build(tmp_path / "recorder.img", tmp_path / "volume")
    image_sha_before = sha256_file(image)
    register(custody)
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image) as device:
        recorder = FakeRecorder(SERIAL, device, filesystem)
        recorder.plug(testbed)
        wait_for(finished_session(custody), "the dock session to finish")
        pulled = items(custody)
        recorder.unplug(testbed)
        wait_for(lambda: sessions(custody)[0]["undocked_at"], "the undock to be recorded")
        assert daemon.stop() == 0, daemon.log()
    assert mounts_under(home) == [], "a mount was left behind"
    assert sha256_file(image) == image_sha_before, "the recorder image changed"

    assert sorted(i["name"] for i in pulled) == sorted(files)
    for item in pulled:
        assert item["sha256"] == sha256_file(files[item["name"]])
        assert item["recorder"] == SERIAL
        assert item["credited_officer"] == BADGE
        assert item["tags"]["officer"] == BADGE
        assert item["late"] is False and item["clock_suspect"] is False
        # The name carries Shanghai local time; the vault stores UTC.
        n = sorted(files).index(item["name"])
        assert item["recorded_start"] == to_text(recorded + timedelta(minutes=n))
        assert item["recorded_source"] == "filename"
        assert item["recorded_end"] > item["recorded_start"]  # the clip's duration from ffprobe
    [session] = sessions(custody)
    assert (session["state"], session["files_found"], session["files_new"]) == ("done", 3, 3)
    assert session["undocked_at"] is not None


@pytest.mark.parametrize("filesystem", ["vfat", "exfat"])
def test_file_times_come_from_the_cards_directory_entries_in_the_recorder_clocks_zone(
    filesystem, tmp_path, home, custody, testbed
):
    """fusefat reads FAT dates a month late: the dock reads the card's own entries (FAT: Shanghai wall
    time per the profile; exFAT: the offset the card wrote) across a year end, month ends, a leap day."""
    from tests.conftest import not_media

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    walls = {
        "JAN31.JPG": datetime(2021, 1, 31, 23, 59, 58),
        "YEAREND.JPG": datetime(2021, 12, 31, 23, 30, 0),
        "LEAPDAY.JPG": datetime(2024, 2, 29, 7, 0, 0),  # 2024-02-28 23:00 UTC
        "APR30.JPG": datetime(2023, 4, 30, 12, 34, 56),
        "TODAY.JPG": now.astimezone(SHANGHAI).replace(tzinfo=None, second=now.second // 2 * 2),
    }
    folder = tmp_path / "volume" / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True)
    expected = {}
    for name, wall in walls.items():
        (folder / name).write_bytes(not_media(4096))
        moment = wall.replace(tzinfo=SHANGHAI).astimezone(UTC)
        os.utime(folder / name, (moment.timestamp(), moment.timestamp()))
        expected[name] = moment
    build = fat_image if filesystem == "vfat" else exfat_image
    image = build(tmp_path / "card.img", tmp_path / "volume", zone="Asia/Shanghai")
    register(custody, profile="timestamped")  # clock_timezone = Asia/Shanghai; these names carry no time
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image) as device:
        recorder = FakeRecorder(SERIAL, device, filesystem)
        recorder.plug(testbed)
        wait_for(finished_session(custody), "the dock session to finish")
        recorder.unplug(testbed)
        assert daemon.stop() == 0, daemon.log()
    pulled = {item["name"]: item for item in items(custody)}
    assert sorted(pulled) == sorted(expected)
    source = "fat-directory" if filesystem == "vfat" else "exfat-directory"
    for name, moment in expected.items():
        assert (name, pulled[name]["recorded_start"]) == (name, to_text(moment))
        assert pulled[name]["recorded_source"] == source
    assert pulled["TODAY.JPG"]["clock_suspect"] is False  # a month-late date was "in the future"
    assert pulled["TODAY.JPG"]["credited_officer"] == BADGE


def test_recorder_present_at_start_is_pulled(tmp_path, home, custody, testbed, clip_library):
    files = recorder_tree(tmp_path / "volume", clip_library, datetime.now(UTC) - timedelta(hours=1))
    image = fat_image(tmp_path / "recorder.img", tmp_path / "volume")
    register(custody)
    with loop_device(image) as device:
        recorder = FakeRecorder(SERIAL, device, "vfat")
        recorder.plug(testbed)
        daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
        wait_for(finished_session(custody), "the coldplugged recorder's session")
        # The daemon also works the media queue: the foreground stage and the decode check of each item.
        wait_for(
            lambda: json.loads(custody("status", "--json").stdout)["media_jobs"] == {"done": 6},
            "the media jobs",
        )
        assert daemon.stop() == 0, daemon.log()
        recorder.unplug(testbed)
    assert sorted(i["name"] for i in items(custody)) == sorted(files)
    for item in items(custody):
        media = json.loads(custody("show", item["id"], "--json").stdout)["media"]
        assert media["video_codec"] == "h264" and abs(media["duration"] - 2.0) < 0.2
    assert mounts_under(home) == []


def test_unknown_device_is_not_mounted_nor_ingested_but_audited_and_shown(
    tmp_path, home, custody, testbed, clip_library
):
    recorder_tree(tmp_path / "volume", clip_library, datetime.now(UTC))
    image = fat_image(tmp_path / "stick.img", tmp_path / "volume")
    register(custody)
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image) as device:
        stranger = FakeRecorder("STRANGER9", device, "vfat")
        stranger.plug(testbed)
        status = wait_for(
            lambda: (
                (s := json.loads(custody("status", "--json").stdout))["unknown_devices"]
                and (s["daemon"] or {}).get("unknown_devices")
                and s
            ),
            "the unknown device to be noted",
        )
        assert mounts_under(home) == []
        stranger.unplug(testbed)
        assert daemon.stop() == 0, daemon.log()
    assert status["unknown_devices"][0]["key"] == "STRANGER9"
    assert status["unknown_devices"][0]["identity"]["reason"] == "device is not a registered recorder"
    assert status["daemon"]["unknown_devices"][0]["device"]["serial"] == "STRANGER9"
    assert items(custody) == []
    assert sessions(custody) == []
    events = json.loads(custody("log", "--json").stdout)
    unknown = [e for e in events if e["action"] == "unknown-device-docked"]
    assert len(unknown) == 1 and unknown[0]["details"]["device"]["serial"] == "STRANGER9"
    text = custody("status").stdout
    assert "STRANGER9" in text and "not a registered recorder" in text


def test_pull_resumes_after_unplug_without_duplicate(tmp_path, home, custody, testbed, clip_library):
    recorder_tree(tmp_path / "volume", clip_library, datetime.now(UTC) - timedelta(hours=3))
    big = tmp_path / "volume" / "DCIM" / "100BWC" / f"{SERIAL}_{BADGE}_20200101000000.MP4"
    with open(big, "wb") as out:  # oldest deadline: pulled first
        for _ in range(768):
            out.write(os.urandom(1 << 20))
    big_sha = sha256_file(big)
    image = fat_image(tmp_path / "recorder.img", tmp_path / "volume")
    big.unlink()  # its 768 MiB are on the image now; the run's disk is shared by every test
    register(custody)
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image) as device:
        first = FakeRecorder(SERIAL, device, "vfat")
        first.plug(testbed)

        def mid_file():
            docked = (daemon.status() or {}).get("docked") or [{}]
            entry = docked[0]
            return any(big.name in path for path in entry.get("reading", [])) and entry["bytes_done"] > 0

        wait_for(mid_file, "the big file to be part read", interval=0.01)
        [live] = daemon.status()["docked"]  # what `custody status` shows while a recorder is pulled
        assert live["state"] == "pulling" and live["files_total"] == 4 and live["bytes_total"] > 768 << 20
        assert 0 < live["bytes_done"] < live["bytes_total"] and live["rate_bytes_per_second"] > 0
        assert live["eta_seconds"] > 0
        first.unplug(testbed)
        wait_for(finished_session(custody), "the cut-off session to close")
        [cut] = sessions(custody)
        assert cut["state"] == "interrupted"
        assert big_sha not in {i["sha256"] for i in items(custody)}
        assert list((home / "objects" / "staging").iterdir()) == []
        assert mounts_under(home) == []

        second = FakeRecorder(SERIAL, device, "vfat")
        second.plug(testbed)
        wait_for(finished_session(custody, 2), "the re-dock session")
        second.unplug(testbed)
        assert daemon.stop() == 0, daemon.log()
    pulled = items(custody)
    assert [i["sha256"] for i in pulled].count(big_sha) == 1
    assert len(pulled) == 4
    report = json.loads(custody("verify", "--json").stdout)
    assert report["ok"], report


def test_daemon_killed_ten_times_pulls_every_file_exactly_once(
    tmp_path, home, custody, testbed, clip_library
):
    import random

    files = recorder_tree(tmp_path / "volume", clip_library, datetime.now(UTC) - timedelta(hours=1))
    for n in range(8):
        path = tmp_path / "volume" / "DCIM" / "100BWC" / f"{SERIAL}_{BADGE}_2026010{n}120000.MP4"
        path.write_bytes(os.urandom(48 << 20))
        files[path.name] = path
    image = fat_image(tmp_path / "recorder.img", tmp_path / "volume")
    expected_hashes = {sha256_file(p) for p in files.values()}
    shutil.rmtree(tmp_path / "volume")  # 400 MiB, all on the image now
    register(custody)
    rng = random.Random(1234)
    with loop_device(image) as device:
        recorder = FakeRecorder(SERIAL, device, "vfat")
        recorder.plug(testbed)
        # A kill counts when it leaves a mount of its own daemon behind. A daemon killed before it
        # cleaned up what an earlier one left leaves only that older mount, which the next start
        # that gets so far cleans, once (the kernel reuses mount IDs: the log tells them apart).
        killed_while_mounted = 0
        for cycle in range(10):
            stale_at_start = bool(mounts_under(home))
            daemon = DaemonProcess(home, testbed, tmp_path / f"daemon{cycle}.log")
            time.sleep(rng.uniform(0.0, 1.0))
            daemon.kill()
            cleaned_first = "removing mount left by an earlier run" in daemon.log_path.read_text(
                errors="replace"
            )
            killed_while_mounted += bool(mounts_under(home)) and (not stale_at_start or cleaned_first)
        daemon = DaemonProcess(home, testbed, tmp_path / "daemon-final.log")
        wait_for(lambda: [s for s in sessions(custody) if s["state"] == "done"], "a complete session")
        assert daemon.stop() == 0, daemon.log()
        recorder.unplug(testbed)
    assert mounts_under(home) == []
    pulled = items(custody)
    assert sorted(i["name"] for i in pulled) == sorted(files)
    assert {i["sha256"] for i in pulled} == expected_hashes
    report = json.loads(custody("verify", "--json").stdout)
    assert report["ok"], report
    events = json.loads(custody("log", "--json").stdout)
    assert killed_while_mounted > 0, "no kill came while a recorder was mounted: the test proved nothing"
    assert list((home / "run" / "media").glob("*")) == [], "a decrypted copy was left behind"
    cleaned = [e for e in events if e["action"] == "stale-mounts-removed"]
    # Every mount a killed daemon left was removed (none remain, above), and removals are audited;
    # a start killed after unmounting and before its event commits leaves that removal unrecorded
    # (and the next start finds nothing to remove), so the events are at most the kills counted.
    assert 1 <= len(cleaned) <= killed_while_mounted
    assert all(e["details"]["mounts"] for e in cleaned)


def test_hostile_fat_media_gives_each_file_its_outcome_and_the_daemon_goes_on(
    tmp_path, home, custody, testbed, clip_library
):
    volume = tmp_path / "volume"
    dcim = volume / "DCIM"
    (dcim / "SMALL").mkdir(parents=True)
    shutil.copy(clip_library / "CLIP0001.MP4", dcim / "GOOD.MP4")
    (dcim / "A..B.MP4").write_bytes(os.urandom(1000))  # ".." inside a name is only a name
    (dcim / "EMPTY.MP4").write_bytes(b"")
    (dcim / "BAD.MP4").write_bytes(os.urandom(3 << 20))
    for n in range(5000):
        (dcim / "SMALL" / f"S{n:05d}.JPG").write_bytes(os.urandom(64) + n.to_bytes(4, "big"))
    image = fat_image(tmp_path / "recorder.img", volume)
    corrupt_fat_cluster(image, "/DCIM/BAD.MP4", 2000)  # 1 MB in: fails part way through
    register(custody, profile="dcim")
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image) as device:
        recorder = FakeRecorder(SERIAL, device, "vfat")
        recorder.plug(testbed)
        wait_for(finished_session(custody), "the hostile session to finish", timeout=600)
        recorder.unplug(testbed)
        assert daemon.process.poll() is None, "the daemon died"
        assert daemon.stop() == 0, daemon.log()
    [session] = sessions(custody)
    assert session["state"] == "done-with-errors"
    assert (session["files_found"], session["files_new"], session["files_failed"]) == (5004, 5003, 1)
    assert (
        len(session["errors"]) == 1
        and "BAD.MP4" in session["errors"][0]
        and "part way" in session["errors"][0]
    )
    pulled = {i["name"]: i for i in items(custody)}
    assert len(pulled) == 5003
    assert pulled["A..B.MP4"]["sha256"] == sha256_file(dcim / "A..B.MP4")
    assert pulled["A..B.MP4"]["source_path"] == "DCIM/A..B.MP4"
    assert pulled["EMPTY.MP4"]["size"] == 0
    assert pulled["S04999.JPG"]["sha256"] == sha256_file(dcim / "SMALL" / "S04999.JPG")
    assert "BAD.MP4" not in pulled
    failures = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "ingest-failed"]
    assert [f["details"]["path"] for f in failures] == ["DCIM/BAD.MP4"]  # the path on the recorder
    assert list((home / "objects" / "staging").iterdir()) == []


def test_symlinks_out_of_the_volume_are_not_followed_and_a_sparse_8_gib_file_is_pulled(
    tmp_path, home, custody, testbed, clip_library
):
    volume = tmp_path / "volume"
    dcim = volume / "DCIM"
    dcim.mkdir(parents=True)
    shutil.copy(clip_library / "CLIP0002.MP4", dcim / "GOOD.MP4")
    (dcim / "ABS.MP4").symlink_to("/etc/passwd")
    (dcim / "REL.MP4").symlink_to("../../../../../etc/hostname")
    with open(dcim / "SPARSE.MP4", "wb") as sparse:
        sparse.truncate(8 << 30)
    image = ext4_image(tmp_path / "recorder.img", volume)
    custody("init")
    with open(home / "custody.toml", "a") as config:
        config.write(
            '\n[profiles.ext4cam]\ndescription = "test recorder with an ext4 card"\nfilesystems = ["ext4"]\n'
        )
    custody("officer", "add", BADGE, "--name", "Wang Li")
    custody("recorder", "add", SERIAL, "--officer", BADGE, "--from", "2020-01-01", "--profile", "ext4cam")
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image) as device:
        recorder = FakeRecorder(SERIAL, device, "ext4")
        recorder.plug(testbed)
        wait_for(finished_session(custody), "the session to finish", timeout=600)
        recorder.unplug(testbed)
        assert daemon.stop() == 0, daemon.log()
    assert "via kernel" in daemon.log()
    [session] = sessions(custody)
    assert (session["state"], session["files_found"], session["files_new"]) == ("done", 2, 2)
    pulled = {i["name"]: i for i in items(custody)}
    assert sorted(pulled) == ["GOOD.MP4", "SPARSE.MP4"]
    zeros = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(8 << 10):
        zeros.update(block)
    assert pulled["SPARSE.MP4"]["size"] == 8 << 30
    assert pulled["SPARSE.MP4"]["sha256"] == zeros.hexdigest()
    assert json.loads(custody("verify", "--json", pulled["SPARSE.MP4"]["id"]).stdout)["ok"]


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_watch_folder_ingests_a_slowly_copied_file_once_and_only_when_complete(
    polling, tmp_path, home, custody, testbed
):
    import threading

    drop = tmp_path / "drop"
    drop.mkdir()
    custody("init")
    (home / "custody.toml").write_text(
        f'[dock]\nwatch_folders = ["{drop}"]\nwatch_settle_seconds = 2.0\nwatch_polling = {str(polling).lower()}\n'
    )
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    content = os.urandom(4 << 20)
    target = drop / "CARD0001.MP4"
    copied = threading.Event()
    seen_while_copying: list[int] = []

    def copy_slowly():
        with open(target, "wb") as out:
            for offset in range(0, len(content), 256 << 10):
                out.write(content[offset : offset + (256 << 10)])
                out.flush()
                time.sleep(0.2)
        copied.set()

    copier = threading.Thread(target=copy_slowly)
    copier.start()
    while not copied.is_set():
        seen_while_copying.append(len(items(custody)))
        time.sleep(0.1)
    copier.join()
    pulled = wait_for(lambda: items(custody), "the dropped file to be ingested")
    # rsync's way: the whole file under a hidden temporary name, then renamed. A hidden folder's
    # file too. Neither is taken under its hidden name (the soak found the temporary name kept,
    # with no officer and no recording time from the name): only the renamed file.
    second = os.urandom(1 << 20)
    temporary = drop / ".CARD0002.MP4.a1B2c3"
    temporary.write_bytes(second)
    time.sleep(2.5)  # (closed and settled under its temporary name)
    temporary.rename(drop / "CARD0002.MP4")
    (drop / ".Trash-0").mkdir()
    (drop / ".Trash-0" / "OLD.MP4").write_bytes(os.urandom(1 << 20))
    wait_for(lambda: len(items(custody)) >= 2, "the renamed file to be ingested")
    time.sleep(3)  # longer than the settle time: a second ingest would show now
    pulled = items(custody)
    assert daemon.stop() == 0, daemon.log()
    assert set(seen_while_copying) == {0}, "a file was ingested before it was complete"
    assert [(i["name"], i["size"]) for i in pulled] == [
        ("CARD0001.MP4", len(content)),
        ("CARD0002.MP4", len(second)),
    ]
    assert pulled[0]["sha256"] == hashlib.sha256(content).hexdigest()


def test_media_that_appears_after_an_empty_disk_is_pulled(tmp_path, home, custody, testbed, clip_library):
    files = recorder_tree(tmp_path / "volume", clip_library, datetime.now(UTC) - timedelta(hours=1))
    image = fat_image(tmp_path / "recorder.img", tmp_path / "volume")
    register(custody)
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image) as device:
        recorder = FakeRecorder(SERIAL, device, "vfat")
        recorder.plug(testbed, with_media=False)  # a recorder that first shows a disk without media
        wait_for(lambda: (daemon.status() or {}).get("docked"), "the empty disk to be seen")
        assert sessions(custody) == []
        recorder.insert_media(testbed)
        wait_for(finished_session(custody), "the late media to be pulled")
        recorder.unplug(testbed)
        assert daemon.stop() == 0, daemon.log()
    assert sorted(i["name"] for i in items(custody)) == sorted(files)


def test_daemon_tells_systemd_ready_watchdog_stopping_and_reloads_on_sighup(tmp_path, home, custody, testbed):
    import signal
    import socket

    custody("init")
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify_path))
        listener.settimeout(60)
        daemon = DaemonProcess(
            home,
            testbed,
            tmp_path / "daemon.log",
            {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000"},
        )
        messages = []
        while "WATCHDOG=1" not in messages:
            messages.append(listener.recv(256).decode())
        assert messages[0] == "READY=1"

        (home / "custody.toml").write_text('[profiles.newcam]\nfilesystems = ["vfat"]\n')
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in daemon.log(), "the reload")
        (home / "custody.toml").write_text("[dock]\nwindow_hours = 'soon'\n")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "config not reloaded" in daemon.log(), "the refused reload")
        assert "dock.window_hours" in daemon.log()
        assert daemon.process.poll() is None

        assert daemon.stop() == 0, daemon.log()
        while "STOPPING=1" not in messages:
            messages.append(listener.recv(256).decode())


def test_wipe_after_vault_deletes_only_files_safe_in_the_vault_each_audited(
    tmp_path, home, custody, testbed, clip_library
):
    volume = tmp_path / "volume"
    dcim = volume / "DCIM"
    dcim.mkdir(parents=True)
    for name in ("CLIP0001.MP4", "CLIP0002.MP4"):
        shutil.copy(clip_library / name, dcim / name)
    (dcim / "BAD.MP4").write_bytes(os.urandom(3 << 20))
    (dcim / "NOTES.TXT").write_text("not footage: never touched")
    image = fat_image(tmp_path / "recorder.img", volume)
    corrupt_fat_cluster(image, "/DCIM/BAD.MP4", 2000)
    custody("init")
    with open(home / "custody.toml", "a") as config:
        config.write('\n[profiles.wiper]\nwipe = "after_vault"\n')
    custody("recorder", "add", SERIAL, "--profile", "wiper")
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    with loop_device(image, read_only=False) as device:
        recorder = FakeRecorder(SERIAL, device, "vfat")
        recorder.plug(testbed)
        wait_for(finished_session(custody), "the session and its wipe")
        recorder.unplug(testbed)
        assert daemon.stop() == 0, daemon.log()
    [session] = sessions(custody)
    assert (session["files_new"], session["files_failed"], session["files_wiped"]) == (2, 1, 2)
    left = host("mdir", "-b", "-i", image, "::/DCIM")
    assert "CLIP0001.MP4" not in left and "CLIP0002.MP4" not in left
    assert "BAD.MP4" in left and "NOTES.TXT" in left  # failed and non-footage files stay
    wiped = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "recorder-file-wiped"]
    assert sorted(e["details"]["path"] for e in wiped) == ["DCIM/CLIP0001.MP4", "DCIM/CLIP0002.MP4"]
    assert json.loads(custody("verify", "--json").stdout)["ok"]
    assert mounts_under(home) == []


def test_footage_recorded_over_two_years_before_it_is_docked_replicates_without_a_date_s3_refuses(
    tmp_path, home, custody, testbed, s3, clip_library
):
    """A card found in a drawer, at a station that trusts recorder clocks up to 1,000 days back:
    footage recorded 800 days ago, its two years already over when it comes in. S3 refuses an
    Object Lock retain-until date that is not in the future (InvalidArgument; moto takes one),
    so its replica goes undated, or under a legal hold when held: never with a past date. (The
    soak's old drops met this.)"""
    drop = tmp_path / "drop"
    drop.mkdir()
    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    (home / "custody.toml").write_text(
        f'[dock]\nwatch_folders = ["{drop}"]\nwatch_settle_seconds = 1.0\nwatch_profile = "drawer"\n'
        "suspect_past_days = 1000\n"
        '[profiles.drawer]\nfilename_pattern = "^(?P<recorder>[A-Z0-9]+)_(?P<officer>[0-9]+)_(?P<start>\\\\d{14})"\n'
        'start_format = "%Y%m%d%H%M%S"\nclock_timezone = "Asia/Shanghai"\n' + s3.target_toml(bucket)
    )  # fmt: skip
    recorded = datetime.now(UTC) - timedelta(days=800)
    clip = next(p for p in sorted(clip_library.iterdir()) if p.suffix == ".MP4")
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    for n in (1, 2):
        shutil.copy(clip, drop / f".{n}.part")
        with open(drop / f".{n}.part", "ab") as extra:
            extra.write(os.urandom(64))  # (two distinct files)
        name = f"DRAWER1_{BADGE}_{(recorded + timedelta(minutes=n)).astimezone(SHANGHAI):%Y%m%d%H%M%S}.MP4"
        (drop / f".{n}.part").rename(drop / name)
    wait_for(lambda: len(items(custody)) == 2, "the two old files to be ingested")
    assert daemon.stop() == 0, daemon.log()
    old, held = items(custody)
    assert old["recorded_start"].startswith(f"{recorded:%Y-%m-%d}") and not old["clock_suspect"]
    custody("hold", "add", held["id"], "--reason", "court order")
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert (summary["verified"], summary["failed"]) == (2, 0), summary
    client = s3.client()
    heads = [
        client.head_object(Bucket=bucket, Key=f"custody/objects/sha256/{i['sha256'][:2]}/{i['sha256'][2:4]}/{i['sha256']}")
        for i in (old, held)
    ]  # fmt: skip
    for head in heads:
        assert "ObjectLockRetainUntilDate" not in head or head["ObjectLockRetainUntilDate"] > datetime.now(
            UTC
        )
    assert heads[0].get("ObjectLockLegalHoldStatus") in (None, "OFF")
    assert heads[1]["ObjectLockLegalHoldStatus"] == "ON"
