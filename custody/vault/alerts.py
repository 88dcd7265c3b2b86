"""Alerts: the duties custody watches, pushed to people instead of waiting for ``status``.

:class:`Alerts` is the service (``vault.alerts``). ``evaluate(now)`` works out the conditions in
force (a recorder not docked within the window, footage stored late, a replica failing or lagging,
the vault disk low, a finding open too long, a case near or past its archive deadline, an urgent
filing unapproved, damage found) and, for each channel that carries it, queues a message when a
condition starts, again every ``repeat_hours`` while it lasts, and once when it ends. Messages
wait in an outbox until sent (``due``, ``sent``, ``failed``: retried with backoff); each sent
message is an ``alert-sent`` audit event naming the channel and the condition, never the message
text. Times come from the caller (``now``): the daemon passes the clock, tests their own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from custody.config_alerts import AlertSettings, ChannelSettings, quiet_window
from custody.vault import findings
from custody.vault.case_tables import all_cases, documents_of
from custody.vault.items import format_item_id
from custody.vault.registry import late_items, silent_recorders
from custody.vault.timestamps import from_text, to_text

if TYPE_CHECKING:
    from custody.vault.vault import Vault

ONCE = frozenset({"footage_late", "damage_replica"})  # said once: there is nothing to resolve
CONFIGURED_AS = {"damage_replica": "damage_found"}  # the [alerts] condition a kind belongs to
MAX_BACKOFF_SECONDS = 3600
FIRST_BACKOFF_SECONDS = 30


@dataclass(frozen=True)
class Condition:
    """A duty not met now: ``key`` names it for good (kind and subject), ``text`` says it."""

    key: str
    kind: str
    subject: str
    text: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Message:
    """A message waiting in the outbox for one channel."""

    id: int
    key: str
    channel: str
    state: str  # firing, repeat, resolved, test
    subject: str
    text: str
    created_at: str
    attempts: int
    next_attempt: str


class Alerts:
    """Conditions, their state and the outbox (``vault.alerts``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    @property
    def settings(self) -> AlertSettings:
        return self.vault.settings.alerts

    # -- what is in force ---------------------------------------------------------------------

    def conditions(self, now: datetime) -> list[Condition]:
        """The watched conditions in force at ``now`` (an aware datetime)."""
        vault, settings = self.vault, self.settings
        found: list[Condition] = []
        watched = set(settings.conditions)
        with vault.serialized():
            catalog = vault.catalog
            if "recorder_overdue" in watched:
                window = vault.settings.dock.window_hours
                for row in silent_recorders(catalog, to_text(now - timedelta(hours=window)), to_text(now)):
                    since = row["last_docked"] or row["assigned_from"]
                    found.append(Condition(
                        f"recorder_overdue:{row['serial']}", "recorder_overdue", row["serial"],
                        f"recorder {row['serial']} (officer {row['officer']}) not docked since {since[:16]} UTC, "
                        f"beyond the {window:g}-hour window",
                    ))  # fmt: skip
            if "footage_late" in watched:
                since = to_text(now - timedelta(hours=settings.late_lookback_hours))
                for row in late_items(catalog, None):
                    if row["ingested_at"] >= since:
                        item = format_item_id(row["id"])
                        found.append(Condition(
                            f"footage_late:{item}", "footage_late", item,
                            f"{item} (recorder {row['recorder_serial'] or '-'}, officer "
                            f"{row['credited_officer'] or '-'}) stored after its deadline {row['deadline'][:16]} UTC",
                        ))  # fmt: skip
            if "replica_failing" in watched:
                found += self._replicas(now)
            if "disk_low" in watched:
                disk = vault.disk_space()
                limit = (settings.disk_free_mb << 20) or 2 * disk["reserve_bytes"]
                if disk.get("free_bytes") is not None and disk["free_bytes"] < limit:
                    found.append(Condition(
                        "disk_low", "disk_low", "vault",
                        f"the vault disk has {disk['free_bytes'] >> 20} MB free (alert below {limit >> 20} MB; "
                        f"ingest stops at {disk['reserve_bytes'] >> 20} MB)",
                    ))  # fmt: skip
            if "finding_open" in watched:
                found += self._findings(now)
            if {"case_archive", "filing_overdue"} & watched:
                found += self._cases(now, watched)
            if "damage_found" in watched:
                found += self._damage(now)
        return found

    def _replicas(self, now: datetime) -> list[Condition]:
        found = []
        for row in replica_health(self.vault):
            waited = (
                (now - from_text(row["oldest_waiting_since"])).total_seconds() / 3600 if row["waiting"] else 0
            )
            if row["failing"] or waited > self.settings.replica_lag_hours:
                found.append(Condition(
                    f"replica_failing:{row['target']}", "replica_failing", row["target"],
                    f"replica {row['target']}: {row['failing']} copies failing, {row['waiting']} waiting "
                    f"(the oldest {waited:.1f} h); last error: {row['last_error'] or '-'}",
                ))  # fmt: skip
        return found

    def _findings(self, now: datetime) -> list[Condition]:
        catalog, days = self.vault.catalog, self.settings.finding_days
        cutoff = now - timedelta(days=days)
        found = []
        for finding in findings.findings(catalog, open_only=True):
            if from_text(finding.found_at) < cutoff:
                found.append(Condition(
                    f"finding_open:{finding.finding_id}", "finding_open", finding.finding_id,
                    f"{finding.finding_id}: {finding.kind} on recorder {finding.recorder_serial} (officer "
                    f"{finding.officer or '-'}) unexplained for more than {days} days",
                ))  # fmt: skip
        for case in all_cases(catalog):
            for document in documents_of(catalog, case.case_name):
                types = self.vault.settings.cases.document_types
                kind = types.get(document.doc_type)
                open_missing = kind and kind.recording and not document.linked and not document.exemption
                if open_missing and date.fromisoformat(document.dated) < cutoff.date():
                    found.append(Condition(
                        f"finding_open:MISSING-{document.document_id}", "finding_open", document.document_id,
                        f"case {case.case_name}: {document.document_id} ({document.doc_type}) has had no linked "
                        f"recording and no explanation for more than {days} days",
                    ))  # fmt: skip
        return found

    def _cases(self, now: datetime, watched: set[str]) -> list[Condition]:
        found, day = [], now.astimezone().date()
        for case in all_cases(self.vault.catalog):
            if case.archived_at:
                continue
            if "filing_overdue" in watched and case.filing_overdue(to_text(now)):
                found.append(Condition(
                    f"filing_overdue:{case.case_name}", "filing_overdue", case.case_name,
                    f"case {case.case_name}: urgent, its filing approval (立案审批) was due {case.filing_due[:16]} UTC",
                ))  # fmt: skip
            if "case_archive" in watched and case.archive_due:
                left = (date.fromisoformat(case.archive_due) - day).days
                if left <= self.settings.case_days:
                    said = f"past its archive deadline {case.archive_due}" if left < 0 else (
                        f"due for archiving by {case.archive_due} ({left} days left)"
                    )  # fmt: skip
                    found.append(Condition(
                        f"case_archive:{case.case_name}", "case_archive", case.case_name,
                        f"case {case.case_name} is {said}",
                    ))  # fmt: skip
        return found

    def _damage(self, now: datetime) -> list[Condition]:
        db, found = self.vault.catalog.db, []
        last = db.execute(
            "SELECT seq, at, details FROM audit WHERE action = 'verify' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if last is not None and not json.loads(last[2]).get("ok", True):
            found.append(Condition(
                "damage_found:verify", "damage_found", "verify",
                f"verify on {last[1][:16]} UTC found damage (audit event {last[0]}): run 'custody verify' for the list",
            ))  # fmt: skip
        since = to_text(now - timedelta(hours=self.settings.late_lookback_hours))
        for seq, at, details in db.execute(
            "SELECT seq, at, details FROM audit WHERE action = 'replica-overwritten' AND at >= ?", [since]
        ):
            target = json.loads(details).get("target", "?")
            found.append(Condition(
                f"damage_replica:{seq}", "damage_replica", target,
                f"replica {target}: a sealed copy was overwritten (audit event {seq}, {at[:16]} UTC): "
                "run 'custody replicate check'",
            ))  # fmt: skip
        return found

    # -- state and the outbox ------------------------------------------------------------------

    def evaluate(self, now: datetime) -> list[Condition]:
        """Compare the conditions in force with those known; queue what each channel must say
        (a start, a repeat, an end). Return the conditions in force."""
        in_force = self.conditions(now)
        at = to_text(now)
        vault = self.vault
        with vault.change() as change:
            db = change.catalog.db
            known = {row[0]: row for row in db.execute(
                "SELECT key, kind, subject, text, fired_at, last_said_at FROM alert_conditions WHERE resolved_at IS NULL"
            )}  # fmt: skip
            for condition in in_force:
                row = known.pop(condition.key, None)
                if row is None:
                    if self._said_once_already(db, condition):
                        continue
                    db.execute(
                        "INSERT INTO alert_conditions (key, kind, subject, text, fired_at, last_said_at) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET text = excluded.text, "
                        "fired_at = excluded.fired_at, last_said_at = excluded.last_said_at, resolved_at = NULL",
                        [condition.key, condition.kind, condition.subject, condition.text, at, at],
                    )
                    self._queue(db, condition.key, condition.kind, "firing", condition.text, at)
                elif self._repeat_due(row[5], now, condition.kind):
                    db.execute(
                        "UPDATE alert_conditions SET text = ?, last_said_at = ? WHERE key = ?",
                        [condition.text, at, condition.key],
                    )
                    self._queue(db, condition.key, condition.kind, "repeat", condition.text, at)
            for key, kind, _subject, text, _fired, _said in known.values():
                db.execute("UPDATE alert_conditions SET resolved_at = ? WHERE key = ?", [at, key])
                if kind not in ONCE:
                    self._queue(db, key, kind, "resolved", f"resolved: {text}", at)
        return in_force

    def _said_once_already(self, db, condition: Condition) -> bool:
        return (
            condition.kind in ONCE
            and db.execute("SELECT 1 FROM alert_conditions WHERE key = ?", [condition.key]).fetchone()
            is not None
        )

    def _repeat_due(self, last_said: str, now: datetime, kind: str) -> bool:
        hours = self.settings.repeat_hours
        return kind not in ONCE and hours > 0 and now - from_text(last_said) >= timedelta(hours=hours)

    def _queue(self, db, key: str, kind: str, state: str, text: str, at: str) -> None:
        for channel in self.settings.channels.values():
            if not channel.conditions or CONFIGURED_AS.get(kind, kind) in channel.conditions:
                db.execute(
                    "INSERT INTO alert_outbox (key, channel, state, subject, text, created_at, next_attempt) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [key, channel.name, state, subject_line(kind, state), text, at, at],
                )

    def queue_test(self, channel: str, now: datetime) -> int:
        """Queue a test message for ``channel``; return its id."""
        at = to_text(now)
        with self.vault.change() as change:
            cursor = change.catalog.db.execute(
                "INSERT INTO alert_outbox (key, channel, state, subject, text, created_at, next_attempt) "
                "VALUES ('test', ?, 'test', ?, ?, ?, ?)",
                [channel, "custody: test message / 测试消息", f"a test of channel {channel} from "
                 f"{self.vault.settings.station.organisation or 'custody'} at {at[:16]} UTC", at, at],
            )  # fmt: skip
            return cursor.lastrowid

    def due(self, channel: str, now: datetime) -> list[Message]:
        """The messages for ``channel`` to send at ``now``: due, not given up, outside quiet hours
        (a test message is never held by quiet hours)."""
        quiet = in_quiet_hours(self.settings.quiet_hours, now)
        with self.vault.serialized():
            rows = self.vault.catalog.db.execute(
                "SELECT id, key, channel, state, subject, text, created_at, attempts, next_attempt FROM alert_outbox "
                "WHERE channel = ? AND sent_at IS NULL AND next_attempt <= ? ORDER BY id",
                [channel, to_text(now)],
            ).fetchall()
        return [Message(*row) for row in rows if not quiet or row[3] == "test"]

    def sent(self, message: Message, now: datetime) -> None:
        """Record that ``message`` went out: an ``alert-sent`` audit event (channel, condition, state)."""
        with self.vault.change() as change:
            change.catalog.db.execute(
                "UPDATE alert_outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                [to_text(now), message.id],
            )
            change.record(
                "alert-sent",
                details={"channel": message.channel, "condition": message.key, "state": message.state,
                         "attempts": message.attempts + 1},
            )  # fmt: skip

    def failed(self, message: Message, now: datetime, error: str) -> datetime:
        """Record a failed attempt; the next one waits twice as long as the last (30 s to an hour).
        Return when it is due."""
        wait = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2**message.attempts)
        due = now + timedelta(seconds=wait)
        with self.vault.change() as change:
            change.catalog.db.execute(
                "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?",
                [to_text(due), error[:500], message.id],
            )
        return due

    def active(self) -> dict:
        """The conditions in force as last evaluated, oldest first, with what was said of them;
        the messages waiting per channel."""
        with self.vault.serialized():
            rows = self.vault.catalog.db.execute(
                "SELECT key, kind, subject, text, fired_at, last_said_at FROM alert_conditions "
                "WHERE resolved_at IS NULL ORDER BY fired_at, key"
            ).fetchall()
            waiting = dict(self.vault.catalog.db.execute(
                "SELECT channel, count(*) FROM alert_outbox WHERE sent_at IS NULL GROUP BY channel"
            ).fetchall())  # fmt: skip
        conditions = [
            {"key": k, "kind": kind, "subject": s, "text": t, "since": f, "last_said": said}
            for k, kind, s, t, f, said in rows
        ]
        return {"conditions": conditions, "waiting": waiting}


def subject_line(kind: str, state: str) -> str:
    names = {
        "recorder_overdue": "recorder not docked / 执法记录仪未按时接入",
        "footage_late": "footage stored late / 音视频超时存储",
        "replica_failing": "replica failing / 异地备份异常",
        "disk_low": "vault disk low / 存储空间不足",
        "finding_open": "finding unexplained / 问题未说明",
        "case_archive": "case archive deadline / 案卷归档期限",
        "filing_overdue": "filing approval overdue / 立案审批逾期",
        "damage_found": "damage found / 发现损坏",
        "damage_replica": "replica overwritten / 异地备份被覆盖",
    }
    prefix = {"firing": "", "repeat": "still: ", "resolved": "resolved: "}.get(state, "")
    return f"custody {prefix}{names.get(kind, kind)}"


def in_quiet_hours(quiet: str, now: datetime) -> bool:
    """Whether ``now`` (the station's local time) falls in ``quiet`` ("22:00-07:00")."""
    window = quiet_window(quiet) if quiet else None
    if window is None:
        return False
    start, end = window
    local = now.astimezone()
    minute = local.hour * 60 + local.minute
    return start <= minute < end if start <= end else minute >= start or minute < end


def replica_health(vault: Vault) -> list[dict]:
    """Per configured target: copies failing (with the newest error) and waiting, and since when
    the oldest has waited; read from the catalog alone (the store is not asked)."""
    found = []
    with vault.serialized():
        for target in vault.settings.targets:
            failing, waiting, oldest = vault.catalog.db.execute(
                "SELECT count(*) FILTER (WHERE last_error IS NOT NULL), count(*), min(queued_at) "
                "FROM replicas WHERE target = ? AND state != 'verified'",
                [target],
            ).fetchone()
            error = vault.catalog.db.execute(
                "SELECT last_error FROM replicas WHERE target = ? AND last_error IS NOT NULL "
                "ORDER BY next_attempt DESC LIMIT 1",
                [target],
            ).fetchone()
            found.append(
                {"target": target, "failing": failing, "waiting": waiting, "oldest_waiting_since": oldest,
                 "last_error": error[0] if error else None}
            )  # fmt: skip
    return found


def channel_of(settings: AlertSettings, name: str) -> ChannelSettings | None:
    return settings.channels.get(name)


__all__ = ["Alerts", "Condition", "Message", "channel_of", "in_quiet_hours", "replica_health"]
