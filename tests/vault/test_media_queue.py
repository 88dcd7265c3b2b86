"""The media queue service (vault.media) at the Python level: every change through vault.change(),
locked, in one transaction, audited; the queue's rules (a whole file queues its full check, a
full check's verdict outranks a fast one)."""

from __future__ import annotations

import json

import pytest

from custody.config import load_settings
from custody.vault import Vault
from custody.vault.derivatives import MadeCopy
from custody.vault.media_queue import DECODE, MEDIA
from tests.conftest import make_clip


@pytest.fixture
def one_item(tmp_path, home, custody):
    custody("init")
    custody("ingest", str(make_clip(tmp_path / "CLIP.MP4")))
    with Vault(load_settings(home), "media-runner", writer=True) as vault:
        yield vault


def events(vault: Vault, action: str) -> list:
    return [e for e in vault.events(None) if e.action == action]


def test_a_whole_file_records_its_facts_seals_what_was_made_and_queues_its_full_check(one_item, tmp_path):
    vault = one_item
    job = vault.media.claim(MEDIA)
    assert (job.kind, job.item, job.state, job.attempts) == (MEDIA, 1, "running", 1)
    assert vault.media.claim(MEDIA) is None  # one runner per job
    copy = tmp_path / "made.mp4"
    copy.write_bytes(b"a playable copy")
    made = MadeCopy(
        role="playable", path=copy, method="remux", tool="ffmpeg version test",
        arguments=["ffmpeg", "-i", "INPUT", "OUTPUT"], started_at="2026-12-05T00:00:00.000000Z",
        finished_at="2026-12-05T00:00:01.000000Z",
    )  # fmt: skip
    facts = {"container": "mov", "integrity": {"result": "ok", "level": "fast", "errors": []}}
    [derivative] = vault.media.finish(job, facts, 1.5, [made])
    item = vault.item_number(1)
    assert derivative.role == "playable" and vault.media.derivatives(item) == [derivative]
    assert vault.media.facts(item)["integrity"]["level"] == "fast"
    assert vault.media.counts(MEDIA) == {"done": 1} and vault.media.counts(DECODE) == {"queued": 1}
    [made_event] = events(vault, "derivative-made")
    assert made_event.details["method"] == "remux" and made_event.details["sha256"] == derivative.sha256

    decode = vault.media.claim(DECODE)
    vault.media.finish_decode(decode, ["[h264] error while decoding MB 3 5"], 9.0)
    assert vault.media.facts(item)["integrity"] == {
        "result": "damaged", "level": "full", "errors": ["[h264] error while decoding MB 3 5"],
    }  # fmt: skip
    assert len(events(vault, "damage-found")) == 1

    # A foreground stage run again later keeps the full check's verdict: it outranks a fast one.
    vault.catalog.db.execute("UPDATE jobs SET state = 'queued' WHERE kind = ?", [MEDIA])
    again = vault.media.claim(MEDIA)
    vault.media.finish(again, {"integrity": {"result": "ok", "level": "fast", "errors": []}}, 1.0)
    assert vault.media.facts(item)["integrity"]["level"] == "full"


def test_a_failing_job_is_queued_again_then_failed_for_good_and_audited(one_item):
    vault = one_item
    job = vault.media.claim(MEDIA)
    assert vault.media.fail(job, "ffmpeg took longer than 20 s", max_attempts=2) == "queued"
    assert events(vault, "media-job-failed") == []
    job = vault.media.claim(MEDIA)
    assert vault.media.fail(job, "ffmpeg took longer than 20 s", max_attempts=2) == "failed"
    [failed] = events(vault, "media-job-failed")
    assert failed.details == {"job": job.id, "kind": MEDIA, "error": "ffmpeg took longer than 20 s"}
    assert [j.id for j in vault.media.failed()] == [job.id]


def test_a_change_that_raises_leaves_neither_rows_nor_events(one_item):
    vault = one_item
    before = len(vault.events(None))
    with pytest.raises(RuntimeError), vault.change() as change:
        change.catalog.db.execute("UPDATE jobs SET state = 'done'")
        change.record("test-change", 1, {"why": "rolled back"})
        raise RuntimeError("part way")
    assert len(vault.events(None)) == before
    assert vault.media.counts(MEDIA) == {"queued": 1}
    assert json.loads(json.dumps(vault.media.counts()))  # the status view still reads
