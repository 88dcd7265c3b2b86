"""The evidence store: sealed objects, catalog, audit chain and keys."""

from custody.vault.catalog import Item, ItemFilter
from custody.vault.intake import IngestRecord
from custody.vault.integrity import VerifyReport
from custody.vault.tagging import TagChange
from custody.vault.vault import Vault

__all__ = ["IngestRecord", "Item", "ItemFilter", "TagChange", "Vault", "VerifyReport"]
