"""Evidence disc export: a case's footage as self-verifying BagIt bags on ISO images or burned discs.

One export is: check the request -> plan the discs -> register the export
(audited ``export-started``) -> stage each file decrypted and verified in a
private folder (audited ``export-extracted`` per item) -> sign a checkpoint ->
write each disc's custody record, description, README, verifier and bag ->
make the ISO (and burn it) -> read it back and verify -> record the result
(``export-made`` or ``export-failed``). The staging folder is removed at the
end, whatever happened; an export interrupted by a crash is marked failed and
its staging removed by the next export command.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from custody.errors import CustodyError, UsageError
from custody.vault import derivatives, keys
from custody.vault.catalog import Item, ItemFilter
from custody.vault.disc import bag, description, optical, records, verifier
from custody.vault.disc.records import FAILED, VERIFIED, ExportRecord, format_export_id
from custody.vault.items import format_item_id
from custody.vault.timestamps import local_display, utc_now

RECORD_FORMAT = "custody-disc-record/1"
# Room kept free on each disc beyond the files: ISO structures, the PDF with
# its font, the verifier, README, case index; and per item its audit events
# and description lines. An image that still comes out too big is refused.
DISC_RESERVE = 1024 * 1024
ITEM_RESERVE = 64 * 1024

README = """Evidence disc / 证据光盘
=======================

This disc holds footage exported from a custody evidence vault, as a BagIt bag
(RFC 8493): the files are under data/ (originals/ exactly as the recorder wrote
them, playable/ the copies made for viewing), their SHA-256 hashes are in
manifest-sha256.txt, and the written description is description.txt and
description.pdf. custody/record.json is the vault's audit record of these files,
signed with the vault's key (custody/public-key.pem).

To check the disc, on any computer with Python 3 (nothing else needed):

    python3 -I verify.py                       (from the disc's top folder)
    python3 -I /media/cdrom/verify.py /media/cdrom

It re-hashes every file, checks the audit events and the vault's signatures,
and prints OK, or FAILED with each problem named. Compare the signing key
fingerprint it prints with the one on the paper description in the case file.
Any BagIt validator (for example the Library of Congress "bagit" tool) can
check the bag's hashes too.

核验方法：在任意装有 Python 3 的计算机上，于光盘根目录运行
    python3 -I verify.py
程序会重新计算每个文件的 SHA-256，核对审计记录及证据库签名，通过时输出 OK，
否则输出 FAILED 并列出问题。请将输出的签名公钥指纹与案卷中纸质说明上的指纹核对。
"""


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


class DiscExporter:
    """Makes, registers and verifies evidence disc exports of one vault."""

    def __init__(
        self,
        vault,
        on_step: Callable[[str], None] | None = None,
        on_next_disc: Callable[[int, int, str], None] | None = None,
    ) -> None:
        """``on_step(text)`` hears what is being done; ``on_next_disc(n, m, device)``
        is called before burning disc n (>1) of m to a real drive (the operator
        changes the disc)."""
        self.vault = vault
        self.settings = vault.settings.export
        self.station = vault.settings.station
        self.on_step = on_step or (lambda text: None)
        self.on_next_disc = on_next_disc

    # -- the registry ---------------------------------------------------------

    def exports(self, case: str | None = None) -> list[ExportRecord]:
        """Every export (of ``case``) the caller may see (its case and every item); raise
        AccessDenied without a role that may read reports."""
        self.vault.authorize("report")
        self.sweep_interrupted()
        with self.vault.serialized():
            found = records.all_exports(self.vault.catalog, case)
        return self.vault.cases.visible_records(found, lambda record: (record.items, record.case_name))

    def export_record(self, ref: str) -> ExportRecord:
        number = records.parse_export_id(ref)
        with self.vault.serialized():
            record = records.get(self.vault.catalog, number) if number else None
        if record is None:
            raise ExportNotFound(ref=ref)
        return record

    def sweep_interrupted(self) -> list[str]:
        """Mark exports whose process died as failed, remove their staging and partial images; return their ids."""
        swept = []
        with self.vault.serialized():
            unfinished = records.unfinished(self.vault.catalog)
        running = {r.export_id for r in unfinished if r.pid and _process_alive(r.pid)}
        # Staging folders are named after their export: any not being made now is left over.
        for folder in self._staging_folder().glob(f"{records.EXPORT_PREFIX}*"):
            if folder.name[: len(format_export_id(0))] not in running:
                shutil.rmtree(folder, ignore_errors=True)
        for record in unfinished:
            if record.export_id in running:
                continue
            if record.staging:
                shutil.rmtree(record.staging, ignore_errors=True)
            if record.destination.startswith("/"):
                image = Path(record.destination)
                for partial in image.parent.glob(f".{image.stem}*.custody-partial-{record.pid}"):
                    partial.unlink(missing_ok=True)
            self._finish(record.id, FAILED, record.discs, "interrupted (the exporting process stopped)")
            swept.append(record.export_id)
        return swept

    # -- making an export -----------------------------------------------------

    def export(self, request: ExportRequest) -> ExportRecord:
        """Make, write and verify the discs of ``request``; return the registered export.

        Raise on bad input before anything is registered (NoMaker, CaseUnknown,
        CaseEmpty, NotInCase, ItemTooLarge, OutputUnusable, StagingFull). A
        failure after registration leaves the export ``failed`` (audited), its
        staging removed and no partial image behind, and is raised. A disc
        that fails its read-back verification is not an exception: the
        export is returned with state ``failed`` and the problems per disc.
        """
        self.vault.authorize("export", f"case {request.case}")
        if request.media is None:
            request = dataclasses.replace(request, media=self.settings.media)
        self.sweep_interrupted()
        _check_request(request)
        if not self.station.organisation.strip():
            raise NoOrganisation()
        planned = self._plan_items(request)
        capacity = request.capacity or optical.MEDIA_CAPACITY[request.media]
        discs = plan_discs(planned, capacity, request.media)
        images = self._image_paths(request, len(discs))
        if (
            request.burn
            and len(discs) > 1
            and not request.burn.startswith("stdio:")
            and not self.on_next_disc
        ):
            raise UsageError(
                reason=f"case {request.case} needs {len(discs)} discs and changing discs needs an operator: "
                "run at a terminal, or export with --iso and burn each image"
            )
        payload_bytes = sum(f.size for entry in planned for f in entry.files)
        staging_parent = self._staging_parent()
        # Refuse early what cannot fit; the last few kilobytes (tag files, ISO
        # structures) are not estimated: running out there fails cleanly too.
        # Burning stages the image as well; an ISO goes to its own folder.
        _require_room(staging_parent, payload_bytes * (2 if request.burn else 1))
        if request.iso:
            _require_room(images[0].parent, payload_bytes)
        number, started_seq = self._register(request, planned, discs, capacity)
        export_id = format_export_id(number)
        staging = Path(tempfile.mkdtemp(prefix=f"{export_id}-", dir=staging_parent))
        written: list[Path] = []
        results: list[dict] = []
        try:
            with self.vault.change() as change:
                records.set_staging(change.catalog, number, str(staging))
            roots = self._stage(staging, export_id, discs)
            checkpoint = self._checkpoint()
            for index, disc_items in enumerate(discs, start=1):
                self._write_tag_files(
                    roots[index - 1], request, export_id, index, discs, disc_items, checkpoint, started_seq
                )
            for index, (root, disc_items) in enumerate(zip(roots, discs, strict=True), start=1):
                result = self._write_disc(
                    request, export_id, index, len(discs), root, disc_items, images, staging, written
                )
                results.append(result)
        except BaseException as exc:
            for path in written:
                path.unlink(missing_ok=True)
            failure = exc
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                failure = NoSpace(path=exc.filename or staging)
            message = failure.message if isinstance(failure, CustodyError) else f"{type(exc).__name__}: {exc}"
            self._finish(number, FAILED, results, message)
            if failure is not exc:
                raise failure from exc
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        ok = all(result["verification"]["ok"] for result in results)
        if not ok and request.iso:
            for path in written:  # an image that failed its check is not left to be used
                path.unlink(missing_ok=True)
        failed = [r["disc"] for r in results if not r["verification"]["ok"]]
        error = f"disc(s) {', '.join(map(str, failed))} failed verification" if failed else None
        self._finish(number, VERIFIED if ok else FAILED, results, error)
        return self.export_record(export_id)

    def _plan_items(self, request: ExportRequest) -> list[PlannedItem]:
        vault = self.vault
        case_items = vault.list_items(ItemFilter(case=request.case))
        if not case_items:
            with vault.serialized():
                known = records.case_is_known(vault.catalog, request.case)
            if not known:
                raise CaseUnknown(case=request.case)
            raise CaseEmpty(case=request.case)
        refs = [ref.strip() for value in request.items for ref in value.split(",") if ref.strip()]
        if refs:
            chosen = vault.resolve_all(refs)
            in_case = {item.number for item in case_items}
            outside = [item.item_id for item in chosen if item.number not in in_case]
            if outside:
                raise NotInCase(items=", ".join(outside), case=request.case)
            case_items = chosen
        case_items = sorted(
            {item.number: item for item in case_items}.values(),
            key=lambda item: (item.recorded_start or item.ingested_at, item.number),
        )
        planned = []
        for item in case_items:
            name = disc_file_name(item, item.original_name)
            files = [DiscFile(f"data/originals/{name}", "original", item.number, item.sha256, item.size)]
            playable = None
            if request.playable:
                playable = next(
                    (d for d in vault.media.derivatives(item) if d.role == derivatives.PLAYABLE), None
                )
                if playable is not None:
                    stem = name.rsplit(".", 1)[0] if "." in name else name
                    files.append(
                        DiscFile(
                            f"data/playable/{stem}.mp4",
                            "playable",
                            item.number,
                            playable.sha256,
                            playable.size,
                        )
                    )
            planned.append(PlannedItem(item=item, files=files, playable=playable))
        return planned

    def _image_paths(self, request: ExportRequest, count: int) -> list[Path]:
        if not request.iso:
            return []
        out = Path(request.iso)
        if count == 1:
            paths = [out]
        else:
            paths = [
                out.with_name(f"{out.stem}-{n}of{count}{out.suffix or '.iso'}") for n in range(1, count + 1)
            ]
        for path in paths:
            if path.exists() or path.is_symlink():
                raise OutputUnusable(path=path, why="it already exists; custody never overwrites a file")
        folder = out.parent if str(out.parent) else Path(".")
        if not folder.is_dir():
            raise OutputUnusable(path=out, why=f"folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputUnusable(path=out, why=f"folder {folder} is not writable by this user")
        return paths

    def _staging_folder(self) -> Path:
        configured = self.settings.staging_dir
        return Path(configured) if configured else self.vault.home / "run" / "export"

    def _staging_parent(self) -> Path:
        """The staging folder, created (0700) if needed; raise OutputUnusable."""
        folder = self._staging_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise OutputUnusable(path=folder, why=f"{exc.strerror}; set [export] staging_dir") from exc
        return folder

    def _register(
        self, request: ExportRequest, planned: list[PlannedItem], discs, capacity: int
    ) -> tuple[int, int]:
        """Register the export and audit its start; return (export number, seq of its export-started event)."""
        vault = self.vault
        destination = str(Path(request.iso).resolve()) if request.iso else f"burn:{request.burn}"
        if request.delivered_to:
            destination = request.delivered_to
        items = [entry.item.number for entry in planned]
        with vault.change() as change:
            number = records.insert(
                change.catalog,
                {
                    "case_name": request.case,
                    "items": items,
                    "maker": request.maker,
                    "extractor": request.extractor,
                    "playable": request.playable,
                    "media": request.media,
                    "capacity": capacity,
                    "destination": destination,
                    "started_at": utc_now(),
                    "started_by": vault.actor,
                    "pid": os.getpid(),
                    "discs": [],
                },
            )
            started_seq = change.record(
                "export-started",
                None,
                {
                    "export": format_export_id(number),
                    "case": request.case,
                    "items": [format_item_id(n) for n in items],
                    "maker": request.maker,
                    "extractor": request.extractor,
                    "media": request.media,
                    "discs": len(discs),
                    "destination": destination,
                    "playable": request.playable,
                },
            )
        return number, started_seq

    def _stage(self, staging: Path, export_id: str, discs: list[list[PlannedItem]]) -> list[Path]:
        """Decrypt every file into its disc's bag, verified as written; audit each item's extraction."""
        vault = self.vault
        roots = []
        total = sum(len(entry.files) for disc in discs for entry in disc)
        done = 0
        for index, disc_items in enumerate(discs, start=1):
            root = staging / f"disc{index}"
            roots.append(root)
            for entry in disc_items:
                for disc_file in entry.files:
                    done += 1
                    self.on_step(f"staging {done}/{total}: {disc_file.path}")
                    path = root / disc_file.path
                    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    with open(path, "xb") as sink:
                        vault.originals.read_verified(entry.item, sink, sha256=disc_file.sha256)
                with vault.change() as change:
                    change.record(
                        "export-extracted",
                        entry.item.number,
                        {
                            "export": export_id,
                            "disc": index,
                            "files": {f.path: f.sha256 for f in entry.files},
                        },
                    )
        return roots

    def _checkpoint(self) -> dict:
        self.vault.checkpoint()
        with self.vault.serialized():
            return self.vault.audit.latest_checkpoint()

    def _write_tag_files(
        self,
        root: Path,
        request: ExportRequest,
        export_id: str,
        disc: int,
        discs: list[list[PlannedItem]],
        disc_items: list[PlannedItem],
        checkpoint: dict,
        started_seq: int,
    ) -> None:
        vault = self.vault
        public_key = vault.audit.public_key
        fingerprint = keys.public_key_fingerprint(public_key)
        files = [f for entry in disc_items for f in entry.files]
        with vault.serialized():
            events = vault.audit.excerpt(
                [entry.item.number for entry in disc_items], [started_seq], checkpoint["seq"]
            )
        record = {
            "format": RECORD_FORMAT,
            "vault": vault.audit.vault_id,
            "station": self.station.name,
            "export": export_id,
            "disc": disc,
            "discs": len(discs),
            "public_key_fingerprint": fingerprint,
            "checkpoint": {
                "seq": checkpoint["seq"],
                "head": checkpoint["head_hash"],
                "at": checkpoint["signed_at"],
                "signature": checkpoint["signature"],
            },
            "files": [
                {
                    "path": f.path,
                    "role": f.role,
                    "item": format_item_id(f.item),
                    "number": f.item,
                    "sha256": f.sha256,
                    "size": f.size,
                }
                for f in files
            ],
            "events": events,
        }
        with vault.serialized():
            record["excerpt_signature"] = vault.audit.sign(verifier.excerpt_message(record))
        custody_folder = root / "custody"
        custody_folder.mkdir(mode=0o700, exist_ok=True)
        (custody_folder / "record.json").write_text(
            json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (custody_folder / "public-key.pem").write_bytes(keys.public_key_pem(public_key))
        shutil.copyfile(verifier.__file__, root / "verify.py")
        (root / "README.txt").write_text(README, encoding="utf-8")
        (root / "case-index.txt").write_text(self._case_index(request, export_id, discs), encoding="utf-8")
        described = self._description(request, export_id, disc, len(discs), disc_items, fingerprint)
        (root / "description.txt").write_text(description.render_text(described), encoding="utf-8")
        description.render_pdf(described, Path(self.settings.pdf_font), root / "description.pdf")
        bag.write_bag(
            root,
            [(f.path, f.sha256) for f in files],
            [
                ("Source-Organization", self.station.organisation or self.station.name),
                ("Bagging-Date", described.extraction_time[:10]),
                ("Payload-Oxum", bag.payload_oxum([f.size for f in files])),
                ("External-Identifier", export_id),
                ("Bag-Group-Identifier", f"{export_id} {request.case}"),
                ("Bag-Count", f"{disc} of {len(discs)}"),
                (
                    "External-Description",
                    f"Evidence footage of case {request.case}, disc {disc} of {len(discs)}",
                ),
                ("Case-Number", request.case),
                ("Party", ", ".join(described.parties) or "-"),
                ("Handling-Officer", ", ".join(described.handling_officers) or "-"),
                ("Maker", request.maker),
                ("Extractor", request.extractor),
                ("Extraction-Time", described.extraction_time),
                ("Exporting-Station", self.station.name),
                ("Custody-Vault", vault.audit.vault_id),
                ("Custody-Key-Fingerprint", fingerprint),
            ],
        )

    def _case_index(self, request: ExportRequest, export_id: str, discs: list[list[PlannedItem]]) -> str:
        lines = [
            f"案件 / Case: {request.case}",
            f"导出 / Export: {export_id}",
            f"光盘数 / Discs: {len(discs)}",
            "",
        ]
        for index, disc_items in enumerate(discs, start=1):
            lines.append(f"光盘 / Disc {index} of {len(discs)}:")
            for entry in disc_items:
                for f in entry.files:
                    lines.append(f"  {entry.item.item_id}  {f.role:<8}  {f.sha256}  {f.path}")
            lines.append("")
        return "\n".join(lines)

    def _description(
        self,
        request: ExportRequest,
        export_id: str,
        disc: int,
        discs: int,
        disc_items: list[PlannedItem],
        fingerprint: str,
    ) -> description.Description:
        vault = self.vault
        names = {officer.badge: officer.name for officer in vault.registry.officers()}

        def officer_text(badge: str | None) -> str:
            if not badge:
                return ""
            return f"{badge} {names[badge]}" if badge in names else badge

        described = []
        exported = {entry.item.number for entry in disc_items}
        interruptions: dict[str, description.DescribedInterruption] = {}
        for entry in disc_items:
            item = entry.item
            facts = vault.media.facts(item) or {}
            duration = facts.get("duration")
            integrity = facts.get("integrity") or {}
            integrity_text = (
                f"{integrity.get('result')} ({integrity.get('level')} check)"
                if integrity
                else "not checked yet"
            )
            if integrity.get("errors"):
                integrity_text += f": {integrity['errors'][0]}"
            original, playable = entry.files[0], None
            if entry.playable is not None and len(entry.files) > 1:
                made = entry.playable
                playable = description.DescribedFile(
                    path=entry.files[1].path,
                    sha256=made.sha256,
                    size=made.size,
                    made_how=(
                        f"{made.method}, {made.tool}, {local_display(made.finished_at, seconds=True)}; "
                        f"arguments: {' '.join(made.arguments)}"
                    ),
                )
            described.append(
                description.DescribedItem(
                    item_id=item.item_id,
                    original_name=item.original_name,
                    recorder=item.recorder_serial or "",
                    officer=officer_text(item.credited_officer or item.tags.get("officer")),
                    recorded_start=local_display(item.recorded_start, seconds=True)
                    if item.recorded_start
                    else "",
                    recorded_end=local_display(item.recorded_end, seconds=True) if item.recorded_end else "",
                    duration=f"{duration:.3f} s" if isinstance(duration, int | float) else "",
                    integrity=integrity_text,
                    original=description.DescribedFile(original.path, original.sha256, original.size),
                    playable=playable,
                    no_playable_because="" if playable else self._why_no_playable(request, facts),
                    important=item.important,
                )
            )
            # Interruptions between two recordings both on this export, with how each was explained.
            for finding in vault.continuity.findings(item=item):
                if finding.before_item in exported and finding.after_item in exported:
                    state = finding.state
                    if finding.state == "explained":
                        state = f"已说明 explained by {finding.closed_by}: {finding.reason}"
                    elif finding.state == "open":
                        state = "未说明 not explained yet"
                    interruptions[finding.finding_id] = description.DescribedInterruption(
                        finding_id=finding.finding_id,
                        kind=finding.kind,
                        seconds=finding.seconds,
                        before=format_item_id(finding.before_item),
                        after=format_item_id(finding.after_item),
                        state=state,
                    )
        items = [entry.item for entry in disc_items]
        return description.Description(
            case=request.case,
            parties=sorted({i.tags["party"] for i in items if i.tags.get("party")}),
            handling_officers=sorted(
                {officer_text(i.tags["officer"]) for i in items if i.tags.get("officer")}
            ),
            maker=request.maker,
            extractor=request.extractor,
            extraction_time=local_display(self._started_at(export_id), seconds=True),
            station=self.station.name,
            organisation=self.station.organisation,
            vault_id=vault.audit.vault_id,
            key_fingerprint=fingerprint,
            export_id=export_id,
            disc=disc,
            discs=discs,
            recorders=sorted({i.recorder_serial for i in items if i.recorder_serial}),
            items=described,
            interruptions=[interruptions[key] for key in sorted(interruptions)],
        )

    @staticmethod
    def _why_no_playable(request: ExportRequest, facts: dict) -> str:
        """Why an exported item has no playable copy on the disc, in words for the case file."""
        if not request.playable:
            return "导出时选择仅原始文件 / exported with originals only (--no-playable)"
        if facts.get("photo"):
            return "照片，原件即可查看 / a photo: the original is viewed as it is"
        if "unreadable" in facts:
            return f"非可识别的音视频文件 / not media ffmpeg can read: {facts['unreadable']}"
        error = (facts.get("playable") or {}).get("error")
        if error:
            return f"无法制作 / could not be made: {error}"
        if not facts:
            return "媒体检查尚未完成 / the media check has not run yet"
        if not (facts.get("video_codec") or facts.get("audio_codec")):
            return "无音视频内容 / no audio or video to play"
        return "可播放副本尚未制作 / the playable copy has not been made yet"

    def _started_at(self, export_id: str) -> str:
        return self.export_record(export_id).started_at

    def _write_disc(
        self,
        request: ExportRequest,
        export_id: str,
        disc: int,
        discs: int,
        root: Path,
        disc_items: list[PlannedItem],
        images: list[Path],
        staging: Path,
        written: list[Path],
    ) -> dict:
        """Make disc ``disc``'s image (and burn it); read it back; return its registry entry."""
        xorriso = self.settings.xorriso
        capacity = request.capacity or optical.MEDIA_CAPACITY[request.media]
        volume = optical.volume_id(request.case, export_id)
        if discs > 1:
            volume = f"{volume[:24]}_{disc}OF{discs}"
        files = [f for entry in disc_items for f in entry.files]
        if request.iso:
            image = images[disc - 1]
            partial = image.with_name(f".{image.name}.custody-partial-{os.getpid()}")
            written.append(partial)
            self.on_step(f"writing disc {disc} of {discs}: {image}")
            optical.make_iso(xorriso, root, partial, volume)
            self._check_size(partial, disc, capacity)
            os.link(partial, image)  # never replaces a file that appeared meanwhile
            written.append(image)
            partial.unlink()
            for suffix in (".txt", ".pdf"):
                beside = image.with_name(f"{image.stem}.description{suffix}")
                if not beside.exists():
                    shutil.copyfile(root / f"description{suffix}", beside)
                    written.append(beside)
            target = str(image)
        else:
            image = staging / f"disc{disc}.iso"
            optical.make_iso(xorriso, root, image, volume)
            self._check_size(image, disc, capacity)
            target = disc_target(request.burn, disc, discs)
            if disc > 1 and not target.startswith("stdio:"):
                self.on_next_disc(disc, discs, target)
            self.on_step(f"burning disc {disc} of {discs} to {target}")
            optical.burn(xorriso, image, target)
        self.on_step(f"verifying disc {disc} of {discs}: {target}")
        # A fresh image is read back file by file against the vault's hashes
        # and hashed whole; xorriso's MD5 pass (as slow as writing the image)
        # adds nothing to that here. Burned media get it, and so does
        # every 'export verify'.
        check = self.check_disc(target, expected_files={f.path: f.sha256 for f in files}, md5=not request.iso)
        if not request.iso and check.ok:
            image_sha = optical.image_sha256(str(image), image.stat().st_size)
            if check.image_sha256 != image_sha:
                check = dataclasses.replace(
                    check,
                    ok=False,
                    problems=[*check.problems, "the burned medium differs from the image written"],
                )
        return {
            "disc": disc,
            "target": target,
            "volume_id": volume,
            "items": [entry.item.item_id for entry in disc_items],
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "image_sha256": check.image_sha256,
            "image_bytes": image.stat().st_size if image.exists() else None,
            "verification": {"ok": check.ok, "problems": check.problems[:50], "at": utc_now()},
        }

    @staticmethod
    def _check_size(image: Path, disc: int, capacity: int) -> None:
        size = image.stat().st_size
        if size > capacity:
            raise DiscTooFull(disc=disc, size=size, capacity=capacity)

    def _finish(self, number: int, state: str, discs: list[dict], error: str | None) -> None:
        vault = self.vault
        action = "export-made" if state == VERIFIED else "export-failed"
        with vault.change() as change:
            records.finish(change.catalog, number, state, utc_now(), discs, error)
            details: dict = {"export": format_export_id(number), "state": state}
            if error:
                details["error"] = error
            details["discs"] = [
                {k: d.get(k) for k in ("disc", "target", "image_sha256", "files", "bytes")}
                | {"ok": d["verification"]["ok"]}
                for d in discs
            ]
            change.record(action, None, details)

    # -- reading a disc back --------------------------------------------------

    def check_disc(
        self, target: str, expected_files: dict[str, str] | None = None, md5: bool = True
    ) -> DiscCheck:
        """Read a disc or image back: xorriso's MD5 check (with ``md5``), then every file against the
        bag and the record, and the image's SHA-256.

        Nothing is written. ``expected_files`` ({path: sha256}) adds
        what the vault knows should be there. Raise optical.NotReadable when
        it is no ISO 9660 image.
        """
        problems: list[str] = []
        if md5:
            try:
                optical.check_md5(self.settings.xorriso, target)
            except optical.DiscToolFailed as exc:
                problems.append(f"MD5 check: {exc.fields['detail']}")
        with optical.IsoFiles(target) as files, concurrent.futures.ThreadPoolExecutor(1) as pool:
            image_hash = pool.submit(optical.image_sha256, target, files.image_bytes)
            try:
                report = verifier.check_disc(files)
            except verifier.NotADisc as exc:
                raise optical.NotReadable(target=target, detail=str(exc)) from exc
            image_sha256 = image_hash.result()
            problems += report.problems
            for path, expected in (expected_files or {}).items():
                actual = report.file_sha256.get(path)
                if actual is None:
                    problems.append(f"{path}: missing from the disc")
                elif actual != expected:
                    problems.append(f"{path}: differs from the vault's object {expected[:16]}")
            export, disc = _disc_identity(files)
        return DiscCheck(
            target=target,
            ok=not problems,
            problems=problems,
            facts=report.facts,
            files_checked=report.files_checked,
            bytes_checked=report.bytes_checked,
            image_sha256=image_sha256,
            export=export,
            disc=disc,
        )

    def record_burn_failure(self, ref: str, disc: int, target: str, error: str) -> None:
        """Record that burning disc ``disc`` of export ``ref`` to ``target`` failed where the caller
        burns (a client of the daemon): an ``export-burn-failed`` event, and the disc's last
        verification failed with that error. Raise ExportNotFound for an unknown export."""
        self.vault.authorize("export", target)
        vault = self.vault
        number = records.parse_export_id(ref)
        with vault.change() as change:
            record = records.get(change.catalog, number) if number else None
            if record is None:
                raise ExportNotFound(ref=ref)
            details = {"export": record.export_id, "disc": disc, "target": target, "error": error[:500]}
            records.record_verification(
                change.catalog,
                record.id,
                utc_now(),
                {**details, "ok": False, "problems": [f"burning failed: {error[:500]}"]},
            )
            change.record("export-burn-failed", None, details)

    def verify(self, target: str, described_as: str | None = None) -> DiscCheck:
        """Re-verify an existing disc, drive or image, and record the result (audited).

        When the disc is one of this vault's exports, it must also be
        byte-identical to the image registered for it, and hold the vault's
        own signing key. ``described_as`` names the target in the record and
        the result when ``target`` is a copy (an image a client sent through
        the daemon's socket). Raise DiscNotFound when there is no such target.
        """
        shown = described_as or target
        self.vault.authorize("export", shown)
        if not optical.drive_path(target).exists():
            raise DiscNotFound(target=shown)
        check = dataclasses.replace(self.check_disc(target), target=shown)
        record = None
        number = records.parse_export_id(check.export) if check.export else None
        vault = self.vault
        with vault.serialized():
            record = records.get(vault.catalog, number) if number else None
        own_key = keys.public_key_fingerprint(vault.audit.public_key)
        problems = list(check.problems)
        registered = None
        if record is not None and f"vault: {vault.audit.vault_id}" in check.facts:
            registered = next((d for d in record.discs if d.get("disc") == check.disc), None)
            if (
                registered
                and registered.get("image_sha256")
                and registered["image_sha256"] != check.image_sha256
            ):
                problems.append(
                    f"the image differs from the one registered for {record.export_id} disc {check.disc}"
                )
            if f"signing key fingerprint: {own_key}" not in check.facts:
                problems.append("the custody record is not signed with this vault's key")
        else:
            check.facts.append("not an export registered in this vault: checked against its own record only")
        check = dataclasses.replace(check, ok=not problems, problems=problems)
        at = utc_now()
        with vault.change() as change:
            if registered is not None:
                records.record_verification(
                    change.catalog,
                    record.id,
                    at,
                    {"disc": check.disc, "target": shown, "ok": check.ok, "problems": problems[:50]},
                )
            change.record(
                "export-verified",
                None,
                {
                    "target": shown,
                    "export": check.export,
                    "disc": check.disc,
                    "registered": registered is not None,
                    "ok": check.ok,
                    "image_sha256": check.image_sha256,
                    "problems": problems[:20],
                },
            )
        return check


def _check_request(request: ExportRequest) -> None:
    for option, role, value in (
        ("--maker", "made the record", request.maker),
        ("--extractor", "extracted it", request.extractor),
    ):
        if not (value or "").strip():
            raise NoMaker(option=option, role=role)
    if bool(request.iso) == bool(request.burn):
        raise UsageError(reason="give exactly one of --iso OUT.iso and --burn DEVICE")
    if request.media not in optical.MEDIA_CAPACITY:
        raise UsageError(reason=f"--media must be one of {', '.join(optical.MEDIA_CAPACITY)}")
    if request.capacity is not None and request.capacity <= DISC_RESERVE + ITEM_RESERVE:
        raise UsageError(
            reason=f"--capacity-mb must leave room for files (more than {DISC_RESERVE // 2**20 + 1} MB)"
        )


def _require_room(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise StagingFull(folder=folder, needed=needed, free=free)


def disc_target(device: str, disc: int, discs: int) -> str:
    """Where disc ``disc`` goes: the device each time (the operator changes discs), or per-disc stdio files."""
    if discs == 1 or not device.startswith("stdio:"):
        return device
    path = Path(device.removeprefix("stdio:"))
    return f"stdio:{path.with_name(f'{path.stem}-{disc}of{discs}{path.suffix}')}"


def _disc_identity(files) -> tuple[str | None, int | None]:
    """The export id and disc number a disc names in its bag-info.txt."""
    if "bag-info.txt" not in files.names():
        return None, None
    with files.open("bag-info.txt") as stream:
        info = verifier.read_bag_info(stream.read().decode("utf-8", "replace"))
    export = (info.get("External-Identifier") or [None])[0]
    count = (info.get("Bag-Count") or [""])[0]
    disc = int(count.split(" of ")[0]) if re.match(r"^\d+ of \d+$", count) else None
    return export, disc


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
