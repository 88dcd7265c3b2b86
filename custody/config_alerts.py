"""[alerts] of custody.toml: which duties custody watches push a message to people, when, and
through which channels (e-mail through an SMTP relay, webhooks: generic JSON, WeCom and DingTalk
group robots; the journal)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from custody.errors import ConfigError, Said

CONDITIONS = (
    "recorder_overdue",  # assigned, not docked within the window
    "footage_late",  # stored after its deadline (said once)
    "replica_failing",  # copies failing, or waiting longer than replica_lag_hours
    "disk_low",  # the vault disk's free space below disk_free_mb
    "finding_open",  # an interruption or a missing recording open longer than finding_days
    "case_archive",  # a case within case_days of its archive deadline, or past it
    "filing_overdue",  # an urgent case's filing approval missing after 24 hours
    "damage_found",  # the last verify found damage
)
CHANNEL_KINDS = ("smtp", "webhook", "wecom", "dingtalk", "journal")
_HOUR_MINUTE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class ChannelSettings:
    """One way out: ``kind`` smtp (host, port, starttls, username, password from a systemd
    credential or a file, sender, recipients), webhook/wecom/dingtalk (url; dingtalk's optional
    signing secret from a credential or file), or journal. ``conditions``: which it carries
    (empty: all)."""

    name: str
    kind: str
    conditions: tuple[str, ...] = ()
    url: str = ""
    host: str = ""
    port: int = 587
    starttls: bool = True
    username: str = ""
    password_credential: str = ""  # a file in $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
    password_file: str = ""
    secret_credential: str = ""
    secret_file: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()
    ca_file: str = ""  # the relay's certificate authority, when not one the system trusts
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class AlertSettings:
    """Alerts: how often the duties are checked, the thresholds, quiet hours (messages wait until
    they end), how often an alert still in force is said again, and the channels."""

    enabled: bool = True
    check_seconds: int = 60
    conditions: tuple[str, ...] = CONDITIONS  # the ones watched
    replica_lag_hours: float = 6.0
    disk_free_mb: int = 0  # 0: twice [vault] min_free_mb
    finding_days: int = 3
    case_days: int = 7
    late_lookback_hours: int = 48  # footage stored late is said about when stored this recently
    quiet_hours: str = ""  # "22:00-07:00", the station's local time; empty: none
    repeat_hours: float = 24.0  # 0: said once (and when resolved)
    channels: dict[str, ChannelSettings] = field(default_factory=dict)


_CHANNEL_KEYS = {f for f in ChannelSettings.__dataclass_fields__ if f != "name"}
_CHANNEL_DEFAULTS = {
    f.name: f.default for f in ChannelSettings.__dataclass_fields__.values() if f.name not in ("name", "kind")
}
_SCALARS = {
    "enabled": bool, "check_seconds": int, "replica_lag_hours": (int, float), "disk_free_mb": int,
    "finding_days": int, "case_days": int, "late_lookback_hours": int, "quiet_hours": str,
    "repeat_hours": (int, float),
}  # fmt: skip


def build_alerts(value: object, path) -> AlertSettings:
    """[alerts] with its scalars, ``conditions`` and [alerts.channels.NAME] tables; raise
    ConfigError naming the key."""
    if not isinstance(value, dict):
        raise ConfigError(path=path, key="alerts", problem="must be a table [alerts]")
    known = {*_SCALARS, "conditions", "channels"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(
            path=path,
            key=f"alerts.{unknown[0]}",
            problem=Said("unknown key (known: {known})", known=", ".join(sorted(known))),
        )
    settings: dict = {}
    for key, kind in _SCALARS.items():
        if key in value:
            given = value[key]
            if not isinstance(given, kind) or (kind is int and isinstance(given, bool)):
                raise ConfigError(
                    path=path,
                    key=f"alerts.{key}",
                    problem=Said("has the wrong type ({given!r})", given=given),
                )
            settings[key] = given
    if settings.get("check_seconds", 60) < 1:
        raise ConfigError(path=path, key="alerts.check_seconds", problem="must be at least 1")
    quiet = settings.get("quiet_hours", "")
    if quiet and quiet_window(quiet) is None:
        raise ConfigError(path=path, key="alerts.quiet_hours", problem='must be "HH:MM-HH:MM" (local time)')
    if "conditions" in value:
        conditions = value["conditions"]
        if not isinstance(conditions, list) or any(c not in CONDITIONS for c in conditions):
            raise ConfigError(
                path=path,
                key="alerts.conditions",
                problem=Said("a list of: {conditions}", conditions=", ".join(CONDITIONS)),
            )
        settings["conditions"] = tuple(conditions)
    channels = value.get("channels", {})
    if not isinstance(channels, dict):
        raise ConfigError(path=path, key="alerts.channels", problem="must be tables [alerts.channels.NAME]")
    settings["channels"] = {name: _channel(name, spec, path) for name, spec in channels.items()}
    return AlertSettings(**settings)


def _channel(name: str, spec: object, path) -> ChannelSettings:
    key = f"alerts.channels.{name}"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name) or not isinstance(spec, dict):
        raise ConfigError(path=path, key=key, problem="a name of letters, digits, _ and - with a table")
    unknown = sorted(set(spec) - _CHANNEL_KEYS)
    if unknown:
        raise ConfigError(path=path, key=f"{key}.{unknown[0]}", problem="unknown key")
    kind = spec.get("kind")
    if kind not in CHANNEL_KINDS:
        raise ConfigError(
            path=path,
            key=f"{key}.kind",
            problem=Said("must be one of {kinds}", kinds=", ".join(CHANNEL_KINDS)),
        )
    values = dict(spec)
    for field_name, default in _CHANNEL_DEFAULTS.items():
        given = values.get(field_name, default)
        fits = (
            isinstance(given, (list, tuple))
            if isinstance(default, tuple)
            else isinstance(given, type(default))
        )
        if isinstance(default, float) and isinstance(given, int) and not isinstance(given, bool):
            fits = True
        if not fits or (
            isinstance(default, int) and isinstance(given, bool) and not isinstance(default, bool)
        ):
            raise ConfigError(
                path=path,
                key=f"{key}.{field_name}",
                problem=Said("has the wrong type ({given!r})", given=given),
            )
    for listed in ("conditions", "recipients"):
        if listed in values:
            if not isinstance(values[listed], list) or not all(isinstance(v, str) for v in values[listed]):
                raise ConfigError(path=path, key=f"{key}.{listed}", problem="must be a list of text")
            values[listed] = tuple(values[listed])
    if any(c not in CONDITIONS for c in values.get("conditions", ())):
        raise ConfigError(
            path=path,
            key=f"{key}.conditions",
            problem=Said("a list of: {conditions}", conditions=", ".join(CONDITIONS)),
        )
    if kind == "smtp" and not (values.get("host") and values.get("sender") and values.get("recipients")):
        raise ConfigError(path=path, key=key, problem="an smtp channel needs host, sender and recipients")
    if kind in ("webhook", "wecom", "dingtalk") and not str(values.get("url", "")).startswith(
        ("http://", "https://")
    ):
        raise ConfigError(path=path, key=f"{key}.url", problem="must be an http:// or https:// URL")
    return ChannelSettings(name=name, **values)


def quiet_window(text: str) -> tuple[int, int] | None:
    """``"HH:MM-HH:MM"`` as (start, end) minutes after midnight; None when it is not that."""
    start, _, end = text.partition("-")
    first, last = _HOUR_MINUTE.match(start.strip()), _HOUR_MINUTE.match(end.strip())
    if not first or not last:
        return None
    return int(first[1]) * 60 + int(first[2]), int(last[1]) * 60 + int(last[2])
