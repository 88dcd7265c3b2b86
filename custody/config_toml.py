"""Values written into the generated custody.toml, as TOML spells them."""

from __future__ import annotations

import dataclasses

from custody.config_alerts import AlertSettings
from custody.config_cases import CaseSettings
from custody.rules import STAGE_KEYS


def settings_doc(settings_class: type) -> str:
    """A settings class's docstring, folded to one line, in the person's language (a comment of
    the generated custody.toml)."""
    from custody.i18n import _

    return _(" ".join((settings_class.__doc__ or "").split()))


def toml_value(value: object) -> str:
    """``value`` (bool, number, text or a list of them) as TOML; raise TypeError for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def case_and_alert_comments() -> list[str]:
    """The generated custody.toml's comments on [cases] and [alerts]."""
    lines: list[str] = []
    lines += [
        "",
        f"# {settings_doc(CaseSettings)}",
        '# [cases.document_types."现场笔录"]  (adds a type, or changes a shipped one)',
        '# english = "on-site record"',
        '# stage = "investigation"  # one of ' + ", ".join(STAGE_KEYS),
        "# recording = true  # an audio-visual record of the act must be linked with it",
    ]
    lines += [
        "",
        "# Alerts: duties pushed to mail and group chats (README, Alerts). [alerts] and its defaults:",
    ]
    lines += [f"# {f.name} = {toml_value(f.default)}" for f in dataclasses.fields(AlertSettings)[:-1]]
    lines += [
        "# [alerts.channels.mail]  (kind: smtp, webhook, wecom, dingtalk or journal)",
        '# kind = "smtp"',
    ]
    return lines
