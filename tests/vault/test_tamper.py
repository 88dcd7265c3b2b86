"""The tamper matrix: someone with write access to the vault's files (or root on its machine) changes
them behind its back. Each change is caught by `verify` alone, or by `verify --against` an anchor
that left the machine (the replica's locked audit segments, an evidence disc, the paper register),
and the message names what was done."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.vault.audit import GENESIS, canonical_json, checkpoint_message, event_hash
from custody.vault.keys import public_key_fingerprint, public_key_pem

CASE = "2026-0777"


@pytest.fixture
def published(tmp_path, home, custody, footage, s3) -> dict:
    """A vault with three tagged, held items, replicated (its chain published to a locked bucket),
    an anchor written down, and an evidence disc; then more events, published too."""
    custody("init", "--organisation", "Test County Public Security Bureau")
    (home / "custody.toml").write_text(
        s3.target_toml(s3.new_bucket(object_lock=True)) + '\n[station]\norganisation = "Test County PSB"\n'
    )
    custody("officer", "add", "031245", "--name", "Wang Li")
    clips = sorted(footage.glob("CLIP*.MP4"))
    custody("ingest", *map(str, clips), "--officer", "031245")
    custody("tag", "EV-000001", "EV-000002", "--case", CASE, "--party", "Li Si")
    custody("hold", "add", "EV-000003", "--reason", "court order 12")
    custody("replicate", "run", "--once")
    snapshot = tmp_path / "last-week"
    shutil.copytree(home, snapshot, symlinks=True)  # the home as it was (for a rollback)
    iso = tmp_path / "case.iso"
    custody(
        "export",
        "disc",
        "--case",
        CASE,
        "--maker",
        "王五",
        "--extractor",
        "赵六",
        "--iso",
        str(iso),
        "--no-playable",
    )
    token = json.loads(custody("anchor", "--json").stdout)["token"]
    custody("tag", "EV-000003", "--note", "reviewed")
    custody("replicate", "run", "--once")
    return {"snapshot": snapshot, "iso": iso, "token": token}


def verify(custody, *args: str, expect: int) -> str:
    result = custody("verify", *args, expect=expect)
    return result.stdout


def sql(home: Path, statement: str, params=()) -> None:
    with sqlite3.connect(home / "catalog.db") as db:
        db.executescript(statement) if not params else db.execute(statement, params)


def test_an_untouched_vault_verifies_alone_and_against_every_anchor(published, custody):
    out = verify(
        custody,
        "--against", "offsite", "--against", str(published["iso"]), "--against-anchor", published["token"],
        expect=0,
    )  # fmt: skip
    assert "against 3 anchor(s): OK" in out


def test_deleting_an_items_rows_and_its_object_is_named(published, home, custody):
    sha = json.loads(custody("show", "EV-000002", "--json").stdout)["sha256"]
    sql(
        home,
        "DELETE FROM tags WHERE item = 2; DELETE FROM jobs WHERE item = 2; DELETE FROM media WHERE item = 2; "
        "DELETE FROM recorder_files WHERE item = 2; DELETE FROM items WHERE id = 2;",
    )
    (home / "objects" / "sha256" / sha[:2] / sha[2:4] / sha).unlink()
    out = verify(custody, expect=1)
    assert "CATALOG  EV-000002 items: the chain records its ingest" in out
    assert "no approved disposal removed it" in out


def test_editing_a_tag_or_a_name_in_the_catalog_is_named(published, home, custody):
    sql(home, "UPDATE tags SET value = 'Zhang San' WHERE item = 1 AND name = 'party'")
    sql(home, "UPDATE items SET original_name = 'other.mp4' WHERE id = 2")
    sql(home, "UPDATE holds SET released_at = '2026-01-01T00:00:00Z' WHERE item = 3")
    out = verify(custody, expect=1)
    assert "EV-000001 tags: party is 'Zhang San', the chain's events make it 'Li Si'" in out
    assert "EV-000002 items: original_name is 'other.mp4', the ingest event recorded 'CLIP0002.MP4'" in out
    assert "holds: HOLD-000001 is released, the chain's events make it active" in out


def test_a_chain_truncated_with_its_checkpoints_is_caught_against_the_replica(published, home, custody):
    with sqlite3.connect(home / "catalog.db") as db:
        head = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
        # The last tag and what followed it: the catalog is put back as it was before them.
        cut = db.execute("SELECT max(seq) FROM audit WHERE action = 'tag'").fetchone()[0]
        db.execute("DELETE FROM audit WHERE seq >= ?", [cut])
        db.execute("DELETE FROM checkpoints WHERE seq >= ?", [cut])
        db.execute("DELETE FROM tags WHERE name = 'note'")
    assert head >= cut
    out = verify(custody, "--against", "offsite", expect=1)
    assert (
        f"ANCHOR   offsite target offsite: the vault's chain ends at event {cut - 1}, but event {head}" in out
    )
    assert "events were removed, or the vault was rolled back" in out
    verify(custody, expect=0)  # alone, a clean cut is not visible


def test_a_home_rolled_back_to_last_week_is_caught_against_replica_disc_and_paper(published, home, custody):
    shutil.rmtree(home)
    shutil.copytree(published["snapshot"], home, symlinks=True)
    out = verify(
        custody,
        "--against", "offsite", "--against", str(published["iso"]), "--against-anchor", published["token"],
        expect=1,
    )  # fmt: skip
    for source in ("offsite target offsite", f"disc {published['iso']}", "anchor custody-anchor/v1/"):
        assert f"ANCHOR   {source}" in out, source
    assert "rolled back to an older copy" in out
    verify(custody, expect=0)  # alone, last week's vault is a consistent vault


def test_checkpoints_resigned_with_a_new_key_in_the_home_are_caught_alone(published, home, custody):
    impostor = Ed25519PrivateKey.generate()
    install_key(home, impostor)
    with sqlite3.connect(home / "catalog.db") as db:
        vault_id = db.execute("SELECT value FROM meta WHERE key = 'vault_id'").fetchone()[0]
        for seq, head, at in db.execute("SELECT seq, head_hash, signed_at FROM checkpoints").fetchall():
            db.execute(
                "UPDATE checkpoints SET signature = ?, key_fingerprint = ? WHERE seq = ?",
                [
                    impostor.sign(checkpoint_message(vault_id, seq, head, at)).hex(),
                    fingerprint(impostor),
                    seq,
                ],
            )
    out = verify(custody, expect=1)
    assert f"this vault's signing key ({fingerprint(impostor)}) is not the key its chain pins" in out


def test_a_chain_rewritten_whole_and_resigned_by_root_is_caught_against_the_replica(published, home, custody):
    """The strongest attack from the machine itself: every event (the init event's key too) rewritten,
    every hash recomputed, every checkpoint signed by a new key. Alone it is a consistent vault."""
    impostor = Ed25519PrivateKey.generate()
    install_key(home, impostor)
    with sqlite3.connect(home / "catalog.db") as db:
        vault_id = db.execute("SELECT value FROM meta WHERE key = 'vault_id'").fetchone()[0]
        prev, hashes = GENESIS, {}
        rows = db.execute("SELECT seq, at, actor, action, item, details FROM audit ORDER BY seq").fetchall()
        for seq, at, actor, action, item, details in rows:
            if action == "init":
                details = canonical_json(
                    {**json.loads(details), "signing_key": fingerprint(impostor)}
                ).decode()
            if action == "tag" and item == 1:
                details = details.replace("Li Si", "Zhang San")  # the point of rewriting history
            digest = event_hash(seq, at, actor, action, item, details, prev)
            db.execute(
                "UPDATE audit SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                [details, prev, digest, seq],
            )
            hashes[seq], prev = digest, digest
        db.execute("UPDATE tags SET value = 'Zhang San' WHERE value = 'Li Si' AND item = 1")
        for seq, at in db.execute("SELECT seq, signed_at FROM checkpoints").fetchall():
            signature = impostor.sign(checkpoint_message(vault_id, seq, hashes[seq], at)).hex()
            db.execute(
                "UPDATE checkpoints SET head_hash = ?, signature = ?, key_fingerprint = ? WHERE seq = ?",
                [hashes[seq], signature, fingerprint(impostor), seq],
            )
    verify(custody, expect=0)  # consistent on the machine
    out = verify(custody, "--against", "offsite", "--against", str(published["iso"]), expect=1)
    assert "was signed with key" in out and "the signing key was replaced" in out
    assert "the chain was rewritten" in out


def install_key(home: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (home / "keys" / "signing.key").write_bytes(pem)
    (home / "keys" / "signing.pub").write_bytes(public_key_pem(key.public_key()))


def fingerprint(key: Ed25519PrivateKey) -> str:
    return public_key_fingerprint(key.public_key())


def test_a_rotated_signing_key_still_verifies_and_old_anchors_still_hold(published, home, custody, tmp_path):
    rotated = json.loads(custody("keys", "rotate-signing", "--json").stdout)
    assert rotated["old"] != rotated["new"]
    custody("tag", "EV-000002", "--note", "after the rotation")
    custody("replicate", "run", "--once")
    out = verify(
        custody, "--against", "offsite", "--against", str(published["iso"]), "--against-anchor", published["token"],
        expect=0,
    )  # fmt: skip
    assert "OK" in out
    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    assert "signing-key-rotated" in actions
    # A vault rebuilt from the replica signs with the new key and follows the chain through both.
    from click.testing import CliRunner

    from custody.cli import cli

    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    (rebuilt / "custody.toml").write_text((home / "custody.toml").read_text())
    master = tmp_path / "master.key"
    master.write_bytes((home / "keys" / "master.key").read_bytes())
    runner = CliRunner()
    restored = runner.invoke(
        cli, ["--home", str(rebuilt), "restore", "--from", "offsite", "--master-key", str(master)]
    )
    assert restored.exit_code == 0, restored.output
    checked = runner.invoke(cli, ["--home", str(rebuilt), "verify", "--against", "offsite"])
    assert checked.exit_code == 0, checked.output
