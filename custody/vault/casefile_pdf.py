"""An archived case file's cover (案卷封面) and index (卷内目录) as an A4 PDF, Chinese with English
headings (or one language: [station] documents, custody.vault.wording), from the archive's signed
record (custody.vault.casefiles).

Text from outside (the cause, the party, titles) is printed as data: hidden characters shown
escaped. Times are the station's local time with its zone; every page says which case, which
version and "第 X 页 共 Y 页 / page X of Y".
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from custody.rules import STAGES
from custody.vault.disc.description import FontMissing, a4_document
from custody.vault.items import shown_text
from custody.vault.timestamps import local_display
from custody.vault.wording import Wording

TITLE = ("案卷封面", "Case file cover")
INDEX_TITLE = ("卷内目录", "Index of the file")
STAGE_NAMES = {key: (chinese, english) for key, chinese, english, _articles in STAGES}
PROCEDURE_NAMES = {"general": ("一般程序", "general"), "simple": ("简易程序", "simple")}
PARTY_KINDS = {
    "person": ("自然人", "person"),
    "company": ("法人或其他组织", "company"),
    "other": ("其他", "other"),
}
INDEX_COLUMNS = (
    (("序号", "No."), 9),
    (("文书类型", "Type"), 30),
    (("题名", "Title"), 33),
    (("日期", "Date"), 18),
    (("页数/时长", "Pages/length"), 17),
    (("阶段", "Stage"), 17),
    (("编号", "Item"), 17),
    (("SHA-256", "SHA-256"), 33),
)


def render_case_file(record: dict, font: str | Path, wording: Wording | None = None) -> bytes:
    """The PDF of an archived case file's ``record`` in ``wording``'s language (default Chinese
    with English); raise FontMissing when ``font`` is absent."""
    font, w = Path(font), wording or Wording()
    if not font.is_file():
        raise FontMissing(path=font)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    pdf = _document(record, font, w)
    _cover(pdf, record, w)
    pdf.add_page()
    _index(pdf, record, w)
    with tempfile.TemporaryDirectory() as folder:  # fpdf2 writes a file or returns a bytearray
        path = Path(folder) / "case.pdf"
        pdf.output(str(path))
        return path.read_bytes()


def _document(record: dict, font: Path, w: Wording):
    case, version = shown_text(record["cover"]["case"]), record["version"]
    return a4_document(
        font, f"{w(*TITLE)} {case} v{version}", f"{case}  {w(f'第 {version} 版', f'version {version}')}", w
    )


def cover_rows(record: dict, w: Wording | None = None) -> list[tuple[str, str]]:
    """The cover's label and value rows (also what the tests read back from the PDF)."""
    w = w or Wording()
    cover = record["cover"]
    handlers = ", ".join(f"{shown_text(h['name'])} ({shown_text(h['badge'])})" for h in cover["handlers"])
    previous = record.get("previous")
    kind = PARTY_KINDS.get(cover["party_kind"])
    procedure = PROCEDURE_NAMES.get(cover["procedure"])
    retention = (
        ("永久", "permanent") if cover["retention"] == "permanent" else ("两年以上", "at least 2 years")
    )
    return [
        (w("案号", "Case number"), shown_text(cover["case"])),
        (w("案由", "Cause"), shown_text(cover["cause"]) or "-"),
        (w("当事人", "Party"), f"{shown_text(cover['party']) or '-'} ({w(*kind) if kind else '-'})"),
        (w("程序", "Procedure"), (w(*procedure) if procedure else cover["procedure"])
            + (f"；{w('紧急', 'urgent')}" if cover["urgent"] else "")),
        (w("承办人", "Handlers"), handlers or "-"),
        (w("立案", "Started"), local_display(cover["started_at"])),
        (w("立案审批", "Filing approved"), (f"{shown_text(cover['filing_approved_by'])}, "
            f"{local_display(cover['filing_approved_at'])}") if cover["filing_approved_at"] else "-"),
        (w("结案", "Action ended"), cover["ended_on"] or "-"),
        (w("归档期限", "Archive due"), cover["archive_due"] or "-"),
        (w("归档", "Archived"), f"{local_display(record['archived_at'])} ({shown_text(record['archived_by'])})"),
        (w("版本", "Version"), f"{record['version']}" + (
            f" ({w('补充归档', 'supplement to version')} {previous['version']})" if previous else "")),
        (w("保管期限", "Retention"), w(*retention)
            + (f" ({', '.join(cover['retention_categories'])})" if cover["retention_categories"] else "")),
        (w("件数", "Contents"), w(
            f"文书 {cover['documents']} 件，音像记录 {cover['recordings']} 件，{cover['pages']} 页",
            f"{cover['documents']} documents, {cover['recordings']} recordings, {cover['pages']} pages")),
        (w("制作单位", "Agency"), shown_text(record.get("agency") or "") or "-"),
    ]  # fmt: skip


def index_rows(record: dict, w: Wording | None = None) -> list[tuple[str, ...]]:
    w = w or Wording()
    rows = []
    for row in record["index"]:
        if row["pages"]:
            extent = f"{row['pages']} {w('页', 'pages', joiner=' ')}"
        elif row["duration_seconds"] is not None:
            minutes, seconds = divmod(row["duration_seconds"], 60)
            extent = f"{minutes}:{seconds:02d}"
        else:
            extent = "-"
        kind = w(row["type"], row["type_english"], joiner="\n")
        if row.get("supplement_to_version"):
            kind += f"\n({w('补充', 'supplement')})"
        rows.append(
            (
                str(row["seq"]),
                kind,
                shown_text(row["title"]),
                row["date"],
                extent,
                w(*STAGE_NAMES[row["stage"]], joiner="\n") if row["stage"] in STAGE_NAMES else row["stage"],
                row["item"],
                row["sha256"],
            )
        )
    return rows


def _cover(pdf, record: dict, w: Wording) -> None:
    from fpdf.fonts import FontFace

    pdf.set_font("cjk", size=15)
    pdf.multi_cell(
        0, 8, shown_text(record.get("agency") or "") or "-", align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(2)
    pdf.set_font("cjk", size=20)
    pdf.multi_cell(
        0, 10, TITLE[1] if w.language == "en" else TITLE[0], align="C", new_x="LMARGIN", new_y="NEXT"
    )
    if w.language == "both":  # the English beneath, smaller
        pdf.set_font("cjk", size=10)
        pdf.multi_cell(0, 6, TITLE[1], align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("cjk", size=10)
    label_face = FontFace(fill_color=(235, 235, 235))
    with pdf.table(col_widths=(52, 122), text_align=("LEFT", "LEFT"), first_row_as_headings=False,
                   line_height=6, padding=1.5) as drawn:  # fmt: skip
        for label, value in cover_rows(record, w):
            row = drawn.row()
            row.cell(label, style=label_face)
            row.cell(value)
    if record.get("gaps"):
        pdf.ln(4)
        pdf.set_font("cjk", size=10)
        pdf.multi_cell(
            0, 6, w("归档时的缺项", "Gaps recorded at archiving") + ":", new_x="LMARGIN", new_y="NEXT"
        )
        pdf.set_font("cjk", size=9)
        for gap in record["gaps"]:
            pdf.multi_cell(0, 5, f"- {shown_text(gap)}", new_x="LMARGIN", new_y="NEXT")
        pdf.multi_cell(
            0,
            5,
            f"{w('理由', 'Reason')}: {shown_text(record.get('forced_because') or '-')}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.ln(4)
    pdf.set_font("cjk", size=8)
    pdf.multi_cell(
        0,
        4.5,
        w(
            "本案卷的电子记录（JSON）由保管系统密钥签名，与本目录所列文件的 SHA-256 一并存于证据库。",
            "The file's electronic record (JSON) is signed with the vault's key and kept in the vault "
            "with the files this index lists by SHA-256.",
            joiner="\n",
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )


def _index(pdf, record: dict, w: Wording) -> None:
    from fpdf.fonts import FontFace

    pdf.set_font("cjk", size=13)
    pdf.multi_cell(0, 8, w(*INDEX_TITLE), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("cjk", size=7)
    heading = FontFace(fill_color=(225, 225, 225))
    with pdf.table(col_widths=tuple(width for _name, width in INDEX_COLUMNS), line_height=3.6, padding=0.8,
                   headings_style=heading, repeat_headings=1, text_align="LEFT") as drawn:  # fmt: skip
        row = drawn.row()
        for name, _width in INDEX_COLUMNS:
            row.cell(w(*name, joiner="\n") if name[0] != name[1] else name[0])
        for values in index_rows(record, w):
            row = drawn.row()
            for number, value in enumerate(values):
                row.cell(_breakable(value) if number == len(values) - 1 else value)


def _breakable(sha256: str) -> str:
    """A hash in lines of 16 hex digits (a column this narrow would otherwise cut it)."""
    return "\n".join(sha256[i : i + 16] for i in range(0, len(sha256), 16))
