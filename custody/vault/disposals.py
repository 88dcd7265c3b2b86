"""Disposition as the vault records it: requests, a second person's approval, tombstones written
before anything is deleted, categories taken off; each step audited and safe to repeat after a crash."""

from __future__ import annotations

from collections.abc import Iterable

from custody.errors import CustodyError, UsageError
from custody.vault import (
    derivatives,
    disposal_records,
    holdings,
)
from custody.vault.disposal_records import DispositionRequest
from custody.vault.items import (
    checked_reason,
    format_item_id,
)
from custody.vault.service import VaultService, locked
from custody.vault.timestamps import utc_now


class RequestNotFound(CustodyError):
    """no disposition request {ref}: use an id from 'custody retention requests' (REQ-000001)"""

    exit_code = 5


class ApprovalRefused(CustodyError):
    """{ref} cannot be approved: {why}"""

    exit_code = 5


class ExecutionRefused(CustodyError):
    """{ref} cannot be executed: {why}"""

    exit_code = 5


class NotEligible(CustodyError):
    """not eligible for disposition: {items}; see 'custody retention plan'"""

    exit_code = 5


class Disposals(VaultService):
    """Disposition requests, approvals, tombstones and removals (``vault.disposals``)."""

    @locked
    def request(
        self, numbers: list[int], reason: str, remove_category: str | None = None
    ) -> DispositionRequest:
        """Record a request (audited): to dispose of items, or to take a category off them.

        The caller checked the items are eligible now (for a deletion) or carry
        the category (for a removal).
        """
        self.vault.authorize("retention")
        reason = checked_reason(reason, "why" if remove_category else "why the footage is disposed of")
        if not numbers:
            raise UsageError(reason="nothing to request: give items, or --plan when something is eligible")
        with self.vault.change() as change:
            number = disposal_records.add_request(
                change.catalog, sorted(set(numbers)), reason, utc_now(), self.vault.actor, remove_category
            )
            details = {
                "request": disposal_records.format_request_id(number),
                "items": [format_item_id(n) for n in sorted(set(numbers))],
                "reason": reason,
            }
            if remove_category:
                details["remove_category"] = remove_category
            change.record("disposition-requested", None, details)
        made = disposal_records.request(self.vault.catalog, number)
        assert made is not None
        return made

    @locked
    def find(self, ref: str) -> DispositionRequest:
        number = disposal_records.parse_request_id(ref)
        found = disposal_records.request(self.vault.catalog, number) if number else None
        if found is None or not self.vault.cases.may_see(found.items):  # (one naming hidden items: not there)
            raise RequestNotFound(ref=ref)
        return found

    @locked
    def listed(self) -> list[DispositionRequest]:
        """Every request, those naming items the caller may not see left out."""
        self.vault.authorize("report")
        return self.vault.cases.visible_records(
            disposal_records.requests(self.vault.catalog), lambda found: (found.items, None)
        )

    @locked
    def approve(self, ref: str) -> DispositionRequest:
        """Approve a request: only a person other than its requester may (both named in the chain).

        Raise RequestNotFound, ApprovalRefused (the requester
        themself, or not awaiting approval); a refusal is audited.
        """
        self.vault.authorize("retention")
        found = self.find(ref)
        why = None
        if found.state != "requested":
            why = f"it is {found.state}, not awaiting approval"
        elif found.requested_by == self.vault.actor:
            why = f"{self.vault.actor} requested it; a second person must approve"
        if why:
            self.vault.record_failure("disposition-approve", {"request": found.request_id, "reason": why})
            raise ApprovalRefused(ref=found.request_id, why=why)
        with self.vault.change() as change:
            disposal_records.approve(change.catalog, found.id, utc_now(), self.vault.actor)
            change.record(
                "disposition-approved",
                None,
                {
                    "request": found.request_id,
                    "requested_by": found.requested_by,
                    "approved_by": self.vault.actor,
                },
            )
        return self.find(ref)

    @locked
    def start(self, ref: str) -> DispositionRequest:
        """Check a request may be executed (approved, not executed); raise ExecutionRefused (audited)."""
        self.vault.authorize("retention")
        found = self.find(ref)
        if found.state != "approved":
            why = "it is not approved yet" if found.state == "requested" else f"it is {found.state} already"
            self.vault.record_failure("disposition-execute", {"request": found.request_id, "reason": why})
            raise ExecutionRefused(ref=found.request_id, why=why)
        return found

    @locked
    def tombstone_of_content(self, sha256: str) -> dict | None:
        """The tombstone of a disposed item whose original had this SHA-256, or None."""
        return disposal_records.tombstone_of_content(self.vault.catalog, sha256)

    @locked
    def dispose_item(
        self, number: int, request: DispositionRequest, permanent_categories: Iterable[str] = ()
    ) -> dict:
        """Dispose of one item: tombstone first (audited), then its rows, its objects, its replicas queued.

        The caller re-checked, just now, that it is eligible; inside the
        transaction that writes the tombstone, an active hold on the item or
        its case, or a category among ``permanent_categories`` (on it or its
        case), still stops it (NotEligible): another command may have
        held it a moment ago. Idempotent: an item already tombstoned is
        finished, not disposed of twice. Return the tombstone.
        """
        item = self.vault.catalog.item(number)
        if item is None:
            gone = disposal_records.tombstone(self.vault.catalog, number)
            if gone is None:
                raise self.vault.ItemNotFound(ref=format_item_id(number))
            self.finish_disposal(number)
            return gone
        made = derivatives.of_item(self.vault.catalog, number)
        record = {
            "item": format_item_id(number),
            "item_number": number,
            "sha256": item.sha256,
            "size": item.size,
            "name": item.original_name,
            "recorded_start": item.recorded_start,
            "ingested_at": item.ingested_at,
            "tags": item.tags,
            "categories": holdings.item_categories(self.vault.catalog, number),
            "derivatives": [{"role": d.role, "sha256": d.sha256} for d in made],
            "reason": request.reason,
            "requested_by": request.requested_by,
            "approved_by": request.approved_by,
        }
        with self.vault.change() as change:
            case = item.tags.get("case")
            held = [
                h.hold_id
                for h in holdings.holds(change.catalog, active_only=True)
                if h.item == number or (case and h.case_name == case)
            ]
            categories = set(holdings.item_categories(change.catalog, number))
            if case:
                categories |= holdings.case_categories(change.catalog).get(case, frozenset())
            kept = sorted(categories & set(permanent_categories))
            if held or kept:
                raise NotEligible(
                    items=f"{item.item_id} ({'held: ' + ', '.join(held) if held else 'permanent: ' + ', '.join(kept)})"
                )
            disposal_records.add_tombstone(
                change.catalog, number, record, request.id, utc_now(), self.vault.actor
            )
            change.record(
                "item-disposed",
                number,
                {
                    "request": request.request_id,
                    "sha256": item.sha256,
                    "derivatives": record["derivatives"],
                    "requested_by": request.requested_by,
                    "approved_by": request.approved_by,
                    "reason": request.reason,
                },
            )
        self.finish_disposal(number)
        gone = disposal_records.tombstone(self.vault.catalog, number)
        assert gone is not None
        return gone

    @locked
    def finish_disposal(self, number: int) -> None:
        """Rows, then object files, then the tombstone is done: each step safe to repeat after a crash."""
        gone = disposal_records.tombstone(self.vault.catalog, number)
        assert gone is not None
        objects = [gone["sha256"], *(d["sha256"] for d in gone["derivatives"])]
        with self.vault.change() as change:
            disposal_records.delete_item_rows(change.catalog, number)
            unused = [
                sha
                for sha in dict.fromkeys(objects)
                if not disposal_records.object_in_use(change.catalog, sha)
            ]
            for sha256 in unused:
                disposal_records.queue_replica_deletion(change.catalog, sha256, utc_now())
        for sha256 in unused:
            self.vault.objects.path_for(sha256).unlink(missing_ok=True)
        with self.vault.change() as change:
            disposal_records.set_tombstone_state(change.catalog, number, "done")

    @locked
    def remove_category(self, number: int, request: DispositionRequest) -> bool:
        """Take the request's category off an item, audited with requester and approver; False if absent."""
        assert request.category is not None and request.state == "approved"
        with self.vault.change() as change:
            removed = disposal_records.remove_item_category(change.catalog, number, request.category)
            if removed:
                change.record(
                    "category-removed",
                    number,
                    {
                        "category": request.category,
                        "request": request.request_id,
                        "requested_by": request.requested_by,
                        "approved_by": request.approved_by,
                        "reason": request.reason,
                    },
                )
        return removed

    @locked
    def finish(self, request: DispositionRequest, result: dict) -> DispositionRequest:
        with self.vault.change() as change:
            disposal_records.executed(change.catalog, request.id, utc_now(), self.vault.actor, result)
            change.record(
                "disposition-executed",
                None,
                {"request": request.request_id, **result},
            )
        return self.find(request.request_id)

    @locked
    def tombstones(self) -> list[dict]:
        return disposal_records.tombstones(self.vault.catalog)

    @locked
    def tombstone(self, number: int) -> dict | None:
        return disposal_records.tombstone(self.vault.catalog, number)
