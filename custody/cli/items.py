"""Items: init, ingest, ls, show, tag, extract, cat."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.cells import cell_len
from rich.progress import (
    Progress,
)

from custody.cli.base import Session, cli, json_option, pass_session
from custody.cli.listing import KEY, TEXT, Column, Listing
from custody.cli.render import (
    _STDOUT_IS_TERMINAL,
    _byte_progress,
    _events_table,
    _media_fields,
    _say,
    _say_error,
    _size,
    console,
    said_text,
    show_fields,
    show_listing,
    wide_option,
)
from custody.errors import UsageError
from custody.i18n import N_, _
from custody.ingestd.pipeline import FileTask, IngestSession, IngestSource, IngestSummary, Skipped
from custody.operations.items import ItemRef, ListItems, TagItems
from custody.vault import Vault
from custody.vault.items import REQUIRED_TAGS, printable_name
from custody.vault.timestamps import local_display, parse_user_time

# The words of a finding and of a copy, as the catalog says them (translated where shown).
FINDING_KINDS = {
    "interruption": N_("interruption"),
    "overlap": N_("overlap"),
    "out-of-order": N_("out of order"),
}
FINDING_STATES = {"open": N_("open"), "withdrawn": N_("withdrawn")}
DERIVATIVE_ROLES = {"playable": N_("playable copy"), "thumbnail": N_("thumbnail")}


@cli.command()
@click.option(
    "--organisation",
    help="The agency's full name, heading every written description (asked at a terminal when not given).",
)
@pass_session
def init(session: Session, organisation: str | None) -> None:
    """Create a new vault: config, master and signing keys, catalog.

    Refuses to touch a home that already holds a vault. The agency's name
    goes into custody.toml as [station] organisation; exports are refused
    until it is set.

    \b
    Example:
      custody --home /srv/custody init --organisation "XX县公安局交通警察大队"
    """
    home = session.home
    if organisation is None and sys.stdin.isatty() and _STDOUT_IS_TERMINAL:
        organisation = click.prompt(
            "The agency's full name, printed at the top of each written description "
            "(Enter to set [station] organisation later)",
            default="",
            show_default=False,
        )
    organisation = (organisation or "").strip()
    if "\n" in organisation or any(ord(char) < 32 for char in organisation):
        raise UsageError(reason="--organisation must be one line of text")
    with Vault.init(session.settings(), session.actor, organisation) as vault:
        click.echo(_("created vault {vault} at {home}").format(vault=vault.audit.vault_id, home=home))
        click.echo(
            _("master key id {key} ({source})").format(key=vault.master.key_id, source=vault.master.source)
        )
        click.echo(_("Back up the keys folder now: without the master key no footage can be read."))
        if not organisation:
            click.echo(
                _(
                    "Set [station] organisation in custody.toml (the agency's name) before exporting evidence discs."
                )
            )


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--officer", help="Officer id (badge number) credited for these files.")
@click.option("--recorder", help="Serial number of the recorder the files came from.")
@json_option
@pass_session
def ingest(
    session: Session, paths: tuple[Path, ...], officer: str | None, recorder: str | None, as_json: bool
) -> None:
    """Seal files and folders into the vault (recursively, hidden files skipped).

    Each file is read once (hashed and encrypted as it is read), stored, and
    read back from disk to verify it. A file already in the vault is reported
    as a duplicate and not stored twice. Exits 1 if any file failed; the
    others are still stored.

    While the daemon serves the vault, the files go through its socket: this
    process reads them with your own rights and streams them to the daemon,
    which seals them as you (needs the clerk role unless you own the vault).

    \b
    Example:
      custody ingest /media/usb/DCIM --officer 031245 --recorder BWC-88231
      custody ingest clip.mp4 --json
    """
    settings = session.settings()
    source = IngestSource(paths=list(paths), source="import", officer=officer, recorder=recorder)
    with Vault(settings, session.actor, writer=True) as vault:
        observer = _IngestPrinter(as_json)
        with observer:
            summary = IngestSession(vault, source, settings.ingest, observer).run()
    if code := _print_ingest_summary(summary, as_json):
        sys.exit(code)


def _print_ingest_summary(summary: IngestSummary, as_json: bool) -> int:
    """Print an ingest's totals; return its exit code (1 when any file failed)."""
    if as_json:
        click.echo(json.dumps({"summary": summary.as_dict()}))
    else:
        click.echo(
            _("{new} new ({size}), {duplicate} duplicate, {failed} failed; skipped {hidden} hidden, {other} other").format(
                new=summary.new, size=_size(summary.bytes_new), duplicate=summary.duplicate, failed=summary.failed,
                hidden=summary.hidden_skipped, other=summary.other_skipped,
            )
        )  # fmt: skip
    return 0 if summary.ok else 1


# An ingested file's outcome, as its line starts (the words ingest prints).
OUTCOMES = {"new": N_("new"), "duplicate": N_("duplicate"), "known": N_("known")}


@cli.command("ls")
@click.option("--case", help="Only items whose current case number starts with this.")
@click.option("--officer", help="Only items credited to this officer.")
@click.option("--party", help="Only items whose party's name contains this (letters in any case).")
@click.option("--name", help="Only items whose file name contains this (letters in any case).")
@click.option("--untagged", is_flag=True, help="Only items missing a case, party or officer tag.")
@click.option("--since", help="Recorded (else ingested) on or after this date (YYYY-MM-DD[THH:MM]).")
@click.option("--until", help="Recorded (else ingested) on or before this date.")
@click.option("--recorder", help="Only items pulled from the recorder with this serial.")
@click.option("--late", is_flag=True, help="Only items stored after their deadline (recording end + window).")
@click.option(
    "--damaged", is_flag=True, help="Only items whose integrity check found them damaged (kept as evidence)."
)
@click.option("--important", is_flag=True, help="Only items the officer marked important on the recorder.")
@click.option("--limit", type=click.IntRange(1, 10_000), help="At most this many (a page of them).")
@click.option("--offset", type=click.IntRange(0), default=0, help="With --limit: skip this many first.")
@click.option("--newest-first", is_flag=True, help="Newest first (the web platform's footage page order).")
@wide_option
@json_option
@pass_session
def list_items(
    session: Session, case, officer, party, name, untagged, since, until, recorder, late, damaged, important,
    limit, offset, newest_first, as_json,
) -> None:  # fmt: skip
    """List items (oldest first, or --newest-first), with their current tags.

    \b
    Example:
      custody ls --case 2026-0412 --since 2026-11-01
      custody ls --party "wang li" --name clip
      custody ls --untagged --json
      custody ls --recorder BWC0042 --late
      custody ls --damaged
      custody ls --newest-first --limit 50 --offset 50 --json
    """
    request = ListItems(
        case_prefix=case or None,
        officer=officer,
        party_contains=party or None,
        name_contains=name or None,
        untagged=untagged,
        recorder=recorder,
        late=late,
        damaged=damaged,
        important=important,
        limit=limit,
        offset=offset if limit else 0,
        newest_first=newest_first,
        since=parse_user_time(since, "--since") if since else None,
        until=parse_user_time(until, "--until", end_of_day=True) if until else None,
    )
    items = session.perform("ls", request)
    if as_json:
        click.echo(json.dumps(items, indent=1))
        return
    table = Listing(
        Column("id", KEY),
        Column("name", TEXT, narrowest=20),  # a recorder's names run to 30+ characters
        Column("recorded", drop=3, time=True),
        Column("officer", drop=4),
        Column("case", drop=5),
        Column("party", TEXT),
        Column("size", drop=2, justify="right"),
        Column("sha256", drop=1),
    )
    for item in items:
        tags = item["tags"]
        table.add_row(
            item["id"],
            item["name"],
            local_display(item["recorded_start"] or item["ingested_at"])
            + ("" if item["recorded_start"] else "*"),
            tags.get("officer", "-"),
            tags.get("case", "-"),
            tags.get("party", "-"),
            _size(item["size"]),
            item["sha256"][:12],
        )
    show_listing(table)
    unknown = sum(1 for item in items if not item["recorded_start"])
    console.print(
        _("{count} item(s)").format(count=len(items))
        + (_("; * recording time unknown, ingest time shown") if unknown else "")
    )


@cli.command()
@click.argument("item")
@click.option("--long", is_flag=True, help="Every detail of each audit event, not a one-line summary.")
@wide_option
@json_option
@pass_session
def show(session: Session, item: str, long: bool, as_json: bool) -> None:
    """Show everything about one item: hashes, times, source, tags, tag history, audit events.

    ITEM is an id such as EV-000123, a sha256, or 8+ of its first hex digits.

    \b
    Example:
      custody show EV-000123
      custody show 9f86d081 --json
    """
    detail = session.perform("show", ItemRef(item))
    if as_json:
        click.echo(json.dumps(detail, indent=1))
        return
    _print_item(detail, long)


def _print_item(found: dict, long: bool) -> None:
    """``show`` at a terminal: the item's fields, its tag history and its audit events."""
    show_fields(_item_fields(found))
    history = found["tag_history"]
    if history:
        table = Listing(
            Column("tag"),
            Column("value", TEXT),
            Column("set", drop=2, time=True),
            Column("by", drop=1),
            Column("event", KEY),
            title="tag history",
        )
        for row in history:
            table.add_row(
                row["name"],
                row["value"] or "(cleared)",
                local_display(row["set_at"]),
                row["set_by"],
                str(row["audit_seq"]),
            )
        show_listing(table)
    show_listing(_events_table(found["events"], title="audit events", long=long))


def _item_fields(found: dict) -> list[tuple[str, str]]:
    size = found["size"]
    fields = [
        (N_("id"), found["id"]),
        (N_("name"), found["name"]),
        ("sha256", found["sha256"]),
        (N_("size"), _("{bytes} bytes ({size})").format(bytes=size, size=_size(size))),
        (N_("source"), found["source"]),
        (N_("source path"), found["source_path"]),
        (N_("file modified"), local_display(found["source_mtime"])),
        (
            N_("recorded"),
            _("{start} to {end}").format(
                start=local_display(found["recorded_start"]), end=local_display(found["recorded_end"])
            ),
        ),
        (
            N_("ingested"),
            _("{when} by {who}").format(when=local_display(found["ingested_at"]), who=found["ingested_by"]),
        ),
        (N_("sealed with key"), found["key_id"]),
    ]
    fields += _dock_fields(found)
    document = found.get("document")
    if document:
        pages = f", {document['pages']} page(s)" if document["pages"] else ""
        recordings = ", ".join(document["recordings"]) or (
            f"none (explained: {document['recording_exemption']})"
            if document["recording_exemption"]
            else "none"
        )
        fields += [
            (N_("written record"), f"{document['type']} of case {document['case']}, {document['stage']}, "
                               f"{document['date']}{pages}"),
            (N_("its recordings"), recordings),
        ]  # fmt: skip
    if found["media"] is not None and not (document and found["media"].get("unreadable")):
        fields += _media_fields(found["media"])
    for derivative in found["derivatives"]:
        fields.append(
            (
                _(DERIVATIVE_ROLES.get(derivative["role"], derivative["role"])),
                f"{derivative['method']}, {_size(derivative['size'])}, sha256 {derivative['sha256']} "
                f"({derivative['tool']}, {local_display(derivative['finished_at'])})",
            )
        )
    for finding in found["continuity"]:
        state = (
            _("explained: {reason}").format(reason=finding["reason"])
            if finding["state"] == "explained"
            else _(FINDING_STATES.get(finding["state"], finding["state"]))
        )
        said = _("{kind} of {seconds} s between {before} and {after} ({state})")
        fields.append((finding["id"], said.format(
            kind=_(FINDING_KINDS.get(finding["kind"], finding["kind"])), seconds=f"{finding['seconds']:.1f}",
            before=finding["before_item"], after=finding["after_item"], state=state,
        )))  # fmt: skip
    fields += _review_fields(found.get("reviews", []))
    fields += [(_("tag {name}").format(name=_(name)), value) for name, value in found["tags"].items()]
    kept = found["retention"]
    until = kept["retain_until"]
    fields.append(
        (N_("kept until"), f"{_('for ever') if until is None else until[:10]} ({said_text(kept, 'rule')})")
    )
    if kept["categories"]:
        fields.append((N_("retention categories"), ", ".join(kept["categories"])))
    missing = [name for name in REQUIRED_TAGS if not found["tags"].get(name)]
    if missing:
        fields.append((N_("missing tags"), ", ".join(_(name) for name in missing)))
    return fields


def _dock_fields(found: dict) -> list[tuple[str, str]]:
    """What a docked item's recorder and dock say: the credited officer, its deadline and flags."""
    fields: list[tuple[str, str]] = []
    if found["recorder"] or found["docked_at"]:
        flags = [
            name
            for name, on in (
                (N_("LATE"), found["late"]),
                (N_("recorder clock suspect"), found["clock_suspect"]),
                (N_("important"), found["important"]),
            )
            if on
        ]
        fields += [
            (N_("recorder"), found["recorder"] or "-"),
            (N_("credited officer"), found["credited_officer"] or "(none assigned)"),
            (N_("recording time from"), found["recorded_source"] or "-"),
            (N_("docked"), local_display(found["docked_at"])),
            (N_("deadline"), local_display(found["deadline"])),
            (N_("flags"), ", ".join(_(flag) for flag in flags) or "-"),
        ]
        if found["previous_item"]:
            fields.append((N_("replaces"), found["previous_item"]))
    return fields


def _review_fields(reviews: list[dict]) -> list[tuple[str, str]]:
    """The supervision ratings of an item (what its officer sees of them)."""
    fields = []
    for review in reviews:
        failed = ", ".join(key for key, ok in review["checks"].items() if not ok)
        said = f"{review['rating']} by {review['reviewed_by']} ({local_display(review['reviewed_at'])})"
        said += (f"; failed: {failed}" if failed else "") + (
            f"; {review['problems']}" if review["problems"] else ""
        )
        fields.append((f"supervision {review['sample']}", said))
    return fields


@cli.command()
@click.argument("items", nargs=-1, required=True)
@click.option("--case", help="Case number.")
@click.option("--party", help="Name of the party (the person the enforcement concerns).")
@click.option("--officer", help="Handling officer's id (badge number).")
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Add a retention category (repeatable), e.g. routine or penalty_evidence. Never removes one.",
)
@click.option("--note", help="Free-text note.")
@click.option(
    "--confidentiality",
    help="normal, restricted (only auditors and the clerks and custodians named on the case see it), or a level of [access] confidentiality_levels.",
)
@click.option(
    "--clear", is_flag=True, help='Allow an empty --case, --party or --officer ("") to take that tag off.'
)
@click.option(
    "--unregistered", is_flag=True, help="Allow an --officer who is not registered here (custody officer ls)."
)
@json_option
@pass_session
def tag(
    session: Session,
    items,
    case,
    party,
    officer,
    categories,
    note,
    confidentiality,
    clear,
    unregistered,
    as_json,
) -> None:
    """Set tags on one or many items at once (all or nothing; history is kept).

    An empty value ("") clears a tag; for case, party and officer only with
    --clear. --officer must be a registered officer's badge unless
    --unregistered. Each changed item gets one audit event.
    --category adds retention categories ([retention.categories]: routine,
    penalty_evidence, obstruction, major_incident, major_case, and yours); the
    longest wins. Taking one away shortens retention and is not done by tag.

    \b
    Example:
      custody tag EV-000123 EV-000124 --case 2026-0412 --party "Wang Li" --officer 031245
      custody tag EV-000123 --category penalty_evidence
      custody tag EV-000123 --note ""
      custody tag EV-000123 --case "" --clear
      custody tag EV-000123 --confidentiality restricted
    """
    request = TagItems(
        items=tuple(items),
        case=case,
        party=party,
        officer=officer,
        note=note,
        categories=tuple(categories),
        confidentiality=confidentiality,
        clear=clear,
        unregistered=unregistered,
    )
    changes = session.perform("tag", request)
    if as_json:
        click.echo(json.dumps(changes))
        return
    for change in changes:
        described = ", ".join(
            f"{_(name)} {moved['from'] or '-'} -> {moved['to'] or _('(cleared)')}"
            for name, moved in change["changed"].items()
        )
        _say(f"{change['id']}: {described}")
    _say(
        _("tagged {count} item(s); {unchanged} already had these tags").format(
            count=len(changes), unchanged=len(set(items)) - len(changes)
        )
    )


@cli.command()
@click.argument("item")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write; must not exist.",
)
@click.option(
    "--playable",
    is_flag=True,
    help="Write the playable copy (H.264/AAC MP4) instead of the original.",
)
@click.option("--thumbnail", is_flag=True, help="Write the thumbnail (JPEG) instead of the original.")
@pass_session
def extract(session: Session, item: str, out: Path, playable: bool, thumbnail: bool) -> None:
    """Write an item's original (or a derivative), decrypted and verified, to a new file (audited).

    \b
    Example:
      custody extract EV-000123 --out /media/clerk/EV-000123.mp4
      custody extract EV-000123 --playable --out /media/clerk/EV-000123-playable.mp4
      custody extract EV-000123 --thumbnail --out /tmp/EV-000123.jpg
    """
    role = _extract_role(playable, thumbnail)
    with session.vault() as vault:
        found = vault.originals.extract(item, out, role=role)
        written = vault.originals.derivative_of(found, role) if role else found
    _say_extracted(role, found.item_id, out, written.size, written.sha256)


def _extract_role(playable: bool, thumbnail: bool) -> str | None:
    """Which object extract writes: None for the original. Raise UsageError when both are asked."""
    if playable and thumbnail:
        raise UsageError(reason="--playable and --thumbnail exclude each other: extract one at a time")
    return "playable" if playable else "thumbnail" if thumbnail else None


def _say_extracted(role: str | None, item_id: str, out: Path, size: int, sha256: str) -> None:
    what = (
        {"playable": N_("playable copy of "), "thumbnail": N_("thumbnail of ")}.get(role, "") if role else ""
    )
    _say(
        _("wrote {what}{item} to {out} ({size}, sha256 {sha256} verified)").format(
            what=_(what) if what else "", item=item_id, out=out, size=_size(size), sha256=sha256
        )
    )


@cli.command()
@click.argument("item")
@pass_session
def cat(session: Session, item: str) -> None:
    """Stream an item's original to standard output (audited as a view).

    \b
    Example:
      custody cat EV-000123 | ffplay -
    """
    with session.vault() as vault:
        vault.originals.stream(item, sys.stdout.buffer)


class _IngestPrinter:
    """Shows an ingest to a person (progress bar, one line per file) or a script (JSON lines)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.display: Progress | None = None
        self.bar = None
        if not as_json and console.is_terminal:
            self.display = _byte_progress(_("ingest"))

    def __enter__(self):
        if self.display:
            self.display.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.display:
            self.display.stop()

    def discovered(self, files: int, total_bytes: int) -> None:
        if self.display:
            self.bar = self.display.add_task("ingest", total=total_bytes)

    def skipped(self, skipped: Skipped) -> None:
        if not skipped.hidden:
            _say_error(
                _("skipped {path}: {reason}").format(
                    path=printable_name(skipped.path), reason=skipped.reason
                ),
                self.display,
            )

    def progress(self, nbytes: int) -> None:
        if self.display and self.bar is not None:
            self.display.advance(self.bar, nbytes)

    def file_done(self, task: FileTask) -> None:
        if self.as_json:
            click.echo(json.dumps(task.as_dict()))
        elif task.outcome == "error":
            _say_error(_("failed: {why}").format(why=task.message), self.display)
        else:
            note = f"  ({task.warning})" if task.warning else ""
            outcome = _(OUTCOMES.get(task.outcome, task.outcome))
            _say(
                f"{outcome}{' ' * max(1, 10 - cell_len(outcome))}{task.item_id}  {task.display_path}{note}",
                self.display,
            )
