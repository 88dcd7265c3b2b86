"""Case files (案卷): a case through the rule's stages, its written records and its footage, the
duties the rule watches, and the archived, signed file.

:class:`CaseFiles` is the service (``vault.casefiles``). A case has a number, a cause, a party,
its handling officers, a procedure and a stage; an urgent case may start before its filing is
approved, within 24 hours (art. 6). Written records are items like footage (sealed, hashed, read
back, replicated, kept) with a document row: a type from the catalogue ([cases] in the config),
a stage, a date, pages and the people named on it. A record of an act the rule says must be
filmed (art. 11, 12, 18(4)) is an open "recording missing" finding until footage is linked to it
or its absence is explained. Closing a case sets its archive deadline (the end of the action plus
30 days, art. 22); archiving checks the file is complete, then seals its cover and index (JSON,
signed with the vault's key, and a PDF) into the vault as items. An archived file is frozen:
later records are supplements that make a new, linked version.

Every change goes through ``vault.change()`` (locked, one transaction, audited).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from custody.config import DocumentType
from custody.errors import CustodyError, UsageError
from custody.rules import (
    ARCHIVE_DAYS,
    FILING_APPROVAL_HOURS,
    PARTY_KINDS,
    PENALTY_CATEGORY,
    PENALTY_DECISION,
    PROCEDURES,
    REQUIRED_DOCUMENTS,
    SERVICE_PROOFS,
    STAGE_KEYS,
)
from custody.vault import access, case_access, findings, holdings, registry, tagging
from custody.vault.audit import canonical_json
from custody.vault.catalog import Catalog, Item
from custody.vault.items import checked_reason, format_item_id
from custody.vault.service import VaultService
from custody.vault.timestamps import from_text, to_text, utc_now

if TYPE_CHECKING:
    from custody.vault.vault import Change

RECORD_FORMAT = "custody-case-file/1"
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


@dataclass(frozen=True)
class DocumentFacts:
    """What a clerk says of the written records being filed."""

    doc_type: str
    stage: str | None = None  # None: the type's stage
    dated: str | None = None  # YYYY-MM-DD; None: today
    title: str = ""
    pages: int | None = None
    people: tuple[str, ...] = ()


@dataclass
class Gaps:
    """What keeps a case file from being complete, one line each."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


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
        raise UsageError(reason=f"{option} {value!r} is not a date: use YYYY-MM-DD") from None


class CaseFiles(VaultService):
    """Cases, their written records and links, the duties watched, and archived files
    (``vault.casefiles``)."""

    # -- the case ---------------------------------------------------------------------------

    def open_case(
        self,
        case: str,
        cause: str,
        party: str,
        handlers: list[str],
        party_kind: str = "person",
        procedure: str = "general",
        urgent: bool = False,
        started: str | None = None,
    ) -> CaseRecord:
        """Open a case (or complete one that so far was only a tag); return it.

        Raise UsageError for a bad value, Vault.OfficerNotFound for a handler not registered,
        CaseExists when it is open already.
        """
        vault = self.vault
        with vault.serialized():
            vault.authorize("casework", f"case {case}")
            tagging.check_tag_value("case", case)
            registry.check_registry_text("case number", case, required=True)
            registry.check_registry_text("--cause", cause, required=True)
            registry.check_registry_text("--party", party, required=True)
            tagging.check_tag_value("party", party)
            if party_kind not in PARTY_KINDS:
                raise UsageError(reason=f"--party-kind must be one of {', '.join(PARTY_KINDS)}")
            if procedure not in PROCEDURES:
                raise UsageError(reason=f"--procedure must be one of {', '.join(PROCEDURES)}")
            if not handlers:
                raise UsageError(reason="name at least one --handler (the officers handling the case)")
            for badge in handlers:
                if registry.officer(vault.catalog, badge) is None:
                    raise registry.OfficerNotFound(badge=badge, hint=" (register the handler first)")
            existing = case_row(vault.catalog, case)
            if existing is not None and not existing.from_tags:
                raise CaseExists(case=case, opened_at=existing.opened_at, opened_by=existing.opened_by)
            with vault.change() as change:
                started_at = started or change.at
                details = {
                    "case": case,
                    "cause": cause,
                    "party": party,
                    "party_kind": party_kind,
                    "procedure": procedure,
                    "urgent": urgent,
                    "started_at": started_at,
                    "handlers": list(dict.fromkeys(handlers)),
                }
                seq = change.record("case-opened", None, details)
                db = change.catalog.db
                if existing is None:
                    db.execute(
                        "INSERT INTO cases (case_name, opened_at, opened_by) VALUES (?, ?, ?)",
                        [case, change.at, vault.actor],
                    )
                    add_stage(change.catalog, case, "initiation", change.at, vault.actor, None, seq)
                db.execute(
                    "UPDATE cases SET cause = ?, party = ?, party_kind = ?, procedure = ?, urgent = ?, "
                    "started_at = ?, from_tags = 0 WHERE case_name = ?",
                    [cause, party, party_kind, procedure, int(urgent), started_at, case],
                )
                for badge in dict.fromkeys(handlers):
                    db.execute("INSERT OR IGNORE INTO case_handlers VALUES (?, ?)", [case, badge])
            return self._case(case)

    def case(self, case: str) -> CaseRecord:
        """The case, when the caller may see it; raise CaseNotFound otherwise (a case the caller
        may not see is not there, and the attempt is recorded)."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("ls", f"case {case}")
            found = case_row(vault.catalog, case)
            if found is None:
                raise CaseNotFound(case=case)
            if not self.may_see(found):
                with contextlib.suppress(vault.AccessDenied):
                    vault._deny("see", f"case {case}", "not visible to this caller")
                raise CaseNotFound(case=case)
            return found

    def _case(self, case: str) -> CaseRecord:
        found = case_row(self.vault.catalog, case)
        if found is None:
            raise CaseNotFound(case=case)
        return found

    def may_see(self, case: CaseRecord) -> bool:
        """Whether the caller may see the case: as its footage (confidentiality, named staff), or as
        one of its handlers."""
        vault = self.vault
        if vault.caller.owner or vault.cases.sight().case(case.case_name):
            return True
        if access.OFFICER in vault.caller.roles:
            badges = case_access.badges_of(vault.catalog, vault.caller.name)
            level = case_access.case_levels(vault.catalog).get(case.case_name, access.NORMAL)
            return level == access.NORMAL and bool(badges & set(case.handlers))
        return False

    def listed(self, include_archived: bool = True) -> list[CaseRecord]:
        """The cases the caller may see, by number."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("ls", "cases")
            rows = all_cases(vault.catalog)
            return [c for c in rows if self.may_see(c) and (include_archived or not c.archived_at)]

    def move(self, case: str, stage: str, reason: str | None = None) -> CaseRecord:
        """Move a case to ``stage``; moving back needs a reason (audited).

        Raise UsageError for an unknown stage, a move back without a reason or a move to where it
        is; CaseArchived once it is archived (a supplement re-archives it).
        """
        vault = self.vault
        with vault.serialized():
            vault.authorize("casework", f"case {case}")
            found = self.case(case)
            if stage not in STAGE_KEYS:
                raise UsageError(reason=f"no stage {stage!r}: use one of {', '.join(STAGE_KEYS)}")
            if found.archived_at:
                raise CaseArchived(case=case, what="its stage no longer moves")
            if stage == found.stage:
                raise UsageError(reason=f"case {case} is at {stage} already")
            back = STAGE_KEYS.index(stage) < STAGE_KEYS.index(found.stage)
            if back:
                reason = checked_reason(reason or "", "why the case moves back")
            with vault.change() as change:
                seq = change.record(
                    "case-stage", None, {"case": case, "from": found.stage, "to": stage, "reason": reason}
                )
                add_stage(change.catalog, case, stage, change.at, vault.actor, reason, seq)
            return self._case(case)

    def approve_filing(self, case: str, by: str, at: str) -> CaseRecord:
        """Record the principal leader's approval of the filing (立案审批) by ``by`` at ``at``.

        Raise UsageError when it is recorded already, or ``at`` is in the future.
        """
        vault = self.vault
        with vault.serialized():
            vault.authorize("casework", f"case {case}")
            found = self.case(case)
            registry.check_registry_text("--by", by, required=True)
            if found.filing_approved_at:
                raise UsageError(
                    reason=f"case {case}'s filing was approved already, by {found.filing_approved_by}"
                )
            if at > utc_now():
                raise UsageError(reason="--at is in the future")
            with vault.change() as change:
                change.record(
                    "case-filing-approved",
                    None,
                    {
                        "case": case,
                        "by": by,
                        "at": at,
                        "due": found.filing_due,
                        "late": at > (found.filing_due or at),
                    },
                )
                change.catalog.db.execute(
                    "UPDATE cases SET filing_approved_by = ?, filing_approved_at = ? WHERE case_name = ?",
                    [by, at, case],
                )
            return self._case(case)

    def close(self, case: str, ended: str) -> CaseRecord:
        """Record the end of the enforcement action (a date): the file is due ``ended`` + 30 days;
        the case moves to the archive stage. Raise UsageError for a date in the future."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("casework", f"case {case}")
            found = self.case(case)
            ended_on = date.fromisoformat(ended)
            if ended_on > today():
                raise UsageError(reason="--ended is in the future: close a case once its action has ended")
            if found.archived_at:
                raise CaseArchived(case=case, what="it was closed before it was archived")
            due = (ended_on + timedelta(days=ARCHIVE_DAYS)).isoformat()
            with vault.change() as change:
                seq = change.record("case-closed", None, {"case": case, "ended": ended, "archive_due": due})
                change.catalog.db.execute(
                    "UPDATE cases SET ended_on = ?, archive_due = ?, closed_at = ? WHERE case_name = ?",
                    [ended, due, change.at, case],
                )
                if found.stage != "archive":
                    add_stage(change.catalog, case, "archive", change.at, vault.actor, None, seq)
            return self._case(case)

    # -- written records and links -------------------------------------------------------------

    def document_type(self, name: str) -> DocumentType:
        types = self.vault.settings.cases.document_types
        if name not in types:
            raise UsageError(
                reason=f"no document type {name!r}: see 'custody case types' (or add it under [cases.document_types])"
            )
        return types[name]

    def check_filing(self, case: str, facts: DocumentFacts) -> None:
        """Refuse a filing that cannot be done (before any file is sent): the case, the type, the
        stage, the date, the people."""
        self.vault.authorize("casework", f"case {case}")
        self.case(case)
        kind = self.document_type(facts.doc_type)
        if facts.stage is not None and facts.stage not in STAGE_KEYS:
            raise UsageError(reason=f"no stage {facts.stage!r}: use one of {', '.join(STAGE_KEYS)}")
        if facts.dated is not None:
            parse_day(facts.dated, "--date")
        if facts.pages is not None and not 1 <= facts.pages <= 100_000:
            raise UsageError(reason="--pages must be 1 to 100000")
        for person in facts.people:
            registry.check_registry_text("--person", person, required=True)
        registry.check_registry_text("--title", facts.title, required=False)
        del kind

    def file_documents(self, case: str, refs: list[str], facts: DocumentFacts) -> list[DocumentRecord]:
        """Make sealed items written records of a case (audited each): tagged with the case, its
        party and first handler where untagged. A penalty decision makes the case's footage
        permanent evidence (art. 24). Filed after the case was archived, a record is a supplement
        (补充归档) to the newest version. Raise UsageError, CaseNotFound, Vault.ItemNotFound, and
        UsageError when an item is already a record of another case or is footage linked as one.
        """
        vault = self.vault
        with vault.serialized():
            self.check_filing(case, facts)
            found = self.case(case)
            kind = self.document_type(facts.doc_type)
            stage = facts.stage or kind.stage
            dated = parse_day(facts.dated, "--date") if facts.dated else today().isoformat()
            items = vault.resolve_all(refs)
            for item in items:
                other = document_row(vault.catalog, item.number)
                if other is not None:
                    raise UsageError(
                        reason=f"{item.item_id} is already a {other.doc_type} of case {other.case_name}"
                    )
                self._check_case_tag(item, case)
            archive = latest_archive(vault.catalog, case)
            with vault.change() as change:
                for item in items:
                    seq = change.record(
                        "case-document-filed" if archive is None else "case-supplement-filed",
                        item.number,
                        {
                            "case": case,
                            "type": kind.name,
                            "stage": stage,
                            "date": dated,
                            "supplement_to_version": archive["version"] if archive else None,
                        },
                    )
                    change.catalog.db.execute(
                        "INSERT INTO documents (item, case_name, doc_type, stage, dated, title, pages, "
                        "people, supplement_to, filed_at, filed_by, audit_seq) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            item.number, case, kind.name, stage, dated, facts.title.strip(), facts.pages,
                            json.dumps(list(facts.people), ensure_ascii=False),
                            archive["version"] if archive else None, change.at, vault.actor, seq,
                        ],
                    )  # fmt: skip
                    self._join_case(change, item, found)
                if kind.name == PENALTY_DECISION:
                    self._footage_becomes_evidence(change, found, reason=f"{PENALTY_DECISION} filed")
            return [self._document(item.number) for item in items]

    def _check_case_tag(self, item: Item, case: str) -> None:
        tagged = item.tags.get("case")
        if tagged and tagged != case:
            raise UsageError(
                reason=f"{item.item_id} is tagged with case {tagged}, not {case}: retag it first"
            )

    def _join_case(self, change: Change, item: Item, case: CaseRecord) -> None:
        """Tag an item with the case, and with its party and first handler where it has none."""
        values = {"case": case.case_name}
        if not item.tags.get("party") and case.party:
            values["party"] = case.party
        if not item.tags.get("officer") and not item.credited_officer and case.handlers:
            values["officer"] = case.handlers[0]
        self.vault.tags.tag_in_change(change, item, values)

    def link(self, document_ref: str, footage_refs: list[str]) -> DocumentRecord:
        """Link footage to a written record as the recording of its act (audited); the footage
        joins the record's case. Raise NotADocument, UsageError for footage of another case or a
        record linked to itself."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("casework", document_ref)
            document_item = vault.resolve(document_ref)
            document = document_row(vault.catalog, document_item.number)
            if document is None:
                raise NotADocument(ref=document_ref)
            found = self.case(document.case_name)
            footage = vault.resolve_all(footage_refs)
            for item in footage:
                if item.number == document.item or document_row(vault.catalog, item.number):
                    raise UsageError(reason=f"{item.item_id} is a written record: link footage to a record")
                self._check_case_tag(item, found.case_name)
            with vault.change() as change:
                for item in footage:
                    cursor = change.catalog.db.execute(
                        "INSERT OR IGNORE INTO case_links (document, footage, linked_at, linked_by, audit_seq) "
                        "VALUES (?, ?, ?, ?, 0)",
                        [document.item, item.number, change.at, vault.actor],
                    )
                    if not cursor.rowcount:
                        continue
                    seq = change.record(
                        "case-linked",
                        item.number,
                        {
                            "case": found.case_name,
                            "document": document.document_id,
                            "type": document.doc_type,
                        },
                    )
                    change.catalog.db.execute(
                        "UPDATE case_links SET audit_seq = ? WHERE document = ? AND footage = ?",
                        [seq, document.item, item.number],
                    )
                    self._join_case(change, item, found)
                if document_row(change.catalog, document.item) and self._has_penalty_decision(
                    change.catalog, found
                ):
                    self._footage_becomes_evidence(change, found, reason=f"{PENALTY_DECISION} filed")
            return self._document(document.item)

    def explain_missing(self, document_ref: str, reason: str) -> DocumentRecord:
        """Say why a record that needs an audio-visual record has none (e.g. state secrets);
        closes its finding (audited). Raise NotADocument, UsageError when none is needed or it is
        explained already."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("explain", document_ref)
            item = vault.resolve(document_ref)
            document = document_row(vault.catalog, item.number)
            if document is None:
                raise NotADocument(ref=document_ref)
            self.case(document.case_name)
            if not self._needs_recording(document):
                raise UsageError(reason=f"a {document.doc_type} needs no audio-visual record")
            if document.exemption:
                raise UsageError(reason=f"{document.document_id}'s missing recording was explained already")
            reason = checked_reason(reason, "why there is no audio-visual record of the act")
            with vault.change() as change:
                seq = change.record(
                    "recording-missing-explained",
                    item.number,
                    {"case": document.case_name, "document": document.document_id, "reason": reason},
                )
                change.catalog.db.execute(
                    "INSERT INTO recording_exemptions VALUES (?, ?, ?, ?, ?)",
                    [item.number, reason, change.at, vault.actor, seq],
                )
            return self._document(item.number)

    def _needs_recording(self, document: DocumentRecord) -> bool:
        kind = self.vault.settings.cases.document_types.get(document.doc_type)
        return bool(kind and kind.recording)

    def _document(self, number: int) -> DocumentRecord:
        found = document_row(self.vault.catalog, number)
        assert found is not None
        return found

    def documents(self, case: str) -> list[DocumentRecord]:
        """A case's written records in the rule's stage order, then by date."""
        with self.vault.serialized():
            self.case(case)
            return stage_ordered(documents_of(self.vault.catalog, case))

    def footage(self, case: str) -> list[Item]:
        """The case's audio-visual records: items tagged with it that are not written records, and
        footage linked to its records."""
        with self.vault.serialized():
            return case_footage(self.vault.catalog, case)

    # -- the duties watched --------------------------------------------------------------------

    def missing_recordings(self, case: str | None = None, open_only: bool = True) -> list[dict]:
        """Records of acts that must be filmed without linked footage: findings, open until footage
        is linked or the absence is explained."""
        vault = self.vault
        with vault.serialized():
            cases = [self.case(case)] if case else self.listed()
            found = []
            for each in cases:
                for document in documents_of(vault.catalog, each.case_name):
                    if not self._needs_recording(document):
                        continue
                    state = "linked" if document.linked else "explained" if document.exemption else "open"
                    if open_only and state != "open":
                        continue
                    found.append(
                        {
                            "finding": f"MISSING-{document.document_id}",
                            "case": each.case_name,
                            "document": document.document_id,
                            "type": document.doc_type,
                            "date": document.dated,
                            "state": state,
                            "handlers": list(each.handlers),
                            "reason": document.exemption,
                        }
                    )
            return found

    def interruptions(self, case: str) -> list[findings.ContinuityFinding]:
        """Continuity findings between segments of the case's footage (art. 14)."""
        vault = self.vault
        with vault.serialized():
            numbers = {item.number for item in case_footage(vault.catalog, case)}
            return [
                f
                for f in findings.findings(vault.catalog)
                if f.before_item in numbers or f.after_item in numbers
            ]

    def gaps(self, case: str) -> list[str]:
        """What keeps the case file from being complete, each gap one line (none: complete)."""
        vault = self.vault
        with vault.serialized():
            found = self.case(case)
            documents = documents_of(vault.catalog, case)
            types = {d.doc_type for d in documents}
            gaps = Gaps()
            if not found.cause or not found.party:
                gaps.add("the case has no cause or party: complete it with 'custody case open'")
            for required in REQUIRED_DOCUMENTS.get(found.procedure, ()):
                if required not in types:
                    gaps.add(f"no {required} ({vault.settings.cases.document_types[required].english})")
            if found.procedure == "general" and not found.filing_approved_at:
                gaps.add("the filing approval (立案审批) is not recorded")
            if PENALTY_DECISION in types and not types & set(SERVICE_PROOFS):
                gaps.add(f"the decision has no proof of service ({', '.join(SERVICE_PROOFS)})")
            if not found.ended_on:
                gaps.add("the case is not closed: 'custody case close --ended DATE'")
            for missing in self.missing_recordings(case):
                gaps.add(
                    f"{missing['document']} ({missing['type']}) has no linked recording and no explanation"
                )
            for interruption in self.interruptions(case):
                if interruption.state == "open":
                    gaps.add(f"interruption {interruption.finding_id} is not explained")
            for item in [*case_footage(vault.catalog, case), *self._document_items(documents)]:
                absent = [name for name in ("case", "party", "officer") if not item.tags.get(name)]
                if "officer" in absent and item.credited_officer:
                    absent.remove("officer")
                if absent:
                    gaps.add(f"{item.item_id} has no {', '.join(absent)} tag")
            return gaps.lines

    def _document_items(self, documents: list[DocumentRecord]) -> list[Item]:
        return self.vault.catalog.items_by_ids([d.item for d in documents])

    def _has_penalty_decision(self, catalog: Catalog, case: CaseRecord) -> bool:
        return any(d.doc_type == PENALTY_DECISION for d in documents_of(catalog, case.case_name))

    def _footage_becomes_evidence(self, change: Change, case: CaseRecord, reason: str) -> None:
        """Give the case's footage the penalty-evidence category (kept for ever), audited per item."""
        for item in case_footage(change.catalog, case.case_name):
            if PENALTY_CATEGORY in holdings.item_categories(change.catalog, item.number):
                continue
            seq = change.record(
                "category-added",
                item.number,
                {"categories": [PENALTY_CATEGORY], "case": case.case_name, "why": reason},
            )
            holdings.add_item_category(
                change.catalog, item.number, PENALTY_CATEGORY, change.at, self.vault.actor, seq
            )

    # -- the archived file ---------------------------------------------------------------------

    def archive(self, case: str, force: bool = False, reason: str | None = None) -> dict:
        """Seal the case file: check it is complete (refuse naming each gap, CaseIncomplete, unless
        ``force`` with a ``reason``: the gaps are recorded), then seal its cover and index, as
        signed JSON and as a PDF, into the vault; a case archived before gets a new version linked
        to the one before. Return the archive's record."""
        from custody.vault.casefile_pdf import render_case_file

        vault = self.vault
        vault.authorize("casework", f"case {case}")
        vault.authorize("ingest", f"case {case}")
        with vault.serialized():
            found = self.case(case)
            gaps = self.gaps(case)
            if gaps and not force:
                raise CaseIncomplete(case=case, gaps="; ".join(gaps))
            if force:
                reason = checked_reason(reason or "", "why the case is archived with gaps")
            previous = latest_archive(vault.catalog, case)
            if previous is not None and not self._changed_since(case, previous):
                raise CaseArchived(
                    case=case, what=f"version {previous['version']} holds every record already"
                )
            record = self._record(found, previous, gaps, reason)
        data = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True).encode()
        pdf = render_case_file(record, vault.settings.export.pdf_font)
        version = record["version"]
        tags = {"case": case, "party": found.party}
        if found.handlers:
            tags["officer"] = found.handlers[0]
        stored_record = self._seal(data, f"{case}-case-file-v{version}.json", tags)
        stored_pdf = self._seal(pdf, f"{case}-case-file-v{version}.pdf", tags)
        with vault.serialized(), vault.change() as change:
            seq = change.record(
                "case-archived",
                None,
                {
                    "case": case,
                    "version": version,
                    "record": stored_record.item_id,
                    "record_sha256": stored_record.sha256,
                    "pdf": stored_pdf.item_id,
                    "pdf_sha256": stored_pdf.sha256,
                    "gaps": gaps,
                    "forced_because": reason if force else None,
                },
            )
            change.catalog.db.execute(
                "INSERT INTO case_archives (case_name, version, record_item, pdf_item, previous, gaps, "
                "archived_at, archived_by, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    case, version, stored_record.number, stored_pdf.number,
                    previous["id"] if previous else None, json.dumps(gaps, ensure_ascii=False),
                    change.at, vault.actor, seq,
                ],
            )  # fmt: skip
            if self._has_penalty_decision(change.catalog, found):
                for item in (stored_record, stored_pdf):
                    event = change.record(
                        "category-added", item.number, {"categories": [PENALTY_CATEGORY], "case": case}
                    )
                    holdings.add_item_category(
                        change.catalog, item.number, PENALTY_CATEGORY, change.at, vault.actor, event
                    )
            change.catalog.db.execute(
                "UPDATE cases SET archived_at = coalesce(archived_at, ?), stage = 'archive' WHERE case_name = ?",
                [change.at, case],
            )
            if self._has_penalty_decision(change.catalog, found):
                self._footage_becomes_evidence(change, found, reason="case archived with a penalty decision")
        return {**self.archives(case)[-1], "content": record}

    def _changed_since(self, case: str, previous: dict) -> bool:
        catalog = self.vault.catalog
        newer_document = catalog.db.execute(
            "SELECT 1 FROM documents WHERE case_name = ? AND filed_at > ? LIMIT 1",
            [case, previous["archived_at"]],
        ).fetchone()
        newer_link = catalog.db.execute(
            "SELECT 1 FROM case_links l JOIN documents d ON d.item = l.document "
            "WHERE d.case_name = ? AND l.linked_at > ? LIMIT 1",
            [case, previous["archived_at"]],
        ).fetchone()
        return bool(newer_document or newer_link)

    def _seal(self, data: bytes, name: str, tags: dict[str, str]) -> Item:
        from custody.vault.intake import IngestRecord

        staged = self.vault.intake.stage(io.BytesIO(data), len(data))
        record = IngestRecord(
            original_name=name,
            source_path=f"case archive/{name}",
            source_path_bytes=f"case archive/{name}".encode(),
            source=ARCHIVE_SOURCE,
            tags=tags,
        )
        return self.vault.intake.store(staged, record)

    def _record(self, case: CaseRecord, previous: dict | None, gaps: list[str], reason: str | None) -> dict:
        """The archived file's cover and index, signed with the vault's key."""
        vault = self.vault
        catalog = vault.catalog
        types = vault.settings.cases.document_types
        documents = stage_ordered(documents_of(catalog, case.case_name))
        items = {item.number: item for item in catalog.items_by_ids([d.item for d in documents])}
        index = []
        for document in documents:
            kind = types.get(document.doc_type)
            index.append(
                {
                    "kind": "document",
                    "type": document.doc_type,
                    "type_english": kind.english if kind else "",
                    "title": document.title or items[document.item].original_name,
                    "date": document.dated,
                    "pages": document.pages,
                    "duration_seconds": None,
                    "stage": document.stage,
                    "item": document.document_id,
                    "sha256": items[document.item].sha256,
                    "size": items[document.item].size,
                    "recordings": [format_item_id(n) for n in document.linked],
                    "recording_exemption": document.exemption,
                    "supplement_to_version": document.supplement_to,
                }
            )
        # Each record is followed by the recordings of its act; footage linked to no record
        # comes after the investigation's records. (A stable sort by stage keeps that order.)
        footage = case_footage(catalog, case.case_name)
        by_number = {item.number: item for item in footage}
        rows, listed = [], set()
        for document, row in zip(documents, index, strict=True):
            rows.append(row)
            for number in document.linked:
                if number in by_number and number not in listed:
                    listed.add(number)
                    rows.append(_recording_row(by_number[number], document.stage))
        unlinked = sorted(
            (item for item in footage if item.number not in listed),
            key=lambda i: (i.recorded_start or i.ingested_at, i.number),
        )
        rows += [_recording_row(item, "investigation") for item in unlinked]
        index = sorted(rows, key=lambda row: STAGE_KEYS.index(row["stage"]))
        for number, row in enumerate(index, start=1):
            row["seq"] = number
        categories = sorted(
            {c for item in footage for c in holdings.item_categories(catalog, item.number)}
            | set(holdings.case_categories(catalog).get(case.case_name, frozenset()))
            | ({PENALTY_CATEGORY} if any(d.doc_type == PENALTY_DECISION for d in documents) else set())
        )
        permanent = [c for c in categories if vault.settings.retention.categories.get(c) == "permanent"]
        record = {
            "format": RECORD_FORMAT,
            "vault_id": vault.audit.vault_id,
            "agency": vault.settings.station.organisation,
            "version": previous["version"] + 1 if previous else 1,
            "previous": (
                {
                    "version": previous["version"],
                    "record": previous["record"],
                    "record_sha256": previous["record_sha256"],
                }
                if previous
                else None
            ),
            "archived_at": utc_now(),
            "archived_by": vault.actor,
            "cover": {
                "case": case.case_name,
                "cause": case.cause,
                "party": case.party,
                "party_kind": case.party_kind,
                "procedure": case.procedure,
                "urgent": case.urgent,
                "handlers": [
                    {"badge": badge, "name": officer_name(catalog, badge)} for badge in case.handlers
                ],
                "started_at": case.started_at,
                "opened_at": case.opened_at,
                "filing_approved_by": case.filing_approved_by,
                "filing_approved_at": case.filing_approved_at,
                "ended_on": case.ended_on,
                "archive_due": case.archive_due,
                "retention": "permanent" if permanent else "2y",
                "retention_categories": categories,
                "documents": sum(1 for row in index if row["kind"] == "document"),
                "recordings": sum(1 for row in index if row["kind"] == "recording"),
                "pages": sum(row["pages"] or 0 for row in index),
            },
            "index": index,
            "gaps": gaps,
            "forced_because": reason,
        }
        record["signature"] = {
            "algorithm": "ed25519",
            "over": "canonical JSON of this record without 'signature'",
            "value": vault.audit.sign(canonical_json(record)),
        }
        return record

    def archives(self, case: str) -> list[dict]:
        """The archived versions of a case, oldest first."""
        with self.vault.serialized():
            self.case(case)
            return archives_of(self.vault.catalog, case)

    def check_archives(self) -> tuple[int, list[str]]:
        """Check every archived case file (``verify``); return how many versions were checked and
        the problems: a record that cannot be read, whose signature no key the audit chain pins
        verifies, or whose index names an item whose hash is not the indexed one. (The records'
        own bytes are re-hashed with every object.)"""
        vault = self.vault
        problems: list[str] = []
        with vault.serialized():
            versions = [
                archive
                for (case,) in vault.catalog.db.execute("SELECT DISTINCT case_name FROM case_archives")
                for archive in archives_of(vault.catalog, case)
            ]
            pinned, _problems = vault.audit.pinned_keys()
        keys = [vault.audit.public_key, *(p.public_key for p in pinned if p.public_key is not None)]
        for version in versions:
            label = f"case {version['case']} archive version {version['version']} ({version['record']})"
            try:
                sink = io.BytesIO()
                vault.originals.read_verified(vault.item_number(version["record_number"]), sink)
                record = json.loads(sink.getvalue())
                signature = bytes.fromhex(record.pop("signature")["value"])
            except (CustodyError, ValueError, KeyError, TypeError, OSError) as exc:
                problems.append(f"{label}: its record cannot be read ({exc})")
                continue
            if not any(_signed_by(key, signature, canonical_json(record)) for key in keys):
                problems.append(f"{label}: its signature does not verify")
            with vault.serialized():
                for row in record.get("index", []):
                    item = vault.catalog.item_by_sha256(row.get("sha256", ""))
                    if item is None or item.item_id != row.get("item"):
                        problems.append(
                            f"{label}: {row.get('item')} is not in the vault with its indexed hash"
                        )
        return len(versions), problems


def _signed_by(key, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _recording_row(item: Item, stage: str) -> dict:
    """An audio-visual record's row in an archived file's index."""
    duration = None
    if item.recorded_start and item.recorded_end:
        duration = round((from_text(item.recorded_end) - from_text(item.recorded_start)).total_seconds())
    return {
        "kind": "recording",
        "type": "音像记录",
        "type_english": "audio-visual record",
        "title": item.original_name,
        "date": local_date(item.recorded_start or item.ingested_at).isoformat(),
        "pages": None,
        "duration_seconds": duration,
        "stage": stage,
        "item": item.item_id,
        "sha256": item.sha256,
        "size": item.size,
        "recordings": [],
        "recording_exemption": None,
        "supplement_to_version": None,
    }


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
        "SELECT a.*, r.sha256 AS record_sha256, p.sha256 AS pdf_sha256 FROM case_archives a "
        "JOIN items r ON r.id = a.record_item JOIN items p ON p.id = a.pdf_item "
        "WHERE a.case_name = ? ORDER BY a.version",
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
