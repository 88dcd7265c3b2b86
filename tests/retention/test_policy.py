"""The retention policy as a pure function: properties over random items, holds, dates and policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.retention.policy import (
    DEFAULT_CATEGORIES,
    FLOOR_MONTHS,
    Hold,
    ItemFacts,
    PeriodError,
    Policy,
    add_months,
    evaluate,
    parse_period,
)

START = datetime(2015, 1, 1, tzinfo=UTC)
moments = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))
names = st.sampled_from(
    [
        "routine",
        "penalty_evidence",
        "obstruction",
        "major_incident",
        "major_case",
        "traffic",
        "tax",
        "unknown",
    ]
)
cases = st.one_of(st.none(), st.sampled_from(["C1", "C2", "C3"]))


@st.composite
def policies(draw) -> Policy:
    extra = draw(st.dictionaries(st.sampled_from(["traffic", "tax"]), st.integers(24, 240), max_size=2))
    routine = draw(st.integers(24, 120))
    config = {**DEFAULT_CATEGORIES, "routine": f"{routine}m", **{k: f"{v}m" for k, v in extra.items()}}
    return Policy.from_config(config)


@st.composite
def items(draw) -> list[ItemFacts]:
    count = draw(st.integers(0, 25))
    return [
        ItemFacts(
            number=n + 1,
            recorded=draw(st.one_of(st.none(), moments)),
            ingested=draw(moments),
            categories=frozenset(draw(st.lists(names, max_size=3))),
            case=draw(cases),
            clock_suspect=draw(st.booleans()),
        )
        for n in range(count)
    ]


@st.composite
def holds(draw, count: int) -> list[Hold]:
    found = []
    for number in range(draw(st.integers(0, 4))):
        if draw(st.booleans()) and count:
            found.append(Hold(number + 1, item=draw(st.integers(1, count))))
        else:
            found.append(Hold(number + 1, case=draw(st.sampled_from(["C1", "C2", "C3"]))))
    return found


@st.composite
def scenarios(draw):
    things = draw(items())
    case_categories = draw(
        st.dictionaries(st.sampled_from(["C1", "C2", "C3"]), st.frozensets(names, max_size=2), max_size=2)
    )
    return things, draw(policies()), draw(holds(len(things))), draw(moments), case_categories


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_nothing_permanent_or_held_is_ever_eligible_nor_anything_before_two_years(scenario):
    things, policy, held, now, case_categories = scenario
    decisions = evaluate(things, policy, held, now, case_categories)
    held_items = {h.item for h in held if h.item} | {
        t.number for t in things if t.case in {h.case for h in held if h.case}
    }
    for thing, decision in zip(things, decisions, strict=True):
        applied = thing.categories | case_categories.get(thing.case, frozenset())
        if any(policy.is_permanent(c) for c in applied):
            assert decision.permanent and decision.retain_until is None and not decision.eligible
        if thing.number in held_items:
            assert decision.held and not decision.eligible and decision.rule.startswith("held")
        if decision.eligible:
            start = thing.recorded or thing.ingested
            assert now >= add_months(start, FLOOR_MONTHS)
            assert decision.retain_until is not None and decision.retain_until >= add_months(
                start, FLOOR_MONTHS
            )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_longest_rule_wins_and_evaluate_is_deterministic(scenario):
    things, policy, held, now, case_categories = scenario
    first = evaluate(things, policy, held, now, case_categories)
    assert first == evaluate(list(things), policy, list(reversed(held)), now, case_categories)
    for thing, decision in zip(things, first, strict=True):
        applied = thing.categories | case_categories.get(thing.case, frozenset())
        if decision.permanent:
            continue
        periods = [policy.periods.get(c, FLOOR_MONTHS) for c in applied] + [FLOOR_MONTHS]
        assert decision.retain_until == add_months(thing.retention_start()[0], max(periods))


def test_rules_explain_themselves():
    recorded = datetime(2026, 11, 1, 8, tzinfo=UTC)
    policy = Policy.from_config({**DEFAULT_CATEGORIES, "traffic": "5y"})
    things = [
        ItemFacts(1, recorded, recorded),
        ItemFacts(2, recorded, recorded, frozenset({"routine", "traffic"})),
        ItemFacts(3, recorded, recorded, frozenset({"traffic", "major_case"})),
        ItemFacts(4, None, recorded + timedelta(days=3), frozenset(), case="C1"),
        ItemFacts(5, recorded, recorded, frozenset(), case="C2"),
    ]
    now = datetime(2029, 1, 1, tzinfo=UTC)
    one, two, three, four, five = evaluate(
        things, policy, [Hold(7, case="C1")], now, {"C2": frozenset({"traffic"})}
    )
    assert (one.rule, one.eligible, one.retain_until) == (
        "the 2-year floor (no category): 2 years from recording",
        True,
        datetime(2028, 11, 1, 8, tzinfo=UTC),
    )
    assert two.rule == "category traffic: 5 years from recording" and not two.eligible
    assert three.rule == "permanent: category major_case" and three.retain_until is None
    assert four.rule == "held: hold HOLD-000007 on case C1" and not four.eligible
    assert five.rule == "category traffic: 5 years from recording"  # the case's category applies


@pytest.mark.parametrize(
    ("text", "months"), [("2y", 24), ("30m", 30), ("10y", 120), ("permanent", None), (" 5Y ", 60)]
)
def test_periods(text, months):
    assert parse_period(text) == months


@pytest.mark.parametrize(
    ("text", "problem"), [("1y", "below the 2-year floor"), ("23m", "below"), ("soon", "not a period")]
)
def test_bad_periods_are_refused(text, problem):
    with pytest.raises(PeriodError, match=problem):
        parse_period(text)


def test_calendar_months_keep_the_day_or_take_the_months_last():
    assert add_months(datetime(2024, 2, 29, tzinfo=UTC), 24) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 8, 31, tzinfo=UTC), 30) == datetime(2029, 2, 28, tzinfo=UTC)


@given(items(), policies(), moments)
@settings(max_examples=200, deadline=None)
def test_a_clock_suspect_item_is_never_due_before_its_floor_from_ingest(facts, policy, now):
    """Whatever a suspect recorder clock said, nothing is due sooner than the floor after it reached the vault."""
    for fact, decision in zip(facts, evaluate(facts, policy, [], now), strict=True):
        if fact.clock_suspect and decision.retain_until is not None:
            assert decision.retain_until >= add_months(fact.ingested, FLOOR_MONTHS)
            if fact.recorded is not None and fact.recorded < fact.ingested:
                assert "recorder clock suspect" in decision.rule
