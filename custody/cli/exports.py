"""Evidence discs: export disc, ls, verify."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from custody.cli.base import Session, cli, json_option, pass_session
from custody.cli.listing import KEY, TEXT, Column, Listing
from custody.cli.render import _say, _size, errors, show_listing, wide_option
from custody.errors import localized_text
from custody.i18n import _
from custody.operations.exports import ListExports
from custody.vault.timestamps import local_display


@cli.group("export")
def export_group() -> None:
    """Evidence discs: a case's footage as a self-verifying BagIt bag on ISO or optical disc.

    Each disc holds the originals (and playable copies), the written
    description (text and PDF), the signed audit record of those files and a
    standalone verifier (python3 -I verify.py). Every export is registered
    and audited, and verified by reading it back.

    \b
    Example:
      custody export disc --case 2026-0412 --maker "Li Wei" --extractor "Zhang Min" --iso case.iso
      custody export disc --case 2026-0412 --maker "Li Wei" --extractor "Zhang Min" --burn /dev/sr0 --media bd
      custody export verify case.iso
      custody export ls
    """


@export_group.command("disc")
@click.option("--case", required=True, help="Case number whose footage is exported.")
@click.option(
    "--items",
    "items",
    multiple=True,
    help="Only these items of the case (repeatable, or comma-separated; default all).",
)
@click.option("--maker", help="Who made the record (named in the written description). Required.")
@click.option("--extractor", help="Who extracts it now (named in the written description). Required.")
@click.option("--no-playable", is_flag=True, help="Leave the playable copies out (originals only).")
@click.option(
    "--with-documents",
    is_flag=True,
    help="The case's written records and its archived cover and index too (listed in the description).",
)
@click.option(
    "--iso", "iso", type=click.Path(dir_okay=False, path_type=Path), help="Write an ISO image here."
)
@click.option("--burn", help="Burn to this drive (/dev/sr0, or stdio:/path for a file-backed drive).")
@click.option(
    "--media",
    type=click.Choice(["cd", "dvd", "dvd-dl", "bd", "bd-dl"]),
    help="Medium size; a case that does not fit is split over several discs (default [export] media).",
)
@click.option("--capacity-mb", type=int, help="Usable MB per disc instead of the medium's (other media).")
@json_option
@pass_session
def export_disc(
    session: Session,
    case,
    items,
    maker,
    extractor,
    no_playable,
    with_documents,
    iso,
    burn,
    media,
    capacity_mb,
    as_json,
) -> None:
    """Export a case to disc: stage, write the bag and description, make the ISO or burn, verify.

    The extraction time is the time of export. The written description
    (description.pdf and .txt, for the case file) is headed by the agency
    in [station] organisation: the export is refused while it is empty.
    Exits 1 when a disc fails its read-back verification (the export is
    then registered as failed).
    Through the daemon, it makes and verifies the images as you; your own
    process then writes them (--iso) or burns them to your drive (--burn),
    reads each disc back and has the daemon check it.

    \b
    Example:
      custody export disc --case 2026-0412 --maker "Li Wei" --extractor "Zhang Min" --iso /srv/out/2026-0412.iso
      custody export disc --case 2026-0412 --with-documents --maker "Li Wei" --extractor "Zhang Min" --iso case.iso
    """
    from custody.vault.disc.export import DiscExporter, ExportRequest

    with session.vault() as vault:
        request = ExportRequest(
            case=case,
            maker=maker or "",
            extractor=extractor or "",
            items=list(items),
            playable=not no_playable,
            with_documents=with_documents,
            media=media,
            capacity=capacity_mb * 1024 * 1024 if capacity_mb else None,
            iso=iso,
            burn=burn,
        )
        exporter = DiscExporter(
            vault,
            on_step=None
            if as_json
            else lambda text: errors.print(localized_text(text), style="dim", markup=False, soft_wrap=True),
            on_next_disc=_ask_for_next_disc if sys.stdin.isatty() else None,
        )
        record = exporter.export(request)
    if code := _print_export(record.as_dict(), as_json):
        sys.exit(code)


def _print_export(record: dict, as_json: bool) -> int:
    """Print an export (ExportRecord.as_dict) disc by disc; return its exit code (1 unless verified)."""
    if as_json:
        click.echo(json.dumps(record, indent=1, ensure_ascii=False))
        return 0 if record["state"] == "verified" else 1
    discs = record["discs"]
    for disc in discs:
        verdict = _("verified") if disc["verification"]["ok"] else _("FAILED")
        _say(
            _("{export} disc {disc} of {discs}: {target}  {files} file(s), {size}, image sha256 {sha256}  {verdict}").format(
                export=record["id"], disc=disc["disc"], discs=len(discs), target=disc["target"], files=disc["files"],
                size=_size(disc["bytes"]), sha256=disc["image_sha256"], verdict=verdict,
            )
        )  # fmt: skip
        for problem in disc["verification"]["problems"]:
            _say(f"  {problem}")
        if "burn:" not in (record["destination"] or ""):  # an image file, with its description beside it
            image = Path(disc["target"])
            _say(
                _("  description: {path} (and .txt)").format(
                    path=image.with_name(image.stem + ".description.pdf")
                )
            )
    _say(
        _("{export}: case {case}, {count} item(s): {state}").format(
            export=record["id"], case=record["case"], count=len(record["items"]), state=_(record["state"])
        )
    )
    return 0 if record["state"] == "verified" else 1


def _ask_for_next_disc(disc: int, discs: int, device: str) -> None:
    click.prompt(
        f"Insert a blank disc for disc {disc} of {discs} into {device}, then press Enter",
        default="",
        show_default=False,
    )


@export_group.command("ls")
@click.option("--case", help="Only exports of this case.")
@wide_option
@json_option
@pass_session
def export_ls(session: Session, case: str | None, as_json: bool) -> None:
    """List exports: case, items, maker, extractor, when, media, image hashes, verification.

    \b
    Example:
      custody export ls --case 2026-0412
    """
    found = session.perform("export_ls", ListExports(case))
    if as_json:
        click.echo(json.dumps(found, indent=1, ensure_ascii=False))
        return
    table = Listing(
        Column("export", KEY),
        Column("case"),
        Column("items", justify="right", drop=3),
        Column("maker", drop=2),
        Column("extractor", drop=1),
        Column("started", drop=4, time=True),
        Column("media", drop=5),
        Column("discs", TEXT, narrowest=24),
        Column("state", TEXT, narrowest=12),
        title="exports",
    )
    for r in found:
        discs = "\n".join(
            f"{d['disc']}: {d['target']} {(d.get('image_sha256') or '')[:16]}" for d in r["discs"]
        )
        state = r["state"] + (f": {r['error']}" if r["error"] else "")
        if r["verified_at"]:
            state += f"\nre-verified {local_display(r['verified_at'])}: {'ok' if r['verification']['ok'] else 'FAILED'}"
        table.add_row(
            r["id"],
            r["case"],
            str(len(r["items"])),
            r["maker"],
            r["extractor"],
            local_display(r["started_at"]),
            r["media"],
            discs or "-",
            state,
        )
    show_listing(table)


@export_group.command("verify")
@click.argument("target")
@json_option
@pass_session
def export_verify(session: Session, target: str, as_json: bool) -> None:
    """Re-verify an evidence disc or ISO image: MD5 tags, every file's SHA-256, the signed record.

    TARGET is an ISO file, a drive (/dev/sr0) or a stdio:/path drive. A disc
    exported by this vault must also match the image registered for it. The
    check is audited; exits 1 when anything fails. Through the daemon, your
    process reads TARGET whole and streams it; the daemon checks that copy.

    \b
    Example:
      custody export verify /dev/sr0
      custody export verify 2026-0412.iso --json
    """
    from custody.vault.disc.export import DiscExporter

    with session.vault() as vault:
        check = DiscExporter(vault).verify(target)
    if code := _print_disc_check(check.as_dict(), as_json):
        sys.exit(code)


def _print_disc_check(check: dict, as_json: bool) -> int:
    """Print a disc check (DiscCheck.as_dict); return its exit code (1 when it failed)."""
    if as_json:
        click.echo(json.dumps(check, indent=1, ensure_ascii=False))
    else:
        for fact in check["facts"]:
            _say(fact)
        for problem in check["problems"]:
            _say(_("FAILED: {problem}").format(problem=problem))
        _say(
            _("{target}: {files} file(s), {size} checked: ").format(
                target=check["target"], files=check["files_checked"], size=_size(check["bytes_checked"])
            )
            + (_("OK") if check["ok"] else _("FAILED"))
        )
    return 0 if check["ok"] else 1
