"""Operations of case files (案卷): open a case, move it through the rule's stages, record its
filing approval, file its written records, link their recordings, close and archive it; the
reports on cases and on compliance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from custody.errors import Said, UsageError
from custody.operations.base import Context, NoRequest, operation
from custody.rules import STAGES
from custody.vault import Vault, case_reports, casefiles, leader_reports
from custody.vault.casefiles import DocumentFacts, parse_day
from custody.vault.timestamps import parse_user_time, to_text, utc_now


@dataclass(frozen=True)
class OpenCase:
    case: str
    cause: str
    party: str
    handlers: tuple[str, ...]
    party_kind: str = "person"
    procedure: str = "general"
    urgent: bool = False
    started: str | None = None  # stored UTC text; None: now


@operation("case_open", OpenCase, "casework")
def case_open(vault: Vault, request: OpenCase, context: Context) -> dict:
    """Open a case (or complete one known so far only as a tag): cause, party, handlers, procedure."""
    started = _stored_time(request.started, "--started") if request.started else None
    return vault.casefiles.open_case(
        request.case, request.cause.strip(), request.party.strip(), list(request.handlers),
        request.party_kind, request.procedure, request.urgent, started,
    ).as_dict()  # fmt: skip


@dataclass(frozen=True)
class ListCases:
    archived: bool = True  # archived cases too


@operation("case_ls", ListCases, "ls")
def case_ls(vault: Vault, request: ListCases, context: Context) -> list[dict]:
    """The cases the caller may see, with where each stands against the rule's deadlines."""
    return case_reports.case_report(vault, include_archived=request.archived)["cases"]


@dataclass(frozen=True)
class CaseRef:
    case: str


@operation("case_show", CaseRef, "show")
def case_show(vault: Vault, request: CaseRef, context: Context) -> dict:
    """A case whole: its details, stages, written records in stage order, footage, findings,
    archived versions and what keeps it from being complete."""
    files = vault.casefiles
    case = files.case(request.case)
    with vault.serialized():
        stages = casefiles.stage_history(vault.catalog, request.case)
    footage = files.footage(request.case)
    sees = vault.cases.sight().item
    return {
        "case": case.as_dict(),
        "stages": stages,
        # (a record the caller may not see, e.g. one marked more confidential than its case, is left out)
        "documents": [
            d.as_dict()
            for d in vault.cases.visible_records(
                files.documents(request.case),
                lambda d: ([d.item], None),  # (the case: seen above)
            )
        ],
        "footage": [
            {
                "id": i.item_id,
                "name": i.original_name,
                "recorded_start": i.recorded_start,
                "recorded_end": i.recorded_end,
                "officer": i.credited_officer or i.tags.get("officer"),
            }
            for i in footage
            if vault.caller.owner or sees(i)
        ],
        "recordings_missing": files.missing_recordings(request.case, open_only=False),
        "interruptions": [f.as_dict() for f in files.interruptions(request.case)],
        "archives": [_public_archive(a) for a in files.archives(request.case)],
        "gaps": files.gaps(request.case) if not case.archived_at else [],
    }


def _public_archive(archive: dict) -> dict:
    return {key: value for key, value in archive.items() if key not in ("id", "record_number")}


@dataclass(frozen=True)
class MoveCase:
    case: str
    stage: str
    reason: str | None = None


@operation("case_stage", MoveCase, "casework")
def case_stage(vault: Vault, request: MoveCase, context: Context) -> dict:
    """Move a case to another stage (back only with a reason); audited."""
    return vault.casefiles.move(request.case, request.stage, request.reason).as_dict()


@dataclass(frozen=True)
class ApproveFiling:
    case: str
    by: str
    at: str | None = None  # stored UTC text; None: now


@operation("case_approve_filing", ApproveFiling, "casework")
def case_approve_filing(vault: Vault, request: ApproveFiling, context: Context) -> dict:
    """Record the principal leader's approval of the filing (立案审批), by whom and when."""
    at = _stored_time(request.at, "--at") if request.at else utc_now()
    return vault.casefiles.approve_filing(request.case, request.by.strip(), at).as_dict()


@dataclass(frozen=True)
class FileDocuments:
    case: str
    type: str
    items: tuple[str, ...] = ()  # empty: only check that the filing can be done
    stage: str | None = None
    date: str | None = None  # YYYY-MM-DD
    title: str = ""
    pages: int | None = None
    people: tuple[str, ...] = ()


@operation("case_file", FileDocuments, "casework")
def case_file(vault: Vault, request: FileDocuments, context: Context) -> dict:
    """Make sealed items (scans, photographs of signed forms, DOCX/ODT) written records of a case,
    with their type, stage, date, pages and people; without items, check that it can be done."""
    facts = DocumentFacts(
        request.type.strip(), request.stage, request.date, request.title, request.pages, request.people
    )
    if not request.items:
        vault.casefiles.check_filing(request.case, facts)
        return {"case": request.case, "documents": []}
    filed = vault.casefiles.file_documents(request.case, list(request.items), facts)
    return {"case": request.case, "documents": [d.as_dict() for d in filed]}


@dataclass(frozen=True)
class LinkRecording:
    document: str
    footage: tuple[str, ...]


@operation("case_link", LinkRecording, "casework")
def case_link(vault: Vault, request: LinkRecording, context: Context) -> dict:
    """Link footage to a written record as the recording of its act; the footage joins the case."""
    if not request.footage:
        raise UsageError(reason="name the footage ITEMs to link to the record")
    return vault.casefiles.link(request.document, list(request.footage)).as_dict()


@dataclass(frozen=True)
class ExplainMissing:
    document: str
    reason: str


@operation("case_explain_missing", ExplainMissing, "explain")
def case_explain_missing(vault: Vault, request: ExplainMissing, context: Context) -> dict:
    """Say why a record of an act that must be filmed has no recording (e.g. state secrets)."""
    return vault.casefiles.explain_missing(request.document, request.reason).as_dict()


@dataclass(frozen=True)
class CloseCase:
    case: str
    ended: str  # YYYY-MM-DD: the end of the enforcement action


@operation("case_close", CloseCase, "casework")
def case_close(vault: Vault, request: CloseCase, context: Context) -> dict:
    """Record the end of the enforcement action: the file is due 30 days later (art. 22)."""
    return vault.casefiles.close(request.case, parse_day(request.ended, "--ended")).as_dict()


@dataclass(frozen=True)
class ArchiveCase:
    case: str
    force: bool = False
    reason: str | None = None


@operation("case_archive", ArchiveCase, "casework")
def case_archive(vault: Vault, request: ArchiveCase, context: Context) -> dict:
    """Check the case file is complete, then seal its signed cover and index (JSON and PDF) in the
    vault; a new version after supplements. ``force`` with a reason archives with its gaps."""
    if request.force and not (request.reason or "").strip():
        raise UsageError(reason="--force needs --reason: say why the case is archived with gaps")
    archived = vault.casefiles.archive(request.case, request.force, request.reason)
    return _public_archive(archived)


@operation("case_types", NoRequest, "ls")
def case_types(vault: Vault, request: NoRequest, context: Context) -> dict:
    """The catalogue of document types (Chinese, English, stage, recording required) and the stages."""
    return {
        "stages": [
            {"stage": key, "chinese": chinese, "english": english, "articles": articles}
            for key, chinese, english, articles in STAGES
        ],
        "types": [
            {
                "type": kind.name,
                "english": kind.english,
                "stage": kind.stage,
                "recording_required": kind.recording,
            }
            for kind in vault.settings.cases.document_types.values()
        ],
    }


@dataclass(frozen=True)
class ReportCases:
    archived: bool = False


@operation("report_cases", ReportCases, "report")
def report_cases(vault: Vault, request: ReportCases, context: Context) -> dict:
    """Open cases against the rule's deadlines: filing approvals overdue, archive deadlines near and
    past, recordings missing and interruptions open per case."""
    return case_reports.case_report(vault, include_archived=request.archived)


@dataclass(frozen=True)
class ReportCompliance:
    since: str  # stored UTC text
    until: str


@operation("report_compliance", ReportCompliance, "report")
def report_compliance(vault: Vault, request: ReportCompliance, context: Context) -> dict:
    """Per case and per officer: recordings required but missing, footage stored late,
    interruptions unexplained, cases archived late or not yet, filing approvals late (art. 27)."""
    if request.since > request.until:
        raise UsageError(reason="--from is after --until")
    return case_reports.compliance(vault, request.since, request.until)


@dataclass(frozen=True)
class ReportOfficers:
    since: str  # stored UTC text
    until: str


@operation("report_officers", ReportOfficers, "leaders-report")
def report_officers(vault: Vault, request: ReportOfficers, context: Context) -> list[dict]:
    """Per officer and month: recordings and hours, stored within the 24-hour window (%),
    interruptions found and explained, case files archived on time and late, supervision reviews
    and their ratings (for leaders)."""
    if request.since > request.until:
        raise UsageError(reason="--from is after --until")
    return leader_reports.officer_months(vault, request.since, request.until)


def _stored_time(value: str, option: str) -> str:
    """A time from a request (stored UTC text as the command line sends it, or a date as a person
    types it); raise UsageError when it cannot be read or is in the future."""
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        value = parse_user_time(value, option)
    if value > to_text(datetime.now(UTC)):
        raise UsageError(reason=Said("{option} is in the future", option=option))
    return value
