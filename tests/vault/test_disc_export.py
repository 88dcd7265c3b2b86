"""Evidence discs: a case exported to ISO or a file-backed burner, read back, and checked
by independent tools (pycdlib, the bagit package, a bare python3 running the disc's verifier)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zoneinfo
from datetime import datetime
from pathlib import Path

import bagit
import pycdlib
import pytest

from custody.config import load_settings
from custody.vault import Vault
from custody.vault.disc import records
from tests.conftest import custody_process
from tests.docking import sha256_file

CASE = "2026-0042"
MAKER = "王五 Wang Wu"
EXTRACTOR = "赵六 Zhao Liu"
ORGANISATION = "某某县公安局交通警察大队 Traffic Police Brigade of X County"
# custody.toml's [station] table as init wrote it, for tests that write their own config.
STATION = f'[station]\norganisation = "{ORGANISATION}"\n'
# A bare interpreter: the system's python3 when there is one, not the venv's.
BARE_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable


@pytest.fixture(scope="module")
def case_home(tmp_path_factory, clip_library) -> Path:
    """A vault whose three clips (with playable copies) are case 2026-0042; the random file is another case."""
    home = tmp_path_factory.mktemp("case") / "vault"
    footage = home.parent / "DCIM"
    shutil.copytree(clip_library, footage)

    def run(*args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "custody", "--home", str(home), *args], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr

    run("init", "--organisation", ORGANISATION)
    run("officer", "add", "031245", "--name", "张三")
    run("ingest", str(footage), "--officer", "031245", "--recorder", "BWC-0001")
    run("media", "run", "--once")
    run(
        "tag", "EV-000001", "EV-000002", "EV-000003", "--case", CASE, "--party", "李四", "--officer", "031245"
    )
    run("tag", "EV-000004", "--case", "2026-0099", "--party", "Other Party", "--officer", "031245")
    return home


@pytest.fixture
def home(tmp_path, case_home) -> Path:
    """A fresh copy of the case vault for one test."""
    target = tmp_path / "vault"
    shutil.copytree(case_home, target)
    return target


def vault_hashes(home: Path) -> dict[str, str]:
    """{item id: sha256} of originals and {item id + ' playable': sha256} of playable copies."""
    with Vault(load_settings(home), "test") as vault:
        found = {}
        for item in vault.list_items(vault_filter(CASE)):
            found[item.item_id] = item.sha256
            for derivative in vault.media.derivatives(item):
                if derivative.role == "playable":
                    found[f"{item.item_id} playable"] = derivative.sha256
        return found


def vault_filter(case: str):
    from custody.vault import ItemFilter

    return ItemFilter(case=case)


def read_iso(image: Path, folder: Path) -> pycdlib.PyCdlib:
    """Copy every file of an ISO (by Rock Ridge name) into ``folder`` with pycdlib; return the opened ISO."""
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    for parent, _dirs, files in iso.walk(rr_path="/"):
        for name in files:
            rr_path = f"{parent.rstrip('/')}/{name}"
            target = folder / rr_path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as sink:
                iso.get_file_from_iso_fp(sink, rr_path=rr_path)
    return iso


def case_plaintext_bytes(home: Path) -> int:
    """Bytes of the case's originals and playable copies, decrypted: what staging or an image must hold."""
    with Vault(load_settings(home), "test") as vault:
        items = vault.list_items(vault_filter(CASE))
        return sum(i.size for i in items) + sum(
            d.size for i in items for d in vault.media.derivatives(i) if d.role == "playable"
        )


def export_iso(custody, out: Path, *extra: str, expect: int = 0):
    return custody(
        "export", "disc", "--case", CASE, "--maker", MAKER, "--extractor", EXTRACTOR, "--iso", str(out), *extra,
        expect=expect,
    )  # fmt: skip


def export_burn(custody, drive: Path, *extra: str, expect: int = 0):
    """Burn the case to xorriso's file-backed drive at ``drive``."""
    return custody(
        "export", "disc", "--case", CASE, "--maker", MAKER, "--extractor", EXTRACTOR, "--burn", f"stdio:{drive}",
        *extra, expect=expect,
    )  # fmt: skip


def exports(custody) -> list[dict]:
    return json.loads(custody("export", "ls", "--json").stdout)


def run_verifier(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BARE_PYTHON, "-I", str(folder / "verify.py"), str(folder)], capture_output=True, text=True, cwd="/"
    )


@contextlib.contextmanager
def small_filesystem(folder: Path, size: int, read_only: bool = False):
    """A real tmpfs of ``size`` bytes mounted at ``folder`` (a disk that fills up, or a read-only one)."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


# -- 1. a case on an ISO, read back by independent tools ------------------------------


def test_case_on_iso_is_a_valid_bag_whose_files_are_the_vaults(custody, home, tmp_path):
    image = tmp_path / "case.iso"
    export_iso(custody, image)

    iso = read_iso(image, tmp_path / "disc")
    try:
        assert iso.has_rock_ridge() and iso.has_joliet()
        assert iso.pvd.volume_identifier.decode().strip() == "2026_0042"
    finally:
        iso.close()
    disc = tmp_path / "disc"
    bag = bagit.Bag(str(disc))
    bag.validate()  # raises BagValidationError on any wrong hash, missing file or Oxum
    assert bag.info["External-Identifier"] == "EXP-000001"
    assert bag.info["Case-Number"] == CASE
    assert bag.info["Bag-Count"] == "1 of 1"
    assert bag.info["Party"] == "李四"

    expected = vault_hashes(home)
    on_disc = {}
    for path in (disc / "data" / "originals").iterdir():
        on_disc[path.name.split("_", 1)[0]] = sha256_file(path)
    for path in (disc / "data" / "playable").iterdir():
        on_disc[path.name.split("_", 1)[0] + " playable"] = sha256_file(path)
    assert on_disc == expected  # every original and playable copy, byte-identical; nothing else
    assert not any("EV-000004" in p.name for p in (disc / "data").rglob("*"))  # another case stays out

    [record] = exports(custody)
    assert record["state"] == "verified"
    assert record["items"] == ["EV-000001", "EV-000002", "EV-000003"]
    assert record["maker"] == MAKER and record["extractor"] == EXTRACTOR
    [registered] = record["discs"]
    assert registered["image_sha256"] == sha256_file(image)
    assert registered["verification"]["ok"] is True

    log = json.loads(custody("log", "--json").stdout)
    actions = [event["action"] for event in log]
    assert actions.count("export-started") == 1 and actions.count("export-made") == 1
    extracted = [e["item"] for e in log if e["action"] == "export-extracted"]
    assert extracted == ["EV-000001", "EV-000002", "EV-000003"]
    assert not list((home / "run" / "export").iterdir())  # staging removed


def test_export_without_playable_copies_holds_only_originals(custody, home, tmp_path):
    export_iso(custody, tmp_path / "case.iso", "--no-playable", "--items", "EV-000002")
    read_iso(tmp_path / "case.iso", tmp_path / "disc").close()
    payload = sorted(
        p.relative_to(tmp_path / "disc" / "data").as_posix()
        for p in (tmp_path / "disc" / "data").rglob("*")
        if p.is_file()
    )
    assert payload == ["originals/EV-000002_CLIP0002.MP4"]
    bagit.Bag(str(tmp_path / "disc")).validate()


# -- 2. the standalone verifier on a bare python3 ---------------------------------------


def test_standalone_verifier_passes_then_names_a_changed_file_an_altered_event_and_a_bad_signature(
    custody, tmp_path
):
    export_iso(custody, tmp_path / "case.iso")
    read_iso(tmp_path / "case.iso", tmp_path / "disc").close()
    disc = tmp_path / "disc"

    good = run_verifier(disc)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "OK" in good.stdout

    # One payload byte.
    victim = disc / "data" / "originals" / "EV-000002_CLIP0002.MP4"
    original = victim.read_bytes()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01
    victim.write_bytes(bytes(changed))
    bad = run_verifier(disc)
    assert bad.returncode == 1
    assert "data/originals/EV-000002_CLIP0002.MP4: SHA-256 differs from the manifest" in bad.stdout
    victim.write_bytes(original)
    assert run_verifier(disc).returncode == 0

    record_path = disc / "custody" / "record.json"
    pristine = record_path.read_text(encoding="utf-8")

    def rewrite_record(change) -> subprocess.CompletedProcess:
        """Change the record and, as a forger would, fix the tag manifest so only the record's own checks remain."""
        record = json.loads(pristine)
        change(record)
        record_path.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
        manifest = disc / "tagmanifest-sha256.txt"
        lines = [
            f"{sha256_file(record_path)}  custody/record.json"
            if line.endswith(" custody/record.json")
            else line
            for line in manifest.read_text().splitlines()
        ]
        manifest.write_text("\n".join(lines) + "\n")
        return run_verifier(disc)

    # An audit event's content changed (the officer on an ingest).
    def alter_event(record):
        event = next(e for e in record["events"] if e["action"] == "ingest")
        details = json.loads(event["details"])
        details["credited_officer"] = "999999"
        event["details"] = json.dumps(details, sort_keys=True, separators=(",", ":"))
        alter_event.seq = event["seq"]

    altered = rewrite_record(alter_event)
    assert altered.returncode == 1
    assert f"audit event {alter_event.seq}: altered" in altered.stdout

    # The same change with the event's hash recomputed: only the signature can tell.
    def alter_and_rehash(record):
        alter_event(record)
        event = next(e for e in record["events"] if e["seq"] == alter_event.seq)
        body = {k: event[k] for k in ("seq", "at", "actor", "action", "item", "details", "prev")}
        event["hash"] = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()

    rehashed = rewrite_record(alter_and_rehash)
    assert rehashed.returncode == 1
    assert "signature over its events and files does not match" in rehashed.stdout

    # A signature that is not the vault's.
    def forge_signature(record):
        signature = bytearray.fromhex(record["checkpoint"]["signature"])
        signature[5] ^= 0x01
        record["checkpoint"]["signature"] = signature.hex()

    forged = rewrite_record(forge_signature)
    assert forged.returncode == 1
    assert "checkpoint's signature does not match" in forged.stdout


# -- 3. burning to a file-backed drive ---------------------------------------------------


def test_burn_to_file_backed_drive_verifies_and_a_flipped_byte_is_caught(custody, home, tmp_path):
    drive = tmp_path / "drive.img"
    export_burn(custody, drive, "--media", "cd")
    [record] = exports(custody)
    assert record["state"] == "verified" and record["destination"] == f"burn:stdio:{drive}"
    assert record["discs"][0]["verification"]["ok"] is True

    again = custody("export", "verify", f"stdio:{drive}")
    assert "OK" in again.stdout

    # Flip one byte inside a payload file's data on the burned medium.
    iso = pycdlib.PyCdlib()
    iso.open(str(drive))
    entry = iso.get_record(rr_path="/data/originals/EV-000001_CLIP0001.MP4")
    offset = entry.extent_location() * 2048 + 4096
    iso.close()
    with open(drive, "r+b") as medium:
        medium.seek(offset)
        byte = medium.read(1)
        medium.seek(offset)
        medium.write(bytes([byte[0] ^ 0xFF]))

    failed = custody("export", "verify", f"stdio:{drive}", expect=1)
    assert "FAILED" in failed.stdout
    assert "data/originals/EV-000001_CLIP0001.MP4: SHA-256 differs" in failed.stdout
    assert "MD5" in failed.stdout
    verified = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "export-verified"]
    assert [e["details"]["ok"] for e in verified] == [True, False]
    assert exports(custody)[0]["verification"]["ok"] is False


# -- 4. a case larger than the medium ----------------------------------------------------


def test_case_larger_than_the_medium_spans_discs_each_a_bag_holding_every_item_once(custody, home, tmp_path):
    out = tmp_path / "case.iso"
    export_iso(custody, out, "--capacity-mb", "2")
    [record] = exports(custody)
    assert record["state"] == "verified"
    count = len(record["discs"])
    assert count >= 2
    seen: list[str] = []
    for number in range(1, count + 1):
        image = tmp_path / f"case-{number}of{count}.iso"
        assert image.stat().st_size <= 2 * 1024 * 1024
        folder = tmp_path / f"disc{number}"
        read_iso(image, folder).close()
        bag = bagit.Bag(str(folder))
        bag.validate()
        assert bag.info["Bag-Count"] == f"{number} of {count}"
        assert run_verifier(folder).returncode == 0
        seen += [p.name.split("_", 1)[0] for p in (folder / "data" / "originals").iterdir()]
        index = (folder / "case-index.txt").read_text(encoding="utf-8")
        for item in ("EV-000001", "EV-000002", "EV-000003"):
            assert item in index  # every disc lists the whole case
    assert sorted(seen) == ["EV-000001", "EV-000002", "EV-000003"]


def test_a_case_burned_over_several_discs_writes_and_verifies_each_disc(custody, home, tmp_path):
    drive = tmp_path / "drive.img"
    export_burn(custody, drive, "--capacity-mb", "2")
    [record] = exports(custody)
    count = len(record["discs"])
    assert count >= 2 and record["state"] == "verified"
    for number, disc in enumerate(record["discs"], start=1):
        medium = tmp_path / f"drive-{number}of{count}.img"
        assert disc["target"] == f"stdio:{medium}"
        assert disc["verification"]["ok"] is True
        assert custody("export", "verify", str(medium)).stdout.rstrip().endswith("OK")


# -- 5. the written description -------------------------------------------------------------


def pdf_pages(pdf: Path) -> list[str]:
    """The text of each page of a PDF (pdftotext, layout kept)."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    return text.stdout.split("\f")[:-1]


def test_description_is_a_document_for_the_case_file(custody, home, tmp_path):
    """Article 25: made per the requirements for audio-visual evidence, naming maker, extractor and
    extraction time; the agency at the top, a table per file, page X of Y, signature lines."""
    image = tmp_path / "case.iso"
    env_zone = {"TZ": "Asia/Shanghai"}  # the station's zone: what people read
    result = subprocess.run(
        [sys.executable, "-m", "custody", "--home", str(home), "export", "disc", "--case", CASE,
         "--maker", MAKER, "--extractor", EXTRACTOR, "--iso", str(image)],
        capture_output=True, text=True, env={**os.environ, **env_zone},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    read_iso(image, tmp_path / "disc").close()
    [record] = exports(custody)
    started = datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
    local = started.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai"))
    extraction = f"{local:%Y-%m-%d %H:%M:%S} CST"
    text = (tmp_path / "disc" / "description.txt").read_text(encoding="utf-8")
    assert text == (tmp_path / "case.description.txt").read_text(encoding="utf-8")  # the copy beside the ISO
    lines = text.splitlines()
    assert lines[0] == ORGANISATION
    assert lines[2:4] == [
        "执法音视频证据光盘文字说明",
        "Written description of audio-visual evidence on disc",
    ]
    for expected in (
        f"案件编号 / Case number: {CASE}",
        "当事人 / Party: 李四",
        "办案民警 / Handling officer: 031245 张三",
        f"制作人 / Maker: {MAKER}",
        f"提取人 / Extractor: {EXTRACTOR}",
        f"提取时间 / Extraction time: {extraction}",
        "执法记录仪 / Recorders: BWC-0001",
        "   记录民警 / Credited officer: 031245 张三",
        "录像中断及说明 / Interruptions within these recordings and their explanations",
    ):
        assert expected in lines, expected
    for chinese, english in (("制作人", "Maker"), ("提取人", "Extractor"), ("见证人", "Witness")):
        assert any(line.startswith(f"{chinese}（签名）/ {english} (signature): ____") for line in lines)
    assert "提取方法 / Method of extraction" in text and "read back from this disc" in text
    assert "   大小 / Size: " in text and " MB (" in text

    pages = pdf_pages(tmp_path / "disc" / "description.pdf")
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"第 {number} 页 共 {len(pages)} 页 / page {number} of {len(pages)}" in page
    assert ORGANISATION.split()[0] in pages[0].split("执法音视频证据光盘文字说明")[0]  # the agency heads it
    whole = "\n".join(pages)
    assert extraction in whole and MAKER in whole and EXTRACTOR in whole and "见证人" in whole
    hashes = vault_hashes(home)
    for item_id in ("EV-000001", "EV-000002", "EV-000003"):
        # A file's table is on one page: its id, its hash and its copy's hash together.
        holding = [page for page in pages if hashes[item_id] in page]
        assert len(holding) == 1, item_id
        assert item_id in holding[0] and hashes[f"{item_id} playable"] in holding[0]
    assert "remux" in whole  # how the playable copies were made

    # Looked at: each page rendered (pdftoppm), not blank, the size of A4.
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", str(tmp_path / "disc" / "description.pdf"), str(tmp_path / "page")],
        check=True,
    )
    pngs = sorted(tmp_path.glob("page*.png"))
    assert len(pngs) == len(pages)
    for png in pngs:
        width, height = struct.unpack(">II", png.read_bytes()[16:24])
        assert abs(width / height - 210 / 297) < 0.01 and png.stat().st_size > 5000  # A4, not blank


def test_description_names_interruptions_their_explanations_important_items_and_missing_copies(
    tmp_path, custody
):
    """Three docked files of one recorder: two segments 30 s apart (the second flagged important by
    its name) and a photo; the gap explained; all exported."""
    from datetime import UTC, timedelta

    from tests.docking import dock
    from tests.ingestd.test_continuity import recording_segment

    home = tmp_path / "vault2"
    run = functools.partial(custody_in, home)
    run("init", "--organisation", ORGANISATION)
    run("officer", "add", "031245", "--name", "张三")
    run("recorder", "add", "BWC7", "--officer", "031245", "--from", "2020-01-01", "--profile", "bwc-badge")
    dcim = tmp_path / "card" / "DCIM"
    dcim.mkdir(parents=True)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    shanghai = zoneinfo.ZoneInfo("Asia/Shanghai")
    for offset, suffix, tone in ((0, "", 440), (34, "_IMP", 550)):
        moment = start + timedelta(seconds=offset)
        name = f"BWC7_031245_{moment.astimezone(shanghai):%Y%m%d%H%M%S}{suffix}.MP4"
        recording_segment(dcim / name, moment, 4, tone)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1", "-frames:v", "1",
         str(dcim / f"BWC7_031245_{start.astimezone(shanghai):%Y%m%d%H%M%S}.JPG")],
        check=True,
    )  # fmt: skip
    dock(home, tmp_path / "card", "BWC7", "bwc-badge")
    run("media", "run", "--once")
    [gap] = json.loads(run("report", "gaps", "--json"))
    run("explain", gap["id"], "--reason", "电池更换 battery changed during the stop")
    items = [i["id"] for i in json.loads(run("ls", "--json"))]
    run("tag", *items, "--case", "2026-0500", "--party", "王五")
    run(
        "export", "disc", "--case", "2026-0500", "--maker", MAKER, "--extractor", EXTRACTOR,
        "--iso", str(tmp_path / "gap.iso"),
    )  # fmt: skip
    text = (tmp_path / "gap.description.txt").read_text(encoding="utf-8")
    shown = {i["name"]: i["id"] for i in json.loads(run("ls", "--json"))}
    important = next(item for name, item in shown.items() if name.endswith("_IMP.MP4"))
    photo = next(item for name, item in shown.items() if name.endswith(".JPG"))
    assert f"{gap['id']}: 中断 interruption, 30.0 s" in text
    assert "已说明" in text and "explained by" in text and "电池更换 battery changed during the stop" in text
    assert f"标记为重要的文件 / Items flagged important: {important}" in text
    assert f"{important}  【重要 / flagged important】" in text
    photo_block = text[text.index(f"证据编号 / Item: {photo}") :].split("\n\n")[0]
    assert "可播放副本 / Playable copy: 无 / none: 照片，原件即可查看 / a photo" in photo_block

    # In one language when the station says so ([station] documents): every label, title, state
    # and footer in it; only the data (names, the reason given) as written.
    config = home / "custody.toml"
    for language in ("zh", "en"):
        config.write_text(
            config.read_text().replace("[station]\n", f'[station]\ndocuments = "{language}"\n', 1)
        )
        image = tmp_path / f"gap-{language}.iso"
        run(
            "export",
            "disc",
            "--case",
            "2026-0500",
            "--maker",
            MAKER,
            "--extractor",
            EXTRACTOR,
            "--iso",
            str(image),
        )
        text = (tmp_path / f"gap-{language}.description.txt").read_text(encoding="utf-8")
        labels = [line.split(": ")[0].strip() for line in text.splitlines() if ": " in line]
        labels = [label for label in labels if not re.match(r"[A-Z]+-\d", label)]  # (a finding's id)
        assert len(labels) > 20
        pages = "\n".join(pdf_pages(tmp_path / f"gap-{language}.description.pdf"))
        if language == "zh":
            assert "执法音视频证据光盘文字说明" in text and "Written description" not in text
            assert all(not re.search("[A-Za-z]", label.replace("SHA-256", "")) for label in labels), labels
            assert "可播放副本: 无: 照片，原件即可查看" in text and f"{important}  【重要】" in text
            assert "已说明（" in text and "explained by" not in text
            assert (
                re.search(r"第\s*1\s*页\s*共", pages) and "page 1 of" not in pages
            )  # (pdftotext drops CJK spaces)
        else:
            assert "Written description of audio-visual evidence on disc" in text and "执法音视频" not in text
            assert all(not re.search("[\u4e00-\u9fff]", label) for label in labels), labels
            assert "Playable copy: none: a photo: the original is viewed as it is" in text
            assert "explained by" in text and "已说明" not in text and "中断" not in text
            assert "page 1 of" in pages and not re.search(r"第\s*1\s*页", pages)
        config.write_text(config.read_text().replace(f'documents = "{language}"\n', ""))
    config.write_text(config.read_text().replace("[station]\n", '[station]\ndocuments = "fr"\n', 1))
    refused = subprocess.run(
        [sys.executable, "-m", "custody", "--home", str(home), "ls"], capture_output=True, text=True
    )
    assert (
        refused.returncode != 0
        and "station.documents" in refused.stderr
        and '"both", "zh" or "en"' in refused.stderr
    )


def custody_in(home: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "custody", "--home", str(home), *args], capture_output=True, text=True
    )
    assert result.returncode == 0, f"custody {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_an_export_is_refused_until_the_agency_is_named(custody, home, tmp_path):
    config = home / "custody.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("organisation = ", "# organisation = "))
    refused = export_iso(custody, tmp_path / "x.iso", expect=2)
    assert "[station] organisation is empty" in refused.stderr
    assert exports(custody) == [] and not (tmp_path / "x.iso").exists()


# -- 6. bad requests and failures -------------------------------------------------------------


def test_bad_requests_fail_clearly_and_register_nothing(custody, home, tmp_path):
    out = str(tmp_path / "x.iso")
    missing = custody("export", "disc", "--case", CASE, "--extractor", EXTRACTOR, "--iso", out, expect=2)
    assert "--maker is required" in missing.stderr
    unknown = custody(
        "export",
        "disc",
        "--case",
        "NO-SUCH",
        "--maker",
        MAKER,
        "--extractor",
        EXTRACTOR,
        "--iso",
        out,
        expect=5,
    )
    assert "no case NO-SUCH in this vault" in unknown.stderr
    custody("tag", "EV-000004", "--case", "2026-0100")  # 2026-0099 is now known but empty
    empty = custody(
        "export",
        "disc",
        "--case",
        "2026-0099",
        "--maker",
        MAKER,
        "--extractor",
        EXTRACTOR,
        "--iso",
        out,
        expect=5,
    )
    assert "case 2026-0099 has no items" in empty.stderr
    outside = export_iso(custody, Path(out), "--items", "EV-000001,EV-000004", expect=5)
    assert "EV-000004 not tagged with case 2026-0042" in outside.stderr
    too_big = custody(
        "export", "disc", "--case", "2026-0100", "--maker", MAKER, "--extractor", EXTRACTOR, "--iso", out,
        "--capacity-mb", "2", expect=5,
    )  # fmt: skip
    assert "EV-000004 needs" in too_big.stderr and "choose a larger --media" in too_big.stderr
    several = custody(
        "export", "disc", "--case", CASE, "--maker", MAKER, "--extractor", EXTRACTOR, "--burn", "/dev/sr9",
        "--capacity-mb", "2", expect=2,
    )  # fmt: skip
    assert "needs 2 discs and changing discs needs an operator" in several.stderr
    no_folder = export_iso(custody, tmp_path / "nowhere" / "x.iso", expect=5)
    assert "does not exist" in no_folder.stderr
    (tmp_path / "taken.iso").write_bytes(b"keep me")
    taken = export_iso(custody, tmp_path / "taken.iso", expect=5)
    assert "already exists" in taken.stderr and (tmp_path / "taken.iso").read_bytes() == b"keep me"
    with small_filesystem(tmp_path / "readonly", 1 << 20, read_only=True) as folder:
        read_only = export_iso(custody, folder / "x.iso", expect=5)
        assert "not writable" in read_only.stderr
    assert exports(custody) == []
    staging = home / "run" / "export"
    assert not staging.exists() or list(staging.iterdir()) == []
    nothing = custody("export", "verify", str(tmp_path / "no-such.iso"), expect=5)
    assert "no disc or image at" in nothing.stderr
    (tmp_path / "not-a-disc.iso").write_bytes(os.urandom(64 * 1024))
    garbage = custody("export", "verify", str(tmp_path / "not-a-disc.iso"), expect=6)
    assert "cannot be read as an ISO 9660 disc or image" in garbage.stderr


def test_full_staging_disk_is_refused_before_anything_is_registered(custody, home, tmp_path):
    with small_filesystem(tmp_path / "staging", 64 * 1024) as staging:
        (home / "custody.toml").write_text(STATION + f'[export]\nstaging_dir = "{staging}"\n')
        refused = export_iso(custody, tmp_path / "case.iso", expect=8)
        assert "not enough room to stage the export" in refused.stderr
        assert list(staging.iterdir()) == []
    assert exports(custody) == []
    assert not (tmp_path / "case.iso").exists()


def test_disk_filling_up_during_staging_fails_the_export_and_leaves_nothing(custody, home, tmp_path):
    # Room for the case's files (so the early check passes) but not for the tag files after them.
    plain = case_plaintext_bytes(home)
    with small_filesystem(tmp_path / "staging", plain + 8192) as staging:
        (home / "custody.toml").write_text(STATION + f'[export]\nstaging_dir = "{staging}"\n')
        failed = export_iso(custody, tmp_path / "case.iso", expect=8)
        assert "no space left" in failed.stderr
        assert list(staging.iterdir()) == []  # staging removed
    [record] = exports(custody)
    assert record["state"] == "failed" and "no space left" in record["error"]
    assert not list(tmp_path.glob("*.iso")) and not list(tmp_path.glob(".*partial*"))
    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    assert "export-failed" in actions and "export-made" not in actions


def test_full_output_disk_removes_the_partial_image_and_marks_the_export_failed(custody, home, tmp_path):
    plain = case_plaintext_bytes(home)
    with small_filesystem(tmp_path / "out", plain + 16384) as out:
        failed = export_iso(custody, out / "case.iso", expect=8)
        assert "xorriso failed" in failed.stderr
        assert list(out.iterdir()) == []  # neither the image nor a partial one
    [record] = exports(custody)
    assert record["state"] == "failed"


def test_an_export_whose_process_died_is_marked_failed_and_its_staging_removed(home, custody, tmp_path):
    # A stand-in xorriso that only says it started and waits: the export is
    # killed at a known point, with its staging written, as a crash would.
    started = tmp_path / "xorriso-started"
    stuck = tmp_path / "stuck-xorriso"
    stuck.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do [ "$1" = -o ] && head -c 65536 /dev/urandom > "$2"; shift; done\n'
        f"touch {started}\nexec sleep 300\n"
    )
    stuck.chmod(0o755)
    (home / "custody.toml").write_text(STATION + f'[export]\nxorriso = "{stuck}"\n')
    process = custody_process(
        home, "export", "disc", "--case", CASE, "--maker", MAKER, "--extractor", EXTRACTOR,
        "--iso", str(tmp_path / "case.iso"), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not started.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the export never reached its image"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert list((home / "run" / "export").iterdir()), "the killed export left its staging behind"
    assert list(tmp_path.glob(".case.iso.custody-partial-*")), "and its partial image"
    # A crash between making a staging folder and registering it leaves one no export names.
    (home / "run" / "export" / "EXP-000099-unregistered").mkdir(mode=0o700)

    [stopped] = exports(custody)  # listing sweeps exports whose process is gone
    assert stopped["state"] == "failed" and "interrupted" in stopped["error"]
    assert list((home / "run" / "export").iterdir()) == []
    assert not list(tmp_path.glob("*.iso")) and not list(tmp_path.glob(".*partial*"))
    with Vault(load_settings(home), "test") as vault:
        assert records.unfinished(vault.catalog) == []


FAULTY_XORRISO = """#!{python}
# xorriso, then one byte of the first original flipped in the image it wrote: a bad burner or disk.
import subprocess, sys
import pycdlib
code = subprocess.run(["xorriso", *sys.argv[1:]]).returncode
if code == 0 and "-o" in sys.argv:
    image = sys.argv[sys.argv.index("-o") + 1]
    iso = pycdlib.PyCdlib()
    iso.open(image)
    first = next(name for name in iso.list_children(rr_path="/data/originals") if name.is_file())
    offset = first.extent_location() * 2048 + 100
    iso.close()
    with open(image, "r+b") as disc:
        disc.seek(offset)
        byte = disc.read(1)
        disc.seek(offset)
        disc.write(bytes([byte[0] ^ 0xFF]))
sys.exit(code)
"""


def test_an_image_that_fails_its_read_back_is_a_failed_export_and_is_not_left_to_be_used(
    custody, home, tmp_path
):
    faulty = tmp_path / "faulty-xorriso"
    faulty.write_text(FAULTY_XORRISO.format(python=sys.executable))
    faulty.chmod(0o755)
    (home / "custody.toml").write_text(STATION + f'[export]\nxorriso = "{faulty}"\n')
    failed = export_iso(custody, tmp_path / "case.iso", expect=1)
    assert "FAILED" in failed.stdout and "SHA-256 differs from the manifest" in failed.stdout
    [record] = exports(custody)
    assert record["state"] == "failed" and "failed verification" in record["error"]
    assert record["discs"][0]["verification"]["ok"] is False
    assert not (tmp_path / "case.iso").exists()
    actions = [e["action"] for e in json.loads(custody("log", "--json").stdout)]
    assert "export-failed" in actions and "export-made" not in actions


def test_every_file_on_the_disc_is_readable_by_anyone_and_a_non_root_user_verifies_a_copy(
    custody, home, tmp_path
):
    """The staging folder is 0700; with -R the disc kept that, and a non-root user checking a copy
    root extracted was told "this disc is not what the vault wrote" (a court would read tampering)."""
    from tests.localusers import local_users, run_as

    image = tmp_path / "case.iso"
    export_iso(custody, image, "--no-playable")
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        modes = {}
        for parent, dirs, files in iso.walk(rr_path="/"):
            for name in [*dirs, *files]:
                path = f"{parent.rstrip('/')}/{name}"
                modes[path] = iso.get_record(rr_path=path).rock_ridge.get_file_mode() & 0o777
    finally:
        iso.close()
    assert "/custody" in modes and "/data/originals" in modes
    unreadable = {path: f"{mode:o}" for path, mode in modes.items() if mode & 0o444 != 0o444}
    assert unreadable == {}
    # root extracts it as a disc drive would show it (Rock Ridge modes kept), a clerk verifies it
    copy = Path(tempfile.mkdtemp(prefix="custody-disc-copy-", dir="/tmp"))
    try:
        subprocess.run(
            ["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(copy / "disc")],
            check=True, capture_output=True,
        )  # fmt: skip
        copy.chmod(0o755)
        with local_users("cst-disc", ("cst-discreader",)):
            checked = run_as(
                "cst-discreader", BARE_PYTHON, "-I", str(copy / "disc" / "verify.py"), str(copy / "disc")
            )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "OK: every file matches its manifest" in checked.stdout
        # A copy whose modes shut a reader out is "cannot read", never a verdict on the disc.
        (copy / "disc" / "custody").chmod(0o700)
        with local_users("cst-disc", ("cst-discreader",)):
            shut_out = run_as(
                "cst-discreader", BARE_PYTHON, "-I", str(copy / "disc" / "verify.py"), str(copy / "disc")
            )
        assert shut_out.returncode == 2 and "cannot read" in shut_out.stdout
        assert "not what the vault wrote" not in shut_out.stdout
    finally:
        shutil.rmtree(copy)
