"""What the command line says that the catalogs must translate: every command's help (paragraph
by paragraph) and its options' help, the table headings, the error templates and click's own
words. scripts/catalog puts them in the template; the coverage test checks Chinese has them all."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import click

import custody
from custody.cli.translated import help_messages
from custody.config import CONFIG_HEADER
from custody.errors import CustodyError

# click's own words that a person sees (its usage line, sections, built-in options, errors).
CLICK_MESSAGES = (
    "Usage:", "Options", "Commands", "Show this message and exit.", "Show the version and exit.",
    "%(prog)s, version %(version)s", "default: {default}", "required", "Aborted!",
    "Try '{command} {option}' for help.", "Error: {message}", "No such option: {name}",
    "No such command {name!r}.", "Missing argument {param_hint}.", "Missing option {param_hint}.",
    "Invalid value for {param_hint}: {message}", "Invalid value: {message}", "Missing command.",
    "{name} option requires an argument.", "Got unexpected extra argument ({args})",
)  # fmt: skip
# click's words with a plural (ngettext): singular and plural msgids.
CLICK_PLURALS = (("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"),)
_COLUMN = re.compile(r'Column\(\s*"([^"]+)"|title="([^"]+)"')


def command_messages(command: click.Command) -> list[str]:
    """The help of ``command`` and of every command under it, and their options' help."""
    found = list(help_messages(command.help or ""))
    for param in command.params:
        if getattr(param, "help", None):
            found.append(" ".join(param.help.split()))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found += command_messages(sub)
    return found


def column_headings() -> list[str]:
    folder = Path(__file__).parent
    return [
        heading or title
        for path in sorted(folder.glob("*.py"))
        if path.name != "catalog.py"
        for heading, title in _COLUMN.findall(path.read_text(encoding="utf-8"))
    ]


_CODE_WORDS = re.compile(r'\b(?:reason|why|problem|what)="((?:[^"\\]|\\.)+)"')


def code_words() -> list[str]:
    """The code's own constant words given to an error (``reason="..."``): said translated."""
    root = Path(custody.__file__).parent
    return [
        m
        for path in sorted(root.rglob("*.py"))
        for m in _CODE_WORDS.findall(path.read_text(encoding="utf-8"))
    ]


def error_templates() -> list[str]:
    """The first docstring line of every CustodyError class in custody (all modules imported)."""
    for module in pkgutil.walk_packages(custody.__path__, "custody."):
        if not module.name.startswith(("custody.web", "custody.__main__")):
            importlib.import_module(module.name)
    found, pending = [], [CustodyError]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__doc__:
            found.append(cls.__doc__.strip().splitlines()[0])
    return found


def settings_docs() -> list[str]:
    """The settings classes' docstrings: the generated custody.toml's section comments."""
    import dataclasses

    from custody import config, config_alerts, config_cases, config_supervision

    found = []
    for module in (config, config_alerts, config_cases, config_supervision):
        for value in vars(module).values():
            if (
                dataclasses.is_dataclass(value)
                and isinstance(value, type)
                and value.__module__ == module.__name__
            ):
                found.append(" ".join((value.__doc__ or "").split()))
    return found


def cli_messages() -> list[str]:
    """Every message above, once each, in a stable order."""
    from custody.cli import cli

    seen: dict[str, None] = {}
    for message in [
        *command_messages(cli),
        *column_headings(),
        *error_templates(),
        *code_words(),
        *settings_docs(),
        CONFIG_HEADER,
        *CLICK_MESSAGES,
    ]:
        if message.strip():
            seen.setdefault(message, None)
    return list(seen)
