"""The web platform speaks Chinese by default: every message its templates and code use has a
Chinese translation in the compiled catalog it reads (the catalog coverage check)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from custody.web import i18n

WEB = Path(i18n.__file__).parent
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def messages() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(WEB, METHODS, options_map=OPTIONS):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_of_the_web_platform_has_its_chinese_translation():
    used = messages()
    assert len(used) > 40 and "Sign in" in used and "Tag the selected items" in used
    chinese = i18n.translations("zh_CN")
    untranslated = sorted(m for m in used if chinese.gettext(m) == m and m != "SHA-256")
    assert untranslated == [], "run scripts/web-catalog, translate, and compile"


def test_chinese_is_the_default_and_english_the_messages_own():
    assert i18n.DEFAULT == "zh_CN"
    assert i18n.translations("zh_CN").gettext("Sign in") == "登录"
    assert i18n.translations("en").gettext("Sign in") == "Sign in"
