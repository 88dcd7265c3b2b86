"""The written description that goes with evidence footage: plain text and PDF.

The regulation asks for a written description naming who made the record,
who extracted it and when. Headings are in Chinese and English; values are
as the vault holds them. The text is the reference: the PDF prints the same
lines, with a CJK-capable font (fonts-wqy-zenhei by default).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from custody.errors import CustodyError


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
    recorded_start: str
    recorded_end: str
    duration: str
    integrity: str
    original: DescribedFile
    playable: DescribedFile | None = None


@dataclass(frozen=True)
class Description:
    case: str
    parties: list[str]
    handling_officers: list[str]
    maker: str
    extractor: str
    extraction_time: str
    station: str
    organisation: str
    vault_id: str
    key_fingerprint: str
    export_id: str
    disc: int
    discs: int
    items: list[DescribedItem] = field(default_factory=list)


def _or_dash(value: str | None) -> str:
    return value if value else "-"


def render_lines(description: Description) -> list[str]:
    """The description as lines of text (what both the .txt and the PDF print)."""
    d = description
    lines = [
        "证据光盘说明 / Evidence disc description",
        "",
        f"案件编号 / Case number: {d.case}",
        f"当事人 / Party: {_or_dash(', '.join(d.parties))}",
        f"办案民警 / Handling officer: {_or_dash(', '.join(d.handling_officers))}",
        f"制作人 / Maker: {d.maker}",
        f"提取人 / Extractor: {d.extractor}",
        f"提取时间 / Extraction time: {d.extraction_time}",
        f"导出站点 / Exporting station: {d.station}" + (f" ({d.organisation})" if d.organisation else ""),
        f"导出编号 / Export: {d.export_id}",
        f"光盘 / Disc: 第 {d.disc} 张，共 {d.discs} 张 / disc {d.disc} of {d.discs}",
        f"证据库 / Vault: {d.vault_id}",
        f"签名公钥指纹 / Signing key fingerprint: {d.key_fingerprint}",
        "",
        f"文件 / Files ({len(d.items)} items)",
        "",
    ]
    for number, item in enumerate(d.items, start=1):
        lines += [
            f"{number}. {item.item_id}  {item.original_name}",
            f"   原始文件 / Original on disc: {item.original.path}",
            f"   记录仪 / Recorder serial: {_or_dash(item.recorder)}",
            f"   记录民警 / Credited officer: {_or_dash(item.officer)}",
            f"   开始 / Recording start: {_or_dash(item.recorded_start)}",
            f"   结束 / Recording end: {_or_dash(item.recorded_end)}",
            f"   时长 / Duration: {_or_dash(item.duration)}",
            f"   大小 / Size: {item.original.size} bytes",
            f"   SHA-256: {item.original.sha256}",
            f"   完整性 / Integrity: {_or_dash(item.integrity)}",
        ]
        if item.playable is not None:
            lines += [
                f"   可播放副本 / Playable copy: {item.playable.path}",
                f"     大小 / Size: {item.playable.size} bytes",
                f"     SHA-256: {item.playable.sha256}",
                f"     制作方式 / Made by: {item.playable.made_how}",
            ]
        lines.append("")
    lines += [
        "核验 / Checking this disc: python3 -I verify.py (see README.txt).",
        "Times are UTC (ISO 8601).",
    ]
    return lines


def render_text(description: Description) -> str:
    return "\n".join(render_lines(description)) + "\n"


def render_pdf(description: Description, font: Path, out: Path) -> None:
    """Write the description as an A4 PDF to ``out``; raise FontMissing when ``font`` is absent."""
    if not font.is_file():
        raise FontMissing(path=font)
    from fpdf import FPDF  # imported here: only exports need it, and it is slow to import

    # fontTools reports every table it does not subset (harmless) as a warning.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    pdf = FPDF(format="A4")
    pdf.set_title(f"Evidence disc description {description.export_id} {description.case}")
    pdf.set_creator("custody")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("cjk", fname=str(font))
    pdf.add_page()
    lines = render_lines(description)
    pdf.set_font("cjk", size=14)
    pdf.multi_cell(0, 8, lines[0], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=9)
    for line in lines[1:]:
        pdf.multi_cell(0, 5, line or " ", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(out))
