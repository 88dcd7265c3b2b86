"""Supervision (抽查考评): supervise draw|rate|ls|show|results, for supervisors (leaders and their
deputies); officers read the results on their own footage."""

from __future__ import annotations

import json

import click

from custody.cli.base import Session, cli, json_option, pass_session
from custody.cli.listing import KEY, TEXT, Column, Listing
from custody.cli.render import _say, show_listing, wide_option
from custody.i18n import _
from custody.operations import NoRequest, supervision
from custody.vault.items import shown_text
from custody.vault.supervision import RATINGS
from custody.vault.timestamps import local_display, parse_user_time

RATING_NAMES = {"excellent": "优秀 excellent", "pass": "合格 pass", "fail": "不合格 fail", None: "-"}


@cli.group("supervise")
def supervise_group() -> None:
    """Supervision (抽查考评): draw random samples of footage and rate them against the checklist.

    Supervisors ([access.roles] supervisor) draw from the units [supervision.scopes] gives them;
    they watch and rate footage but change none of it, nor its tags. Every draw and rating is
    audited; an officer sees the ratings of their own footage ('custody supervise results').

    \b
    Example:
      custody supervise draw --from 2026-11-01 --until 2026-11-30 --officer 031245
    """


@supervise_group.command("draw")
@click.option("--from", "since", required=True, help="Footage recorded from this date (YYYY-MM-DD).")
@click.option("--until", required=True, help="Until this date (YYYY-MM-DD, the whole day).")
@click.option("--officer", help="One officer's footage (a badge).")
@click.option("--unit", help="The footage of one unit's officers.")
@click.option("--size", type=int, help="How many items to draw ([supervision] sample_size by default).")
@click.option("--seed", type=int, help="Draw again with a recorded sample's seed: the same items.")
@json_option
@pass_session
def supervise_draw(
    session: Session, since: str, until: str, officer: str | None, unit: str | None, size: int | None,
    seed: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Draw a random sample of footage to review (supervisors; recorded with its seed, audited).

    \b
    Example:
      custody supervise draw --from 2026-11-01 --until 2026-11-30 --unit 一中队 --size 5
    """
    request = supervision.DrawSample(
        parse_user_time(since, "--from"), parse_user_time(until, "--until", end_of_day=True),
        officer, unit, size, seed,
    )  # fmt: skip
    sample = session.perform("supervise_draw", request)
    if as_json:
        click.echo(json.dumps(sample, ensure_ascii=False, indent=1))
        return
    items = ", ".join(review["item"] for review in sample["reviews"])
    _say(
        _("sample {sample}: {count} of {candidates} item(s), seed {seed}: {items}").format(
            sample=sample["id"], count=len(sample["reviews"]), candidates=sample["candidates"], seed=sample["seed"],
            items=items,
        )
    )  # fmt: skip


@supervise_group.command("rate")
@click.argument("sample")
@click.argument("item")
@click.option("--rating", type=click.Choice(RATINGS), required=True, help="优秀 / 合格 / 不合格.")
@click.option("--passed", multiple=True, help="A checklist entry the recording meets (repeat).")
@click.option("--failed", multiple=True, help="A checklist entry it does not meet (repeat).")
@click.option("--problems", default="", help="What was wrong (needed with --rating fail).")
@json_option
@pass_session
def supervise_rate(
    session: Session, sample: str, item: str, rating: str, passed: tuple[str, ...], failed: tuple[str, ...],
    problems: str, as_json: bool,
) -> None:  # fmt: skip
    """Rate one item of a sample against the checklist (supervisors; audited; again replaces).

    \b
    Example:
      custody supervise rate SMP-000001 EV-000042 --rating fail --passed arrival \\
          --failed complete --problems "stopped before the party signed"
    """
    review = session.perform(
        "supervise_rate", supervision.RateItem(sample, item, rating, passed, failed, problems)
    )
    if as_json:
        click.echo(json.dumps(review, ensure_ascii=False, indent=1))
        return
    _say(
        _("{item} in {sample}: {rating}").format(
            item=review["item"], sample=review["sample"], rating=RATING_NAMES[review["rating"]]
        )
    )


@supervise_group.command("ls")
@wide_option
@json_option
@pass_session
def supervise_ls(session: Session, as_json: bool) -> None:
    """The samples drawn (a supervisor: of their units), newest first, and how many are rated.

    \b
    Example:
      custody supervise ls --json
    """
    found = session.perform("supervise_ls", NoRequest())
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=1))
        return
    table = Listing(
        Column("sample", KEY), Column("drawn"), Column("by", TEXT, drop=2), Column("of", TEXT),
        Column("period", drop=1), Column("rated", justify="right"), title="samples",
    )  # fmt: skip
    for sample in found["samples"]:
        table.add_row(
            sample["id"], local_display(sample["drawn_at"]), shown_text(sample["drawn_by"]),
            shown_text(sample["officer"] or sample["unit"] or "all units"),
            f"{local_display(sample['since'])[:10]} - {local_display(sample['until'])[:10]}",
            f"{sample['rated']}/{len(sample['reviews'])}",
        )  # fmt: skip
    show_listing(table)


@supervise_group.command("show")
@click.argument("sample")
@wide_option
@json_option
@pass_session
def supervise_show(session: Session, sample: str, as_json: bool) -> None:
    """One sample: what was asked, its seed, its items and their ratings.

    \b
    Example:
      custody supervise show SMP-000001
    """
    found = session.perform("supervise_show", supervision.SampleRef(sample))
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=1))
        return
    _say(
        _("sample {sample}, drawn {when} by {who}, seed {seed}, {count} of {candidates} item(s)").format(
            sample=found["id"], when=local_display(found["drawn_at"]), who=shown_text(found["drawn_by"]),
            seed=found["seed"], count=len(found["reviews"]), candidates=found["candidates"],
        )
    )  # fmt: skip
    _reviews_table(found["reviews"], "items")


@supervise_group.command("results")
@wide_option
@json_option
@pass_session
def supervise_results(session: Session, as_json: bool) -> None:
    """The ratings of the footage you may see, newest first (an officer: their own footage).

    \b
    Example:
      custody supervise results
    """
    found = session.perform("supervise_results", NoRequest())
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=1))
        return
    _reviews_table(found, "ratings")


def _reviews_table(reviews: list[dict], title: str) -> None:
    table = Listing(
        Column("item", KEY), Column("officer", TEXT), Column("rating"), Column("failed", TEXT, drop=1),
        Column("problems", TEXT, drop=2), Column("sample", drop=3), title=title,
    )  # fmt: skip
    for review in reviews:
        failed = [key for key, ok in review["checks"].items() if not ok]
        table.add_row(
            review["item"], shown_text(review["officer"] or "-"), RATING_NAMES[review["rating"]],
            shown_text(", ".join(failed) or "-"), shown_text(review["problems"] or "-"), review["sample"],
        )  # fmt: skip
    show_listing(table)
