"""The command line's help in the person's language: each command's help, paragraph by paragraph,
its short help and its options' help are looked up in the catalogs (custody.i18n) when shown.

The messages are the English texts as written in the code (a paragraph with its whitespace
folded; an option's help). A block that click keeps as written (``\\b``) is translated line by
line, its indented lines (examples, commands) kept. Chinese is wrapped by display width (a CJK
character takes two columns).
"""

from __future__ import annotations

import inspect
import unicodedata
from collections.abc import Iterator

import click

from custody.i18n import CHINESE, _, current


def help_messages(text: str) -> Iterator[str]:
    """The messages a help text is made of, as the catalogs know them."""
    for paragraph in inspect.cleandoc(text).split("\f")[0].split("\n\n"):
        if paragraph.startswith("\b"):
            yield from (
                line.strip() for line in paragraph.splitlines()[1:] if line.strip() and not line[0].isspace()
            )
        elif paragraph.strip():
            yield " ".join(paragraph.split())


def translated_help(text: str, width: int) -> str:
    """``text`` in the current language, each translated paragraph kept as wrapped here."""
    if current() != CHINESE:
        return text
    out = []
    for paragraph in inspect.cleandoc(text).split("\f")[0].split("\n\n"):
        if paragraph.startswith("\b"):
            lines = [
                line if not line.strip() or line[0].isspace() else _(line.strip())
                for line in paragraph.splitlines()[1:]
            ]
            out.append("\b\n" + "\n".join(lines))
        elif paragraph.strip():
            said = _(" ".join(paragraph.split()))
            out.append(
                "\b\n" + "\n".join(wrap_display(said, width))
                if said != " ".join(paragraph.split())
                else paragraph
            )
    return "\n\n".join(out)


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def wrap_display(text: str, width: int) -> list[str]:
    """``text`` cut into lines of at most ``width`` columns (CJK characters two wide), breaking
    at spaces in Latin words and between CJK characters."""
    lines, line = [], ""
    for token in _tokens(text):
        if line and display_width(line + token) > width:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _tokens(text: str) -> Iterator[str]:
    word = ""
    for char in text:
        if unicodedata.east_asian_width(char) in "WF":
            if word:
                yield word
                word = ""
            yield char
        elif char == " ":
            yield word + " "
            word = ""
        else:
            word += char
    if word:
        yield word


class TranslatedCommand(click.Command):
    """A command whose help is shown in the person's language."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.help:
            saved = self.help
            self.help = translated_help(saved, max(20, formatter.width - formatter.current_indent - 2))
            try:
                super().format_help_text(ctx, formatter)
            finally:
                self.help = saved
        else:
            super().format_help_text(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        if current() != CHINESE or not self.help:
            return super().get_short_help_str(limit)
        first = next(iter(help_messages(self.help)), "")
        said = _(first).split("。")[0]
        if display_width(said) <= limit:
            return said
        while display_width(said + "…") > limit:
            said = said[:-1]
        return said + "…"

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            help_text = getattr(param, "help", None)
            if help_text and current() == CHINESE:
                record = (record[0], record[1].replace(help_text, _(" ".join(help_text.split())), 1))
            records.append(record)
        if records and current() == CHINESE:  # (wrapped here by display width: click counts characters)
            first = min(max(display_width(r[0]) for r in records), 30) + 2
            width = max(formatter.width - first - formatter.current_indent - 2, 20)
            records = [
                (term, "\b\n" + "\n".join(wrap_display(text, width)) if text else text)
                for term, text in records
            ]
        if records:
            with formatter.section(_("Options")):
                formatter.write_dl(records)


class TranslatedGroup(TranslatedCommand, click.Group):
    """A group of commands whose help, and whose commands' help, is in the person's language."""

    command_class = TranslatedCommand
    group_class = type

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        TranslatedCommand.format_options(self, ctx, formatter)
        self.format_commands(ctx, formatter)
