"""An evidence disc export for someone who does not own the vault: made in the daemon, finished here.

The daemon makes and verifies the images as the caller, in a private outbox
(the ``export`` operation). This process then fetches them with the caller's
own rights and either writes them where the caller asked (``--iso``) or burns
each to the caller's drive (``--burn``: the caller's own device rights, the
system's xorriso), reads the burned disc back and has the daemon check that
copy against the registered image (``verify_image``: audited as the caller).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from custody.config import ExportSettings
from custody.errors import CustodyError, Said, UsageError, output_taken, said_from_data
from custody.ingestd import api
from custody.ingestd.upload import send_image

if TYPE_CHECKING:  # (the disc modules load only when a disc is made)
    from custody.vault.disc.export import ExportRequest


def export_through_daemon(
    socket_path: Path,
    request: ExportRequest,
    on_step: Callable[[str], None],
    on_next_disc: Callable[[int, int, str], None] | None,
    on_behalf_of: str | None = None,
) -> dict:
    """Have the daemon make the export, then write or burn (and verify) each disc here; return the
    export's record (ExportRecord.as_dict) as this caller sees it: each disc's target is its image
    or drive here, a burned disc's verification is the check of the disc as read back.

    Raise UsageError for a missing or unwritable --iso folder, an existing
    file, or several discs for a real drive without an operator; api.ApiError
    with the daemon's refusal; optical.DiscToolFailed when burning fails (the
    daemon records the failure first). ``on_behalf_of``: the person signed in to the web platform
    (the web service writes the images into its own folder for them; ``--iso`` only).
    """
    if bool(request.iso) == bool(request.burn):
        raise UsageError(reason="give exactly one of --iso OUT.iso and --burn DEVICE")
    if request.iso:
        _check_destination(request.iso)
    made = api.call(
        socket_path,
        "export",
        {
            "case": request.case, "items": request.items, "maker": request.maker,
            "extractor": request.extractor, "playable": request.playable, "media": request.media,
            "capacity": request.capacity, "with_documents": request.with_documents,
            "out": str(request.iso.resolve()) if request.iso else f"burn:{request.burn}",
        },
        timeout=None,
        on_progress=lambda progress: on_step(said_from_data(progress.get("said", progress["step"])))
        if "step" in progress
        else None,
        on_behalf_of=on_behalf_of,
    )  # fmt: skip
    token, record = made["token"], made["record"]
    try:
        if request.iso:
            _fetch_beside(socket_path, token, made["files"], record, request.iso, on_step, on_behalf_of)
        elif record["state"] == "verified":
            _burn_each(socket_path, token, record, request.burn, on_step, on_next_disc)
    finally:
        api.call(socket_path, "fetch", {"token": token, "done": True}, on_behalf_of=on_behalf_of)
    return record


def _check_destination(out: Path) -> None:
    folder = out.parent if str(out.parent) else Path(".")
    if output_taken(out):
        raise UsageError(
            reason=Said(
                "{out} already exists: custody never overwrites a file; choose another --iso", out=out
            )
        )
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            reason=Said(
                "cannot write {out}: folder {folder} is missing or not writable by you",
                out=out,
                folder=folder,
            )
        )


def _fetch_beside(
    socket_path: Path,
    token: str,
    files: list[str],
    record: dict,
    out: Path,
    on_step,
    on_behalf_of: str | None,
) -> None:
    """The images and their descriptions, named after ``out`` (one image is ``out`` itself); each
    disc's target becomes its image here."""
    discs = record["discs"]
    for name in files:
        local = out if name == "export.iso" else out.parent / name.replace("export", out.stem, 1)
        api.fetch_to_file(
            socket_path, {"token": token, "name": name}, local, op="fetch", on_behalf_of=on_behalf_of
        )
        on_step(Said("wrote {out}", out=local))
    for disc in discs:
        disc["target"] = str(
            out if len(discs) == 1 else out.with_name(f"{out.stem}-{disc['disc']}of{len(discs)}.iso")
        )


def _burn_each(socket_path: Path, token: str, record: dict, device: str, on_step, on_next_disc) -> None:
    """Burn each disc's image to ``device`` from a private folder, read it back, have the daemon check it."""
    from custody.vault.disc import optical
    from custody.vault.disc.export import NEEDS_AN_OPERATOR, disc_target

    discs = record["discs"]
    if len(discs) > 1 and not device.startswith("stdio:") and on_next_disc is None:
        raise UsageError(reason=Said(NEEDS_AN_OPERATOR, case=record["case"], count=len(discs)))
    private = Path(tempfile.mkdtemp(prefix="custody-burn-"))  # 0700: the footage is the caller's to guard
    try:
        for disc in discs:
            name = "export.iso" if len(discs) == 1 else f"export-{disc['disc']}of{len(discs)}.iso"
            image = private / name
            api.fetch_to_file(socket_path, {"token": token, "name": name}, image, op="fetch")
            target = disc_target(device, disc["disc"], len(discs))
            if disc["disc"] > 1 and not target.startswith("stdio:"):
                on_next_disc(disc["disc"], len(discs), target)
            on_step(
                Said(
                    "burning disc {disc} of {discs} to {target}",
                    disc=disc["disc"],
                    discs=len(discs),
                    target=target,
                )
            )
            try:
                optical.burn(ExportSettings().xorriso, image, target)
            except CustodyError as exc:
                api.call(
                    socket_path,
                    "burn_failed",
                    {"export": record["id"], "disc": disc["disc"], "target": target, "error": exc.message},
                )
                raise
            image.unlink()
            on_step(Said("verifying disc {disc} of {discs}: {target} (read back, checked by the daemon)",
                         disc=disc["disc"], discs=len(discs), target=target))  # fmt: skip
            check = send_image(socket_path, target, length=disc["image_bytes"])
            problems = list(check["problems"])
            if check["image_sha256"] != disc["image_sha256"]:
                problems.append("the burned medium differs from the image written")
            disc["target"] = target
            disc["verification"] = {"ok": not problems, "problems": problems[:50]}
        if not all(d["verification"]["ok"] for d in discs):
            record["state"] = "failed"
    finally:
        shutil.rmtree(private, ignore_errors=True)
