"""Operations on exports: the record of every evidence disc made."""

from __future__ import annotations

from dataclasses import dataclass

from custody.operations.base import Context, operation
from custody.vault import Vault
from custody.vault.disc.export import DiscExporter


@dataclass(frozen=True)
class ListExports:
    case: str | None = None  # only exports of this case


@operation("export_ls", ListExports, "report")
def export_ls(vault: Vault, request: ListExports, context: Context) -> list[dict]:
    """Exports: case, items, maker, extractor, when, media, image hashes, verification."""
    return [r.as_dict() for r in DiscExporter(vault).exports(request.case)]
