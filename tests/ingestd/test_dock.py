"""Dock sessions on a plain folder: recording times, the 24-hour window, re-docks, officers over time."""

from __future__ import annotations

import json
import os
import zoneinfo
from datetime import UTC, datetime, timedelta

from custody.config import load_settings
from custody.devices.events import MediaSource
from custody.ingestd.dock import DockSession
from custody.vault import ItemFilter, Vault
from custody.vault.timestamps import to_text
from tests.docking import dock

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def local_name(moment: datetime, suffix: str = "0001") -> str:
    return f"{moment.astimezone(SHANGHAI):%Y%m%d_%H%M%S}_{suffix}.MP4"


def test_window_flags_files_recorded_30_hours_before_docking_and_not_2_hours(tmp_path, home, custody):
    custody("init")
    custody("officer", "add", "031245", "--name", "Wang Li")
    custody(
        "recorder", "add", "TS01", "--officer", "031245", "--from", "2020-01-01", "--profile", "timestamped"
    )
    now = datetime.now(UTC).replace(microsecond=0)
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    old, recent = now - timedelta(hours=30), now - timedelta(hours=2)
    # Not real MP4s: ffprobe finds no container time, so the file name (Shanghai local time) decides.
    (dcim / local_name(old, "0001")).write_bytes(os.urandom(5000))
    (dcim / local_name(recent, "0002")).write_bytes(os.urandom(5000))
    dock(home, tmp_path / "card", "TS01", "timestamped")

    pulled = {i["name"]: i for i in json.loads(custody("ls", "--json").stdout)}
    late, on_time = pulled[local_name(old, "0001")], pulled[local_name(recent, "0002")]
    assert late["recorded_start"] == to_text(old)  # UTC, not the local digits of the name
    assert on_time["recorded_start"] == to_text(recent)
    assert (late["recorded_source"], on_time["recorded_source"]) == ("filename", "filename")
    assert late["late"] is True and on_time["late"] is False
    assert late["deadline"] == to_text(old + timedelta(hours=24))

    report = json.loads(custody("report", "window", "--json").stdout)
    assert [row["id"] for row in report["late_items"]] == [late["id"]]
    assert 5.9 < report["late_items"][0]["hours_late"] < 7
    assert report["late_items"][0]["officer"] == "031245"
    assert [row["id"] for row in json.loads(custody("ls", "--late", "--json").stdout)] == [late["id"]]
    assert "TS01" in custody("report", "window").stdout
    assert report["silent_recorders"] == []  # TS01 was just docked


def test_window_report_lists_assigned_recorders_not_docked_within_the_window(tmp_path, home, custody):
    custody("init")
    custody("officer", "add", "031245", "--name", "Wang Li")
    custody("recorder", "add", "AWAY01", "--officer", "031245", "--from", "2026-01-01")
    custody("recorder", "add", "SPARE01")  # not assigned: nobody owes footage from it
    custody("recorder", "add", "HOME01", "--officer", "031245", "--from", "2026-01-01")
    card = tmp_path / "card" / "DCIM"
    card.mkdir(parents=True)
    dock(home, tmp_path / "card", "HOME01", "dcim")
    report = json.loads(custody("report", "window", "--json").stdout)
    assert [(r["serial"], r["officer"], r["last_docked"]) for r in report["silent_recorders"]] == [
        ("AWAY01", "031245", None)
    ]
    [session] = json.loads(custody("status", "--json").stdout)["sessions"]
    assert (session["serial"], session["officer"]) == ("HOME01", "031245")


def test_officer_credited_is_the_one_assigned_at_recording_time(tmp_path, home, custody):
    custody("init")
    custody("officer", "add", "031245", "--name", "Wang Li")
    custody("officer", "add", "028811", "--name", "Li Na")
    custody(
        "recorder", "add", "TS02", "--officer", "031245", "--from", "2020-01-01", "--profile", "timestamped"
    )
    now = datetime.now(UTC).replace(microsecond=0)
    handover = now - timedelta(hours=5)
    custody("recorder", "assign", "TS02", "028811", "--from", handover.isoformat())
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    before, after = handover - timedelta(hours=1), handover + timedelta(hours=1)
    (dcim / local_name(before, "0001")).write_bytes(os.urandom(100))
    (dcim / local_name(after, "0002")).write_bytes(os.urandom(100))
    dock(home, tmp_path / "card", "TS02", "timestamped")
    credited = {i["name"]: i["credited_officer"] for i in json.loads(custody("ls", "--json").stdout)}
    assert credited == {local_name(before, "0001"): "031245", local_name(after, "0002"): "028811"}


def test_redock_skips_known_files_and_a_changed_file_becomes_a_new_linked_item(tmp_path, home, custody):
    custody("init")
    custody("recorder", "add", "TS03", "--profile", "dcim")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    (dcim / "A.MP4").write_bytes(os.urandom(4000))
    (dcim / "B.MP4").write_bytes(os.urandom(4000))
    first = dock(home, tmp_path / "card", "TS03", "dcim")
    assert (first.summary.new, first.summary.known) == (2, 0)

    second = dock(home, tmp_path / "card", "TS03", "dcim")
    assert (second.summary.new, second.summary.known, second.bytes_done) == (0, 2, 8000)
    # known files are recognised without being read: nothing was hashed
    assert second.summary.duplicate == 0

    (dcim / "B.MP4").write_bytes(os.urandom(5000))  # the recorder rewrote B
    third = dock(home, tmp_path / "card", "TS03", "dcim")
    assert (third.summary.new, third.summary.known) == (1, 1)
    items = json.loads(custody("ls", "--json").stdout)
    assert len(items) == 3
    new_b = items[-1]
    assert new_b["name"] == "B.MP4" and new_b["previous_item"] == items[1]["id"]


def test_clock_far_in_the_future_or_past_is_flagged_suspect_not_late(tmp_path, home, custody):
    custody("init")
    custody("recorder", "add", "TS04", "--profile", "timestamped")
    now = datetime.now(UTC).replace(microsecond=0)
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    (dcim / local_name(now + timedelta(days=3), "0001")).write_bytes(os.urandom(100))
    (dcim / local_name(now - timedelta(days=3 * 365), "0002")).write_bytes(os.urandom(100))
    (dcim / local_name(now - timedelta(hours=1), "0003")).write_bytes(os.urandom(100))
    dock(home, tmp_path / "card", "TS04", "timestamped")
    flags = {
        i["name"][-8:]: (i["clock_suspect"], i["late"]) for i in json.loads(custody("ls", "--json").stdout)
    }
    assert flags == {"0001.MP4": (True, False), "0002.MP4": (True, False), "0003.MP4": (False, False)}


def test_files_ingested_by_hand_with_recorder_are_listed_by_recorder(tmp_path, home, custody, footage):
    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"), "--recorder", "BWC0042", "--officer", "031245")
    custody("ingest", str(footage / "CLIP0002.MP4"))
    [item] = json.loads(custody("ls", "--recorder", "BWC0042", "--json").stdout)
    assert (item["name"], item["recorder"], item["tags"]["officer"]) == ("CLIP0001.MP4", "BWC0042", "031245")


def test_daemon_takes_the_oldest_deadline_first_across_recorders_one_file_per_recorder(
    tmp_path, home, custody
):
    from custody.ingestd.daemon import Daemon

    custody("init")
    now = datetime.now(UTC).replace(microsecond=0)
    settings = load_settings(home)
    sessions = {}
    with Vault(settings, "custody-daemon", writer=True) as vault:
        for serial, ages in (("RA", (1, 5)), ("RB", (2, 3))):
            card = tmp_path / serial / "DCIM"
            card.mkdir(parents=True)
            for hours in ages:
                (card / local_name(now - timedelta(hours=hours), f"{hours:04d}")).write_bytes(b"x")
            source = MediaSource(
                root=tmp_path / serial, serial=serial, profile_name="timestamped", kind="usb"
            )
            session = DockSession(vault, source, settings, None, now)
            sessions[serial] = session
        daemon = Daemon(settings, "custody-daemon")
        for session in sessions.values():
            daemon._enqueue(session, session.discover(session.summary))
        order = []
        with daemon._queue_ready:
            for _ in range(4):
                session, task = daemon._next_file()
                order.append((session.media.serial, os.path.basename(task.path)[-8:-4]))
                if len(order) % 2 == 0:  # both recorders busy: let their files finish
                    daemon._busy.clear()
    # Oldest recording (largest age) = earliest deadline; a busy recorder is never given a second file.
    assert order == [("RA", "0005"), ("RB", "0003"), ("RB", "0002"), ("RA", "0001")]


def test_a_dock_session_accounts_for_every_file_while_groups_are_stored_behind(tmp_path, home, custody):
    """Small files are stored in groups, a full group by a thread of its own while the next is
    sealed. After each file, the session's done and waiting files add up to at least the files
    it was given (so the last file always stores the last group and the session finishes), and at
    the end every file is an item, each group's sealed before the next was counted."""
    custody("init")
    custody("recorder", "add", "GRP01", "--profile", "dcim")
    card = tmp_path / "card" / "DCIM"
    card.mkdir(parents=True)
    for n in range(150):  # more than two groups
        (card / f"IMG{n:04d}.JPG").write_bytes(os.urandom(2000) + n.to_bytes(2, "big"))
    settings = load_settings(home)
    with Vault(settings, "custody-daemon", writer=True) as vault:
        source = MediaSource(root=tmp_path / "card", serial="GRP01", profile_name="dcim", kind="usb")
        session = DockSession(vault, source, settings, None, datetime.now(UTC))
        tasks = session.discover(session.summary)
        for given, task in enumerate(tasks, start=1):
            session.process(task, session.summary)
            assert session.files_done + session.waiting >= given, f"file {given}: a group unaccounted for"
        assert session.finished and session.waiting == 0
        assert session.summary.new == 150
        assert len(vault.list_items(ItemFilter())) == 150
        assert vault.catalog.intents() == [] and vault.objects.staging_files() == []
