"""The web platform end to end: a real daemon, `custody web` running as its own service user
(cst-web) through the system's python, real local users signing in with custody accounts, real
HTTP over loopback (the browser itself: test_browser.py)."""

from __future__ import annotations

import base64
import io
import json
import re
import time

import httpx
import openpyxl
import pytest
from itsdangerous import TimestampSigner

from custody.ingestd import api
from tests.ingestd.served import AUDITOR, CLERK, CLERK2, CUSTODIAN, OFFICER, SUPERVISOR, WEB
from tests.localusers import SYSTEM_PYTHON, custody_as, run_as
from tests.web.platform import PASSWORD, WEB_CONFIG, wait_for_media

pytestmark = pytest.mark.slow


def signed_in(web, login: str) -> httpx.Client:
    client = httpx.Client(base_url=web["base"], follow_redirects=True, timeout=30)
    page = client.post("/sign-in", data={"login": login, "password": PASSWORD})
    assert page.status_code == 200 and "退出" in page.text, page.text[:500]
    return client


def csrf_of(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def events(custody) -> list[dict]:
    return json.loads(custody("log", "--json").stdout)


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_a_clerk_signs_in_sees_footage_in_chinese_and_bulk_tags_as_themselves(web, custody):
    custody("recorder", "add", "BWC-OLD", "--officer", "031245", "--from", "2026-01-01")  # never docked
    clerk = signed_in(web, CLERK)
    today = clerk.get("/")
    assert "今日" in today.text and "需要关注的案件" in today.text
    assert "未按时接入的执法记录仪" in today.text and "BWC-OLD · 031245" in today.text
    footage = clerk.get("/footage")
    for item in ("EV-000001", "EV-000002", "EV-000003", "EV-000004"):
        assert item in footage.text
    tagged = clerk.post(
        "/footage/tag",
        data={
            "csrf": csrf_of(footage),
            "items": ["EV-000001", "EV-000004"],
            "case": "2026-WEB",
            "party": "王五",
            "category": "penalty_evidence",
        },
    )
    assert tagged.status_code == 200 and "已标注 2 条" in tagged.text
    tag_events = [
        e
        for e in events(custody)
        if e["action"] == "tag" and e["details"].get("case", {}).get("to") == "2026-WEB"
    ]
    assert {e["actor"] for e in tag_events} == {f"{CLERK} via {WEB}"} and len(tag_events) == 2
    item = clerk.get("/items/EV-000001")
    assert "2026-WEB" in item.text and "王五" in item.text
    kept = json.loads(custody("show", "EV-000004", "--json").stdout)["retention"]
    assert kept["categories"] == ["penalty_evidence"] and kept["retain_until"] is None  # kept for ever
    # Every page a person opens is an access event of theirs, through the web service.
    readers = {e["actor"] for e in events(custody) if e["action"] == "access"}
    assert f"{CLERK} via {WEB}" in readers
    # English by the switch.
    english = clerk.get("/language/en")
    assert "Today" in english.text and "今日" not in english.text
    signed_out = clerk.post("/sign-out", data={"csrf": csrf_of(clerk.get("/"))})
    assert "/sign-in" in str(signed_out.url)
    assert "/sign-in" in str(clerk.get("/footage").url)


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_roles_and_confidentiality_are_the_daemons_in_the_browser_too(web, custody):
    other = signed_in(web, CLERK2)  # not named on the restricted case
    assert "EV-000003" not in other.get("/footage").text
    hidden = other.get("/items/EV-000003")
    assert hidden.status_code == 404 and "no item EV-000003" in hidden.text
    officer = signed_in(web, OFFICER)
    listed = officer.get("/footage").text
    assert "EV-000001" in listed and "EV-000004" not in listed  # only their own footage
    assert 'id="tag-submit"' not in listed  # no tagging form for an officer
    refused = officer.post("/footage/tag", data={"csrf": csrf_of(officer.get("/footage")), "items": ["EV-000001"],
                                                  "case": "X"})  # fmt: skip
    assert refused.status_code == 403
    denied = [e for e in events(custody) if e["action"] == "denied" and e["actor"] == f"{OFFICER} via {WEB}"]
    assert denied and denied[-1]["details"]["action"] == "tag"


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_the_web_platforms_security(web, custody):
    home, socket_path = web["home"], web["socket"]
    # Text from outside is data: a party named like a script renders escaped.
    custody("tag", "EV-000002", "--party", '<script>alert("x")</script>')
    hostile = web["outbox"] / '<img src=x onerror="alert(1)">.MP4'
    hostile.write_bytes(b"not media" * 100)
    hostile.chmod(0o644)
    ingested = custody_as(CLERK, home, socket_path, "ingest", str(hostile), "--officer", "031245")
    assert ingested.returncode == 0, ingested.stderr
    clerk = signed_in(web, CLERK)
    page = clerk.get("/footage").text
    assert "&lt;script&gt;alert(" in page and '<script>alert("x")' not in page
    assert "&lt;img src=x onerror=" in page and "<img src=x" not in page
    # A change without this session's CSRF token is refused, and changes nothing.
    before = len(events(custody))
    forged = clerk.post("/footage/tag", data={"items": ["EV-000001"], "case": "FORGED"})
    assert forged.status_code == 403 and "此表单已过期" in forged.text
    assert not [e for e in events(custody)[before:] if e["action"] == "tag"]
    # A session idle past [web] session_minutes is over (its cookie re-signed an hour older).
    signer = TimestampSigner(bytes.fromhex(web["secret"].read_text().strip()).hex())
    cookie = clerk.cookies["custody_session"]
    data = json.loads(base64.b64decode(signer.unsign(cookie.encode())))
    data["seen"] -= 3600
    stale = signer.sign(base64.b64encode(json.dumps(data).encode())).decode()
    old = httpx.Client(base_url=web["base"], cookies={"custody_session": stale}, follow_redirects=True)
    assert "/sign-in" in str(old.get("/footage").url)
    # Wrong passwords: refused in the same words for an unknown login, audited, then locked out.
    anonymous = httpx.Client(base_url=web["base"], follow_redirects=True)
    for _ in range(3):
        wrong = anonymous.post("/sign-in", data={"login": CLERK2, "password": "wrong password!"})
        assert wrong.status_code == 401 and "wrong login or password" in wrong.text
    unknown = anonymous.post("/sign-in", data={"login": "nobody-here", "password": "wrong password!"})
    assert unknown.status_code == 401 and "wrong login or password" in unknown.text
    locked = anonymous.post("/sign-in", data={"login": CLERK2, "password": PASSWORD})
    assert locked.status_code == 401 and "too many wrong passwords" in locked.text
    actions = [e["action"] for e in events(custody)]
    assert actions.count("sign-in-failed") == 4 and "sign-in-refused" in actions
    # The web service's user cannot open the vault's files.
    opened = run_as(WEB, "cat", str(home / "catalog.db"))
    assert opened.returncode != 0 and "Permission denied" in opened.stderr
    # Only the web service may ask on behalf of someone: a clerk forging it is refused, audited.
    forge = (
        "import sys; from custody.ingestd import api\n"
        "try:\n api.call(__import__('pathlib').Path(sys.argv[1]), 'ls', {}, on_behalf_of='cst-clerk1')\n"
        "except api.ApiError as e:\n print(e.exit_code, e.message)\n"
    )
    result = run_as(CLERK2, SYSTEM_PYTHON, "-c", forge, str(socket_path))
    assert result.stdout.startswith("13 ") and "only the web platform's service user" in result.stdout
    refusals = [
        e for e in events(custody) if e["action"] == "denied" and e["details"]["action"] == "on-behalf"
    ]
    assert refusals and refusals[-1]["actor"] == CLERK2
    # Nor may anyone but the web service check passwords.
    with pytest.raises(api.ApiError) as refused:
        api.call(socket_path, "web_sign_in", {"login": CLERK, "password": PASSWORD})
    assert refused.value.exit_code == 13


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_the_player_gets_ranges_of_the_playable_copy_and_each_view_is_audited(web, custody, tmp_path):
    wait_for_media(custody)
    whole = tmp_path / "playable.mp4"
    custody("extract", "EV-000001", "--playable", "--out", str(whole))
    copy = whole.read_bytes()
    clerk = signed_in(web, CLERK)
    page = clerk.get("/items/EV-000001").text
    assert '<video id="player"' in page and 'id="derivatives"' in page and "playable" in page
    assert re.search(r'id="integrity">(ok|damaged)', page)  # the decode check's verdict
    start = clerk.get("/items/EV-000001/playable", headers={"Range": "bytes=0-99"})
    assert start.status_code == 206 and start.content == copy[:100]
    assert start.headers["content-range"] == f"bytes 0-99/{len(copy)}"
    seek = int(len(copy) * 0.9)
    tail = clerk.get("/items/EV-000001/playable", headers={"Range": f"bytes={seek}-"})
    assert tail.status_code == 206 and tail.content == copy[seek:]
    assert clerk.get("/items/EV-000001/playable").content == copy  # no Range: the whole copy
    beyond = clerk.get("/items/EV-000001/playable", headers={"Range": f"bytes={len(copy)}-"})
    assert beyond.status_code == 416
    views = [e for e in events(custody) if e["action"] == "view" and e["actor"] == f"{CLERK} via {WEB}"]
    assert [v["details"].get("range") for v in views] == [[0, 99], [seek, len(copy) - 1], None]


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_cases_findings_and_the_audit_page(web, custody, tmp_path):
    custody("case", "open", "2026-0001", "--cause", "占道经营", "--party", "Li Si", "--handler", "031245")
    scan = tmp_path / "inquiry.pdf"
    scan.write_bytes(b"%PDF-1.4 inquiry")
    custody("case", "file", "2026-0001", str(scan), "--type", "询问笔录")
    custody("case", "close", "2026-0001", "--ended", "2026-11-01")
    archived = json.loads(
        custody("case", "archive", "2026-0001", "--force", "--reason", "test", "--json").stdout
    )
    clerk = signed_in(web, CLERK)
    cases = clerk.get("/cases").text
    assert "2026-0001" in cases and "缺少 1 份音像记录" in cases and "逾期" in cases
    case = clerk.get("/cases/2026-0001").text
    assert (
        "占道经营" in case and "询问笔录" in case and archived["record"] in case and archived["pdf"] in case
    )
    findings = clerk.get("/findings").text
    assert "案件文书缺少的音像记录" in findings and "2026-0001" in findings
    assert "/audit" not in clerk.get("/").text  # the audit page is the auditors'
    assert clerk.get("/audit").status_code == 403
    tagged = clerk.post(
        "/footage/tag",
        data={"csrf": csrf_of(clerk.get("/footage")), "items": ["EV-000002"], "party": "李四"},
    )
    assert tagged.status_code == 200 and "已标注 1 条" in tagged.text
    auditor = signed_in(web, AUDITOR)
    audit = auditor.get("/audit", params={"action": "tag", "actor": CLERK}).text
    assert f"{CLERK} via {WEB}" in audit and "EV-000002" in audit
    assert "case-archived" in auditor.get("/audit").text


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_the_leaders_report_per_officer_and_month_with_its_chart_and_csv(web, custody):
    month = time.strftime("%Y-%m")
    rows = json.loads(
        custody("report", "officers", "--from", "2026-01-01", "--until", "2099-12-31", "--json").stdout
    )
    counts = {(row["officer"], row["month"]): row["recordings"] for row in rows}
    assert counts == {("031245", month): 3, ("099999", month): 1}
    clerk = signed_in(web, CLERK)
    page = clerk.get("/reports", params={"from": "2026-01-01", "until": "2099-12-31"}).text
    assert '<svg class="chart"' in page and "各民警的音视频" in page
    assert re.search(r">031245</text>\s*<rect [^>]*width=\"420", page)  # the longest bar: 3 of 3
    download = clerk.get("/reports.csv", params={"from": "2026-01-01", "until": "2099-12-31"})
    assert download.headers["content-type"].startswith("text/csv")
    lines = download.content.decode("utf-8-sig").splitlines()
    # (headings as the station's documents are written: Chinese with English, [station] documents)
    assert lines[0].startswith("民警 / Officer,月份 / Month,音像记录 / Recordings,时长（小时） / Hours")
    assert f"031245,{month},3," in lines[1]
    officer = signed_in(web, OFFICER)
    assert officer.get("/reports").status_code == 403  # reports are for clerks, custodians, auditors


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_the_registry_page_and_a_daemon_that_stopped_serving(web, served_vault):
    custodian = signed_in(web, CUSTODIAN)
    assert 'href="/registry"' in custodian.get("/").text
    registry = custodian.get("/registry").text
    assert "031245" in registry and "Wang Li" in registry
    _home, _socket, _outbox, daemon = served_vault
    daemon.stop()
    down = custodian.get("/footage")
    assert down.status_code == 503 and "cannot reach the custody daemon" in down.text
    assert "Traceback" not in down.text


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_the_language_switch_goes_back_only_to_a_page_of_this_site(web):
    clerk = signed_in(web, CLERK)
    away = clerk.get(
        "/language/en", headers={"Referer": "https://evil.example/phish"}, follow_redirects=False
    )
    assert away.status_code == 303 and away.headers["location"] == "/"
    back = clerk.get(
        "/language/zh_CN", headers={"Referer": f"{web['base']}/footage?late=1"}, follow_redirects=False
    )
    assert back.headers["location"] == "/footage?late=1"


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_a_disc_is_made_from_the_case_page_and_only_its_session_downloads_it(web, custody):
    clerk = signed_in(web, CLERK)
    case = clerk.get("/cases/2026-0001")
    assert 'id="export"' in case.text
    made = clerk.post(
        "/cases/2026-0001/export",
        data={"csrf": csrf_of(case), "maker": "王五 (officer)", "extractor": "赵六 (clerk)"},
    )
    assert made.status_code == 200 and "verified" in made.text, made.text[-800:]
    links = re.findall(r'href="(/exports/[^"]+)"', made.text)
    names = sorted(link.rsplit("/", 1)[1] for link in links)
    assert names == ["case.description.pdf", "case.description.txt", "case.iso"]
    description = clerk.get(next(link for link in links if link.endswith(".pdf")))
    assert description.status_code == 200 and description.content.startswith(b"%PDF")
    text = clerk.get(next(link for link in links if link.endswith(".txt"))).content.decode()
    assert "王五 (officer)" in text and "EV-000001" in text
    other = signed_in(web, CLERK2)
    assert other.get(links[0]).status_code == 404  # another session: not there
    exports = json.loads(custody("export", "ls", "--json").stdout)
    assert exports[-1]["state"] == "verified" and exports[-1]["case"] == "2026-0001"


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_a_supervisor_draws_watches_and_rates_and_the_officer_and_leaders_see_it(web, custody):
    wait_for_media(custody)
    lead = signed_in(web, SUPERVISOR)
    page = lead.get("/supervision")
    assert "随机抽取样本" in page.text
    today = time.strftime("%Y-%m-%d")
    sample_page = lead.post(
        "/supervision/draw", data={"csrf": csrf_of(page), "from": "2026-01-01", "until": today, "size": "1"}
    )
    assert sample_page.status_code == 200 and "SMP-000001" in sample_page.text, sample_page.text[-600:]
    [item] = re.findall(r'id="review-(EV-\d+)"', sample_page.text)
    assert item in ("EV-000001", "EV-000002")  # the unit's normal footage only
    viewer = lead.get(f"/items/{item}", params={"sample": "SMP-000001"})
    assert (
        '<video id="player"' in viewer.text
        and 'id="review"' in viewer.text
        and "到达现场即开始记录" in viewer.text
    )
    rated = lead.post(
        "/supervision/SMP-000001/rate",
        data={"csrf": csrf_of(viewer), "item": item, "keys": "arrival complete", "check-arrival": "yes",
              "check-complete": "no", "rating": "fail", "problems": "<b>未记录到结束</b>"},
    )  # fmt: skip
    assert rated.status_code == 200 and f"{item} 已评定" in rated.text and "不合格" in rated.text
    assert "&lt;b&gt;未记录到结束&lt;/b&gt;" in rated.text  # the note is data, not markup
    refused = lead.post("/footage/tag", data={"csrf": csrf_of(rated), "items": [item], "case": "X-1"})
    assert refused.status_code == 403 and "clerk" in refused.text

    report = lead.get("/reports", params={"from": "2026-01-01", "until": today})
    assert "1 已考评" in report.text
    sheet = lead.get("/reports.xlsx", params={"from": "2026-01-01", "until": today})
    assert sheet.headers["content-type"].startswith("application/vnd.openxmlformats")
    rows = list(openpyxl.load_workbook(io.BytesIO(sheet.content)).active.iter_rows(values_only=True))
    headings = rows[0]
    assert headings[0] == "民警 / Officer" and "已考评 / Reviewed" in headings and "不合格 / Fail" in headings
    [mine] = [row for row in rows[1:] if row[0] == "031245"]
    assert mine[headings.index("已考评 / Reviewed")] == 1 and mine[headings.index("不合格 / Fail")] == 1
    assert all(row[0] != "099999" for row in rows[1:])  # another unit's officer: not this leader's

    officer = signed_in(web, OFFICER)
    assert "您的音像记录的考评结果" in officer.get("/").text and "不合格" in officer.get("/").text
    assert "未记录到结束" in officer.get(f"/items/{item}").text
    reviewed = [e for e in events(custody) if e["action"] == "supervision-reviewed"]
    assert [e["actor"] for e in reviewed] == [f"{SUPERVISOR} via {WEB}"]


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_downloads_previews_and_archiving_from_the_case_page(web, custody, tmp_path):
    wait_for_media(custody)
    original = tmp_path / "original"
    custody("extract", "EV-000001", "--out", str(original))
    clerk = signed_in(web, CLERK)
    item = clerk.get("/items/EV-000001")
    assert 'id="download-original"' in item.text and 'id="download-playable"' in item.text
    download = clerk.get("/items/EV-000001/download")
    assert download.content == original.read_bytes()
    assert download.headers["content-disposition"].startswith('attachment; filename="EV-000001-CLIP0001.MP4"')
    extracts = [e for e in events(custody) if e["action"] == "extract" and e["actor"] == f"{CLERK} via {WEB}"]
    assert len(extracts) == 1 and "web platform" in extracts[0]["details"]["to"]
    footage = clerk.get("/footage").text
    assert 'src="/items/EV-000001/thumbnail"' in footage
    thumbnail = clerk.get("/items/EV-000001/thumbnail")
    assert thumbnail.headers["content-type"] == "image/jpeg" and thumbnail.content[:2] == b"\xff\xd8"
    assert clerk.get("/items/EV-000004/thumbnail").status_code == 404  # not media: no frame to show
    for asked, shown in (
        ({"recorder": "NO-SUCH"}, []),
        ({"from": "2099-01-01"}, []),
        ({"until": "2099-01-01", "officer": "099999"}, ["EV-000004"]),
        ({"important": "1"}, []),
        ({"damaged": "1"}, []),
    ):
        listed = re.findall(r'<a href="/items/(EV-\d+)">', clerk.get("/footage", params=asked).text)
        assert listed == shown, asked
    auditor = signed_in(web, AUDITOR)
    assert 'id="download-original"' not in auditor.get("/items/EV-000001").text
    assert auditor.get("/items/EV-000001/download").status_code == 403

    case = "2026-0777"
    custody("case", "open", case, "--cause", "占道经营", "--party", "Li Si", "--handler", "031245",
            "--procedure", "simple")  # fmt: skip
    for name, kind in (("decision.pdf", "行政处罚决定书"), ("return.pdf", "送达回证")):
        (tmp_path / name).write_bytes(b"%PDF-1.4 " + name.encode() * 20)
        custody("case", "file", case, str(tmp_path / name), "--type", kind)
    refused = clerk.post(f"/cases/{case}/archive", data={"csrf": csrf_of(clerk.get(f"/cases/{case}"))})
    assert refused.status_code == 400 and "not closed" in refused.text
    custody("case", "close", case, "--ended", time.strftime("%Y-%m-%d"))
    page = clerk.get(f"/cases/{case}")
    [decision] = re.findall(r'href="/items/(EV-\d+)/preview"', page.text)[:1]
    preview = clerk.get(f"/items/{decision}/preview")
    assert preview.headers["content-type"] == "application/pdf" and preview.content.startswith(
        b"%PDF-1.4 decision"
    )
    archived = clerk.post(f"/cases/{case}/archive", data={"csrf": csrf_of(page)})
    assert archived.status_code == 200 and "已归档为第 1 版" in archived.text
    index = archived.text[archived.text.index('id="archive-index"') :]
    assert "行政处罚决定书" in index and "送达回证" in index and 'id="archive-submit"' not in archived.text
    assert [e["actor"] for e in events(custody) if e["action"] == "case-archived"] == [f"{CLERK} via {WEB}"]
