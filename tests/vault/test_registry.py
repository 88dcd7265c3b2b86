"""Officers, recorders and assignments through the real command: errors, history, audit."""

from __future__ import annotations

import json


def test_officer_and_recorder_registration_is_audited_and_listed(custody):
    custody("init")
    custody("officer", "add", "031245", "--name", "Wang Li", "--unit", "Traffic 2")
    custody(
        "recorder", "add", "BWC0042", "--officer", "031245", "--from", "2026-01-01", "--profile", "bwc-badge"
    )
    [officer] = json.loads(custody("officer", "ls", "--json").stdout)
    assert (officer["badge"], officer["name"], officer["unit"]) == ("031245", "Wang Li", "Traffic 2")
    [recorder] = json.loads(custody("recorder", "ls", "--json").stdout)
    assert (recorder["serial"], recorder["current_officer"], recorder["profile"]) == (
        "BWC0042",
        "031245",
        "bwc-badge",
    )
    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    assert actions[-2:] == ["officer-add", "recorder-add"]


def test_reassignment_keeps_history_and_credits_by_time(custody, home):
    from custody.config import load_settings
    from custody.vault import Vault

    custody("init")
    custody("officer", "add", "A1", "--name", "First")
    custody("officer", "add", "B2", "--name", "Second")
    custody("recorder", "add", "R1", "--officer", "A1", "--from", "2026-01-01")
    assert "(was A1)" in custody("recorder", "assign", "R1", "B2", "--from", "2026-06-01").stdout
    [recorder] = json.loads(custody("recorder", "ls", "--json").stdout)
    assert [
        (a["badge"], a["valid_from"][:10], (a["valid_until"] or "")[:10]) for a in recorder["assignments"]
    ] == [
        ("A1", "2026-01-01", "2026-06-01"),
        ("B2", "2026-06-01", ""),
    ]
    with Vault(load_settings(home), "test") as vault:
        assert vault.registry.officer_at("R1", "2026-03-01T00:00:00.000000Z") == "A1"
        assert vault.registry.officer_at("R1", "2026-07-01T00:00:00.000000Z") == "B2"
        assert vault.registry.officer_at("R1", "2025-07-01T00:00:00.000000Z") is None
    events = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "recorder-assign"]
    assert events[-1]["details"]["previous_officer"] == "A1"


def test_registry_errors_are_one_line_with_exit_codes_and_change_nothing(custody):
    custody("init")
    custody("officer", "add", "A1", "--name", "First")
    assert "already registered" in custody("officer", "add", "A1", "--name", "Again", expect=5).stderr
    assert "no officer ZZ" in custody("recorder", "add", "R1", "--officer", "ZZ", expect=5).stderr
    assert (
        "no recorder profile 'nope'" in custody("recorder", "add", "R1", "--profile", "nope", expect=2).stderr
    )
    assert json.loads(custody("recorder", "ls", "--json").stdout) == []
    custody("recorder", "add", "R1")
    assert "already registered" in custody("recorder", "add", "R1", expect=5).stderr
    custody("recorder", "retire", "R1")
    assert "was retired" in custody("recorder", "assign", "R1", "A1", expect=5).stderr
    assert "no recorder R9" in custody("recorder", "retire", "R9", expect=5).stderr
    assert "must not be empty" in custody("officer", "add", " ", "--name", "X", expect=2).stderr


def test_an_assignment_that_starts_tomorrow_is_upcoming_not_current(custody):
    """`recorder assign BWC0042 028811 --from TOMORROW` made 028811 the current officer today and took
    the recorder off the overdue list; the assignment in force now decides both."""
    from datetime import date, timedelta

    custody("init")
    custody("officer", "add", "031245", "--name", "Wang Li")
    custody("officer", "add", "028811", "--name", "Zhao Liu")
    custody("recorder", "add", "BWC0042", "--officer", "031245", "--from", "2026-01-01")
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    custody("recorder", "assign", "BWC0042", "028811", "--from", tomorrow)
    [recorder] = json.loads(custody("recorder", "ls", "--json").stdout)
    assert recorder["current_officer"] == "031245"
    assert (recorder["upcoming_officer"], recorder["upcoming_from"][:10] <= tomorrow) == ("028811", True)
    listing = custody("recorder", "ls").stdout
    assert "031245 (then 028811 from" in listing
    overdue = json.loads(custody("report", "window", "--json").stdout)["silent_recorders"]
    assert [(r["serial"], r["officer"]) for r in overdue] == [("BWC0042", "031245")]


def test_a_later_assignment_says_from_when_and_who_keeps_the_recorder_until_then(custody):
    from datetime import datetime, timedelta

    custody("init")
    custody("officer", "add", "A1", "--name", "First")
    custody("officer", "add", "B2", "--name", "Second")
    custody("recorder", "add", "R1", "--officer", "A1", "--from", "2026-01-01")
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%d")
    said = custody("recorder", "assign", "R1", "B2", "--from", tomorrow).stdout
    assert f"recorder R1 assigned to B2 from {tomorrow} 00:00" in said and "(A1 until then)" in said
    assert "(was A1)" not in said
