"""Retention over the vault: gather what the policy needs, evaluate, and say what may go.

Planning deletes nothing: it lists the items eligible for disposition now
and those that become eligible soon, each with the rule that decided it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from custody.config import Settings
from custody.retention.policy import (
    FLOOR_MONTHS,
    Hold,
    ItemFacts,
    Policy,
    RetentionDecision,
    add_months,
    evaluate,
)
from custody.vault.catalog import Item, ItemFilter
from custody.vault.private_files import write_private_file
from custody.vault.timestamps import from_text, to_text


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


def item_facts(item: Item, categories: frozenset[str]) -> ItemFacts:
    """What the retention policy needs of a catalog item."""
    return ItemFacts(
        number=item.number,
        recorded=from_text(item.recorded_start) if item.recorded_start else None,
        ingested=from_text(item.ingested_at),
        categories=categories,
        case=item.tags.get("case"),
        clock_suspect=item.clock_suspect,
    )


def decide(vault, settings: Settings, now: datetime) -> list[PlanLine]:
    """The retention decision for every item of the vault, in id order."""
    return _decide_items(vault, settings, vault.list_items(ItemFilter()), now)


def _decide_items(vault, settings: Settings, items: list[Item], now: datetime) -> list[PlanLine]:
    policy = Policy.from_config(settings.retention.categories)
    categories, case_categories, holds = vault.retention.context()
    facts = [item_facts(item, categories.get(item.number, frozenset())) for item in items]
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
    categories = frozenset(vault.retention.item_categories(item))
    case_categories = vault.retention.case_categories()
    fact = item_facts(item, categories)
    holds = [Hold(h.id, h.item, h.case_name) for h in vault.holds.on(item)]
    [decision] = evaluate([fact], policy, holds, now, case_categories)
    applied = set(categories) | set(case_categories.get(fact.case, frozenset()) if fact.case else ())
    return PlanLine(item, sorted(applied), decision)


def plan(vault, settings: Settings, now: datetime) -> dict:
    """What is eligible for disposition now, and what becomes eligible within upcoming_days."""
    return upcoming(vault, settings, now, settings.retention.upcoming_days)


def upcoming(vault, settings: Settings, now: datetime, days: int) -> dict:
    """What is eligible for disposition now, and what becomes eligible within ``days``.

    Only the items that can be due are evaluated: those whose retention is
    more than the plain floor (categories, holds, their cases'), and those
    whose floor ends by the horizon, found by an index range (a day's margin
    for calendar months; the evaluation itself is exact).
    """
    horizon = now + timedelta(days=days)
    start_until = to_text(add_months(horizon, -FLOOR_MONTHS) + timedelta(days=1))
    candidates, total = vault.retention.candidates(start_until)
    lines = _decide_items(vault, settings, candidates, now)
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
        "upcoming_days": days,
        "items": total,
        "eligible": [line.as_dict() for line in eligible],
        "upcoming": [line.as_dict() for line in upcoming],
        "held": sum(line.decision.held for line in lines),
        "permanent": sum(line.decision.permanent for line in lines),
    }


def replica_lock_rule(vault, settings: Settings) -> Callable[[], Callable[[str], tuple[datetime, bool]]]:
    """For replication: a builder of the rule giving an object's (retain-until, legal hold).

    An object (an original or a derivative) takes the longest retention of
    the items it belongs to; a permanent or held item puts its objects under
    legal hold, their COMPLIANCE date being the two-year floor. Built once
    per replication run, from one evaluation of the whole vault.
    """

    def build() -> Callable[[str], tuple[datetime, bool]]:
        now = datetime.now(UTC)
        lines = {line.item.number: line for line in decide(vault, settings, now)}
        owners = vault.retention.object_owners()

        def rule(sha256: str) -> tuple[datetime, bool]:
            until, hold = add_months(now, FLOOR_MONTHS), False
            found = [lines[number] for number in owners.get(sha256, []) if number in lines]
            if found:
                until = None
            for line in found:
                start, _since = item_facts(line.item, frozenset()).retention_start()
                candidate = line.decision.retain_until or add_months(start, FLOOR_MONTHS)
                until = candidate if until is None or candidate > until else until
                hold = hold or line.decision.permanent or line.decision.held
            return until, hold

        return rule

    return build


def write_report(report: dict, folder: Path) -> Path:
    """Write a plan as retention-plan-YYYY-MM-DD.json in ``folder`` (atomically: written, then renamed).

    ``folder`` must be this process's own (made 0700 when missing); the file
    is created exclusively, never through a link. Raise UnsafeFolder, OSError.
    """
    name = f"retention-plan-{report['evaluated_at'][:10]}.json"
    return write_private_file(folder, name, (json.dumps(report, indent=1) + "\n").encode(), mode=0o640)
