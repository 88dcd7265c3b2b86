"""Continuity findings: holes, overlaps and order problems between a recorder's segments.

What counts as a finding is decided by ``custody.ingestd.continuity``.
:class:`Continuity` (``vault.continuity``) keeps them, open until a clerk
explains them (or withdrawn when a late segment fills the hole), each change
through ``vault.change()``; the functions below it are the table's SQL.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from custody.errors import CustodyError
from custody.vault.catalog import Catalog, Item
from custody.vault.items import checked_reason, format_item_id

if TYPE_CHECKING:
    from custody.vault.vault import Vault

INTERRUPTION = "interruption"
OVERLAP = "overlap"
OUT_OF_ORDER = "out-of-order"


@dataclass(frozen=True)
class ContinuityFinding:
    """A hole, an overlap or an order problem between two of a recorder's consecutive segments."""

    id: int
    kind: str
    recorder_serial: str
    officer: str | None
    before_item: int
    after_item: int
    seconds: float
    found_at: str
    state: str  # open, explained, or withdrawn (a segment found later filled the hole)
    closed_at: str | None
    closed_by: str | None
    reason: str | None

    @property
    def finding_id(self) -> str:
        return format_gap_id(self.id)

    def as_dict(self) -> dict:
        fields = asdict(self)
        fields.update(
            id=self.finding_id,
            before_item=format_item_id(self.before_item),
            after_item=format_item_id(self.after_item),
        )
        return fields


class FindingNotFound(CustodyError):
    """no continuity finding {ref}: use an id from 'custody report gaps' (GAP-000001)"""

    exit_code = 5


class FindingClosed(CustodyError):
    """{ref} is already {state} ({closed_by}, {closed_at}): {reason}"""

    exit_code = 5


def finding_items(finding: ContinuityFinding) -> tuple[list[int], None]:
    """What a continuity finding names, for ``visible_records``: the items on both sides of the gap."""
    return [finding.before_item, finding.after_item], None


def _locked(method: Callable) -> Callable:
    @functools.wraps(method)
    def locked(self: Continuity, *args, **kwargs):
        with self.vault.serialized():
            return method(self, *args, **kwargs)

    return locked


class Continuity:
    """The continuity findings of an open vault (``vault.continuity``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    @_locked
    def recording_segments(self, serial: str, since: str, until: str) -> list[dict]:
        """A recorder's recordings starting between ``since`` and ``until`` (see recording_segments)."""
        return recording_segments(self.vault.catalog, serial, since, until)

    @_locked
    def segments_awaiting_media(self, serial: str, since: str, until: str) -> int:
        """How many of a recorder's items in the window still wait for their media job."""
        return segments_awaiting_media(self.vault.catalog, serial, since, until)

    def record(self, serial: str, considered: list[int], found: list[dict]) -> list[ContinuityFinding]:
        """Record what continuity analysis ``found`` among the items ``considered``; return the new findings.

        A finding already known is not recorded twice. An open finding between
        two considered items that the analysis no longer makes (a segment that
        arrived later lies between them) is withdrawn. Both are audited.
        """
        new = []
        with self.vault.change() as change:
            current = set()
            for found_one in found:
                current.add((found_one["kind"], found_one["before_item"], found_one["after_item"]))
                number = upsert_finding(change.catalog, found_one, change.at)
                if number is None:
                    continue
                recorded = finding(change.catalog, number)
                assert recorded is not None
                change.record(
                    "continuity-found",
                    found_one["after_item"],
                    {
                        "finding": recorded.finding_id,
                        "kind": found_one["kind"],
                        "recorder": serial,
                        "officer": found_one["officer"],
                        "before": format_item_id(found_one["before_item"]),
                        "after": format_item_id(found_one["after_item"]),
                        "seconds": found_one["seconds"],
                    },
                )
                new.append(recorded)
            for stale in open_findings_between(change.catalog, serial, considered):
                if (stale.kind, stale.before_item, stale.after_item) in current:
                    continue
                reason = "a segment found later lies between them"
                close_finding(change.catalog, stale.id, "withdrawn", change.at, self.vault.actor, reason)
                change.record(
                    "continuity-withdrawn", stale.after_item, {"finding": stale.finding_id, "reason": reason}
                )
        return new

    def explain(self, ref: str, reason: str) -> ContinuityFinding:
        """Close an open continuity finding with a clerk's explanation (audited); return it closed.

        Raise FindingNotFound, FindingClosed when it is not open, UsageError
        when the reason is empty or too long.
        """
        vault = self.vault
        with vault.serialized():
            vault.authorize("explain")
            number = parse_gap_id(ref)
            found = finding(vault.catalog, number) if number else None
            if found is None or not vault.cases.may_see(*finding_items(found)):
                raise FindingNotFound(ref=ref)  # (one between items the caller may not see: not there)
            reason = checked_reason(reason, "why the recording was interrupted")
            if found.state != "open":
                raise FindingClosed(
                    ref=found.finding_id,
                    state=found.state,
                    closed_by=found.closed_by,
                    closed_at=found.closed_at,
                    reason=found.reason,
                )
            with vault.change() as change:
                close_finding(change.catalog, found.id, "explained", change.at, vault.actor, reason)
                change.record(
                    "continuity-explained",
                    found.after_item,
                    {"finding": found.finding_id, "kind": found.kind, "reason": reason},
                )
            closed = finding(vault.catalog, found.id)
        assert closed is not None
        return closed

    @_locked
    def open_summary(self) -> tuple[int, str | None]:
        """How many continuity findings wait to be explained, and the oldest one's id, for status
        (a number and an id, no detail; findings naming items the caller may not see left out)."""
        self.vault.authorize("status")
        waiting = self.vault.cases.visible_records(
            findings(self.vault.catalog, True, None, None), finding_items
        )
        return len(waiting), (waiting[0].finding_id if waiting else None)

    @_locked
    def findings(
        self, open_only: bool = False, serial: str | None = None, item: Item | None = None
    ) -> list[ContinuityFinding]:
        """Continuity findings, oldest first: only open ones, one recorder's, or those touching ``item``
        (an item the caller could resolve, so may see; the rest needs 'report')."""
        if item is None:
            self.vault.authorize("report")
        found = findings(self.vault.catalog, open_only, serial, item.number if item else None)
        return self.vault.cases.visible_records(found, finding_items)


def format_gap_id(number: int) -> str:
    return f"GAP-{number:06d}"


def parse_gap_id(text: str) -> int | None:
    """Return the number in "GAP-000012" (or "12"); None when it is not one."""
    digits = text.strip().upper().removeprefix("GAP-")
    return int(digits) if digits.isdigit() and int(digits) > 0 else None


def recording_segments(catalog: Catalog, serial: str, since: str, until: str) -> list[dict]:
    """Return a recorder's recordings (video or audio) starting in [since, until]: item, start, end,
    session, path.

    Items a later item superseded (the recorder changed the file) are left
    out; the end is the recorded end, else start plus ffprobe's duration.
    """
    rows = catalog.db.query(
        """
        SELECT i.id AS item, i.recorded_start AS start, i.recorded_end AS end_time,
               i.dock_session AS session, i.source_path AS path, i.credited_officer AS officer,
               m.facts AS facts
        FROM items i LEFT JOIN media m ON m.item = i.id
        WHERE i.recorder_serial = ? AND i.recorded_start BETWEEN ? AND ?
          AND NOT EXISTS (SELECT 1 FROM items later WHERE later.previous_item = i.id)
        ORDER BY i.recorded_start, i.id
        """,
        [serial, since, until],
    )
    segments = []
    for row in rows:
        facts = json.loads(row.pop("facts")) if row.get("facts") else {}
        # Continuity is about recordings: video or audio segments. A photo, a document, a file that
        # is no media, or one whose media job has not read it yet is not a segment (a job not yet
        # run analyses its item again when it ends).
        if facts.get("photo") or not (facts.get("video_codec") or facts.get("audio_codec")):
            continue
        row["duration"] = facts.get("duration")
        segments.append(row)
    return segments


def segments_awaiting_media(catalog: Catalog, serial: str, since: str, until: str) -> int:
    """Count a recorder's items starting in [since, until] whose media job is still to run.

    Until their media is read nobody knows whether they are segments; an
    analysis made before would record findings their facts then withdraw.
    """
    rows = catalog.db.query(
        """
        SELECT COUNT(*) AS waiting FROM items i JOIN jobs j ON j.item = i.id AND j.kind = 'media'
        WHERE i.recorder_serial = ? AND i.recorded_start BETWEEN ? AND ?
          AND j.state IN ('queued', 'running')
        """,
        [serial, since, until],
    )
    return next(iter(rows))["waiting"]


def upsert_finding(catalog: Catalog, finding: dict, at: str) -> int | None:
    """Record a finding unless it is already known; return its id when it is new."""
    cursor = catalog.db.execute(
        "INSERT INTO continuity (kind, recorder_serial, officer, before_item, after_item, seconds, found_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, before_item, after_item) DO NOTHING",
        [
            finding["kind"],
            finding["recorder_serial"],
            finding["officer"],
            finding["before_item"],
            finding["after_item"],
            finding["seconds"],
            at,
        ],
    )
    return cursor.lastrowid if cursor.rowcount else None


def open_findings_between(catalog: Catalog, serial: str, items: list[int]) -> list[ContinuityFinding]:
    """Open findings of a recorder whose two items are both among ``items``."""
    if not items:
        return []
    marks = ",".join("?" * len(items))
    rows = catalog.db.query(
        f"SELECT * FROM continuity WHERE recorder_serial = ? AND state = 'open' "
        f"AND before_item IN ({marks}) AND after_item IN ({marks})",
        [serial, *items, *items],
    )
    return [ContinuityFinding(**row) for row in rows]


def close_finding(catalog: Catalog, number: int, state: str, at: str, actor: str, reason: str) -> None:
    catalog.db.execute(
        "UPDATE continuity SET state = ?, closed_at = ?, closed_by = ?, reason = ? WHERE id = ?",
        [state, at, actor, reason, number],
    )


def finding(catalog: Catalog, number: int) -> ContinuityFinding | None:
    rows = list(catalog.db.query("SELECT * FROM continuity WHERE id = ?", [number]))
    return ContinuityFinding(**rows[0]) if rows else None


def findings(
    catalog: Catalog, open_only: bool = False, serial: str | None = None, item: int | None = None
) -> list[ContinuityFinding]:
    where, params = [], []
    if open_only:
        where.append("state = 'open'")
    if serial:
        where.append("recorder_serial = ?")
        params.append(serial)
    if item is not None:
        where.append("(before_item = ? OR after_item = ?)")
        params += [item, item]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = catalog.db.query(f"SELECT * FROM continuity {clause} ORDER BY id", params)
    return [ContinuityFinding(**row) for row in rows]
