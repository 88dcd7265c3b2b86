"""Hostile input from outside: names that look like markup or hide their order, trees that trap a walk,
files swapped for FIFOs, and a vault made in a folder others could read."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from custody.config import Settings
from custody.ingestd.pipeline import MAX_FOLDER_DEPTH
from custody.vault import Vault

BIDI_NAME = "invoice\u202egpj.mp4"  # shows as "invoicemp4.jpg" where the override is obeyed


def test_names_and_tags_that_look_like_markup_are_shown_as_they_are(tmp_path, home, custody):
    folder = tmp_path / "card" / "DCIM["
    folder.mkdir(parents=True)
    (folder / "x]clip.mp4").write_bytes(os.urandom(2000))
    (folder / "[bold red]b.mp4").write_bytes(os.urandom(2000))
    (folder / BIDI_NAME).write_bytes(os.urandom(2000))
    custody("init")
    custody("ingest", str(tmp_path / "card"))
    ids = {item["name"]: item["id"] for item in json.loads(custody("ls", "--json").stdout)}
    custody("tag", ids["x]clip.mp4"], "--party", "[/x]")
    custody("tag", ids["[bold red]b.mp4"], "--party", "[bold red]Wang")
    listing = custody("ls").stdout
    assert "[bold red]b.mp4" in listing and "[bold red]Wang" in listing and "[/x]" in listing
    assert "invoice\\u202egpj.mp4" in listing and "\u202e" not in listing
    shown = custody("show", ids["invoice\\u202egpj.mp4"]).stdout
    assert "DCIM[/invoice\\u202egpj.mp4" in shown and "\u202e" not in shown
    assert "x]clip.mp4" in custody("show", ids["x]clip.mp4"]).stdout
    log = custody("log").stdout
    assert "[/x]" in log and "\u202e" not in log
    # JSON keeps the exact text for scripts.
    assert json.loads(custody("show", ids["x]clip.mp4"], "--json").stdout)["tags"]["party"] == "[/x]"


def test_tags_refuse_control_characters_and_bidi_overrides(home, custody):
    custody("init")
    for value in ("Wang\u202eLi", "Wang\x85Li", "Wang\nLi", "Wang\u2066Li"):
        refused = custody("tag", "EV-000001", "--party", value, expect=2)
        assert "control character or a bidi override" in refused.stderr, repr(value)


def test_a_tree_too_deep_fails_alone_and_the_rest_is_ingested(tmp_path, home, custody):
    card = tmp_path / "card"
    deep = card / "trap"
    deep.mkdir(parents=True)
    for _level in range(1200):  # (os.makedirs recurses too)
        deep = deep / "d"
        deep.mkdir()  # the walk raised RecursionError here before
    (card / "CLIP0001.MP4").write_bytes(os.urandom(5000))
    custody("init")
    try:
        result = custody("ingest", str(card), "--json", expect=1)
    finally:
        while deep != card:  # (pytest's clean-up, shutil.rmtree, recurses too)
            deep.rmdir()
            deep = deep.parent
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["summary"]["new"] == 1 and lines[-1]["summary"]["failed"] == 1
    failed = [line for line in lines if line.get("status") == "error"]
    assert f"nested more than {MAX_FOLDER_DEPTH} levels deep" in failed[0]["message"]


SWAP_FOR_A_FIFO = """
import json, os, sys
from pathlib import Path
from custody.config import Settings
from custody.ingestd.pipeline import IngestSession, IngestSource, IngestSummary, discover
from custody.vault import Vault

folder, settings = Path(sys.argv[1]), Settings(home=Path(sys.argv[2]))
Vault.init(settings, "clerk1").close()
with Vault(settings, "clerk1", writer=True) as vault:
    session = IngestSession(vault, IngestSource(paths=[folder], source="ingest"), settings.ingest)
    tasks = list(discover([folder], []))
    (folder / "A.MP4").unlink()
    os.mkfifo(folder / "A.MP4")  # nobody will ever write to it
    summary = IngestSummary()
    for task in tasks:
        session.process(task, summary)
    session.flush()  # (a new file is stored with its group)
    for task in tasks:
        print(json.dumps([task.outcome, task.message]), flush=True)
"""


def test_a_file_swapped_for_a_fifo_after_discovery_fails_alone_and_never_hangs(tmp_path):
    folder = tmp_path / "card"
    folder.mkdir()
    for name in ("A.MP4", "B.MP4"):
        (folder / name).write_bytes(os.urandom(4000))
    try:  # (a process of its own: a hang must fail this test, not stop the suite)
        result = subprocess.run(
            [sys.executable, "-c", SWAP_FOR_A_FIFO, str(folder), str(tmp_path / "vault")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("ingest hung on a FIFO while holding the vault's write lock")
    assert result.returncode == 0, result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert outcomes[0] == ["error", f"{folder / 'A.MP4'} is no longer a regular file; not read"]
    assert outcomes[1][0] == "new"


def test_init_makes_an_existing_open_folder_private(tmp_path):
    home = tmp_path / "vault"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    (home / "custody.toml").write_text("")
    (home / "custody.toml").chmod(0o644)
    Vault.init(Settings(home=home), "clerk1").close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {mode:o}"
    assert stat.S_IMODE((home / "catalog.db").stat().st_mode) == 0o600


def test_a_layouts_own_line_breaks_stay_and_hidden_characters_do_not():
    """Table cells with two lines of our own (export ls: 'verified' then 're-verified ...') showed a
    literal \\n once names were escaped; names and tags never hold a raw line break."""
    from custody.vault.items import printable_name, shown_text

    assert shown_text("verified\nre-verified: ok", keep_newlines=True) == "verified\nre-verified: ok"
    assert shown_text("a\u202eb\x85c\nd", keep_newlines=True) == "a\\u202eb\\x85c\nd"
    assert printable_name("evil\nname.mp4") == "evil\\nname.mp4"
