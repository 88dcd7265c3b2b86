"""The case-file tables of the catalog (cases, their handlers and stages, documents, links,
exemptions, archived versions): the records read from them and their SQL; the errors of case work.
The service that changes them is custody.vault.casefiles."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

from custody.errors import CustodyError, Said, UsageError
from custody.rules import FILING_APPROVAL_HOURS, STAGE_KEYS
from custody.vault import registry
from custody.vault.catalog import Catalog, Item
from custody.vault.items import format_item_id
from custody.vault.timestamps import from_text, to_text

ARCHIVE_SOURCE = "case-archive"  # the source of the items that hold an archived file's cover and index
NEAR_DAYS = 7  # a case this many days or fewer from its archive deadline is "near" it


class CaseNotFound(CustodyError):
    """no case {case}: see 'custody case ls' (or open it with 'custody case open')"""

    exit_code = 3


class CaseExists(CustodyError):
    """case {case} is already open (opened {opened_at} by {opened_by})"""

    exit_code = 2


class CaseIncomplete(CustodyError):
    """case {case} is not ready to archive: {gaps}; complete it, or archive with --force --reason"""

    exit_code = 4


class CaseArchived(CustodyError):
    """case {case} is archived: {what}"""

    exit_code = 4


class NotADocument(CustodyError):
    """{ref} is not a written record of a case: file it with 'custody case file' first"""

    exit_code = 2


@dataclass(frozen=True)
class CaseRecord:
    """A case as the catalog keeps it, with its handlers."""

    case_name: str
    cause: str
    party: str
    party_kind: str
    procedure: str
    urgent: bool
    started_at: str | None
    opened_at: str
    opened_by: str
    stage: str
    filing_approved_by: str | None
    filing_approved_at: str | None
    ended_on: str | None
    archive_due: str | None
    closed_at: str | None
    archived_at: str | None
    from_tags: bool
    handlers: tuple[str, ...] = ()

    @property
    def filing_due(self) -> str | None:
        """When an urgent case's filing approval is due (its start + 24 hours); None otherwise."""
        if not self.urgent or not self.started_at:
            return None
        return to_text(from_text(self.started_at) + timedelta(hours=FILING_APPROVAL_HOURS))

    def filing_overdue(self, now: str) -> bool:
        """An urgent case still without its approval after 24 hours."""
        due = self.filing_due
        return due is not None and self.filing_approved_at is None and now > due

    @property
    def filing_late(self) -> bool:
        """An urgent case approved after its 24 hours."""
        due = self.filing_due
        return due is not None and self.filing_approved_at is not None and self.filing_approved_at > due

    def archive_state(self, today: date) -> str:
        """open (no end yet), due (closed, deadline ahead), near, overdue, archived, archived-late."""
        if self.archived_at:
            late = self.archive_due and local_date(self.archived_at) > date.fromisoformat(self.archive_due)
            return "archived-late" if late else "archived"
        if not self.archive_due:
            return "open"
        left = (date.fromisoformat(self.archive_due) - today).days
        return "overdue" if left < 0 else "near" if left <= NEAR_DAYS else "due"

    def as_dict(self) -> dict:
        record = asdict(self)
        record["handlers"] = list(self.handlers)
        record["filing_due"] = self.filing_due
        return record


@dataclass(frozen=True)
class DocumentRecord:
    """A written record of a case: an item with its type, stage, date and links."""

    item: int
    case_name: str
    doc_type: str
    stage: str
    dated: str
    title: str
    pages: int | None
    people: tuple[str, ...]
    supplement_to: int | None
    filed_at: str
    filed_by: str
    linked: tuple[int, ...] = ()
    exemption: str | None = None
    sha256: str = ""

    @property
    def document_id(self) -> str:
        return format_item_id(self.item)

    def as_dict(self) -> dict:
        return {
            "id": self.document_id,
            "case": self.case_name,
            "type": self.doc_type,
            "stage": self.stage,
            "date": self.dated,
            "title": self.title,
            "pages": self.pages,
            "people": list(self.people),
            "supplement_to_version": self.supplement_to,
            "filed_at": self.filed_at,
            "filed_by": self.filed_by,
            "recordings": [format_item_id(n) for n in self.linked],
            "recording_exemption": self.exemption,
            "sha256": self.sha256,
        }


def local_date(stored: str) -> date:
    """The station's calendar day of a stored UTC time."""
    return from_text(stored).astimezone().date()


def today() -> date:
    return datetime.now(UTC).astimezone().date()


def parse_day(value: str, option: str) -> str:
    """A date typed by a person (YYYY-MM-DD) as stored; raise UsageError naming ``option``."""
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise UsageError(
            reason=Said("{option} {value!r} is not a date: use YYYY-MM-DD", option=option, value=value)
        ) from None


# -- the tables ---------------------------------------------------------------------------------


def officer_name(catalog: Catalog, badge: str) -> str:
    found = registry.officer(catalog, badge)
    return found.name if found else badge


def case_row(catalog: Catalog, case: str) -> CaseRecord | None:
    rows = list(catalog.db.query("SELECT * FROM cases WHERE case_name = ?", [case]))
    if not rows:
        return None
    return _case_record(catalog, rows[0])


def all_cases(catalog: Catalog) -> list[CaseRecord]:
    return [_case_record(catalog, row) for row in catalog.db.query("SELECT * FROM cases ORDER BY case_name")]


def _case_record(catalog: Catalog, row: dict) -> CaseRecord:
    handlers = tuple(
        badge
        for (badge,) in catalog.db.execute(
            "SELECT badge FROM case_handlers WHERE case_name = ? ORDER BY rowid", [row["case_name"]]
        )
    )
    row = dict(row)
    row["urgent"] = bool(row["urgent"])
    row["from_tags"] = bool(row["from_tags"])
    return CaseRecord(**row, handlers=handlers)


def add_stage(
    catalog: Catalog, case: str, stage: str, at: str, by: str, reason: str | None, seq: int
) -> None:
    catalog.db.execute(
        "INSERT INTO case_stages (case_name, stage, moved_at, moved_by, reason, audit_seq) VALUES (?, ?, ?, ?, ?, ?)",
        [case, stage, at, by, reason, seq],
    )
    catalog.db.execute("UPDATE cases SET stage = ? WHERE case_name = ?", [stage, case])


def stage_history(catalog: Catalog, case: str) -> list[dict]:
    return list(
        catalog.db.query(
            "SELECT stage, moved_at, moved_by, reason FROM case_stages WHERE case_name = ? ORDER BY id",
            [case],
        )
    )


def document_row(catalog: Catalog, number: int) -> DocumentRecord | None:
    rows = list(catalog.db.query("SELECT * FROM documents WHERE item = ?", [number]))
    return _document_record(catalog, rows[0]) if rows else None


def documents_of(catalog: Catalog, case: str) -> list[DocumentRecord]:
    rows = catalog.db.query("SELECT * FROM documents WHERE case_name = ? ORDER BY dated, item", [case])
    return [_document_record(catalog, row) for row in rows]


def _document_record(catalog: Catalog, row: dict) -> DocumentRecord:
    linked = tuple(
        n
        for (n,) in catalog.db.execute(
            "SELECT footage FROM case_links WHERE document = ? ORDER BY footage", [row["item"]]
        )
    )
    exemption = catalog.db.execute(
        "SELECT reason FROM recording_exemptions WHERE document = ?", [row["item"]]
    ).fetchone()
    sha = catalog.db.execute("SELECT sha256 FROM items WHERE id = ?", [row["item"]]).fetchone()
    return DocumentRecord(
        item=row["item"],
        case_name=row["case_name"],
        doc_type=row["doc_type"],
        stage=row["stage"],
        dated=row["dated"],
        title=row["title"],
        pages=row["pages"],
        people=tuple(json.loads(row["people"])),
        supplement_to=row["supplement_to"],
        filed_at=row["filed_at"],
        filed_by=row["filed_by"],
        linked=linked,
        exemption=exemption[0] if exemption else None,
        sha256=sha[0] if sha else "",
    )


def stage_ordered(documents: list[DocumentRecord]) -> list[DocumentRecord]:
    return sorted(documents, key=lambda d: (STAGE_KEYS.index(d.stage), d.dated, d.item))


def case_footage(catalog: Catalog, case: str) -> list[Item]:
    """Items whose current case tag is ``case`` or that are linked to its records, neither written
    records nor archived files."""
    tagged = {
        row[0]
        for row in catalog.db.execute(
            "SELECT t.item FROM tags t WHERE t.name = 'case' AND t.value = ? "
            "AND t.id = (SELECT max(t2.id) FROM tags t2 WHERE t2.item = t.item AND t2.name = 'case')",
            [case],
        )
    }
    linked = {
        row[0]
        for row in catalog.db.execute(
            "SELECT l.footage FROM case_links l JOIN documents d ON d.item = l.document WHERE d.case_name = ?",
            [case],
        )
    }
    documents = {row[0] for row in catalog.db.execute("SELECT item FROM documents")}
    items = catalog.items_by_ids(sorted((tagged | linked) - documents))
    return [item for item in items if item.source != ARCHIVE_SOURCE]


def latest_archive(catalog: Catalog, case: str) -> dict | None:
    found = archives_of(catalog, case)
    return found[-1] if found else None


def archives_of(catalog: Catalog, case: str) -> list[dict]:
    rows = catalog.db.query(
        "SELECT * FROM case_archives a WHERE a.case_name = ? ORDER BY a.version",
        [case],
    )
    return [
        {
            "id": row["id"],
            "case": row["case_name"],
            "version": row["version"],
            "record": format_item_id(row["record_item"]),
            "record_number": row["record_item"],
            "record_sha256": row["record_sha256"],
            "pdf": format_item_id(row["pdf_item"]),
            "pdf_sha256": row["pdf_sha256"],
            "gaps": json.loads(row["gaps"]),
            "archived_at": row["archived_at"],
            "archived_by": row["archived_by"],
        }
        for row in rows
    ]


def archived_case_of(catalog: Catalog, number: int, tagged_case: str | None) -> str | None:
    """The archived case whose file holds item ``number`` (a record, linked footage, or footage
    tagged with it), if any: such an item cannot leave its case."""
    rows = catalog.db.execute(
        "SELECT c.case_name FROM cases c WHERE c.archived_at IS NOT NULL AND ("
        "c.case_name = ? OR c.case_name IN (SELECT case_name FROM documents WHERE item = ?) OR "
        "c.case_name IN (SELECT d.case_name FROM case_links l JOIN documents d ON d.item = l.document "
        "WHERE l.footage = ?))",
        [tagged_case, number, number],
    ).fetchone()
    return rows[0] if rows else None
