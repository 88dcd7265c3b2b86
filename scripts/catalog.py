"""Extract custody's messages into custody/locale/messages.pot, merge them into each language's
.po, and compile the .mo files (run by scripts/catalog).

Besides what pybabel finds (the web templates, and ``_``/``N_`` in the code) the template holds
what the command line shows: every command's help (paragraph by paragraph) and its options'
help, the table headings (``Column("...")``), the error templates (each CustodyError's first
docstring line) and click's own words. ``--check`` only reports what Chinese lacks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from custody.cli.catalog import CLICK_PLURALS, cli_messages  # noqa: E402
from custody.i18n import LOCALE  # noqa: E402

BIN = REPO / ".venv/bin"


def main(argv: list[str]) -> int:
    if "--check" in argv:
        from custody.i18n import has_translation

        missing = sorted(m for m in cli_messages() if not has_translation(m))
        print("\n".join(missing))
        return 1 if missing else 0
    pot = LOCALE / "messages.pot"
    subprocess.run(
        [BIN / "pybabel", "extract", "-F", REPO / "custody/babel.cfg", "-o", pot, "--no-location",
         "--omit-header", "-k", "N_", "-k", "Said", REPO],
        check=True, cwd=REPO,
    )  # fmt: skip
    with open(pot, "rb") as source:
        template = read_po(source)
    for message in cli_messages():
        if message not in template:
            template.add(message)
    for plural in CLICK_PLURALS:
        if plural[0] not in template:
            template.add(plural)
    with open(pot, "wb") as sink:
        write_po(sink, template, omit_header=True, no_location=True)
    subprocess.run([BIN / "pybabel", "update", "-i", pot, "-d", LOCALE, "-D", "messages", "--no-fuzzy-matching"],
                   check=True)  # fmt: skip
    subprocess.run([BIN / "pybabel", "compile", "-d", LOCALE, "-D", "messages", "--statistics"], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
