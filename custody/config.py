"""One TOML file, ``custody.toml`` in the vault home, turned into typed settings.

The dataclasses below are the single defaults table and schema: every key a
config file may set is a field here, with its type and default. Loading
validates the file against them and names the offending key and value.
Precedence is defaults < file < command line.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import textwrap
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from custody.config_alerts import AlertSettings, build_alerts
from custody.config_cases import CaseSettings, build_cases
from custody.config_profiles import RecorderProfile, check_profile, default_profiles
from custody.config_supervision import SupervisionSettings, build_supervision
from custody.config_toml import case_and_alert_comments, settings_doc, toml_value
from custody.errors import ConfigError, Said
from custody.i18n import _
from custody.rules import DEFAULT_CATEGORIES, PERMANENT, PeriodError, parse_period

CONFIG_NAME = "custody.toml"
# The roles [access.roles] may give (what each may do: custody.vault.access).
ROLE_NAMES = ("officer", "clerk", "custodian", "auditor", "admin", "supervisor")
# Optical media an export can be written for (their capacities: custody.vault.disc.optical).
EXPORT_MEDIA = ("cd", "dvd", "dvd-dl", "bd", "bd-dl")


DOCUMENT_LANGUAGES = ("both", "zh", "en")  # [station] documents (custody.vault.wording)


@dataclass(frozen=True)
class StationSettings:
    """Who this docking station is, as written in the audit chain and on exports."""

    name: str = field(default_factory=socket.gethostname)
    # The agency's full name: it heads the written description filed with each evidence disc
    # (exports are refused without it).
    organisation: str = ""
    # What the command line speaks when the environment names no language (LANG=C): zh_CN or en.
    language: str = ""
    # The documents written for a case file and for leaders (disc descriptions, case file covers,
    # compliance reports): "both" (Chinese with English beside it), "zh" or "en".
    documents: str = "both"


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
    # Space kept free on the vault's disk: below it nothing new is staged (a pull
    # waits, an upload is refused), so the catalog and the audit chain can always
    # commit. Lower it only on a disk dedicated to the vault.
    min_free_mb: int = 256


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
class DockSettings:
    """How docked recorders are pulled: the storage window, concurrency, what is trusted."""

    # Every file must be in the vault this many hours after its recording ended.
    window_hours: float = 24.0
    # Files pulled at once across all docked recorders (one file per worker, each recorder read by
    # one worker at a time). A docked recorder reads at USB 2.0 speed, far below the disk's and the
    # hash's, so eight at once still leave the machine room; a station with more ports than that
    # may raise it (see the README's benchmarks for where the CPU runs out).
    max_concurrent_pulls: int = 8
    # A device whose serial is not registered is never ingested unless this is
    # true; it is then ingested unassigned (no officer credited).
    ingest_unknown_devices: bool = False
    # Recording times further than this in the future, or older than
    # suspect_past_days, mark the item "recorder clock suspect".
    suspect_future_minutes: int = 60
    suspect_past_days: int = 365
    # Where read-only mounts go; empty means <home>/mounts (kept private, 0700).
    mount_root: str = ""
    # Folders watched for files dropped by a network dock or a card reader.
    watch_folders: list[str] = field(default_factory=list)
    # A watched file is ingested once its size and mtime have not changed for this long.
    watch_settle_seconds: float = 5.0
    # Poll watched folders instead of inotify (network shares do not send inotify events).
    watch_polling: bool = False
    # The profile whose extensions and file-name pattern apply to watched files
    # (its media folders do not: files anywhere in the folder are taken).
    watch_profile: str = "dcim"


@dataclass(frozen=True)
class MediaSettings:
    """How custody runs ffmpeg and ffprobe on footage (untrusted input: every run is limited)."""

    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    # Media jobs run at once (0: one per core).
    workers: int = 0
    # A job that fails this many times stops and is shown by `custody status`.
    max_attempts: int = 3
    # Limits per ffprobe run; a file it cannot read in time counts as unreadable.
    probe_timeout_seconds: float = 20.0
    memory_limit_mb: int = 1024
    # The full decode check (one at a time, lowest CPU priority) may take this long.
    decode_timeout_seconds: float = 3600.0
    # Playable copies: a remux when the original is H.264 (+AAC), else an
    # H.264/AAC transcode no taller than playable_height (never enlarged).
    playable_height: int = 720
    playable_preset: str = "veryfast"
    playable_crf: int = 23
    playable_audio_bitrate: str = "128k"
    thumbnail_width: int = 320
    # Making one playable copy or thumbnail may take this long.
    copy_timeout_seconds: float = 3600.0


@dataclass(frozen=True)
class ContinuitySettings:
    """When a recorder's consecutive segments count as an interrupted recording."""

    # A hole between segments longer than this is an interruption to explain.
    gap_tolerance_seconds: float = 2.0
    # A hole longer than this separates two recordings (the officer stopped
    # recording): not an interruption of one.
    run_break_seconds: float = 300.0


@dataclass(frozen=True)
class RetentionSettings:
    """How long footage is kept: categories and their periods, never below the 2-year floor."""

    # name -> "permanent", years ("5y") or months ("30m"). The shipped ones are
    # routine (2y) and the four kept for ever; a [retention.categories] table
    # adds categories or lengthens routine, and may not shorten anything.
    categories: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CATEGORIES))
    # `retention plan` and `report retention` also list what becomes eligible this many days ahead.
    upcoming_days: int = 90


VERIFY_MODES = ("checksum", "download")
ADDRESSING_STYLES = ("auto", "path", "virtual")
MIN_PART_SIZE_MB = 5  # S3's smallest multipart part


@dataclass(frozen=True)
class ExportSettings:
    """Evidence disc exports: where they are staged, which tools and font they use."""

    # Decrypted footage is staged here (mode 0700) while a disc is made, then
    # removed; empty means <home>/run/export. Needs room for the case (twice
    # when burning: the files and the image).
    staging_dir: str = ""
    xorriso: str = "xorriso"
    # A TrueType font with Chinese glyphs for the PDF description.
    pdf_font: str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
    # Medium used when the command names none: cd, dvd, dvd-dl, bd, bd-dl.
    media: str = "dvd"


@dataclass(frozen=True)
class WebSettings:
    """The platform in a browser (custody web): where it listens, who it runs as, its sessions."""

    # The local user the web service runs as: the only uid the daemon lets act "on behalf of" a
    # signed-in person. Empty: no one may. Loopback by default; the office network needs TLS.
    service_user: str = ""
    bind: str = "127.0.0.1"
    port: int = 8420
    tls_certificate: str = ""
    tls_key: str = ""
    session_minutes: int = 30  # a session ends this long after its last request
    # After this many wrong passwords for one login within lockout_minutes, its sign-ins wait.
    max_failed_sign_ins: int = 5
    lockout_minutes: int = 15


@dataclass(frozen=True)
class AccessSettings:
    """Who may reach the vault: the daemon's API socket and the roles of users and groups."""

    # The daemon's socket; empty means <home>/api.sock (/run/custody/api.sock under systemd).
    socket: str = ""
    # Members of this group may connect; empty: only the vault's own user.
    socket_group: str = ""
    request_timeout_seconds: float = 10.0
    max_requests_per_second: float = 50.0
    # Connections served at once, per user and in all; more are refused at once (no thread
    # is started for them), so stalled connections cannot exhaust the daemon.
    max_connections_per_user: int = 16
    max_connections: int = 128
    # The largest file a caller may send to ingest through the socket (its announced
    # size is checked against this and against the vault's free space before any byte is kept).
    max_upload_mb: int = 65536
    # Confidentiality levels, lowest first; every level above "normal" is
    # seen only by auditors and the clerks and custodians named on the case.
    confidentiality_levels: list[str] = field(default_factory=lambda: ["normal", "restricted"])
    # [access.roles]: role = ["login", "@group", ...]
    roles: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetSettings:
    """One off-site replica: an S3-compatible bucket (AWS S3, MinIO, Ceph RGW)."""

    # Empty endpoint_url means AWS S3 itself.
    endpoint_url: str = ""
    region: str = "us-east-1"
    bucket: str = ""
    # Keys go under this prefix: <prefix>objects/sha256/ab/cd/<sha256>.
    prefix: str = "custody/"
    addressing_style: str = "auto"
    storage_class: str = "STANDARD"
    # Credentials: empty takes the standard AWS chain (environment, profile,
    # instance role); otherwise the name of a systemd credential (a file in
    # $CREDENTIALS_DIRECTORY) holding the access key id and the secret, one a line.
    credential: str = ""
    part_size_mb: int = 16
    concurrency: int = 4
    # A request that gets no answer for this long is cut off and retried.
    timeout_seconds: float = 60.0
    # checksum: trust the server's SHA-256 check of each part (AWS, MinIO, Ceph
    # validate); download: read every object back and re-hash it (for servers
    # that do not validate).
    verify: str = "checksum"
    # Each day, download and re-hash this fraction of the replicated objects.
    deep_check_fraction_per_day: float = 0.01


@dataclass(frozen=True)
class Settings:
    """Every package's settings, read from one file."""

    home: Path
    station: StationSettings = field(default_factory=StationSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    vault: VaultSettings = field(default_factory=VaultSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    dock: DockSettings = field(default_factory=DockSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    continuity: ContinuitySettings = field(default_factory=ContinuitySettings)
    profiles: dict[str, RecorderProfile] = field(default_factory=default_profiles)
    targets: dict[str, TargetSettings] = field(default_factory=dict)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    cases: CaseSettings = field(default_factory=CaseSettings)
    web: WebSettings = field(default_factory=WebSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @property
    def api_socket(self) -> Path:
        return Path(self.access.socket) if self.access.socket else self.home / "api.sock"

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
    "dock": DockSettings,
    "media": MediaSettings,
    "continuity": ContinuitySettings,
    "export": ExportSettings,
    "web": WebSettings,
}


def _built_sections() -> dict:
    """The sections with tables of tables, each read by its own builder."""
    built = {"profiles": _build_profiles, "targets": _build_targets, "retention": _build_retention}
    return {**built, "access": _build_access, "cases": build_cases, "supervision": build_supervision,
            "alerts": build_alerts}  # fmt: skip


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
        raise ConfigError(
            path=path, key="(file)", problem=Said("cannot be read: {error}", error=exc)
        ) from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path=path, key="(syntax)", problem=str(exc)) from exc
    return settings_from_dict(document, home=home, path=path)


def settings_from_dict(document: dict, home: Path, path: Path | str = CONFIG_NAME) -> Settings:
    """Return Settings built from a parsed TOML document; raise ConfigError on any bad key."""
    sections: dict[str, object] = {}
    built = _built_sections()
    for section_name, section_value in document.items():
        if section_name in built:
            sections[section_name] = built[section_name](section_value, path)
            continue
        section_class = _SECTIONS.get(section_name)
        if section_class is None:
            known = ", ".join(sorted([*_SECTIONS, *built]))
            raise ConfigError(
                path=path, key=section_name, problem=Said("unknown section (known: {known})", known=known)
            )
        if not isinstance(section_value, dict):
            raise ConfigError(
                path=path,
                key=section_name,
                problem=Said(
                    "must be a table [{section_name}], got {section_value!r}",
                    section_name=section_name,
                    section_value=section_value,
                ),
            )
        sections[section_name] = _build_section(section_class, section_name, section_value, path)
    settings = Settings(home=home, **sections)
    for name, profile in settings.profiles.items():
        if profile.wipe == "after_replica" and not settings.targets:
            raise ConfigError(
                path=path,
                key=f"profiles.{name}.wipe",
                problem="after_replica needs at least one [targets.NAME] to replicate to",
            )
    continuity = settings.continuity
    if not 0 <= continuity.gap_tolerance_seconds < continuity.run_break_seconds:
        raise ConfigError(
            path=path,
            key="continuity.gap_tolerance_seconds",
            problem="must be at least 0 and less than continuity.run_break_seconds",
        )
    if settings.station.language not in ("", "zh_CN", "en"):
        raise ConfigError(path=path, key="station.language", problem='must be "zh_CN", "en" or ""')
    if settings.station.documents not in DOCUMENT_LANGUAGES:
        raise ConfigError(path=path, key="station.documents", problem='must be "both", "zh" or "en"')
    if settings.export.media not in EXPORT_MEDIA:
        raise ConfigError(
            path=path,
            key="export.media",
            problem=Said("must be one of {media}", media=", ".join(EXPORT_MEDIA)),
        )
    if settings.dock.watch_profile not in settings.profiles:
        raise ConfigError(
            path=path,
            key="dock.watch_profile",
            problem=Said(
                "no profile {watch_profile!r} (known: {profiles})",
                watch_profile=settings.dock.watch_profile,
                profiles=", ".join(sorted(settings.profiles)),
            ),
        )
    return settings


def _build_profiles(value: object, path) -> dict[str, RecorderProfile]:
    """Return the shipped profiles with the file's [profiles.NAME] tables added or replacing them."""
    if not isinstance(value, dict):
        raise ConfigError(path=path, key="profiles", problem="must hold tables such as [profiles.dcim]")
    profiles = default_profiles()
    for name, table in value.items():
        dotted = f"profiles.{name}"
        if not isinstance(table, dict):
            raise ConfigError(
                path=path,
                key=dotted,
                problem=Said("must be a table [{dotted}], got {table!r}", dotted=dotted, table=table),
            )
        profile = _build_section(RecorderProfile, dotted, table, path)
        assert isinstance(profile, RecorderProfile)
        check_profile(profile, dotted, path)
        profiles[name] = profile
    return profiles


def _build_retention(value: object, path) -> RetentionSettings:
    """[retention] with its [retention.categories]: checked against the floor and the permanent four."""
    if not isinstance(value, dict):
        raise ConfigError(path=path, key="retention", problem="must be a table [retention]")
    table = dict(value)
    extra = table.pop("categories", {})
    if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
        raise ConfigError(
            path=path,
            key="retention.categories",
            problem='must be a table of name = "permanent" | "5y" | "30m"',
        )
    base = _build_section(RetentionSettings, "retention", table, path)
    assert isinstance(base, RetentionSettings)
    categories = dict(DEFAULT_CATEGORIES)
    for name, period in extra.items():
        key = f"retention.categories.{name}"
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            raise ConfigError(
                path=path, key=key, problem="a category name is lower-case letters, digits and _"
            )
        try:
            months = parse_period(period)
        except PeriodError as exc:
            raise ConfigError(path=path, key=key, problem=str(exc)) from None
        if DEFAULT_CATEGORIES.get(name) == PERMANENT and months is not None:
            raise ConfigError(
                path=path,
                key=key,
                problem=Said("{name} is kept permanently by regulation and cannot be shortened", name=name),
            )
        categories[name] = period
    if base.upcoming_days < 1:
        raise ConfigError(path=path, key="retention.upcoming_days", problem="must be at least 1")
    return RetentionSettings(categories=categories, upcoming_days=base.upcoming_days)


def _build_access(value: object, path) -> AccessSettings:
    """[access] with its [access.roles] table of role = ["login", "@group"]."""
    if not isinstance(value, dict):
        raise ConfigError(path=path, key="access", problem="must be a table [access]")
    table = dict(value)
    roles = table.pop("roles", {})
    if not isinstance(roles, dict):
        raise ConfigError(
            path=path, key="access.roles", problem='must be a table of role = ["login", "@group"]'
        )
    for role, members in roles.items():
        key = f"access.roles.{role}"
        if role not in ROLE_NAMES:
            raise ConfigError(
                path=path, key=key, problem=Said("no such role (known: {roles})", roles=", ".join(ROLE_NAMES))
            )
        if not isinstance(members, list) or not all(isinstance(m, str) and m.strip("@") for m in members):
            raise ConfigError(path=path, key=key, problem='must be a list of login names and "@group"s')
    base = _build_section(AccessSettings, "access", table, path)
    assert isinstance(base, AccessSettings)
    levels = base.confidentiality_levels
    if not levels or levels[0] != "normal" or "restricted" not in levels or len(set(levels)) != len(levels):
        raise ConfigError(
            path=path,
            key="access.confidentiality_levels",
            problem='must start with "normal", include "restricted", and name each level once',
        )
    return dataclasses.replace(base, roles={role: list(members) for role, members in roles.items()})


def _build_targets(value: object, path) -> dict[str, TargetSettings]:
    """Return the [targets.NAME] tables, each checked."""
    if not isinstance(value, dict):
        raise ConfigError(path=path, key="targets", problem="must hold tables such as [targets.offsite]")
    targets = {}
    for name, table in value.items():
        dotted = f"targets.{name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}", name):
            raise ConfigError(path=path, key=dotted, problem="a target name is letters, digits, - and _")
        if not isinstance(table, dict):
            raise ConfigError(
                path=path,
                key=dotted,
                problem=Said("must be a table [{dotted}], got {table!r}", dotted=dotted, table=table),
            )
        target = _build_section(TargetSettings, dotted, table, path)
        assert isinstance(target, TargetSettings)
        checks = [
            ("bucket", bool(target.bucket), "is required: the bucket to replicate into"),
            ("verify", target.verify in VERIFY_MODES, f"must be one of {', '.join(VERIFY_MODES)}"),
            (
                "addressing_style",
                target.addressing_style in ADDRESSING_STYLES,
                f"must be one of {', '.join(ADDRESSING_STYLES)}",
            ),
            (
                "part_size_mb",
                target.part_size_mb >= MIN_PART_SIZE_MB,
                f"must be at least {MIN_PART_SIZE_MB} (S3's smallest part)",
            ),
            ("concurrency", 1 <= target.concurrency <= 64, "must be between 1 and 64"),
            (
                "deep_check_fraction_per_day",
                0 <= target.deep_check_fraction_per_day <= 1,
                "must be between 0 and 1",
            ),
        ]
        for key, ok, problem in checks:
            if not ok:
                raise ConfigError(path=path, key=f"{dotted}.{key}", problem=problem)
        targets[name] = target
    return targets


def _build_section(section_class: type, section_name: str, values: dict, path) -> object:
    hints = typing.get_type_hints(section_class)
    known = {f.name for f in dataclasses.fields(section_class)}
    for key, value in values.items():
        dotted = f"{section_name}.{key}"
        if key not in known:
            raise ConfigError(
                path=path,
                key=dotted,
                problem=Said(
                    "unknown key (known in [{section_name}]: {known})",
                    section_name=section_name,
                    known=", ".join(sorted(known)),
                ),
            )
        problem = _type_problem(hints[key], value)
        if problem:
            raise ConfigError(
                path=path, key=dotted, problem=Said("{problem}, got {value!r}", problem=problem, value=value)
            )
    converted = {key: float(value) if hints[key] is float else value for key, value in values.items()}
    for key, value in converted.items():
        if hints[key] in (int, float):
            problem = _range_problem(f"{section_name}.{key}", key, value)
            if problem:
                raise ConfigError(
                    path=path,
                    key=f"{section_name}.{key}",
                    problem=Said("{problem}, got {value!r}", problem=problem, value=value),
                )
    return section_class(**converted)


# Numbers (durations, counts, sizes) must be more than 0, except these, where 0 means something
# (no reserve, as many workers as cores, no tolerance, no limit, flag any time, nothing upcoming).
_ZERO_ALLOWED = frozenset(
    {
        "vault.min_free_mb",
        "media.workers",
        "continuity.gap_tolerance_seconds",
        "access.max_requests_per_second",
        "dock.suspect_future_minutes",
        "dock.suspect_past_days",
        "retention.upcoming_days",
        "deep_check_fraction_per_day",
    }
)
_AT_MOST = {"media.playable_crf": 51, "deep_check_fraction_per_day": 1}


def _range_problem(dotted: str, key: str, value: float) -> str | None:
    """What is wrong with a number's range (negative or zero durations and counts), or None."""
    zero_allowed = dotted in _ZERO_ALLOWED or key in _ZERO_ALLOWED
    if value < 0 or (value == 0 and not zero_allowed):
        return "must be 0 or more" if zero_allowed else "must be more than 0"
    limit = _AT_MOST.get(dotted, _AT_MOST.get(key))
    if limit is not None and value > limit:
        return f"must be at most {limit}"
    return None


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


CONFIG_HEADER = (
    "custody configuration. Every key is shown with its default, commented out;\n"
    "uncomment and change what you need, with its [section] line (no table but\n"
    "[station] is live here, so a table appended below is never declared twice).\n"
    "Unknown keys are refused at start-up."
)


def default_config_text(organisation: str = "") -> str:
    """Return a custody.toml that documents every key with its default, all commented out.

    With ``organisation`` (the agency's name, asked by ``custody init``), the
    [station] table is live and holds it: the only live table.
    """
    lines = [f"# {line}" for line in _(CONFIG_HEADER).splitlines()]
    for section_name, section_class in _SECTIONS.items():
        lines.append("")
        doc = settings_doc(section_class)
        if doc:
            lines.append(f"# {doc}")
        live = section_name == "station" and organisation
        lines.append(f"[{section_name}]" if live else f"# [{section_name}]")
        for f in dataclasses.fields(section_class):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if live and f.name == "organisation":
                lines.append(f"organisation = {toml_value(organisation)}")
            else:
                lines.append(f"# {f.name} = {toml_value(default)}")
    lines.append("")
    profiles_said = _(
        "Recorder profiles: match rules on the device, where the footage is, how file names give the "
        "recording time. A [profiles.NAME] table adds a profile or replaces the shipped one of that name. "
        "Shipped profiles:"
    )
    lines += [f"# {line}" for line in textwrap.wrap(profiles_said, 88)]
    for name, profile in default_profiles().items():
        lines.append(f"# [profiles.{name}]")
        for f in dataclasses.fields(RecorderProfile):
            value = getattr(profile, f.name)
            lines.append(f"# {f.name} = {toml_value(value)}")
        lines.append("#")
    lines += [
        "",
        f"# {settings_doc(RetentionSettings)}",
        "# [retention]",
        f"# upcoming_days = {RetentionSettings.upcoming_days}",
        '# [retention.categories]  (shipped; add yours, e.g. traffic = "5y")',
    ]
    lines += [f"# {name} = {toml_value(period)}" for name, period in DEFAULT_CATEGORIES.items()]
    lines += case_and_alert_comments()
    lines += ["", f"# {settings_doc(AccessSettings)}", "# [access]"]
    for f in dataclasses.fields(AccessSettings):
        if f.name != "roles":
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            lines.append(f"# {f.name} = {toml_value(default)}")
    lines += [
        "# [access.roles]  (users by login name, groups as @name; no role: only 'custody whoami')",
        '# clerk = ["chenjing", "@evidence-clerks"]',
        '# auditor = ["@audit"]',
        '# supervisor = ["wangju"]  (with [supervision.scopes] wangju = ["一中队"], or ["*"] for all units)',
    ]
    lines += [
        "",
        "# Off-site replicas: one [targets.NAME] table per S3-compatible bucket.",
        "# [targets.offsite]",
    ]
    for f in dataclasses.fields(TargetSettings):
        lines.append(f"# {f.name} = {toml_value(f.default)}")
    return "\n".join(lines) + "\n"
