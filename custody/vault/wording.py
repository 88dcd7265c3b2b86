"""The language of the documents custody writes for a case file and for leaders: the disc's
written description, README and index, the case file's cover and index, and the compliance
reports (PDF, CSV, XLSX).

By default they are in Chinese with the English beside it ("案件编号 / Case number"), as a court
clerk files them and a visiting auditor reads them; ``[station] documents`` set to "zh" or "en"
writes one language only. (What the command line and the web pages speak is the person's
choice, custody.i18n; a document is the station's.)
"""

from __future__ import annotations

from dataclasses import dataclass

from custody.config import DOCUMENT_LANGUAGES

__all__ = ["DOCUMENT_LANGUAGES", "Wording"]


@dataclass(frozen=True)
class Wording:
    """Picks a document's words: ``wording("案件编号", "Case number")`` is "案件编号 / Case number"
    for "both", "案件编号" for "zh" and "Case number" for "en"."""

    language: str = "both"

    def __call__(self, chinese: str, english: str, joiner: str = " / ") -> str:
        if self.language == "zh":
            return chinese
        if self.language == "en":
            return english
        return f"{chinese}{joiner}{english}"

    @property
    def none(self) -> str:
        return self("无", "none")


def station_documents(settings) -> dict:
    """What a client needs to write the station's documents itself (a report as PDF or XLSX): the
    station's name and agency, the documents' language and the PDF font. Told to anyone who asks
    the daemon ``whoami``: none of it is secret."""
    station = settings.station
    return {
        "name": station.name,
        "organisation": station.organisation,
        "documents": station.documents,
        "pdf_font": settings.export.pdf_font,
    }
