"""Everything the command line prints: one console for data, tables, fields, progress, the pager."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from custody.cli.listing import KEY, LINE, TEXT, Column, Listing, field_lines, wrap_words
from custody.errors import localized_text, said_from_data
from custody.i18n import _
from custody.vault.items import shown_text
from custody.vault.timestamps import local_display, to_text


class _Console(Console):
    """rich's Console for data: text is never markup, hidden characters are shown escaped.

    File names, tags and party names come from outside: ``[bold red]`` or
    ``[/x]`` in one is text to show, not a style (nor an error), and a bidi
    override or a control character is shown as its escape. Our own styles
    are given as ``style=``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, highlight=False, emoji=False, **kwargs)

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


def at_terminal() -> bool:
    """Whether output goes to a person's terminal (laid out to fit) or to a pipe (tab-separated)."""
    return _LAYOUT_FOR_TERMINAL


def wide_option(command):
    """``--wide``: a listing keeps every column at a terminal, however wide (see custody.cli.listing)."""

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


def said_text(row: dict, key: str) -> str:
    """``row[key]`` in the person's language: said from its words (``row[key + "_words"]``, the
    English template and values a service sends beside the text) when there are any."""
    return localized_text(said_from_data(row.get(f"{key}_words", row[key])))


def show_fields(fields: list[tuple[str, str]]) -> None:
    """Print ``label: value`` lines, wrapped at spaces to fit a terminal, never cutting a word."""
    width = console.size.width if at_terminal() else None
    for line in field_lines([(_(label), shown_text(value)) for label, value in fields], width):
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


def _events_table(events: list[dict], title: str | None = None, long: bool = False) -> Listing:
    """Audit events (their records, as ``log --json`` prints them), one line each (details summed up as key=value), or with every detail (``long``)."""
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
        if long:
            details = json.dumps(event["details"], ensure_ascii=False, separators=(",", ":"))
        else:
            details = " ".join(
                f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(',', ':'))}"
                for key, value in (event["details"] or {}).items()
            )
        table.add_row(
            str(event["seq"]),
            local_display(event["at"]),
            event["actor"],
            event["action"],
            event["item"] or "-",
            details or "-",
        )
    return table


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


class _ProgressFromDaemon:
    """Draws what an operation says of how far it is (byte bars as rich bars on this terminal,
    steps as dim lines on stderr), whether it runs in this process or in the daemon."""

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
            said = said_from_data(progress.get("said", progress["step"]))
            errors.print(localized_text(said), style="dim", markup=False, soft_wrap=True)
            return
        label, done, total = progress.get("bar"), progress.get("done"), progress.get("total")
        if not isinstance(label, str) or not isinstance(done, int):
            return  # (something newer than this client draws)
        if self.display is None:
            self.display = _byte_progress(_(label))  # (the label is the operation's: ingest, verify)
            self.display.start()
        if label not in self.bars:
            self.bars[label] = self.display.add_task(_(label), total=total)
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
