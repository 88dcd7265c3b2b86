"""Times as the vault stores them: UTC, ISO 8601, fixed width, so text order is time order."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime, time

from custody.errors import Said, UsageError

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> str:
    return to_text(datetime.now(UTC))


def to_text(moment: datetime) -> str:
    """Return ``moment`` (aware) as stored text; naive times are taken as local time."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC).strftime(_FORMAT)


def from_text(text: str) -> datetime:
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


# Shown in UTC instead of the station's zone (``custody --utc``), per thread (the daemon serves
# each caller in a thread of its own).
show_utc: contextvars.ContextVar[bool] = contextvars.ContextVar("custody_show_utc", default=False)


def local_display(text: str | None, seconds: bool = False) -> str:
    """Return a stored time for people: the station's local time (or UTC with --utc) to the
    minute (or the second), with its zone ("2026-11-30 10:55 CST", "+08:00" where the zone has
    no name); '-' when unknown."""
    if not text:
        return "-"
    moment = from_text(text)
    moment = moment if show_utc.get() else moment.astimezone()
    zone = moment.tzname() or ""
    if not zone or zone[0] in "+-":  # no abbreviation: the offset, as ISO 8601 writes it
        zone = moment.strftime("%z")
        zone = f"{zone[:3]}:{zone[3:]}" if len(zone) == 5 else zone
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone}" if seconds else f"{moment:%Y-%m-%d %H:%M} {zone}"


def parse_user_time(value: str, option: str, end_of_day: bool = False) -> str:
    """Return stored text for a date or date-time typed by a person (local time unless zoned).

    A bare date means the start of that day, or its end with ``end_of_day``.
    Raise UsageError naming ``option`` when it cannot be read.
    """
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            reason=Said(
                "{option} {value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM",
                option=option,
                value=value,
            )
        ) from None
    if len(value) == 10 and end_of_day:
        moment = datetime.combine(moment.date(), time.max)
    return to_text(moment)
