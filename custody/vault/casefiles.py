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
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from custody.config_cases import DocumentType
from custody.errors import Said, UsageError
from custody.rules import (
    ARCHIVE_DAYS,
    PARTY_KINDS,
    PENALTY_CATEGORY,
    PENALTY_DECISION,
    PROCEDURES,
    REQUIRED_DOCUMENTS,
    SERVICE_PROOFS,
    STAGE_KEYS,
)
from custody.vault import access, case_access, findings, holdings, registry, tagging
from custody.vault.case_archive import CaseArchiving
from custody.vault.case_tables import (  # noqa: F401  (the records and errors of case work, here too)
    ARCHIVE_SOURCE,
    NEAR_DAYS,
    CaseArchived,
    CaseExists,
    CaseIncomplete,
    CaseNotFound,
    CaseRecord,
    DocumentRecord,
    NotADocument,
    add_stage,
    all_cases,
    archived_case_of,
    archives_of,
    case_footage,
    case_row,
    document_row,
    documents_of,
    latest_archive,
    local_date,
    parse_day,
    stage_history,
    stage_ordered,
    today,
)
from custody.vault.catalog import Catalog, Item
from custody.vault.items import checked_reason
from custody.vault.service import VaultService, locked
from custody.vault.supervision import supervised_badges
from custody.vault.timestamps import utc_now

if TYPE_CHECKING:
    from custody.vault.vault import Change


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


class CaseFiles(CaseArchiving, VaultService):
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
                raise UsageError(
                    reason=Said("--party-kind must be one of {known}", known=", ".join(PARTY_KINDS))
                )
            if procedure not in PROCEDURES:
                raise UsageError(
                    reason=Said("--procedure must be one of {known}", known=", ".join(PROCEDURES))
                )
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
                    vault.refuse("see", f"case {case}", "not visible to this caller")
                raise CaseNotFound(case=case)
            return found

    def _case(self, case: str) -> CaseRecord:
        found = case_row(self.vault.catalog, case)
        if found is None:
            raise CaseNotFound(case=case)
        return found

    @locked
    def may_see(self, case: CaseRecord) -> bool:
        """Whether the caller may see the case: as its footage (confidentiality, named staff), as
        one of its handlers, or as the supervisor of one of their units."""
        vault = self.vault
        if vault.caller.owner or vault.cases.sight().case(case.case_name):
            return True
        if {access.OFFICER, access.SUPERVISOR} & set(vault.caller.roles):
            badges = case_access.badges_of(vault.catalog, vault.caller.name) | supervised_badges(
                vault.catalog, vault.settings, vault.caller
            )
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
                raise UsageError(
                    reason=Said(
                        "no stage {stage!r}: use one of {known}", stage=stage, known=", ".join(STAGE_KEYS)
                    )
                )
            if found.archived_at:
                raise CaseArchived(case=case, what="its stage no longer moves")
            if stage == found.stage:
                raise UsageError(reason=Said("case {case} is at {stage} already", case=case, stage=stage))
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
                    reason=Said(
                        "case {case}'s filing was approved already, by {filing_approved_by}",
                        case=case,
                        filing_approved_by=found.filing_approved_by,
                    )
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
                reason=Said(
                    "no document type {name!r}: see 'custody case types' (or add it under [cases.document_types])",
                    name=name,
                )
            )
        return types[name]

    def check_filing(self, case: str, facts: DocumentFacts) -> None:
        """Refuse a filing that cannot be done (before any file is sent): the case, the type, the
        stage, the date, the people."""
        self.vault.authorize("casework", f"case {case}")
        self.case(case)
        kind = self.document_type(facts.doc_type)
        if facts.stage is not None and facts.stage not in STAGE_KEYS:
            raise UsageError(
                reason=Said(
                    "no stage {stage!r}: use one of {known}", stage=facts.stage, known=", ".join(STAGE_KEYS)
                )
            )
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
                        reason=Said(
                            "{item_id} is already a {doc_type} of case {case_name}",
                            item_id=item.item_id,
                            doc_type=other.doc_type,
                            case_name=other.case_name,
                        )
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
                            "title": facts.title.strip(),
                            "pages": facts.pages,
                            "people": list(facts.people),
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
                    self._footage_becomes_evidence(
                        change,
                        found,
                        reason=Said("{penalty_decision} filed", penalty_decision=PENALTY_DECISION),
                    )
            return [self._document(item.number) for item in items]

    def _check_case_tag(self, item: Item, case: str) -> None:
        tagged = item.tags.get("case")
        if tagged and tagged != case:
            raise UsageError(
                reason=Said(
                    "{item_id} is tagged with case {tagged}, not {case}: retag it first",
                    item_id=item.item_id,
                    tagged=tagged,
                    case=case,
                )
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
            document, found = self._resolve_document(document_ref)
            footage = vault.resolve_all(footage_refs)
            for item in footage:
                if item.number == document.item or document_row(vault.catalog, item.number):
                    raise UsageError(
                        reason=Said(
                            "{item_id} is a written record: link footage to a record", item_id=item.item_id
                        )
                    )
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
                    self._footage_becomes_evidence(
                        change,
                        found,
                        reason=Said("{penalty_decision} filed", penalty_decision=PENALTY_DECISION),
                    )
            return self._document(document.item)

    def explain_missing(self, document_ref: str, reason: str) -> DocumentRecord:
        """Say why a record that needs an audio-visual record has none (e.g. state secrets);
        closes its finding (audited). Raise NotADocument, UsageError when none is needed or it is
        explained already."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("explain", document_ref)
            document, _case = self._resolve_document(document_ref)
            if not self._needs_recording(document):
                raise UsageError(
                    reason=Said("a {doc_type} needs no audio-visual record", doc_type=document.doc_type)
                )
            if document.exemption:
                raise UsageError(
                    reason=Said(
                        "{document_id}'s missing recording was explained already",
                        document_id=document.document_id,
                    )
                )
            reason = checked_reason(reason, "why there is no audio-visual record of the act")
            with vault.change() as change:
                seq = change.record(
                    "recording-missing-explained",
                    document.item,
                    {"case": document.case_name, "document": document.document_id, "reason": reason},
                )
                change.catalog.db.execute(
                    "INSERT INTO recording_exemptions VALUES (?, ?, ?, ?, ?)",
                    [document.item, reason, change.at, vault.actor, seq],
                )
            return self._document(document.item)

    def _resolve_document(self, ref: str) -> tuple[DocumentRecord, CaseRecord]:
        """The written record ``ref`` names and its case (both visible to the caller); raise
        Vault.ItemNotFound, NotADocument, CaseNotFound."""
        item = self.vault.resolve(ref)
        document = document_row(self.vault.catalog, item.number)
        if document is None:
            raise NotADocument(ref=ref)
        return document, self.case(document.case_name)

    def _needs_recording(self, document: DocumentRecord) -> bool:
        kind = self.vault.settings.cases.document_types.get(document.doc_type)
        return bool(kind and kind.recording)

    def _document(self, number: int) -> DocumentRecord:
        found = document_row(self.vault.catalog, number)
        assert found is not None
        return found

    def document_of(self, item: Item) -> DocumentRecord | None:
        """The written record an item is, if it is one (the caller could resolve the item)."""
        with self.vault.serialized():
            return document_row(self.vault.catalog, item.number)

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
