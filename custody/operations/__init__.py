"""Named operations: a typed request and the caller in, records out; each declares the role it needs.

Every client reaches the vault through these: the command line (in-process
for the vault's own user, else through the daemon's socket) and the socket
itself, which serves exactly ``OPERATIONS`` (see ``served``). Authorization
happens in :func:`perform`, once, for every client. The protocol page
(docs/protocol.md) is generated from this registry.
"""

from __future__ import annotations

from collections.abc import Callable

from custody.config import Settings
from custody.operations import alerts, cases, casework, exports, integrity, items, station, supervision
from custody.operations.base import OPERATIONS, Context, NoRequest, Operation, decode, perform, request_fields
from custody.vault.access import Caller

__all__ = [
    "OPERATIONS",
    "Context",
    "NoRequest",
    "Operation",
    "alerts",
    "cases",
    "casework",
    "decode",
    "exports",
    "integrity",
    "items",
    "perform",
    "request_fields",
    "served",
    "station",
    "supervision",
]


def served(settings: Settings, progress_of: Callable[[], Callable[[dict], None] | None]) -> dict:
    """The socket's handlers for every operation: name -> function of (caller, request object),
    each run as its caller; ``progress_of()`` gives the request being served's progress sender."""

    def handler(name: str):
        def run(caller: Caller, request: dict) -> object:
            return perform(settings, name, request, caller=caller, progress=progress_of())

        return run

    return {name: handler(name) for name in OPERATIONS}
