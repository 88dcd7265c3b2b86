"""The ``custody`` command: parse, call the vault service, print. No logic of its own.

One module per group of commands (:mod:`.items`, :mod:`.integrity`, :mod:`.station`,
:mod:`.replicas`, :mod:`.casework`, :mod:`.exports`) on the group and session of
:mod:`.base`; everything printed goes through :mod:`.render`; :mod:`.remote` is the
client side of the daemon's API socket (and, for now, its "run" operation).
"""

from __future__ import annotations

# Importing the command modules registers their commands on the group.
from custody.cli import casework, exports, integrity, items, replicas, station  # noqa: F401
from custody.cli.base import cli
from custody.cli.remote import REMOTE_COMMANDS, main, path_options_given, path_parameters

__all__ = ["REMOTE_COMMANDS", "cli", "main", "path_options_given", "path_parameters"]
