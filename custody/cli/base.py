"""The command group, its session (where the vault is, who is asking) and the shared options."""

from __future__ import annotations

import functools
import json
import logging
import os
import pwd
from pathlib import Path

import click

from custody import __version__
from custody.cli.context import _REMOTE_CALLER
from custody.cli.render import _echo
from custody.config import Settings, load_settings, resolve_home
from custody.errors import CannotWrite, CustodyError
from custody.vault import Vault
from custody.vault.timestamps import show_utc


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
