"""Chinese throughout (issue 21): the command line speaks the person's language from the same
catalogs as the web platform. Every command's help is checked against the catalog (coverage) and
shown translated; --json is the same in either language; a table of Chinese names fits 80 columns
at a real terminal with its ids whole; an error is said in Chinese."""

from __future__ import annotations

import json
import re

import pytest
from babel.messages.pofile import read_po
from click.testing import CliRunner
from rich.cells import cell_len

from custody.cli import cli
from custody.cli.catalog import cli_messages, command_messages
from custody.cli.translated import help_messages
from custody.i18n import CHINESE, LOCALE, has_translation, translations
from tests.terminal import run_at_terminal
from tests.test_cli import COMMANDS

ZH = {"LANG": "zh_CN.UTF-8", "LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None}
EN = {"LANG": "C.UTF-8", "LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None}


def test_every_message_the_command_line_shows_has_its_chinese():
    messages = cli_messages()
    assert len(messages) > 400 and "Show this message and exit." in messages
    assert [m for m in messages if not has_translation(m)] == [], "run scripts/catalog and translate"


def test_every_message_in_the_catalog_template_has_its_chinese():
    """Everything scripts/catalog extracted (the code's marked messages too) is translated."""
    with open(LOCALE / "messages.pot", "rb") as source:
        template = read_po(source)
    ids = [message.id for message in template if message.id]
    assert len(ids) > 600
    assert [m for m in ids if not has_translation(m if isinstance(m, str) else m[0])] == []


def _folded(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "custody")
def test_every_commands_help_is_shown_in_chinese(path):
    command = cli
    for name in path:
        command = command.commands[name]
    result = CliRunner(env=ZH).invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    shown = _folded(result.output)
    chinese = translations(CHINESE)
    own = [
        *help_messages(command.help or ""),
        *(" ".join(p.help.split()) for p in command.params if getattr(p, "help", None)),
    ]
    for message in own:
        assert _folded(chinese.gettext(message)) in shown, (message, result.output)
    assert "用法：" in result.output and "显示本帮助并退出。" in result.output
    english = CliRunner(env=EN).invoke(cli, [*path, "--help"]).output
    assert "Usage:" in english and "用法" not in english
    assert command_messages(command)  # (every command says something)


def test_json_is_the_same_in_either_language_and_errors_are_said_in_chinese(custody, footage, home):
    custody("init")
    custody("ingest", str(footage))
    custody("tag", "EV-000001", "--case", "2026-0001", "--party", "张三")
    for args in (["ls", "--json"], ["show", "EV-000001", "--json"], ["report", "window", "--json"],
                 ["case", "types", "--json"]):  # fmt: skip
        outputs = [CliRunner(env=env).invoke(cli, ["--home", str(home), *args]) for env in (ZH, EN)]
        assert all(o.exit_code == 0 for o in outputs), outputs[0].output
        assert json.loads(outputs[0].stdout) == json.loads(outputs[1].stdout), args
    missing = CliRunner(env=ZH).invoke(cli, ["--home", str(home), "show", "EV-000099"])
    assert missing.exit_code == 5
    assert "本证据库中没有文件 EV-000099" in missing.stderr and "Traceback" not in missing.stderr
    english = CliRunner(env=EN).invoke(cli, ["--home", str(home), "show", "EV-000099"])
    assert "no item EV-000099 in this vault" in english.stderr
    # Words composed in the code (Said) inside an error's fields: said in Chinese in-process too,
    # as through the socket.
    backwards = ["--home", str(home), "report", "officers", "--from", "2026-02-01", "--until", "2026-01-01"]
    said = CliRunner(env=ZH).invoke(cli, backwards)
    assert said.exit_code == 2 and "--from 晚于 --until" in said.stderr, said.stderr
    assert "is after" in CliRunner(env=EN).invoke(cli, backwards).stderr
    # The retention rule (words composed in the policy): Chinese when shown, English in --json.
    shown = CliRunner(env=ZH).invoke(cli, ["--home", str(home), "show", "EV-000001"]).stdout
    assert "两年最低保存期（无类别）：自" in shown and "2-year floor" not in shown, shown
    assert (
        "the 2-year floor (no category): 2 years from"
        in json.loads(
            CliRunner(env=ZH).invoke(cli, ["--home", str(home), "show", "EV-000001", "--json"]).stdout
        )["retention"]["rule"]
    )
    # click's own plural words (ngettext) too.
    typo = CliRunner(env=ZH).invoke(cli, ["--home", str(home), "holds"])
    assert typo.exit_code == 2 and "您是否要使用 'hold'？" in typo.stderr, typo.stderr
    config = home / "custody.toml"
    config.write_text(config.read_text() + '\n[export]\nmedia = "tape"\n')
    wrong = CliRunner(env=ZH).invoke(cli, ["--home", str(home), "ls"])
    assert wrong.exit_code == 3 and "export.media：必须是以下之一：cd, dvd" in wrong.stderr, wrong.stderr


def test_a_table_of_chinese_names_fits_80_columns_with_its_ids_whole(custody, footage, home):
    custody("init")
    custody("ingest", str(footage))
    custody(
        "tag",
        "EV-000001",
        "EV-000002",
        "--case",
        "2026-行政-0001",
        "--party",
        "某某县城关镇张三丰商贸有限公司",
    )
    custody("tag", "EV-000003", "--party", "欧阳李四王五赵六钱七孙八周九吴十")
    status, shown = run_at_terminal(home, "ls", columns=80, env={"LANG": "zh_CN.UTF-8"})
    assert status == 0, shown
    lines = shown.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), shown
    assert "编号" in shown and "当事人" in shown  # the headings in Chinese
    for item in ("EV-000001", "EV-000002", "EV-000003", "EV-000004"):
        assert item in shown, shown
    status, english = run_at_terminal(home, "ls", columns=80, env={"LANG": "C.UTF-8"})
    assert status == 0 and "party" in english and "当事人" not in english


def _english_fragments() -> list[str]:
    """The catalog's messages as they would appear untranslated: their fixed parts of two words
    or more (placeholders cut out)."""
    with open(LOCALE / "messages.pot", "rb") as source:
        template = read_po(source)
    fragments = set()
    for message in template:
        text = message.id if isinstance(message.id, str) else (message.id or [""])[0]
        for part in re.split(r"\{[^}]*\}|%\([^)]*\)s", text or ""):
            part = part.strip(" :;,.()")
            if (
                len(part.split()) >= 2
                and re.search(r"[a-z]{3}", part)
                and not part.startswith(("custody ", "--"))
            ):
                fragments.add(part)
    return sorted(fragments)


def test_the_readme_walkthrough_speaks_chinese(custody, footage, home, tmp_path):
    """Every command of the README's walkthrough under LANG=zh_CN.UTF-8, at a real terminal where
    it lays out tables: none of its own messages is left in English."""
    zh = {"LANG": "zh_CN.UTF-8"}
    said = []
    for args in (["init", "--organisation", "某县综合行政执法局"], ["ingest", str(footage), "--officer", "031245"],
                 ["ingest", str(footage)], ["tag", "EV-000001", "EV-000002", "--case", "2026-0412", "--party", "王力"],
                 ["ls"], ["show", "EV-000001"], ["extract", "EV-000001", "--out", str(tmp_path / "out.mp4")],
                 ["verify"], ["log"], ["anchor"]):  # fmt: skip
        status, shown = run_at_terminal(home, *args, columns=100, env=zh)
        assert status == 0, (args, shown)
        said.append(shown)
    text = "\n".join(said)
    assert "新增" in text and "已标注 2 个文件" in text and "已检查" in text and "令牌" in text
    left = [fragment for fragment in _english_fragments() if fragment in text]
    assert left == [], left


def test_the_generated_config_is_commented_in_the_persons_language(tmp_path):
    import tomllib

    for env, header, section in (
        (ZH, "# custody 配置。", "# 本接入采集站的身份"),
        (EN, "# custody configuration.", "# Who this"),
    ):
        home = tmp_path / env["LANG"]
        result = CliRunner(env=env).invoke(
            cli, ["--home", str(home), "init", "--organisation", "某县综合行政执法局"]
        )
        assert result.exit_code == 0, result.output
        text = (home / "custody.toml").read_text(encoding="utf-8")
        assert text.startswith(header) and section in text
        assert tomllib.loads(text)["station"]["organisation"] == "某县综合行政执法局"
