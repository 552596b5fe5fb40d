"""Connectivity-rate math, checked against brute force over random intervals (hypothesis)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecocloud_ops.network.rates import (
    Interval,
    LinkTime,
    aggregate,
    format_rate,
    intersect,
    link_tier,
    link_time,
    meets_target,
    normalize,
    site_down_intervals,
    subtract,
    total_seconds,
)

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SPAN = 200  # minutes in the test universe


def iv(a: int, b: int) -> Interval:
    return Interval(T0 + dt.timedelta(minutes=a), T0 + dt.timedelta(minutes=b))


intervals = st.lists(st.tuples(st.integers(0, SPAN), st.integers(0, SPAN)).map(
    lambda p: iv(min(p), max(p))), max_size=6)


def minutes(ivs: list[Interval]) -> set[int]:
    out: set[int] = set()
    for i in ivs:
        start = int((i.start - T0).total_seconds() // 60)
        out |= set(range(start, start + int(i.seconds // 60)))
    return out


@given(intervals, intervals)
def test_set_operations_match_brute_force(a: list[Interval], b: list[Interval]) -> None:
    assert minutes(normalize(a)) == minutes(a)
    assert minutes(subtract(a, b)) == minutes(a) - minutes(b)
    assert minutes(intersect(a, b)) == minutes(a) & minutes(b)
    assert total_seconds(a) == len(minutes(a)) * 60
    n = normalize(a)
    assert all(x.end < y.start for x, y in zip(n, n[1:], strict=False)), "normalized intervals are disjoint"


@given(intervals, intervals, intervals, intervals)
@settings(max_examples=200)
def test_link_time_matches_brute_force(monitored: list[Interval], down: list[Interval], unknown: list[Interval],
                                       excluded: list[Interval]) -> None:
    period = iv(20, 180)
    t = link_time(period, monitored=monitored, down=down, unknown=unknown, excluded=excluded)
    observed = (minutes(monitored) & minutes([period])) - minutes(unknown) - minutes(excluded)
    assert t.down == len(observed & minutes(down)) * 60
    assert t.up == len(observed - minutes(down)) * 60
    if t.rate is None:
        assert not observed
    else:
        assert 0.0 <= t.rate <= 1.0


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=20))
def test_pooled_rate_lies_between_the_link_rates(pairs: list[tuple[int, int]]) -> None:
    times = [LinkTime(float(u), float(d)) for u, d in pairs]
    agg = aggregate(times, target=0.99)
    defined = [t.rate for t in times if t.rate is not None]
    assert agg.links == len(times) and agg.links_with_rate == len(defined)
    if defined:
        assert agg.rate is not None
        assert min(defined) - 1e-12 <= agg.rate <= max(defined) + 1e-12
        assert agg.below_target == sum(r < 0.99 for r in defined)
    else:
        assert agg.rate is None and agg.mean_rate is None


def test_pooling_is_not_the_mean_of_rates() -> None:
    # One link down half of a short time, one link up for a long time.
    agg = aggregate([LinkTime(up=50, down=50), LinkTime(up=9900, down=0)])
    assert agg.rate == pytest.approx(9950 / 10000)
    assert agg.mean_rate == pytest.approx(0.75)


def test_maintenance_and_unknown_count_in_neither() -> None:
    period = iv(0, 100)
    t = link_time(period, monitored=[period], down=[iv(10, 30)], excluded=[iv(10, 20)], unknown=[iv(90, 100)])
    assert (t.up, t.down) == (70 * 60, 10 * 60)
    assert link_time(period, monitored=[], down=[iv(0, 10)]).rate is None


def test_target_compared_unrounded_and_formatted_to_two_decimals() -> None:
    assert meets_target(0.99, 0.99) is True
    assert meets_target(0.98999999, 0.99) is False
    assert meets_target(None, 0.99) is None
    assert format_rate(0.98999999) == "99.00%" and format_rate(None) == "—"


def test_a_site_with_two_uplinks_is_down_only_when_both_are() -> None:
    assert site_down_intervals([[iv(0, 10)], [iv(5, 20)]]) == [iv(5, 10)]
    assert site_down_intervals([]) == []


def test_link_tiers_are_named_by_the_parent() -> None:
    assert link_tier("ministry") == "ministry_province"
    assert link_tier("province") == "province_city"
    assert link_tier("city") == "city_county"
    assert link_tier("county") is None


def test_an_interval_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError):
        iv(5, 4)
