"""The leaders' and the compliance reports as documents: CSV, XLSX and PDF, with headings in the
documents' language (custody.vault.wording: Chinese with English beside it by default).

The numbers come from the reports' service calls (``report_officers``, ``report_compliance``);
this module only lays them out. Text from outside (a case number, a badge) is data: written to a
spreadsheet as text, never as a formula; printed to a PDF with hidden characters shown escaped.
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from custody.errors import cannot_write
from custody.vault.items import shown_text
from custody.vault.new_files import new_file
from custody.vault.wording import Wording

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# The leaders' report, per officer and month: (key in report_officers' rows, Chinese, English).
OFFICER_COLUMNS = (
    ("officer", "民警", "Officer"),
    ("month", "月份", "Month"),
    ("recordings", "音像记录", "Recordings"),
    ("hours", "时长（小时）", "Hours"),
    ("stored_in_time", "24 小时内存储", "Stored within 24 h"),
    ("stored_late", "逾期存储", "Stored late"),
    ("stored_in_time_percent", "24 小时内存储（%）", "Stored within 24 h (%)"),
    ("interruptions_found", "发现中断", "Interruptions found"),
    ("interruptions_explained", "已说明", "Explained"),
    ("cases_archived_on_time", "按期归档案件", "Cases archived on time"),
    ("cases_archived_late", "逾期归档", "Archived late"),
    ("reviewed", "已考评", "Reviewed"),
    ("rated_excellent", "优秀", "Excellent"),
    ("rated_pass", "合格", "Pass"),
    ("rated_fail", "不合格", "Fail"),
)
COMPLIANCE_COLUMNS = (
    ("kind", "类别", "Kind"),
    ("case_or_officer", "案件或民警", "Case or officer"),
    ("recordings_missing", "应录未录", "Recordings missing"),
    ("footage_late", "逾期存储", "Footage stored late"),
    ("interruptions_unexplained", "中断未说明", "Interruptions unexplained"),
    ("archive", "归档", "Archive"),
    ("filing_approval_late", "立案审批超时", "Filing approvals late"),
)
ARCHIVE_STATES = {
    "open": ("未结案", "open"),
    "due": ("待归档", "due"),
    "near": ("临近归档期限", "due soon"),
    "overdue": ("逾期未归档", "overdue"),
    "archived": ("已归档", "archived"),
    "archived-late": ("逾期归档", "archived late"),
}


@dataclass
class ReportTable:
    """A report laid out: its title, its column headings and its rows of values (numbers stay
    numbers; everything else is text)."""

    title: str
    headings: list[str]
    rows: list[list[object]] = field(default_factory=list)


def officer_table(rows: list[dict], w: Wording) -> ReportTable:
    """The leaders' report (``report_officers``' rows) as a table."""
    return ReportTable(
        title=w("民警月度统计", "By officer and month"),
        headings=[w(zh, en) for _key, zh, en in OFFICER_COLUMNS],
        rows=[[row[key] for key, _zh, _en in OFFICER_COLUMNS] for row in rows],
    )


def compliance_table(found: dict, w: Wording) -> ReportTable:
    """The compliance report (``report_compliance``) as one table: a row per case, then per officer."""
    table = ReportTable(
        title=w("执法全过程记录合规情况", "Compliance with the full-process recording rule"),
        headings=[w(zh, en) for _key, zh, en in COMPLIANCE_COLUMNS],
    )
    for row in found["cases"]:
        state = ARCHIVE_STATES.get(row["archive_state"])
        table.rows.append([
            w("案件", "case"), row["case"], len(row["recordings_missing"]), len(row["footage_late"]),
            len(row["interruptions_unexplained"]), w(*state) if state else row["archive_state"],
            w("超时", "late") if row["filing_approval_late"] else w("按时", "on time"),
        ])  # fmt: skip
    for row in found["officers"]:
        archive = w(
            f"逾期归档 {row['cases_archived_late']}，逾期未归档 {row['cases_not_archived_overdue']}",
            f"archived late {row['cases_archived_late']}, overdue {row['cases_not_archived_overdue']}",
            joiner="; ",
        )
        table.rows.append([
            w("民警", "officer"), row["officer"], row["recordings_missing"], row["footage_late"],
            row["interruptions_unexplained"], archive, row["filing_approvals_late"],
        ])  # fmt: skip
    return table


def csv_text(table: ReportTable) -> str:
    """The table as CSV, its headings first (with no byte-order mark: the caller adds one for a
    download that spreadsheet programs open)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.headings)
    writer.writerows([[_csv_cell(value) for value in row] for row in table.rows])
    return out.getvalue()


def _csv_cell(value: object) -> object:
    """A cell as data when a spreadsheet program opens the CSV: text from outside that starts as
    a formula would (``=``, ``+``, ``-``, ``@``, a tab or a return) is kept with a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def xlsx_bytes(table: ReportTable) -> bytes:
    """The table as an XLSX workbook of one sheet: headings bold, numbers as numbers, every text
    cell written as text (a party's "=..." is never a formula, a "www..." never a link)."""
    import xlsxwriter  # imported here: only reports need it

    out = io.BytesIO()
    book = xlsxwriter.Workbook(
        out, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    sheet = book.add_worksheet(_sheet_name(table.title))
    bold = book.add_format({"bold": True, "text_wrap": True})
    for column, heading in enumerate(table.headings):
        sheet.write_string(0, column, heading, bold)
    for number, row in enumerate(table.rows, start=1):
        for column, value in enumerate(row):
            if isinstance(value, int | float) and not isinstance(value, bool):
                sheet.write_number(number, column, value)
            elif value is not None:
                sheet.write_string(number, column, str(value))
    sheet.set_column(0, len(table.headings) - 1, 16)
    book.close()
    return out.getvalue()


def _sheet_name(title: str) -> str:
    """A worksheet name Excel accepts: at most 31 characters, none of []:*?/\\."""
    return "".join(" " if c in "[]:*?/\\" else c for c in title)[:31]


def pdf_bytes(table: ReportTable, font: str | Path, period: str, agency: str, w: Wording) -> bytes:
    """The table as an A4 PDF headed by the agency, the title and the period;
    raise FontMissing when ``font`` is absent."""
    from custody.vault.disc.description import FontMissing, a4_document

    font = Path(font)
    if not font.is_file():
        raise FontMissing(path=font)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    pdf = a4_document(font, f"{table.title} {period}", f"{table.title}  {period}", w)
    pdf.set_font("cjk", size=13)
    pdf.multi_cell(0, 8, shown_text(agency) or "-", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=15)
    pdf.multi_cell(0, 9, table.title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=9)
    pdf.multi_cell(0, 6, f"{w('统计期间', 'Period')}: {period}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("cjk", size=6.5 if len(table.headings) > 8 else 8)
    from fpdf.fonts import FontFace

    with pdf.table(headings_style=FontFace(fill_color=(225, 225, 225)), repeat_headings=1, line_height=3.8,
                   padding=0.8, text_align="LEFT") as drawn:  # fmt: skip
        row = drawn.row()
        for heading in table.headings:
            row.cell(heading)
        for values in table.rows:
            row = drawn.row()
            for value in values:
                row.cell("" if value is None else _cell_text(value))
    with tempfile.TemporaryDirectory() as folder:  # fpdf2 writes a file or returns a bytearray
        path = Path(folder) / "report.pdf"
        pdf.output(str(path))
        return path.read_bytes()


def _cell_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return shown_text(str(value))


def write_new_file(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out``, whole or not at all (``new_files.new_file``); never overwrites. Raise OutputExists, or CannotWrite saying what to do."""
    try:
        with new_file(Path(out)) as sink:
            sink.write(data)
    except OSError as exc:
        raise cannot_write(Path(out), exc) from exc
