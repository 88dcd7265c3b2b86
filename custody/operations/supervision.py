"""Operations of supervision (抽查考评): draw a random sample of footage, rate its items against
the checklist, read samples and results. A supervisor changes no footage and no tags."""

from __future__ import annotations

from dataclasses import dataclass

from custody.errors import Said, UsageError
from custody.operations.base import Context, NoRequest, operation
from custody.vault import Vault


@dataclass(frozen=True)
class DrawSample:
    since: str  # stored UTC text
    until: str
    officer: str | None = None
    unit: str | None = None
    size: int | None = None  # None: [supervision] sample_size
    seed: int | None = None  # None: a new random seed (recorded; give it to draw the same again)


@operation("supervise_draw", DrawSample, "supervise")
def supervise_draw(vault: Vault, request: DrawSample, context: Context) -> dict:
    """Draw a reproducible random sample of the footage of an officer or a unit in a period
    (recorded with its seed, audited)."""
    return vault.supervision.draw(
        request.since, request.until, request.officer, request.unit, request.size, request.seed
    ).as_dict()


@dataclass(frozen=True)
class RateItem:
    sample: str
    item: str
    rating: str  # excellent, pass or fail
    passed: tuple[str, ...] = ()  # checklist keys the recording meets
    failed: tuple[str, ...] = ()  # checklist keys it does not
    problems: str = ""


@operation("supervise_rate", RateItem, "supervise")
def supervise_rate(vault: Vault, request: RateItem, context: Context) -> dict:
    """Rate one sampled item against the checklist and note its problems (audited)."""
    both = sorted(set(request.passed) & set(request.failed))
    if both:
        raise UsageError(reason=Said("checklist entry {entry!r} is both passed and failed", entry=both[0]))
    checks = {key: True for key in request.passed} | {key: False for key in request.failed}
    return vault.supervision.review(
        request.sample, request.item, request.rating, checks, request.problems
    ).as_dict()


@operation("supervise_ls", NoRequest, "reviews")
def supervise_ls(vault: Vault, request: NoRequest, context: Context) -> dict:
    """The samples the caller may see, newest first, and the checklist they are rated against."""
    return {
        "samples": [sample.as_dict() for sample in vault.supervision.samples()],
        "checklist": vault.settings.supervision.checklist,
    }


@dataclass(frozen=True)
class SampleRef:
    sample: str


@operation("supervise_show", SampleRef, "reviews")
def supervise_show(vault: Vault, request: SampleRef, context: Context) -> dict:
    """One sample: what was asked, its seed, its items and their ratings, and the checklist."""
    return {
        **vault.supervision.sample(request.sample).as_dict(),
        "checklist": vault.settings.supervision.checklist,
    }


@operation("supervise_results", NoRequest, "reviews")
def supervise_results(vault: Vault, request: NoRequest, context: Context) -> list[dict]:
    """The ratings of the footage the caller may see, newest first (an officer: their own)."""
    return [review.as_dict() for review in vault.supervision.results()]
