"""Who is asking, and what their roles let them do.

A caller is identified by the kernel (the API socket's peer credentials, or
the process's own ids in-process), never by anything a client sends. Users
map to roles in ``[access.roles]`` by login name or by group (``@group``).
Least privilege: a user with no role may only ask who they are.

What each role may do is the table ``ALLOWED`` below: data, so it reads in
one place. The service layer checks it for every request and records a
``denied`` audit event for every refusal, and an ``access`` event for every
read that has no event of its own (``READS``).
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass, field

from custody.config import ROLE_NAMES, Settings
from custody.errors import CustodyError

OFFICER, CLERK, CUSTODIAN, AUDITOR, ADMIN, SUPERVISOR = ROLE_NAMES

# Action -> the roles that may take it. "whoami" is everyone's, roles or not.
# (An admin's config, keys and daemon are the service account's files and
# units, changed outside requests.)
ALLOWED: dict[str, frozenset[str]] = {
    "whoami": frozenset(),
    # Seeing the catalog: an officer only their own items, a supervisor the items of the officers
    # of their units (filtered by the service).
    "ls": frozenset({OFFICER, CLERK, CUSTODIAN, AUDITOR, SUPERVISOR}),
    "show": frozenset({OFFICER, CLERK, CUSTODIAN, AUDITOR, SUPERVISOR}),
    # Footage itself leaves the vault only for clerks (and officers, their own).
    "extract": frozenset({OFFICER, CLERK}),
    # Watching it (a supervisor in the player, reviewing a sample).
    "cat": frozenset({OFFICER, CLERK, SUPERVISOR}),
    "tag": frozenset({CLERK}),
    "ingest": frozenset({CLERK}),
    "export": frozenset({CLERK}),
    "explain": frozenset({CLERK}),
    # The whole chain names every item and case: the auditors' (others see an item's own history).
    "log": frozenset({AUDITOR}),
    "verify": frozenset({AUDITOR, CUSTODIAN, ADMIN}),
    "report": frozenset({CLERK, CUSTODIAN, AUDITOR}),
    "hold": frozenset({CUSTODIAN}),
    "retention": frozenset({CUSTODIAN}),
    "registry": frozenset({CUSTODIAN}),
    "status": frozenset({CLERK, CUSTODIAN, AUDITOR, ADMIN}),
    "case": frozenset({CUSTODIAN}),
    # Case files: opening cases, filing their written records, linking, closing, archiving.
    "casework": frozenset({CLERK}),
    # The signing key: the service account's own (in-process only; no command reaches it by socket).
    "keys": frozenset({ADMIN}),
    # Supervision (抽查考评): drawing samples and rating them (changes no footage and no tags);
    # reading the results: an officer those of their own footage.
    "supervise": frozenset({SUPERVISOR}),
    "reviews": frozenset({OFFICER, SUPERVISOR, AUDITOR, CUSTODIAN}),
    # The leaders' report per officer and month.
    "leaders-report": frozenset({CLERK, CUSTODIAN, AUDITOR, SUPERVISOR}),
    # Alerts: the conditions in force are a report; a test message goes out through a channel.
    "alerts": frozenset({CUSTODIAN, ADMIN}),
    # custody's own accounts (people who sign in to the web platform without a login here).
    "accounts": frozenset({ADMIN}),
}
# Allowed reads that make no audit event of their own: a person's are recorded as "access" events.
READS = frozenset({"ls", "show", "log", "report", "status", "reviews", "leaders-report"})
NORMAL = "normal"


class AccessDenied(CustodyError):
    """{user} may not {action}{target}: {why}"""

    exit_code = 13


@dataclass(frozen=True)
class Caller:
    """A person as the kernel identifies them, with the roles the config gives them."""

    uid: int
    gid: int
    pid: int | None
    name: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    owner: bool = False  # runs as the vault's own user (in-process, or the daemon itself)
    # The service that asked for this person (the web platform's user): the person signed in
    # there, and only that service's uid may assert them (custody.ingestd.delegation).
    via: str | None = None

    @property
    def actor(self) -> str:
        """The name audit events carry: the person, and the service they came through."""
        return f"{self.name} via {self.via}" if self.via else self.name

    def may(self, action: str) -> bool:
        """Whether the roles allow ``action`` (the vault's own user may do everything)."""
        if self.owner:
            return True
        allowed = ALLOWED.get(action)
        if allowed is None:
            return False
        return not allowed or bool(allowed & set(self.roles))

    def as_dict(self) -> dict:
        return {
            "uid": self.uid,
            "gid": self.gid,
            "pid": self.pid,
            "user": self.name,
            "groups": list(self.groups),
            "roles": list(self.roles),
            "vault_owner": self.owner,
            "on_behalf_via": self.via,
        }


@dataclass(frozen=True)
class RoleMap:
    """``[access.roles]``: role -> login names and @groups."""

    members: dict[str, list[str]] = field(default_factory=dict)

    def roles_of(self, name: str, groups: tuple[str, ...]) -> tuple[str, ...]:
        found = []
        for role in ROLE_NAMES:
            entries = self.members.get(role, [])
            if name in entries or any(f"@{group}" in entries for group in groups):
                found.append(role)
        return tuple(found)


def identify(uid: int, gid: int, pid: int | None, role_map: RoleMap, owner_uid: int) -> Caller:
    """The Caller for kernel-given ids: login name and groups from the system, roles from ``role_map``.

    A uid without a passwd entry is ``uid:N`` with only its primary group.
    """
    try:
        name = pwd.getpwuid(uid).pw_name
        group_ids = os.getgrouplist(name, gid)
    except KeyError:
        name, group_ids = f"uid:{uid}", [gid]
    groups = []
    for group_id in group_ids:
        try:
            groups.append(grp.getgrgid(group_id).gr_name)
        except KeyError:
            groups.append(str(group_id))
    groups_tuple = tuple(sorted(set(groups)))
    return Caller(
        uid=uid,
        gid=gid,
        pid=pid,
        name=name,
        groups=groups_tuple,
        roles=role_map.roles_of(name, groups_tuple),
        owner=uid in (owner_uid, 0),  # root can read the files anyway: no role check pretends otherwise
    )


def process_caller(settings: Settings) -> Caller:
    """This process's own user as a caller (in-process use); the vault's own user when it owns the home."""
    try:
        owner_uid = settings.home.stat().st_uid
    except FileNotFoundError:
        owner_uid = os.geteuid()  # no vault yet: whatever is made there is this user's
    except OSError:
        owner_uid = -1
    return identify(os.geteuid(), os.getegid(), os.getpid(), RoleMap(settings.access.roles), owner_uid)


@dataclass(frozen=True)
class ItemAccess:
    """What deciding whether someone may see an item needs to know about it."""

    case: str | None
    officer: str | None  # the credited officer's badge
    level: str  # the item's or its case's confidentiality, whichever is higher


def can_see(caller: Caller, item: ItemAccess, case_staff: set[str], badges: set[str]) -> bool:
    """Whether ``caller`` may see ``item`` at all (listed, shown, extracted, exported).

    Auditors read everything; above ``normal`` only clerks and custodians
    named on the item's case (``case_staff``) see it; clerks and custodians
    see normal items; an officer sees the items credited to their own badges,
    a supervisor those of the officers of their units (both in ``badges``).
    """
    if caller.owner:
        return True
    roles = set(caller.roles)
    if AUDITOR in roles:
        return True
    if item.level != NORMAL:
        return bool(roles & {CLERK, CUSTODIAN}) and caller.name in case_staff
    if roles & {CLERK, CUSTODIAN}:
        return True
    return bool(roles & {OFFICER, SUPERVISOR}) and item.officer in badges
