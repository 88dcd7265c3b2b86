"""Continuity of a recorder's recordings: holes, overlaps and order problems between segments.

Recorders split a long recording into segments, each starting where the
previous one ended. Between two consecutive segments (by start time) of one
recorder, a hole longer than the tolerance but shorter than a run break is
an interruption of one recording, to be explained by a clerk; a longer hole
separates two recordings. A segment starting before the previous one ends is
an overlap; segments whose recorder file names run against their times are
out of order. Nothing is merged: each is a finding.

Pure: :func:`find` takes segments and settings and returns findings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from custody.vault.findings import INTERRUPTION, OUT_OF_ORDER, OVERLAP
from custody.vault.timestamps import from_text


@dataclass(frozen=True)
class Segment:
    item: int
    start: datetime
    end: datetime
    session: int | None  # the dock session that pulled it
    path: str  # its path on the recorder
    officer: str | None

    @classmethod
    def from_row(cls, row: dict) -> Segment | None:
        """Build a segment from a catalog row (recording_segments); None when its end is unknown."""
        start = from_text(row["start"])
        if row.get("end_time"):
            end = from_text(row["end_time"])
        elif row.get("duration") is not None:
            end = start + timedelta(seconds=row["duration"])
        else:
            return None
        return cls(row["item"], start, end, row.get("session"), row.get("path") or "", row.get("officer"))


def find(segments: list[Segment], serial: str, tolerance: float, run_break: float) -> list[dict]:
    """Return the findings between consecutive segments of one recorder, oldest first.

    Each is a dict: kind (interruption, overlap, out-of-order), recorder_serial,
    officer (credited on the earlier segment), before_item, after_item,
    seconds (length of the hole or the overlap; 0 for order problems).
    """
    ordered = sorted(segments, key=lambda s: (s.start, s.item))
    findings = []
    for before, after in pairwise(ordered):
        hole = (after.start - before.end).total_seconds()
        if tolerance < hole <= run_break:
            findings.append(_finding(INTERRUPTION, serial, before, after, hole))
        elif hole < -tolerance:
            findings.append(_finding(OVERLAP, serial, before, after, -hole))
        if (
            before.session is not None
            and before.session == after.session
            and _natural(after.path) < _natural(before.path)
        ):
            findings.append(_finding(OUT_OF_ORDER, serial, before, after, 0.0))
    return findings


def _finding(kind: str, serial: str, before: Segment, after: Segment, seconds: float) -> dict:
    return {
        "kind": kind,
        "recorder_serial": serial,
        "officer": before.officer,
        "before_item": before.item,
        "after_item": after.item,
        "seconds": round(seconds, 3),
    }


def _natural(path: str) -> list:
    """Sort key that orders FILE9.MP4 before FILE10.MP4, as a recorder numbers its files."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]
