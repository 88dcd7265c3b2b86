"""The command tree: help everywhere (acceptance 9), JSON everywhere, errors as one line."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from custody.cli import cli


def walk(group: click.Group, path=()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from walk(command, (*path, name))


COMMANDS = [(), *[path for path, _ in walk(cli)]]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "custody")
def test_every_command_has_a_summary_and_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    summary = lines[2].strip() if len(lines) > 2 else ""
    assert summary and not summary.startswith("Options"), f"no one-line summary:\n{result.output}"
    assert "Example:" in result.output
    example = result.output.split("Example:")[1].strip().splitlines()[0].strip()
    assert example.startswith("custody "), example


def test_the_walk_sees_the_clerks_commands():
    names = {path[-1] for path in COMMANDS if path}
    assert {"init", "ingest", "ls", "show", "tag", "extract", "cat", "verify", "log"} <= names


def test_commands_that_print_data_have_json(custody, footage):
    custody("init")
    assert (
        json.loads(custody("ingest", str(footage), "--json").stdout.splitlines()[-1])["summary"]["new"] == 4
    )
    listed = json.loads(custody("ls", "--json").stdout)
    assert len(listed) == 4
    assert json.loads(custody("show", listed[0]["id"], "--json").stdout)["sha256"] == listed[0]["sha256"]
    tagged = json.loads(custody("tag", listed[0]["id"], "--case", "C-1", "--json").stdout)
    assert tagged == [{"id": listed[0]["id"], "changed": {"case": {"from": None, "to": "C-1"}}}]
    assert json.loads(custody("verify", "--json").stdout)["ok"] is True
    assert json.loads(custody("log", "--json").stdout)[0]["action"] == "init"


def test_ls_filters(custody, footage):
    custody("init")
    custody("ingest", str(footage), "--officer", "031245")
    custody("tag", "EV-000001", "EV-000002", "--case", "2026-0412", "--party", "Wang Li")
    custody("tag", "EV-000003", "--case", "2026-0500")

    def ids(*args):
        return [item["id"] for item in json.loads(custody("ls", *args, "--json").stdout)]

    assert ids("--case", "2026-0412") == ["EV-000001", "EV-000002"]
    assert ids("--party", "Wang Li", "--officer", "031245") == ["EV-000001", "EV-000002"]
    assert ids("--untagged") == ["EV-000003", "EV-000004"]
    assert ids("--officer", "999") == []
    assert len(ids("--since", "2000-01-01", "--until", "2999-12-31")) == 4
    assert ids("--until", "2000-01-01") == []
    custody("tag", "EV-000001", "--case", "", "--clear")
    assert ids("--case", "2026-0412") == ["EV-000002"]
    assert "EV-000001" in ids("--untagged")
    assert "--since 'last week' is not a date" in custody("ls", "--since", "last week", expect=2).stderr


def test_errors_are_one_line_and_debug_shows_the_traceback(custody, home):
    result = custody("show", "EV-000001", expect=4)
    assert len(result.stderr.strip().splitlines()) == 1
    runner = CliRunner()
    debug = runner.invoke(cli, ["--home", str(home), "--debug", "show", "EV-000001"])
    assert debug.exit_code != 0 and debug.exception is not None


def test_tag_refuses_control_characters(custody, footage):
    custody("init")
    custody("ingest", str(footage / "CLIP0001.MP4"))
    result = custody("tag", "EV-000001", "--party", "Wang\nLi", expect=2)
    assert "line break" in result.stderr
    assert json.loads(custody("show", "EV-000001", "--json").stdout)["tags"] == {}


def test_ls_finds_names_as_clerks_type_them(tmp_path, custody):
    """`ls --party "wang li"` found nothing for "Wang Li": names match in any case and by part; case
    numbers by their beginning (an export still takes exactly its own case)."""
    import json

    card = tmp_path / "card"
    card.mkdir()
    for name in ("BWC_Clip01.MP4", "other.mp4", "third.mp4"):
        (card / name).write_bytes(name.encode() * 100)
    custody("init")
    custody("ingest", str(card))
    ids = {item["name"]: item["id"] for item in json.loads(custody("ls", "--json").stdout)}
    custody("tag", ids["BWC_Clip01.MP4"], "--case", "2026-0412", "--party", "Wang Li")
    custody("tag", ids["other.mp4"], "--case", "2026-0413", "--party", "Li Wang Lijun")
    custody("tag", ids["third.mp4"], "--case", "2025-0412", "--party", "Zhang San")

    def found(*args: str) -> list[str]:
        return sorted(item["name"] for item in json.loads(custody("ls", "--json", *args).stdout))

    assert found("--party", "wang li") == ["BWC_Clip01.MP4", "other.mp4"]
    assert found("--party", "WANG LI") == found("--party", "wang li")
    assert found("--name", "clip") == ["BWC_Clip01.MP4"]
    assert found("--case", "2026-04") == ["BWC_Clip01.MP4", "other.mp4"]
    assert found("--case", "2026-0412") == ["BWC_Clip01.MP4"]
    assert found("--case", "2026-04", "--party", "li w") == ["other.mp4"]


def test_tags_name_a_registered_officer_and_clear_only_when_asked(tmp_path, custody):
    """`--officer 03l245` (a letter l) was accepted, and `--case ''` silently untagged evidence."""
    import json

    card = tmp_path / "card"
    card.mkdir()
    (card / "A.MP4").write_bytes(b"a" * 1000)
    custody("init")
    custody("officer", "add", "031245", "--name", "Wang Li")
    custody("ingest", str(card))
    typo = custody("tag", "EV-000001", "--officer", "03l245", expect=5)
    assert "no officer 03l245 is registered" in typo.stderr and "--unregistered" in typo.stderr
    custody("tag", "EV-000001", "--officer", "031245", "--case", "2026-0412")
    custody("tag", "EV-000001", "--officer", "X-1", "--unregistered")
    refused = custody("tag", "EV-000001", "--case", "", expect=2)
    assert "would take the case tag off: add --clear" in refused.stderr
    [item] = json.loads(custody("ls", "--json").stdout)
    assert item["tags"]["case"] == "2026-0412" and item["tags"]["officer"] == "X-1"
    custody("tag", "EV-000001", "--case", "", "--clear")
    [item] = json.loads(custody("ls", "--json").stdout)
    assert not item["tags"].get("case")


def test_times_are_shown_in_the_stations_zone_with_the_zone_and_utc_on_request(tmp_path, home, custody):
    """People saw UTC (with microseconds, in places) and no zone; stored times stay UTC."""
    import json
    import os
    import subprocess
    import sys

    card = tmp_path / "card"
    card.mkdir()
    (card / "A.MP4").write_bytes(b"a" * 1000)
    custody("init")
    custody("ingest", str(card))
    stored = json.loads(custody("ls", "--json").stdout)[0]["ingested_at"]
    assert stored.endswith("Z")

    def shown(*args: str, zone: str = "Asia/Shanghai") -> str:
        env = {**os.environ, "TZ": zone}
        return subprocess.run(
            [sys.executable, "-m", "custody", "--home", str(home), *args],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    from datetime import datetime, timedelta

    moment = datetime.strptime(stored, "%Y-%m-%dT%H:%M:%S.%fZ")
    beijing = (moment + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    assert f"{beijing} CST" in shown("ls")
    assert f"{moment:%Y-%m-%d %H:%M} UTC" in shown("--utc", "ls")
    assert f"{(moment - timedelta(hours=3)):%Y-%m-%d %H:%M} -03:00" in shown("ls", zone="America/Sao_Paulo")
    assert f"ingested: {beijing} CST" in shown("show", "EV-000001")
    assert json.loads(shown("ls", "--json"))[0]["ingested_at"] == stored  # scripts keep UTC
