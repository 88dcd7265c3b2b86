"""Tables people read at a terminal, and the one stable layout scripts read from a pipe.

At a terminal a listing fits the terminal's width (80 columns is the design
point): an id people type is never cut, a value such as an officer's badge or
a case number is never cut either, and when the table is too wide such
columns are left out, in an order each listing gives, with a note naming
``--wide`` (every column, however wide) and ``--json`` (every field). Only
free text (a file name, a reason) wraps. Piped, a listing is tab-separated
values with a header line, a ``# title`` line before a titled table, every
column present and nothing wrapped or cut: the same layout whatever the width.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from custody.i18n import _
from custody.vault.items import shown_text

KEY = "key"  # an id people type: never cut, never left out
VALUE = "value"  # a value read whole (badge, case number, time): never cut; left out when too wide
TEXT = "text"  # free text (file names, reasons): wraps to fit; left out only when it has a drop order
LINE = "line"  # a one-line summary (log details): cut with an ellipsis, as the note says

# A local time as custody shows it ("2026-11-30 10:55 CST", "+08:00"), maybe marked "*".
_LOCAL_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?) (\S+?)(\*?)")
# What a column takes beyond its text: one space of padding each side and a separator between columns.
_COLUMN_EXTRA = 3


@dataclass(frozen=True)
class Column:
    """One column of a listing.

    ``drop`` is the order in which the column is left out when the table does
    not fit (1 goes first); 0 keeps it. A KEY column is always kept.
    """

    header: str
    kind: str = VALUE
    drop: int = 0
    justify: str = "left"
    narrowest: int = 10  # TEXT and LINE: the width they may shrink to
    time: bool = False  # local times ("2026-11-30 10:55 CST"): at a terminal one zone goes to the header


class Listing:
    """Rows of text under columns, shown by :meth:`show` for a terminal or a pipe."""

    def __init__(self, *columns: Column | str, title: str | None = None) -> None:
        self.columns = [c if isinstance(c, Column) else Column(c) for c in columns]
        self.title = title
        self.rows: list[list[str]] = []

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(cell) for cell in cells])

    def show(self, console: Console, at_terminal: bool, wide: bool = False) -> list[str]:
        """Print the listing; return the headers of the columns left out to fit (none when piped or wide)."""
        if not at_terminal:
            self._print_separated(console)  # (English headings: the layout scripts read)
            return []
        # At a terminal, in the person's language (a CJK heading is measured two columns a character).
        self.columns = [replace(column, header=_(column.header)) for column in self.columns]
        self.title = _(self.title) if self.title else self.title
        headers = [column.header for column in self.columns]
        self._zones_to_headers()
        # Each column's widest line, measured once: the fitting below asks for it again and again.
        self._widest = [self._measure(i) for i in range(len(self.columns))]
        width = console.size.width
        kept = list(range(len(self.columns)))
        if not wide:
            droppable = sorted(
                (i for i, c in enumerate(self.columns) if c.drop and c.kind != KEY), key=self._drop_order
            )
            while self._narrowest(kept) > width and droppable:
                kept.remove(droppable.pop(0))
        widths = self._widths(kept, None if wide else width)
        table = Table(
            title=self.title,
            box=box.SIMPLE_HEAD,
            show_edge=False,
            title_justify="left",
            title_style="bold",
            header_style="bold",
            expand=False,
        )
        for index in kept:
            column = self.columns[index]
            # Every width is set here, not left to rich: rich shrinks any column, ids included,
            # when free text is wider than the terminal.
            table.add_column(
                column.header,
                justify=column.justify,
                width=widths[index],
                no_wrap=column.kind != TEXT,
                overflow="ellipsis" if column.kind == LINE else "fold",
            )
        for row in self.rows:
            table.add_row(*(Text(shown_text(row[i], keep_newlines=True)) for i in kept))
        total = sum(widths.values()) + _COLUMN_EXTRA * len(kept) - 1
        if total <= width:
            console.print(table)
        else:  # --wide: as wide as it takes (a console never prints wider than itself)
            wider = Console(
                width=total,
                file=io.StringIO(),
                color_system=console.color_system,
                force_terminal=True,
                markup=False,
                highlight=False,
                emoji=False,
            )
            wider.print(table)
            console.file.write(wider.file.getvalue())
        left_out = [
            headers[i] for i in sorted(set(range(len(self.columns))) - set(kept), key=self._drop_order)
        ]
        if left_out:
            said = _(
                "(left out to fit {width} columns: {columns}; --wide shows every column, --json every field)"
            )
            console.print(said.format(width=width, columns=", ".join(left_out)), style="dim")
        return left_out

    def _drop_order(self, index: int) -> tuple[int, int]:
        return (self.columns[index].drop, index)

    def _zones_to_headers(self) -> None:
        """Where every time of a column is in one zone, say it once in the header ("recorded (CST)")."""
        for index, column in enumerate(self.columns):
            if not column.time:
                continue
            found = [_LOCAL_TIME.fullmatch(row[index]) for row in self.rows]
            zones = {match.group(2) for match in found if match}
            if len(zones) != 1:
                continue
            self.columns[index] = replace(column, header=f"{column.header} ({zones.pop()})")
            for row, match in zip(self.rows, found, strict=True):
                if match:
                    row[index] = match.group(1) + match.group(3)

    def _widths(self, kept: list[int], width: int | None) -> dict[int, int]:
        """Each kept column's width: keys and values whole; text and summaries share what is left
        (at least their narrowest, else in proportion to how much more they would take)."""
        widths = {i: self._natural(i) for i in kept}
        flexible = [i for i in kept if self.columns[i].kind in (TEXT, LINE)]
        if width is None or not flexible:
            return widths
        fixed = sum(widths[i] for i in kept if i not in flexible)
        room = width - fixed - _COLUMN_EXTRA * len(kept) + 1
        given = {i: min(widths[i], self.columns[i].narrowest) for i in flexible}
        wanted = {i: widths[i] - given[i] for i in flexible}
        spare = max(0, room - sum(given.values()))
        if sum(wanted.values()) <= spare:
            return widths
        for i in flexible:
            share = spare * wanted[i] // max(1, sum(wanted.values()))
            widths[i] = given[i] + share
        return widths

    def _natural(self, index: int) -> int:
        return self._widest[index]

    def _measure(self, index: int) -> int:
        lines = [self.columns[index].header]
        for row in self.rows:
            lines += row[index].split("\n")
        return max(cell_len(line) for line in lines)

    def _narrowest(self, kept: list[int]) -> int:
        """The least width the kept columns fit in: keys and values whole, text at its narrowest."""
        total = 0
        for index in kept:
            column = self.columns[index]
            natural = self._natural(index)
            total += (
                natural if column.kind in (KEY, VALUE) else min(natural, column.narrowest)
            ) + _COLUMN_EXTRA
        return total - 1 if kept else 0

    def _print_separated(self, console: Console) -> None:
        # One line per row, one tab between cells: a cell's own tabs and breaks (and any other
        # hidden character) are shown escaped, as everywhere else.
        lines = [f"# {shown_text(self.title)}"] if self.title else []
        lines.append("\t".join(c.header for c in self.columns))
        lines += ["\t".join(shown_text(text) for text in row) for row in self.rows]
        console.file.write("".join(line + "\n" for line in lines))


def field_lines(fields: list[tuple[str, str]], width: int | None) -> list[str]:
    """Lay out ``label: value`` lines, labels right-aligned; at a terminal ``width``, wrap at spaces.

    A value's words are never cut: one too long for the space beside its
    label (a SHA-256 beside a long label) starts on the next line, indented.
    ``width`` None (piped): one line per field, as long as it is.
    """
    label_width = min(19, max((cell_len(label) for label, _ in fields), default=0))
    lines = []
    for label, value in fields:
        prefix = (
            " " * max(0, label_width - cell_len(label)) + f"{label}: "
        )  # (a CJK label: two columns a character)
        value_lines = value.split("\n")
        if width is None:
            lines.append(prefix + value_lines[0])
            lines += [" " * len(prefix) + rest for rest in value_lines[1:]]
            continue
        room = width - cell_len(prefix)
        wrapped = [part for text in value_lines for part in wrap_words(text, room)]
        if all(cell_len(part) <= room for part in wrapped):
            lines.append(prefix + wrapped[0])
            lines += [" " * cell_len(prefix) + part for part in wrapped[1:]]
        else:  # a word longer than the room beside the label: the value starts below it
            lines.append(prefix.rstrip())
            lines += ["    " + part for text in value_lines for part in wrap_words(text, width - 4)]
    return lines


def wrap_words(text: str, room: int) -> list[str]:
    """Greedy wrap at spaces by display cells; a word longer than ``room`` stays whole on its line
    unless it is a path, which breaks after a slash."""
    lines: list[str] = []
    current = ""
    words = []
    for word in text.split(" "):
        # A path longer than the room breaks after a "/" (an id or a hash has none: it stays whole).
        while cell_len(word) > room and "/" in word[1:]:
            cut = word.rfind("/", 0, room)
            cut = cut if cut > 0 else word.find("/", 1)
            words.append(word[: cut + 1])
            word = word[cut + 1 :]
        words.append(word)
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and cell_len(candidate) > room:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    return lines
