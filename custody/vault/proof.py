"""Proving the catalog against the audit chain.

The chain says what happened: each item's ingest (with its hash, size, name
and source), each tag, category, confidentiality level, hold, case staff
member, officer, recorder assignment, playable copy and thumbnail, each
disposal with the request and approval behind it, and each change to a case
file (its opening, stages, approval, closing, written records, links,
explanations and archived versions). Replaying those events
gives what the catalog must hold now. Someone with write access to the
vault's files but without its signing key can delete an item's rows and its
object, or edit a tag or a name in the catalog; the chain (hash-linked and
signed) cannot be edited to match, so every such difference is found and
named here: the item, the table, and the event that says otherwise.

What this cannot catch alone: a chain rewritten whole together with the
catalog by someone holding the signing key (root on the vault's machine).
That takes anchors kept elsewhere (``custody verify --against``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from custody.vault.catalog import Catalog
from custody.vault.items import format_item_id, parse_item_id

# The item columns an ingest event names, as (event detail, catalog column).
_INGEST_FIELDS = (
    ("sha256", "sha256"),
    ("size", "size"),
    ("name", "original_name"),
    ("path", "source_path"),
    ("source", "source"),
    ("recorder_serial", "recorder_serial"),
    ("credited_officer", "credited_officer"),
)


@dataclass(frozen=True)
class CatalogDifference:
    """One way the catalog is not what the chain's events make it."""

    item: str | None  # EV-000123, when it concerns an item
    table: str
    seq: int | None  # the event that says otherwise (None: no event accounts for the row)
    problem: str

    def as_dict(self) -> dict:
        return {"item": self.item, "table": self.table, "seq": self.seq, "problem": self.problem}

    def __str__(self) -> str:
        where = f"{self.item} " if self.item else ""
        event = f" (event {self.seq})" if self.seq is not None else ""
        return f"{where}{self.table}: {self.problem}{event}"


@dataclass
class _Request:
    items: list[int]
    requested_by: str
    seq: int
    approved_by: str | None = None
    approved_seq: int | None = None


@dataclass
class ChainState:
    """What the events of the chain make the catalog, replayed in order (see replay)."""

    items: dict[int, tuple[dict, int]] = field(default_factory=dict)  # number -> (ingest details, seq)
    disposed: dict[int, tuple[dict, int]] = field(default_factory=dict)
    requests: dict[str, _Request] = field(default_factory=dict)
    tags: dict[tuple[int, str], tuple[str, int]] = field(default_factory=dict)
    legacy_tag_seqs: set[int] = field(default_factory=set)  # ingests that did not list their tags
    item_categories: dict[tuple[int, str], int] = field(default_factory=dict)
    case_categories: dict[tuple[str, str], int] = field(default_factory=dict)
    item_levels: dict[int, tuple[str, int]] = field(default_factory=dict)
    case_levels: dict[str, tuple[str, int]] = field(default_factory=dict)
    case_staff: dict[tuple[str, str], int] = field(default_factory=dict)
    holds: dict[str, tuple[int | None, str | None, bool, int]] = field(default_factory=dict)
    officers: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    logins: dict[str, tuple[str, int]] = field(default_factory=dict)
    assignments: list[list] = field(default_factory=list)  # [serial, badge, from, until, seq]
    derivatives: dict[tuple[int, str], tuple[str, int]] = field(default_factory=dict)

    def forget_item(self, number: int) -> None:
        """Drop what the item had (tags, categories, level, copies): it is gone (or named gone)."""
        for table in (self.tags, self.item_categories, self.derivatives):
            for key in [key for key in table if key[0] == number]:
                del table[key]
        self.item_levels.pop(number, None)


def replay(events: Iterable[tuple[int, str, int | None, str]]) -> ChainState:
    """Return the state the events (seq, action, item, details as stored) make, in seq order."""
    state = ChainState()
    for seq, action, item, details_text in events:
        apply = _APPLY.get(action)
        if apply is not None:
            apply(state, seq, item, json.loads(details_text))
    return state


def _ingest(state: ChainState, seq: int, item, details: dict) -> None:
    state.items[item] = (details, seq)
    state.disposed.pop(item, None)
    if "tags" in details:
        for name, value in (details["tags"] or {}).items():
            state.tags[(item, name)] = (value, seq)
    else:
        state.legacy_tag_seqs.add(seq)


def _tag(state: ChainState, seq: int, item, details: dict) -> None:
    for name, change in details.items():
        if isinstance(change, dict) and "to" in change:
            state.tags[(item, name)] = (change["to"] or "", seq)


def _category_added(state: ChainState, seq: int, item, details: dict) -> None:
    for category in details.get("categories", []):
        state.item_categories[(item, category)] = seq


def _category_removed(state: ChainState, seq: int, item, details: dict) -> None:
    state.item_categories.pop((item, details.get("category")), None)


def _case_category_added(state: ChainState, seq: int, item, details: dict) -> None:
    for category in details.get("categories", []):
        state.case_categories[(details.get("case"), category)] = seq


def _confidentiality(state: ChainState, seq: int, item, details: dict) -> None:
    if item is not None:
        state.item_levels[item] = (details.get("to"), seq)
    else:
        state.case_levels[details.get("case")] = (details.get("level"), seq)


def _case_staff_added(state: ChainState, seq: int, item, details: dict) -> None:
    state.case_staff[(details.get("case"), details.get("login"))] = seq


def _hold_placed(state: ChainState, seq: int, item, details: dict) -> None:
    state.holds[details.get("hold")] = (item, details.get("case"), True, seq)


def _hold_released(state: ChainState, seq: int, item, details: dict) -> None:
    placed = state.holds.get(details.get("hold"))
    if placed is not None:
        state.holds[details.get("hold")] = (placed[0], placed[1], False, seq)


def _officer_add(state: ChainState, seq: int, item, details: dict) -> None:
    state.officers[details.get("badge")] = (details.get("name"), details.get("unit") or "", seq)


def _officer_login(state: ChainState, seq: int, item, details: dict) -> None:
    state.logins[details.get("badge")] = (details.get("login"), seq)


def _assign(state: ChainState, seq: int, item, details: dict) -> None:
    """As registry.assign: earlier open assignments end at the new start, later ones are superseded."""
    serial, badge, start = details.get("serial"), details.get("officer"), details.get("valid_from")
    if badge is None or start is None:
        return
    for row in state.assignments:
        if row[0] != serial:
            continue
        if row[2] < start and (row[3] is None or row[3] > start):
            row[3] = start
        elif row[2] >= start and (row[3] is None or row[3] > row[2]):
            row[3] = row[2]
    state.assignments.append([serial, badge, start, None, seq])


def _derivative_made(state: ChainState, seq: int, item, details: dict) -> None:
    state.derivatives[(item, details.get("role"))] = (details.get("sha256"), seq)


def _requested(state: ChainState, seq: int, item, details: dict) -> None:
    numbers = [parse_item_id(ref) for ref in details.get("items", [])]
    state.requests[details.get("request")] = _Request([n for n in numbers if n], "", seq)


def _approved(state: ChainState, seq: int, item, details: dict) -> None:
    request = state.requests.get(details.get("request"))
    if request is not None:
        request.requested_by = details.get("requested_by") or ""
        request.approved_by = details.get("approved_by")
        request.approved_seq = seq


def _disposed(state: ChainState, seq: int, item, details: dict) -> None:
    state.items.pop(item, None)
    state.disposed[item] = (details, seq)
    state.forget_item(item)


_APPLY = {
    "ingest": _ingest,
    "tag": _tag,
    "category-added": _category_added,
    "category-removed": _category_removed,
    "case-category-added": _case_category_added,
    "confidentiality": _confidentiality,
    "case-staff-added": _case_staff_added,
    "hold-placed": _hold_placed,
    "hold-released": _hold_released,
    "officer-add": _officer_add,
    "officer-login": _officer_login,
    "recorder-add": _assign,
    "recorder-assign": _assign,
    "derivative-made": _derivative_made,
    "disposition-requested": _requested,
    "disposition-approved": _approved,
    "item-disposed": _disposed,
}


def prove_catalog(catalog: Catalog) -> list[CatalogDifference]:
    """Replay the catalog's chain and name every difference from the catalog's tables.

    Run it inside one read transaction (the caller holds the vault's lock),
    so the chain and the tables are read at the same moment.
    """
    db = catalog.db
    state = replay(db.execute("SELECT seq, action, item, details FROM audit ORDER BY seq"))
    found: list[CatalogDifference] = []
    found += _prove_items(db, state)
    # An item missing from the catalog is named once (above); what it had is not listed again.
    present = {row[0] for row in db.execute("SELECT id FROM items")}
    for number in set(state.items) - present:
        state.forget_item(number)
    found += _prove_tags(db, state)
    found += _prove_pairs(
        "item_categories",
        {(r[0], r[1]) for r in db.execute("SELECT item, category FROM item_categories")},
        state.item_categories,
        lambda key: (format_item_id(key[0]), f"category {key[1]}"),
    )
    found += _prove_pairs(
        "case_categories",
        {(r[0], r[1]) for r in db.execute("SELECT case_name, category FROM case_categories")},
        state.case_categories,
        lambda key: (None, f"case {key[0]} category {key[1]}"),
    )
    found += _prove_pairs(
        "case_staff",
        {(r[0], r[1]) for r in db.execute("SELECT case_name, login FROM case_staff")},
        state.case_staff,
        lambda key: (None, f"case {key[0]} names {key[1]}"),
    )
    found += _prove_levels(db, state)
    found += _prove_holds(db, state)
    found += _prove_registry(db, state)
    found += _prove_derivatives(db, state)
    found += _prove_case_files(
        db, replay_cases(db.execute("SELECT seq, action, item, details FROM audit ORDER BY seq"))
    )
    return found


def _prove_items(db, state: ChainState) -> list[CatalogDifference]:
    found = []
    columns = ", ".join(column for _detail, column in _INGEST_FIELDS)
    present = set()
    for row in db.execute(f"SELECT id, {columns} FROM items ORDER BY id"):
        number, values = row[0], dict(zip((c for _d, c in _INGEST_FIELDS), row[1:], strict=True))
        present.add(number)
        label = format_item_id(number)
        if number in state.disposed:
            found.append(
                CatalogDifference(
                    label, "items", state.disposed[number][1], "disposed of, yet in the catalog"
                )
            )
            continue
        if number not in state.items:
            found.append(
                CatalogDifference(label, "items", None, "in the catalog, but no ingest event records it")
            )
            continue
        details, seq = state.items[number]
        for detail, column in _INGEST_FIELDS:
            if detail in details and details[detail] != values[column]:
                found.append(
                    CatalogDifference(
                        label,
                        "items",
                        seq,
                        f"{column} is {values[column]!r}, the ingest event recorded {details[detail]!r}",
                    )
                )
    for number, (details, seq) in sorted(state.items.items()):
        if number not in present:
            found.append(
                CatalogDifference(
                    format_item_id(number),
                    "items",
                    seq,
                    f"the chain records its ingest ({details.get('sha256', '?')[:16]}...) but the catalog has "
                    "no such item, and no approved disposal removed it",
                )
            )
    for number, (details, seq) in sorted(state.disposed.items()):
        request = state.requests.get(details.get("request"))
        label = format_item_id(number)
        if request is None or number not in request.items:
            found.append(
                CatalogDifference(label, "tombstones", seq, "disposed of without a request in the chain")
            )
        elif request.approved_seq is None or request.approved_seq > seq:
            found.append(
                CatalogDifference(
                    label, "tombstones", seq, f"disposed of before {details.get('request')} was approved"
                )
            )
    return found


def _prove_tags(db, state: ChainState) -> list[CatalogDifference]:
    current: dict[tuple[int, str], tuple[str, int]] = {}
    for item, name, value, seq in db.execute("SELECT item, name, value, audit_seq FROM tags ORDER BY id"):
        current[(item, name)] = (value, seq)
    expected = dict(state.tags)
    for key, (value, seq) in current.items():
        # Vaults from before ingest events listed their tags: such a tag is as its row says.
        if seq in state.legacy_tag_seqs and key not in expected:
            expected[key] = (value, seq)
    found = []
    for key in sorted(set(current) | set(expected)):
        have = current.get(key, ("", None))[0] or ""
        want, seq = expected.get(key, ("", None))
        if have != (want or "") and key[0] not in state.disposed:
            found.append(
                CatalogDifference(
                    format_item_id(key[0]),
                    "tags",
                    seq if seq is not None else current.get(key, (None, None))[1],
                    f"{key[1]} is {have or '(none)'!r}, the chain's events make it {want or '(none)'!r}",
                )
            )
    return found


def _prove_pairs(table: str, present: set, expected: dict, describe) -> list[CatalogDifference]:
    found = []
    for key in sorted(present - set(expected), key=repr):
        item, what = describe(key)
        found.append(CatalogDifference(item, table, None, f"{what}: in the catalog, no event set it"))
    for key in sorted(set(expected) - present, key=repr):
        item, what = describe(key)
        found.append(
            CatalogDifference(
                item, table, expected[key], f"{what}: set by the chain, missing from the catalog"
            )
        )
    return found


def _prove_levels(db, state: ChainState) -> list[CatalogDifference]:
    items: dict[int, str] = {}
    cases: dict[str, str] = {}
    for item, case, level in db.execute("SELECT item, case_name, level FROM confidentiality ORDER BY id"):
        if item is not None:
            items[item] = level
        else:
            cases[case] = level
    found = []
    for number in sorted(set(items) | set(state.item_levels)):
        want, seq = state.item_levels.get(number, (None, None))
        if items.get(number) != want and number not in state.disposed:
            found.append(
                CatalogDifference(
                    format_item_id(number),
                    "confidentiality",
                    seq,
                    f"level is {items.get(number) or 'normal'}, the chain's events make it {want or 'normal'}",
                )
            )
    for case in sorted(set(cases) | set(state.case_levels), key=str):
        want, seq = state.case_levels.get(case, (None, None))
        if cases.get(case) != want:
            found.append(
                CatalogDifference(
                    None,
                    "confidentiality",
                    seq,
                    f"case {case} is {cases.get(case) or 'normal'}, the chain's events make it {want or 'normal'}",
                )
            )
    return found


def _prove_holds(db, state: ChainState) -> list[CatalogDifference]:
    present = {
        f"HOLD-{row[0]:06d}": (row[1], row[2], row[3] is None)
        for row in db.execute("SELECT id, item, case_name, released_at FROM holds")
    }
    found = []
    for hold in sorted(set(present) | set(state.holds), key=str):
        have = present.get(hold)
        want = state.holds.get(hold)
        if want is None:
            found.append(
                CatalogDifference(None, "holds", None, f"{hold} is in the catalog, no event placed it")
            )
        elif have is None:
            found.append(CatalogDifference(None, "holds", want[3], f"{hold} was placed, and is missing"))
        elif have != want[:3]:
            state_text = "active" if have[2] else "released"
            found.append(
                CatalogDifference(
                    format_item_id(want[0]) if want[0] else None,
                    "holds",
                    want[3],
                    f"{hold} is {state_text}, the chain's events make it {'active' if want[2] else 'released'}",
                )
            )
    return found


def _prove_registry(db, state: ChainState) -> list[CatalogDifference]:
    found = []
    officers = {
        row[0]: (row[1], row[2] or "") for row in db.execute("SELECT badge, name, unit FROM officers")
    }
    for badge in sorted(set(officers) | set(state.officers), key=str):
        want = state.officers.get(badge)
        if want is None:
            found.append(
                CatalogDifference(None, "officers", None, f"officer {badge}: no event registered them")
            )
        elif officers.get(badge) != want[:2]:
            found.append(
                CatalogDifference(
                    None,
                    "officers",
                    want[2],
                    f"officer {badge} is {officers.get(badge)}, registered as {want[:2]}",
                )
            )
    logins = {row[0]: row[1] for row in db.execute("SELECT badge, login FROM officer_logins")}
    for badge in sorted(set(logins) | set(state.logins), key=str):
        want, seq = state.logins.get(badge, (None, None))
        if logins.get(badge) != want:
            found.append(
                CatalogDifference(
                    None,
                    "officer_logins",
                    seq,
                    f"officer {badge}'s login is {logins.get(badge)}, the chain says {want}",
                )
            )
    present = Counter(
        tuple(row) for row in db.execute("SELECT serial, badge, valid_from, valid_until FROM assignments")
    )
    expected = Counter(tuple(row[:4]) for row in state.assignments)
    seqs = {tuple(row[:4]): row[4] for row in state.assignments}
    for row in sorted((present - expected).elements(), key=repr):
        found.append(
            CatalogDifference(
                None, "assignments", None, f"recorder {row[0]} to {row[1]} from {row[2]}: no event made it so"
            )
        )
    for row in sorted((expected - present).elements(), key=repr):
        found.append(
            CatalogDifference(
                None,
                "assignments",
                seqs[row],
                f"recorder {row[0]} to {row[1]} from {row[2]}: assigned, missing from the catalog",
            )
        )
    return found


def _prove_derivatives(db, state: ChainState) -> list[CatalogDifference]:
    present = {(row[0], row[1]): row[2] for row in db.execute("SELECT item, role, sha256 FROM derivatives")}
    found = []
    for key in sorted(set(present) | set(state.derivatives), key=repr):
        want, seq = state.derivatives.get(key, (None, None))
        if present.get(key) != want:
            have = present.get(key)
            found.append(
                CatalogDifference(
                    format_item_id(key[0]),
                    "derivatives",
                    seq,
                    f"{key[1]} copy is {have[:16] + '...' if have else 'missing'}, "
                    f"the chain recorded {want[:16] + '...' if want else 'none'}",
                )
            )
    return found


# -- case files ---------------------------------------------------------------------------------
# Every change to a case is an event: its opening (cause, party, handlers, procedure, start), each
# stage, its filing approval, its closing, each written record filed (type, stage, date, title,
# pages, people), each link, each explained absence of a recording, each archived version (the
# hashes of its record and PDF). Replayed, they give what the case tables must hold.

_CASE_COLUMNS = ("cause", "party", "party_kind", "procedure", "urgent", "started_at", "stage",
                 "filing_approved_by", "filing_approved_at", "ended_on", "archive_due")  # fmt: skip
# A written record's columns, as (event detail, catalog column).
_DOCUMENT_FIELDS = (("case", "case_name"), ("type", "doc_type"), ("stage", "stage"), ("date", "dated"),
                    ("title", "title"), ("pages", "pages"), ("people", "people"),
                    ("supplement_to_version", "supplement_to"))  # fmt: skip


@dataclass
class CaseChain:
    """What the case events make the case tables, replayed in order."""

    cases: dict[str, dict] = field(default_factory=dict)  # case -> {column: (value, seq)}
    handlers: dict[tuple[str, str], int] = field(default_factory=dict)
    documents: dict[int, tuple[dict, int]] = field(default_factory=dict)
    links: dict[tuple[int, int], int] = field(default_factory=dict)
    exemptions: dict[int, tuple[str, int]] = field(default_factory=dict)
    archives: dict[tuple[str, int], tuple[tuple[str, str], int]] = field(default_factory=dict)

    def case(self, name: str, seq: int) -> dict:
        return self.cases.setdefault(name, {"stage": ("initiation", seq)})

    def set(self, name: str, seq: int, **columns) -> None:
        case = self.case(name, seq)
        for column, value in columns.items():
            case[column] = (value, seq)


def replay_cases(events: Iterable[tuple[int, str, int | None, str]]) -> CaseChain:
    """The case tables the events (seq, action, item, details as stored) make, in seq order."""
    chain = CaseChain()
    for seq, action, item, text in events:
        if action not in _CASE_ACTIONS:
            continue
        details = json.loads(text)
        _CASE_ACTIONS[action](chain, seq, item, details)
    return chain


def _tag(chain: CaseChain, seq: int, item, details: dict) -> None:
    case = (details.get("case") or {}).get("to")
    if case:  # a case number first used as a tag is a case from then on
        chain.case(case, seq)


def _ingest(chain: CaseChain, seq: int, item, details: dict) -> None:
    case = (details.get("tags") or {}).get("case")
    if case:
        chain.case(case, seq)


def _opened(chain: CaseChain, seq: int, item, details: dict) -> None:
    name = details["case"]
    chain.set(
        name, seq, cause=details["cause"], party=details["party"], party_kind=details["party_kind"],
        procedure=details["procedure"], urgent=int(bool(details["urgent"])), started_at=details["started_at"],
    )  # fmt: skip
    for badge in details["handlers"]:
        chain.handlers.setdefault((name, badge), seq)


def _stage(chain: CaseChain, seq: int, item, details: dict) -> None:
    chain.set(details["case"], seq, stage=details["to"])


def _approved(chain: CaseChain, seq: int, item, details: dict) -> None:
    chain.set(details["case"], seq, filing_approved_by=details["by"], filing_approved_at=details["at"])


def _closed(chain: CaseChain, seq: int, item, details: dict) -> None:
    chain.set(
        details["case"], seq, ended_on=details["ended"], archive_due=details["archive_due"], stage="archive"
    )


def _filed(chain: CaseChain, seq: int, item, details: dict) -> None:
    chain.documents[item] = (details, seq)


def _linked(chain: CaseChain, seq: int, item, details: dict) -> None:
    document = parse_item_id(details["document"])
    if document is not None:
        chain.links.setdefault((document, item), seq)


def _explained(chain: CaseChain, seq: int, item, details: dict) -> None:
    chain.exemptions[item] = (details["reason"], seq)


def _archived(chain: CaseChain, seq: int, item, details: dict) -> None:
    chain.set(details["case"], seq, stage="archive")
    key = (details["case"], details["version"])
    chain.archives[key] = ((details["record_sha256"], details["pdf_sha256"]), seq)


def _disposed(chain: CaseChain, seq: int, item, details: dict) -> None:
    chain.documents.pop(item, None)
    chain.exemptions.pop(item, None)
    for key in [key for key in chain.links if item in key]:
        del chain.links[key]


_CASE_ACTIONS = {
    "ingest": _ingest,
    "tag": _tag,
    "case-opened": _opened,
    "case-stage": _stage,
    "case-filing-approved": _approved,
    "case-closed": _closed,
    "case-document-filed": _filed,
    "case-supplement-filed": _filed,
    "case-linked": _linked,
    "recording-missing-explained": _explained,
    "case-archived": _archived,
    "item-disposed": _disposed,
}


def _prove_case_files(db, chain: CaseChain) -> list[CatalogDifference]:
    found = []
    rows = {row["case_name"]: row for row in db.query("SELECT * FROM cases")}
    for name in sorted(set(rows) - set(chain.cases)):
        found.append(CatalogDifference(None, "cases", None, f"case {name}: in the catalog, no event made it"))
    for name, expected in sorted(chain.cases.items()):
        row = rows.get(name)
        if row is None:
            first = min(seq for _value, seq in expected.values())
            found.append(CatalogDifference(None, "cases", first, f"case {name}: made by the chain, missing"))
            continue
        for column, (value, seq) in expected.items():
            if row[column] != value:
                found.append(
                    CatalogDifference(
                        None,
                        "cases",
                        seq,
                        f"case {name} {column} is {row[column]!r}, the chain says {value!r}",
                    )
                )
    found += _prove_pairs(
        "case_handlers",
        {(r[0], r[1]) for r in db.execute("SELECT case_name, badge FROM case_handlers")},
        chain.handlers,
        lambda key: (None, f"case {key[0]} handler {key[1]}"),
    )
    found += _prove_pairs(
        "case_links",
        {(r[0], r[1]) for r in db.execute("SELECT document, footage FROM case_links")},
        chain.links,
        lambda key: (format_item_id(key[1]), f"recording of {format_item_id(key[0])}"),
    )
    found += _prove_pairs(
        "case_archives",
        {(r[0], r[1], (r[2], r[3])) for r in db.execute(
            "SELECT case_name, version, record_sha256, pdf_sha256 FROM case_archives")},
        {(case, version, hashes): seq for (case, version), (hashes, seq) in chain.archives.items()},
        lambda key: (None, f"case {key[0]} archive version {key[1]}"),
    )  # fmt: skip
    found += _prove_pairs(
        "recording_exemptions",
        {(r[0], r[1]) for r in db.execute("SELECT document, reason FROM recording_exemptions")},
        {(item, reason): seq for item, (reason, seq) in chain.exemptions.items()},
        lambda key: (format_item_id(key[0]), "explained absence of a recording"),
    )
    documents = {row["item"]: row for row in db.query("SELECT * FROM documents")}
    for number in sorted(set(documents) - set(chain.documents)):
        found.append(
            CatalogDifference(format_item_id(number), "documents", None, "a written record no event filed")
        )
    for number, (details, seq) in sorted(chain.documents.items()):
        row = documents.get(number)
        if row is None:
            found.append(
                CatalogDifference(format_item_id(number), "documents", seq, "filed by the chain, missing")
            )
            continue
        for detail, column in _DOCUMENT_FIELDS:
            if detail not in details:  # (an older event that did not name it)
                continue
            value = json.dumps(details[detail], ensure_ascii=False) if column == "people" else details[detail]
            if row[column] != value:
                found.append(
                    CatalogDifference(
                        format_item_id(number), "documents", seq,
                        f"{column} is {row[column]!r}, the chain says {value!r}",
                    )
                )  # fmt: skip
    return found
