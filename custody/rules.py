"""The regulation's numbers, at the bottom of every layer: how long footage is kept.

Footage is kept at least two years; four kinds of footage are kept for ever.
The retention policy, the config check and the off-site Object Lock all read
these one definitions.
"""

from __future__ import annotations

import re
from datetime import datetime

FLOOR_MONTHS = 24  # the regulation: footage is kept at least two years
PERMANENT = "permanent"

# Shipped categories: routine footage, and the four kinds kept for ever.
DEFAULT_CATEGORIES: dict[str, str] = {
    "routine": "2y",
    "penalty_evidence": PERMANENT,  # used as evidence for an administrative penalty
    "obstruction": PERMANENT,  # enforcement obstructed, official duty hindered
    "major_incident": PERMANENT,  # major emergencies, mass incidents
    "major_case": PERMANENT,  # major, difficult or complex enforcement
}

_PERIOD = re.compile(r"(\d+)\s*([ym])")


class PeriodError(ValueError):
    """A retention period that is not "permanent", "<n>y" or "<n>m", or is below the floor."""


def parse_period(text: str) -> int | None:
    """Return a period in months (None for "permanent"); raise PeriodError for anything else.

    Periods below the two-year floor are refused: no setting may keep footage shorter.
    """
    value = text.strip().lower()
    if value == PERMANENT:
        return None
    found = _PERIOD.fullmatch(value)
    if not found:
        raise PeriodError(f'{text!r} is not a period: use "permanent", years ("5y") or months ("30m")')
    months = int(found.group(1)) * (12 if found.group(2) == "y" else 1)
    if months < FLOOR_MONTHS:
        raise PeriodError(f"{text} is below the 2-year floor: footage is kept at least two years")
    return months


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months; the 29-31st fall back to the month's last day."""
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    month += 1
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1
