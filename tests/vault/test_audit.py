"""Acceptance 3: editing, deleting or re-signing audit records makes verify fail at that seq."""

from __future__ import annotations

import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.vault import Vault
from custody.vault.audit import checkpoint_message


@pytest.fixture
def audited_home(home, settings, footage, custody):
    """A vault with a few ingests and tags, closed (so its chain ends in a checkpoint)."""
    custody("init")
    custody("ingest", str(footage))
    custody("tag", "EV-000001", "EV-000002", "--case", "2026-0412")
    custody("tag", "EV-000001", "--party", "Wang Li")
    return home


def tamper(home, sql: str, params=()) -> None:
    with sqlite3.connect(home / "catalog.db") as db:
        db.execute(sql, params)


def chain_problems(custody) -> str:
    result = custody("verify", expect=1)
    return result.stdout


def test_untouched_chain_verifies(audited_home, custody):
    result = custody("verify")
    assert "FAILED" not in result.stdout and "OK" in result.stdout


@pytest.mark.parametrize(
    "column,value", [("actor", "mallory"), ("details", "{}"), ("at", "2020-01-01T00:00:00.000000Z")]
)
def test_edited_event_is_named_by_seq(audited_home, custody, column, value):
    tamper(audited_home, f"UPDATE audit SET {column} = ? WHERE seq = 3", [value])
    assert "seq 3: event 3 was altered" in chain_problems(custody)


def test_deleted_event_is_named_by_seq(audited_home, custody):
    tamper(audited_home, "DELETE FROM audit WHERE seq = 4")
    out = chain_problems(custody)
    assert "seq 4: audit event(s) 4 missing" in out


def test_deleted_newest_event_breaks_its_checkpoint(audited_home, custody):
    last = (
        sqlite3.connect(audited_home / "catalog.db").execute("SELECT max(seq) FROM checkpoints").fetchone()[0]
    )
    tamper(audited_home, "DELETE FROM audit WHERE seq = ?", [last])
    assert f"seq {last}: checkpoint at event {last} names an event that is missing" in chain_problems(custody)


def test_rewritten_chain_with_recomputed_hashes_fails_its_checkpoints(audited_home, settings, custody):
    """An attacker who edits an event and recomputes every later hash is caught by the signatures."""
    from custody.vault.audit import event_hash

    db = sqlite3.connect(audited_home / "catalog.db")
    rows = db.execute(
        "SELECT seq, at, actor, action, item, details, prev_hash FROM audit ORDER BY seq"
    ).fetchall()
    prev = None
    with db:
        for seq, at, actor, action, item, details, prev_hash in rows:
            if seq == 2:
                actor = "mallory"
            prev = prev_hash if prev is None else prev
            digest = event_hash(seq, at, actor, action, item, details, prev)
            db.execute(
                "UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                [actor, prev, digest, seq],
            )
            prev = digest
    out = chain_problems(custody)
    assert "differs from what its checkpoint signed" in out
    assert "event 2 was altered" not in out  # the links themselves are consistent now


def test_checkpoints_resigned_with_another_key_fail(audited_home, settings, custody):
    impostor = Ed25519PrivateKey.generate()
    db = sqlite3.connect(audited_home / "catalog.db")
    vault_id = db.execute("SELECT value FROM meta WHERE key = 'vault_id'").fetchone()[0]
    with db:
        for seq, head, signed_at in db.execute(
            "SELECT seq, head_hash, signed_at FROM checkpoints"
        ).fetchall():
            signature = impostor.sign(checkpoint_message(vault_id, seq, head, signed_at))
            db.execute("UPDATE checkpoints SET signature = ? WHERE seq = ?", [signature.hex(), seq])
    out = chain_problems(custody)
    first = db.execute("SELECT min(seq) FROM checkpoints").fetchone()[0]
    assert f"seq {first}: checkpoint at event {first} is not signed by this vault's key" in out


def test_every_command_that_writes_ends_with_a_checkpoint(audited_home, settings):
    db = sqlite3.connect(audited_home / "catalog.db")
    head = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
    assert db.execute("SELECT max(seq) FROM checkpoints").fetchone()[0] == head
    with Vault(settings, "auditor") as vault:
        assert vault.audit.verify().intact
