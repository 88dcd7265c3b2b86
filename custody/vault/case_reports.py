"""What supervisors read about cases: where each open case stands against the rule's deadlines
(``report cases``, ``status``), and the compliance report per case and per officer (art. 27)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from custody.vault.casefiles import CaseRecord, case_footage, local_date, today
from custody.vault.timestamps import utc_now

if TYPE_CHECKING:
    from custody.vault.vault import Vault


def case_report(vault: Vault, include_archived: bool = False) -> dict:
    """Every case the caller may see (not yet archived, unless ``include_archived``): stage,
    archive deadline and state, the filing approval, open findings; and the cases needing
    attention: filing approvals overdue, archive deadlines near or past."""
    now, day = utc_now(), today()
    cases = vault.casefiles.listed(include_archived=include_archived)
    missing = vault.casefiles.missing_recordings()
    rows = []
    for case in cases:
        interruptions = [f for f in vault.casefiles.interruptions(case.case_name) if f.state == "open"]
        rows.append(
            {
                **_case_line(case, day, now),
                "recordings_missing": [m["document"] for m in missing if m["case"] == case.case_name],
                "interruptions_open": [f.finding_id for f in interruptions],
            }
        )
    return {
        "cases": rows,
        "filing_overdue": [row["case"] for row in rows if row["filing_overdue"]],
        "archive_near": [row["case"] for row in rows if row["archive_state"] == "near"],
        "archive_overdue": [row["case"] for row in rows if row["archive_state"] == "overdue"],
    }


def _case_line(case: CaseRecord, day: date, now: str) -> dict:
    days_left = (
        (date.fromisoformat(case.archive_due) - day).days
        if case.archive_due and not case.archived_at
        else None
    )
    return {
        "case": case.case_name,
        "cause": case.cause,
        "party": case.party,
        "handlers": list(case.handlers),
        "procedure": case.procedure,
        "urgent": case.urgent,
        "stage": case.stage,
        "started_at": case.started_at,
        "filing_approved_at": case.filing_approved_at,
        "filing_due": case.filing_due,
        "filing_overdue": case.filing_overdue(now),
        "filing_late": case.filing_late,
        "ended_on": case.ended_on,
        "archive_due": case.archive_due,
        "archived_at": case.archived_at,
        "archive_state": case.archive_state(day),
        "archive_days_left": days_left,
    }


def attention(vault: Vault) -> dict:
    """What ``status`` says of cases: urgent filings without approval after 24 hours, files past
    or near their archive deadline."""
    now, day = utc_now(), today()
    cases = vault.casefiles.listed(include_archived=False)
    return {
        "filing_overdue": [c.case_name for c in cases if c.filing_overdue(now)],
        "archive_overdue": [c.case_name for c in cases if c.archive_state(day) == "overdue"],
        "archive_near": [c.case_name for c in cases if c.archive_state(day) == "near"],
    }


def compliance(vault: Vault, since: str, until: str) -> dict:
    """Per case and per officer, for cases started (or opened) and footage recorded between
    ``since`` and ``until`` (stored UTC text): recordings required but missing, footage stored
    after its 24-hour window, interruptions unexplained, cases archived late or not yet, filing
    approvals late."""
    now, day = utc_now(), today()
    cases = [c for c in vault.casefiles.listed() if since <= (c.started_at or c.opened_at) <= until]
    missing = vault.casefiles.missing_recordings()
    per_case, per_officer = [], {}

    def officer(badge: str) -> dict:
        return per_officer.setdefault(
            badge,
            {
                "officer": badge,
                "recordings_missing": 0,
                "footage_late": 0,
                "interruptions_unexplained": 0,
                "cases_archived_late": 0,
                "cases_not_archived_overdue": 0,
                "filing_approvals_late": 0,
            },
        )

    for case in cases:
        state = case.archive_state(day)
        missing_here = [m["document"] for m in missing if m["case"] == case.case_name]
        interruptions = [f for f in vault.casefiles.interruptions(case.case_name) if f.state == "open"]
        with vault.serialized():
            footage = case_footage(vault.catalog, case.case_name)
        sees = (lambda item: True) if vault.caller.owner else vault.cases.sight().item
        late_footage = [i.item_id for i in footage if i.late and sees(i)]  # (none the caller may not see)
        filing_late = case.filing_late or case.filing_overdue(now)
        per_case.append(
            {
                "case": case.case_name,
                "handlers": list(case.handlers),
                "recordings_missing": missing_here,
                "footage_late": late_footage,
                "interruptions_unexplained": [f.finding_id for f in interruptions],
                "archive_state": state,
                "archive_due": case.archive_due,
                "archived_on": local_date(case.archived_at).isoformat() if case.archived_at else None,
                "filing_approval_late": filing_late,
            }
        )
        for badge in case.handlers:
            counts = officer(badge)
            counts["recordings_missing"] += len(missing_here)
            counts["cases_archived_late"] += state == "archived-late"
            counts["cases_not_archived_overdue"] += state == "overdue"
            counts["filing_approvals_late"] += filing_late
    for item in vault.list_items(_recorded_between(since, until)):
        badge = item.credited_officer or item.tags.get("officer")
        if item.late and badge:
            officer(badge)["footage_late"] += 1
    for finding in vault.continuity.findings(open_only=True):
        if finding.officer and since <= finding.found_at <= until:
            officer(finding.officer)["interruptions_unexplained"] += 1
    return {
        "from": since,
        "until": until,
        "cases": per_case,
        "officers": [per_officer[badge] for badge in sorted(per_officer)],
    }


def _recorded_between(since: str, until: str):
    from custody.vault.catalog import ItemFilter

    return ItemFilter(since=since, until=until)
