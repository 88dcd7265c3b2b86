"""Who is asking and from what terminal, while the daemon runs a command for a client."""

from __future__ import annotations

import contextvars

from custody.vault import access

# The width of the client's terminal while the daemon runs a command for it (None: not a terminal).
_CLIENT_COLUMNS: contextvars.ContextVar[int | None] = contextvars.ContextVar("columns", default=None)


CLIENT_COLUMNS_RANGE = range(20, 1001)


# Who is asking when the daemon runs a command for a client of its API socket
# (set per request thread; None: this process's own user).
_REMOTE_CALLER: contextvars.ContextVar[access.Caller | None] = contextvars.ContextVar(
    "custody_remote_caller", default=None
)
