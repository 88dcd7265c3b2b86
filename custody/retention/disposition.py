"""Disposition: planned, requested, approved by a second person, executed item by item.

Eligibility is decided by the policy at each step: an item must be eligible
when it is requested and again when the request is executed (a hold placed
in between, or a category added, keeps it). Deletion itself, crash-safe and
audited, is the vault's (``vault.disposals.dispose_item``); replicas are deleted by
replication, Object Lock permitting.
"""

from __future__ import annotations

from datetime import datetime

from custody.config import Settings
from custody.retention.plan import decide, decide_one
from custody.retention.policy import Policy
from custody.vault import Vault
from custody.vault.disposal_records import DispositionRequest
from custody.vault.items import format_item_id


def request_disposition(
    vault: Vault, settings: Settings, refs: list[str], from_plan: bool, reason: str, now: datetime
) -> DispositionRequest:
    """Request the disposition of ``refs`` (or of everything eligible, ``from_plan``).

    Raise Vault.NotEligible naming each item that may not go and why; nothing is recorded then.
    """
    if from_plan:
        numbers = [line.item.number for line in decide(vault, settings, now) if line.decision.eligible]
    else:
        refused = []
        numbers = []
        for item in vault.resolve_all(refs, purpose="retention"):
            line = decide_one(vault, settings, item, now)
            if line.decision.eligible:
                numbers.append(item.number)
            else:
                refused.append(f"{item.item_id} ({line.decision.rule})")
        if refused:
            raise Vault.NotEligible(items="; ".join(refused))
    return vault.disposals.request(numbers, reason)


def request_category_removal(vault: Vault, refs: list[str], category: str, reason: str) -> DispositionRequest:
    """Request taking ``category`` off items: it can shorten retention, so a second person approves it.

    Raise Vault.NotEligible naming items that do not carry the category.
    """
    items = vault.resolve_all(refs, purpose="retention")
    missing = [item.item_id for item in items if category not in vault.retention.item_categories(item)]
    if missing:
        raise Vault.NotEligible(items=f"{', '.join(missing)} (no category {category})")
    return vault.disposals.request([item.number for item in items], reason, remove_category=category)


def execute_disposition(vault: Vault, settings: Settings, ref: str, now: datetime) -> DispositionRequest:
    """Execute an approved request: each item still eligible now is disposed of, the rest refused.

    A category-removal request takes the category off its items instead.
    Raise Vault.ExecutionRefused when the request is not approved (or done).
    """
    request = vault.disposals.start(ref)
    policy = Policy.from_config(settings.retention.categories)
    permanent = [name for name in policy.periods if policy.is_permanent(name)]
    if request.kind == "remove-category":
        changed = [format_item_id(n) for n in request.items if vault.disposals.remove_category(n, request)]
        return vault.disposals.finish(request, {"category_removed": request.category, "items": changed})
    deleted, refused, already = [], {}, []
    for number in request.items:
        item = vault.item_number(number)
        if item is None:
            if vault.disposals.tombstone(number) is not None:
                vault.disposals.dispose_item(
                    number, request, permanent
                )  # finished by an earlier, interrupted run
                already.append(number)
            continue
        line = decide_one(vault, settings, item, now)
        if not line.decision.eligible:
            refused[item.item_id] = line.decision.rule
            continue
        try:
            vault.disposals.dispose_item(number, request, permanent)
        except Vault.NotEligible as exc:  # held or made permanent a moment ago, by another command
            refused[item.item_id] = exc.message
            continue
        deleted.append(item.item_id)
    result = {"deleted": deleted + [format_item_id(n) for n in already], "refused": refused}
    return vault.disposals.finish(request, result)
