"""Disposition: planned, requested, approved by a second person, executed, propagated, recorded."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from custody.config import load_settings
from custody.vault import Vault
from tests.docking import dock
from tests.ingestd.test_dock import local_name
from tests.vault.test_replication import key_of


def old_footage(tmp_path, home, custody, ages_days: dict[str, int]) -> dict[str, str]:
    """Dock recordings made ``ages_days`` ago; return {suffix: item id}.

    The station expects old footage ([dock] suspect_past_days past the oldest): a clock-suspect
    item's retention would run from its ingest instead (tested in test_plan).
    """
    expect_old_footage(home, max(ages_days.values()) + 30)
    custody("recorder", "add", "TS01", "--from", "2000-01-01", "--profile", "timestamped")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    now = datetime.now(UTC).replace(microsecond=0)
    for suffix, days in ages_days.items():
        (dcim / local_name(now - timedelta(days=days), suffix)).write_bytes(os.urandom(5000))
    dock(home, tmp_path / "card", "TS01", "timestamped")
    return {i["name"].rsplit("_", 1)[1][:-4]: i["id"] for i in json.loads(custody("ls", "--json").stdout)}


def expect_old_footage(home, days: int) -> None:
    """Set [dock] suspect_past_days in the vault's custody.toml (in its [dock] table, or a new one)."""
    config = home / "custody.toml"
    text = config.read_text() if config.exists() else ""
    line = f"suspect_past_days = {days}\n"
    if "\n[dock]\n" in f"\n{text}":
        text = f"\n{text}".replace("\n[dock]\n", f"\n[dock]\n{line}", 1)[1:]
    else:
        text += f"\n[dock]\n{line}"
    config.write_text(text)


def approve_as(home, person: str, request_id: str):
    """A second person approves (the service API; the CLI passes the caller's login name)."""
    with Vault(load_settings(home), person) as vault:
        return vault.disposals.approve(request_id)


def test_plan_request_approve_execute_deletes_here_and_in_the_bucket_and_keeps_a_tombstone(
    tmp_path, home, custody, s3
):
    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    (home / "custody.toml").write_text(s3.target_toml(bucket))
    ids = old_footage(tmp_path, home, custody, {"old1": 3 * 365, "old2": 3 * 365 + 5, "new": 3})
    custody("replicate", "run", "--once")
    shas = {i["id"]: i["sha256"] for i in json.loads(custody("ls", "--json").stdout)}

    request = json.loads(
        custody("retention", "request", "--plan", "--reason", "routine, past its period", "--json").stdout
    )
    assert sorted(request["items"]) == sorted([ids["old1"], ids["old2"]])
    refused = custody("retention", "approve", request["id"], expect=5)
    assert "requested it; a second person must approve" in refused.stderr
    refused = custody("retention", "execute", request["id"], expect=5)
    assert "it is not approved yet" in refused.stderr
    approved = approve_as(home, "custodian2", request["id"])
    assert approved.approved_by == "custodian2"

    done = json.loads(custody("retention", "execute", request["id"], "--json").stdout)
    assert sorted(done["result"]["deleted"]) == sorted([ids["old1"], ids["old2"]])
    assert [i["id"] for i in json.loads(custody("ls", "--json").stdout)] == [ids["new"]]
    for gone in (ids["old1"], ids["old2"]):
        assert not list((home / "objects" / "sha256").rglob(shas[gone]))
        result = custody("show", gone, expect=5)
        assert f"{gone} was disposed of on" in result.stderr and "approved by custodian2" in result.stderr
    assert json.loads(custody("verify", "--json").stdout)["ok"]

    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert summary["deleted"] == 2  # their retention (two years from recording) has passed
    client = s3.client()
    versions = client.list_object_versions(Bucket=bucket).get("Versions") or []
    remaining = {v["Key"] for v in versions}
    assert key_of(shas[ids["old1"]]) not in remaining and key_of(shas[ids["new"]]) in remaining
    assert {line["mark"] for line in json.loads(custody("replicate", "check", "--json").stdout)} == {"="}

    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    for action, count in (
        ("disposition-requested", 1),
        ("disposition-approved", 1),
        ("item-disposed", 2),
        ("disposition-executed", 1),
        ("replica-deleted", 2),
    ):
        assert actions.count(action) == count, action
    with Vault(load_settings(home), "auditor") as vault:
        [first, second] = vault.disposals.tombstones()
    assert {first["sha256"], second["sha256"]} == {shas[ids["old1"]], shas[ids["old2"]]}
    assert first["requested_by"] != first["approved_by"] == "custodian2" and first["state"] == "done"


def test_an_item_held_between_approval_and_execution_is_not_deleted(tmp_path, home, custody):
    custody("init")
    ids = old_footage(tmp_path, home, custody, {"old1": 3 * 365, "old2": 3 * 365 + 1, "young": 100})
    refused = custody("retention", "request", ids["young"], "--reason", "x", expect=5)
    assert f"not eligible for disposition: {ids['young']} (the 2-year floor" in refused.stderr
    assert json.loads(custody("retention", "requests", "--json").stdout) == []  # nothing recorded
    request = json.loads(
        custody("retention", "request", ids["old1"], ids["old2"], "--reason", "routine", "--json").stdout
    )
    approve_as(home, "custodian2", request["id"])
    custody("hold", "add", ids["old2"], "--reason", "complaint filed today")
    done = json.loads(custody("retention", "execute", request["id"], "--json").stdout)
    assert done["result"]["deleted"] == [ids["old1"]]
    assert done["result"]["refused"] == {ids["old2"]: "held: hold HOLD-000001 on the item"}
    assert [i["id"] for i in json.loads(custody("ls", "--json").stdout)] == [ids["old2"], ids["young"]]
    again = custody("retention", "execute", request["id"], expect=5)
    assert "it is executed already" in again.stderr


def test_a_replica_still_under_object_lock_is_reported_and_retried_after_its_date(
    tmp_path, home, custody, s3
):
    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    (home / "custody.toml").write_text(s3.target_toml(bucket))
    ids = old_footage(tmp_path, home, custody, {"old1": 3 * 365})
    custody("replicate", "run", "--once")
    [item] = json.loads(custody("ls", "--json").stdout)
    later = datetime.now(UTC) + timedelta(days=30)  # someone locked the copy longer than retention needs
    s3.client().put_object_retention(
        Bucket=bucket, Key=key_of(item["sha256"]), Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later}
    )
    request = json.loads(custody("retention", "request", "--plan", "--reason", "routine", "--json").stdout)
    approve_as(home, "custodian2", request["id"])
    custody("retention", "execute", request["id"])
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert (summary["deleted"], summary["locked"]) == (0, 1)
    [event] = [
        e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "replica-delete-locked"
    ]
    assert event["details"]["retry_after"][:10] == later.date().isoformat()
    assert ids["old1"] == item["id"]


def item_states(home) -> dict[int, str]:
    """Open the vault (which finishes what a kill interrupted) and say, per item, present or tombstoned."""
    with Vault(load_settings(home), "inspector", writer=True) as vault:
        states = {}
        for number in range(1, 31):
            item = vault.item_number(number)
            gone = vault.disposals.tombstone(number)
            if item is not None and gone is None:
                assert vault.objects.exists(item.sha256), f"EV-{number}: present without its object"
                states[number] = "present"
            elif item is None and gone is not None:
                assert gone["state"] == "done", f"EV-{number}: tombstone left {gone['state']}"
                assert not vault.objects.exists(gone["sha256"]), f"EV-{number}: tombstoned, object kept"
                states[number] = "tombstoned"
            else:
                raise AssertionError(f"EV-{number}: half disposed (row {item is not None}, tombstone {gone})")
    return states


@pytest.mark.slow  # (make test-quick leaves it out)
def test_a_kill_during_execute_leaves_each_item_present_or_tombstoned_never_half(tmp_path, custody):
    import random
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    rng = random.Random(20261127)
    middles = 0
    duration = None
    for run in range(11):  # one run to measure, then ten kills at random points
        home = tmp_path / f"vault{run}"

        def cli(*args: str, expect: int = 0, home=home) -> str:
            result = subprocess.run(
                [sys.executable, "-m", "custody", "--home", str(home), *args], capture_output=True, text=True
            )
            assert result.returncode == expect, result.stderr
            return result.stdout

        cli("init")
        expect_old_footage(home, 4 * 365)
        cli("recorder", "add", "TS01", "--from", "2000-01-01", "--profile", "timestamped")
        card = tmp_path / f"card{run}" / "DCIM"
        card.mkdir(parents=True)
        now = datetime.now(UTC).replace(microsecond=0)
        for n in range(30):
            (card / local_name(now - timedelta(days=3 * 365 + n), f"{n:04d}")).write_bytes(os.urandom(20_000))
        dock(home, card.parent, "TS01", "timestamped")
        request = json.loads(cli("retention", "request", "--plan", "--reason", "routine", "--json"))
        approve_as(home, "custodian2", request["id"])
        started = time.monotonic()
        runner = subprocess.Popen(
            [sys.executable, "-m", "custody", "--home", str(home), "retention", "execute", request["id"]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if duration is None:
            assert runner.wait(timeout=120) == 0
            duration = time.monotonic() - started
            assert set(item_states(home).values()) == {"tombstoned"}
            continue
        # Kill once the k-th tombstone is committed, plus a random instant: somewhere inside
        # the k-th item's steps (rows, object files, tombstone done) or the next one's.
        k = rng.randint(1, 29)
        watcher = sqlite3.connect(f"file:{home / 'catalog.db'}?mode=ro", uri=True, timeout=10)
        while runner.poll() is None and time.monotonic() - started < 120:
            try:
                if watcher.execute("SELECT count(*) FROM tombstones").fetchone()[0] >= k:
                    break
            except sqlite3.OperationalError:
                pass  # busy for a moment
            time.sleep(0.001)
        watcher.close()
        time.sleep(rng.uniform(0, 0.01))
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=60)
        states = item_states(home)  # raises on any half-disposed item
        if 0 < list(states.values()).count("tombstoned") < 30:
            middles += 1
        # Unless the kill came after its end, the approved request runs again and finishes the rest.
        [state] = [r["state"] for r in json.loads(cli("retention", "requests", "--json"))]
        if state == "approved":
            cli("retention", "execute", request["id"])
        assert set(item_states(home).values()) == {"tombstoned"}
        assert json.loads(cli("verify", "--json"))["ok"]
    assert middles >= 1, "no kill landed in the middle of an execution: the test proved nothing"


def test_removing_a_permanent_category_needs_a_second_person_and_then_lifts_the_replicas_hold(
    tmp_path, home, custody, s3
):
    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    (home / "custody.toml").write_text(s3.target_toml(bucket))
    ids = old_footage(tmp_path, home, custody, {"old1": 3 * 365})
    item = ids["old1"]
    custody("tag", item, "--category", "penalty_evidence")
    custody("replicate", "run", "--once")
    [sha256] = [i["sha256"] for i in json.loads(custody("ls", "--json").stdout)]

    def hold_status() -> str | None:
        return s3.client().head_object(Bucket=bucket, Key=key_of(sha256)).get("ObjectLockLegalHoldStatus")

    assert hold_status() == "ON"
    missing = custody(
        "retention", "request", item, "--remove-category", "major_case", "--reason", "x", expect=5
    )
    assert f"{item} (no category major_case)" in missing.stderr
    request = json.loads(
        custody(
            "retention", "request", item, "--remove-category", "penalty_evidence",
            "--reason", "the penalty was annulled", "--json",
        ).stdout
    )  # fmt: skip
    assert "it is not approved yet" in custody("retention", "execute", request["id"], expect=5).stderr
    assert json.loads(custody("show", item, "--json").stdout)["retention"]["permanent"] is True  # unchanged
    approve_as(home, "custodian2", request["id"])
    custody("retention", "execute", request["id"])
    kept = json.loads(custody("show", item, "--json").stdout)["retention"]
    assert kept["permanent"] is False and kept["eligible"] is True  # back to the floor, long passed
    [event] = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "category-removed"]
    assert (event["details"]["requested_by"], event["details"]["approved_by"]) != (None, None)
    assert event["details"]["approved_by"] == "custodian2" != event["details"]["requested_by"]
    custody("replicate", "run", "--once")
    assert hold_status() == "OFF"


def test_a_restore_from_the_replica_does_not_bring_a_disposed_item_back(tmp_path, home, custody, s3):
    from click.testing import CliRunner

    from custody.cli import cli

    custody("init")
    target = s3.target_toml(s3.new_bucket())
    (home / "custody.toml").write_text(target)
    ids = old_footage(tmp_path, home, custody, {"old1": 3 * 365, "new": 5})
    custody("replicate", "run", "--once")  # both items described on the replica
    request = json.loads(custody("retention", "request", ids["old1"], "--reason", "routine", "--json").stdout)
    approve_as(home, "custodian2", request["id"])
    custody("retention", "execute", request["id"])
    custody("replicate", "run", "--once")  # the tombstone becomes the item's newest document

    new_home = tmp_path / "rebuilt"
    new_home.mkdir()
    (new_home / "custody.toml").write_text(target)
    runner = CliRunner()
    key = tmp_path / "master.key"
    key.write_bytes((home / "keys" / "master.key").read_bytes())
    result = runner.invoke(
        cli, ["--home", str(new_home), "restore", "--from", "offsite", "--master-key", str(key)]
    )
    assert result.exit_code == 0, result.stderr
    listed = json.loads(runner.invoke(cli, ["--home", str(new_home), "ls", "--json"]).stdout)
    assert [i["id"] for i in listed] == [ids["new"]]
    shown = runner.invoke(cli, ["--home", str(new_home), "show", ids["old1"]])
    assert shown.exit_code == 5 and "was disposed of on" in shown.stderr
    assert json.loads(runner.invoke(cli, ["--home", str(new_home), "verify", "--json"]).stdout)["ok"]


def test_a_hold_or_permanent_category_set_a_moment_before_the_tombstone_still_stops_it(
    tmp_path, home, custody
):
    custody("init")
    ids = old_footage(tmp_path, home, custody, {"old1": 3 * 365, "old2": 3 * 365 + 1})
    request = json.loads(custody("retention", "request", "--plan", "--reason", "routine", "--json").stdout)
    approve_as(home, "custodian2", request["id"])
    custody("hold", "add", ids["old1"], "--reason", "late complaint")
    custody("tag", ids["old2"], "--category", "obstruction")
    with Vault(load_settings(home), "clerk1", writer=True) as vault:
        approved = vault.disposals.start(request["id"])
        for ref in (ids["old1"], ids["old2"]):
            number = vault.resolve(ref).number
            try:
                vault.disposals.dispose_item(number, approved, ["obstruction"])
            except Vault.NotEligible as refused:
                assert ref in refused.message
            else:
                raise AssertionError(f"{ref} was disposed of")
    assert len(json.loads(custody("ls", "--json").stdout)) == 2
    assert json.loads(custody("verify", "--json").stdout)["ok"]


def test_verify_while_a_disposal_runs_reports_no_false_missing_or_orphan_object(tmp_path, home, custody):
    """Rows go, then files, then the tombstone is done: a verify that checked objects before and
    after the disposal (run by another process, right after its first object) sees nothing wrong."""
    import subprocess
    import sys

    custody("init")
    old_footage(tmp_path, home, custody, {f"{n:04d}": 3 * 365 + n for n in range(20)})
    request = json.loads(custody("retention", "request", "--plan", "--reason", "routine", "--json").stdout)
    approve_as(home, "custodian2", request["id"])
    disposals = []

    def dispose_once(_done: int) -> None:  # verify's own progress hook: called as it reads objects
        if not disposals:
            disposals.append(
                subprocess.run(
                    [sys.executable, "-m", "custody", "--home", str(home), "retention", "execute", request["id"]],
                    capture_output=True, text=True,
                )
            )  # fmt: skip

    with Vault(load_settings(home), "auditor") as vault:
        report = vault.integrity.verify(on_progress=dispose_once)
    [disposal] = disposals
    assert disposal.returncode == 0, disposal.stderr
    assert "disposed of 20 item(s)" in disposal.stdout
    assert report.objects_checked == 20 and report.ok, [p.as_dict() for p in report.object_problems]
    assert json.loads(custody("verify", "--json").stdout)["objects_checked"] == 0


def test_content_disposed_of_is_not_taken_in_again_under_another_name(tmp_path, home, custody):
    """The soak found a disposal undone: a copy of disposed footage dropped under another name was
    stored again as a new item (without the facts its first name gave), silently. Content a
    tombstone names is now refused, naming the disposal, and left where it is."""
    import shutil

    custody("init")
    ids = old_footage(tmp_path, home, custody, {"old1": 3 * 365, "new": 3})
    request = json.loads(custody("retention", "request", ids["old1"], "--reason", "routine", "--json").stdout)
    approve_as(home, "custodian2", request["id"])
    custody("retention", "execute", request["id"])
    [card_file] = [p for p in (tmp_path / "card" / "DCIM").iterdir() if "old1" in p.name]
    again = tmp_path / "copy" / "again-CLIP.MP4"
    again.parent.mkdir()
    shutil.copy(card_file, again)
    refused = custody("ingest", str(again.parent), "--json", expect=1)
    line = json.loads(refused.stdout.splitlines()[0])
    assert line["status"] == "error", line
    assert f"disposed of as {ids['old1']}" in line["message"] and request["id"] in line["message"]
    assert [i["id"] for i in json.loads(custody("ls", "--json").stdout)] == [ids["new"]]
    assert again.exists() and json.loads(custody("verify", "--json").stdout)["ok"]


def test_a_replica_deletion_waiting_out_a_lock_spares_an_object_that_is_in_use_again(
    tmp_path, home, custody, s3, clip_library
):
    """Two recordings of the same picture have the same thumbnail: disposing of the first queues
    the thumbnail's deletion, a lock delays it, the second arrives and stores that thumbnail again.
    The delayed deletion must not take the second item's replica with it (every version goes)."""
    import shutil
    import time

    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    (home / "custody.toml").write_text(s3.target_toml(bucket))
    expect_old_footage(home, 4 * 365)
    custody("recorder", "add", "TS01", "--from", "2000-01-01", "--profile", "timestamped")
    three_years_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3 * 365)

    def dock_clip(clip: str, suffix: str, days_later: int) -> dict:
        card = tmp_path / f"card{suffix}" / "DCIM"
        card.mkdir(parents=True)
        shutil.copy(
            clip_library / clip, card / local_name(three_years_ago + timedelta(days=days_later), suffix)
        )
        dock(home, card.parent, "TS01", "timestamped")
        custody("media", "run", "--once")
        [item] = [
            i for i in json.loads(custody("ls", "--json").stdout) if i["name"].endswith(f"_{suffix}.MP4")
        ]
        return json.loads(custody("show", item["id"], "--json").stdout)

    first = dock_clip("CLIP0001.MP4", "0001", 0)
    [thumbnail] = [d["sha256"] for d in first["derivatives"] if d["role"] == "thumbnail"]
    custody("replicate", "run", "--once")
    # Someone locked the thumbnail's copy a little longer than its retention.
    lock_ends = datetime.now(UTC) + timedelta(seconds=8)
    s3.client().put_object_retention(
        Bucket=bucket, Key=key_of(thumbnail), Retention={"Mode": "COMPLIANCE", "RetainUntilDate": lock_ends}
    )
    request = json.loads(custody("retention", "request", first["id"], "--reason", "routine", "--json").stdout)
    approve_as(home, "custodian2", request["id"])
    custody("retention", "execute", request["id"])
    assert json.loads(custody("replicate", "run", "--once", "--json").stdout)["locked"] == 1

    second = dock_clip("CLIP0002.MP4", "0002", 1)  # the same test picture, another tone
    assert thumbnail in {d["sha256"] for d in second["derivatives"]}  # the premise: one object again
    custody("replicate", "run", "--once")
    time.sleep(max(0.0, (lock_ends - datetime.now(UTC)).total_seconds()) + 1)
    custody("replicate", "run", "--once")

    versions = s3.client().list_object_versions(Bucket=bucket, Prefix=key_of(thumbnail)).get("Versions") or []
    assert versions, "the second item's thumbnail was deleted from the bucket with the first's"
    assert {line["mark"] for line in json.loads(custody("replicate", "check", "--json").stdout)} == {"="}
    [kept] = [
        e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "replica-deletion-dropped"
    ]
    assert kept["details"]["sha256"] == thumbnail and "in use" in kept["details"]["reason"]

    # Disposed of a second time (the second item, now), the thumbnail leaves the bucket too.
    request = json.loads(
        custody("retention", "request", second["id"], "--reason", "routine", "--json").stdout
    )
    approve_as(home, "custodian2", request["id"])
    custody("retention", "execute", request["id"])
    custody("replicate", "run", "--once")
    listed = s3.client().list_object_versions(Bucket=bucket, Prefix=key_of(thumbnail))
    assert not listed.get("Versions") and not listed.get("DeleteMarkers")


def test_an_item_disposed_of_while_a_replication_run_has_it_listed_is_passed_over_then_deleted(
    tmp_path, home, custody, s3
):
    """The run lists what is due once; a disposition executed meanwhile takes the replica row and
    the object file away. The run must pass the item over (it stopped the whole run, on a missing
    row), and the next run deletes whatever copy was sent."""
    from custody.retention.disposition import execute_disposition
    from custody.vault.offsite.replicator import Replicator

    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    (home / "custody.toml").write_text(s3.target_toml(bucket))
    ids = old_footage(tmp_path, home, custody, {"old1": 3 * 365, "old2": 3 * 365 + 2, "new": 3})
    request = json.loads(
        custody("retention", "request", ids["old1"], ids["old2"], "--reason", "routine", "--json").stdout
    )
    approve_as(home, "custodian2", request["id"])
    settings = load_settings(home)
    executed = []

    def dispose_when_the_run_has_listed_its_rows() -> bool:
        if not executed:
            executed.append(execute_disposition(vault, settings, request["id"], datetime.now(UTC)))
        return False  # (not a pause: the run goes on with the rows it listed)

    with Vault(settings, "custodian", writer=True) as vault:
        replicator = Replicator(vault, settings)
        summary = replicator.run(pause=dispose_when_the_run_has_listed_its_rows)
        assert executed and (summary.failed, summary.errors) == (0, [])
        assert summary.verified == 1  # the item that stays
        Replicator(vault, settings).run()
    remaining = (
        s3.client().list_object_versions(Bucket=bucket, Prefix="custody/objects/").get("Versions") or []
    )
    [kept] = json.loads(custody("ls", "--json").stdout)
    assert [v["Key"] for v in remaining] == [key_of(kept["sha256"])]
    assert {line["mark"] for line in json.loads(custody("replicate", "check", "--json").stdout)} == {"="}
