"""What leaders read: per officer and month, the recordings and their hours, the share stored
within the 24-hour window, interruptions found and explained, and case files archived on time
(``report officers``, the web platform's Reports page).

Months are the station's calendar months of the recording (of the ingest, when the recording time
is unknown); an officer is the one credited by the dock, else the officer tag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from custody.vault import findings, supervision
from custody.vault.case_tables import local_date, today
from custody.vault.catalog import ItemFilter
from custody.vault.timestamps import from_text

if TYPE_CHECKING:
    from custody.vault.vault import Vault

UNKNOWN_OFFICER = "-"


def officer_months(vault: Vault, since: str, until: str) -> list[dict]:
    """Rows of (officer, month) between ``since`` and ``until`` (stored UTC text), sorted: the
    recordings, their hours, how many were stored within their window (and the share), the
    interruptions found and explained, the case files archived on time and late, and the
    supervision reviews made in the period with their ratings (by the month of the review)."""
    rows: dict[tuple[str, str], dict] = {}

    def row(officer: str, month: str) -> dict:
        return rows.setdefault(
            (officer, month),
            {
                "officer": officer,
                "month": month,
                "recordings": 0,
                "hours": 0.0,
                "stored_in_time": 0,
                "stored_late": 0,
                "interruptions_found": 0,
                "interruptions_explained": 0,
                "cases_archived_on_time": 0,
                "cases_archived_late": 0,
                "reviewed": 0,
                "rated_excellent": 0,
                "rated_pass": 0,
                "rated_fail": 0,
            },
        )

    for item in vault.list_items(ItemFilter(since=since, until=until)):
        officer = item.credited_officer or item.tags.get("officer") or UNKNOWN_OFFICER
        month = local_date(item.recorded_start or item.ingested_at).strftime("%Y-%m")
        counts = row(officer, month)
        counts["recordings"] += 1
        if item.recorded_start and item.recorded_end:
            seconds = (from_text(item.recorded_end) - from_text(item.recorded_start)).total_seconds()
            counts["hours"] += max(0.0, seconds) / 3600
        counts["stored_late" if item.late else "stored_in_time"] += 1
    for finding in _findings(vault):
        if not since <= finding.found_at <= until:
            continue
        counts = row(finding.officer or UNKNOWN_OFFICER, local_date(finding.found_at).strftime("%Y-%m"))
        counts["interruptions_found"] += 1
        counts["interruptions_explained"] += finding.state == "explained"
    day = today()
    for case in vault.casefiles.listed():
        if not case.archived_at or not since <= case.archived_at <= until:
            continue
        late = case.archive_state(day) == "archived-late"
        for badge in case.handlers:
            counts = row(badge, local_date(case.archived_at).strftime("%Y-%m"))
            counts["cases_archived_late" if late else "cases_archived_on_time"] += 1
    for review in _reviews(vault, since, until):
        counts = row(review.officer or UNKNOWN_OFFICER, local_date(review.reviewed_at).strftime("%Y-%m"))
        counts["reviewed"] += 1
        counts[f"rated_{review.rating}"] += 1
    found = [rows[key] for key in sorted(rows)]
    for counts in found:
        counts["hours"] = round(counts["hours"], 2)
        stored = counts["stored_in_time"] + counts["stored_late"]
        counts["stored_in_time_percent"] = (
            round(100 * counts["stored_in_time"] / stored, 1) if stored else None
        )
    return found


def _reviews(vault: Vault, since: str, until: str) -> list[supervision.Review]:
    """The ratings made between ``since`` and ``until`` of footage the caller may see."""
    with vault.serialized():
        return supervision.visible_reviews(
            vault, "rating IS NOT NULL AND reviewed_at BETWEEN ? AND ?", [since, until]
        )


def _findings(vault: Vault) -> list[findings.ContinuityFinding]:
    """The continuity findings touching footage the caller may see (a leader's report needs no
    right to the findings report itself)."""
    with vault.serialized():
        return vault.cases.visible_records(findings.findings(vault.catalog), findings.finding_items)
