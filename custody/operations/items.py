"""Operations on items: ls, show, tag, log."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from custody.errors import UsageError
from custody.operations.base import Context, operation
from custody.retention.plan import decide_one
from custody.vault import ItemFilter, Vault


@dataclass(frozen=True)
class ListItems:
    """What ``ls`` asks for: the fields of ``ItemFilter`` a client may set (a case by prefix, party and
    file names by substring; times as stored UTC text, see ``parse_user_time``)."""

    case_prefix: str | None = None
    officer: str | None = None
    party_contains: str | None = None
    name_contains: str | None = None
    untagged: bool = False
    recorder: str | None = None
    late: bool = False
    damaged: bool = False
    important: bool = False
    since: str | None = None
    until: str | None = None
    limit: int | None = None  # a page: at most this many (1 to 10000)
    offset: int = 0  # after skipping this many
    newest_first: bool = False


@operation("ls", ListItems, "ls")
def list_items(vault: Vault, request: ListItems, context: Context) -> list[dict]:
    """The items matching the request that the caller may see, oldest first (or newest first),
    with their tags; a page of them with ``limit`` and ``offset``."""
    if request.limit is not None and not 1 <= request.limit <= 10_000:
        raise UsageError(reason="limit must be 1 to 10000")
    if request.offset < 0:
        raise UsageError(reason="offset must not be negative")
    where = ItemFilter(**dataclasses.asdict(request))  # (the filter's fields a client may set)
    return [item.as_dict() for item in vault.list_items(where)]


@dataclass(frozen=True)
class ItemRef:
    """One item: an id such as EV-000123, a sha256, or 8+ of its first hex digits."""

    item: str


@operation("show", ItemRef, "show")
def show(vault: Vault, request: ItemRef, context: Context) -> dict:
    """Everything about one item: hashes, times, source, tags, media, findings, retention, history, events."""
    found = vault.resolve(request.item, purpose="show")
    history = vault.tags.history(found)
    events = vault.events(found)
    facts = vault.media.facts(found)
    made = vault.media.derivatives(found)
    findings = vault.continuity.findings(item=found)
    kept = decide_one(vault, vault.settings, found, datetime.now(UTC))
    detail = found.as_dict()
    detail["retention"] = {k: v for k, v in kept.as_dict().items() if k not in ("id", "case")}
    detail["media"] = facts
    detail["derivatives"] = [d.as_dict() for d in made]
    detail["continuity"] = [f.as_dict() for f in findings]
    document = vault.casefiles.document_of(found)
    detail["document"] = document.as_dict() if document else None  # a case's written record
    detail["reviews"] = [review.as_dict() for review in vault.supervision.reviews_of(found)]
    detail["tag_history"] = history
    detail["events"] = [event.as_dict() for event in events]
    return detail


@dataclass(frozen=True)
class TagItems:
    """Tags to set on items, all or nothing (see ``Vault.tag``); None leaves a tag as it is."""

    items: tuple[str, ...]
    case: str | None = None
    party: str | None = None
    officer: str | None = None
    note: str | None = None
    categories: tuple[str, ...] = ()
    confidentiality: str | None = None
    clear: bool = False
    unregistered: bool = False


@operation("tag", TagItems, "tag")
def tag(vault: Vault, request: TagItems, context: Context) -> list[dict]:
    """Set tags on items; one record per item changed, with each tag's old and new value."""
    values = {
        name: value.strip()
        for name, value in (
            ("case", request.case),
            ("party", request.party),
            ("officer", request.officer),
            ("note", request.note),
        )
        if value is not None
    }
    changes = vault.tags.apply(
        list(request.items),
        values,
        [c.strip() for c in request.categories],
        vault.settings.retention.categories,
        confidentiality=request.confidentiality.strip() if request.confidentiality else None,
        clear=request.clear,
        unregistered_officer=request.unregistered,
    )
    return [
        {
            "id": c.item.item_id,
            "changed": {k: {"from": old, "to": new} for k, (old, new) in c.changed.items()},
        }
        for c in changes
    ]


@dataclass(frozen=True)
class ReadLog:
    """The whole audit chain, or one item's events."""

    item: str | None = None


@operation("log", ReadLog, "show", action_of=lambda request: "show" if request.item else "log")
def log(vault: Vault, request: ReadLog, context: Context) -> list[dict]:
    """Audit events in order: the whole chain (auditors), or one item's (anyone who may see it)."""
    events = vault.events(vault.resolve(request.item, purpose="show") if request.item else None)
    return [event.as_dict() for event in events]
