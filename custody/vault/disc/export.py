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
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from custody.errors import CustodyError, Said, UsageError, output_taken
from custody.i18n import N_
from custody.vault import casefiles, derivatives, keys
from custody.vault.catalog import ItemFilter
from custody.vault.disc import optical, records, verifier
from custody.vault.disc.contents import DiscContents
from custody.vault.disc.plan import (
    DISC_RESERVE,
    ITEM_RESERVE,
    CaseEmpty,
    CaseUnknown,
    DiscCheck,
    DiscFile,
    DiscNotFound,
    DiscTooFull,
    ExportNotFound,
    ExportRequest,
    NoMaker,
    NoOrganisation,
    NoSpace,
    NotInCase,
    OutputUnusable,
    PlannedItem,
    StagingFull,
    disc_file_name,
    plan_discs,
)
from custody.vault.disc.records import FAILED, VERIFIED, ExportRecord, format_export_id
from custody.vault.items import format_item_id
from custody.vault.timestamps import utc_now

# (A message of its own: an export through the daemon burns on the client, which says it too.)
NEEDS_AN_OPERATOR = N_(
    "case {case} needs {count} discs and changing discs needs an operator: run at a terminal, or "
    "export with --iso and burn each image"
)


class DiscExporter:
    """Makes, registers and verifies evidence disc exports of one vault."""

    def __init__(
        self,
        vault,
        on_step: Callable[[str], None] | None = None,
        on_next_disc: Callable[[int, int, str], None] | None = None,
    ) -> None:
        """``on_step(text)`` hears what is being done (Said words: custody.errors.localized_text); ``on_next_disc(n, m, device)``
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
            raise UsageError(reason=Said(NEEDS_AN_OPERATOR, case=request.case, count=len(discs)))
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
            contents = DiscContents(self.vault, request, export_id, discs, self._started_at(export_id))
            for index, disc_items in enumerate(discs, start=1):
                contents.write(roots[index - 1], index, disc_items, checkpoint, started_seq)
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
        if not request.with_documents:  # footage only: written records and archived files are asked for
            with vault.serialized():
                case_items = [
                    item
                    for item in case_items
                    if item.source != casefiles.ARCHIVE_SOURCE
                    and casefiles.document_row(vault.catalog, item.number) is None
                ]
            if not case_items:
                raise CaseEmpty(case=request.case)
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
            if output_taken(path):
                raise OutputUnusable(path=path, why="it already exists; custody never overwrites a file")
        folder = out.parent if str(out.parent) else Path(".")
        if not folder.is_dir():
            raise OutputUnusable(path=out, why=Said("folder {folder} does not exist", folder=folder))
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputUnusable(
                path=out, why=Said("folder {folder} is not writable by this user", folder=folder)
            )
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
            raise OutputUnusable(
                path=folder, why=Said("{strerror}; set [export] staging_dir", strerror=exc.strerror)
            ) from exc
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
                    self.on_step(
                        Said("staging {done}/{total}: {path}", done=done, total=total, path=disc_file.path)
                    )
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
            self.on_step(Said("writing disc {disc} of {discs}: {image}", disc=disc, discs=discs, image=image))
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
            self.on_step(
                Said("burning disc {disc} of {discs} to {target}", disc=disc, discs=discs, target=target)
            )
            optical.burn(xorriso, image, target)
        self.on_step(
            Said("verifying disc {disc} of {discs}: {target}", disc=disc, discs=discs, target=target)
        )
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
        raise UsageError(
            reason=Said("--media must be one of {known}", known=", ".join(optical.MEDIA_CAPACITY))
        )
    if request.capacity is not None and request.capacity <= DISC_RESERVE + ITEM_RESERVE:
        raise UsageError(
            reason=Said(
                "--capacity-mb must leave room for files (more than {reserve_mb} MB)",
                reserve_mb=DISC_RESERVE // 2**20 + 1,
            )
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
