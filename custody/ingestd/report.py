"""The 24-hour window report: late footage and recorders that have not come back to the dock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from custody.vault import Vault
from custody.vault.items import format_item_id
from custody.vault.timestamps import from_text, to_text


def window_report(vault: Vault, window_hours: float, since: str | None, now: datetime | None = None) -> dict:
    """Return late items (with hours late) and assigned recorders not docked within ``window_hours``."""
    now = now or datetime.now(UTC)
    late = []
    for row in vault.registry.late_items(since):
        hours_late = (from_text(row["ingested_at"]) - from_text(row["deadline"])).total_seconds() / 3600
        late.append(
            {
                "id": format_item_id(row["id"]),
                "name": row["original_name"],
                "officer": row["credited_officer"],
                "recorder": row["recorder_serial"],
                "recorded_start": row["recorded_start"],
                "recorded_end": row["recorded_end"],
                "deadline": row["deadline"],
                "ingested_at": row["ingested_at"],
                "hours_late": round(hours_late, 2),
            }
        )
    silent = vault.registry.silent_recorders(to_text(now - timedelta(hours=window_hours)))
    return {"window_hours": window_hours, "late_items": late, "silent_recorders": silent}
