"""Ingest from files: bad input (acceptance 6), crash safety (5), bulk tagging (7)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from custody.config import IngestSettings
from custody.ingestd.pipeline import IngestSession, IngestSource, SilentObserver
from custody.vault import ItemFilter, Vault
from tests.conftest import custody_process


def run_ingest(vault, *paths, observer=None, officer=None):
    source = IngestSource(paths=[Path(p) for p in paths], officer=officer)
    return IngestSession(vault, source, IngestSettings(), observer).run()


def outcomes(summary) -> dict[str, tuple[str, str | None]]:
    return {os.path.basename(t.path): (t.outcome, t.message) for t in summary.tasks}


def staging_is_empty(vault) -> bool:
    return vault.objects.staging_files() == []


def test_empty_file_is_kept_with_a_warning(vault, tmp_path):
    (tmp_path / "EMPTY.MP4").write_bytes(b"")
    summary = run_ingest(vault, tmp_path / "EMPTY.MP4")
    task = summary.tasks[0]
    assert (task.outcome, task.warning) == ("new", "empty file")
    assert vault.objects.check(task.item.sha256) == 0


def test_hidden_files_are_skipped_and_counted(vault, footage):
    (footage / ".DS_Store").write_bytes(b"finder")
    (footage / ".Trashes").mkdir()
    (footage / ".Trashes" / "old.mp4").write_bytes(b"deleted clip")
    summary = run_ingest(vault, footage)
    assert summary.hidden_skipped == 2
    assert all(not os.path.basename(t.path).startswith(".") for t in summary.tasks)


def test_symlink_is_reported_and_never_read_through(vault, footage):
    (footage / "passwd.MP4").symlink_to("/etc/passwd")
    seen = []

    class Recorder(SilentObserver):
        def skipped(self, skipped):
            seen.append(skipped)

    summary = run_ingest(vault, footage, observer=Recorder())
    assert [(os.path.basename(s.path), s.reason) for s in seen] == [
        ("passwd.MP4", "symbolic link, not followed")
    ]
    passwd_sha = __import__("hashlib").sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    assert vault.item_by_sha256(passwd_sha) is None
    assert summary.other_skipped == 1 and summary.failed == 0


def test_file_turned_into_symlink_after_discovery_is_not_followed(vault, footage):
    target = footage / "CLIP0002.MP4"

    class Swapper(SilentObserver):
        def discovered(self, files, total_bytes):
            target.unlink()
            target.symlink_to("/etc/passwd")

    summary = run_ingest(vault, footage, observer=Swapper())
    assert outcomes(summary)["CLIP0002.MP4"] == ("error", f"{target} became a symbolic link; not followed")
    assert summary.new == 3 and staging_is_empty(vault)


def test_file_vanishing_before_it_is_read_fails_alone(vault, footage):
    class Remover(SilentObserver):
        def discovered(self, files, total_bytes):
            (footage / "CLIP0003.MP4").unlink()

    summary = run_ingest(vault, footage, observer=Remover())
    status, message = outcomes(summary)["CLIP0003.MP4"]
    assert status == "error" and "vanished before it could be read" in message
    assert summary.new == 3


@pytest.mark.parametrize("how", ["unlink", "truncate", "append"])
def test_file_changing_mid_read_fails_alone_and_leaves_nothing(vault, footage, how):
    victim = footage / "LONG0001.MP4"
    done = []

    class MidRead(SilentObserver):
        def progress(self, nbytes):
            if done:
                return
            done.append(True)
            if how == "unlink":
                victim.unlink()
            elif how == "truncate":
                os.truncate(victim, 1000)
            else:
                with open(victim, "ab") as f:
                    f.write(b"more")

    # The victim goes first, so the first progress report is from reading it.
    others = sorted(p for p in footage.iterdir() if p != victim)
    summary = run_ingest(vault, victim, *others, observer=MidRead())
    status, message = outcomes(summary)["LONG0001.MP4"]
    assert status == "error"
    assert ("vanished while it was being read" if how == "unlink" else "while it was being read") in message
    assert "nothing stored" in message
    assert summary.new == 3
    assert staging_is_empty(vault)
    assert len(list(vault.objects.names())) == 3
    failures = [e for e in vault.events() if e.action == "ingest-failed"]
    assert len(failures) == 1 and "LONG0001.MP4" in failures[0].details["path"]


def test_name_with_newline_and_non_utf8_bytes(vault, tmp_path, clip_library):
    raw = os.fsencode(tmp_path) + b"/clip\n\xff\xfe-2026.MP4"
    shutil.copyfile(clip_library / "CLIP0001.MP4", raw)
    summary = run_ingest(vault, tmp_path)
    task = summary.tasks[0]
    assert task.outcome == "new"
    assert task.item.original_name == "clip\\n\\xff\\xfe-2026.MP4"
    assert "\n" not in json.dumps(task.as_dict())
    stored = vault.catalog.db.execute("SELECT source_path_bytes FROM items").fetchone()[0]
    assert stored == raw


def test_unreadable_file_fails_alone(tmp_path, footage, home):
    """A file the ingesting user may not read (mode 000).

    As root, custody runs without the capabilities that bypass file modes
    (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so root is
    refused like anyone else; the vault and the venv stay root's own.
    """
    (footage / "CLIP0002.MP4").chmod(0)
    command = [sys.executable, "-m", "custody", "--home", str(home)]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    subprocess.run([*command, "init"], check=True, capture_output=True)
    result = subprocess.run([*command, "ingest", str(footage), "--json"], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {os.path.basename(r["name"]): r for r in lines if "status" in r}
    assert by_name["CLIP0002.MP4"]["status"] == "error"
    assert "permission denied" in by_name["CLIP0002.MP4"]["message"]
    assert sorted(r["status"] for r in by_name.values()) == ["error", "new", "new", "new"]
    assert lines[-1]["summary"]["failed"] == 1
    assert not list((home / "objects" / "staging").iterdir())


def test_nonexistent_path_fails_with_a_message(vault, tmp_path):
    summary = run_ingest(vault, tmp_path / "no-such-folder")
    assert summary.failed == 1
    assert "vanished before it could be read" in summary.tasks[0].message


@pytest.mark.slow
def test_folder_with_ten_thousand_files(vault, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(10_000):
        (folder / f"F{number:05d}.JPG").write_bytes(b"frame %d" % number)
    summary = run_ingest(vault, folder)
    assert (summary.new, summary.failed, summary.duplicate) == (10_000, 0, 0)
    assert vault.catalog.item_count() == 10_000
    assert len(list(vault.objects.names())) == 10_000
    assert staging_is_empty(vault)


@pytest.mark.slow
def test_tagging_a_thousand_items_is_one_transaction(vault, tmp_path, custody):
    folder = tmp_path / "thousand"
    folder.mkdir()
    for number in range(1000):
        (folder / f"P{number:04d}.JPG").write_bytes(b"photo %d" % number)
    run_ingest(vault, folder, officer="031245")
    refs = [item.item_id for item in vault.list_items(ItemFilter())]
    vault.tags.apply(refs[:10], {"case": "2025-0001"})

    statements: list[str] = []
    vault.catalog.db.conn.set_trace_callback(statements.append)
    changes = vault.tags.apply(refs, {"case": "2026-0412", "party": "Wang Li"})
    vault.catalog.db.conn.set_trace_callback(None)
    assert len(changes) == 1000
    assert [s for s in statements if s.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK")] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]
    assert len(vault.list_items(ItemFilter(case="2026-0412"))) == 1000
    assert vault.list_items(ItemFilter(case="2025-0001")) == []
    history = vault.tags.history(vault.resolve(refs[0]))
    assert [(h["name"], h["value"]) for h in history] == [
        ("officer", "031245"),
        ("case", "2025-0001"),
        ("case", "2026-0412"),
        ("party", "Wang Li"),
    ]
    vault.close()
    shown = json.loads(custody("show", refs[0], "--json").stdout)
    assert [h["value"] for h in shown["tag_history"] if h["name"] == "case"] == ["2025-0001", "2026-0412"]


def test_tag_with_an_unknown_item_changes_nothing(vault, footage):
    run_ingest(vault, footage)
    before = len(list(vault.events()))
    with pytest.raises(Vault.ItemNotFound, match="EV-000077"):
        vault.tags.apply(["EV-000001", "EV-000077"], {"case": "2026-0412"})
    assert vault.list_items(ItemFilter(case="2026-0412")) == []
    after = list(vault.events())
    assert [e.action for e in after[before:]] == ["tag-failed"]


def whole_ingest_seconds(scratch: Path, source: Path) -> float:
    """How long a whole ingest of ``source`` into a new vault at ``scratch`` takes on this machine
    now (to spread kills over an ingest, not to limit its time)."""
    subprocess.run(
        [sys.executable, "-m", "custody", "--home", str(scratch), "init"], check=True, capture_output=True
    )
    started = time.monotonic()
    custody_process(scratch, "ingest", str(source)).communicate()
    return time.monotonic() - started


def assert_a_rerun_stores_exactly(settings, home: Path, source: Path, expected: set[str]) -> None:
    """After the kills: one more ingest completes, and the vault holds each content once, verified."""
    final = custody_process(home, "ingest", str(source), "--json")
    _out, err = final.communicate()
    assert final.returncode == 0, err
    with Vault(settings, "auditor") as opened:
        assert sorted(item.sha256 for item in opened.list_items(ItemFilter())) == sorted(expected)
        assert sorted(opened.objects.names()) == sorted(expected)
        assert opened.integrity.verify().ok


def test_a_file_is_reported_stored_only_once_its_group_is_durable(vault, tmp_path):
    """Small files are stored in groups: when the observer hears a file is stored, its item,
    event and object are committed (no intent left, nothing in staging for it), and the files
    before the group's end were not yet reported."""
    source = tmp_path / "DCIM"
    source.mkdir()
    for number in range(150):  # more than two groups of GROUP_FILES
        (source / f"IMG{number:04d}.JPG").write_bytes(os.urandom(3000 + number))
    checked = []

    class Checker(SilentObserver):
        def file_done(self, task):
            assert task.outcome == "new"
            assert vault.item_by_sha256(task.item.sha256) is not None
            assert vault.objects.exists(task.item.sha256)
            assert vault.catalog.intents() == []
            checked.append(task)

    summary = run_ingest(vault, source, observer=Checker())
    assert summary.new == len(checked) == 150
    ingest_times = {vault.resolve(t.item.item_id).ingested_at for t in checked}
    assert 2 < len(ingest_times) < 10, "the files were stored in a few groups, not each alone"
    assert staging_is_empty(vault) and vault.integrity.verify().ok


@pytest.mark.slow
def test_sigkill_while_groups_of_small_files_are_stored_loses_and_misreports_nothing(
    tmp_path, settings, home
):
    """Kill an ingest of many small files (stored in groups) at random moments: every file it
    reported stored is in the vault after recovery; every state verifies; a rerun completes it."""
    source = tmp_path / "DCIM"
    source.mkdir()
    rng = random.Random(20261205)
    for number in range(400):
        (source / f"IMG{number:04d}.JPG").write_bytes(
            rng.randbytes(rng.randint(1, 40_000)) + bytes([number % 256])
        )
    expected = {__import__("hashlib").sha256(p.read_bytes()).hexdigest() for p in source.iterdir()}
    whole_run = whole_ingest_seconds(tmp_path / "scratch", source)

    Vault.init(settings, "clerk1").close()
    kills = 0
    for _attempt in range(12):
        process = custody_process(home, "ingest", str(source), "--json")
        time.sleep(rng.uniform(0.1, 0.9) * whole_run)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        out, _err = process.communicate()
        reported = [json.loads(line) for line in out.decode().splitlines() if line.startswith('{"id"')]
        with Vault(settings, "auditor") as opened:
            assert opened.objects.staging_files() == []
            assert opened.catalog.intents() == []
            for file in reported:
                if file["status"] in ("new", "duplicate"):
                    assert opened.item_by_sha256(file["sha256"]) is not None, f"{file} reported, then lost"
            report = opened.integrity.verify()
            assert report.ok, report.as_dict()
    assert kills >= 6, f"only {kills} of 12 runs were killed mid-ingest; the timing is off"

    assert_a_rerun_stores_exactly(settings, home, source, expected)


@pytest.mark.slow
def test_sigkill_during_ingest_twenty_times_then_rerun(tmp_path, settings, home):
    """Kill a multi-file ingest at random moments; every state must recover to a whole vault."""
    source = tmp_path / "DCIM"
    source.mkdir()
    rng = random.Random(20261126)
    for number in range(40):
        size = rng.choice([0, 1, 4096, 900_000, 2_500_000, 5_300_000])
        (source / f"REC{number:04d}.MP4").write_bytes(rng.randbytes(size) + bytes([number]))
    expected = {__import__("hashlib").sha256(p.read_bytes()).hexdigest() for p in source.iterdir()}
    # Calibrate: how long does a whole ingest of this folder take on this machine now?
    whole_run = whole_ingest_seconds(tmp_path / "scratch", source)

    Vault.init(settings, "clerk1").close()
    kills = 0
    for _attempt in range(20):
        process = custody_process(home, "ingest", str(source), "--json")
        time.sleep(rng.uniform(0.05, 0.95) * whole_run)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate()
        # Every crash state must open (recovering) into a vault that verifies.
        with Vault(settings, "auditor") as opened:
            assert opened.objects.staging_files() == []
            assert opened.catalog.intents() == []
            report = opened.integrity.verify()
            assert report.ok, report.as_dict()
        # Start the next round from a partly ingested vault: remove nothing.
    assert kills >= 10, f"only {kills} of 20 runs were killed mid-ingest; the timing is off"

    assert_a_rerun_stores_exactly(settings, home, source, expected)
