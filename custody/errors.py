"""The error base class every custody error derives from.

Each error class carries its one-line message template (the first line of its
docstring, filled with the keyword arguments given when raising it) and the
exit code the command ends with. Library code raises; only the command line (``custody/cli/``) prints.
"""

from __future__ import annotations

from pathlib import Path

# Fields that hold the code's own words (a reason, a why): said in the person's language too.
CODE_WORDS = frozenset({"reason", "why", "problem", "what"})


class Said(str):
    """Words composed in the code, with values in them: the English text (it is a str, for records
    and logs), and the template and values to say them in another language (``localized``).
    ``Said("--size must be 1-{most}", most=1000)``; the template is a catalog message."""

    def __new__(cls, template: str, **fields: object) -> Said:
        said = super().__new__(cls, template.format(**fields))
        said.template, said.fields = template, fields
        return said

    def localized(self) -> str:
        from custody.i18n import _

        fields = {name: localized_field(name, value) for name, value in self.fields.items()}
        return _(self.template).format(**fields)


def localized_field(name: str, value: object) -> object:
    """A field of an error as the person reads it: Said words and the code's own constant words
    translated; anything else (ids, names, text from outside) as it is."""
    if isinstance(value, Said):
        return value.localized()
    if name in CODE_WORDS and isinstance(value, str):
        from custody.i18n import _

        return _(value)
    return value


def said_as_data(value: object) -> str | dict:
    """Words as the socket carries them: text, or Said words as their template and values (which
    the other side rebuilds with said_from_data, to say them in its person's language)."""
    if isinstance(value, Said):
        return {
            "template": value.template,
            "fields": {name: said_as_data(v) for name, v in value.fields.items()},
        }
    return str(value)


def said_from_data(value: object) -> object:
    """What said_as_data made, back as Said words (text stays text)."""
    if (
        isinstance(value, dict)
        and isinstance(value.get("template"), str)
        and isinstance(value.get("fields"), dict)
    ):
        fields = {name: said_from_data(v) for name, v in value["fields"].items()}
        try:
            return Said(value["template"], **fields)
        except (KeyError, IndexError, ValueError):  # (a template as not known here)
            return value["template"]
    return value


def localized_text(value: object) -> str:
    """Words in the person's language: Said words translated, anything else as it is."""
    if isinstance(value, Said):
        try:
            return value.localized()
        except (KeyError, IndexError, ValueError):  # (a translation that lost a placeholder)
            return str(value)
    return str(value)


class CustodyError(Exception):
    """Error: {reason}"""

    exit_code = 2

    def __init__(self, **fields: object) -> None:
        self.fields = fields
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The message in English: what records, logs and the socket carry."""
        return self.template.format(**self.fields)

    @property
    def localized(self) -> str:
        """The message in the person's language, for the command line to print: the code's own
        words in its fields (Said words, constant reasons) said in it too; text from outside stays
        as given."""
        from custody.i18n import _

        fields = {name: localized_field(name, value) for name, value in self.fields.items()}
        try:
            return _(self.template).format(**fields)
        except (KeyError, IndexError, ValueError):  # (a translation that lost a placeholder)
            return self.message

    @property
    def template(self) -> str:
        return (self.__doc__ or "{reason}").strip().splitlines()[0]


class ConfigError(CustodyError):
    """{path}: {key}: {problem}"""

    exit_code = 3


class UsageError(CustodyError):
    """{reason}"""

    exit_code = 2


class CannotWrite(CustodyError):
    """cannot write {path}: {why}"""

    exit_code = 5


# What to do about the ordinary reasons a file cannot be written, by errno.
_WRITE_ADVICE = {
    2: "no such folder: create it first, or choose another",  # ENOENT
    13: "permission denied: choose a folder you may write to",  # EACCES
    1: "not permitted: choose a folder you may write to",  # EPERM
    28: "no space left on that disk: free some, or choose another disk",  # ENOSPC
    122: "over your disk quota: free some space, or choose another disk",  # EDQUOT
    30: "the file system is read-only: choose a writable disk",  # EROFS
    20: "a part of the path is not a folder: check the path",  # ENOTDIR
    21: "it is a folder: name a file in it",  # EISDIR
}


def is_write_problem(exc: OSError) -> bool:
    """Whether ``exc`` is one of the ordinary reasons a file cannot be written (see _WRITE_ADVICE)."""
    return exc.errno in _WRITE_ADVICE


def output_taken(out: Path) -> bool:
    """Whether a file (or a dangling link) is already at ``out``, where custody is about to write a
    new file; raise CannotWrite saying what to do when its folder cannot even be looked into (a
    folder of someone else's: Path.exists raises PermissionError there, not False)."""
    try:
        return out.exists() or out.is_symlink()
    except OSError as exc:
        raise cannot_write(out, exc) from exc


def cannot_write(path: object, exc: OSError) -> CannotWrite:
    """The one-line error for an OSError met writing ``path`` (what happened and what to do)."""
    why = _WRITE_ADVICE.get(exc.errno or 0) or (exc.strerror or str(exc))
    return CannotWrite(path=path, why=why)
