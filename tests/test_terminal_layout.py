"""Every listing at an 80x24 terminal: ids whole, nothing wider than the terminal, columns left out
with a note before anything is cut; one stable tab-separated layout when piped; log one line per
event; long output through the pager."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from rich.cells import cell_len

from tests.conftest import not_media
from tests.docking import dock
from tests.ingestd.test_continuity import recording_segment
from tests.terminal import run_at_terminal

pytestmark = pytest.mark.slow

CASE = "2026-XZCF-004512"
PARTY = "王小明 (Beijing Huaxia Trading Co., Ltd.)"
LONG_NAME = "BWC0042_031245_20261130105500_0001_IMPORTANT_EVIDENCE.MP4"


@pytest.fixture
def busy_vault(tmp_path, home, custody):
    """A vault with what a clerk's day leaves: long names, a long party, a gap, a hold, an export."""
    custody("init", "--organisation", "Test County Public Security Bureau")
    custody("officer", "add", "031245", "--name", "Wang Li", "--unit", "Traffic Police Brigade 2, Dongcheng")
    custody("officer", "add", "028811", "--name", "Zhang Min")
    custody("recorder", "add", "BWC0042", "--officer", "031245", "--from", "2020-01-01")
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%d")
    custody("recorder", "assign", "BWC0042", "028811", "--from", tomorrow)
    card = tmp_path / "card" / "DCIM"
    card.mkdir(parents=True)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    recording_segment(card / "FILE0001.MP4", start, 2, 440)
    recording_segment(card / "FILE0002.MP4", start + timedelta(seconds=32), 2, 550)  # a 30 s hole
    dock(home, tmp_path / "card", "BWC0042", "dcim")
    custody("media", "run", "--once")
    loose = tmp_path / LONG_NAME
    loose.write_bytes(not_media(5000))
    custody("ingest", str(loose))
    for item in ("EV-000001", "EV-000002", "EV-000003"):
        custody("tag", item, "--case", CASE, "--party", PARTY, "--officer", "031245")
    custody(
        "hold", "add", "--case", CASE, "--reason", "appeal pending before the intermediate court, file 17"
    )
    custody(
        "export", "disc", "--case", CASE, "--maker", "Li Wei", "--extractor", "Zhang Min",
        "--iso", str(tmp_path / "case.iso"),
    )  # fmt: skip
    ids = {
        "items": ["EV-000001", "EV-000002", "EV-000003"],
        "gap": json.loads(custody("report", "gaps", "--json").stdout)[0]["id"],
        "hold": json.loads(custody("hold", "ls", "--json").stdout)[0]["id"],
        "export": json.loads(custody("export", "ls", "--json").stdout)[0]["id"],
    }
    return ids


LISTINGS = [
    ("ls",),
    ("show", "EV-000003"),
    ("log",),
    ("officer", "ls"),
    ("recorder", "ls"),
    ("status",),
    ("report", "gaps"),
    ("report", "window"),
    ("report", "retention"),
    ("hold", "ls"),
    ("retention", "plan"),
    ("retention", "requests"),
    ("export", "ls"),
]


def ids_in(command: tuple[str, ...], ids: dict) -> list[str]:
    """The ids a clerk must be able to copy from this listing."""
    return {
        ("ls",): [*ids["items"], "EV-000003"],
        ("show", "EV-000003"): ["EV-000003"],
        ("log",): ["EV-000001", "EV-000003"],
        ("officer", "ls"): ["031245", "028811"],
        ("recorder", "ls"): ["BWC0042"],
        ("status",): ["BWC0042"],
        ("report", "gaps"): [ids["gap"], "EV-000001", "EV-000002"],
        ("hold", "ls"): [ids["hold"]],
        ("export", "ls"): [ids["export"], CASE],
    }.get(command, [])


def test_every_listing_fits_80_columns_with_every_id_whole(busy_vault, home):
    for command in LISTINGS:
        status, shown = run_at_terminal(home, *command)
        assert status == 0, (command, shown)
        too_wide = [line for line in shown.splitlines() if cell_len(line) > 80]
        assert too_wide == [], (command, too_wide)
        words = set(re.split(r"[\s│|,:()]+", shown))
        for wanted in ids_in(command, busy_vault):
            assert wanted in words, f"{' '.join(command)}: {wanted} is not whole in\n{shown}"
        if "left out to fit" in shown:
            assert "--wide" in shown and "--json" in shown


def test_ls_leaves_out_the_hash_before_cutting_a_case_party_or_officer(busy_vault, home):
    _, shown = run_at_terminal(home, "ls")
    note = shown[shown.index("(left out to fit 80 columns: ") :].replace("\n", " ")
    assert note.startswith("(left out to fit 80 columns: sha256")  # the hash goes first
    [row] = [line for line in shown.splitlines() if "EV-000003" in line]
    assert "031245" in row and CASE in row  # never cut: the officer and case stay whole
    _, wide = run_at_terminal(home, "ls", "--wide")
    assert "sha256" in wide and "left out" not in wide


def test_log_is_one_line_per_event_and_long_shows_the_details(busy_vault, home, custody):
    events = json.loads(custody("log", "--json").stdout)
    _, shown = run_at_terminal(home, "log", rows=10000)
    event_lines = [line for line in shown.splitlines() if re.match(r"\s*\d+\s", line)]
    assert len(event_lines) == len(events)
    assert len(shown.splitlines()) <= len(events) + 4  # a header, its rule, and the note
    _, long = run_at_terminal(home, "log", "--long", rows=10000)
    assert len(long.splitlines()) > len(shown.splitlines())  # the details wrap
    _, long = run_at_terminal(home, "log", "--long", rows=10000, columns=400)
    assert '"reason":"appeal pending before the intermediate court, file 17"' in long


def test_long_output_goes_through_the_pager_at_a_terminal(busy_vault, home, tmp_path):
    paged = tmp_path / "paged.txt"
    _, shown = run_at_terminal(home, "log", rows=10, env={"PAGER": f"cat > {paged}"})
    assert "EV-000003" in paged.read_text() and "EV-000003" not in shown
    _, short = run_at_terminal(home, "officer", "ls", rows=40, env={"PAGER": f"cat > {tmp_path / 'no.txt'}"})
    assert "031245" in short and not (tmp_path / "no.txt").exists()  # one screen: no pager


def test_piped_listings_are_tab_separated_with_every_column(busy_vault, home):
    piped = subprocess.run(
        [sys.executable, "-m", "custody", "--home", str(home), "ls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert piped[0].split("\t") == ["id", "name", "recorded", "officer", "case", "party", "size", "sha256"]
    rows = [line.split("\t") for line in piped[1:4]]
    assert [row[0] for row in rows] == busy_vault["items"]
    assert all(len(row) == 8 and row[4] == CASE and row[5] == PARTY for row in rows)
    assert rows[2][1] == LONG_NAME
    import os

    laid_out = subprocess.run(
        [sys.executable, "-m", "custody", "--home", str(home), "ls"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CUSTODY_LAYOUT": "terminal", "COLUMNS": "80"},
    ).stdout  # a demo's transcript: laid out as an 80-column terminal shows it
    assert "\t" not in laid_out and "left out to fit 80 columns" in laid_out
    assert all(cell_len(line) <= 80 for line in laid_out.splitlines())
    gaps = subprocess.run(
        [sys.executable, "-m", "custody", "--home", str(home), "report", "gaps"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert gaps[0] == "# continuity"
    assert gaps[1].split("\t")[0] == "id" and gaps[2].split("\t")[0] == busy_vault["gap"]


def test_replica_status_fits_80_columns_too(tmp_path, home, custody, s3):
    custody("init")
    config = home / "custody.toml"
    config.write_text(config.read_text() + "\n" + s3.target_toml(s3.new_bucket(object_lock=True)))
    status, shown = run_at_terminal(home, "replicate", "status")
    assert status == 0, shown
    assert all(cell_len(line) <= 80 for line in shown.splitlines()), shown
    assert "offsite" in re.split(r"\s+", shown)
