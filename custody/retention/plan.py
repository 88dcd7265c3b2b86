"""Retention over the vault: gather what the policy needs, evaluate, and say what may go.

Planning deletes nothing: it lists the items eligible for disposition now
and those that become eligible soon, each with the rule that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from custody.config import Settings
from custody.retention.policy import Hold, ItemFacts, Policy, RetentionDecision, evaluate
from custody.vault.catalog import Item
from custody.vault.timestamps import from_text


@dataclass(frozen=True)
class PlanLine:
    item: Item
    categories: list[str]
    decision: RetentionDecision

    def as_dict(self) -> dict:
        return {
            "id": self.item.item_id,
            "case": self.item.tags.get("case"),
            "categories": self.categories,
            **{k: v for k, v in self.decision.as_dict().items() if k != "item"},
        }


def decide(vault, settings: Settings, now: datetime) -> list[PlanLine]:
    """The retention decision for every item of the vault, in id order."""
    policy = Policy.from_config(settings.retention.categories)
    items, categories, case_categories, holds = vault.retention_records()
    facts = [
        ItemFacts(
            number=item.number,
            recorded=from_text(item.recorded_start) if item.recorded_start else None,
            ingested=from_text(item.ingested_at),
            categories=categories.get(item.number, frozenset()),
            case=item.tags.get("case"),
        )
        for item in items
    ]
    decisions = evaluate(
        facts, policy, [Hold(h.id, h.item, h.case_name) for h in holds], now, case_categories
    )
    lines = []
    for item, fact, decision in zip(items, facts, decisions, strict=True):
        applied = set(fact.categories) | set(case_categories.get(fact.case, frozenset()) if fact.case else ())
        lines.append(PlanLine(item, sorted(applied), decision))
    return lines


def decide_one(vault, settings: Settings, item: Item, now: datetime) -> PlanLine:
    """The retention decision for one item (its categories, its case's, the holds on either)."""
    policy = Policy.from_config(settings.retention.categories)
    categories = frozenset(vault.item_categories(item))
    case_categories = vault.case_categories()
    fact = ItemFacts(
        number=item.number,
        recorded=from_text(item.recorded_start) if item.recorded_start else None,
        ingested=from_text(item.ingested_at),
        categories=categories,
        case=item.tags.get("case"),
    )
    holds = [Hold(h.id, h.item, h.case_name) for h in vault.holds(active_only=True)]
    [decision] = evaluate([fact], policy, holds, now, case_categories)
    applied = set(categories) | set(case_categories.get(fact.case, frozenset()) if fact.case else ())
    return PlanLine(item, sorted(applied), decision)


def plan(vault, settings: Settings, now: datetime) -> dict:
    """What is eligible for disposition now, and what becomes eligible within upcoming_days."""
    horizon = now + timedelta(days=settings.retention.upcoming_days)
    lines = decide(vault, settings, now)
    eligible = [line for line in lines if line.decision.eligible]
    upcoming = [
        line
        for line in lines
        if not line.decision.eligible
        and not line.decision.held
        and line.decision.retain_until is not None
        and line.decision.retain_until <= horizon
    ]
    return {
        "evaluated_at": now.isoformat(),
        "upcoming_days": settings.retention.upcoming_days,
        "items": len(lines),
        "eligible": [line.as_dict() for line in eligible],
        "upcoming": [line.as_dict() for line in upcoming],
        "held": sum(line.decision.held for line in lines),
        "permanent": sum(line.decision.permanent for line in lines),
    }
