"""Retention on a real vault: categories, holds, and the plan (which deletes nothing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.retention.test_disposition import old_footage


def plan(custody) -> dict:
    return json.loads(custody("retention", "plan", "--json").stdout)


def test_plan_lists_what_may_go_and_why_and_categories_and_holds_keep_footage(tmp_path, home, custody):
    custody("init")
    ages = {"old1": 3 * 365, "old2": 3 * 365 + 1, "old3": 3 * 365 + 2, "soon": 2 * 365 - 30, "new": 10}
    ids = old_footage(tmp_path, home, custody, ages)

    report = plan(custody)
    assert sorted(row["id"] for row in report["eligible"]) == sorted(ids[k] for k in ("old1", "old2", "old3"))
    assert [row["id"] for row in report["upcoming"]] == [ids["soon"]]
    assert report["eligible"][0]["rule"] == "the 2-year floor (no category): 2 years from recording"

    custody("tag", ids["old1"], "--category", "penalty_evidence")
    custody("tag", ids["old2"], "--case", "2023-0042")
    custody("retention", "category", "--case", "2023-0042", "major_case")
    held = json.loads(custody("hold", "add", ids["old3"], "--reason", "court order 17", "--json").stdout)
    report = plan(custody)
    assert report["eligible"] == [] and (report["permanent"], report["held"]) == (2, 1)
    text = custody("retention", "plan").stdout
    assert "nothing was deleted" in text

    custody("hold", "release", held["id"], "--reason", "order lifted")
    assert [row["id"] for row in plan(custody)["eligible"]] == [ids["old3"]]
    assert len(json.loads(custody("ls", "--json").stdout)) == 5  # planning deleted nothing

    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    for action in ("category-added", "case-category-added", "hold-placed", "hold-released"):
        assert actions.count(action) == 1, action


def test_unknown_categories_and_bad_holds_are_refused_with_one_line(tmp_path, home, custody, footage):
    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"))
    result = custody("tag", "EV-000001", "--category", "forever", expect=2)
    assert "no retention category 'forever'" in result.stderr and "penalty_evidence" in result.stderr
    assert json.loads(custody("show", "EV-000001", "--json").stdout)["tags"] == {}  # nothing half-done
    assert "give one ITEM or --case CASE" in custody("hold", "add", "--reason", "x", expect=2).stderr
    assert "--reason is empty" in custody("hold", "add", "EV-000001", "--reason", " ", expect=2).stderr
    assert (
        "no hold HOLD-000009" in custody("hold", "release", "HOLD-000009", "--reason", "x", expect=5).stderr
    )
    placed = json.loads(custody("hold", "add", "EV-000001", "--reason", "audit", "--json").stdout)
    custody("hold", "release", placed["id"], "--reason", "done")
    again = custody("hold", "release", placed["id"], "--reason", "again", expect=5)
    assert "was already released" in again.stderr
    assert [h["id"] for h in json.loads(custody("hold", "ls", "--all", "--json").stdout)] == [placed["id"]]
    assert json.loads(custody("hold", "ls", "--json").stdout) == []


def test_tag_adds_categories_with_other_tags_in_one_step(custody, footage):
    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"))
    out = custody(
        "tag", "EV-000001", "--case", "2026-0412", "--category", "obstruction", "--category", "routine"
    )
    assert "retention categories - -> obstruction, routine" in out.stdout
    assert json.loads(custody("show", "EV-000001", "--json").stdout)["tags"] == {"case": "2026-0412"}
    report = json.loads(custody("retention", "plan", "--json").stdout)
    assert report["permanent"] == 1 and report["eligible"] == []


def test_show_says_how_long_an_item_is_kept_and_why(custody, footage):
    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"))
    detail = json.loads(custody("show", "EV-000001", "--json").stdout)
    assert (
        detail["retention"]["rule"]
        == "the 2-year floor (no category): 2 years from ingest (recording time unknown)"
    )
    custody("tag", "EV-000001", "--category", "major_incident")
    detail = json.loads(custody("show", "EV-000001", "--json").stdout)
    assert (detail["retention"]["permanent"], detail["retention"]["categories"]) == (True, ["major_incident"])
    assert "kept until: for ever (permanent: category major_incident)" in custody("show", "EV-000001").stdout


def test_the_daily_report_and_the_custodians_notice(tmp_path, home, custody):
    custody("init")
    old_footage(tmp_path, home, custody, {"gone": 800, "week": 2 * 365 - 3, "month": 2 * 365 - 30})
    now = datetime.now(UTC)
    reports = tmp_path / "reports"
    out = custody("retention", "plan", "--report-dir", str(reports)).stdout
    [written] = list(reports.iterdir())
    assert written.name == f"retention-plan-{now.date().isoformat()}.json" and str(written) in out
    saved = json.loads(written.read_text())
    assert (len(saved["eligible"]), len(saved["upcoming"])) == (1, 2)
    notice = json.loads(custody("report", "retention", "--days", "7", "--json").stdout)
    assert (len(notice["eligible"]), len(notice["upcoming"])) == (1, 1)
    assert "1 eligible now, 1 within 7 days" in custody("report", "retention").stdout


def test_fresh_footage_from_a_recorder_whose_clock_was_reset_is_kept_from_its_ingest(tmp_path, home, custody):
    """A recorder whose clock says 2023 docks today: its footage is flagged "clock suspect" and must
    not be offered for disposal minutes later; retention runs from the later of recording and ingest."""
    import os
    from datetime import timedelta

    from tests.docking import dock
    from tests.ingestd.test_dock import local_name

    custody("init")
    custody("recorder", "add", "TS01", "--from", "2000-01-01", "--profile", "timestamped")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    reset_clock = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3 * 365)
    (dcim / local_name(reset_clock, "0001")).write_bytes(os.urandom(5000))
    dock(home, tmp_path / "card", "TS01", "timestamped")
    [item] = json.loads(custody("ls", "--json").stdout)
    assert item["clock_suspect"] and item["recorded_start"][:4] == str(reset_clock.year)

    report = plan(custody)
    assert report["eligible"] == [] and report["upcoming"] == []
    shown = custody("show", item["id"]).stdout
    assert "from ingest (recorder clock suspect: its recording time is not trusted)" in shown
