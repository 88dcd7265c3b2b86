"""The command line through the daemon's API socket: the client side, and the daemon's "run" operation."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from custody.cli.base import Session, cli
from custody.cli.context import _CLIENT_COLUMNS, _REMOTE_CALLER, CLIENT_COLUMNS_RANGE
from custody.cli.exports import _ask_for_next_disc, _print_disc_check, _print_export, export_group
from custody.cli.integrity import AnchorSource, read_disc_anchor
from custody.cli.items import _extract_role, _IngestPrinter, _print_ingest_summary, _say_extracted
from custody.cli.render import (
    _LAYOUT_FOR_TERMINAL,
    PAGED_COMMANDS,
    _echo,
    _piped_width,
    _ProgressFromDaemon,
    errors,
    page,
    paged,
)
from custody.errors import CustodyError, UsageError, cannot_write
from custody.ingestd import api, upload
from custody.ingestd.client_export import export_through_daemon
from custody.ingestd.pipeline import IngestSource
from custody.vault import Vault, access
from custody.vault.objects import keep_stream_buffers_on_heap
from custody.vault.timestamps import show_utc

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
