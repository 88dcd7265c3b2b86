"""Supervision (抽查考评): leaders and their deputies draw random samples of the footage of the
officers of their units and review each item against a checklist.

:class:`Supervision` is the service (``vault.supervision``). A draw is reproducible: the candidates
are the footage matching the request, in item order, and the recorded seed picks the same items
from the same candidates again. Every draw and every rating is an audit event; a supervisor
changes no footage and no tags. The functions below it are the tables' SQL.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from custody.config import Settings
from custody.config_supervision import ALL_UNITS
from custody.errors import CustodyError, Said, UsageError
from custody.vault import access
from custody.vault.catalog import Catalog, Item, ItemFilter
from custody.vault.items import MAX_REASON_LENGTH, format_item_id

if TYPE_CHECKING:
    from custody.vault.vault import Vault

RATINGS = ("excellent", "pass", "fail")  # 优秀, 合格, 不合格
MAX_SAMPLE = 1000
_SEED_LIMIT = 2**53  # a seed a person can copy and a JSON reader keeps exact


class SampleNotFound(CustodyError):
    """no sample {ref}: see 'custody supervise ls' (SMP-000001)"""

    exit_code = 5


class NotInSample(CustodyError):
    """{item} is not in sample {sample}: rate the items the sample drew (see 'custody supervise show {sample}')"""

    exit_code = 5


@dataclass(frozen=True)
class Review:
    """One sampled item and its rating (none yet: ``rating`` is None)."""

    sample: int
    item: int
    officer: str | None
    rating: str | None
    checks: dict[str, bool]
    problems: str
    reviewed_at: str | None
    reviewed_by: str | None

    def as_dict(self) -> dict:
        fields = asdict(self)
        fields.update(sample=format_sample_id(self.sample), item=format_item_id(self.item))
        return fields


@dataclass(frozen=True)
class Sample:
    """A recorded draw: what was asked for, the seed, and the items it drew."""

    id: int
    officer: str | None
    unit: str | None
    since: str
    until: str
    size: int
    seed: int
    candidates: int
    drawn_at: str
    drawn_by: str
    reviews: tuple[Review, ...]

    @property
    def sample_id(self) -> str:
        return format_sample_id(self.id)

    def as_dict(self) -> dict:
        fields = asdict(self)
        fields.update(id=self.sample_id, reviews=[r.as_dict() for r in self.reviews])
        fields["rated"] = sum(r.rating is not None for r in self.reviews)
        return fields


class Supervision:
    """Samples of footage and their reviews (``vault.supervision``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def draw(
        self,
        since: str,
        until: str,
        officer: str | None = None,
        unit: str | None = None,
        size: int | None = None,
        seed: int | None = None,
    ) -> Sample:
        """Draw a random sample of the footage recorded between ``since`` and ``until`` (stored
        UTC text) by ``officer`` or the officers of ``unit`` (else of every unit the caller
        supervises); record it with its seed (audited). Raise UsageError for a bad request, an
        officer or unit outside the caller's units, or no footage to draw from."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("supervise")
            size = vault.settings.supervision.sample_size if size is None else size
            if not 1 <= size <= MAX_SAMPLE:
                raise UsageError(reason=Said("--size must be 1-{max_sample}", max_sample=MAX_SAMPLE))
            if since > until:
                raise UsageError(reason="--from is after --until")
            if seed is not None and not 0 <= seed < _SEED_LIMIT:
                raise UsageError(reason=Said("--seed must be a whole number 0-{most}", most=_SEED_LIMIT - 1))
            badges = self._badges_asked(officer, unit)
            candidates = self._candidates(badges, since, until)
            if not candidates:
                raise UsageError(reason="no footage of those officers in that period: nothing to draw")
            seed = secrets.randbelow(_SEED_LIMIT) if seed is None else seed
            chosen = draw_from(candidates, size, seed)
            with vault.change() as change:
                number = next_sample_number(change.catalog)
                seq = change.record(
                    "supervision-sampled",
                    details={
                        "sample": format_sample_id(number), "officer": officer, "unit": unit,
                        "since": since, "until": until, "size": size, "seed": seed,
                        "candidates": len(candidates), "items": [format_item_id(n) for n in chosen],
                    },
                )  # fmt: skip
                insert_sample(
                    change.catalog, number, (officer, unit, since, until, size, seed, len(candidates)),
                    chosen, change.at, vault.actor, seq,
                )  # fmt: skip
            return self._sample(number)

    def review(
        self, ref: str, item_ref: str, rating: str, checks: dict[str, bool], problems: str = ""
    ) -> Review:
        """Rate one item of a sample against the checklist (audited; rating it again replaces the
        rating, and both stay in the chain). Raise SampleNotFound, NotInSample, UsageError."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("supervise", ref)
            sample = self._sample(parse_sample_id_or_raise(ref))
            self._check_in_scope(sample)
            item = vault.resolve(item_ref)
            if item.number not in {r.item for r in sample.reviews}:
                raise NotInSample(item=item.item_id, sample=sample.sample_id)
            if rating not in RATINGS:
                raise UsageError(reason=Said("--rating must be one of {known}", known=", ".join(RATINGS)))
            checklist = vault.settings.supervision.checklist
            unknown = sorted(set(checks) - set(checklist))
            if unknown:
                raise UsageError(
                    reason=Said(
                        "no checklist entry {entry!r} (known: {known})",
                        entry=unknown[0],
                        known=", ".join(checklist),
                    )
                )
            problems = problems.strip()
            if len(problems) > MAX_REASON_LENGTH:
                raise UsageError(
                    reason=Said(
                        "--problems is longer than {max_reason_length} characters: shorten it",
                        max_reason_length=MAX_REASON_LENGTH,
                    )
                )
            if rating == "fail" and not problems:
                raise UsageError(reason="a failing rating needs --problems: say what was wrong")
            with vault.change() as change:
                seq = change.record(
                    "supervision-reviewed",
                    item.number,
                    {"sample": sample.sample_id, "rating": rating, "checks": checks, "problems": problems},
                )
                change.catalog.db.execute(
                    "UPDATE supervision_reviews SET rating = ?, checks = ?, problems = ?, reviewed_at = ?, "
                    "reviewed_by = ?, audit_seq = ? WHERE sample = ? AND item = ?",
                    [rating, json.dumps(checks, sort_keys=True), problems, change.at, vault.actor, seq,
                     sample.id, item.number],
                )  # fmt: skip
            [found] = [r for r in self._sample(sample.id).reviews if r.item == item.number]
            return found

    def samples(self) -> list[Sample]:
        """The samples the caller may see (a supervisor those of their units; auditors and
        custodians all), newest first."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("reviews")
            numbers = [
                row[0]
                for row in vault.catalog.db.execute("SELECT id FROM supervision_samples ORDER BY id DESC")
            ]
            return [s for s in map(self._sample, numbers) if self._may_see_sample(s)]

    def sample(self, ref: str) -> Sample:
        """One sample with its items and ratings; raise SampleNotFound (also for one outside the
        caller's units)."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("reviews", ref)
            sample = self._sample(parse_sample_id_or_raise(ref))
            if not self._may_see_sample(sample):
                raise SampleNotFound(ref=ref)
            return sample

    def reviews_of(self, item: Item) -> list[Review]:
        """The ratings of an item the caller may see (an officer sees those of their own footage);
        none for a caller without the role to read reviews."""
        vault = self.vault
        with vault.serialized():
            if not vault.caller.may("reviews"):
                return []
            return [r for r in reviews_where(vault.catalog, "item = ?", [item.number]) if r.rating]

    def results(self) -> list[Review]:
        """Every rated review of footage the caller may see, newest first (an officer: their own)."""
        vault = self.vault
        with vault.serialized():
            vault.authorize("reviews")
            return visible_reviews(vault, "rating IS NOT NULL ORDER BY reviewed_at DESC", [])

    # -- scope ------------------------------------------------------------

    def _units(self) -> set[str] | None:
        """The units the caller supervises (None: every unit)."""
        caller = self.vault.caller
        if caller.owner or access.AUDITOR in caller.roles or access.CUSTODIAN in caller.roles:
            return None
        return supervised_units(self.vault.settings, caller.name)

    def _badges_asked(self, officer: str | None, unit: str | None) -> set[str]:
        units = self._units()
        catalog = self.vault.catalog
        if units is not None and not units:
            raise UsageError(
                reason="you supervise no unit: ask for one in [supervision.scopes] of custody.toml"
            )
        if officer is not None:
            row = catalog.db.execute("SELECT unit FROM officers WHERE badge = ?", [officer]).fetchone()
            if row is None:
                raise UsageError(
                    reason=Said("no officer {officer}: see 'custody officer ls'", officer=officer)
                )
            if units is not None and row[0] not in units:
                raise UsageError(
                    reason=Said(
                        "officer {officer} is not in a unit you supervise ({known})",
                        officer=officer,
                        known=", ".join(sorted(units)),
                    )
                )
            if unit is not None and row[0] != unit:
                raise UsageError(
                    reason=Said("officer {officer} is not in unit {unit}", officer=officer, unit=unit)
                )
            return {officer}
        if unit is not None:
            if units is not None and unit not in units:
                raise UsageError(
                    reason=Said(
                        "unit {unit} is not one you supervise ({known})",
                        unit=unit,
                        known=", ".join(sorted(units)),
                    )
                )
            return badges_in_units(catalog, {unit})
        return badges_in_units(catalog, units)

    def _candidates(self, badges: set[str], since: str, until: str) -> list[int]:
        """The footage of ``badges`` recorded in the period that the caller may see (a restricted
        case's footage only by its named staff), in item order; no written records, no archived
        case files."""
        catalog = self.vault.catalog
        sees = self.vault.cases.sight().item
        documents = {row[0] for row in catalog.db.execute("SELECT item FROM documents")}
        found = set()
        for badge in badges:
            for item in catalog.list_items(ItemFilter(officer=badge, since=since, until=until)):
                if item.number not in documents and item.source != "case-archive" and sees(item):
                    found.add(item.number)
        return sorted(found)

    def _check_in_scope(self, sample: Sample) -> None:
        if not self._may_see_sample(sample):
            raise SampleNotFound(ref=sample.sample_id)

    def _may_see_sample(self, sample: Sample) -> bool:
        units = self._units()
        if units is None:
            return True
        officers = {r.officer for r in sample.reviews}
        return bool(officers) and officers <= badges_in_units(self.vault.catalog, units)

    def _sample(self, number: int) -> Sample:
        row = self.vault.catalog.db.execute(
            "SELECT id, officer, unit, since, until, size, seed, candidates, drawn_at, drawn_by "
            "FROM supervision_samples WHERE id = ?",
            [number],
        ).fetchone()
        if row is None:
            raise SampleNotFound(ref=format_sample_id(number))
        reviews = reviews_where(self.vault.catalog, "sample = ? ORDER BY position", [number])
        return Sample(*row, reviews=tuple(reviews))


def draw_from(candidates: list[int], size: int, seed: int) -> list[int]:
    """The items a seed draws from the candidates (in item order): the same every time."""
    return sorted(random.Random(seed).sample(candidates, min(size, len(candidates))))


def visible_reviews(vault, where: str, params: list) -> list[Review]:
    """The reviews matching ``where`` (SQL on supervision_reviews, with ``params``) of footage the
    caller may see (the caller holds the vault's lock)."""
    rated = reviews_where(vault.catalog, where, params)
    sees = vault.cases.sight().item
    visible = {item.number for item in vault.catalog.items_by_ids([r.item for r in rated]) if sees(item)}
    return [review for review in rated if review.item in visible]


def supervised_units(settings: Settings, login: str) -> set[str] | None:
    """The units ``login`` supervises by [supervision.scopes] (None: all of them)."""
    units = set(settings.supervision.scopes.get(login, []))
    return None if ALL_UNITS in units else units


def supervised_badges(catalog: Catalog, settings: Settings, caller: access.Caller) -> set[str]:
    """The badges whose footage a supervisor may see: the officers of the units they supervise."""
    if access.SUPERVISOR not in caller.roles:
        return set()
    return badges_in_units(catalog, supervised_units(settings, caller.name))


def badges_in_units(catalog: Catalog, units: set[str] | None) -> set[str]:
    rows = catalog.db.execute("SELECT badge, unit FROM officers").fetchall()
    return {badge for badge, unit in rows if units is None or unit in units}


def next_sample_number(catalog: Catalog) -> int:
    """The number the next sample gets (read in the change's transaction, under the vault's lock)."""
    return catalog.db.execute("SELECT coalesce(max(id), 0) + 1 FROM supervision_samples").fetchone()[0]


def insert_sample(
    catalog: Catalog, number: int, asked: tuple, chosen: list[int], at: str, actor: str, seq: int
) -> None:
    catalog.db.execute(
        "INSERT INTO supervision_samples (id, officer, unit, since, until, size, seed, candidates, drawn_at, "
        "drawn_by, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [number, *asked, at, actor, seq],
    )
    for position, item in enumerate(chosen):
        catalog.db.execute(
            "INSERT INTO supervision_reviews (sample, item, position) VALUES (?, ?, ?)",
            [number, item, position],
        )


def reviews_where(catalog: Catalog, where: str, params: list) -> list[Review]:
    """The reviews matching ``where`` (SQL over supervision_reviews), each with the officer its
    item is credited to (or tagged with)."""
    rows = catalog.db.execute(
        "SELECT sample, item, rating, checks, problems, reviewed_at, reviewed_by FROM supervision_reviews "
        f"WHERE {where}",
        params,
    ).fetchall()
    items = {item.number: item for item in catalog.items_by_ids([row[1] for row in rows])}
    return [
        Review(sample, number, _officer_of(items.get(number)), rating, json.loads(checks), problems, at, by)
        for sample, number, rating, checks, problems, at, by in rows
    ]


def _officer_of(item: Item | None) -> str | None:
    return (item.credited_officer or item.tags.get("officer")) if item else None


def format_sample_id(number: int) -> str:
    return f"SMP-{number:06d}"


def parse_sample_id_or_raise(text: str) -> int:
    digits = text.strip().upper().removeprefix("SMP-")
    if not digits.isdigit() or int(digits) == 0:
        raise SampleNotFound(ref=text)
    return int(digits)
