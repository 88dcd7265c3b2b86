"""The ``custody`` command: parse, call a named operation, print. No security decision of its own.

One module per group of commands (:mod:`.items`, :mod:`.integrity`, :mod:`.station`,
:mod:`.replicas`, :mod:`.casework`, :mod:`.exports`) on the group and session of
:mod:`.base` (``Session.perform`` runs an operation of :mod:`custody.operations`
in-process or through the daemon's socket); everything printed goes through
:mod:`.render`; :mod:`.remote` streams the commands that move bytes through the socket.
"""

from __future__ import annotations

# Importing the command modules registers their commands on the group.
from custody.cli import (  # noqa: F401
    alerts,
    cases,
    casework,
    exports,
    integrity,
    items,
    replicas,
    station,
    supervision,
)
from custody.cli.base import cli
from custody.cli.remote import main

__all__ = ["cli", "main"]
