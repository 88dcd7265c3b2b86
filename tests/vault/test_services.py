"""The vault's services and its components at the Python level, on a real vault (SQLite, sealed
objects, the audit chain): each change through vault.change(), all or nothing, audited; and the
disc exporter, the replicator and restore driven as a program would, with the real xorriso and
a real S3 server on loopback. No mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.config import load_settings
from custody.vault import IngestRecord, ItemFilter, Vault
from custody.vault.access import Caller
from custody.vault.disc.export import DiscExporter, ExportRequest
from custody.vault.intake import DockFacts
from custody.vault.offsite.published import restore
from custody.vault.offsite.replicator import Replicator
from tests.conftest import make_clip


@pytest.fixture
def two_items(tmp_path, home, custody):
    custody("init", "--organisation", "XX县公安局")
    for name in ("A.MP4", "B.MP4"):
        custody("ingest", str(make_clip(tmp_path / name, tone=440 if name == "A.MP4" else 660)))
    return home


def opened(home: Path, actor: str = "clerk-at-python") -> Vault:
    return Vault(load_settings(home), actor, writer=True)


def actions(vault: Vault) -> list[str]:
    return [event.action for event in vault.events(None)]


def test_tags_are_all_or_nothing_and_each_changed_item_is_one_event(two_items):
    with opened(two_items) as vault:
        before = actions(vault)
        with pytest.raises(Vault.ItemNotFound):
            vault.tags.apply(["EV-000001", "EV-000099"], {"case": "2026-0412"})
        assert vault.resolve("EV-000001").tags == {}  # the good one was not tagged either
        assert actions(vault) == [*before, "tag-failed"]
        changes = vault.tags.apply(["EV-000001", "EV-000002"], {"case": "2026-0412", "party": "李四"})
        assert [c.item.item_id for c in changes] == ["EV-000001", "EV-000002"]
        assert actions(vault)[-2:] == ["tag", "tag"]
        assert vault.tags.apply(["EV-000001"], {"case": "2026-0412"}) == []  # already so: no event
        history = vault.tags.history(vault.resolve("EV-000001"))
        assert {(row["name"], row["value"]) for row in history} == {("case", "2026-0412"), ("party", "李四")}


def test_a_change_that_raises_part_way_leaves_neither_rows_nor_events(two_items):
    with opened(two_items) as vault:
        events = len(actions(vault))
        with pytest.raises(RuntimeError), vault.change() as change:
            change.record("hold-placed", 1, {"reason": "half a change"})
            change.catalog.db.execute("INSERT INTO case_categories (case_name, category, added_at, added_by, audit_seq) "
                                      "VALUES ('X', 'major_case', 'now', 'me', 1)")  # fmt: skip
            raise RuntimeError("the power went out")
        assert len(actions(vault)) == events
        assert vault.retention.case_categories() == {}


def test_disposition_needs_a_second_person_and_leaves_a_tombstone(two_items):
    with opened(two_items, "custodian-one") as vault:
        made = vault.disposals.request([1], "routine, no case")
        with pytest.raises(Vault.ApprovalRefused, match="a second person must approve"):
            vault.disposals.approve(made.request_id)
    with opened(two_items, "custodian-two") as vault:
        approved = vault.disposals.approve(made.request_id)
        assert (approved.state, approved.approved_by) == ("approved", "custodian-two")
        started = vault.disposals.start(made.request_id)
        gone = vault.disposals.dispose_item(1, started)
        assert gone["sha256"] and vault.disposals.tombstone(1) is not None
        assert not vault.objects.exists(gone["sha256"])
        with pytest.raises(Vault.ItemDisposed):
            vault.resolve("EV-000001")
        assert vault.integrity.verify().ok  # the catalog is still what the chain says


def test_integrity_finds_a_damaged_object_and_originals_refuse_to_overwrite(two_items, tmp_path):
    with opened(two_items) as vault:
        item = vault.resolve("EV-000002")
        out = tmp_path / "out.mp4"
        vault.originals.extract("EV-000002", out)
        assert out.stat().st_size == item.size
        with pytest.raises(Vault.OutputExists):
            vault.originals.extract("EV-000002", out)
        assert actions(vault)[-2:] == ["extract", "extract-failed"]
        path = vault.objects.path_for(item.sha256)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.chmod(0o600)
        path.write_bytes(bytes(data))
        report = vault.integrity.verify()
        assert not report.ok and [(p.kind, p.item) for p in report.object_problems] == [
            ("damaged", "EV-000002")
        ]
        with pytest.raises(Vault.ItemDamaged):
            vault.originals.check_item(item)


def test_the_disc_exporter_makes_an_image_that_verifies_and_records_it(two_items, tmp_path):
    with opened(two_items) as vault:
        vault.tags.apply(["EV-000001", "EV-000002"], {"case": "2026-0412"})
        steps: list[str] = []
        record = DiscExporter(vault, on_step=steps.append).export(
            ExportRequest(
                case="2026-0412", maker="王力", extractor="陈静", playable=False, iso=tmp_path / "case.iso"
            )
        )
        assert record.state == "verified" and len(record.items) == 2 and steps
        check = DiscExporter(vault).verify(str(tmp_path / "case.iso"))
        assert check.ok and check.export == record.export_id and check.files_checked >= 2
        assert [r.export_id for r in DiscExporter(vault).exports("2026-0412")] == [record.export_id]
        assert {"export-started", "export-extracted", "export-made"} <= set(actions(vault))


def test_the_replicator_sends_and_verifies_and_restore_rebuilds_the_vault(two_items, tmp_path, s3):
    bucket = s3.new_bucket()
    config = two_items / "custody.toml"
    config.write_text(config.read_text() + "\n" + s3.target_toml(bucket))
    with opened(two_items) as vault:
        summary = Replicator(vault, load_settings(two_items)).run()
        assert (summary.uploaded, summary.verified, summary.failed) == (2, 2, 0)
        assert [line.mark for line in Replicator(vault, load_settings(two_items)).check()] == ["=", "="]
        originals = {item.item_id: item.sha256 for item in vault.list_items(ItemFilter())}
    new_home = tmp_path / "rebuilt"
    new_home.mkdir(mode=0o700)
    (new_home / "custody.toml").write_text(config.read_text())
    report = restore(load_settings(new_home), "offsite", two_items / "keys" / "master.key", "custodian")
    assert (report.items, report.objects) == (2, 2)
    with Vault(load_settings(new_home), "auditor") as rebuilt:
        assert {i.item_id: i.sha256 for i in rebuilt.list_items(ItemFilter())} == originals
        assert rebuilt.integrity.verify().ok
        assert "restored" in actions(rebuilt)


def clerk(home: Path, name: str = "chenjing") -> Vault:
    """The vault opened for a clerk who is not its owner (as the daemon opens it for a caller)."""
    return Vault(
        load_settings(home), name, caller=Caller(uid=4242, gid=4242, pid=None, name=name, roles=("clerk",))
    )


def test_holds_and_case_access_change_what_is_kept_and_who_sees_it(two_items):
    with opened(two_items, "custodian-one") as vault:
        vault.tags.apply(["EV-000002"], {"case": "2026-0412"})
        held = vault.holds.place("court order 17", case="2026-0412")
        assert [h.hold_id for h in vault.holds.on(vault.resolve("EV-000002"))] == [held.hold_id]
        assert vault.holds.on(vault.resolve("EV-000001")) == []
        vault.cases.set_confidentiality("2026-0412", "restricted")
    with clerk(two_items) as seen_by_clerk:
        assert [i.item_id for i in seen_by_clerk.list_items(ItemFilter())] == ["EV-000001"]
        assert seen_by_clerk.holds.listed() == []  # the hold names a case the clerk may not see
    with opened(two_items, "custodian-one") as vault:
        assert vault.cases.add_staff("2026-0412", ["chenjing"]) == ["chenjing"]
        released = vault.holds.release(held.hold_id, "appeal decided")
        assert released.release_reason == "appeal decided" and vault.holds.listed() == []
    with clerk(two_items) as seen_by_clerk:
        assert [i.item_id for i in seen_by_clerk.list_items(ItemFilter())] == ["EV-000001", "EV-000002"]
    with clerk(two_items, "liwei") as not_named:
        assert [i.item_id for i in not_named.list_items(ItemFilter())] == ["EV-000001"]
        assert not not_named.cases.may_see([2])


def test_retention_records_weigh_categories_on_items_and_cases(two_items):
    with opened(two_items, "custodian-one") as vault:
        vault.tags.apply(
            ["EV-000001"], {"case": "2026-0412"}, ["penalty_evidence"], ["penalty_evidence", "routine"]
        )
        assert vault.retention.add_case_categories("2026-0412", ["major_case"], ["major_case"]) == [
            "major_case"
        ]
        assert vault.retention.add_case_categories("2026-0412", ["major_case"], ["major_case"]) == []
        assert vault.retention.item_categories(vault.resolve("EV-000001")) == ["penalty_evidence"]
        assert vault.retention.case_categories() == {"2026-0412": frozenset({"major_case"})}
        with pytest.raises(Vault.UnknownCategory):
            vault.retention.add_case_categories("2026-0412", ["forever"], ["major_case"])
        owners = vault.retention.object_owners()
        assert sorted(n for numbers in owners.values() for n in numbers) == [1, 2]
        assert {"category-added", "case-category-added"} <= set(actions(vault))


def test_intake_seals_a_stream_as_an_item_with_its_dock_facts_event_and_media_job(two_items, tmp_path):
    clip = make_clip(tmp_path / "C.MP4", tone=880)
    with opened(two_items) as vault, open(clip, "rb") as source:
        staged = vault.intake.stage(source, clip.stat().st_size)
        facts = DockFacts(recorder_serial="BWC0042", credited_officer="031245", late=True, dock_session=None)
        record = IngestRecord(
            original_name="C.MP4",
            source_path="DCIM/C.MP4",
            source_path_bytes=b"DCIM/C.MP4",
            source="dock",
            dock=facts,
        )
        item = vault.intake.store(staged, record)
        assert (item.item_id, item.recorder_serial, item.credited_officer, item.late) == (
            "EV-000003",
            "BWC0042",
            "031245",
            True,
        )
        [event] = [e for e in vault.events(item) if e.action == "ingest"]
        assert event.details["late"] is True and event.details["recorder_serial"] == "BWC0042"
        assert vault.media.counts().get("queued", 0) >= 1
        assert vault.integrity.verify(["EV-000003"]).ok
