"""custody's languages: Simplified Chinese and English, from one set of gettext catalogs
(``custody/locale``, Babel) for the command line and the web platform alike.

Messages are written in English in the code; ``locale/zh_CN`` translates them. The command line
speaks the language of ``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG`` when they name Chinese or
English, else ``[station] language``, else English (``use``); ``--json`` is never translated.
"""

from __future__ import annotations

import contextlib
import functools
import gettext as stdlib_gettext
import os
from collections.abc import Iterator
from pathlib import Path

from babel.support import NullTranslations, Translations

LOCALE = Path(__file__).parent / "locale"
DOMAIN = "messages"
CHINESE, ENGLISH = "zh_CN", "en"
LANGUAGES = {CHINESE: "中文", ENGLISH: "English"}
# The language spoken now; while speaking, the LANGUAGE the environment had before (``use`` sets
# LANGUAGE for click's own gettext messages).
_current: dict = {"language": ENGLISH, "speaking": 0, "outer_language": None}


@functools.cache
def translations(language: str) -> NullTranslations:
    """The catalog of ``language`` (English: the messages themselves)."""
    if language != CHINESE:
        return NullTranslations()
    return Translations.load(LOCALE, [language], domain=DOMAIN)


def from_environment(default: str = "") -> str:
    """The language the environment names (the first of LANGUAGE, LC_ALL, LC_MESSAGES, LANG that
    is set): Chinese for zh*, English for en*; ``default`` for C, POSIX or nothing."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        given = (
            _current["outer_language"]
            if name == "LANGUAGE" and _current["speaking"]
            else os.environ.get(name)
        )
        value = (given or "").split(":")[0].strip().lower()
        if not value:
            continue
        if value.startswith("zh"):
            return CHINESE
        if value.startswith("en"):
            return ENGLISH
        break
    return default if default in LANGUAGES else ENGLISH


def use(language: str) -> None:
    """Speak ``language`` from now on in this process (the command line's own messages, and
    click's: its gettext domain is pointed at the same catalog)."""
    _current["language"] = language if language in LANGUAGES else ENGLISH
    stdlib_gettext.bindtextdomain(DOMAIN, str(LOCALE))
    stdlib_gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = CHINESE if _current["language"] == CHINESE else "en"


@contextlib.contextmanager
def speaking(language: str) -> Iterator[None]:
    """Speak ``language`` for the duration (a command); then as before, the environment too."""
    saved = _current["language"], os.environ.get("LANGUAGE")
    if not _current["speaking"]:
        _current["outer_language"] = saved[1]
    _current["speaking"] += 1
    use(language)
    try:
        yield
    finally:
        _current["speaking"] -= 1
        _current["language"] = saved[0]
        if saved[1] is None:
            os.environ.pop("LANGUAGE", None)
        else:
            os.environ["LANGUAGE"] = saved[1]


def current() -> str:
    return _current["language"]


def _(message: str) -> str:
    """``message`` in the current language."""
    return translations(_current["language"]).gettext(message) if message else message


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs where it is translated later."""
    return message


def has_translation(message: str, language: str = CHINESE) -> bool:
    """Whether the catalog of ``language`` translates ``message`` (the coverage checks; a
    translation may be the message itself, "{reason}" or "sha256")."""
    catalog = getattr(translations(language), "_catalog", {})
    return bool(catalog.get(message) or catalog.get((message, 0)))  # (a plural's first form)
