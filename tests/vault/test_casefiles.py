"""Case files through the whole enforcement process (issue 19), with the real command in-process:
a real vault, real SQLite, real ffmpeg clips, the PDF rendered by poppler."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from custody.vault.catalog import MIGRATIONS
from tests.vault.test_disc_export import read_iso, run_verifier

BADGE = "031245"


def as_json(result) -> dict | list:
    return json.loads(result.stdout)


@pytest.fixture
def station(custody, footage, tmp_path):
    """A vault with an officer and three clips credited to them (EV-000001..3), and a folder of
    'scans' to file as written records."""
    custody("init", "--organisation", "某县综合行政执法局")
    custody("officer", "add", BADGE, "--name", "陈警官")
    custody("ingest", *map(str, sorted(footage.glob("CLIP*.MP4"))), "--officer", BADGE)
    scans = tmp_path / "scans"
    scans.mkdir()

    def scan(name: str) -> str:
        path = scans / name
        path.write_bytes(f"%PDF-1.4 scan of {name}\n".encode() + name.encode() * 50)
        return str(path)

    return scan


def open_case(custody, case: str, *extra: str) -> dict:
    return as_json(
        custody(
            "case",
            "open",
            case,
            "--cause",
            "无证经营",
            "--party",
            "张三",
            "--handler",
            BADGE,
            *extra,
            "--json",
        )
    )


def file_record(custody, case: str, path: str, doc_type: str, *extra: str) -> str:
    filed = as_json(custody("case", "file", case, path, "--type", doc_type, *extra, "--json"))
    (document,) = filed["documents"]
    return document["id"]


def show(custody, case: str) -> dict:
    return as_json(custody("case", "show", case, "--json"))


def item(custody, ref: str) -> dict:
    return as_json(custody("show", ref, "--json"))


def test_a_general_case_from_filing_to_archive(custody, station, tmp_path):
    case = "2026-0412"
    open_case(custody, case)
    form = file_record(custody, case, station("filing-form.pdf"), "立案审批表", "--pages", "1")
    custody("case", "approve-filing", case, "--by", "王局长")
    custody("case", "stage", case, "investigation")
    inquiry = file_record(
        custody, case, station("inquiry.pdf"), "询问笔录", "--pages", "3", "--person", "张三"
    )
    custody("case", "link", inquiry, "EV-000001")
    inspection = file_record(custody, case, station("inspection.pdf"), "现场检查笔录", "--pages", "2")

    # The inspection needs a recording: a finding, in the case and in the report, until one is linked.
    missing = [m for m in show(custody, case)["recordings_missing"] if m["state"] == "open"]
    assert [m["document"] for m in missing] == [inspection]
    reported = as_json(custody("report", "cases", "--json"))
    assert [row["recordings_missing"] for row in reported["cases"] if row["case"] == case] == [[inspection]]
    refused = custody("case", "archive", case, expect=4)
    assert f"{inspection} (现场检查笔录) has no linked recording" in refused.stderr
    assert "not closed" in refused.stderr and "Traceback" not in refused.stderr
    custody("case", "link", inspection, "EV-000002")
    assert [m for m in show(custody, case)["recordings_missing"] if m["state"] == "open"] == []

    # A penalty decision: the footage linked as the case's evidence is kept for ever.
    custody("case", "stage", case, "review")
    assert item(custody, "EV-000001")["retention"]["categories"] == []
    decision = file_record(custody, case, station("decision.pdf"), "行政处罚决定书", "--pages", "2")
    for linked in ("EV-000001", "EV-000002"):
        assert item(custody, linked)["retention"]["categories"] == ["penalty_evidence"]
    assert item(custody, "EV-000003")["retention"]["categories"] == []  # not part of the case

    custody("case", "stage", case, "service")
    service = file_record(custody, case, station("service-return.jpg"), "送达回证", "--pages", "1")
    closed = custody("case", "close", case, "--ended", date.today().isoformat())
    assert (date.today() + timedelta(days=30)).isoformat() in closed.stdout
    archived = as_json(custody("case", "archive", case, "--json"))
    assert archived["version"] == 1 and archived["gaps"] == []

    for document in (form, inquiry, decision, service, archived["record"], archived["pdf"]):
        assert item(custody, document)["retention"]["categories"] == ["penalty_evidence"], document
    assert item(custody, inquiry)["document"]["type"] == "询问笔录"
    assert "written record: 询问笔录 of case 2026-0412" in custody("show", inquiry).stdout
    # The cover and index list every record in stage order, each with its item's own hash.
    record_path = tmp_path / "record.json"
    custody("extract", archived["record"], "--out", str(record_path))
    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record["cover"]["case"] == case and record["cover"]["retention"] == "permanent"
    assert record["cover"]["handlers"] == [{"badge": BADGE, "name": "陈警官"}]
    listed = [(row["seq"], row["item"], row["stage"]) for row in record["index"]]
    assert listed == [
        (1, form, "initiation"),
        (2, inquiry, "investigation"),
        (3, "EV-000001", "investigation"),  # the recording of the inquiry, right after it
        (4, inspection, "investigation"),
        (5, "EV-000002", "investigation"),
        (6, decision, "review"),
        (7, service, "service"),
    ]
    for row in record["index"]:
        assert row["sha256"] == item(custody, row["item"])["sha256"], row["item"]
    assert record["cover"]["documents"] == 5 and record["cover"]["recordings"] == 2
    assert record["cover"]["pages"] == 9

    # The PDF: rendered page by page, with the case and every item on it.
    pdf = tmp_path / "case.pdf"
    custody("extract", archived["pdf"], "--out", str(pdf))
    pages = tmp_path / "pages"
    pages.mkdir()
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(pages / "page")], check=True)
    rendered = sorted(pages.glob("page*.png"))
    assert len(rendered) == 2 and all(p.stat().st_size > 5000 for p in rendered)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for expected in (
        "案卷封面",
        "卷内目录",
        case,
        "张三",
        "王局长",
        "永久",
        *(row["item"] for row in record["index"]),
    ):
        assert expected in text, expected
    keep = Path("/tmp/custody-case-file-pages")  # (to look at after a run)
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(pages, keep)

    # verify checks the archive's signature and its index with everything else.
    verified = as_json(custody("verify", "--json"))
    assert verified["ok"] and verified["archives_checked"] == 1 and verified["archive_problems"] == []
    assert "case-archived" in [e["action"] for e in as_json(custody("log", "--json"))]


def test_an_urgent_case_without_approval_is_overdue_after_24_hours_until_approved(custody, station):
    started = (datetime.now(UTC) - timedelta(hours=25)).astimezone().strftime("%Y-%m-%dT%H:%M")
    open_case(custody, "2026-URG", "--urgent", "--started", started)
    open_case(custody, "2026-CALM", "--urgent")  # started now: due tomorrow
    assert as_json(custody("report", "cases", "--json"))["filing_overdue"] == ["2026-URG"]
    status = as_json(custody("status", "--json"))
    assert status["cases"]["filing_overdue"] == ["2026-URG"]
    assert "filing approval overdue" in custody("report", "cases").stdout
    assert "filing approval overdue (urgent, over 24 hours): 2026-URG" in custody("status").stdout
    approved = custody("case", "approve-filing", "2026-URG", "--by", "王局长")
    assert "after its 24 hours" in approved.stdout
    assert as_json(custody("report", "cases", "--json"))["filing_overdue"] == []
    assert as_json(custody("status", "--json"))["cases"]["filing_overdue"] == []
    today = date.today().isoformat()
    compliance = as_json(custody("report", "compliance", "--from", "2026-01-01", "--until", today, "--json"))
    late = {row["case"]: row["filing_approval_late"] for row in compliance["cases"]}
    assert late == {"2026-URG": True, "2026-CALM": False}
    assert [o["filing_approvals_late"] for o in compliance["officers"]] == [1]
    custody("case", "approve-filing", "2026-URG", "--by", "someone", expect=2)  # once


def test_a_refusal_to_sign_is_a_finding_until_its_recording_is_linked_or_explained(custody, station):
    open_case(custody, "2026-REF")
    refusal = file_record(custody, "2026-REF", station("refusal.jpg"), "拒绝签字记录")
    (finding,) = show(custody, "2026-REF")["recordings_missing"]
    assert finding["state"] == "open" and finding["document"] == refusal
    custody("case", "link", refusal, "EV-000003")
    (finding,) = show(custody, "2026-REF")["recordings_missing"]
    assert finding["state"] == "linked"
    assert item(custody, "EV-000003")["tags"]["case"] == "2026-REF"  # the footage joined the case

    # A record that needs no recording is no finding; one explained is closed, and audited.
    file_record(custody, "2026-REF", station("rights.pdf"), "权利告知书")
    secret = file_record(custody, "2026-REF", station("secret-inquiry.pdf"), "询问笔录")
    assert [
        m["document"] for m in show(custody, "2026-REF")["recordings_missing"] if m["state"] == "open"
    ] == [secret]
    custody("case", "explain-missing", secret, "--reason", "", expect=2)
    custody("case", "explain-missing", secret, "--reason", "涉及国家秘密")
    states = {m["document"]: m["state"] for m in show(custody, "2026-REF")["recordings_missing"]}
    assert states == {refusal: "linked", secret: "explained"}
    actions = [e["action"] for e in as_json(custody("log", "--json"))]
    assert "case-linked" in actions and "recording-missing-explained" in actions


def archive_simple_case(custody, station, case: str, ended: date) -> dict:
    open_case(custody, case, "--procedure", "simple")
    file_record(custody, case, station(f"{case}-decision.pdf"), "行政处罚决定书", "--pages", "1")
    file_record(custody, case, station(f"{case}-return.pdf"), "送达回证", "--pages", "1")
    custody("case", "close", case, "--ended", ended.isoformat())
    return as_json(custody("case", "archive", case, "--json"))


def test_closing_sets_the_30_day_deadline_and_archiving_on_day_31_is_late(custody, station):
    today = date.today()
    archive_simple_case(custody, station, "2026-ONTIME", today - timedelta(days=30))
    archive_simple_case(custody, station, "2026-LATE", today - timedelta(days=31))
    open_case(custody, "2026-PAST", "--procedure", "simple")
    custody("case", "close", "2026-PAST", "--ended", (today - timedelta(days=40)).isoformat())
    custody("case", "close", "2026-PAST", "--ended", (today + timedelta(days=1)).isoformat(), expect=2)

    compliance = as_json(
        custody("report", "compliance", "--from", (today - timedelta(days=1)).isoformat(), "--until",
                today.isoformat(), "--json")
    )  # fmt: skip
    states = {row["case"]: row["archive_state"] for row in compliance["cases"]}
    assert states == {"2026-ONTIME": "archived", "2026-LATE": "archived-late", "2026-PAST": "overdue"}
    (officer,) = compliance["officers"]
    assert officer["cases_archived_late"] == 1 and officer["cases_not_archived_overdue"] == 1
    cases = as_json(custody("report", "cases", "--json"))
    assert cases["archive_overdue"] == ["2026-PAST"]
    csv_text = custody(
        "report", "compliance", "--from", "2026-01-01", "--until", today.isoformat(), "--csv"
    ).stdout
    assert "案件 / case,2026-LATE,0,0,0,逾期归档 / archived late,按时 / on time" in csv_text.splitlines()


def pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_reports_and_case_files_are_documents_in_the_stations_language(custody, station, home, tmp_path):
    """Compliance and leaders' reports as CSV, XLSX and PDF, and a case file's cover: Chinese with
    English headings by default; English only (or Chinese only) when [station] documents says so.
    Files are written whole and never over an existing one."""
    import openpyxl

    today = date.today()
    archive_simple_case(custody, station, "2026-LATE", today - timedelta(days=31))
    period = ("--from", "2026-01-01", "--until", today.isoformat())
    sheet, pdf = tmp_path / "compliance.xlsx", tmp_path / "compliance.pdf"
    custody("report", "compliance", *period, "--xlsx", str(sheet), "--pdf", str(pdf))
    rows = list(openpyxl.load_workbook(sheet).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("类别 / Kind", "案件或民警 / Case or officer", "应录未录 / Recordings missing")
    assert ("案件 / case", "2026-LATE", 0, 0, 0, "逾期归档 / archived late", "按时 / on time") in rows
    text = pdf_text(pdf)
    assert "执法全过程记录合规情况 / Compliance with the full-process recording rule" in text
    assert "某县综合行政执法局" in text and "2026-LATE" in text and f"2026-01-01 – {today}" in text
    officers = tmp_path / "officers.pdf"
    custody("report", "officers", *period, "--pdf", str(officers))
    assert "民警月度统计 / By officer and month" in pdf_text(officers) and BADGE in pdf_text(officers)

    # Never over an existing file, nor half-written where the folder is missing: one line each.
    before = sheet.read_bytes()
    refused = custody("report", "compliance", *period, "--xlsx", str(sheet), expect=5)
    assert sheet.read_bytes() == before and "already exists" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    nowhere = tmp_path / "missing-folder" / "r.xlsx"
    refused = custody("report", "compliance", *period, "--xlsx", str(nowhere), expect=5)
    assert "no such folder" in refused.stderr and not nowhere.parent.exists()
    assert not [p for p in tmp_path.iterdir() if "custody-partial" in p.name]

    config = home / "custody.toml"
    config.write_text(config.read_text().replace("[station]\n", '[station]\ndocuments = "en"\n', 1))
    csv_lines = custody("report", "compliance", *period, "--csv").stdout.splitlines()
    assert csv_lines[0].startswith("Kind,Case or officer,Recordings missing,Footage stored late")
    assert "case,2026-LATE,0,0,0,archived late,on time" in csv_lines
    archived = archive_simple_case(custody, station, "2026-EN", today)
    cover = tmp_path / "cover-en.pdf"
    custody("extract", archived["pdf"], "--out", str(cover))
    text = pdf_text(cover)
    assert "Case file cover" in text and "Case number" in text and "Index of the file" in text
    assert not re.search("案卷封面|卷内目录|案号", text) and "page 1 of 2" in text

    config.write_text(config.read_text().replace('documents = "en"', 'documents = "zh"'))
    headings = custody("report", "officers", *period, "--csv").stdout.splitlines()[0]
    assert headings.startswith("民警,月份,音像记录") and not re.search("[A-Za-z]", headings)
    archived = archive_simple_case(custody, station, "2026-ZH", today)
    cover = tmp_path / "cover-zh.pdf"
    custody("extract", archived["pdf"], "--out", str(cover))
    text = pdf_text(cover)
    assert "案卷封面" in text and "卷内目录" in text
    assert not re.search("Case file cover|Case number|Index of the file|page 1 of", text)


def test_an_archived_case_takes_supplements_as_new_versions_and_loses_nothing(custody, station):
    first = archive_simple_case(custody, station, "2026-SUP", date.today())
    custody("case", "archive", "2026-SUP", expect=4)  # nothing new: no second version
    # Nothing leaves an archived file: no retagging its footage or records to another case.
    decision = show(custody, "2026-SUP")["documents"][0]["id"]
    refused = custody("tag", decision, "--case", "2026-OTHER", expect=4)
    assert "is archived" in refused.stderr and "cannot leave" in refused.stderr
    assert item(custody, decision)["tags"]["case"] == "2026-SUP"
    custody("case", "stage", "2026-SUP", "review", "--reason", "x", expect=4)

    late_return = file_record(custody, "2026-SUP", station("late-return.pdf"), "邮寄凭证")
    assert show(custody, "2026-SUP")["documents"][-1]["supplement_to_version"] == 1
    second = as_json(custody("case", "archive", "2026-SUP", "--json"))
    assert second["version"] == 2
    archives = show(custody, "2026-SUP")["archives"]
    assert [a["version"] for a in archives] == [1, 2] and archives[0]["record"] == first["record"]
    record = json.loads(extract_text(custody, second["record"]))
    assert record["previous"] == {
        "version": 1,
        "record": first["record"],
        "record_sha256": first["record_sha256"],
    }
    assert late_return in [row["item"] for row in record["index"]]
    verified = as_json(custody("verify", "--json"))
    assert verified["ok"] and verified["archives_checked"] == 2


def extract_text(custody, ref: str) -> str:
    return custody("cat", ref).stdout


def test_bad_input_is_one_line_and_nothing_is_filed(custody, station):
    custody("case", "open", "2026-X", "--cause", "c", "--party", "p", "--handler", "NOSUCH", expect=5)
    open_case(custody, "2026-X")
    again = custody("case", "open", "2026-X", "--cause", "c", "--party", "p", "--handler", BADGE, expect=2)
    assert "already open" in again.stderr
    wrong_type = custody("case", "file", "2026-X", station("a.pdf"), "--type", "没有这种", expect=2)
    assert "no document type '没有这种'" in wrong_type.stderr and "Traceback" not in wrong_type.stderr
    custody("case", "file", "2026-X", station("a.pdf"), "--type", "询问笔录", "--date", "yesterday", expect=2)
    custody("case", "file", "2026-NONE", station("a.pdf"), "--type", "询问笔录", expect=3)
    assert [i["id"] for i in as_json(custody("ls", "--json"))] == ["EV-000001", "EV-000002", "EV-000003"]
    custody("case", "stage", "2026-X", "review")
    back = custody("case", "stage", "2026-X", "initiation", expect=2)
    assert "--reason is empty" in back.stderr
    custody("case", "stage", "2026-X", "initiation", "--reason", "filed too early")
    stages = [s["stage"] for s in show(custody, "2026-X")["case"] and show(custody, "2026-X")["stages"]]
    assert stages == ["initiation", "review", "initiation"]


def test_case_numbers_already_used_as_tags_become_cases(custody, station, home):
    custody("tag", "EV-000001", "--case", "2025-OLD", "--party", "李四")
    (listed,) = [c for c in as_json(custody("case", "ls", "--json")) if c["case"] == "2025-OLD"]
    assert listed["stage"] == "initiation"
    # The migration does the same for a vault made before cases existed.
    _rerun_last_migration(home)
    assert [c["case"] for c in as_json(custody("case", "ls", "--json"))] == ["2025-OLD"]
    completed = open_case(custody, "2025-OLD")  # completing it keeps its tag and its items
    assert completed["cause"] == "无证经营" and item(custody, "EV-000001")["tags"]["case"] == "2025-OLD"


def _rerun_last_migration(home: Path) -> None:
    """Run the case-file migration again on a catalog whose case tables were dropped."""
    import sqlite3

    db = sqlite3.connect(home / "catalog.db")
    for table in (
        "case_archives",
        "recording_exemptions",
        "case_links",
        "documents",
        "case_stages",
        "case_handlers",
        "cases",
    ):
        db.execute(f"DROP TABLE {table}")
    db.executescript(MIGRATIONS[9])
    db.commit()
    db.close()


def test_the_catalogue_of_types_is_configurable(custody, station, home):
    with (home / "custody.toml").open("a", encoding="utf-8") as config:
        config.write(
            '\n[cases.document_types."现场笔录"]\nenglish = "on-site record"\nstage = "investigation"\nrecording = true\n'
        )
    types = {t["type"]: t for t in as_json(custody("case", "types", "--json"))["types"]}
    assert types["现场笔录"]["recording_required"] and types["询问笔录"]["english"] == "inquiry record"
    with (home / "custody.toml").open("a", encoding="utf-8") as config:
        config.write('[cases.document_types."坏"]\nenglish = "bad"\nstage = "nowhere"\n')
    bad = custody("case", "types", expect=3)
    assert "cases.document_types.坏.stage" in bad.stderr


def test_a_case_exported_with_its_documents_validates_and_its_description_lists_them(
    custody, station, tmp_path
):
    import bagit

    archived = archive_simple_case(custody, station, "2026-DISC", date.today())
    custody("tag", "EV-000001", "--case", "2026-DISC", "--party", "张三")
    footage_only = as_json(
        custody("export", "disc", "--case", "2026-DISC", "--maker", "m", "--extractor", "e",
                "--iso", str(tmp_path / "footage.iso"), "--json")
    )  # fmt: skip
    assert footage_only["items"] == ["EV-000001"]
    made = as_json(
        custody("export", "disc", "--case", "2026-DISC", "--with-documents", "--maker", "m", "--extractor", "e",
                "--iso", str(tmp_path / "case.iso"), "--json")
    )  # fmt: skip
    assert made["state"] == "verified"
    documents = [d["id"] for d in show(custody, "2026-DISC")["documents"]]
    assert set(made["items"]) == {"EV-000001", *documents, archived["record"], archived["pdf"]}
    description = (tmp_path / "case.description.txt").read_text(encoding="utf-8")
    assert "文书 / Written record: 行政处罚决定书 administrative penalty decision" in description
    assert "案卷封面及卷内目录 / case file cover and index" in description
    disc = tmp_path / "disc"
    read_iso(tmp_path / "case.iso", disc).close()
    bagit.Bag(str(disc)).validate()  # raises on any wrong hash, missing file or Oxum
    checked = run_verifier(disc)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    on_disc = {p.name for p in (disc / "data" / "originals").iterdir()}
    assert any(name.endswith("2026-DISC-case-file-v1.pdf") for name in on_disc), on_disc


def test_old_footage_of_an_archived_case_is_disposed_of_after_its_period_and_the_file_still_verifies(
    tmp_path, home, custody
):
    from tests.retention.test_disposition import approve_as, old_footage

    custody("init")
    custody("officer", "add", BADGE, "--name", "陈警官")
    ids = old_footage(tmp_path, home, custody, {"old": 3 * 365})
    custody("case", "open", "2023-OLD", "--cause", "c", "--party", "p", "--handler", BADGE)
    (tmp_path / "inquiry.pdf").write_bytes(b"%PDF-1.4 an inquiry three years ago")
    inquiry = file_record(custody, "2023-OLD", str(tmp_path / "inquiry.pdf"), "询问笔录")
    custody("case", "link", inquiry, ids["old"])
    custody("case", "close", "2023-OLD", "--ended", date.today().isoformat())
    custody("case", "archive", "2023-OLD", "--force", "--reason", "the filing form was lost")

    request = as_json(custody("retention", "request", ids["old"], "--reason", "past its period", "--json"))
    approve_as(home, "custodian2", request["id"])
    done = as_json(custody("retention", "execute", request["id"], "--json"))
    assert done["result"]["deleted"] == [ids["old"]]
    # The record stays (it is young); its link to the disposed footage went with the footage.
    assert [d["recordings"] for d in show(custody, "2023-OLD")["documents"]] == [[]]
    verified = as_json(custody("verify", "--json"))
    assert verified["ok"] and verified["archives_checked"] == 1, verified


def test_a_case_file_edited_behind_the_vaults_back_is_named_by_verify(custody, station, home):
    """Someone with write access to the catalog moves a deadline, retypes a record, drops a link,
    adds a case: verify proves the case tables against the chain and names each change."""
    import sqlite3

    archive_simple_case(custody, station, "2026-TAMPER", date.today() - timedelta(days=40))
    open_case(custody, "2026-LINKED")
    refusal = file_record(custody, "2026-LINKED", station("refusal.pdf"), "拒绝签字记录", "--pages", "1")
    custody("case", "link", refusal, "EV-000002")
    assert as_json(custody("verify", "--json"))["catalog_problems"] == []

    with sqlite3.connect(home / "catalog.db") as db:
        db.execute("UPDATE cases SET archive_due = '2099-01-01' WHERE case_name = '2026-TAMPER'")
        db.execute("UPDATE documents SET doc_type = '其他', pages = 9 WHERE item = ?", [int(refusal[3:])])
        db.execute("DELETE FROM case_links")
        db.execute("INSERT INTO cases (case_name, opened_at, opened_by) VALUES ('2026-FORGED', 'x', 'y')")
    report = as_json(custody("verify", "--json", expect=1))
    problems = {(p["table"], p["problem"]) for p in report["catalog_problems"]}
    assert ("cases", "case 2026-TAMPER archive_due is '2099-01-01', the chain says "
            f"'{(date.today() - timedelta(days=10)).isoformat()}'") in problems  # fmt: skip
    assert ("documents", "doc_type is '其他', the chain says '拒绝签字记录'") in problems
    assert ("documents", "pages is 9, the chain says 1") in problems
    assert ("case_links", f"recording of {refusal}: set by the chain, missing from the catalog") in problems
    assert ("cases", "case 2026-FORGED: in the catalog, no event made it") in problems
    assert len(problems) == 5, problems
    printed = custody("verify", expect=1).stdout
    assert "CATALOG  cases: case 2026-TAMPER archive_due" in printed


def test_text_from_outside_is_never_a_formula_in_a_reports_csv():
    """A case number or badge written "=HYPERLINK(...)" opens as text in a spreadsheet program."""
    from custody.vault import report_documents

    table = report_documents.ReportTable(
        "t", ["case", "count"], [['=HYPERLINK("http://x")', 3], ["@SUM(A1)", -1], ["2026-0001", 0]]
    )
    import csv

    rows = list(csv.reader(report_documents.csv_text(table).splitlines()))
    assert rows[1:] == [['\'=HYPERLINK("http://x")', "3"], ["'@SUM(A1)", "-1"], ["2026-0001", "0"]]
