"""A request on behalf of a person signed in to the web platform.

The web service runs as its own unprivileged user ([web] service_user) and cannot read the vault:
it asks the daemon as the person who signed in, by naming them ("on_behalf_of") in each request.
Only that service's uid may; the kernel says who is at the other end of the socket, so no other
process can pass for it. Anyone else who tries is refused, and the refusal audited. The person
gets the roles ``[access.roles]`` gives their login (and, for a login of this machine, its
groups), never the vault owner's powers, and every event names both: "chenjing via custody-web".
"""

from __future__ import annotations

import grp
import os
import pwd

from custody.config import Settings
from custody.vault import Vault
from custody.vault.access import Caller, RoleMap
from custody.vault.registry import check_registry_text


def web_service_uid(settings: Settings) -> int | None:
    """The uid of [web] service_user; None when none is configured or no such user exists."""
    if not settings.web.service_user:
        return None
    try:
        return pwd.getpwnam(settings.web.service_user).pw_uid
    except KeyError:
        return None


def is_web_service(settings: Settings, caller: Caller) -> bool:
    uid = web_service_uid(settings)
    return uid is not None and caller.uid == uid and not caller.owner


def delegate(settings: Settings, caller: Caller, login: object) -> Caller:
    """The caller for ``login`` when ``caller`` is the web service; else record a refusal and
    raise AccessDenied (also for a login that is not one line of plain text)."""
    if not is_web_service(settings, caller) or not isinstance(login, str) or not login.strip():
        with Vault(settings, caller.actor, caller=caller) as vault:
            vault.refuse(
                "on-behalf",
                str(login)[:200],
                "only the web platform's service user ([web] service_user) may act for someone else",
            )
    check_registry_text("on_behalf_of", login, required=True)
    try:
        entry = pwd.getpwnam(login)
        uid, gid = entry.pw_uid, entry.pw_gid
        groups = tuple(
            sorted({grp.getgrgid(g).gr_name for g in os.getgrouplist(login, gid) if _group_exists(g)})
        )
    except KeyError:  # one of custody's own accounts: no uid here
        uid, gid, groups = -1, -1, ()
    return Caller(
        uid=uid,
        gid=gid,
        pid=caller.pid,
        name=login,
        groups=groups,
        roles=RoleMap(settings.access.roles).roles_of(login, groups),
        owner=False,  # never the vault's own powers, whoever signs in (root too)
        via=caller.name,
    )


def _group_exists(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True
