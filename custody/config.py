"""One TOML file, ``custody.toml`` in the vault home, turned into typed settings.

The dataclasses below are the single defaults table and schema: every key a
config file may set is a field here, with its type and default. Loading
validates the file against them and names the offending key and value.
Precedence is defaults < file < command line.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from custody.errors import ConfigError

CONFIG_NAME = "custody.toml"


@dataclass(frozen=True)
class StationSettings:
    """Who this docking station is, as written in the audit chain and on exports."""

    name: str = field(default_factory=socket.gethostname)
    organisation: str = ""


@dataclass(frozen=True)
class KeySettings:
    """Where the vault's keys live; relative paths are inside the vault home."""

    master_key_file: str = "keys/master.key"
    signing_key_file: str = "keys/signing.key"
    # Name of the systemd credential that, when present in
    # $CREDENTIALS_DIRECTORY, supplies the master key instead of the key file.
    master_key_credential: str = "custody-master-key"


@dataclass(frozen=True)
class VaultSettings:
    """How objects are written: direct I/O writes and reads back from the device itself."""

    # Write objects and read them back with O_DIRECT (faster, and the read-back
    # comes from the device, never from the page cache). Turn off on
    # filesystems where O_DIRECT is slow or unreliable; custody also falls back
    # by itself where the filesystem refuses it.
    direct_io: bool = True


@dataclass(frozen=True)
class IngestSettings:
    """What ingest skips: shell-style patterns matched against each file or folder name."""

    skip_names: list[str] = field(
        default_factory=lambda: [
            ".*",
            "Thumbs.db",
            "desktop.ini",
            "System Volume Information",
            "$RECYCLE.BIN",
        ]
    )


@dataclass(frozen=True)
class CatalogSettings:
    """How long a command waits for another one holding the catalog's write lock."""

    busy_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Settings:
    """Every package's settings, read from one file."""

    home: Path
    station: StationSettings = field(default_factory=StationSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    vault: VaultSettings = field(default_factory=VaultSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_NAME

    def home_path(self, relative: str) -> Path:
        """Return ``relative`` resolved against the vault home (absolute paths stay)."""
        return self.home / relative


_SECTIONS: dict[str, type] = {
    "station": StationSettings,
    "keys": KeySettings,
    "vault": VaultSettings,
    "ingest": IngestSettings,
    "catalog": CatalogSettings,
}


def default_home() -> Path:
    """Return the vault home when none is given: $CUSTODY_HOME, else the system or user default."""
    env = os.environ.get("CUSTODY_HOME")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/custody")
    return Path.home() / ".local/share/custody"


def resolve_home(home: str | os.PathLike | None) -> Path:
    """Return the vault home: ``home`` when given (command line), else :func:`default_home`."""
    return Path(home) if home else default_home()


def load_settings(home: Path) -> Settings:
    """Return the settings of the vault at ``home``, read from its custody.toml.

    A missing file means all defaults. Raise ConfigError naming the key and the
    bad value when the file cannot be parsed, has an unknown section or key, or
    a value of the wrong type.
    """
    path = home / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings(home=home)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path=path, key="(file)", problem=f"cannot be read: {exc}") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path=path, key="(syntax)", problem=str(exc)) from exc
    return settings_from_dict(document, home=home, path=path)


def settings_from_dict(document: dict, home: Path, path: Path | str = CONFIG_NAME) -> Settings:
    """Return Settings built from a parsed TOML document; raise ConfigError on any bad key."""
    sections = {}
    for section_name, section_value in document.items():
        section_class = _SECTIONS.get(section_name)
        if section_class is None:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(path=path, key=section_name, problem=f"unknown section (known: {known})")
        if not isinstance(section_value, dict):
            raise ConfigError(
                path=path,
                key=section_name,
                problem=f"must be a table [{section_name}], got {section_value!r}",
            )
        sections[section_name] = _build_section(section_class, section_name, section_value, path)
    return Settings(home=home, **sections)


def _build_section(section_class: type, section_name: str, values: dict, path) -> object:
    hints = typing.get_type_hints(section_class)
    known = {f.name for f in dataclasses.fields(section_class)}
    for key, value in values.items():
        dotted = f"{section_name}.{key}"
        if key not in known:
            raise ConfigError(
                path=path,
                key=dotted,
                problem=f"unknown key (known in [{section_name}]: {', '.join(sorted(known))})",
            )
        problem = _type_problem(hints[key], value)
        if problem:
            raise ConfigError(path=path, key=dotted, problem=f"{problem}, got {value!r}")
    converted = {key: float(value) if hints[key] is float else value for key, value in values.items()}
    return section_class(**converted)


def _type_problem(expected: object, value: object) -> str | None:
    """Return what is wrong with ``value`` for type ``expected``, or None when it fits."""
    if expected is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be a whole number"
    if expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if expected is str:
        return None if isinstance(value, str) else "must be a string"
    if typing.get_origin(expected) is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "must be a list of strings"
    raise TypeError(f"config schema has an unsupported type {expected!r}")


def default_config_text() -> str:
    """Return a custody.toml that documents every key with its default, all commented out."""
    lines = [
        "# custody configuration. Every key is shown with its default, commented out;",
        "# uncomment and change what you need. Unknown keys are refused at start-up.",
    ]
    for section_name, section_class in _SECTIONS.items():
        lines.append("")
        doc = (section_class.__doc__ or "").strip()
        if doc:
            lines.append(f"# {doc}")
        lines.append(f"[{section_name}]")
        for f in dataclasses.fields(section_class):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            lines.append(f"# {f.name} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
