"""The archived case file: its completeness checked, its cover and index made, signed with the
vault's key and sealed into the vault as items (JSON and PDF), versions linked; and its check by
``verify``. A mixin of the case-file service (custody.vault.casefiles.CaseFiles)."""

from __future__ import annotations

import io
import json

from custody.errors import CustodyError, Said
from custody.rules import PENALTY_CATEGORY, PENALTY_DECISION, STAGE_KEYS
from custody.vault import disposal_records, holdings
from custody.vault.audit import canonical_json
from custody.vault.case_tables import (
    ARCHIVE_SOURCE,
    CaseArchived,
    CaseIncomplete,
    CaseRecord,
    archives_of,
    case_footage,
    documents_of,
    latest_archive,
    local_date,
    officer_name,
    stage_ordered,
)
from custody.vault.catalog import Item
from custody.vault.items import checked_reason, format_item_id, parse_item_id
from custody.vault.timestamps import from_text, utc_now

RECORD_FORMAT = "custody-case-file/1"


class CaseArchiving:
    """Archiving a case file, and checking archived files (part of ``vault.casefiles``)."""

    def archive(self, case: str, force: bool = False, reason: str | None = None) -> dict:
        """Seal the case file: check it is complete (refuse naming each gap, CaseIncomplete, unless
        ``force`` with a ``reason``: the gaps are recorded), then seal its cover and index, as
        signed JSON and as a PDF, into the vault; a case archived before gets a new version linked
        to the one before. Return the archive's record."""
        from custody.vault.casefile_pdf import render_case_file
        from custody.vault.wording import Wording

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
                holds_all = Said("version {version} holds every record already", version=previous["version"])
                raise CaseArchived(case=case, what=holds_all)
            record = self._record(found, previous, gaps, reason)
        data = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True).encode()
        settings = vault.settings
        pdf = render_case_file(record, settings.export.pdf_font, Wording(settings.station.documents))
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
                "INSERT INTO case_archives (case_name, version, record_item, record_sha256, pdf_item, "
                "pdf_sha256, previous, gaps, archived_at, archived_by, audit_seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    case, version, stored_record.number, stored_record.sha256, stored_pdf.number,
                    stored_pdf.sha256,
                    previous["id"] if previous else None, json.dumps(gaps, ensure_ascii=False),
                    change.at, vault.actor, seq,
                ],
            )  # fmt: skip
            if self._has_penalty_decision(change.catalog, found):
                # The whole file of a penalty case is kept for ever: its index, and the written
                # records it lists beside the footage (an index must not outlive what it lists).
                documents = [d.item for d in documents_of(change.catalog, case)]
                for number in (stored_record.number, stored_pdf.number, *documents):
                    if PENALTY_CATEGORY in holdings.item_categories(change.catalog, number):
                        continue
                    event = change.record(
                        "category-added", number, {"categories": [PENALTY_CATEGORY], "case": case}
                    )
                    holdings.add_item_category(
                        change.catalog, number, PENALTY_CATEGORY, change.at, vault.actor, event
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
        documents = stage_ordered(documents_of(catalog, case.case_name))
        footage = case_footage(catalog, case.case_name)
        index = self._index(documents, footage)
        categories = sorted(
            {c for item in footage for c in holdings.item_categories(catalog, item.number)}
            | set(holdings.case_categories(catalog).get(case.case_name, frozenset()))
            | ({PENALTY_CATEGORY} if any(d.doc_type == PENALTY_DECISION for d in documents) else set())
        )
        permanent = [c for c in categories if vault.settings.retention.categories.get(c) == "permanent"]
        handlers = [{"badge": badge, "name": officer_name(catalog, badge)} for badge in case.handlers]
        record = {
            "format": RECORD_FORMAT,
            "vault_id": vault.audit.vault_id,
            "agency": vault.settings.station.organisation,
            "version": previous["version"] + 1 if previous else 1,
            "previous": (
                {key: previous[key] for key in ("version", "record", "record_sha256")} if previous else None
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
                "handlers": handlers,
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

    def _index(self, documents: list, footage: list[Item]) -> list[dict]:
        """The index rows in the rule's stage order: each record followed by the recordings of its
        act; footage linked to no record after the investigation's records."""
        types = self.vault.settings.cases.document_types
        items = {item.number: item for item in self.vault.catalog.items_by_ids([d.item for d in documents])}
        by_number = {item.number: item for item in footage}
        rows, listed = [], set()
        for document in documents:
            kind = types.get(document.doc_type)
            rows.append(
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
            for number in document.linked:
                if number in by_number and number not in listed:
                    listed.add(number)
                    rows.append(self._recording_row(by_number[number], document.stage))
        unlinked = sorted(
            (item for item in footage if item.number not in listed),
            key=lambda i: (i.recorded_start or i.ingested_at, i.number),
        )
        rows += [self._recording_row(item, "investigation") for item in unlinked]
        index = sorted(rows, key=lambda row: STAGE_KEYS.index(row["stage"]))  # (stable: keeps the rest)
        for number, row in enumerate(index, start=1):
            row["seq"] = number
        return index

    def _recording_row(self, item: Item, stage: str) -> dict:
        """An audio-visual record's row: its length from its recording window, else from its media."""
        if item.recorded_start and item.recorded_end:
            seconds = (from_text(item.recorded_end) - from_text(item.recorded_start)).total_seconds()
        else:
            seconds = (self.vault.media.facts(item) or {}).get("duration")
        return {
            "kind": "recording",
            "type": "音像记录",
            "type_english": "audio-visual record",
            "title": item.original_name,
            "date": local_date(item.recorded_start or item.ingested_at).isoformat(),
            "pages": None,
            "duration_seconds": round(seconds) if isinstance(seconds, int | float) else None,
            "stage": stage,
            "item": item.item_id,
            "sha256": item.sha256,
            "size": item.size,
            "recordings": [],
            "recording_exemption": None,
            "supplement_to_version": None,
        }

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
            record_item = vault.item_number(version["record_number"])
            if record_item is None or record_item.sha256 != version["record_sha256"]:
                with vault.serialized():
                    gone = disposal_records.tombstone(vault.catalog, version["record_number"])
                if gone is None:
                    problems.append(f"{label}: its record is not in the vault")
                continue  # (disposed of through an approved request: recorded, not lost)
            try:
                sink = io.BytesIO()
                vault.originals.read_verified(record_item, sink)
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
                    number = parse_item_id(str(row.get("item")))
                    if item is None and number and disposal_records.tombstone(vault.catalog, number):
                        continue  # disposed of through an approved request: recorded, not lost
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
