"""The command group, its session (where the vault is, who is asking) and the shared options."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import pwd
from pathlib import Path

import click

from custody import __version__, i18n, operations
from custody.cli.render import _echo
from custody.cli.translated import TranslatedGroup
from custody.config import Settings, load_settings, resolve_home
from custody.errors import CannotWrite, CustodyError, Said, UsageError
from custody.ingestd import api
from custody.vault import Vault
from custody.vault.timestamps import show_utc
from custody.vault.wording import station_documents


class CustodyGroup(TranslatedGroup):
    """Turns every CustodyError into one line on stderr and its exit code; speaks the person's
    language (the environment's, else [station] language) for the whole command."""

    def main(self, *args, **kwargs):
        with i18n.speaking(i18n.from_environment(station_language(resolve_home(None)))):
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CustodyError as exc:
            if ctx.obj and ctx.obj.debug:
                raise
            _echo(f"custody: {exc.localized}", err=True)  # (in the person's language)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # an ordinary OS error is one line too, never a traceback
            if ctx.obj and ctx.obj.debug:
                raise
            _echo(f"custody: {exc.filename or 'a file'}: {exc.strerror or exc}", err=True)
            ctx.exit(CannotWrite.exit_code)


class Session:
    """What every command needs: where the vault is and who is asking."""

    def __init__(self, home: str | None, debug: bool) -> None:
        self.home = resolve_home(home)
        self.home_named = home is not None or bool(os.environ.get("CUSTODY_HOME"))
        self.debug = debug
        self.actor = _login_name()
        self._socket: Path | bool | None = False  # (not decided yet; see daemon_socket)

    def settings(self) -> Settings:
        """The vault's settings, for work done in this process. Raise UsageError when someone who
        does not own the vault asks while a daemon serves it: only named operations and streams go
        through the daemon, never a command line to run for another user."""
        if not self._ours() and api.is_served(self.api_socket()):
            ctx = click.get_current_context(silent=True)
            command = ctx.command_path if ctx else "this command"
            raise UsageError(
                reason=Said("'{command}' cannot be run through the daemon for another user", command=command)
            )
        return load_settings(self.home)

    def _ours(self) -> bool:
        """Whether this process's user owns the vault home (root owns every one; no home yet: ours)."""
        try:
            return self.home.stat().st_uid == os.geteuid() or os.geteuid() == 0
        except PermissionError:
            return False
        except OSError:
            return True

    def vault(self, writer: bool = False) -> Vault:
        return Vault(self.settings(), self.actor, writer=writer)

    def daemon_socket(self) -> Path | None:
        """The daemon's socket when operations go through it; None: they run in this process.

        Anyone who does not own the vault reaches it only through the daemon's
        socket (raise Vault.NotOwner when none serves). The vault's own user
        (and root) go through a serving daemon too (it holds the vault; the
        record names the same user), and work in-process when none serves.
        With no vault here and none named, a clerk on the station reaches the
        vault the system socket serves rather than being told to make one.
        """
        if self._socket is False:
            self._socket = self._find_daemon()
        return self._socket  # type: ignore[return-value]

    def _find_daemon(self) -> Path | None:
        try:
            owner = self.home.stat().st_uid == os.geteuid() or os.geteuid() == 0
            if owner and not api.answers(self.api_socket()):
                return None
        except PermissionError:
            pass
        except OSError:
            if self.home_named or not api.is_served(self.api_socket()):
                return None
        socket_path = self.api_socket()
        if not api.is_served(socket_path):
            raise Vault.NotOwner(home=self.home, socket=socket_path)
        return socket_path

    def perform(self, name: str, request: object, progress=None) -> object:
        """Run operation ``name`` with ``request`` (its dataclass) as this user: through the daemon
        when one serves (see daemon_socket), else in-process; return its records (plain data).
        ``progress`` gets the operation's progress objects as they come."""
        socket_path = self.daemon_socket()
        if socket_path is None:
            return operations.perform(self.settings(), name, request, actor=self.actor, progress=progress)
        return api.call(  # (no timeout: a verify takes its time)
            socket_path, name, dataclasses.asdict(request), timeout=None, on_progress=progress
        )

    def station(self) -> dict:
        """The station's name, agency, documents' language and PDF font (for a report written
        here as a document): the daemon's when one serves (a clerk cannot read the config), else
        the config's. See custody.vault.wording.station_documents."""
        socket_path = self.daemon_socket()
        if socket_path is None:
            return station_documents(self.settings())
        return api.call(socket_path, "whoami", timeout=30)["station"]

    def api_socket(self) -> Path:
        """Where the daemon serves this home: $CUSTODY_SOCKET, else the config's (when readable), else /run."""
        if os.environ.get("CUSTODY_SOCKET"):
            return Path(os.environ["CUSTODY_SOCKET"])
        try:
            return load_settings(self.home).api_socket
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
    show_utc.set(utc)
    ctx.obj = Session(home, debug)
    if home is not None:  # (the named vault's [station] language, unless the environment names one)
        i18n.use(i18n.from_environment(station_language(ctx.obj.home)))


def station_language(home: Path) -> str:
    """``[station] language`` of the vault at ``home`` ("" when unset or unreadable: a broken
    config is reported by the command that needs it, not by the choice of language)."""
    import tomllib

    try:
        station = tomllib.loads((home / "custody.toml").read_text(encoding="utf-8")).get("station", {})
    except (OSError, ValueError):
        return ""
    language = station.get("language", "") if isinstance(station, dict) else ""
    return language if isinstance(language, str) else ""


def _login_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid:{os.geteuid()}"


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
