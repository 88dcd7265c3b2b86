"""Operations of case work: holds, retention and disposition, explanations, reports, case access."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from custody.errors import UsageError
from custody.ingestd.report import window_report
from custody.operations.base import Context, NoRequest, operation
from custody.retention import disposition
from custody.retention.plan import plan, upcoming
from custody.vault import Vault


@dataclass(frozen=True)
class PlaceHold:
    reason: str
    item: str | None = None
    case: str | None = None


@operation("hold_add", PlaceHold, "hold")
def hold_add(vault: Vault, request: PlaceHold, context: Context) -> dict:
    """Put a legal hold on an item or on a whole case (audited)."""
    return vault.holds.place(request.reason, ref=request.item, case=request.case).as_dict()


@dataclass(frozen=True)
class ReleaseHold:
    hold: str
    reason: str


@operation("hold_release", ReleaseHold, "hold")
def hold_release(vault: Vault, request: ReleaseHold, context: Context) -> dict:
    """Release a hold (audited); its items follow their retention again."""
    return vault.holds.release(request.hold, request.reason).as_dict()


@dataclass(frozen=True)
class ListHolds:
    all: bool = False  # released holds too


@operation("hold_ls", ListHolds, "report")
def hold_ls(vault: Vault, request: ListHolds, context: Context) -> list[dict]:
    """Holds (active ones unless ``all``)."""
    return [h.as_dict() for h in vault.holds.listed(active_only=not request.all)]


@operation("retention_plan", NoRequest, "report")
def retention_plan(vault: Vault, request: NoRequest, context: Context) -> dict:
    """What may be disposed of now and what becomes eligible soon, with the rule for each."""
    return plan(vault, vault.settings, datetime.now(UTC))


@dataclass(frozen=True)
class RequestDisposition:
    reason: str
    items: tuple[str, ...] = ()
    plan: bool = False  # every item eligible now, instead of items
    remove_category: str | None = None  # take this category off the items instead of deleting


@operation("retention_request", RequestDisposition, "retention")
def retention_request(vault: Vault, request: RequestDisposition, context: Context) -> dict:
    """Request the disposition of eligible items (or a category's removal); a second person approves it."""
    if bool(request.items) == request.plan:
        raise UsageError(reason="give ITEMs or --plan (not both)")
    if request.remove_category:
        made = disposition.request_category_removal(
            vault, list(request.items), request.remove_category.strip(), request.reason
        )
    else:
        made = disposition.request_disposition(
            vault, vault.settings, list(request.items), request.plan, request.reason, datetime.now(UTC)
        )
    return made.as_dict()


@dataclass(frozen=True)
class DispositionRef:
    request: str


@operation("retention_approve", DispositionRef, "retention")
def retention_approve(vault: Vault, request: DispositionRef, context: Context) -> dict:
    """Approve a disposition request (not one's own; both names go into the audit chain)."""
    return vault.disposals.approve(request.request).as_dict()


@operation("retention_execute", DispositionRef, "retention")
def retention_execute(vault: Vault, request: DispositionRef, context: Context) -> dict:
    """Execute an approved request: each item still eligible goes (tombstone kept); the rest are refused."""
    return disposition.execute_disposition(
        vault, vault.settings, request.request, datetime.now(UTC)
    ).as_dict()


@operation("retention_requests", NoRequest, "report")
def retention_requests(vault: Vault, request: NoRequest, context: Context) -> list[dict]:
    """Disposition requests and where each stands."""
    return [r.as_dict() for r in vault.disposals.listed()]


@dataclass(frozen=True)
class CaseCategories:
    case: str
    categories: tuple[str, ...]


@operation("retention_category", CaseCategories, "retention")
def retention_category(vault: Vault, request: CaseCategories, context: Context) -> dict:
    """Add retention categories to a whole case (audited); the ones it did not have before."""
    added = vault.retention.add_case_categories(
        request.case, list(request.categories), vault.settings.retention.categories
    )
    return {"case": request.case, "added": added}


@dataclass(frozen=True)
class Explain:
    finding: str
    reason: str


@operation("explain", Explain, "explain")
def explain(vault: Vault, request: Explain, context: Context) -> dict:
    """Close an open continuity finding with an explanation (audited)."""
    return vault.continuity.explain(request.finding, request.reason).as_dict()


@dataclass(frozen=True)
class ReportGaps:
    open_only: bool = False


@operation("report_gaps", ReportGaps, "report")
def report_gaps(vault: Vault, request: ReportGaps, context: Context) -> list[dict]:
    """Interruptions, overlaps and order problems between a recorder's consecutive segments."""
    return [f.as_dict() for f in vault.continuity.findings(open_only=request.open_only)]


@dataclass(frozen=True)
class ReportRetention:
    days: int = 7


@operation("report_retention", ReportRetention, "report")
def report_retention(vault: Vault, request: ReportRetention, context: Context) -> dict:
    """What may be disposed of now and what becomes eligible within ``days`` (1 to 3650)."""
    if not 1 <= request.days <= 3650:
        raise UsageError(reason="--days must be 1 to 3650")
    return upcoming(vault, vault.settings, datetime.now(UTC), request.days)


@dataclass(frozen=True)
class ReportWindow:
    since: str | None = None  # stored UTC text


@operation("report_window", ReportWindow, "report")
def report_window(vault: Vault, request: ReportWindow, context: Context) -> dict:
    """Footage stored after its deadline, and assigned recorders not docked within the window;
    ``window_hours`` is the station's window."""
    hours = vault.settings.dock.window_hours
    return {"report": window_report(vault, hours, request.since), "window_hours": hours}


@dataclass(frozen=True)
class CaseStaff:
    case: str
    logins: tuple[str, ...]


@operation("case_staff", CaseStaff, "case")
def case_staff(vault: Vault, request: CaseStaff, context: Context) -> dict:
    """Name users on a case: clerks and custodians named on it see its restricted footage."""
    return {"case": request.case, "named": vault.cases.add_staff(request.case, list(request.logins))}


@dataclass(frozen=True)
class CaseConfidentiality:
    case: str
    level: str


@operation("case_confidentiality", CaseConfidentiality, "case")
def case_confidentiality(vault: Vault, request: CaseConfidentiality, context: Context) -> dict:
    """Set a case's confidentiality; each of its items is at least that confidential."""
    vault.cases.set_confidentiality(request.case, request.level)
    return {"case": request.case, "level": request.level}
