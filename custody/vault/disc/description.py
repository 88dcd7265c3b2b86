"""The written description that goes with evidence footage into the case file: plain text and PDF.

Article 25 of the rule asks for written material made per the requirements
for examining audio-visual evidence, naming the maker, the extractor and the
extraction time. This is that document, for a court clerk to file: the
agency at the top, the title in Chinese with English beneath, the case, how
and where the footage was extracted and checked, one table per file (never
split across pages), the interruptions found and how they were explained,
and signature and date lines for the maker, the extractor and a witness.
Every page says "第 X 页 共 Y 页 / page X of Y".

Times are the station's local time with its zone. Text from outside (names,
parties, reasons) is printed as data: hidden characters shown escaped. The
text file carries the same content as the PDF; the PDF is printed with a
CJK-capable font (fonts-wqy-zenhei by default).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from custody.errors import CustodyError
from custody.vault.items import shown_text
from custody.vault.wording import Wording

TITLE = "执法音视频证据光盘文字说明"
TITLE_ENGLISH = "Written description of audio-visual evidence on disc"
SIGNERS = (("制作人", "Maker"), ("提取人", "Extractor"), ("见证人", "Witness"))


class FontMissing(CustodyError):
    """the PDF font {path} is missing: install fonts-wqy-zenhei (or set [export] pdf_font to a CJK TrueType font)"""

    exit_code = 3


@dataclass(frozen=True)
class DescribedFile:
    """One file on the disc as the description names it."""

    path: str
    sha256: str
    size: int
    made_how: str = ""  # for a playable copy: method, tool and arguments


@dataclass(frozen=True)
class DescribedItem:
    item_id: str
    original_name: str
    recorder: str
    officer: str
    recorded_start: str  # local time with zone, as people read it
    recorded_end: str
    duration: str
    integrity: str
    original: DescribedFile
    playable: DescribedFile | None = None
    no_playable_because: str = ""  # why a file has no playable copy on the disc
    important: bool = False
    document: str = ""  # a written record's type, stage, date and pages; "" for footage


@dataclass(frozen=True)
class DescribedInterruption:
    """A continuity finding between two exported recordings, and how it stands."""

    finding_id: str
    kind: str
    seconds: float
    before: str
    after: str
    state: str  # "open", "explained: <reason> (<who>)" or "withdrawn"


@dataclass(frozen=True)
class Description:
    case: str
    parties: list[str]
    handling_officers: list[str]
    maker: str
    extractor: str
    extraction_time: str  # local time with zone
    station: str
    organisation: str
    vault_id: str
    key_fingerprint: str
    export_id: str
    disc: int
    discs: int
    recorders: list[str] = field(default_factory=list)
    items: list[DescribedItem] = field(default_factory=list)
    interruptions: list[DescribedInterruption] = field(default_factory=list)
    language: str = "both"  # [station] documents: "both", "zh" or "en" (custody.vault.wording)

    @property
    def wording(self) -> Wording:
        return Wording(self.language)


def _or_dash(value: str | None) -> str:
    return shown_text(value) if value else "-"


def _megabytes(size: int, w: Wording) -> str:
    return f"{size / 1_000_000:.2f} MB ({size} {w('字节', 'bytes')})"


def header_rows(d: Description) -> list[tuple[str, str]]:
    """The case and the extraction, as label/value rows."""
    w = d.wording
    return [
        (w("案件编号", "Case number"), _or_dash(d.case)),
        (w("当事人", "Party"), _or_dash("; ".join(d.parties))),
        (w("办案民警", "Handling officer"), _or_dash("; ".join(d.handling_officers))),
        (w("制作人", "Maker"), _or_dash(d.maker)),
        (w("提取人", "Extractor"), _or_dash(d.extractor)),
        (w("提取时间", "Extraction time"), d.extraction_time),
        (w("提取地点", "Place of extraction"), f"{_or_dash(d.organisation)}, {_or_dash(d.station)}"),
        (w("执法记录仪", "Recorders"), _or_dash(", ".join(d.recorders))),
        (
            w("提取方法", "Method of extraction"),
            w(
                f"从证据库 {d.vault_id} 复制原始文件，提取时及刻录后从光盘读回时逐一核对 SHA-256 值。",
                f"Copied from the custody evidence vault {d.vault_id}; each file's SHA-256 was checked "
                "against the vault's record when extracted, and again when read back from this disc.",
                joiner=" ",
            ),
        ),
        (
            w("光盘", "Disc"),
            w(f"第 {d.disc} 张 共 {d.discs} 张", f"disc {d.disc} of {d.discs}")
            + f" ({w('导出', 'export')} {d.export_id})",
        ),
        (w("签名公钥指纹", "Signing key"), d.key_fingerprint),
    ]


def item_rows(item: DescribedItem, w: Wording) -> list[tuple[str, str]]:
    """One file's table, as label/value rows."""
    rows = [
        (w("光盘文件名", "Name on disc"), item.original.path),
        (
            w("证据编号", "Item"),
            item.item_id + (f"  【{w('重要', 'flagged important')}】" if item.important else ""),
        ),
        *([(w("文书", "Written record"), item.document)] if item.document else []),
        (w("原始文件名", "Original name"), _or_dash(item.original_name)),
        (w("执法记录仪", "Recorder"), _or_dash(item.recorder)),
        (w("记录民警", "Credited officer"), _or_dash(item.officer)),
        (w("开始", "Recording start"), _or_dash(item.recorded_start)),
        (w("结束", "Recording end"), _or_dash(item.recorded_end)),
        (w("时长", "Duration"), _or_dash(item.duration)),
        (w("大小", "Size"), _megabytes(item.original.size, w)),
        ("SHA-256", item.original.sha256),
        (w("完整性", "Integrity"), _or_dash(item.integrity)),
    ]
    if item.playable is not None:
        rows += [
            (w("可播放副本", "Playable copy"), item.playable.path),
            (w("副本大小", "Copy size"), _megabytes(item.playable.size, w)),
            (w("副本 SHA-256", "Copy SHA-256"), item.playable.sha256),
            (w("制作方式", "Made by"), _or_dash(item.playable.made_how)),
        ]
    else:
        rows.append((w("可播放副本", "Playable copy"), f"{w.none}: {_or_dash(item.no_playable_because)}"))
    return rows


def interruption_text(gap: DescribedInterruption, w: Wording) -> str:
    kinds = {
        "interruption": w("中断", "interruption", joiner=" "),
        "overlap": w("重叠", "overlap", joiner=" "),
        "out-of-order": w("顺序错乱", "out of order", joiner=" "),
    }
    return (
        f"{gap.finding_id}: {kinds.get(gap.kind, gap.kind)}, {gap.seconds:.1f} s, "
        f"{gap.before} → {gap.after}; {shown_text(gap.state)}"
    )


def _titles(d: Description) -> list[str]:
    """The document's title lines: the Chinese title with the English beneath, or one of them."""
    return {"zh": [TITLE], "en": [TITLE_ENGLISH]}.get(d.language, [TITLE, TITLE_ENGLISH])


def _closing_lines(d: Description) -> list[str]:
    """After the files: the items flagged important and how to check the disc."""
    w = d.wording
    important = [item.item_id for item in d.items if item.important]
    return [
        f"{w('标记为重要的文件', 'Items flagged important')}: {', '.join(important) or w.none}",
        f"{w('核验', 'Checking this disc')}: python3 -I verify.py ({w('见', 'see')} README.txt).",
    ]


def _signature_label(w: Wording, chinese: str, english: str) -> str:
    return w(f"{chinese}（签名）", f"{english} (signature)", joiner="/ ")


def render_lines(description: Description) -> list[str]:
    """The description as lines of text (the .txt; the PDF prints the same content)."""
    d = description
    w = d.wording
    lines = [_or_dash(d.organisation), "", *_titles(d), ""]
    lines += [f"{label}: {value}" for label, value in header_rows(d)]
    lines += ["", f"{w('文件', 'Files')} ({len(d.items)})", ""]
    for number, item in enumerate(d.items, start=1):
        lines.append(f"{number}.")
        lines += [f"   {label}: {value}" for label, value in item_rows(item, w)]
        lines.append("")
    lines.append(w("录像中断及说明", "Interruptions within these recordings and their explanations"))
    found = [f"   {interruption_text(gap, w)}" for gap in d.interruptions]
    lines += found or [f"   {w('未发现', 'none found')}"]
    closing = _closing_lines(d)
    lines += ["", closing[0], "", closing[1], ""]
    for chinese, english in SIGNERS:
        lines.append(
            f"{_signature_label(w, chinese, english)}: ____________________    {w('日期', 'Date')}: ____________"
        )
    return lines


def render_text(description: Description) -> str:
    return "\n".join(render_lines(description)) + "\n"


def render_pdf(description: Description, font: Path, out: Path) -> None:
    """Write the description as an A4 PDF to ``out``; raise FontMissing when ``font`` is absent."""
    if not font.is_file():
        raise FontMissing(path=font)
    # fontTools reports every table it does not subset (harmless) as a warning.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    d = description
    pdf = _document(d, font)
    _heading(pdf, d)
    pdf.set_font("cjk", size=9)
    _table(pdf, header_rows(d))
    pdf.ln(4)
    for number, item in enumerate(d.items, start=1):
        _together(pdf, lambda doc, number=number, item=item: _draw_item(doc, d, number, item))
    _together(pdf, lambda doc: _draw_findings(doc, d))
    _together(pdf, lambda doc: _draw_signatures(doc, d.wording))  # together, on the page they sign
    pdf.output(str(out))


def _document(d: Description, font: Path):
    """An A4 fpdf2 document with the CJK font and a footer naming the export, case and page."""
    title = _titles(d)[0]
    return a4_document(
        font, f"{title} {d.export_id} {d.case}", f"{d.export_id}  {shown_text(d.case)}", d.wording
    )


def a4_document(font: Path, title: str, footer: str, wording: Wording):
    """An A4 fpdf2 document with the CJK font (named "cjk"), its first page begun, and on every
    page a footer of ``footer`` and "第 X 页 共 Y 页 / page X of Y" in ``wording``'s language (the
    description's, a case file's, a report's)."""
    from fpdf import FPDF  # imported here: only exports need it, and it is slow to import

    class _Document(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("cjk", size=8)
            self.cell(
                0,
                5,
                f"{footer}    "
                + wording(f"第 {self.page_no()} 页 共 {{nb}} 页", f"page {self.page_no()} of {{nb}}"),
                align="C",
            )

    pdf = _Document(format="A4")
    pdf.set_title(title)
    pdf.set_creator("custody")
    pdf.set_margins(18, 15, 18)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_font("cjk", fname=str(font))
    pdf.add_page()
    return pdf


def _heading(pdf, d: Description) -> None:
    pdf.set_font("cjk", size=15)
    pdf.multi_cell(0, 8, _or_dash(d.organisation), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    title, *beneath = _titles(d)
    pdf.set_font("cjk", size=17)
    pdf.multi_cell(0, 9, title, align="C", new_x="LMARGIN", new_y="NEXT")
    for line in beneath:
        pdf.set_font("cjk", size=10)
        pdf.multi_cell(0, 6, line, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _table(doc, rows: list[tuple[str, str]]) -> None:
    """Two columns: a shaded label, its value."""
    from fpdf.fonts import FontFace

    label_face = FontFace(fill_color=(235, 235, 235))
    with doc.table(col_widths=(52, 122), text_align=("LEFT", "LEFT"), first_row_as_headings=False,
                   line_height=4.6, padding=1) as drawn:  # fmt: skip
        for label, value in rows:
            row = drawn.row()
            row.cell(label, style=label_face)
            row.cell(value)


def _together(pdf, draw) -> None:
    """Draw on one page: on the next one when it would not fit on this one (never split)."""
    with pdf.offset_rendering() as trial:
        draw(trial)
    if trial.page_break_triggered:
        pdf.add_page()
    draw(pdf)


def _draw_item(doc, d: Description, number: int, item: DescribedItem) -> None:
    if number == 1:  # the heading stays with the first file
        doc.set_font("cjk", size=11)
        doc.multi_cell(0, 7, f"{d.wording('文件', 'Files')} ({len(d.items)})", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("cjk", size=9.5)
    doc.multi_cell(0, 6, f"{number}. {item.item_id}", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("cjk", size=8.5)
    _table(doc, item_rows(item, d.wording))
    doc.ln(3)


def _draw_findings(doc, d: Description) -> None:
    w = d.wording
    doc.set_font("cjk", size=11)
    doc.multi_cell(
        0, 7, w("录像中断及说明", "Interruptions within these recordings"), new_x="LMARGIN", new_y="NEXT"
    )
    doc.set_font("cjk", size=9)
    for text in [interruption_text(gap, w) for gap in d.interruptions] or [w("未发现", "none found")]:
        doc.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
    doc.ln(2)
    for line in _closing_lines(d):
        doc.multi_cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")


def _draw_signatures(doc, w: Wording) -> None:
    doc.ln(8)
    doc.set_font("cjk", size=10)
    for chinese, english in SIGNERS:
        doc.cell(64, 14, f"{_signature_label(w, chinese, english)}:")
        doc.cell(50, 14, "", border="B")
        doc.cell(6, 14, "")
        doc.cell(26, 14, f"{w('日期', 'Date')}:", align="R")
        doc.cell(28, 14, "", border="B", new_x="LMARGIN", new_y="NEXT")
