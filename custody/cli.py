"""The ``custody`` command: parse, call the vault service, print. No logic of its own."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from custody import __version__
from custody.config import Settings, load_settings, resolve_home
from custody.errors import CannotWrite, CustodyError, UsageError, cannot_write
from custody.ingestd import api, upload
from custody.ingestd.client_export import export_through_daemon
from custody.ingestd.daemon import Daemon, read_status
from custody.ingestd.jobs import MediaJobs
from custody.ingestd.pipeline import FileTask, IngestSession, IngestSource, IngestSummary, Skipped
from custody.ingestd.report import window_report
from custody.listing import KEY, LINE, TEXT, Column, Listing, field_lines, wrap_words
from custody.retention.plan import decide_one
from custody.vault import ItemFilter, Vault, access
from custody.vault.items import format_item_id, printable_name, shown_text
from custody.vault.objects import keep_stream_buffers_on_heap, limit_malloc_arenas
from custody.vault.timestamps import local_display, parse_user_time, show_utc, to_text, utc_now

# The width of the client's terminal while the daemon runs a command for it (None: not a terminal).
_CLIENT_COLUMNS: contextvars.ContextVar[int | None] = contextvars.ContextVar("columns", default=None)
CLIENT_COLUMNS_RANGE = range(20, 1001)


class _Console(Console):
    """rich's Console for data: text is never markup, hidden characters are shown escaped.

    File names, tags and party names come from outside: ``[bold red]`` or
    ``[/x]`` in one is text to show, not a style (nor an error), and a bidi
    override or a control character is shown as its escape. Our own styles
    are given as ``style=``. A command the daemon runs for a client is laid
    out for the client's terminal.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, highlight=False, emoji=False, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        columns = _CLIENT_COLUMNS.get()
        return size if columns is None else ConsoleDimensions(columns, size.height)

    def render_str(self, text: str, **kwargs) -> Text:
        return super().render_str(
            shown_text(text, keep_newlines=True), **{**kwargs, "markup": False, "emoji": False}
        )


_STDOUT_IS_TERMINAL = sys.stdout.isatty()
# CUSTODY_LAYOUT=terminal lays listings out for a terminal of $COLUMNS (80) even when the output
# is piped, e.g. into a demo's transcript or documentation; nothing then goes through a pager.
_LAYOUT_FOR_TERMINAL = _STDOUT_IS_TERMINAL or os.environ.get("CUSTODY_LAYOUT") == "terminal"


def _piped_width() -> int:
    if _LAYOUT_FOR_TERMINAL:
        try:
            return max(20, int(os.environ.get("COLUMNS", "80")))
        except ValueError:
            return 80
    return 200  # piped output is for reading later (files, README): do not cut it to 80 columns


console = _Console(width=None if _STDOUT_IS_TERMINAL else _piped_width())
errors = _Console(stderr=True)


def _echo(line: str, err: bool = False) -> None:
    """Print one line of plain text (names in it shown escaped, see shown_text)."""
    click.echo(shown_text(line, keep_newlines=True), err=err)


class CustodyGroup(click.Group):
    """Turns every CustodyError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CustodyError as exc:
            if ctx.obj and ctx.obj.debug:
                raise
            _echo(f"custody: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # an ordinary OS error is one line too, never a traceback
            if ctx.obj and ctx.obj.debug:
                raise
            _echo(f"custody: {exc.filename or 'a file'}: {exc.strerror or exc}", err=True)
            ctx.exit(CannotWrite.exit_code)


# Who is asking when the daemon runs a command for a client of its API socket
# (set per request thread; None: this process's own user).
_REMOTE_CALLER: contextvars.ContextVar[access.Caller | None] = contextvars.ContextVar(
    "custody_remote_caller", default=None
)


def at_terminal() -> bool:
    """Whether output goes to a person's terminal (laid out to fit) or to a pipe (tab-separated).

    For a client of the daemon, the request says: it sends its terminal's
    width only when its output is a terminal.
    """
    if _REMOTE_CALLER.get() is not None:
        return _CLIENT_COLUMNS.get() is not None
    return _LAYOUT_FOR_TERMINAL


def wide_option(command):
    """``--wide``: a listing keeps every column at a terminal, however wide (see custody.listing)."""

    def remember(ctx: click.Context, _param, value: bool) -> bool:
        if value:
            ctx.meta["custody.wide"] = True
        return value

    return click.option(
        "--wide",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="At a terminal, show every column however wide (columns that do not fit are left out otherwise).",
    )(command)


def show_listing(listing: Listing) -> None:
    """Print a listing for this output: fitted to a terminal, or tab-separated when piped."""
    ctx = click.get_current_context(silent=True)
    listing.show(console, at_terminal(), wide=bool(ctx and ctx.meta.get("custody.wide")))


# Commands whose output can run to many screens: at a terminal they go through a pager, as in git.
PAGED_COMMANDS = {("ls",), ("log",), ("show",), ("report", "gaps"), ("report", "window"), ("export", "ls")}


def show_fields(fields: list[tuple[str, str]]) -> None:
    """Print ``label: value`` lines, wrapped at spaces to fit a terminal, never cutting a word."""
    width = console.size.width if at_terminal() else None
    for line in field_lines([(label, shown_text(value)) for label, value in fields], width):
        console.file.write(line + "\n")


@contextlib.contextmanager
def paged():
    """At this process's own terminal, send what is printed inside through :func:`page`."""
    if not (_STDOUT_IS_TERMINAL and sys.stdin.isatty()):
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        page(buffer.getvalue())


def page(text: str) -> None:
    """Show ``text`` at the terminal; through the pager when it is longer than the screen, as git
    does (``$PAGER``, else ``less`` with ``LESS=FRX``; ``PAGER=cat`` or an empty one turns it off)."""
    command = os.environ.get("PAGER", "less")
    if text.count("\n") < console.size.height - 1 or command.strip() in ("", "cat"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    env = {**os.environ}
    env.setdefault("LESS", "FRX")  # quit at the end of one screen, keep colours, leave the text shown
    try:
        # The user's own $PAGER, run as they would run it: a shell command line (e.g. "less -S").
        pager = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        sys.stdout.write(text)
        return
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):  # the reader quit early
        pager.communicate(text.encode("utf-8", "replace"))
    pager.wait()


class Session:
    """What every command needs: where the vault is and who is asking."""

    def __init__(self, home: str | None, debug: bool) -> None:
        self.home = resolve_home(home)
        self.debug = debug
        self.caller = _REMOTE_CALLER.get()
        self.actor = self.caller.name if self.caller else _login_name()

    def settings(self) -> Settings:
        return load_settings(self.home)

    def vault(self, writer: bool = False) -> Vault:
        return Vault(self.settings(), self.actor, writer=writer, caller=self.caller)

    def api_socket(self) -> Path:
        """Where the daemon serves this home: $CUSTODY_SOCKET, else the config's (when readable), else /run."""
        if os.environ.get("CUSTODY_SOCKET"):
            return Path(os.environ["CUSTODY_SOCKET"])
        try:
            return self.settings().api_socket
        except (OSError, CustodyError):
            return Path("/run/custody/api.sock")


def json_option(command):
    """Add --json: print data as JSON for scripts instead of tables for people."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(command)


def pass_session(command):
    @click.pass_obj
    @functools.wraps(command)
    def wrapper(session: Session, *args, **kwargs):
        return command(session, *args, **kwargs)

    return wrapper


@click.group(cls=CustodyGroup)
@click.option(
    "--home",
    type=click.Path(file_okay=False, readable=False, path_type=str),
    help="Vault home (default: $CUSTODY_HOME, else /var/lib/custody as root, else ~/.local/share/custody).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--utc", is_flag=True, help="Show times in UTC instead of the station's zone (--json is always UTC)."
)
@click.version_option(__version__, prog_name="custody")
@click.pass_context
def cli(ctx: click.Context, home: str | None, debug: bool, utc: bool) -> None:
    """Body-worn-camera evidence vault: ingest, tag, extract and verify footage.

    \b
    Example:
      custody --home /srv/custody init
      custody ingest /media/recorder/DCIM --officer 031245
      custody ls --untagged
      custody --utc log --item EV-000123
    """
    if _REMOTE_CALLER.get() is None:  # (for a caller of the daemon, the request says: see _run_for_client)
        show_utc.set(utc)
    ctx.obj = Session(home, debug)


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
        click.echo(f"created vault {vault.audit.vault_id} at {home}")
        click.echo(f"master key id {vault.master.key_id} ({vault.master.source})")
        click.echo("Back up the keys folder now: without the master key no footage can be read.")
        if not organisation:
            click.echo(
                "Set [station] organisation in custody.toml (the agency's name) before exporting evidence discs."
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
            f"{summary.new} new ({_size(summary.bytes_new)}), {summary.duplicate} duplicate, "
            f"{summary.failed} failed; skipped {summary.hidden_skipped} hidden, "
            f"{summary.other_skipped} other"
        )
    return 0 if summary.ok else 1


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
@wide_option
@json_option
@pass_session
def list_items(
    session: Session, case, officer, party, name, untagged, since, until, recorder, late, damaged, as_json
) -> None:
    """List items, newest last, with their current tags.

    \b
    Example:
      custody ls --case 2026-0412 --since 2026-11-01
      custody ls --party "wang li" --name clip
      custody ls --untagged --json
      custody ls --recorder BWC0042 --late
      custody ls --damaged
    """
    where = ItemFilter(
        case_prefix=case or None,
        officer=officer,
        party_contains=party or None,
        name_contains=name or None,
        untagged=untagged,
        recorder=recorder,
        late=late,
        damaged=damaged,
        since=parse_user_time(since, "--since") if since else None,
        until=parse_user_time(until, "--until", end_of_day=True) if until else None,
    )
    with session.vault() as vault:
        items = vault.list_items(where)
    if as_json:
        click.echo(json.dumps([item.as_dict() for item in items], indent=1))
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
        table.add_row(
            item.item_id,
            item.original_name,
            local_display(item.recorded_start or item.ingested_at) + ("" if item.recorded_start else "*"),
            item.tags.get("officer", "-"),
            item.tags.get("case", "-"),
            item.tags.get("party", "-"),
            _size(item.size),
            item.sha256[:12],
        )
    show_listing(table)
    unknown = sum(1 for item in items if not item.recorded_start)
    console.print(
        f"{len(items)} item(s)" + ("; * recording time unknown, ingest time shown" if unknown else "")
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
    with session.vault() as vault:
        found = vault.resolve(item, purpose="show")
        history = vault.tag_history(found)
        events = vault.events(found)
        facts = vault.media_facts(found)
        made = vault.derivatives(found)
        findings = vault.continuity_findings(item=found)
        kept = decide_one(vault, session.settings(), found, datetime.now(UTC))
    if as_json:
        detail = found.as_dict()
        detail["retention"] = {k: v for k, v in kept.as_dict().items() if k not in ("id", "case")}
        detail["media"] = facts
        detail["derivatives"] = [d.as_dict() for d in made]
        detail["continuity"] = [f.as_dict() for f in findings]
        detail["tag_history"] = history
        detail["events"] = [event.as_dict() for event in events]
        click.echo(json.dumps(detail, indent=1))
        return
    fields = [
        ("id", found.item_id),
        ("name", found.original_name),
        ("sha256", found.sha256),
        ("size", f"{found.size} bytes ({_size(found.size)})"),
        ("source", found.source),
        ("source path", found.source_path),
        ("file modified", local_display(found.source_mtime)),
        ("recorded", f"{local_display(found.recorded_start)} to {local_display(found.recorded_end)}"),
        ("ingested", f"{local_display(found.ingested_at)} by {found.ingested_by}"),
        ("sealed with key", found.key_id),
    ]
    if found.recorder_serial or found.docked_at:
        flags = [
            name
            for name, on in (
                ("LATE", found.late),
                ("recorder clock suspect", found.clock_suspect),
                ("important", found.important),
            )
            if on
        ]
        fields += [
            ("recorder", found.recorder_serial or "-"),
            ("credited officer", found.credited_officer or "(none assigned)"),
            ("recording time from", found.recorded_source or "-"),
            ("docked", local_display(found.docked_at)),
            ("deadline", local_display(found.deadline)),
            ("flags", ", ".join(flags) or "-"),
        ]
        if found.previous_item:
            fields.append(("replaces", format_item_id(found.previous_item)))
    if facts is not None:
        fields += _media_fields(facts)
    for derivative in made:
        fields.append(
            (
                derivative.role,
                f"{derivative.method}, {_size(derivative.size)}, sha256 {derivative.sha256} "
                f"({derivative.tool}, {local_display(derivative.finished_at)})",
            )
        )
    for finding in findings:
        state = finding.state if finding.state != "explained" else f"explained: {finding.reason}"
        fields.append(
            (
                finding.finding_id,
                f"{finding.kind} of {finding.seconds:.1f} s between "
                f"{format_item_id(finding.before_item)} and {format_item_id(finding.after_item)} ({state})",
            )
        )
    fields += [(f"tag {name}", value) for name, value in found.tags.items()]
    until = kept.decision.retain_until
    fields.append(
        (
            "kept until",
            f"{'for ever' if until is None else until.date().isoformat()} ({kept.decision.rule})",
        )
    )
    if kept.categories:
        fields.append(("retention categories", ", ".join(kept.categories)))
    if found.untagged:
        fields.append(("missing tags", ", ".join(found.untagged)))
    show_fields(fields)
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
    show_listing(_events_table(events, title="audit events", long=long))


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
    values = {
        name: value.strip()
        for name, value in (
            ("case", case),
            ("party", party),
            ("officer", officer),
            ("note", note),
        )
        if value is not None
    }
    settings = session.settings()
    with session.vault() as vault:
        changes = vault.tag(
            list(items),
            values,
            [c.strip() for c in categories],
            settings.retention.categories,
            confidentiality=confidentiality.strip() if confidentiality else None,
            clear=clear,
            unregistered_officer=unregistered,
        )
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": c.item.item_id,
                        "changed": {k: {"from": old, "to": new} for k, (old, new) in c.changed.items()},
                    }
                    for c in changes
                ]
            )
        )
        return
    for change in changes:
        described = ", ".join(
            f"{name} {old or '-'} -> {new or '(cleared)'}" for name, (old, new) in change.changed.items()
        )
        _say(f"{change.item.item_id}: {described}")
    _say(f"tagged {len(changes)} item(s); {len(set(items)) - len(changes)} already had these tags")


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
        found = vault.extract(item, out, role=role)
        written = vault.derivative_of(found, role) if role else found
    _say_extracted(role, found.item_id, out, written.size, written.sha256)


def _extract_role(playable: bool, thumbnail: bool) -> str | None:
    """Which object extract writes: None for the original. Raise UsageError when both are asked."""
    if playable and thumbnail:
        raise UsageError(reason="--playable and --thumbnail exclude each other: extract one at a time")
    return "playable" if playable else "thumbnail" if thumbnail else None


def _say_extracted(role: str | None, item_id: str, out: Path, size: int, sha256: str) -> None:
    what = f"{role} copy of " if role else ""
    _say(f"wrote {what}{item_id} to {out} ({_size(size)}, sha256 {sha256} verified)")


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
        vault.stream(item, sys.stdout.buffer)


class AnchorSource(click.ParamType):
    """``--against``: ``offsite`` (every target), ``offsite:NAME``, or an evidence disc (names a path)."""

    name = "offsite|offsite:NAME|DISC"

    def convert(self, value, param, ctx) -> tuple[str, str | None]:
        if isinstance(value, tuple):
            return value
        if value == "offsite":
            return ("offsite", None)
        if value.startswith("offsite:"):
            return ("offsite", value.split(":", 1)[1])
        return ("disc", value)

    @staticmethod
    def names_a_path(value: tuple[str, str | None]) -> bool:
        return value[0] == "disc"


@cli.command()
@click.argument("items", nargs=-1)
@click.option(
    "--against",
    "against",
    multiple=True,
    type=AnchorSource(),
    help="Also compare the audit chain with anchors kept off this machine: 'offsite' (the checkpoints "
    "published to every replica target), 'offsite:NAME', or an evidence disc (an ISO image, a drive, "
    "or a folder copied from a disc). Repeatable.",
)
@click.option(
    "--against-anchor",
    "anchor_texts",
    multiple=True,
    metavar="TEXT",
    help="Also compare with a checkpoint printed by 'custody anchor' (its whole token, or SEQ/HASH "
    "from the paper register). Repeatable.",
)
@json_option
@pass_session
def verify(session: Session, items: tuple[str, ...], against, anchor_texts, as_json: bool) -> None:
    """Re-hash objects, check the audit chain and its signatures, and prove the catalog against the chain.

    Without ITEMs every object is checked and every object must belong to an
    item. The catalog must be what the chain's events make it (every item
    ingested and not disposed of through an approved request, its tags,
    categories, holds, confidentiality, assignments, copies), and every
    checkpoint must be signed by the key the chain pins. Truncation, a
    rollback and a chain rewritten and re-signed on this machine are caught
    only against anchors kept elsewhere: --against, --against-anchor.
    Exits 0 only when everything holds; never repairs anything.

    \b
    Example:
      custody verify
      custody verify EV-000123 --json
      custody verify --against offsite --against /media/cdrom
      custody verify --against-anchor 1234/9f2c4e1a77d05b3e
    """
    from custody.vault import anchors

    published = [anchors.parse_token(text) for text in anchor_texts]
    settings = session.settings()
    with session.vault() as vault:
        for kind, name in against:
            if kind == "offsite":
                published += _offsite_anchors(settings, vault, name)
            else:
                published.append(read_disc_anchor(name))
        display = None if as_json else _byte_display("verify")
        if display:
            with display:
                bar = display.add_task("verify", total=vault.bytes_to_verify(list(items)))
                report = vault.verify(list(items), lambda n: display.advance(bar, n), against=published)
        else:
            report = vault.verify(list(items), against=published)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=1))
    else:
        for problem in report.object_problems:
            label = problem.item or problem.sha256 or ""
            _say(f"{problem.kind.upper():<8} {label}: {problem.problem}")
        for problem in report.chain_problems:
            _say(f"AUDIT    seq {problem.seq}: {problem.problem}")
        for difference in report.catalog_problems:
            _say(f"CATALOG  {difference}")
        for problem in report.anchor_problems:
            _say(f"ANCHOR   {problem}")
        anchored = f"; against {len(report.anchors_checked)} anchor(s)" if report.anchors_checked else ""
        _say(
            f"checked {report.objects_checked} object(s), {_size(report.bytes_checked)}; "
            f"audit chain {report.chain_events} event(s), {report.chain_checkpoints} checkpoint(s){anchored}: "
            + ("OK" if report.ok else "FAILED")
        )
    if not report.ok:
        sys.exit(1)


def _offsite_anchors(settings: Settings, vault: Vault, name: str | None) -> list:
    """What each replica target (or target ``name``) holds of the chain. Raise UsageError, ReplicaUnavailable."""
    from custody.vault.offsite.published import published_chain
    from custody.vault.offsite.target import S3Target

    if name is not None and name not in settings.targets:
        raise UsageError(
            reason=f"no [targets.{name}] in custody.toml: use one of {', '.join(settings.targets) or '(none)'}"
        )
    names = [name] if name else list(settings.targets)
    if not names:
        raise UsageError(reason="--against offsite: this vault has no replica target ([targets.NAME])")
    return [published_chain(S3Target(each, settings.targets[each]), vault.master) for each in names]


def read_disc_anchor(target: str):
    """The anchor an evidence disc carries, read with this process's own rights: a folder copied from a
    disc, or an ISO image or drive. Raise AnchorUnreadable."""
    from custody.vault import anchors
    from custody.vault.disc import optical, verifier

    path = Path(target)
    try:
        if path.is_dir():
            record = (path / verifier.RECORD).read_text(encoding="utf-8")
            public_key = (path / verifier.PUBLIC_KEY).read_text(encoding="utf-8")
        else:
            with optical.IsoFiles(target) as files:
                record = files.open(verifier.RECORD).read().decode("utf-8")
                public_key = files.open(verifier.PUBLIC_KEY).read().decode("utf-8")
    except (OSError, KeyError, UnicodeDecodeError, CustodyError) as exc:
        problem = (
            exc.message if isinstance(exc, CustodyError) else (getattr(exc, "strerror", None) or str(exc))
        )
        raise anchors.AnchorUnreadable(
            source=target, problem=f"no custody record readable there ({problem})"
        ) from exc
    return anchors.from_disc_record(record, public_key, f"disc {target}")


@cli.command()
@json_option
@pass_session
def anchor(session: Session, as_json: bool) -> None:
    """Print the audit chain's newest signed checkpoint, to keep off this machine.

    Write it in the paper register (the event number and the first 16 hex
    digits of its hash are enough), or send the whole token by mail. Later,
    'custody verify --against-anchor TEXT' shows whether the chain still
    holds what it held then: a chain cut short, rolled back or rewritten is
    caught.

    \b
    Example:
      custody anchor
      custody verify --against-anchor 1234/9f2c4e1a77d05b3e
    """
    with session.vault() as vault:
        point = vault.anchor()
    if point is None:
        raise UsageError(reason="the audit chain has no signed checkpoint yet")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "vault": point.vault,
                    "seq": point.seq,
                    "head_hash": point.head_hash,
                    "signed_at": point.signed_at,
                    "key_fingerprint": point.key_fingerprint,
                    "signature": point.signature,
                    "token": point.token(),
                },
                indent=1,
            )
        )
        return
    grouped = " ".join(point.head_hash[i : i + 8] for i in range(0, 64, 8))
    _say(f"vault       {point.vault}")
    _say(f"checkpoint  event {point.seq}, signed {local_display(point.signed_at)} (UTC {point.signed_at})")
    _say(f"head hash   {grouped}")
    _say(f"signed by   key {point.key_fingerprint}")
    _say(f"for paper   {point.seq}/{point.head_hash[:16]}")
    _say(f"token       {point.token()}")


@cli.group("keys")
def keys_group() -> None:
    """The vault's keys (the vault's own user, in-process).

    \b
    Example:
      custody keys rotate-signing
    """


@keys_group.command("rotate-signing")
@json_option
@pass_session
def keys_rotate_signing(session: Session, as_json: bool) -> None:
    """Replace the key that signs the audit chain's checkpoints.

    The old key signs the hand-over (a signing-key-rotated event), so verify
    follows the chain from one key to the next; a key changed any other way
    is reported by verify. Publish a new anchor afterwards.

    \b
    Example:
      custody keys rotate-signing
    """
    with session.vault(writer=True) as vault:
        rotated = vault.rotate_signing_key()
    if as_json:
        click.echo(json.dumps({"old": rotated.old_fingerprint, "new": rotated.new_fingerprint}))
        return
    _say(f"signing key {rotated.old_fingerprint} handed over to {rotated.new_fingerprint}")


@cli.command()
@click.option("--item", help="Only events about this item.")
@click.option("--long", is_flag=True, help="Every detail of each event (wrapped), not a one-line summary.")
@wide_option
@json_option
@pass_session
def log(session: Session, item: str | None, long: bool, as_json: bool) -> None:
    """Print the audit chain (every action on the vault, in order).

    The whole chain is for auditors; with --item, anyone who may see the
    item reads its own history. At a terminal each event is one line, its
    details summed up as key=value (cut to fit); --long shows them whole,
    and long output goes through a pager.

    \b
    Example:
      custody log --item EV-000123
      custody log --long | less
      custody log --json
    """
    with session.vault() as vault:
        events = vault.events(vault.resolve(item, purpose="show") if item else None)
    if as_json:
        click.echo(json.dumps([event.as_dict() for event in events], indent=1))
        return
    show_listing(_events_table(events, long=long))


@cli.command()
@json_option
@pass_session
def whoami(session: Session, as_json: bool) -> None:
    """Who custody takes you for: user, uid, groups and roles (the one thing anyone may ask).

    Through the daemon's socket when one serves this vault (the identity is
    the kernel's, from the socket), else in-process.

    \b
    Example:
      custody whoami --json
    """
    socket_path = session.api_socket()
    if api.is_served(socket_path):
        result = api.call(socket_path, "whoami")
    else:
        try:
            settings = session.settings()
        except (OSError, CustodyError):  # an unreadable config gives no roles
            settings = Settings(home=session.home)
        caller = access.process_caller(settings)
        result = {**caller.as_dict(), "via": "in-process", "vault": str(session.home)}
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    roles_text = ", ".join(result["roles"]) or "none (you may only run 'custody whoami')"
    _say(f"{result['user']} (uid {result['uid']}, groups {', '.join(result['groups'])})")
    _say(f"roles: {roles_text}" + ("; the vault's own user" if result["vault_owner"] else ""))
    _say(f"via: {result['via']} ({result['vault']})")


# -- the docking station: officers, recorders, daemon, status, window report --


@cli.group()
def officer() -> None:
    """Register officers (badge or enforcement-certificate number, name, unit).

    \b
    Example:
      custody officer add 031245 --name "Wang Li" --unit "Traffic 2"
      custody officer ls
    """


@officer.command("add")
@click.argument("badge")
@click.option("--name", required=True, help="The officer's full name.")
@click.option("--unit", default="", help="The officer's unit.")
@json_option
@pass_session
def officer_add(session: Session, badge: str, name: str, unit: str, as_json: bool) -> None:
    """Register an officer by badge number (audited).

    \b
    Example:
      custody officer add 031245 --name "Wang Li" --unit "Traffic 2"
    """
    with session.vault() as vault:
        added = vault.add_officer(badge.strip(), name.strip(), unit.strip())
    if as_json:
        click.echo(json.dumps(added.as_dict()))
    else:
        _say(f"registered officer {added.badge} {added.name}" + (f" ({added.unit})" if added.unit else ""))


@officer.command("login")
@click.argument("badge")
@click.argument("login")
@pass_session
def officer_login(session: Session, badge: str, login: str) -> None:
    """Say which login name is officer BADGE: with the officer role, they see their own footage.

    \b
    Example:
      custody officer login 031245 wangli
    """
    with session.vault() as vault:
        vault.link_officer_login(badge, login)
    _say(f"officer {badge} is login {login}")


@officer.command("ls")
@wide_option
@json_option
@pass_session
def officer_ls(session: Session, as_json: bool) -> None:
    """List registered officers.

    \b
    Example:
      custody officer ls --json
    """
    with session.vault() as vault:
        officers = vault.officers()
    if as_json:
        click.echo(json.dumps([o.as_dict() for o in officers], indent=1))
        return
    table = Listing(
        Column("badge", KEY),
        Column("name", TEXT),
        Column("unit", TEXT),
        Column("registered", drop=2, time=True),
        Column("by", drop=1),
    )
    for o in officers:
        table.add_row(o.badge, o.name, o.unit or "-", local_display(o.added_at), o.added_by)
    show_listing(table)
    console.print(f"{len(officers)} officer(s)")


@cli.group()
def recorder() -> None:
    """Register recorders (by USB serial) and assign them to officers over time.

    The officer credited for a file is the one assigned to its recorder at the
    file's recording time.

    \b
    Example:
      custody recorder add BWC0042 --officer 031245 --profile bwc-badge
      custody recorder assign BWC0042 028811 --from 2026-12-01
      custody recorder ls
    """


@recorder.command("add")
@click.argument("serial")
@click.option("--profile", default="", help="Recorder profile (default: the first whose match rules fit).")
@click.option("--officer", "badge", help="Officer the recorder is assigned to.")
@click.option("--from", "valid_from", help="Assignment starts at this time (default now; local time).")
@click.option("--vendor", default="", help="Maker, for the record.")
@click.option("--model", default="", help="Model, for the record.")
@json_option
@pass_session
def recorder_add(session: Session, serial, profile, badge, valid_from, vendor, model, as_json) -> None:
    """Register a recorder by its USB serial number (audited).

    Only registered recorders are pulled when docked.

    \b
    Example:
      custody recorder add BWC0042 --officer 031245 --from 2026-11-01
    """
    start = parse_user_time(valid_from, "--from") if valid_from else None
    with session.vault() as vault:
        added = vault.add_recorder(serial.strip(), profile, badge, start, vendor, model)
    if as_json:
        click.echo(json.dumps(added.as_dict()))
    else:
        _say(
            f"registered recorder {added.serial}"
            + (f", assigned to {added.current_officer}" if added.current_officer else ", not assigned")
            + (
                f" (assigned to {added.upcoming_officer} from {local_display(added.upcoming_from)})"
                if added.upcoming_officer
                else ""
            )
        )


@recorder.command("assign")
@click.argument("serial")
@click.argument("badge")
@click.option("--from", "valid_from", help="Assignment starts at this time (default now; local time).")
@json_option
@pass_session
def recorder_assign(session: Session, serial: str, badge: str, valid_from: str | None, as_json: bool) -> None:
    """Assign a recorder to an officer from a time on (audited; history kept).

    \b
    Example:
      custody recorder assign BWC0042 028811 --from 2026-12-01T07:00
    """
    start = parse_user_time(valid_from, "--from") if valid_from else None
    with session.vault() as vault:
        ended = vault.assign_recorder(serial, badge, start)
        assignments = vault.assignments(serial)
    if as_json:
        click.echo(json.dumps({"serial": serial, "assignments": [a.as_dict() for a in assignments]}))
        return
    if start is not None and start > utc_now():  # a later assignment: the one in force stays until then
        until = f" ({ended.badge} until then)" if ended else ""
        _say(f"recorder {serial} assigned to {badge} from {local_display(start)}{until}")
        return
    _say(f"recorder {serial} assigned to {badge}" + (f" (was {ended.badge})" if ended else ""))


@recorder.command("ls")
@wide_option
@json_option
@pass_session
def recorder_ls(session: Session, as_json: bool) -> None:
    """List recorders with the officer assigned now (and the next one, when an assignment starts later) and last dock.

    \b
    Example:
      custody recorder ls --json
    """
    with session.vault() as vault:
        recorders = vault.recorders()
        history = {r.serial: vault.assignments(r.serial) for r in recorders} if as_json else {}
    if as_json:
        click.echo(
            json.dumps(
                [{**r.as_dict(), "assignments": [a.as_dict() for a in history[r.serial]]} for r in recorders],
                indent=1,
            )
        )
        return
    table = Listing(
        Column("serial", KEY),
        Column("officer", TEXT),
        Column("profile", drop=1),
        Column("last docked", drop=2, time=True),
        Column("state", TEXT),
    )
    for r in recorders:
        upcoming = (
            f" (then {r.upcoming_officer} from {local_display(r.upcoming_from)})"
            if r.upcoming_officer
            else ""
        )
        table.add_row(
            r.serial,
            (r.current_officer or "-") + upcoming,
            r.profile or "(by rules)",
            local_display(r.last_docked) if r.last_docked else "never",
            f"retired {local_display(r.retired_at)}" if r.retired_at else "active",
        )
    show_listing(table)
    console.print(f"{len(recorders)} recorder(s)")


@recorder.command("retire")
@click.argument("serial")
@json_option
@pass_session
def recorder_retire(session: Session, serial: str, as_json: bool) -> None:
    """Retire a recorder: no longer pulled when docked; its footage and history stay (audited).

    \b
    Example:
      custody recorder retire BWC0042
    """
    with session.vault() as vault:
        retired = vault.retire_recorder(serial)
    if as_json:
        click.echo(json.dumps(retired.as_dict()))
        return
    _say(f"recorder {retired.serial} retired")


@cli.command()
@click.option("--log-json", is_flag=True, help="Log one JSON object per line instead of text.")
@pass_session
def daemon(session: Session, log_json: bool) -> None:
    """Run the docking daemon in the foreground (as systemd runs it).

    Follows USB devices: a registered recorder that is docked is mounted
    read-only and every new file is pulled into the vault; unknown devices
    are logged, audited and left alone. SIGTERM stops it cleanly (the file
    being read is abandoned, everything unmounted); SIGHUP reloads the config.

    \b
    Example:
      custody --home /var/lib/custody daemon
    """
    _configure_logging(session.debug, log_json)
    from custody.retention.plan import replica_lock_rule

    _route_output_by_thread()
    limit_malloc_arenas()
    Daemon(
        session.settings(),
        "custody-daemon",
        replica_locks=replica_lock_rule,
        extra_handlers={"run": functools.partial(_run_for_client, session.home)},
    ).run()


@cli.command()
@wide_option
@json_option
@pass_session
def status(session: Session, as_json: bool) -> None:
    """Show docked recorders with live progress, recent sessions, media jobs, findings to explain, errors.

    \b
    Example:
      custody status
      custody status --json
    """
    live = read_status(session.home)
    with session.vault() as vault:
        sessions = vault.dock_sessions(limit=10)
        unknown = vault.unknown_devices(limit=10)
        job_counts = vault.job_counts()
        failed_jobs = vault.failed_jobs(limit=10)
        open_findings, oldest_finding = vault.open_findings_summary()
        disk = vault.disk_space()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "daemon": live,
                    "sessions": [s.as_dict() for s in sessions],
                    "unknown_devices": [u.as_dict() for u in unknown],
                    "media_jobs": job_counts,
                    "failed_media_jobs": [j.as_dict() for j in failed_jobs],
                    "open_continuity_findings": open_findings,
                    "vault_disk": disk,
                },
                indent=1,
            )
        )
        return
    if disk["full"]:
        _say(
            f"vault disk full: {_size(disk['free_bytes'])} free, {_size(disk['reserve_bytes'])} kept in "
            "reserve ([vault] min_free_mb); pulls wait and uploads are refused until space is freed"
        )
    if live is None:
        _say("daemon: not running")
    else:
        _say(f"daemon: running (pid {live['pid']}, since {local_display(live['started_at'])})")
        docked = Listing(
            Column("recorder", KEY),
            Column("state"),
            Column("files"),
            Column("bytes", drop=3),
            Column("rate", drop=2),
            Column("ETA"),
            Column("reading", TEXT, drop=1),
            title="docked",
        )
        for entry in live["docked"]:
            if "files_total" in entry:
                docked.add_row(
                    entry["serial"],
                    entry["state"],
                    f"{entry['files_done']} of {entry['files_total']}",
                    f"{_size(entry['bytes_done'])} of {_size(entry['bytes_total'])}",
                    f"{_size(entry['rate_bytes_per_second'])}/s",
                    f"{entry['eta_seconds']} s",
                    ", ".join(entry.get("reading") or []) or "-",
                )
            else:
                docked.add_row(
                    entry.get("serial") or entry.get("device", "?"), entry["state"], "-", "-", "-", "-", "-"
                )
        show_listing(docked)
        for error in live.get("errors", []):
            _say(f"error {local_display(error['at'])}: {error['message']}")
    table = Listing(
        Column("session", KEY, justify="right"),
        Column("recorder", KEY),
        Column("officer", drop=2),
        Column("docked", drop=3, time=True),
        Column("state"),
        Column("found", justify="right"),
        Column("new", justify="right"),
        Column("dup", drop=1, justify="right"),
        Column("known", drop=1, justify="right"),
        Column("failed", justify="right"),
        title="sessions",
    )
    for s in sessions:
        table.add_row(
            str(s.id),
            s.serial,
            s.officer or "-",
            local_display(s.docked_at),
            s.state,
            str(s.files_found),
            str(s.files_new),
            str(s.files_duplicate),
            str(s.files_known),
            str(s.files_failed),
        )
    show_listing(table)
    _say(
        "media jobs: "
        + ", ".join(
            f"{job_counts.get(state, 0)} {state}" for state in ("queued", "running", "done", "failed")
        )
    )
    for job in failed_jobs:
        _say(
            f"  failed: job {job.id} {job.kind} of {format_item_id(job.item)} after {job.attempts} tries: {job.last_error}"
        )
    if open_findings:
        _say(
            f"continuity: {open_findings} finding(s) to explain, oldest {oldest_finding}: "
            "see 'custody report gaps --open'"
        )
    if unknown:
        table = Listing(
            Column("device", KEY),
            Column("reason", TEXT),
            Column("last seen", drop=2, time=True),
            Column("times", drop=1, justify="right"),
            title="devices not ingested",
        )
        for u in unknown:
            table.add_row(u.key, u.identity.get("reason", "-"), local_display(u.last_seen), str(u.times))
        show_listing(table)


@cli.group()
def media() -> None:
    """Media work on sealed originals, from a persistent job queue.

    Per item: metadata (ffprobe), a fast integrity check, a playable copy
    (H.264/AAC MP4: a remux when the original is H.264, else a transcode) and
    a thumbnail, stored as encrypted derivatives; continuity analysis of the
    recorder's segments; then, at low priority, a full decode check.

    \b
    Example:
      custody media run --once
    """


@media.command("run")
@click.option(
    "--once", is_flag=True, help="Work until the queue is empty, then exit (default: keep following it)."
)
@json_option
@pass_session
def media_run(session: Session, once: bool, as_json: bool) -> None:
    """Run queued media jobs with a pool of workers ([media] workers; 0 = one per core).

    Without the daemon, this is how facts, playable copies and thumbnails
    are made. A job whose tool
    crashes or hits its limits is tried again up to [media] max_attempts times,
    then shown as failed by 'custody status'. Exits 1 when a job failed for good.

    \b
    Example:
      custody media run --once --json
    """
    import signal
    import threading

    settings = session.settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Vault(settings, session.actor, writer=True) as vault:
        summary = MediaJobs(vault, settings).run(stop=stop, until_empty=once)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        _say(f"media jobs: {summary.done} done, {summary.retried} to retry, {summary.failed} failed")
        for error in summary.errors:
            _say_error(error)
    if summary.failed:
        sys.exit(1)


@cli.group()
def replicate() -> None:
    """Off-site replicas in S3-compatible buckets ([targets.NAME] in custody.toml).

    Objects go up sealed (the provider never sees footage), are verified by
    the vault itself, and are locked (Object Lock, COMPLIANCE) for at least
    two years where the bucket allows it.

    \b
    Example:
      custody replicate run --once
      custody replicate status
      custody replicate check --download
    """


def _replicator(session: Session, vault: Vault, target: str | None):
    from custody.retention.plan import replica_lock_rule
    from custody.vault.offsite.replicator import Replicator

    settings = session.settings()
    if not settings.targets:
        raise UsageError(reason="no replication target: add a [targets.NAME] table to custody.toml")
    return Replicator(vault, settings, only=target, lock_rule=replica_lock_rule(vault, settings))


@replicate.command("run")
@click.option("--once", is_flag=True, help="Send and verify everything pending now, then exit.")
@click.option(
    "--repair",
    is_flag=True,
    help="First compare each bucket with the catalog; send again what is missing or differs.",
)
@click.option("--target", help="Only this target.")
@json_option
@pass_session
def replicate_run(session: Session, once: bool, repair: bool, target: str | None, as_json: bool) -> None:
    """Send sealed objects to the targets and verify each copy (audited); exit 1 when any failed.

    Without --once, keeps following the queue (what the daemon does). A
    failure waits (backoff with jitter) and is tried again; nothing counts as
    replicated until the vault has verified it.

    \b
    Example:
      custody replicate run --once --json
      custody replicate run --once --repair
    """
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Vault(session.settings(), session.actor, writer=True) as vault:
        replicator = _replicator(session, vault, target)
        summary = replicator.run(repair=repair, stop=stop) if once else replicator.follow(stop)
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        _say(
            f"replicas: {summary.uploaded} uploaded, {summary.verified} verified, {summary.resent} sent again, "
            f"{summary.failed} failed"
        )
        for error in summary.errors:
            _say_error(error)
    if summary.failed:
        sys.exit(1)


@replicate.command("status")
@click.option("--target", help="Only this target.")
@wide_option
@json_option
@pass_session
def replicate_status(session: Session, target: str | None, as_json: bool) -> None:
    """Per target: objects total, replicated, verified, failing, bytes, replication lag, last error.

    \b
    Example:
      custody replicate status --json
    """
    with session.vault() as vault:
        report = _replicator(session, vault, target).status()
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    table = Listing(
        Column("target", KEY),
        Column("bucket", TEXT),
        Column("objects", justify="right"),
        Column("replicated", justify="right"),
        Column("verified", justify="right"),
        Column("failing", justify="right"),
        Column("verified bytes", drop=1, justify="right"),
        Column("lag", drop=2, justify="right"),
        title="replicas",
    )
    for row in report:
        table.add_row(
            row["target"],
            row["bucket"],
            str(row["objects"]),
            str(row["replicated"]),
            str(row["verified"]),
            str(row["failing"]),
            _size(row["verified_bytes"]),
            f"{row['lag_seconds']} s" if row["oldest_unreplicated"] else "-",
        )
    show_listing(table)
    for row in report:
        _say(f"{row['target']}: Object Lock {row['object_lock']}")
        if row["last_error"]:
            _say(f"{row['target']}: last error: {row['last_error']}")


@replicate.command("check")
@click.option("--target", help="Only this target.")
@click.option("--download", is_flag=True, help="Download every object and re-hash it (slow, thorough).")
@json_option
@pass_session
def replicate_check(session: Session, target: str | None, download: bool, as_json: bool) -> None:
    """Compare catalog and bucket, read-only: = same, - missing, + extra, * differs, ! error.

    Exits 1 on any line that is not '='.

    \b
    Example:
      custody replicate check
      custody replicate check --target offsite --download --json
    """
    with session.vault() as vault:
        lines = _replicator(session, vault, target).check(download=download)
    if as_json:
        click.echo(json.dumps([line.as_dict() for line in lines], indent=1))
    else:
        for line in lines:
            _echo(f"{line.mark} {line.target} {line.sha256} {line.item or '-'} {line.detail}")
        counts = {mark: sum(line.mark == mark for line in lines) for mark in "=-+*!"}
        _say("  ".join(f"{mark} {count}" for mark, count in counts.items()))
    if any(line.mark != "=" for line in lines):
        sys.exit(1)


@cli.command()
@click.option(
    "--from",
    "target",
    required=True,
    help="The [targets.NAME] to rebuild from (in the new home's custody.toml).",
)
@click.option(
    "--master-key",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The vault's master key file (from the key backup).",
)
@json_option
@pass_session
def restore(session: Session, target: str, master_key: Path, as_json: bool) -> None:
    """Rebuild a vault in a new --home from an off-site replica and the master key.

    Put a custody.toml holding the target's [targets.NAME] table in the new
    home first. Every object is downloaded and re-hashed, every sidecar's and
    checkpoint's signature checked, the audit chain checked link by link.

    \b
    Example:
      custody --home /var/lib/custody-new restore --from offsite --master-key /root/master.key
    """
    from custody.vault.offsite.published import restore as restore_vault

    report = restore_vault(session.settings(), target, master_key, session.actor)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    for problem in report.problems:
        _say(problem)
    _say(
        f"restored {report.items} item(s), {report.objects} object(s), {report.audit_events} audit event(s) "
        f"from {target} into {session.home}"
    )


@cli.group()
def hold() -> None:
    """Legal holds: a held item (or every item of a held case) is never disposed of.

    \b
    Example:
      custody hold add EV-000123 --reason "court order 2026-17"
      custody hold add --case 2026-0412 --reason "appeal pending"
      custody hold release HOLD-000001 --reason "appeal decided"
    """


@hold.command("add")
@click.argument("item", required=False)
@click.option("--case", help="Hold every item of this case (present and future).")
@click.option("--reason", required=True, help="Why (kept in the audit chain).")
@json_option
@pass_session
def hold_add(session: Session, item: str | None, case: str | None, reason: str, as_json: bool) -> None:
    """Put a legal hold on ITEM or on a whole --case (audited).

    \b
    Example:
      custody hold add EV-000123 --reason "court order 2026-17"
      custody hold add --case 2026-0412 --reason "appeal pending"
    """
    with session.vault() as vault:
        placed = vault.place_hold(reason, ref=item, case=case)
    if as_json:
        click.echo(json.dumps(placed.as_dict()))
        return
    what = f"case {placed.case_name}" if placed.case_name else format_item_id(placed.item)
    _say(f"{placed.hold_id}: {what} held: {placed.reason}")


@hold.command("release")
@click.argument("hold_id")
@click.option("--reason", required=True, help="Why the hold ends (kept in the audit chain).")
@json_option
@pass_session
def hold_release(session: Session, hold_id: str, reason: str, as_json: bool) -> None:
    """Release a hold (audited); its items follow their retention again.

    \b
    Example:
      custody hold release HOLD-000001 --reason "appeal decided"
    """
    with session.vault() as vault:
        released = vault.release_hold(hold_id, reason)
    if as_json:
        click.echo(json.dumps(released.as_dict()))
        return
    _say(f"{released.hold_id} released: {released.release_reason}")


@hold.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Released holds too.")
@wide_option
@json_option
@pass_session
def hold_ls(session: Session, show_all: bool, as_json: bool) -> None:
    """List holds (active ones unless --all).

    \b
    Example:
      custody hold ls --all --json
    """
    with session.vault() as vault:
        found = vault.holds(active_only=not show_all)
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in found], indent=1))
        return
    table = Listing(
        Column("hold", KEY),
        Column("on", KEY),
        Column("reason", TEXT),
        Column("placed", drop=2, time=True),
        Column("by", drop=1),
        Column("released", TEXT),
        title="holds",
    )
    for h in found:
        table.add_row(
            h.hold_id,
            f"case {h.case_name}" if h.case_name else format_item_id(h.item),
            h.reason,
            local_display(h.placed_at),
            h.placed_by,
            f"{local_display(h.released_at)} by {h.released_by}: {h.release_reason}"
            if h.released_at
            else "-",
        )
    show_listing(table)


@cli.group()
def retention() -> None:
    """How long footage is kept (at least two years; the four permanent categories for ever).

    \b
    Example:
      custody retention plan
      custody retention category --case 2026-0412 major_case
    """


@retention.command("plan")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the plan as retention-plan-YYYY-MM-DD.json in this folder (the daily timer does).",
)
@wide_option
@json_option
@pass_session
def retention_plan(session: Session, report_dir: Path | None, as_json: bool) -> None:
    """List what may be disposed of now and what becomes eligible soon, with the rule for each.

    Nothing is deleted by planning.

    \b
    Example:
      custody retention plan --json
      custody retention plan --report-dir /var/lib/custody/reports
    """
    from custody.retention.plan import plan, write_report

    settings = session.settings()
    with session.vault() as vault:
        report = plan(vault, settings, datetime.now(UTC))
    if report_dir is not None:
        written = write_report(report, report_dir)
        _say(f"wrote {written}")
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for title, rows in (
        ("eligible for disposition now", report["eligible"]),
        (f"eligible within {report['upcoming_days']} days", report["upcoming"]),
    ):
        table = Listing(
            Column("id", KEY),
            Column("case", drop=2),
            Column("categories", TEXT),
            Column("retain until"),
            Column("rule", TEXT, drop=1),
            title=title,
        )
        for row in rows:
            table.add_row(
                row["id"],
                row["case"] or "-",
                ", ".join(row["categories"]) or "-",
                row["retain_until"][:10] if row["retain_until"] else "permanent",
                row["rule"],
            )
        show_listing(table)
    _say(
        f"{report['items']} item(s): {len(report['eligible'])} eligible, {len(report['upcoming'])} soon, "
        f"{report['permanent']} permanent, {report['held']} held; nothing was deleted"
    )


@retention.command("request")
@click.argument("items", nargs=-1)
@click.option("--plan", "from_plan", is_flag=True, help="Every item eligible now (see 'retention plan').")
@click.option(
    "--remove-category",
    help="Instead of deleting, take this retention category off the ITEMs (it may shorten retention).",
)
@click.option("--reason", required=True, help="Why (kept in the audit chain).")
@json_option
@pass_session
def retention_request(
    session: Session,
    items: tuple[str, ...],
    from_plan: bool,
    remove_category: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Request the disposition of eligible items (or a category's removal); a second person approves it.

    \b
    Example:
      custody retention request --plan --reason "routine footage past its period"
      custody retention request EV-000123 --reason "routine, no case"
      custody retention request EV-000123 --remove-category penalty_evidence --reason "penalty annulled"
    """
    from custody.retention.disposition import request_category_removal, request_disposition

    if bool(items) == from_plan:
        raise UsageError(reason="give ITEMs or --plan (not both)")
    settings = session.settings()
    with session.vault() as vault:
        if remove_category:
            made = request_category_removal(vault, list(items), remove_category.strip(), reason)
        else:
            made = request_disposition(vault, settings, list(items), from_plan, reason, datetime.now(UTC))
    if as_json:
        click.echo(json.dumps(made.as_dict()))
        return
    _say(
        f"{made.request_id}: {len(made.items)} item(s) requested by {made.requested_by}; a second person approves it"
    )


@retention.command("approve")
@click.argument("request_id")
@json_option
@pass_session
def retention_approve(session: Session, request_id: str, as_json: bool) -> None:
    """Approve a disposition request (not your own; both names go into the audit chain).

    \b
    Example:
      custody retention approve REQ-000001
    """
    with session.vault() as vault:
        approved = vault.approve_disposition(request_id)
    if as_json:
        click.echo(json.dumps(approved.as_dict()))
        return
    _say(f"{approved.request_id} approved by {approved.approved_by} (requested by {approved.requested_by})")


@retention.command("execute")
@click.argument("request_id")
@json_option
@pass_session
def retention_execute(session: Session, request_id: str, as_json: bool) -> None:
    """Execute an approved request: each item still eligible goes (tombstone kept); the rest are refused.

    Objects are deleted here at once and from every replica by replication
    (a replica still under Object Lock is retried after its date).

    \b
    Example:
      custody retention execute REQ-000001
    """
    from custody.retention.disposition import execute_disposition

    settings = session.settings()
    with session.vault() as vault:
        done = execute_disposition(vault, settings, request_id, datetime.now(UTC))
    result = done.result or {}
    if as_json:
        click.echo(json.dumps(done.as_dict()))
        return
    if done.kind == "remove-category":
        _say(f"{done.request_id}: category {done.category} taken off {len(result.get('items', []))} item(s)")
        return
    _say(f"{done.request_id}: disposed of {len(result.get('deleted', []))} item(s)")
    for item, why in result.get("refused", {}).items():
        _say(f"  kept {item}: {why}")


@retention.command("requests")
@wide_option
@json_option
@pass_session
def retention_requests(session: Session, as_json: bool) -> None:
    """List disposition requests and where each stands.

    \b
    Example:
      custody retention requests --json
    """
    with session.vault() as vault:
        found = vault.disposition_requests()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found], indent=1))
        return
    table = Listing(
        Column("request", KEY),
        Column("state"),
        Column("items", justify="right"),
        Column("requested by", drop=2),
        Column("approved by", drop=1),
        Column("reason", TEXT),
        title="disposition requests",
    )
    for r in found:
        table.add_row(
            r.request_id, r.state, str(len(r.items)), r.requested_by, r.approved_by or "-", r.reason
        )
    show_listing(table)


@retention.command("category")
@click.option("--case", "case", required=True, help="The case whose items all take the categories.")
@click.argument("categories", nargs=-1, required=True)
@pass_session
def retention_category(session: Session, case: str, categories: tuple[str, ...]) -> None:
    """Add retention categories to a whole case: they apply to every item of it (audited).

    \b
    Example:
      custody retention category --case 2026-0412 major_case
    """
    settings = session.settings()
    with session.vault() as vault:
        added = vault.add_case_categories(case, list(categories), settings.retention.categories)
    _say(f"case {case}: {', '.join(added) if added else 'already had these categories'}")


@cli.command()
@click.argument("finding")
@click.option("--reason", required=True, help="Why the recording was interrupted (kept in the audit chain).")
@json_option
@pass_session
def explain(session: Session, finding: str, reason: str, as_json: bool) -> None:
    """Close an open continuity finding (see 'custody report gaps') with an explanation (audited).

    \b
    Example:
      custody explain GAP-000001 --reason "battery changed during the arrest"
    """
    with session.vault() as vault:
        closed = vault.explain(finding, reason)
    if as_json:
        click.echo(json.dumps(closed.as_dict(), indent=1))
        return
    _say(f"{closed.finding_id} explained: {closed.reason}")


@cli.group()
def report() -> None:
    """Reports for supervisors and auditors.

    \b
    Example:
      custody report window --since 2026-11-01
      custody report gaps --open
      custody report retention --days 7
    """


@report.command("gaps")
@click.option("--open", "open_only", is_flag=True, help="Only findings not yet explained.")
@wide_option
@json_option
@pass_session
def report_gaps(session: Session, open_only: bool, as_json: bool) -> None:
    """List interruptions, overlaps and order problems between a recorder's consecutive segments.

    A hole longer than [continuity] gap_tolerance_seconds (2 s) and shorter
    than run_break_seconds (300 s) interrupts one recording; each stays open
    until a clerk explains it with 'custody explain'.

    \b
    Example:
      custody report gaps --open
      custody report gaps --json
    """
    with session.vault() as vault:
        findings = vault.continuity_findings(open_only=open_only)
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in findings], indent=1))
        return
    table = Listing(
        Column("id", KEY),
        Column("kind", drop=3),
        Column("recorder", drop=2),
        Column("officer", drop=1),
        Column("before", KEY),
        Column("after", KEY),
        Column("seconds", justify="right"),
        Column("state", TEXT),
        title="continuity",
    )
    for finding in findings:
        state = finding.state
        if finding.reason:
            state += f" ({finding.closed_by}): {finding.reason}"
        table.add_row(
            finding.finding_id,
            finding.kind,
            finding.recorder_serial,
            finding.officer or "-",
            format_item_id(finding.before_item),
            format_item_id(finding.after_item),
            f"{finding.seconds:.1f}",
            state,
        )
    show_listing(table)
    _say(f"{sum(f.state == 'open' for f in findings)} open of {len(findings)} shown")


@report.command("retention")
@click.option(
    "--days", type=click.IntRange(1, 3650), default=7, show_default=True, help="How far ahead to look."
)
@wide_option
@json_option
@pass_session
def report_retention(session: Session, days: int, as_json: bool) -> None:
    """The custodian's notice: what may be disposed of now and what becomes eligible within --days.

    \b
    Example:
      custody report retention --days 7
    """
    from custody.retention.plan import upcoming

    settings = session.settings()
    with session.vault() as vault:
        report = upcoming(vault, settings, datetime.now(UTC), days)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    table = Listing(
        Column("id", KEY),
        Column("case", drop=2),
        Column("categories", TEXT),
        Column("eligible from"),
        Column("rule", TEXT, drop=1),
        title=f"eligible now or within {days} days",
    )
    for row in report["eligible"] + report["upcoming"]:
        table.add_row(
            row["id"],
            row["case"] or "-",
            ", ".join(row["categories"]) or "-",
            row["retain_until"][:10],
            row["rule"],
        )
    show_listing(table)
    _say(
        f"{len(report['eligible'])} eligible now, {len(report['upcoming'])} within {days} days; "
        "disposition needs a request and a second person's approval"
    )


@report.command("window")
@click.option("--since", help="Only items recorded on or after this date (YYYY-MM-DD[THH:MM]).")
@wide_option
@json_option
@pass_session
def report_window(session: Session, since: str | None, as_json: bool) -> None:
    """List footage stored after its deadline and assigned recorders not docked within the window.

    The deadline of a file is its recording end plus [dock] window_hours (24 by default).

    \b
    Example:
      custody report window --since 2026-11-01 --json
    """
    settings = session.settings()
    with session.vault() as vault:
        report = window_report(
            vault, settings.dock.window_hours, parse_user_time(since, "--since") if since else None
        )
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    table = Listing(
        Column("id", KEY),
        Column("officer"),
        Column("recorder", drop=1),
        Column("recorded", drop=3, time=True),
        Column("ingested", drop=2, time=True),
        Column("hours late", justify="right"),
        title="late footage",
    )
    for row in report["late_items"]:
        table.add_row(
            row["id"],
            row["officer"] or "-",
            row["recorder"] or "-",
            local_display(row["recorded_end"]),
            local_display(row["ingested_at"]),
            f"{row['hours_late']:.1f}",
        )
    show_listing(table)
    table = Listing(
        Column("recorder", KEY),
        Column("officer"),
        Column("last docked", time=True),
        title=f"recorders not docked within {settings.dock.window_hours:g} h",
    )
    for row in report["silent_recorders"]:
        table.add_row(
            row["serial"],
            row["officer"],
            local_display(row["last_docked"]) if row["last_docked"] else "never",
        )
    show_listing(table)


def _events_table(events, title: str | None = None, long: bool = False) -> Listing:
    """Audit events, one line each (details summed up as key=value), or with every detail (``long``)."""
    table = Listing(
        Column("seq", KEY, justify="right"),
        Column("time", drop=2, time=True),
        Column("actor", drop=1),
        Column("action"),
        Column("item", KEY),
        Column("details", TEXT if long else LINE, narrowest=8),
        title=title,
    )
    for event in events:
        item_id = event.as_dict()["item"] or "-"
        if long:
            details = json.dumps(event.details, ensure_ascii=False, separators=(",", ":"))
        else:
            details = " ".join(
                f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(',', ':'))}"
                for key, value in (event.details or {}).items()
            )
        table.add_row(
            str(event.seq), local_display(event.at), event.actor, event.action, item_id, details or "-"
        )
    return table


class _IngestPrinter:
    """Shows an ingest to a person (progress bar, one line per file) or a script (JSON lines)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.display: Progress | None = None
        self.bar = None
        if not as_json and console.is_terminal:
            self.display = _byte_progress("ingest")

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
            _say_error(f"skipped {printable_name(skipped.path)}: {skipped.reason}", self.display)

    def progress(self, nbytes: int) -> None:
        if self.display and self.bar is not None:
            self.display.advance(self.bar, nbytes)

    def file_done(self, task: FileTask) -> None:
        if self.as_json:
            click.echo(json.dumps(task.as_dict()))
        elif task.outcome == "error":
            _say_error(f"failed: {task.message}", self.display)
        else:
            note = f"  ({task.warning})" if task.warning else ""
            _say(f"{task.outcome:<9} {task.item_id}  {task.display_path}{note}", self.display)


@cli.group("case")
def case_group() -> None:
    """Who is named on a case and how confidential it is (custodians).

    \b
    Example:
      custody case staff 2026-0412 chenjing liwei
      custody case confidentiality 2026-0412 restricted
    """


@case_group.command("staff")
@click.argument("case")
@click.argument("logins", nargs=-1, required=True)
@pass_session
def case_staff(session: Session, case: str, logins: tuple[str, ...]) -> None:
    """Name users (login names) on a case: clerks and custodians named on it see its restricted footage.

    \b
    Example:
      custody case staff 2026-0412 chenjing
    """
    with session.vault() as vault:
        added = vault.add_case_staff(case, list(logins))
    _say(f"case {case}: named {', '.join(added) or 'no one new'}")


@case_group.command("confidentiality")
@click.argument("case")
@click.argument("level")
@pass_session
def case_confidentiality(session: Session, case: str, level: str) -> None:
    """Set a case's confidentiality; each of its items is at least that confidential.

    \b
    Example:
      custody case confidentiality 2026-0412 restricted
    """
    with session.vault() as vault:
        vault.set_case_confidentiality(case, level)
    _say(f"case {case}: {level}")


# -- evidence discs ---------------------------------------------------------------


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
    session: Session, case, items, maker, extractor, no_playable, iso, burn, media, capacity_mb, as_json
) -> None:
    """Export a case to disc: stage, write the bag and description, make the ISO or burn, verify.

    The extraction time is the time of export. Exits 1 when a disc fails
    its read-back verification (the export is then registered as failed).
    Through the daemon, it makes and verifies the images as you; your own
    process then writes them (--iso) or burns them to your drive (--burn),
    reads each disc back and has the daemon check it.

    \b
    Example:
      custody export disc --case 2026-0412 --maker "Li Wei" --extractor "Zhang Min" --iso /srv/out/2026-0412.iso
    """
    from custody.vault.disc.export import DiscExporter, ExportRequest

    with session.vault() as vault:
        request = ExportRequest(
            case=case,
            maker=maker or "",
            extractor=extractor or "",
            items=list(items),
            playable=not no_playable,
            media=media,
            capacity=capacity_mb * 1024 * 1024 if capacity_mb else None,
            iso=iso,
            burn=burn,
        )
        exporter = DiscExporter(
            vault,
            on_step=None if as_json else lambda text: errors.print(text, style="dim"),
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
        verdict = "verified" if disc["verification"]["ok"] else "FAILED"
        _say(
            f"{record['id']} disc {disc['disc']} of {len(discs)}: {disc['target']}  "
            f"{disc['files']} file(s), {_size(disc['bytes'])}, image sha256 {disc['image_sha256']}  {verdict}"
        )
        for problem in disc["verification"]["problems"]:
            _say(f"  {problem}")
        if "burn:" not in (record["destination"] or ""):  # an image file, with its description beside it
            image = Path(disc["target"])
            _say(f"  description: {image.with_name(image.stem + '.description.pdf')} (and .txt)")
    _say(f"{record['id']}: case {record['case']}, {len(record['items'])} item(s): {record['state']}")
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
    from custody.vault.disc.export import DiscExporter

    with session.vault() as vault:
        found = DiscExporter(vault).exports(case)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found], indent=1, ensure_ascii=False))
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
        discs = "\n".join(f"{d['disc']}: {d['target']} {(d.get('image_sha256') or '')[:16]}" for d in r.discs)
        state = r.state + (f": {r.error}" if r.error else "")
        if r.verified_at:
            state += (
                f"\nre-verified {local_display(r.verified_at)}: {'ok' if r.verification['ok'] else 'FAILED'}"
            )
        table.add_row(
            r.export_id,
            r.case_name,
            str(len(r.items)),
            r.maker,
            r.extractor,
            local_display(r.started_at),
            r.media,
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
            _say(f"FAILED: {problem}")
        _say(
            f"{check['target']}: {check['files_checked']} file(s), {_size(check['bytes_checked'])} checked: "
            + ("OK" if check["ok"] else "FAILED")
        )
    return 0 if check["ok"] else 1


def _byte_progress(label: str) -> Progress:
    return Progress(
        TextColumn(label, style="bold", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _byte_display(label: str) -> Progress | _BarForClient | None:
    """A byte progress bar for whoever watches: this terminal's, or the one of the client the
    daemon runs this command for; None when nobody watches at a terminal."""
    if console.is_terminal:
        return _byte_progress(label)
    send = api.progress_sender()
    return _BarForClient(label, send) if send else None


class _BarForClient:
    """In the daemon: a byte progress bar (rich Progress's add_task and advance) that the client
    draws at its terminal: its state goes as progress lines, ten a second at most, and at the end."""

    INTERVAL = 0.1

    def __init__(self, label: str, send) -> None:
        self.label, self.send = label, send
        self.done, self.total, self.sent_at = 0, None, 0.0
        self._lock = threading.Lock()  # (advanced from the vault's worker threads)

    def __enter__(self) -> _BarForClient:
        return self

    def __exit__(self, *exc) -> None:
        self._send()

    def add_task(self, description: str, total: int | None = None) -> int:
        self.total = total
        self._send()
        return 0

    def advance(self, task: int, nbytes: float) -> None:
        with self._lock:
            self.done += int(nbytes)
            if time.monotonic() - self.sent_at < self.INTERVAL:
                return
            self.sent_at = time.monotonic()
        self._send()

    def _send(self) -> None:
        self.send({"bar": self.label, "done": self.done, "total": self.total})


class _ProgressFromDaemon:
    """At the client: draws what the daemon says of the command it runs for this caller (byte bars
    as rich bars on this terminal, steps as dim lines on stderr), as the command draws them in-process."""

    def __init__(self) -> None:
        self.display: Progress | None = None
        self.bars: dict[str, object] = {}

    def __enter__(self) -> _ProgressFromDaemon:
        return self

    def __exit__(self, *exc) -> None:
        if self.display:
            self.display.stop()

    def __call__(self, progress: dict) -> None:
        if isinstance(progress.get("step"), str):
            errors.print(progress["step"], style="dim")
            return
        label, done, total = progress.get("bar"), progress.get("done"), progress.get("total")
        if not isinstance(label, str) or not isinstance(done, int):
            return  # (something newer than this client draws)
        if self.display is None:
            self.display = _byte_progress(label)
            self.display.start()
        if label not in self.bars:
            self.bars[label] = self.display.add_task(label, total=total)
        self.display.update(self.bars[label], completed=done, total=total)


def _say(line: str, display: Progress | None = None) -> None:
    if display:
        display.console.print(line, markup=False, highlight=False, soft_wrap=True)
    elif at_terminal():
        # Wrapped at spaces, continued indented: the terminal would cut an id at the edge.
        width = console.size.width
        for text in line.split("\n"):
            parts = wrap_words(text, width)
            _echo(
                "\n".join([parts[0], *(f"  {part}" for part in wrap_words(" ".join(parts[1:]), width - 2))])
                if len(parts) > 1
                else parts[0]
            )
    else:
        _echo(line)


def _say_error(message: str, display: Progress | None = None) -> None:
    if display:
        errors.print(f"custody: {message}", markup=False, highlight=False, soft_wrap=True)
    else:
        _echo(f"custody: {message}", err=True)


def _login_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid:{os.geteuid()}"


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _media_fields(facts: dict) -> list[tuple[str, str]]:
    integrity = facts.get("integrity") or {}
    verdict = integrity.get("result", "not checked")
    if integrity.get("errors"):
        verdict += f" ({integrity.get('level')} check: {integrity['errors'][0]})"
    if "unreadable" in facts:
        return [("media", f"unreadable: {facts['unreadable']}"), ("integrity", verdict)]
    fields = [("container", facts.get("container") or "-"), ("integrity", verdict)]
    if facts.get("duration") is not None:
        fields.append(("duration", f"{facts['duration']:.2f} s"))
    streams = ", ".join(
        f"{s['type']} {s['codec']}" + (f" {s['width']}x{s['height']}" if s.get("width") else "")
        for s in facts.get("streams", [])
    )
    fields.append(("streams", streams or "-"))
    if facts.get("creation_time"):
        fields.append(("container time", _iso_display(facts["creation_time"])))
    fields += _stream_times(facts)
    for key, label in (
        ("capture_time", "photo taken"),
        ("location", "location"),
        ("make", "make"),
        ("model", "model"),
    ):
        if facts.get(key):
            fields.append((label, str(facts[key])))
    for role in ("playable", "thumbnail"):
        if (facts.get(role) or {}).get("error"):
            fields.append((role, f"not made: {facts[role]['error']}"))
    return fields


def _iso_display(text: str) -> str:
    """An ISO time from a file's metadata in the station's zone, to the second."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return local_display(to_text(moment if moment.tzinfo else moment.replace(tzinfo=UTC)), seconds=True)


def _stream_times(facts: dict) -> list[tuple[str, str]]:
    """The streams' own times when one differs from the container's by more than a second (both shown)."""
    container = facts.get("creation_time")
    differing = []
    for stream in facts.get("streams") or []:
        own = stream.get("creation_time")
        if not own:
            continue
        if (
            container
            and abs((datetime.fromisoformat(own) - datetime.fromisoformat(container)).total_seconds()) <= 1
        ):
            continue
        differing.append(f"{stream['type']} {_iso_display(own)}")
    if not differing:
        return []
    return [("stream times", "; ".join(differing) + (" (not the container's)" if container else ""))]


def _configure_logging(debug: bool, as_json: bool) -> None:
    """Operators' logs: one line per event on stderr (journald adds the time under systemd)."""
    handler = logging.StreamHandler()
    if as_json:
        handler.setFormatter(_JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler], force=True)


class _JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "at": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


# -- through the daemon's API socket ---------------------------------------------

# Commands a client may have the daemon run: they name no file on the client's
# machine (those the daemon would open with its own rights). Those that move
# files stream instead (_STREAMED_COMMANDS); the rest runs only in-process, as
# the vault's own user.
REMOTE_COMMANDS = {
    ("ls",), ("show",), ("tag",), ("log",), ("explain",), ("verify",),
    ("officer", "add"), ("officer", "login"),
    ("recorder", "add"), ("recorder", "assign"), ("recorder", "retire"),
    ("hold", "add"), ("hold", "release"),
    ("retention", "plan"), ("retention", "request"), ("retention", "approve"), ("retention", "execute"),
    ("retention", "category"),
    ("case", "staff"), ("case", "confidentiality"),
    ("status",), ("report", "gaps"), ("report", "window"), ("report", "retention"),
    ("hold", "ls"), ("officer", "ls"), ("recorder", "ls"), ("retention", "requests"), ("export", "ls"),
    ("anchor",),
}  # fmt: skip
_MAX_REMOTE_ARGS = 1000


def _command_path(argv: list[str]) -> tuple[str, ...]:
    """The command (and subcommand) names at the start of ``argv``."""
    words = [word for word in argv[:2] if not word.startswith("-")]
    if words and isinstance(cli.commands.get(words[0]), click.Group):
        return tuple(words[:2])
    return tuple(words[:1])


def _run_for_client(home: Path, caller: access.Caller, args: dict) -> dict:
    """The daemon's "run" operation: a command line on the daemon's vault ``home``, run as ``caller``
    (roles checked by the vault). The command comes first: no global option (no other --home)."""
    argv = args.get("argv")
    if (
        not isinstance(argv, list)
        or not all(isinstance(a, str) for a in argv)
        or len(argv) > _MAX_REMOTE_ARGS
    ):
        raise UsageError(reason='"run" needs "argv", a list of strings')
    _route_output_by_thread()
    path = _command_path(argv)
    if not argv or argv[0].startswith("-") or path not in REMOTE_COMMANDS:
        raise UsageError(
            reason=f"'custody {' '.join(path)}' cannot be run through the daemon for another user"
        )
    named = path_options_given(path, argv)
    if named:
        raise UsageError(
            reason=f"'custody {' '.join(path)} {named[0]}' cannot be run through the daemon: it names a file on "
            "the vault's machine, which the daemon never opens for a caller; leave it out (the vault's own "
            "user can run it in-process)"
        )
    columns = args.get("columns")
    if columns is not None and (type(columns) is not int or columns not in CLIENT_COLUMNS_RANGE):
        raise UsageError(reason='"columns" must be the client terminal\'s width, 20 to 1000')
    output, problems = _THREAD_OUTPUT
    token = _REMOTE_CALLER.set(caller)
    layout = _CLIENT_COLUMNS.set(columns)
    zone = show_utc.set(args.get("utc") is True)  # times in the station's zone, unless the caller asked UTC
    try:
        with output.capture() as out, problems.capture() as err:
            try:
                code = cli.main(["--home", str(home), *argv], prog_name="custody", standalone_mode=False)
            except SystemExit as exc:
                code = exc.code
            except click.ClickException as exc:
                exc.show(file=err)
                code = exc.exit_code
            except click.exceptions.Abort:
                code = 1
    finally:
        show_utc.reset(zone)
        _CLIENT_COLUMNS.reset(layout)
        _REMOTE_CALLER.reset(token)
    return {"stdout": out.getvalue(), "stderr": err.getvalue(), "exit_code": int(code or 0)}


# What this process does itself, talking to the daemon: the bytes stream over the socket.
_STREAMED_COMMANDS = {("extract",), ("cat",), ("ingest",), ("export", "disc"), ("export", "verify")}


def _daemon_can_run(path: tuple[str, ...], argv: list[str]) -> bool:
    """Whether the command goes through the daemon (streamed here, or run there for the caller)."""
    return path in _STREAMED_COMMANDS or _runs_in_daemon(path, argv)


def _runs_in_daemon(path: tuple[str, ...], argv: list[str]) -> bool:
    return path in REMOTE_COMMANDS and not path_options_given(path, argv)


def _command_of(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def path_parameters(path: tuple[str, ...]) -> list[click.Parameter]:
    """The parameters of command ``path`` whose values may name a file or folder: click.Path,
    click.File, and types that say which of their values do (``names_a_path``)."""
    return [
        param
        for param in _command_of(path).params
        if isinstance(param.type, (click.Path, click.File)) or hasattr(param.type, "names_a_path")
    ]


def _names_a_path(param: click.Parameter, value) -> bool:
    values = value if param.multiple or param.nargs == -1 else [value]
    if hasattr(param.type, "names_a_path"):
        return any(param.type.names_a_path(each) for each in values or ())
    return bool(values)


def path_options_given(path: tuple[str, ...], argv: list[str]) -> list[str]:
    """The options of command ``path`` that ``argv`` gives a file or folder, as click itself parses it.

    The daemon never opens a path a client names: whatever the spelling
    (``--report-dir DIR``, ``--report-dir=DIR``, an abbreviation, a prompt's
    default), what click would hand the command decides, not the words. An
    argv click cannot parse names nothing here (click refuses it later).
    """
    command = _command_of(path)
    named = path_parameters(path)
    if not named:
        return []
    try:
        with command.make_context(path[-1], list(argv[len(path) :]), resilient_parsing=True) as ctx:
            return [
                param.opts[0] if param.opts else param.name or "?"
                for param in named
                if ctx.get_parameter_source(param.name) not in (None, click.core.ParameterSource.DEFAULT)
                and _names_a_path(param, ctx.params.get(param.name))
            ]
    except click.ClickException:
        return []


def _anchors_read_here(path: tuple[str, ...], argv: list[str]) -> list[str]:
    """``verify --against DISC`` through the daemon: this process reads the disc's anchor with the
    caller's own rights and hands it on as --against-anchor (the daemon opens no path it is given)."""
    if path != ("verify",):
        return argv
    with cli.commands["verify"].make_context("verify", list(argv[1:]), resilient_parsing=True) as ctx:
        against = ctx.params.get("against") or ()
    if not any(AnchorSource.names_a_path(value) for value in against):
        return argv
    rest: list[str] = []
    words = iter(argv[1:])
    for word in words:  # every --against goes (either spelling); the offsite ones come back below
        if word == "--against":
            next(words, None)
        elif not word.startswith("--against="):
            rest.append(word)
    for kind, value in against:
        if kind == "offsite":
            rest += ["--against", "offsite" if value is None else f"offsite:{value}"]
        else:
            rest += ["--against-anchor", read_disc_anchor(value).checkpoints[0].token()]
    return ["verify", *rest]


def _through_daemon(argv: list[str]) -> int | None:
    """Have the daemon serve the command when one serves the vault; None: run it here.

    Anyone who does not own the vault reaches it only through the daemon's
    socket; without one serving, the command runs here and the vault refuses
    with how to reach the daemon. The vault's own user (and root) go through
    a serving daemon too (it holds the vault; the record names the same
    user), and work in-process when none serves, and for what only they do
    (init, daemon, restore, media run, replicate, report files).
    """
    rest, home, utc = list(argv), None, False
    while rest and rest[0].startswith("-"):
        word = rest.pop(0)
        if word == "--home" and rest:
            home = rest.pop(0)
        elif word.startswith("--home="):
            home = word.split("=", 1)[1]
        elif word == "--utc":
            utc = True
        elif word in ("--help", "--version"):
            return None  # (--debug means nothing for a command the daemon runs)
    path = _command_path(rest)
    if not path or path[0] in ("whoami", "init", "daemon") or "--help" in rest:
        return None
    session = Session(home, debug=False)
    try:
        owner = session.home.stat().st_uid == os.geteuid() or os.geteuid() == 0
        if owner and (not _daemon_can_run(path, rest) or not api.answers(session.api_socket())):
            return None
    except PermissionError:
        pass
    except OSError:
        # No vault here: a clerk on the station, with no home named, reaches the vault its daemon
        # serves (the system socket) rather than being told to make one of their own.
        named = home is not None or bool(os.environ.get("CUSTODY_HOME"))
        if named or not _daemon_can_run(path, rest) or not api.is_served(session.api_socket()):
            return None
    socket_path = session.api_socket()
    try:
        if not api.is_served(socket_path):
            raise Vault.NotOwner(home=session.home, socket=socket_path)
        if path == ("ingest",):
            return _ingest_for_client(rest[1:], socket_path)
        if path[0] in ("extract", "cat"):
            return _fetch_for_client(path[0], rest[1:], socket_path)
        if path == ("export", "disc"):
            return _export_for_client(rest[2:], socket_path)
        if path == ("export", "verify"):
            return _verify_for_client(rest[2:], socket_path)
        request = {"argv": _anchors_read_here(path, rest)}
        if utc:
            request["utc"] = True
        to_terminal = sys.stdout.isatty()
        if to_terminal or _LAYOUT_FOR_TERMINAL:  # tables fit this terminal, as in-process
            fits = CLIENT_COLUMNS_RANGE
            columns = shutil.get_terminal_size().columns if to_terminal else _piped_width()
            request["columns"] = min(max(columns, fits.start), fits.stop - 1)
        with _ProgressFromDaemon() as drawing:
            result = api.call(  # (no timeout: a verify takes its time)
                socket_path, "run", request, timeout=None, on_progress=drawing if to_terminal else None
            )
    except CustodyError as exc:
        _echo(f"custody: {exc.message}", err=True)
        return exc.exit_code
    except OSError as exc:  # writing the caller's own file (extract --out, export --iso)
        failure = cannot_write(exc.filename or "a file", exc)
        _echo(f"custody: {failure.message}", err=True)
        return failure.exit_code
    except click.ClickException as exc:  # the command line, parsed here for what runs here
        exc.show()
        return exc.exit_code
    if to_terminal and path in PAGED_COMMANDS and sys.stdin.isatty():
        page(result["stdout"])
    else:
        sys.stdout.write(result["stdout"])
    sys.stderr.write(result["stderr"])
    return result["exit_code"]


def _ingest_for_client(args: list[str], socket_path: Path) -> int:
    """ingest through the daemon: this process reads the files and streams them to it."""
    params = cli.commands["ingest"].make_context("ingest", args).params
    source = IngestSource(
        paths=list(params["paths"]),
        source=upload.SOURCE,
        officer=params["officer"],
        recorder=params["recorder"],
    )
    printer = _IngestPrinter(params["as_json"])
    with printer:
        summary = upload.send_files(socket_path, source, printer)
    return _print_ingest_summary(summary, params["as_json"])


def _fetch_for_client(command: str, args: list[str], socket_path: Path) -> int:
    """extract/cat through the daemon: the bytes stream over the socket; this process writes them."""
    context = cli.commands[command].make_context(command, args)
    params = context.params
    if command == "cat":
        api.call_stream(socket_path, "stream", {"ref": params["item"]}, sys.stdout.buffer.write)
        sys.stdout.flush()
        return 0
    role = _extract_role(params["playable"], params["thumbnail"])
    result = api.fetch_to_file(socket_path, {"ref": params["item"], "role": role}, Path(params["out"]))
    _say_extracted(role, result["item"], params["out"], result["size"], result["sha256"])
    return 0


def _export_for_client(args: list[str], socket_path: Path) -> int:
    """export disc through the daemon: it makes and verifies the images as this caller; this
    process writes them (--iso) or burns them (--burn), with the caller's own rights."""
    from custody.vault.disc.export import ExportRequest

    params = export_group.commands["disc"].make_context("disc", args).params
    request = ExportRequest(
        case=params["case"], maker=params["maker"] or "", extractor=params["extractor"] or "",
        items=list(params["items"]), playable=not params["no_playable"], media=params["media"],
        capacity=params["capacity_mb"] * 1024 * 1024 if params["capacity_mb"] else None,
        iso=params["iso"], burn=params["burn"],
    )  # fmt: skip
    as_json = params["as_json"]
    record = export_through_daemon(
        socket_path,
        request,
        on_step=(lambda text: None) if as_json else lambda text: errors.print(text, style="dim"),
        on_next_disc=_ask_for_next_disc if sys.stdin.isatty() else None,
    )
    return _print_export(record, as_json)


def _verify_for_client(args: list[str], socket_path: Path) -> int:
    """export verify through the daemon: this process reads the image (or drive) and streams it."""
    params = export_group.commands["verify"].make_context("verify", args).params
    target = params["target"]
    check = upload.send_image(socket_path, target)
    return _print_disc_check(check, params["as_json"])


_THREAD_OUTPUT: tuple[api.ThreadOutput, api.ThreadOutput] | None = None


def _route_output_by_thread() -> None:
    """In the daemon: each request thread's output goes back to its client, the rest to the journal."""
    global _THREAD_OUTPUT
    if _THREAD_OUTPUT is None:
        _THREAD_OUTPUT = (api.ThreadOutput(sys.stdout), api.ThreadOutput(sys.stderr))
        sys.stdout, sys.stderr = _THREAD_OUTPUT


def main() -> None:
    keep_stream_buffers_on_heap()
    code = _through_daemon(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    words = [w for w in sys.argv[1:] if w not in ("--utc", "--debug")]
    if words[:1] == ["--home"]:
        words = words[2:]
    elif words[:1] and words[0].startswith("--home="):
        words = words[1:]
    if _command_path(words) in PAGED_COMMANDS and "--help" not in words:
        with paged():
            cli(prog_name="custody")
    else:
        cli(prog_name="custody")
