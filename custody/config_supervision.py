"""[supervision] of custody.toml: supervision (抽查考评) of footage by leaders and their deputies.

The checklist each sampled recording is reviewed against, the size of a sample, and the units
each supervisor may draw from (``[supervision.scopes]``: login = ["unit", ...], "*" for all)."""

from __future__ import annotations

from dataclasses import dataclass, field

from custody.errors import ConfigError

ALL_UNITS = "*"

# The shipped checklist (key -> what the reviewer checks), from the rule's duties (art. 9-14).
DEFAULT_CHECKLIST: dict[str, str] = {
    "arrival": "到达现场即开始记录 (recording started on arrival)",
    "identity": "表明身份、告知权利义务 (identity and rights stated)",
    "conduct": "执法行为与用语规范 (conduct and language)",
    "complete": "连续完整记录至结束 (complete to the end)",
    "required": "应当录像的环节已录像 (the act's required recording present)",
}


@dataclass(frozen=True)
class SupervisionSettings:
    """Supervision (抽查考评): the checklist a sampled recording is reviewed against, how many
    items a sample draws by default, and the units each supervisor's samples may come from."""

    checklist: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CHECKLIST))
    sample_size: int = 5
    scopes: dict[str, list[str]] = field(default_factory=dict)


def build_supervision(value: object, path) -> SupervisionSettings:
    """[supervision] with sample_size, [supervision.checklist] (replaces the shipped list) and
    [supervision.scopes]; raise ConfigError naming the key."""
    if not isinstance(value, dict) or set(value) - {"checklist", "sample_size", "scopes"}:
        raise ConfigError(
            path=path, key="supervision", problem="has sample_size and the tables checklist and scopes"
        )
    size = value.get("sample_size", SupervisionSettings.sample_size)
    if type(size) is not int or not 1 <= size <= 1000:
        raise ConfigError(path=path, key="supervision.sample_size", problem="must be a whole number 1-1000")
    checklist = value.get("checklist", DEFAULT_CHECKLIST)
    if not isinstance(checklist, dict) or not checklist:
        raise ConfigError(
            path=path, key="supervision.checklist", problem='must be a table: key = "what to check"'
        )
    for key, label in checklist.items():
        if not key.isidentifier() or not isinstance(label, str) or not label.strip() or len(label) > 200:
            raise ConfigError(
                path=path,
                key=f"supervision.checklist.{key}",
                problem="a key of letters and _ with one line of up to 200 characters",
            )
    scopes = value.get("scopes", {})
    if not isinstance(scopes, dict):
        raise ConfigError(
            path=path, key="supervision.scopes", problem='must be a table: login = ["unit", ...]'
        )
    for login, units in scopes.items():
        if not isinstance(units, list) or not all(isinstance(u, str) and u.strip() for u in units):
            raise ConfigError(
                path=path, key=f"supervision.scopes.{login}", problem='must be a list of units, or ["*"]'
            )
    return SupervisionSettings(
        checklist={k: v.strip() for k, v in checklist.items()}, sample_size=size, scopes=dict(scopes)
    )
