"""Connectivity rates: pure functions over time intervals. No database, no clock.

Definitions (the README repeats them):

* A **link** is a site's connection to its parent. Its **tier** is the parent's level:
  ministry→province, province→city (including county-level units directly under a province),
  city→county.
* A link's **rate** over a period = up ÷ (up + down). Maintenance windows, unknown time (the parent
  was down) and poller gaps count in neither. When up + down is zero the rate is undefined (None,
  shown as "—") and the link is left out of aggregates.
* A tier's or subtree's rate **pools time**: Σ up ÷ Σ (up + down) over its links — not the mean of
  link rates; the mean and the number of links below target are reported beside it.
* A target is **met** when rate ≥ target, compared unrounded (99.00% meets 99%).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..sites.models import Tier


@dataclass(frozen=True, order=True)
class Interval:
    """Half-open ``[start, end)``; ``end`` is never before ``start``."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"interval ends before it starts: {self.start} > {self.end}")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping, non-empty union of the intervals."""
    out: list[Interval] = []
    for iv in sorted(i for i in intervals if i.end > i.start):
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def clip(intervals: Iterable[Interval], window: Interval) -> list[Interval]:
    """The parts of the intervals inside ``window``."""
    out = []
    for iv in intervals:
        s, e = max(iv.start, window.start), min(iv.end, window.end)
        if e > s:
            out.append(Interval(s, e))
    return normalize(out)


def subtract(base: Iterable[Interval], minus: Iterable[Interval]) -> list[Interval]:
    """``base`` minus every interval of ``minus``."""
    result = normalize(base)
    for cut in normalize(minus):
        nxt: list[Interval] = []
        for iv in result:
            if cut.end <= iv.start or cut.start >= iv.end:
                nxt.append(iv)
                continue
            if cut.start > iv.start:
                nxt.append(Interval(iv.start, cut.start))
            if cut.end < iv.end:
                nxt.append(Interval(cut.end, iv.end))
        result = nxt
    return result


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    a_n, b_n = normalize(a), normalize(b)
    out, i, j = [], 0, 0
    while i < len(a_n) and j < len(b_n):
        s, e = max(a_n[i].start, b_n[j].start), min(a_n[i].end, b_n[j].end)
        if e > s:
            out.append(Interval(s, e))
        if a_n[i].end < b_n[j].end:
            i += 1
        else:
            j += 1
    return out


def total_seconds(intervals: Iterable[Interval]) -> float:
    return sum(iv.seconds for iv in normalize(intervals))


@dataclass(frozen=True)
class LinkTime:
    """Seconds a link was up and down in a period (excluded time counts in neither)."""

    up: float
    down: float

    @property
    def rate(self) -> float | None:
        observed = self.up + self.down
        return None if observed <= 0 else self.up / observed


def link_time(period: Interval, *, monitored: Sequence[Interval], down: Sequence[Interval],
              unknown: Sequence[Interval] = (), excluded: Sequence[Interval] = ()) -> LinkTime:
    """Up and down seconds of one link in ``period``.

    ``monitored``: when the link was being polled (from its first poll, minus poller gaps);
    ``down``: when its site did not answer and its parent did; ``unknown``: when its parent was
    down or unknown; ``excluded``: maintenance windows (and anything else that counts in neither)."""
    observed = subtract(clip(monitored, period), [*unknown, *excluded])
    down_s = total_seconds(intersect(observed, down))
    return LinkTime(up=total_seconds(observed) - down_s, down=down_s)


def site_down_intervals(per_device_down: Sequence[Sequence[Interval]]) -> list[Interval]:
    """A site with several uplink devices is down only while every one of them is down."""
    if not per_device_down:
        return []
    result = normalize(per_device_down[0])
    for other in per_device_down[1:]:
        result = intersect(result, other)
    return result


LINK_TIER = {Tier.MINISTRY: "ministry_province", Tier.PROVINCE: "province_city", Tier.CITY: "city_county"}


def link_tier(parent_tier: str) -> str | None:
    """The tier of a link, named by its parent's level; None for the ministry (it has no link)."""
    try:
        return LINK_TIER.get(Tier(parent_tier))
    except ValueError:
        return None


@dataclass
class Aggregate:
    """Pooled rate of a set of links, with the mean of link rates and the links below target."""

    up: float = 0.0
    down: float = 0.0
    links: int = 0
    links_with_rate: int = 0
    below_target: int = 0
    rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return LinkTime(self.up, self.down).rate

    @property
    def mean_rate(self) -> float | None:
        return sum(self.rates) / len(self.rates) if self.rates else None


def aggregate(times: Iterable[LinkTime], target: float | None = None) -> Aggregate:
    """Pool link times: Σup ÷ Σ(up+down); links with an undefined rate are counted but left out."""
    agg = Aggregate()
    for t in times:
        agg.links += 1
        r = t.rate
        if r is None:
            continue
        agg.links_with_rate += 1
        agg.up += t.up
        agg.down += t.down
        agg.rates.append(r)
        if target is not None and not meets_target(r, target):
            agg.below_target += 1
    return agg


def meets_target(rate: float | None, target: float) -> bool | None:
    """rate ≥ target, unrounded; None when the rate is undefined."""
    return None if rate is None else rate >= target


def format_rate(rate: float | None) -> str:
    """Two decimals in percent, or an em dash for an undefined rate."""
    return "—" if rate is None else f"{rate * 100:.2f}%"
