"""[cases] of custody.toml: the catalogue of a case's document types, the rule's list
(custody.rules.DOCUMENT_TYPES) with a station's additions and changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from custody.errors import ConfigError, Said
from custody.rules import DOCUMENT_TYPES, STAGE_KEYS


@dataclass(frozen=True)
class DocumentType:
    """One kind of written record of a case: its English name, its stage, and whether an
    audio-visual record of the act must be linked with it."""

    name: str
    english: str
    stage: str
    recording: bool


def default_document_types() -> dict[str, DocumentType]:
    return {name: DocumentType(name, *spec) for name, spec in DOCUMENT_TYPES.items()}


@dataclass(frozen=True)
class CaseSettings:
    """Case files: the catalogue of document types (the rule's list, plus [cases.document_types])."""

    document_types: dict[str, DocumentType] = field(default_factory=default_document_types)


def build_cases(value: object, path) -> CaseSettings:
    """[cases] with its [cases.document_types."名称"] tables: english, stage, recording."""
    if not isinstance(value, dict) or set(value) - {"document_types"}:
        raise ConfigError(path=path, key="cases", problem="has one table, [cases.document_types]")
    extra = value.get("document_types", {})
    if not isinstance(extra, dict):
        raise ConfigError(path=path, key="cases.document_types", problem="must be a table of tables")
    types = default_document_types()
    for name, spec in extra.items():
        key = f"cases.document_types.{name}"
        if not name.strip() or len(name) > 40 or any(ord(char) < 32 for char in name):
            raise ConfigError(path=path, key=key, problem="a type's name is one line of up to 40 characters")
        if not isinstance(spec, dict) or set(spec) - {"english", "stage", "recording"}:
            raise ConfigError(
                path=path,
                key=key,
                problem='must be { english = "...", stage = "...", recording = true|false }',
            )
        base = types.get(name, DocumentType(name, "", "investigation", False))
        english, stage, recording = (
            spec.get("english", base.english),
            spec.get("stage", base.stage),
            spec.get("recording", base.recording),
        )
        if not isinstance(english, str) or not english.strip():
            raise ConfigError(path=path, key=f"{key}.english", problem="must be the type's English name")
        if stage not in STAGE_KEYS:
            raise ConfigError(
                path=path,
                key=f"{key}.stage",
                problem=Said("must be one of {stages}", stages=", ".join(STAGE_KEYS)),
            )
        if not isinstance(recording, bool):
            raise ConfigError(path=path, key=f"{key}.recording", problem="must be true or false")
        types[name] = DocumentType(name, english.strip(), stage, recording)
    return CaseSettings(document_types=types)
