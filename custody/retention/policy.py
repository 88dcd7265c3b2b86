"""Retention as a pure function that explains itself.

:func:`evaluate` takes the items (recording time, categories, case), the
policy (categories and their periods) and the legal holds, and returns for
every item how long it is kept, whether it may be disposed of now, and the
rule that decided it. Nothing here reads the catalog or deletes anything:
disposition is a separate, approved, audited step.

The rules, in order: a hold on the item or its case keeps it; a permanent
category keeps it for ever; otherwise the longest period among its
categories (and its case's) counts from the recording time (the ingest time
when the recording time is unknown), and never less than the two-year floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from custody.errors import Said, said_as_data
from custody.rules import (  # (the regulation's numbers; re-exported: policy users import them here)
    DEFAULT_CATEGORIES,
    FLOOR_MONTHS,
    PERMANENT,
    PeriodError,
    add_months,
    parse_period,
)

__all__ = [
    "DEFAULT_CATEGORIES",
    "FLOOR_MONTHS",
    "PERMANENT",
    "Hold",
    "ItemFacts",
    "PeriodError",
    "Policy",
    "RetentionDecision",
    "add_months",
    "evaluate",
    "parse_period",
]


@dataclass(frozen=True)
class Policy:
    """Categories and their periods in months (None: permanent)."""

    periods: Mapping[str, int | None]

    @classmethod
    def from_config(cls, categories: Mapping[str, str]) -> Policy:
        """Build from {name: "2y" | "30m" | "permanent"}; raise PeriodError naming the category."""
        periods = {}
        for name, text in categories.items():
            try:
                periods[name] = parse_period(text)
            except PeriodError as exc:
                raise PeriodError(f"{name}: {exc}") from None
        return cls(periods)

    def is_permanent(self, category: str) -> bool:
        return category in self.periods and self.periods[category] is None


@dataclass(frozen=True)
class ItemFacts:
    """What retention needs to know of one item."""

    number: int
    recorded: datetime | None
    ingested: datetime
    categories: frozenset[str] = frozenset()
    case: str | None = None
    # The recorder's clock was out of range at docking: its recording time may be years early.
    clock_suspect: bool = False

    def retention_start(self) -> tuple[datetime, str]:
        """When retention runs from, and that in words.

        The recording time, else the ingest time; when the recorder's clock is
        suspect, the later of the two, so that fresh footage from a recorder
        whose clock was reset to an old date is not offered for disposal at once.
        """
        if self.recorded is None:
            return self.ingested, Said("ingest (recording time unknown)")
        if self.clock_suspect and self.ingested > self.recorded:
            return self.ingested, Said("ingest (recorder clock suspect: its recording time is not trusted)")
        return self.recorded, Said("recording")


@dataclass(frozen=True)
class Hold:
    """A legal hold on one item or on every item of a case, while it is not released."""

    id: int
    item: int | None = None
    case: str | None = None


@dataclass(frozen=True)
class RetentionDecision:
    item: int
    retain_until: datetime | None  # None: kept for ever
    permanent: bool
    held: bool
    eligible: bool  # may be disposed of now (still needs a request, an approval, an execution)
    rule: str  # why, in words (Said: said in the reader's language; "rule" stays English)

    def as_dict(self) -> dict:
        return {
            "item": self.item,
            "retain_until": self.retain_until.isoformat() if self.retain_until else None,
            "permanent": self.permanent,
            "held": self.held,
            "eligible": self.eligible,
            "rule": str(self.rule),
            "rule_words": said_as_data(self.rule),
        }


def evaluate(
    items: Iterable[ItemFacts],
    policy: Policy,
    holds: Iterable[Hold],
    now: datetime,
    case_categories: Mapping[str, frozenset[str]] | None = None,
) -> list[RetentionDecision]:
    """Decide, for every item, how long it is kept and whether it may be disposed of at ``now``.

    ``case_categories`` are categories set on whole cases; they apply to
    every item of the case. Deterministic: the same input gives the same
    decisions, in the order of ``items``.
    """
    holds = list(holds)
    by_item = {}
    by_case = {}
    for hold in sorted(holds, key=lambda h: h.id):
        if hold.item is not None:
            by_item.setdefault(hold.item, hold)
        if hold.case is not None:
            by_case.setdefault(hold.case, hold)
    case_categories = case_categories or {}
    decisions = []
    for item in items:
        categories = set(item.categories)
        if item.case:
            categories |= case_categories.get(item.case, frozenset())
        start, since = item.retention_start()
        hold = by_item.get(item.number) or (by_case.get(item.case) if item.case else None)
        permanent = sorted(c for c in categories if policy.is_permanent(c))
        months, reason = FLOOR_MONTHS, Said("the 2-year floor")
        for category in sorted(categories):
            period = policy.periods.get(category, FLOOR_MONTHS)
            if period is not None and period > months:
                months, reason = period, Said("category {category}", category=category)
        if not categories:
            reason = Said("the 2-year floor (no category)")
        retain_until = None if permanent else add_months(start, months)
        if hold is not None:
            where = Said("the item") if hold.item == item.number else Said("case {case}", case=item.case)
            hold_id = f"HOLD-{hold.id:06d}"
            rule = Said("held: hold {hold} on {where}", hold=hold_id, where=where)
        elif permanent:
            rule = Said("permanent: category {categories}", categories=", ".join(permanent))
        else:
            years = (
                Said("{count} years", count=months // 12)
                if months % 12 == 0
                else Said("{count} months", count=months)
            )
            rule = Said("{reason}: {period} from {since}", reason=reason, period=years, since=since)
        eligible = hold is None and retain_until is not None and now >= retain_until
        decisions.append(
            RetentionDecision(item.number, retain_until, bool(permanent), hold is not None, eligible, rule)
        )
    return decisions
