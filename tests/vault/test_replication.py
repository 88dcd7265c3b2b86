"""Off-site replication to a real S3 server on loopback: sent sealed, verified by the vault, locked."""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from custody.vault.sealing import MAGIC


def files(folder: Path, count: int, size: int = 40_000) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for number in range(count):
        path = folder / f"CLIP{number:04d}.MP4"
        path.write_bytes(number.to_bytes(4, "big") + os.urandom(size))
        made.append(path)
    return made


def configure(home: Path, text: str) -> None:
    (home / "custody.toml").write_text(text)


def key_of(sha256: str) -> str:
    return f"custody/objects/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def items(custody) -> list[dict]:
    return json.loads(custody("ls", "--json").stdout)


def check(custody, *args, expect: int = 0) -> list[dict]:
    return json.loads(custody("replicate", "check", "--json", *args, expect=expect).stdout)


def test_twenty_files_are_replicated_sealed_verified_and_check_reports_all_same(tmp_path, home, custody, s3):
    custody("init")
    bucket = s3.new_bucket()
    configure(home, s3.target_toml(bucket))
    originals = files(tmp_path / "DCIM", 20)
    custody("ingest", str(tmp_path / "DCIM"))
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert (summary["uploaded"], summary["verified"], summary["failed"]) == (20, 20, 0)

    lines = check(custody)
    assert len(lines) == 20 and {line["mark"] for line in lines} == {"="}
    [status] = json.loads(custody("replicate", "status", "--json").stdout)
    assert (status["objects"], status["verified"], status["failing"], status["lag_seconds"]) == (20, 20, 0, 0)
    assert status["object_lock"].startswith("NOT ENABLED")  # said loudly: this bucket has no lock

    client = s3.client()
    for item, original in zip(items(custody), originals, strict=False):
        stored = client.get_object(Bucket=bucket, Key=key_of(item["sha256"]))["Body"].read()
        assert stored.startswith(MAGIC)  # the sealed object, as the vault keeps it
        assert original.read_bytes()[100:164] not in stored  # the provider never sees footage
    events = json.loads(custody("log", "--json").stdout)
    verified = [e for e in events if e["action"] == "replica-verified"]
    assert len(verified) == 20 and {e["details"]["how"] for e in verified} == {"checksum"}
    # Nothing to do the second time.
    again = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert (again["uploaded"], again["verified"]) == (0, 0)


def test_download_verification_rehashes_every_replica_through_decryption(tmp_path, home, custody, s3):
    custody("init")
    configure(home, s3.target_toml(s3.new_bucket(), verify="download", part_size_mb=5))
    big = tmp_path / "DCIM" / "LONG0001.MP4"
    big.parent.mkdir()
    big.write_bytes(os.urandom(12 << 20))  # three 5 MiB parts: a multipart upload
    custody("ingest", str(big))
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert (summary["verified"], summary["failed"]) == (1, 0)
    [event] = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "replica-verified"]
    assert event["details"]["how"] == "download"
    assert [line["mark"] for line in check(custody, "--download")] == ["="]
    assert [line["mark"] for line in check(custody)] == ["="]  # the multipart checksum agrees too


def test_objects_deleted_or_altered_in_the_bucket_are_reported_and_repaired(tmp_path, home, custody, s3):
    custody("init")
    bucket = s3.new_bucket()
    configure(home, s3.target_toml(bucket))
    files(tmp_path / "DCIM", 3)
    custody("ingest", str(tmp_path / "DCIM"))
    custody("replicate", "run", "--once")
    first, second, third = (item["sha256"] for item in items(custody))
    client = s3.client()
    client.delete_object(Bucket=bucket, Key=key_of(first))
    stored = bytearray(client.get_object(Bucket=bucket, Key=key_of(second))["Body"].read())
    stored[5000] ^= 0x01  # same size, one bit changed
    client.put_object(Bucket=bucket, Key=key_of(second), Body=bytes(stored), ChecksumAlgorithm="SHA256")
    client.put_object(Bucket=bucket, Key=key_of("f" * 64), Body=b"not ours")

    marks = {line["sha256"]: line["mark"] for line in check(custody, expect=1)}
    assert marks == {first: "-", second: "*", third: "=", "f" * 64: "+"}
    text = custody("replicate", "check", expect=1).stdout
    assert f"- offsite {first}" in text and f"* offsite {second}" in text

    summary = json.loads(custody("replicate", "run", "--once", "--repair", "--json").stdout)
    assert (summary["resent"], summary["verified"], summary["failed"]) == (2, 2, 0)
    marks = {line["sha256"]: line["mark"] for line in check(custody, expect=1)}
    assert marks == {
        first: "=",
        second: "=",
        third: "=",
        "f" * 64: "+",
    }  # ours repaired; extras reported only
    resends = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "replica-resend"]
    assert {e["details"]["sha256"] for e in resends} == {first, second}


def test_with_object_lock_a_replica_cannot_be_deleted_before_two_years(tmp_path, home, custody, s3):
    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    configure(home, s3.target_toml(bucket))
    files(tmp_path / "DCIM", 1)
    custody("ingest", str(tmp_path / "DCIM"))
    custody("replicate", "run", "--once")
    [item] = items(custody)
    client = s3.client()
    head = client.head_object(Bucket=bucket, Key=key_of(item["sha256"]))
    assert head["ObjectLockMode"] == "COMPLIANCE"
    floor = datetime.now(UTC) + timedelta(days=729)
    assert head["ObjectLockRetainUntilDate"] > floor
    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=bucket, Key=key_of(item["sha256"]), VersionId=head["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    [status] = json.loads(custody("replicate", "status", "--json").stdout)
    assert status["object_lock"] == "enabled"


@pytest.mark.parametrize(
    "problem,said",
    [
        ("credentials", "credentials refused by"),
        ("bucket", "no bucket 'custody-missing-bucket'"),
        ("endpoint", "cannot reach http://127.0.0.1:9"),
    ],
)
def test_bad_credentials_bucket_or_endpoint_is_one_clear_line_and_nothing_counts_as_replicated(
    tmp_path, home, custody, s3, monkeypatch, problem, said
):
    custody("init")
    bucket = s3.new_bucket()
    good = s3.target_toml(bucket)
    if problem == "credentials":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        bad = good
    elif problem == "bucket":
        bad = s3.target_toml("custody-missing-bucket")
    else:
        bad = good.replace(s3.endpoint, "http://127.0.0.1:9")
    configure(home, bad)
    files(tmp_path / "DCIM", 2)
    custody("ingest", str(tmp_path / "DCIM"))
    result = custody("replicate", "run", "--once", expect=1)
    [line] = [line for line in result.stderr.splitlines() if said in line]
    assert line.startswith("custody: offsite: ") and "not-the-secret" not in result.stderr
    [status] = json.loads(custody("replicate", "status", "--json").stdout)
    assert (status["replicated"], status["verified"], status["failing"]) == (0, 0, 2)
    assert said in status["last_error"]
    assert not [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "replica-verified"]

    # Fixed: the queue was kept and the next run sends everything.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    configure(home, good)
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert (summary["verified"], summary["failed"]) == (2, 0)


def test_a_multipart_upload_left_open_by_a_killed_run_is_aborted(tmp_path, home, custody, s3):
    custody("init")
    bucket = s3.new_bucket()
    configure(home, s3.target_toml(bucket))
    files(tmp_path / "DCIM", 1)
    custody("ingest", str(tmp_path / "DCIM"))
    [item] = items(custody)
    client = s3.client()
    client.create_multipart_upload(Bucket=bucket, Key=key_of(item["sha256"]), ChecksumAlgorithm="SHA256")
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert (summary["aborted_uploads"], summary["verified"]) == (1, 1)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_replicate_without_a_target_says_how_to_add_one(custody):
    custody("init")
    result = custody("replicate", "status", expect=2)
    assert "no replication target: add a [targets.NAME] table to custody.toml" in result.stderr


@pytest.mark.slow  # (make test-quick leaves it out)
def test_the_daemon_replicates_what_it_ingests_and_warns_when_the_bucket_has_no_lock(
    tmp_path, home, custody, s3, testbed
):
    from tests.docking import DaemonProcess, wait_for

    drop = tmp_path / "drop"
    drop.mkdir()
    custody("init")
    configure(
        home,
        f'[dock]\nwatch_folders = ["{drop}"]\nwatch_settle_seconds = 0.5\n\n'
        + s3.target_toml(s3.new_bucket()),
    )
    daemon = DaemonProcess(home, testbed, tmp_path / "daemon.log")
    [clip] = files(tmp_path / "card", 1)
    os.rename(clip, drop / clip.name)

    def verified():
        [status] = json.loads(custody("replicate", "status", "--json").stdout)
        return status["objects"] >= 1 and status["verified"] == status["objects"]

    wait_for(verified, "the daemon to replicate the dropped file", timeout=120)
    # Each checkpoint leaves the machine within seconds of being signed (the anchor verify checks),
    # a tag made through the daemon's socket too.
    custody("tag", "EV-000001", "--note", "published?")
    newest = json.loads(custody("anchor", "--json").stdout)["seq"]

    def published() -> bool:
        from custody.config import load_settings
        from custody.vault.keys import read_master_key_file
        from custody.vault.offsite.published import published_chain
        from custody.vault.offsite.target import S3Target

        settings = load_settings(home)
        target = S3Target("offsite", settings.targets["offsite"])
        chain = published_chain(target, read_master_key_file(home / "keys" / "master.key"))
        return max((point.seq for point in chain.checkpoints), default=0) >= newest

    wait_for(published, "the daemon to publish the newest checkpoint", timeout=30)
    assert daemon.stop() == 0, daemon.log()
    assert "replica offsite" in daemon.log() and "Object Lock NOT ENABLED" in daemon.log()
    assert {line["mark"] for line in check(custody)} == {"="}
    assert "against 1 anchor(s): OK" in custody("verify", "--against", "offsite").stdout


def test_a_vault_is_rebuilt_from_its_replica_and_the_master_key_alone(tmp_path, home, custody, s3, footage):
    from click.testing import CliRunner

    from custody.cli import cli

    custody("init")
    target = s3.target_toml(s3.new_bucket())
    configure(home, target)
    custody("officer", "add", "031245", "--name", "Wang Li")
    custody(
        "ingest", str(footage / "CLIP0001.MP4"), str(footage / "CLIP0002.MP4"), str(footage / "LONG0001.MP4")
    )
    custody("tag", "EV-000001", "EV-000002", "--case", "2026-0412", "--party", "Zhang Wei")
    custody("tag", "EV-000002", "--case", "2026-0413")  # history: the newest value wins
    # A case file: the case, a written record linked to its recording, an archive.
    custody("case", "open", "2026-0412", "--cause", "c", "--party", "Zhang Wei", "--handler", "031245")
    (tmp_path / "inquiry.pdf").write_bytes(b"%PDF-1.4 inquiry record")
    custody("case", "file", "2026-0412", str(tmp_path / "inquiry.pdf"), "--type", "询问笔录")
    custody("case", "link", "EV-000004", "EV-000001")
    custody("case", "close", "2026-0412", "--ended", "2026-11-01")
    custody("case", "archive", "2026-0412", "--force", "--reason", "restore test")
    case_before = json.loads(custody("case", "show", "2026-0412", "--json").stdout)
    cases_before = json.loads(custody("case", "ls", "--json").stdout)
    custody("media", "run", "--once")  # playable copies and thumbnails are objects too
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert summary["failed"] == 0 and summary["sidecars"] == 6
    before = items(custody)
    shown = json.loads(custody("show", "EV-000002", "--json").stdout)
    key_backup = tmp_path / "master.key.backup"
    key_backup.write_bytes((home / "keys" / "master.key").read_bytes())
    shutil.rmtree(home)  # the station burns down

    new_home = tmp_path / "rebuilt"
    new_home.mkdir()
    (new_home / "custody.toml").write_text(target)
    runner = CliRunner()

    def rebuilt(*args: str, expect: int = 0):
        result = runner.invoke(cli, ["--home", str(new_home), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.stdout + result.stderr
        return result

    report = json.loads(
        rebuilt("restore", "--from", "offsite", "--master-key", str(key_backup), "--json").stdout
    )
    # Three originals, two playable copies, and one thumbnail: the two clips show the same
    # picture (only their tones differ), so their thumbnails are one object.
    assert (report["items"], report["objects"]) == (6, 9)
    # The new home was an ordinary 0755 folder: no other user may read it now.
    assert stat.S_IMODE(new_home.stat().st_mode) == 0o700
    assert stat.S_IMODE((new_home / "catalog.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((new_home / "custody.toml").stat().st_mode) == 0o600
    assert json.loads(rebuilt("verify", "--json").stdout)["ok"]
    assert json.loads(rebuilt("ls", "--json").stdout) == before
    again = json.loads(rebuilt("show", "EV-000002", "--json").stdout)
    assert again["tag_history"] == shown["tag_history"] and again["derivatives"] == shown["derivatives"]
    out = tmp_path / "CLIP0002.MP4"
    rebuilt("extract", "EV-000002", "--out", str(out))
    assert out.read_bytes() == (footage / "CLIP0002.MP4").read_bytes()
    actions = [e["action"] for e in json.loads(rebuilt("log", "--json").stdout)]
    assert actions[0] == "init" and actions.count("ingest") == 6 and actions.count("restored") == 1
    assert actions.index("restored") > max(i for i, a in enumerate(actions) if a == "replica-verified")
    assert [o["badge"] for o in json.loads(rebuilt("officer", "ls", "--json").stdout)] == ["031245"]
    # The case files come back whole: stages, records, links, the archive (and it verifies).
    assert json.loads(rebuilt("case", "show", "2026-0412", "--json").stdout) == case_before
    assert json.loads(rebuilt("case", "ls", "--json").stdout) == cases_before
    # The rebuilt vault knows the replica holds everything: nothing is sent twice, all checks the same.
    again = json.loads(rebuilt("replicate", "run", "--once", "--json").stdout)
    assert (again["uploaded"], again["failed"]) == (0, 0) and again["audit_events"] > 0
    marks = json.loads(rebuilt("replicate", "check", "--json").stdout)
    assert len(marks) == 9 and {line["mark"] for line in marks} == {"="}


def test_restore_refuses_a_wrong_master_key_and_leaves_nothing(tmp_path, home, custody, s3):
    custody("init")
    target = s3.target_toml(s3.new_bucket())
    configure(home, target)
    files(tmp_path / "DCIM", 1)
    custody("ingest", str(tmp_path / "DCIM"))
    custody("replicate", "run", "--once")
    wrong = tmp_path / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")
    new_home = tmp_path / "rebuilt"
    new_home.mkdir()
    (new_home / "custody.toml").write_text(target)
    from click.testing import CliRunner

    from custody.cli import cli

    result = CliRunner().invoke(
        cli, ["--home", str(new_home), "restore", "--from", "offsite", "--master-key", str(wrong)]
    )
    assert result.exit_code == 9
    assert "this master key is not the replicated vault's" in result.stderr
    assert sorted(p.name for p in new_home.iterdir()) == ["custody.toml"]


@pytest.fixture
def proxy(s3):
    from tests.s3 import FaultyProxy

    faulty = FaultyProxy(s3.endpoint, stall_seconds=4.0)
    yield faulty
    faulty.close()


def faulty_target(s3, proxy, bucket: str, verify: str) -> str:
    return s3.target_toml(bucket, verify=verify, part_size_mb=5, timeout_seconds=1.5).replace(
        s3.endpoint, proxy.endpoint
    )


def test_errors_drops_stalls_and_a_corrupted_upload_end_replicated_and_verified(
    tmp_path, home, custody, s3, proxy
):
    custody("init")
    bucket = s3.new_bucket()
    configure(home, faulty_target(s3, proxy, bucket, verify="download"))
    files(tmp_path / "DCIM", 4)
    (tmp_path / "DCIM" / "LONG0001.MP4").write_bytes(os.urandom(12 << 20))  # three parts
    custody("ingest", str(tmp_path / "DCIM"))
    proxy.plan = {"put": ["503", "corrupt", "drop", "500"], "part": ["503", "stall", "drop"]}
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert not proxy.plan["put"] and not proxy.plan["part"]  # every fault was met
    assert ("put", "corrupt") in proxy.injected
    assert (summary["verified"], summary["failed"]) == (5, 0)
    assert summary["resent"] == 1  # the corrupted copy, found by downloading it, sent again
    assert {line["mark"] for line in check(custody, "--download")} == {"="}
    assert not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    resend = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "replica-resend"]
    assert len(resend) == 1 and "verification failed" in resend[0]["details"]["reason"]


def test_in_checksum_mode_a_corrupted_upload_is_found_by_the_deep_check_and_repaired(
    tmp_path, home, custody, s3, proxy, settings
):
    custody("init")
    bucket = s3.new_bucket()
    configure(
        home, faulty_target(s3, proxy, bucket, verify="checksum") + "deep_check_fraction_per_day = 1.0\n"
    )
    files(tmp_path / "DCIM", 3)
    custody("ingest", str(tmp_path / "DCIM"))
    proxy.plan = {"put": ["corrupt"]}
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    # The server echoes the checksum it was sent (moto does not validate): the damage passes.
    assert (summary["verified"], summary["resent"]) == (3, 0)
    lines = check(custody, "--download", expect=1)
    [damaged] = [line for line in lines if line["mark"] == "*"]
    assert "fails authentication" in damaged["detail"] or "hashes to" in damaged["detail"]

    summary = json.loads(custody("replicate", "run", "--once", "--repair", "--json").stdout)
    assert (summary["resent"], summary["verified"], summary["failed"]) == (1, 1, 0)
    assert {line["mark"] for line in check(custody, "--download")} == {"="}

    # The scheduled deep check finds the same kind of damage on its own, a day later.
    proxy.plan = {"put": ["corrupt"]}
    files(tmp_path / "MORE", 1, size=50_000)
    custody("ingest", str(tmp_path / "MORE"))
    custody("replicate", "run", "--once")
    from custody.config import load_settings
    from custody.vault import Vault

    with Vault(load_settings(home), "test", writer=True) as vault, vault.catalog.transaction():
        vault.catalog.db.execute(
            "UPDATE replica_meta SET value = '2020-01-01T00:00:00.000000Z' WHERE name = 'deep_checked_at'"
        )
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert summary["deep_checked"] == 4 and summary["resent"] == 1
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert summary["verified"] == 1
    assert {line["mark"] for line in check(custody, "--download")} == {"="}


def test_a_multipart_upload_killed_half_way_completes_after_a_restart_with_no_orphan_parts(
    tmp_path, home, custody, s3
):
    import signal
    import time

    from tests.conftest import custody_process

    custody("init")
    bucket = s3.new_bucket()
    configure(home, s3.target_toml(bucket, part_size_mb=5, concurrency=2))
    big = tmp_path / "DCIM" / "LONG0001.MP4"
    big.parent.mkdir()
    with open(big, "wb") as out:
        for _ in range(200):
            out.write(os.urandom(1 << 20))
    custody("ingest", str(big))
    client = s3.client()
    runner = custody_process(home, "replicate", "run", "--once")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []
        if uploads and client.list_parts(
            Bucket=bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
        ).get("Parts"):
            break
        assert runner.poll() is None, "the upload finished before it could be killed"
        time.sleep(0.02)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # cut off half-way

    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert (summary["aborted_uploads"], summary["verified"], summary["failed"]) == (1, 1, 0)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert [line["mark"] for line in check(custody, "--download")] == ["="]


def test_two_targets_one_with_keys_from_a_systemd_credential(tmp_path, home, custody, s3, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "custody-s3-second").write_text(f"{s3.access_key}\n{s3.secret_key}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    custody("init")
    first, second = s3.new_bucket(), s3.new_bucket()
    configure(
        home,
        s3.target_toml(first, name="offsite")
        + s3.target_toml(second, name="second", credential="custody-s3-second"),
    )
    files(tmp_path / "DCIM", 2)
    custody("ingest", str(tmp_path / "DCIM"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")  # only the credential can work for 'second'
    result = custody("replicate", "run", "--once", "--json", expect=1)
    summary = json.loads(result.stdout)
    assert summary["verified"] == 2 and any(e.startswith("offsite: ") for e in summary["errors"])
    assert s3.secret_key not in result.stdout + result.stderr  # never printed
    status = {row["target"]: row for row in json.loads(custody("replicate", "status", "--json").stdout)}
    assert (status["second"]["verified"], status["offsite"]["verified"]) == (2, 0)
    assert {line["mark"] for line in check(custody, "--target", "second")} == {"="}


def test_no_write_to_the_bucket_carries_a_retain_until_date_in_the_past(s3, tmp_path):
    """S3 refuses a retain-until date that is not in the future (InvalidArgument). Footage recorded
    more than two years before it was docked has such a date: every write that locks (an object,
    its lock set again, a small object, a version put back on top) goes undated for it, instead of
    failing for ever. (The upload was fixed at stop 30; put_version_on_top and put_blob still sent
    the date.)"""
    from custody.config import TargetSettings
    from custody.vault.offsite.target import S3Target

    bucket = s3.new_bucket(object_lock=True)
    target = S3Target(
        "offsite", TargetSettings(endpoint_url=s3.endpoint, bucket=bucket, addressing_style="path")
    )
    past = datetime.now(UTC) - timedelta(days=30)
    sealed = tmp_path / ("b" * 64)
    sealed.write_bytes(b"sealed bytes" * 1000)
    target.upload(sealed, "b" * 64, past, legal_hold=False)
    first = target.head("b" * 64)
    target.set_lock("b" * 64, past, legal_hold=False)
    again = target.put_version_on_top(target.object_key("b" * 64), first.version_id, past)
    target.put_blob("audit/000000000001-000000000001-" + "c" * 64, b"segment", past)
    assert again is not None and again != first.version_id
    assert target.head("b" * 64).retain_until is None
    assert target.versions(target.object_key("b" * 64)) == [again, first.version_id]


def test_a_legal_hold_set_on_a_replica_keeps_it_whatever_its_retention(s3, tmp_path):
    """The mechanism permanent and held items will use once retention lands (issue 6)."""
    from custody.config import TargetSettings
    from custody.vault.offsite.target import S3Target

    bucket = s3.new_bucket(object_lock=True)
    target = S3Target(
        "offsite", TargetSettings(endpoint_url=s3.endpoint, bucket=bucket, addressing_style="path")
    )
    sealed = tmp_path / ("a" * 64)
    sealed.write_bytes(b"sealed bytes" * 1000)
    target.upload(sealed, "a" * 64, datetime.now(UTC) + timedelta(days=1), legal_hold=True)
    remote = target.head("a" * 64)
    assert remote.legal_hold and remote.lock_mode == "COMPLIANCE"
    with pytest.raises(ClientError):
        s3.client().delete_object(Bucket=bucket, Key=key_of("a" * 64), VersionId=remote.version_id)


def test_wipe_after_replica_deletes_a_recorder_file_only_once_its_copy_is_verified_off_site(
    tmp_path, home, custody, s3
):
    from tests.docking import dock

    custody("init")
    configure(home, s3.target_toml(s3.new_bucket()) + '\n[profiles.wiper]\nwipe = "after_replica"\n')
    custody("recorder", "add", "BWC9", "--from", "2020-01-01", "--profile", "wiper")
    card = tmp_path / "card"
    files(card / "DCIM", 2)

    first = dock(home, card, "BWC9", "wiper", wipe=True)
    assert first.wiped == 0  # sealed in the vault, not yet off-site: nothing deleted
    assert len(list((card / "DCIM").iterdir())) == 2
    assert all("not yet verified off-site on offsite" in error for error in first.errors)

    custody("replicate", "run", "--once")
    second = dock(home, card, "BWC9", "wiper", wipe=True)  # the next dock: both known, both replicated
    assert second.wiped == 2
    assert list((card / "DCIM").iterdir()) == []
    wiped = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "recorder-file-wiped"]
    assert len(wiped) == 2


def test_retention_categories_and_holds_reach_the_replicas_object_lock(tmp_path, home, custody, s3):
    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    configure(home, s3.target_toml(bucket) + '\n[retention.categories]\ntraffic = "5y"\n')
    files(tmp_path / "DCIM", 3)
    custody("ingest", str(tmp_path / "DCIM"))
    custody("replicate", "run", "--once")
    first, second, third = (item["sha256"] for item in items(custody))
    client = s3.client()

    def lock(sha256: str) -> tuple[datetime, str | None]:
        head = client.head_object(Bucket=bucket, Key=key_of(sha256))
        return head["ObjectLockRetainUntilDate"], head.get("ObjectLockLegalHoldStatus")

    floor, hold = lock(first)
    assert hold in (None, "OFF")
    custody("tag", "EV-000001", "--category", "penalty_evidence")
    custody("tag", "EV-000002", "--category", "traffic")
    placed = json.loads(custody("hold", "add", "EV-000003", "--reason", "court order", "--json").stdout)
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert summary["locks_updated"] == 3
    assert lock(first)[1] == "ON"  # permanent evidence: legal hold
    until, hold = lock(second)
    assert hold in (None, "OFF") and until > floor + timedelta(days=3 * 365 - 2)  # five years, extended
    assert lock(third)[1] == "ON"  # held
    # The item's sidecar on the replica records the same retention.
    from custody.config import load_settings
    from custody.vault import Vault
    from custody.vault.offsite.published import unseal_document

    [key] = [
        k["Key"] for k in client.list_objects_v2(Bucket=bucket, Prefix="custody/items/EV-000001/")["Contents"]
    ][-1:]
    with Vault(load_settings(home), "test") as vault:
        sidecar = unseal_document(
            client.get_object(Bucket=bucket, Key=key)["Body"].read(), vault.master, key.rsplit("-", 1)[1]
        )
    assert sidecar["document"]["retention"]["legal_hold"] is True

    custody("hold", "release", placed["id"], "--reason", "order lifted")
    summary = json.loads(custody("replicate", "run", "--once", "--json").stdout)
    assert summary["locks_updated"] == 1 and lock(third)[1] == "OFF"
    assert lock(third)[0] >= floor - timedelta(days=1)  # the COMPLIANCE date stays
    events = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "replica-lock-updated"]
    assert len(events) == 4


def test_a_version_put_over_a_locked_replica_is_an_alarm_restore_reads_past_it_and_repair_undoes_it(
    tmp_path, home, custody, s3
):
    """Object Lock stops deleting versions, not adding them: whoever may write to the bucket can put
    a newer version over a sealed object, a sidecar or an audit segment. Before, one such PutObject
    made restore give up on the whole vault ("bad magic")."""
    from click.testing import CliRunner

    from custody.cli import cli

    custody("init")
    bucket = s3.new_bucket(object_lock=True)
    target = s3.target_toml(bucket)
    configure(home, target)
    files(tmp_path / "DCIM", 2)
    custody("ingest", str(tmp_path / "DCIM"))
    custody("tag", "EV-000001", "--case", "2026-0001")
    custody("replicate", "run", "--once")
    first, second = (item["sha256"] for item in items(custody))
    client = s3.client()
    client.put_object(Bucket=bucket, Key=key_of(first), Body=b"not the footage")
    sidecar = next(
        entry["Key"]
        for entry in client.list_objects_v2(Bucket=bucket, Prefix="custody/items/EV-000001/")["Contents"]
    )
    client.put_object(Bucket=bucket, Key=sidecar, Body=b"{}")
    segment = client.list_objects_v2(Bucket=bucket, Prefix="custody/audit/")["Contents"][0]["Key"]
    client.put_object(Bucket=bucket, Key=segment, Body=b"rewritten history")

    # A fresh machine rebuilds the vault anyway, from the versions that authenticate, and says so.
    key_backup = tmp_path / "master.key"
    key_backup.write_bytes((home / "keys" / "master.key").read_bytes())
    rebuilt_home = tmp_path / "rebuilt"
    rebuilt_home.mkdir()
    (rebuilt_home / "custody.toml").write_text(target)
    result = CliRunner().invoke(
        cli,
        [
            "--home",
            str(rebuilt_home),
            "restore",
            "--from",
            "offsite",
            "--master-key",
            str(key_backup),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["items"] == 2
    alarms = report["problems"]
    assert len(alarms) == 3 and all(alarm.startswith("ALARM:") for alarm in alarms)
    assert any(first in alarm for alarm in alarms) and any(sidecar.split("/", 1)[1] in a for a in alarms)
    rebuilt = CliRunner().invoke(cli, ["--home", str(rebuilt_home), "verify", "--json"])
    assert rebuilt.exit_code == 0 and json.loads(rebuilt.stdout)["ok"], rebuilt.output

    # replicate check names the overwritten object (exit 1) and records the alarm.
    lines = {line["sha256"]: line for line in check(custody, expect=1)}
    assert lines[second]["mark"] == "=" and lines[first]["mark"] == "*"
    assert lines[first]["detail"].startswith("ALARM: newer version(s) put over the sealed object")
    assert "'custody replicate run --repair' puts it back on top" in lines[first]["detail"]
    events = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "replica-overwritten"]
    assert [e["details"]["sha256"] for e in events] == [first]

    # --repair puts the sealed version back on top; nothing is deleted (the bad version stays, locked).
    custody("replicate", "run", "--once", "--repair")
    assert {line["mark"] for line in check(custody)} == {"="}
    versions = client.list_object_versions(Bucket=bucket, Prefix=key_of(first))["Versions"]
    assert len(versions) == 3
    assert client.get_object(Bucket=bucket, Key=key_of(first))["Body"].read().startswith(MAGIC)


def test_status_counts_every_stored_object_as_waiting_until_its_copy_is_verified(
    tmp_path, home, custody, s3, footage
):
    """status (and the lag alert) read the replication queue: an object stored but not yet
    queued by a replication run was not counted, so a station whose replication had not run
    since (paused by pulls, no daemon) said nothing was waiting. Found by the soak: it judged
    the station caught up seconds before the last playable copies were queued."""
    custody("init")
    configure(home, s3.target_toml(s3.new_bucket()))

    def waiting() -> int:
        [target] = json.loads(custody("status", "--json").stdout)["replicas"]
        return target["waiting"]

    custody("ingest", str(footage))
    assert waiting() == len(items(custody)) == 4
    custody("media", "run", "--once")
    made = {
        d["sha256"]
        for item in items(custody)
        for d in json.loads(custody("show", item["id"], "--json").stdout)["derivatives"]
    }
    assert made and waiting() == 4 + len(made)
    custody("replicate", "run", "--once")
    assert waiting() == 0
    assert len(check(custody)) == 4 + len(made)
