"""Supervision (抽查考评, issue 20): a supervisor scoped to a unit draws a reproducible sample,
rates an item against the checklist; the officer sees it on their own footage, leaders in their
report; a supervisor changes no footage and no tags. Real vault, real SQLite, real clips; callers
as the daemon identifies them, through the operations' one authorization."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from custody.config import load_settings
from custody.errors import UsageError
from custody.operations import NoRequest, cases, items, perform, supervision
from custody.vault import Vault, access
from custody.vault.supervision import NotInSample

UNIT_ONE, UNIT_TWO = "一中队", "二中队"
CONFIG = f"""
[access.roles]
supervisor = ["lead1", "lead2"]
officer = ["wang", "zhao"]

[supervision]
sample_size = 2

[supervision.scopes]
lead1 = ["{UNIT_ONE}"]
lead2 = ["*"]
"""


@pytest.fixture
def station(custody, footage, home):
    """Officer 031245 (unit one) with three clips, officer 041000 (unit two) with one."""
    custody("init")
    with open(home / "custody.toml", "a", encoding="utf-8") as config:
        config.write(CONFIG)
    custody("officer", "add", "031245", "--name", "王力", "--unit", UNIT_ONE)
    custody("officer", "add", "041000", "--name", "赵敏", "--unit", UNIT_TWO)
    custody("officer", "login", "031245", "wang")
    custody("officer", "login", "041000", "zhao")
    clips = sorted(footage.glob("CLIP*.MP4"))
    custody("ingest", *map(str, clips), "--officer", "031245")
    custody("ingest", str(footage / "LONG0001.MP4"), "--officer", "041000")
    return load_settings(home)


def caller(name: str, role: str) -> access.Caller:
    return access.Caller(uid=5000 + len(name), gid=5000, pid=None, name=name, roles=(role,))


def month() -> tuple[str, str]:
    today = date.today()
    return (
        today - timedelta(days=30)
    ).isoformat() + "T00:00:00.000000Z", today.isoformat() + "T23:59:59.000000Z"


def test_a_supervisor_draws_rates_and_the_officer_and_the_leaders_report_see_it(station, custody):
    lead = caller("lead1", "supervisor")
    since, until = month()
    drawn = perform(
        station, "supervise_draw", supervision.DrawSample(since, until, unit=UNIT_ONE, seed=7), lead
    )
    picked = [review["item"] for review in drawn["reviews"]]
    assert len(picked) == 2 and set(picked) <= {"EV-000001", "EV-000002", "EV-000003"}
    assert drawn["candidates"] == 3 and drawn["seed"] == 7 and drawn["id"] == "SMP-000001"
    again = perform(
        station, "supervise_draw", supervision.DrawSample(since, until, unit=UNIT_ONE, seed=7), lead
    )
    assert [review["item"] for review in again["reviews"]] == picked  # reproducible from its seed
    fresh = perform(station, "supervise_draw", supervision.DrawSample(since, until, officer="031245"), lead)
    assert 0 <= fresh["seed"] < 2**53 and len(fresh["reviews"]) == 2

    # Scoped to unit one: unit two's officer and footage are out of reach, and out of sight.
    with pytest.raises(UsageError, match="not one you supervise"):
        perform(station, "supervise_draw", supervision.DrawSample(since, until, unit=UNIT_TWO), lead)
    with pytest.raises(UsageError, match="not in a unit you supervise"):
        perform(station, "supervise_draw", supervision.DrawSample(since, until, officer="041000"), lead)
    listed = perform(station, "ls", items.ListItems(), lead)
    assert sorted(item["id"] for item in listed) == ["EV-000001", "EV-000002", "EV-000003"]
    with pytest.raises(Vault.ItemNotFound):
        perform(station, "show", items.ItemRef("EV-000004"), lead)

    # Rating: a failing rating needs its problems; checklist keys are the configured ones.
    target = picked[0]
    rate = supervision.RateItem("SMP-000001", target, "fail", ("arrival",), ("complete",), "")
    with pytest.raises(UsageError, match="needs --problems"):
        perform(station, "supervise_rate", rate, lead)
    with pytest.raises(UsageError, match="no checklist entry 'smile'"):
        perform(
            station, "supervise_rate", supervision.RateItem("SMP-000001", target, "pass", ("smile",)), lead
        )
    [left_out] = {"EV-000001", "EV-000002", "EV-000003"} - set(picked)
    with pytest.raises(NotInSample, match=f"{left_out} is not in sample SMP-000001"):
        perform(station, "supervise_rate", supervision.RateItem("SMP-000001", left_out, "pass"), lead)
    problems = "stopped before the party signed <b>the record</b>"
    rated = perform(
        station, "supervise_rate",
        supervision.RateItem("SMP-000001", target, "fail", ("arrival",), ("complete",), problems), lead,
    )  # fmt: skip
    assert (rated["rating"], rated["checks"], rated["officer"]) == (
        "fail", {"arrival": True, "complete": False}, "031245",
    )  # fmt: skip

    # A supervisor changes no footage and no tags, and leaves no footage with it.
    for name, request in (
        ("tag", items.TagItems((target,), case="2026-0001")),
        ("case_open", cases.OpenCase("2026-0002", "x", "y", ("031245",))),
    ):
        with pytest.raises(Vault.AccessDenied):
            perform(station, name, request, lead)
    assert json.loads(custody("show", target, "--json").stdout)["tags"].get("case") is None

    # The officer sees the rating on their own footage; the other officer sees none of it.
    wang, zhao = caller("wang", "officer"), caller("zhao", "officer")
    shown = perform(station, "show", items.ItemRef(target), wang)
    assert [(r["rating"], r["problems"]) for r in shown["reviews"]] == [("fail", problems)]
    assert [r["item"] for r in perform(station, "supervise_results", NoRequest(), wang)] == [target]
    assert perform(station, "supervise_results", NoRequest(), zhao) == []
    with pytest.raises(Vault.AccessDenied):
        perform(station, "supervise_draw", supervision.DrawSample(since, until), wang)

    # The leaders' report counts it under the officer and the month of the review.
    report = perform(station, "report_officers", cases.ReportOfficers(since, until), lead)
    [row] = [r for r in report if r["officer"] == "031245"]
    assert (row["reviewed"], row["rated_fail"], row["recordings"]) == (1, 1, 3)
    assert all(r["officer"] != "041000" for r in report)  # not in lead1's units
    everyone = perform(
        station, "report_officers", cases.ReportOfficers(since, until), caller("lead2", "supervisor")
    )
    assert {r["officer"] for r in everyone} == {"031245", "041000"}

    # Another unit's supervisor does not see unit one's samples; every step is in the chain.
    assert perform(station, "supervise_ls", NoRequest(), caller("lead3", "supervisor"))["samples"] == []
    events = json.loads(custody("log", "--json").stdout)
    [first] = [
        e for e in events if e["action"] == "supervision-sampled" and e["details"]["sample"] == "SMP-000001"
    ]
    assert first["actor"] == "lead1" and first["details"]["seed"] == 7 and first["details"]["items"] == picked
    [review] = [e for e in events if e["action"] == "supervision-reviewed"]
    assert review["item"] == target and review["details"]["problems"] == problems
    assert any(e["action"] == "denied" and e["actor"] == "lead1" for e in events)
    assert json.loads(custody("verify", "--json").stdout)["ok"]


def test_supervision_settings_are_checked_with_one_line_naming_the_key(custody, home):
    custody("init")
    with open(home / "custody.toml", "a", encoding="utf-8") as config:
        config.write('\n[supervision.checklist]\n"bad key" = "x"\n')
    result = custody("status", expect=3)
    assert "supervision.checklist.bad key" in result.stderr and "Traceback" not in result.stderr


def test_an_officer_lists_exactly_their_own_footage_paged_or_whole(station, custody, footage, tmp_path):
    """What an officer may see is narrowed in SQL (credited officer, else the officer tag) before
    each item is checked: the same items as can_see decides, paged or not."""
    extra = tmp_path / "EXTRA.MP4"
    extra.write_bytes((footage / "CLIP0001.MP4").read_bytes() + b"\0")
    custody("ingest", str(extra))  # EV-000005, credited to no one
    custody("tag", "EV-000005", "--officer", "031245")
    wang = caller("wang", "officer")
    whole = [item["id"] for item in perform(station, "ls", items.ListItems(), wang)]
    assert whole == ["EV-000001", "EV-000002", "EV-000003", "EV-000005"]
    paged = [
        item["id"]
        for offset in (0, 2)
        for item in perform(station, "ls", items.ListItems(limit=2, offset=offset, newest_first=True), wang)
    ]
    assert paged == ["EV-000005", "EV-000003", "EV-000002", "EV-000001"]
    assert perform(station, "ls", items.ListItems(), caller("nobody-linked", "officer")) == []
