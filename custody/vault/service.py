"""What every service of an open vault shares: the vault it serves, and its lock."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from custody.vault.vault import Vault


class VaultService:
    """A service of an open vault (``vault.tags``, ``vault.integrity``...): it reads and changes the
    vault only through it (its lock, ``vault.change()``, ``vault.authorize``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault


def locked(method: Callable) -> Callable:
    """Run a service's ``method`` holding its vault's lock (the daemon's workers share one catalog
    connection)."""

    @functools.wraps(method)
    def run_locked(self: VaultService, *args, **kwargs):
        with self.vault.serialized():
            return method(self, *args, **kwargs)

    return run_locked
