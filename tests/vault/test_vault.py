"""The vault through the clerk's commands: acceptance 1, 2 and 4, ids, extract and cat."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from custody.vault import Vault
from custody.vault.sealing import HEADER_SIZE, SEGMENT_SIZE, TAG_SIZE


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ingest_json(custody, *args) -> list[dict]:
    lines = custody("ingest", *args, "--json").stdout.splitlines()
    return [json.loads(line) for line in lines if '"summary"' not in line]


def object_path(home: Path, sha256: str) -> Path:
    return home / "objects" / "sha256" / sha256[:2] / sha256[2:4] / sha256


def test_ingested_items_hash_like_their_sources_and_extract_identically(custody, footage, tmp_path):
    custody("init")
    results = ingest_json(custody, str(footage))
    sources = sorted(footage.iterdir())
    assert [r["status"] for r in results] == ["new"] * len(sources)
    by_name = {Path(r["name"]).name: r for r in results}
    for source in sources:
        record = by_name[source.name]
        assert record["sha256"] == sha256_of(source)
        out = tmp_path / f"out-{source.name}"
        custody("extract", record["id"], "--out", str(out))
        assert out.read_bytes() == source.read_bytes()


def test_cat_streams_the_original(custody, footage):
    custody("init")
    record = ingest_json(custody, str(footage / "CLIP0001.MP4"))[0]
    result = custody("cat", record["id"])
    assert result.stdout_bytes == (footage / "CLIP0001.MP4").read_bytes()
    events = json.loads(custody("log", "--item", record["id"], "--json").stdout)
    assert [e["action"] for e in events] == ["ingest", "view"]


def test_object_files_contain_no_plaintext_window(custody, footage, home):
    custody("init")
    for record in ingest_json(custody, str(footage)):
        stored = object_path(home, record["sha256"]).read_bytes()
        source = (footage / Path(record["name"]).name).read_bytes()
        for offset in range(0, max(1, len(source) - 64), 4099):
            assert source[offset : offset + 64] not in stored


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[HEADER_SIZE + SEGMENT_SIZE + 7] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(HEADER_SIZE + 2 * (SEGMENT_SIZE + TAG_SIZE))


def _swap_segments(path: Path) -> None:
    data = path.read_bytes()
    seg = SEGMENT_SIZE + TAG_SIZE
    a, b = data[HEADER_SIZE : HEADER_SIZE + seg], data[HEADER_SIZE + seg : HEADER_SIZE + 2 * seg]
    path.write_bytes(data[:HEADER_SIZE] + b + a + data[HEADER_SIZE + 2 * seg :])


@pytest.mark.parametrize("damage", [_flip_byte, _truncate, _swap_segments], ids=["flip", "truncate", "swap"])
def test_damaged_object_is_reported_by_verify_and_extract_naming_the_item(
    custody, footage, home, tmp_path, damage
):
    custody("init")
    record = ingest_json(custody, str(footage / "LONG0001.MP4"))[0]
    ingest_json(custody, str(footage / "CLIP0001.MP4"))
    damage(object_path(home, record["sha256"]))

    report = json.loads(custody("verify", "--json", expect=1).stdout)
    assert [p["item"] for p in report["object_problems"]] == [record["id"]]
    assert report["object_problems"][0]["kind"] == "damaged"
    assert custody("verify", expect=1).stdout.count("DAMAGED") == 1

    out = tmp_path / "extracted.mp4"
    result = custody("extract", record["id"], "--out", str(out), expect=6)
    assert f"item {record['id']} failed its integrity check" in result.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".extracted.mp4.custody-partial*"))
    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    assert "extract-failed" in actions


def test_missing_and_orphan_objects_fail_verify(custody, footage, home):
    custody("init")
    first, _second = ingest_json(custody, str(footage / "CLIP0001.MP4"), str(footage / "CLIP0002.MP4"))
    object_path(home, first["sha256"]).unlink()
    orphan = object_path(home, "ab" * 32)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"not sealed")
    problems = json.loads(custody("verify", "--json", expect=1).stdout)["object_problems"]
    assert {(p["kind"], p["item"]) for p in problems} == {("missing", first["id"]), ("orphan", None)}


def test_reingesting_creates_no_new_item_or_object(custody, footage, home):
    custody("init")
    first = ingest_json(custody, str(footage))
    objects_before = sorted(p.name for p in (home / "objects" / "sha256").rglob("*") if p.is_file())
    again = ingest_json(custody, str(footage))
    assert [r["status"] for r in again] == ["duplicate"] * len(first)
    assert [r["id"] for r in again] == [r["id"] for r in first]
    objects_after = sorted(p.name for p in (home / "objects" / "sha256").rglob("*") if p.is_file())
    assert objects_after == objects_before
    assert len(json.loads(custody("ls", "--json").stdout)) == len(first)
    events = json.loads(custody("log", "--json").stdout)
    assert sum(e["action"] == "duplicate-seen" for e in events) == len(first)
    assert not list((home / "objects" / "staging").iterdir())


def test_items_are_found_by_id_full_sha256_and_prefix(vault, custody, footage):
    vault.close()
    record = ingest_json(custody, str(footage / "CLIP0001.MP4"))[0]
    for ref in (
        record["id"],
        record["id"].lower(),
        record["sha256"],
        record["sha256"][:8],
        record["sha256"][:8].upper(),
    ):
        shown = json.loads(custody("show", ref, "--json").stdout)
        assert shown["id"] == record["id"]
    assert "no item" in custody("show", record["sha256"][:7], expect=5).stderr
    assert "no item EV-000999" in custody("show", "EV-000999", expect=5).stderr


def test_ambiguous_sha256_prefix_lists_the_candidates(custody, tmp_path):
    # Birthday search for two contents whose sha256 share their first 8 hex digits.
    seen: dict[str, bytes] = {}
    counter = 0
    while True:
        content = counter.to_bytes(8, "big")
        prefix = hashlib.sha256(content).hexdigest()[:8]
        if prefix in seen:
            break
        seen[prefix] = content
        counter += 1
    (tmp_path / "a.bin").write_bytes(seen[prefix])
    (tmp_path / "b.bin").write_bytes(content)
    custody("init")
    records = ingest_json(custody, str(tmp_path / "a.bin"), str(tmp_path / "b.bin"))
    result = custody("show", prefix, expect=5)
    assert "matches several items" in result.stderr
    for record in records:
        assert record["id"] in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_extract_never_overwrites(custody, footage, tmp_path):
    custody("init")
    record = ingest_json(custody, str(footage / "CLIP0001.MP4"))[0]
    out = tmp_path / "existing.mp4"
    out.write_bytes(b"clerk's own file")
    result = custody("extract", record["id"], "--out", str(out), expect=5)
    assert "already exists" in result.stderr
    assert out.read_bytes() == b"clerk's own file"


def test_init_refuses_an_existing_vault(custody, home):
    custody("init")
    key_before = (home / "keys" / "master.key").read_bytes()
    assert "already holds a vault" in custody("init", expect=5).stderr
    assert (home / "keys" / "master.key").read_bytes() == key_before


def test_init_makes_private_key_files(custody, home):
    custody("init")
    assert (home / "keys" / "master.key").stat().st_mode & 0o777 == 0o600
    assert (home / "keys" / "signing.key").stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o777 == 0o700


def test_master_key_from_systemd_credential(home, settings, footage, monkeypatch, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "custody-master-key").write_bytes(os.urandom(32))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    with Vault.init(settings, "admin") as vault:
        assert vault.master.source == str(credentials / "custody-master-key")
    assert not (home / "keys" / "master.key").exists()


def test_open_sweeps_staging_leftovers(vault, settings):
    leftover = vault.objects.staging / "seal-killed.part"
    leftover.write_bytes(b"half an object")
    vault.close()
    with Vault(settings, "clerk2"):
        assert not leftover.exists()


def test_open_finishes_an_ingest_killed_after_its_object_was_stored(vault, settings, footage):
    """The state a kill between rename and catalog commit leaves: intent + object, no item."""

    with open(footage / "CLIP0001.MP4", "rb") as source:
        staged = vault.intake.stage(source, (footage / "CLIP0001.MP4").stat().st_size)
    record = {
        "sha256": staged.sha256,
        "size": staged.size,
        "original_name": "CLIP0001.MP4",
        "source_path": "DCIM/CLIP0001.MP4",
        "source_path_hex": b"DCIM/CLIP0001.MP4".hex(),
        "source": "BWC-1",
        "source_mtime": None,
        "recorded_start": None,
        "recorded_end": None,
        "ingested_at": "2026-11-26T08:00:00.000000Z",
        "ingested_by": "clerk1",
        "key_id": vault.master.key_id,
        "tags": {"officer": "031245"},
    }
    vault.catalog.add_intent(staged.sha256, record, record["ingested_at"])
    vault.objects.store_staged(staged)
    assert vault.item_by_sha256(staged.sha256) is None
    vault.close()

    with Vault(settings, "clerk2") as reopened:
        item = reopened.item_by_sha256(staged.sha256)
        assert item is not None and item.tags == {"officer": "031245"}
        ingest = next(e for e in reopened.events(item) if e.action == "ingest")
        assert ingest.details["recovered_after_interruption"] is True
        assert reopened.catalog.intents() == []
        assert reopened.integrity.verify().ok


def test_open_abandons_an_ingest_killed_before_its_object_was_stored(vault, settings):
    vault.catalog.add_intent("cd" * 32, {"source_path": "DCIM/LOST.MP4"}, "2026-11-26T08:00:00.000000Z")
    vault.close()
    with Vault(settings, "clerk2") as reopened:
        assert reopened.catalog.intents() == []
        abandoned = [e for e in reopened.events() if e.action == "ingest-abandoned"]
        assert abandoned[0].details["path"] == "DCIM/LOST.MP4"
        assert reopened.catalog.item_count() == 0
