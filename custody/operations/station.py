"""Operations of the docking station: officers, recorders, status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from custody.operations.base import Context, NoRequest, operation
from custody.vault import Vault, case_reports
from custody.vault.alerts import replica_health
from custody.vault.timestamps import to_text, utc_now


@dataclass(frozen=True)
class AddOfficer:
    badge: str
    name: str
    unit: str = ""


@operation("officer_add", AddOfficer, "registry")
def officer_add(vault: Vault, request: AddOfficer, context: Context) -> dict:
    """Register an officer by badge number (audited)."""
    added = vault.registry.add_officer(request.badge.strip(), request.name.strip(), request.unit.strip())
    return added.as_dict()


@dataclass(frozen=True)
class OfficerLogin:
    badge: str
    login: str


@operation("officer_login", OfficerLogin, "registry")
def officer_login(vault: Vault, request: OfficerLogin, context: Context) -> dict:
    """Say which login name is an officer: with the officer role, they see their own footage."""
    vault.cases.link_officer_login(request.badge, request.login)
    return {"badge": request.badge, "login": request.login}


@operation("officer_ls", NoRequest, "report")
def officer_ls(vault: Vault, request: NoRequest, context: Context) -> list[dict]:
    """Registered officers."""
    return [o.as_dict() for o in vault.registry.officers()]


@dataclass(frozen=True)
class AddRecorder:
    serial: str
    profile: str = ""
    badge: str | None = None
    valid_from: str | None = None  # stored UTC text; None: now
    vendor: str = ""
    model: str = ""


@operation("recorder_add", AddRecorder, "registry")
def recorder_add(vault: Vault, request: AddRecorder, context: Context) -> dict:
    """Register a recorder by its USB serial number, optionally assigned (audited)."""
    added = vault.registry.add_recorder(
        request.serial.strip(),
        request.profile,
        request.badge,
        request.valid_from,
        request.vendor,
        request.model,
    )
    return added.as_dict()


@dataclass(frozen=True)
class AssignRecorder:
    serial: str
    badge: str
    valid_from: str | None = None  # stored UTC text; None: now


@operation("recorder_assign", AssignRecorder, "registry")
def recorder_assign(vault: Vault, request: AssignRecorder, context: Context) -> dict:
    """Assign a recorder to an officer from a time on (audited); its assignments after the change,
    and the assignment the change ended or cut short (``ended``, None when there was none)."""
    ended = vault.registry.assign_recorder(request.serial, request.badge, request.valid_from)
    assignments = vault.registry.assignments(request.serial)
    return {
        "serial": request.serial,
        "assignments": [a.as_dict() for a in assignments],
        "ended": ended.as_dict() if ended else None,
        "later": bool(request.valid_from and request.valid_from > utc_now()),
    }


@dataclass(frozen=True)
class RecorderRef:
    serial: str


@operation("recorder_retire", RecorderRef, "registry")
def recorder_retire(vault: Vault, request: RecorderRef, context: Context) -> dict:
    """Retire a recorder: no longer pulled when docked; its footage and history stay (audited)."""
    return vault.registry.retire_recorder(request.serial).as_dict()


@dataclass(frozen=True)
class ListRecorders:
    assignments: bool = False  # each recorder's whole assignment history too


@operation("recorder_ls", ListRecorders, "report")
def recorder_ls(vault: Vault, request: ListRecorders, context: Context) -> list[dict]:
    """Recorders with the officer assigned now (and the next one) and their last dock."""
    recorders = vault.registry.recorders()
    if not request.assignments:
        return [r.as_dict() for r in recorders]
    return [
        {**r.as_dict(), "assignments": [a.as_dict() for a in vault.registry.assignments(r.serial)]}
        for r in recorders
    ]


@operation("status", NoRequest, "status")
def status(vault: Vault, request: NoRequest, context: Context) -> dict:
    """The station now: the daemon and its docked recorders, recent sessions, media jobs, findings, disk."""
    from custody.ingestd.daemon import (
        read_status,  # (the daemon's modules load slowly; only status reads them)
    )

    live = read_status(vault.home)
    sessions = vault.registry.dock_sessions(limit=10)
    unknown = vault.registry.unknown_devices(limit=10)
    job_counts = vault.media.counts()
    failed_jobs = vault.media.failed(limit=10)
    open_findings, oldest_finding = vault.continuity.open_summary()
    disk = vault.disk_space()
    window = vault.settings.dock.window_hours
    overdue = (
        vault.registry.silent_recorders(to_text(datetime.now(UTC) - timedelta(hours=window)))
        if vault.caller.may("report")
        else None
    )
    return {
        "daemon": live,
        "sessions": [s.as_dict() for s in sessions],
        "unknown_devices": [u.as_dict() for u in unknown],
        "media_jobs": job_counts,
        "failed_media_jobs": [j.as_dict() for j in failed_jobs],
        "open_continuity_findings": open_findings,
        "oldest_open_finding": oldest_finding,
        "vault_disk": disk,
        # Cases needing attention (urgent filings unapproved after 24 hours, archive deadlines),
        # for those who may see cases.
        "cases": case_reports.attention(vault) if vault.caller.may("ls") else None,
        # Assigned recorders not docked within the window, and replicas failing or waiting
        # (for those who may read reports).
        "recorders_overdue": overdue,
        "replicas": replica_health(vault) if overdue is not None else None,
    }


@dataclass(frozen=True)
class SetPassword:
    login: str
    password: str
    new: bool = False  # add the account (else change its password)


@operation("account_set", SetPassword, "accounts")
def account_set(vault: Vault, request: SetPassword, context: Context) -> dict:
    """Add one of custody's own accounts (for the web platform) or change its password; audited
    without the password, kept only as its Argon2 hash."""
    vault.accounts.set_password(request.login.strip(), request.password, request.new)
    return {"login": request.login.strip(), "added": request.new}


@operation("account_ls", NoRequest, "accounts")
def account_ls(vault: Vault, request: NoRequest, context: Context) -> list[dict]:
    """custody's own accounts: login, when added, when its password last changed."""
    return vault.accounts.listed()
