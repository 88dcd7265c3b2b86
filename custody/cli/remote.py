"""The command line's side of the daemon's socket for commands that move bytes.

Every other command calls a named operation (``Session.perform``): in this
process for the vault's own user when no daemon serves, else through the
socket. The commands here stream instead: this process reads or writes the
caller's own files with the caller's own rights, and the daemon never opens a
path a client names.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from custody import i18n
from custody.cli.base import Session, cli, station_language
from custody.cli.exports import _ask_for_next_disc, _print_disc_check, _print_export, export_group
from custody.cli.items import _extract_role, _IngestPrinter, _print_ingest_summary, _say_extracted
from custody.cli.render import PAGED_COMMANDS, _echo, errors, paged
from custody.config import resolve_home
from custody.errors import CustodyError, cannot_write, localized_text
from custody.ingestd import api, upload
from custody.ingestd.client_export import export_through_daemon
from custody.ingestd.pipeline import IngestSource
from custody.vault.objects import keep_stream_buffers_on_heap
from custody.vault.timestamps import show_utc


def _command_path(argv: list[str]) -> tuple[str, ...]:
    """The command (and subcommand) names at the start of ``argv``."""
    words = [word for word in argv[:2] if not word.startswith("-")]
    if words and isinstance(cli.commands.get(words[0]), click.Group):
        return tuple(words[:2])
    return tuple(words[:1])


# What this process does itself, talking to the daemon: the bytes stream over the socket.
_STREAMED_COMMANDS = {("extract",), ("cat",), ("ingest",), ("export", "disc"), ("export", "verify")}


def _through_daemon(argv: list[str]) -> int | None:
    """Stream a command that moves bytes through the daemon when one serves the vault (see
    ``Session.daemon_socket``); None: run it here (every other command, and these in-process).
    Said in the person's language, as every command is (CustodyGroup.main)."""
    with i18n.speaking(i18n.from_environment(station_language(resolve_home(_named_home(argv))))):
        return _streamed(argv)


def _named_home(argv: list[str]) -> str | None:
    """The --home given before the command, if any."""
    for index, word in enumerate(argv):
        if not word.startswith("-"):
            return None
        if word == "--home" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--home="):
            return word.split("=", 1)[1]
    return None


def _streamed(argv: list[str]) -> int | None:
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
            return None
    path = _command_path(rest)
    if path not in _STREAMED_COMMANDS or "--help" in rest:
        return None
    show_utc.set(utc)
    try:
        socket_path = Session(home, debug=False).daemon_socket()
        if socket_path is None:
            return None
        if path == ("ingest",):
            return _ingest_for_client(rest[1:], socket_path)
        if path[0] in ("extract", "cat"):
            return _fetch_for_client(path[0], rest[1:], socket_path)
        if path == ("export", "disc"):
            return _export_for_client(rest[2:], socket_path)
        return _verify_for_client(rest[2:], socket_path)
    except CustodyError as exc:
        _echo(f"custody: {exc.localized}", err=True)
        return exc.exit_code
    except OSError as exc:  # writing the caller's own file (extract --out, export --iso)
        failure = cannot_write(exc.filename or "a file", exc)
        _echo(f"custody: {failure.localized}", err=True)
        return failure.exit_code
    except click.ClickException as exc:  # the command line, parsed here for what runs here
        exc.show()
        return exc.exit_code


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
        with_documents=params["with_documents"],
        capacity=params["capacity_mb"] * 1024 * 1024 if params["capacity_mb"] else None,
        iso=params["iso"], burn=params["burn"],
    )  # fmt: skip
    as_json = params["as_json"]
    record = export_through_daemon(
        socket_path,
        request,
        on_step=(lambda text: None)
        if as_json
        else lambda text: errors.print(localized_text(text), style="dim", markup=False, soft_wrap=True),
        on_next_disc=_ask_for_next_disc if sys.stdin.isatty() else None,
    )
    return _print_export(record, as_json)


def _verify_for_client(args: list[str], socket_path: Path) -> int:
    """export verify through the daemon: this process reads the image (or drive) and streams it."""
    params = export_group.commands["verify"].make_context("verify", args).params
    target = params["target"]
    check = upload.send_image(socket_path, target)
    return _print_disc_check(check, params["as_json"])


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
