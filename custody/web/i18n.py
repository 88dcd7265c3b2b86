"""The web platform's languages: Simplified Chinese by default, English by a switch (a cookie) or
the browser's Accept-Language; every string through the gettext catalogs in ``custody/locale`` (Babel, shared with the command line).
The messages are written in English; ``locale/zh_CN`` translates them."""

from __future__ import annotations

import functools
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request

from custody.i18n import LANGUAGES, translations

HERE = Path(__file__).parent
DEFAULT = "zh_CN"


def language_of(request: Request) -> str:
    """The page's language: the switch's cookie, else the browser's first known one, else Chinese."""
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


@functools.cache
def environment(language: str) -> Environment:
    """Templates in ``language``, every value escaped as HTML (text from outside is data)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language), newstyle=True)
    return env


def refusal_role(request: Request) -> str:
    return translations(language_of(request)).gettext("Your role may not view footage itself.")


def no_playable(request: Request) -> str:
    return translations(language_of(request)).gettext("This item has no playable copy (yet).")


def no_preview(request: Request) -> str:
    return translations(language_of(request)).gettext("This kind of file is not shown here: download it.")


def no_export(request: Request) -> str:
    return translations(language_of(request)).gettext("No such export for this session.")


def refusal_csrf(request: Request) -> str:
    """The refusal of a change without this session's CSRF token, in the page's language."""
    return translations(language_of(request)).gettext(
        "This form has expired or did not come from this site: open the page again."
    )


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs where it is translated later (``text``)."""
    return message


def text(request: Request, message: str) -> str:
    """``message`` (marked with ``N_``) in the page's language."""
    return translations(language_of(request)).gettext(message)
