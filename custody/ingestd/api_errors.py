"""The errors of the daemon's socket: ApiError (what a client raises for a refusal), and the
answer a refusal is sent as, with its template and fields so that the client says it in its
person's language."""

from __future__ import annotations

from custody.errors import CustodyError, Said, localized_field, said_as_data
from custody.i18n import _


class ApiError(CustodyError):
    """{message}"""

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2, said: tuple[str, dict] | None = None) -> None:
        super().__init__(message=message)
        self.exit_code = exit_code
        self.said = said  # the daemon's template and fields, to say it in this process's language

    @property
    def localized(self) -> str:
        if self.said is None:
            return self.message
        template, fields = self.said
        try:
            fields = {
                name: Said(value["template"], **value["fields"]) if isinstance(value, dict) else value
                for name, value in fields.items()
            }
            return _(template).format(
                **{name: localized_field(name, value) for name, value in fields.items()}
            )
        except (
            KeyError,
            IndexError,
            ValueError,
            TypeError,
            AttributeError,
        ):  # (a template as not known here)
            return self.message


def error_reply(message: str, exit_code: int) -> dict:
    return {"ok": False, "error": message, "exit_code": exit_code}


def refusal(exc: CustodyError) -> dict:
    """A CustodyError's answer: its English message, and its template and fields so that the
    caller's own custody says it in the caller's language."""
    reply = error_reply(exc.message, exc.exit_code)
    if not isinstance(exc, ApiError):
        reply["template"] = exc.template
        reply["fields"] = {name: said_as_data(value) for name, value in exc.fields.items()}
    elif exc.said is not None:
        reply["template"], reply["fields"] = exc.said
    return reply
