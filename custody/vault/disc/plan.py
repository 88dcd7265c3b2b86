"""An evidence disc export's request, its plan (which item on which disc), its check, and the
ways an export is refused."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from custody.errors import CustodyError
from custody.vault import derivatives
from custody.vault.catalog import Item
from custody.vault.disc import optical

# Room kept free on each disc beyond the files: ISO structures, the PDF with
# its font, the verifier, README, case index; and per item its audit events
# and description lines. An image that still comes out too big is refused.
DISC_RESERVE = 1024 * 1024
ITEM_RESERVE = 64 * 1024


class NoOrganisation(CustodyError):
    """[station] organisation is empty: the agency's name heads the written description filed with the case; set it in custody.toml ([station] organisation = "XX县公安局") or give it to 'custody init --organisation'"""

    exit_code = 2


class NoMaker(CustodyError):
    """{option} is required: the written description must name who {role}"""

    exit_code = 2


class CaseUnknown(CustodyError):
    """no case {case} in this vault: tag items with 'custody tag ITEM --case {case}' first, or check the number"""

    exit_code = 5


class CaseEmpty(CustodyError):
    """case {case} has no items to export (none is tagged with it now)"""

    exit_code = 5


class NotInCase(CustodyError):
    """{items} not tagged with case {case}: tag them first or leave them out of --items"""

    exit_code = 5


class ItemTooLarge(CustodyError):
    """{item} needs {needed} bytes, more than one {media} disc holds ({capacity}): choose a larger --media"""

    exit_code = 5


class OutputUnusable(CustodyError):
    """cannot write {path}: {why}"""

    exit_code = 5


class StagingFull(CustodyError):
    """not enough room to stage the export in {folder}: {needed} bytes needed, {free} free; free space or set [export] staging_dir"""

    exit_code = 8


class NoSpace(CustodyError):
    """no space left writing {path}: the export was stopped and registered as failed; free space and export again"""

    exit_code = 8


class DiscTooFull(CustodyError):
    """disc {disc} came to {size} bytes, more than the medium holds ({capacity}); export with fewer items per disc"""

    exit_code = 8


class DiscNotFound(CustodyError):
    """no disc or image at {target}: give an ISO file, a drive such as /dev/sr0, or a stdio:/path drive"""

    exit_code = 5


class ExportNotFound(CustodyError):
    """no export {ref}: use an id from 'custody export ls' (EXP-000001)"""

    exit_code = 5


@dataclass(frozen=True)
class ExportRequest:
    """What the clerk asked for. Exactly one of ``iso`` and ``burn``."""

    case: str
    maker: str
    extractor: str
    items: list[str] = field(default_factory=list)
    playable: bool = True
    media: str | None = None  # None: the vault's [export] media
    capacity: int | None = None  # bytes per disc, instead of the medium's
    iso: Path | None = None
    burn: str | None = None
    # Where the images end up when that is not ``iso`` (a client of the API
    # socket fetches them from the daemon): what the registry records.
    delivered_to: str | None = None
    # The case's written records and its archived cover and index too (footage only otherwise).
    with_documents: bool = False


@dataclass(frozen=True)
class DiscFile:
    """A file as it goes onto a disc."""

    path: str  # under the bag root
    role: str  # "original" or "playable"
    item: int
    sha256: str  # the vault object's
    size: int


@dataclass
class PlannedItem:
    item: Item
    files: list[DiscFile]
    playable: derivatives.Derivative | None = None

    @property
    def bytes_on_disc(self) -> int:
        return sum(-(-f.size // optical.SECTOR) * optical.SECTOR for f in self.files) + ITEM_RESERVE


@dataclass(frozen=True)
class DiscCheck:
    """The result of reading one disc or image back."""

    target: str
    ok: bool
    problems: list[str]
    facts: list[str]
    files_checked: int
    bytes_checked: int
    image_sha256: str | None
    export: str | None = None
    disc: int | None = None

    def as_dict(self) -> dict:
        return {
            "target": self.target,
            "ok": self.ok,
            "export": self.export,
            "disc": self.disc,
            "problems": self.problems,
            "facts": self.facts,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
            "image_sha256": self.image_sha256,
        }


def plan_discs(planned: list[PlannedItem], capacity: int, media: str) -> list[list[PlannedItem]]:
    """Fill discs in order (recording order stays readable across discs); raise ItemTooLarge.

    An item's original and playable copy always share a disc.
    """
    usable = capacity - DISC_RESERVE
    discs: list[list[PlannedItem]] = [[]]
    used = 0
    for entry in planned:
        needed = entry.bytes_on_disc
        if needed > usable:
            raise ItemTooLarge(item=entry.item.item_id, needed=needed, media=media, capacity=capacity)
        if used + needed > usable and discs[-1]:
            discs.append([])
            used = 0
        discs[-1].append(entry)
        used += needed
    return discs


def disc_file_name(item: Item, name: str) -> str:
    """A portable file name for the disc: the item id, then the original name's safe characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"
    return f"{item.item_id}_{safe}"[:96]
