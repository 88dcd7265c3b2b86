"""Item identity for people: short typable ids (EV-000123) and printable names."""

from __future__ import annotations

import re
import unicodedata

from custody.errors import Said, UsageError

ITEM_PREFIX = "EV-"
_ITEM_ID = re.compile(r"^EV-?(\d{1,12})$", re.IGNORECASE)
_SHA_PREFIX = re.compile(r"^[0-9a-fA-F]{8,64}$")
TAG_NAMES = ("case", "party", "officer", "category", "note")
# The three labels the regulation requires on every record; an item missing
# any of them is "untagged".
REQUIRED_TAGS = ("case", "party", "officer")


def format_item_id(number: int) -> str:
    return f"{ITEM_PREFIX}{number:06d}"


def parse_item_id(text: str) -> int | None:
    """Return the number in an item id such as ``EV-000123`` (or ``ev123``), else None."""
    match = _ITEM_ID.match(text.strip())
    return int(match.group(1)) if match else None


def sha256_prefix(text: str) -> str | None:
    """Return ``text`` lower-cased when it can be a SHA-256 or a prefix of 8+ hex digits."""
    text = text.strip()
    return text.lower() if _SHA_PREFIX.match(text) else None


# Characters that change how text around them is shown rather than being shown: the bidi
# embeddings, overrides and isolates (U+202E turns "gpj.exe" into "exe.jpg" on screen), the
# marks, and the line and paragraph separators. Shown escaped, never stored in a tag.
_DISGUISING = frozenset(
    "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def is_hidden_character(char: str) -> bool:
    """Whether ``char`` is a control (C0, C1, DEL), a lone surrogate, or a bidi/format disguise."""
    return unicodedata.category(char) in ("Cc", "Cs") or char in _DISGUISING


def shown_text(text: str, keep_newlines: bool = False) -> str:
    r"""Return ``text`` with every hidden character (see is_hidden_character) as a visible escape.

    ``"a\u202eb"`` becomes ``"a\\u202eb"``: what a terminal, a PDF or a web page shows
    is what is stored, nothing reordered. ``keep_newlines``: line breaks stay (a layout's own
    lines; names from outside never hold one: they are stored escaped, tags refuse them).
    """
    if not any(is_hidden_character(char) for char in text):
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if is_hidden_character(char) and not (keep_newlines and char == "\n")
        else char
        for char in text
    )


def printable_name(name: str) -> str:
    """Return a file name safe to print and store as text.

    Bytes that are not UTF-8 (kept by Python as surrogate escapes) become
    ``\\xNN``; control characters such as a newline, and bidi overrides,
    become escapes too, so one name is always one line shown as stored. The
    exact bytes are stored separately.
    """
    raw = name.encode("utf-8", "surrogateescape")
    return shown_text(raw.decode("utf-8", "backslashreplace"))


# A reason kept in the audit chain (a hold's, a disposal's, an explanation's) is at most this long.
MAX_REASON_LENGTH = 2000


def checked_reason(text: str, what: str) -> str:
    """A reason kept in the audit chain: not empty, not longer than MAX_REASON_LENGTH; raise UsageError."""
    reason = text.strip()
    if not reason:
        raise UsageError(reason=Said("--reason is empty: say {what}", what=what))
    if len(reason) > MAX_REASON_LENGTH:
        raise UsageError(
            reason=Said(
                "--reason is longer than {max_reason_length} characters: shorten it",
                max_reason_length=MAX_REASON_LENGTH,
            )
        )
    return reason
