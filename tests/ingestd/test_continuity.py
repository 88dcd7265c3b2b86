"""Continuity: interruptions between a recorder's segments are found, reported and explained."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custody.config import load_settings
from custody.ingestd.continuity import Segment, find
from custody.vault import Vault, access
from tests.docking import dock

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def segment(item: int, start: float, length: float, path: str = "", session: int | None = 1) -> Segment:
    begin = T0 + timedelta(seconds=start)
    return Segment(
        item, begin, begin + timedelta(seconds=length), session, path or f"DCIM/FILE{item:04d}.MP4", "031245"
    )


def kinds(findings: list[dict]) -> list[tuple]:
    return [(f["kind"], f["before_item"], f["after_item"], f["seconds"]) for f in findings]


def test_a_hole_longer_than_the_tolerance_within_a_run_is_an_interruption():
    segments = [segment(1, 0, 300), segment(2, 301.5, 300), segment(3, 631.5, 300)]
    assert kinds(find(segments, "BWC1", tolerance=2, run_break=300)) == [("interruption", 2, 3, 30.0)]


def test_a_hole_longer_than_a_run_break_separates_recordings_and_is_not_reported():
    segments = [segment(1, 0, 60), segment(2, 60 + 301, 60)]
    assert find(segments, "BWC1", tolerance=2, run_break=300) == []


def test_overlaps_and_out_of_order_files_are_reported_not_merged():
    overlapping = [segment(1, 0, 60), segment(2, 50, 60)]
    assert kinds(find(overlapping, "BWC1", 2, 300)) == [("overlap", 1, 2, 10.0)]
    # FILE0002 holds an earlier recording than FILE0001: the recorder's clock jumped.
    swapped = [segment(1, 60, 60, "DCIM/FILE0001.MP4"), segment(2, 0, 60, "DCIM/FILE0002.MP4")]
    assert kinds(find(swapped, "BWC1", 2, 300)) == [("out-of-order", 2, 1, 0.0)]
    # FILE9 before FILE10 is the recorder's order, not a problem.
    natural = [segment(1, 0, 60, "DCIM/FILE9.MP4"), segment(2, 60, 60, "DCIM/FILE10.MP4")]
    assert find(natural, "BWC1", 2, 300) == []


def recording_segment(path: Path, start: datetime, seconds: int, tone: int) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=10:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency={tone}:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
            "-metadata", f"creation_time={start:%Y-%m-%dT%H:%M:%S}Z",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def test_three_segments_with_a_30_s_hole_give_one_interruption_closed_by_explain(tmp_path, home, custody):
    custody("init")
    custody("officer", "add", "031245", "--name", "Wang Li")
    custody("recorder", "add", "BWC7", "--officer", "031245", "--from", "2020-01-01")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    recording_segment(dcim / "FILE0001.MP4", start, 4, 440)
    recording_segment(dcim / "FILE0002.MP4", start + timedelta(seconds=4), 4, 550)
    recording_segment(dcim / "FILE0003.MP4", start + timedelta(seconds=4 + 4 + 30), 4, 660)
    dock(home, tmp_path / "card", "BWC7", "dcim")
    custody("media", "run", "--once")

    [gap] = json.loads(custody("report", "gaps", "--open", "--json").stdout)
    assert (gap["kind"], gap["recorder_serial"], gap["officer"]) == ("interruption", "BWC7", "031245")
    assert (gap["before_item"], gap["after_item"]) == ("EV-000002", "EV-000003")
    assert abs(gap["seconds"] - 30) < 0.2 and gap["state"] == "open"
    assert gap["id"] in custody("report", "gaps").stdout
    assert gap["id"] in custody("show", "EV-000003").stdout

    assert json.loads(custody("status", "--json").stdout)["open_continuity_findings"] == 1
    assert f"1 finding(s) to explain, oldest {gap['id']}" in custody("status").stdout

    # Once EV-000003 is restricted, a clerk not named on its case neither sees the finding nor
    # explains it; one named on the case does both.
    custody("tag", "EV-000003", "--case", "2026-PRIV", "--confidentiality", "restricted")
    custody("case", "staff", "2026-PRIV", "named-clerk")

    def as_clerk(name: str) -> Vault:
        clerk = access.Caller(uid=4242, gid=4242, pid=None, name=name, roles=("clerk",))
        return Vault(load_settings(home), name, caller=clerk)

    with as_clerk("other-clerk") as vault:
        assert vault.continuity.findings(open_only=True) == []
        assert vault.continuity.open_summary() == (0, None)
        with pytest.raises(Vault.FindingNotFound):
            vault.continuity.explain(gap["id"], "not mine to explain")
    with as_clerk("named-clerk") as vault:
        assert [f.finding_id for f in vault.continuity.findings(open_only=True)] == [gap["id"]]
        assert vault.continuity.open_summary() == (1, gap["id"])
    reason = "battery swapped during the arrest; see the incident report"
    custody("explain", gap["id"], "--reason", reason)
    assert json.loads(custody("report", "gaps", "--open", "--json").stdout) == []
    assert json.loads(custody("status", "--json").stdout)["open_continuity_findings"] == 0
    [closed] = json.loads(custody("report", "gaps", "--json").stdout)
    assert (closed["state"], closed["reason"]) == ("explained", reason)
    events = json.loads(custody("log", "--json").stdout)
    [found] = [e for e in events if e["action"] == "continuity-found"]
    [explained] = [e for e in events if e["action"] == "continuity-explained"]
    assert found["details"]["finding"] == gap["id"] and explained["details"]["reason"] == reason
    assert json.loads(custody("verify", "--json").stdout)["ok"]  # the reason is in the signed chain

    again = custody("explain", gap["id"], "--reason", "something else", expect=5)
    assert f"{gap['id']} is already explained" in again.stderr
    assert (
        "no continuity finding GAP-000099"
        in custody("explain", "GAP-000099", "--reason", "x", expect=5).stderr
    )
    assert "--reason is empty" in custody("explain", gap["id"], "--reason", "  ", expect=2).stderr

    # Running the analysis again (another job, a restart) records nothing twice.
    custody("media", "run", "--once")
    assert len(json.loads(custody("report", "gaps", "--json").stdout)) == 1


def test_a_hole_filled_by_a_segment_pulled_later_is_withdrawn_not_left_open(tmp_path, home, custody):
    custody("init")
    custody("recorder", "add", "BWC8", "--from", "2020-01-01")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    recording_segment(dcim / "FILE0001.MP4", start, 4, 440)
    middle = recording_segment(tmp_path / "FILE0002.MP4", start + timedelta(seconds=4), 4, 550)
    recording_segment(dcim / "FILE0003.MP4", start + timedelta(seconds=8), 4, 660)
    dock(home, tmp_path / "card", "BWC8", "dcim")
    custody("media", "run", "--once")
    [gap] = json.loads(custody("report", "gaps", "--open", "--json").stdout)
    assert abs(gap["seconds"] - 4) < 0.2

    middle.rename(dcim / middle.name)  # the recorder's missing segment turns up at the next dock
    dock(home, tmp_path / "card", "BWC8", "dcim")
    custody("media", "run", "--once")
    assert json.loads(custody("report", "gaps", "--open", "--json").stdout) == []
    [withdrawn] = json.loads(custody("report", "gaps", "--json").stdout)
    assert withdrawn["id"] == gap["id"] and withdrawn["state"] == "withdrawn"
    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    assert actions.count("continuity-found") == 1 and actions.count("continuity-withdrawn") == 1


def test_photos_documents_and_files_that_are_no_media_are_not_segments(tmp_path, home, custody):
    """Between photos and documents continuity reported "interruption of 54 s" and "out of order",
    asking a clerk to explain them: continuity is about consecutive video or audio segments."""
    import os

    custody("init")
    custody("recorder", "add", "BWC8", "--from", "2020-01-01")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    recording_segment(dcim / "FILE0001.MP4", start, 4, 440)
    notes = dcim / "FILE0002.MP4"  # not media at all: timed by its mtime, 56 s after the first ends
    notes.write_bytes(os.urandom(2000))
    moment = (start + timedelta(seconds=60)).timestamp()
    os.utime(notes, (moment, moment))
    recording_segment(dcim / "FILE0003.MP4", start + timedelta(seconds=4), 4, 550)
    dock(home, tmp_path / "card", "BWC8", "dcim")
    custody("media", "run", "--once")
    assert json.loads(custody("report", "gaps", "--json").stdout) == []
    assert [
        e for e in json.loads(custody("log", "--json").stdout) if e["action"].startswith("continuity")
    ] == []


def test_findings_do_not_depend_on_the_order_media_jobs_end(tmp_path, home, custody):
    """Jobs ending A, C, B made an "interruption" between A and C (B not read yet), then withdrew it:
    a finding a clerk may already have seen, churned by job order. None may be made until B is read."""
    from custody.ingestd.jobs import MediaJobs

    custody("init")
    custody("recorder", "add", "BWC9", "--from", "2020-01-01")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    for number in range(3):
        recording_segment(dcim / f"FILE000{number + 1}.MP4", start + timedelta(seconds=4 * number), 4, 440)
    dock(home, tmp_path / "card", "BWC9", "dcim")
    settings = load_settings(home)
    with Vault(settings, "custody-daemon", writer=True) as vault:
        jobs = MediaJobs(vault, settings)
        first, middle, last = (vault.media.claim() for _ in range(3))
        assert [first.item, middle.item, last.item] == [1, 2, 3]
        for job in (first, last, middle):
            jobs.run_job(job)
    assert json.loads(custody("report", "gaps", "--json").stdout) == []
    assert [
        e for e in json.loads(custody("log", "--json").stdout) if e["action"].startswith("continuity")
    ] == []


def test_an_interruption_in_a_cases_footage_is_listed_on_it_and_holds_its_archive_until_explained(
    tmp_path, home, custody
):
    """Art. 14: a continuous recording of an on-site act, interrupted, must be explained before
    the case file is archived. Real docked segments with a hole, linked to the inspection record."""
    custody("init")
    custody("officer", "add", "031245", "--name", "Wang Li")
    custody("recorder", "add", "BWC7", "--officer", "031245", "--from", "2020-01-01")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    recording_segment(dcim / "FILE0001.MP4", start, 4, 440)
    recording_segment(dcim / "FILE0002.MP4", start + timedelta(seconds=4 + 20), 4, 550)
    dock(home, tmp_path / "card", "BWC7", "dcim")
    custody("media", "run", "--once")
    [gap] = json.loads(custody("report", "gaps", "--open", "--json").stdout)

    case = "2026-0501"
    custody("case", "open", case, "--cause", "占道经营", "--party", "李四", "--handler", "031245",
            "--procedure", "simple")  # fmt: skip
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("inspection.pdf", "decision.pdf", "return.pdf"):
        (scans / name).write_bytes(b"%PDF-1.4 " + name.encode() * 40)
    filed = custody("case", "file", case, str(scans / "inspection.pdf"), "--type", "现场检查笔录", "--json")
    [inspection] = json.loads(filed.stdout)["documents"]
    custody("case", "link", inspection["id"], "EV-000001", "EV-000002")
    custody("tag", "EV-000001", "EV-000002", "--case", case, "--party", "李四")
    custody("case", "file", case, str(scans / "decision.pdf"), "--type", "行政处罚决定书")
    custody("case", "file", case, str(scans / "return.pdf"), "--type", "送达回证")
    custody("case", "close", case, "--ended", (datetime.now(UTC) - timedelta(days=1)).date().isoformat())

    shown = json.loads(custody("case", "show", case, "--json").stdout)
    assert [(g["id"], g["state"]) for g in shown["interruptions"]] == [(gap["id"], "open")]
    assert f"interruption {gap['id']} not explained" in custody("case", "show", case).stdout
    refused = custody("case", "archive", case, expect=4)
    assert f"interruption {gap['id']} is not explained" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert json.loads(custody("case", "show", case, "--json").stdout)["archives"] == []

    custody("explain", gap["id"], "--reason", "the party blocked the lens; see the inspection record")
    archived = json.loads(custody("case", "archive", case, "--json").stdout)
    assert archived["version"] == 1 and archived["gaps"] == []
    assert (
        json.loads(custody("case", "show", case, "--json").stdout)["interruptions"][0]["state"] == "explained"
    )
