"""Connectivity rates from the stored history (outage periods, maintenance windows, poller gaps),
computed with the pure functions of :mod:`.rates` — the same for the live view and the report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..auth.scope import Scope
from ..db import utcnow
from ..errors import ValidationFailed
from ..sites.models import Site
from ..sites.service import subtree_clause
from .models import Device, DeviceRole, DeviceStatus, MaintenanceWindow, Outage, OutagePeriod, PollerGap
from .rates import (
    Aggregate,
    Interval,
    LinkTime,
    aggregate,
    clip,
    intersect,
    link_tier,
    normalize,
    subtract,
    total_seconds,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TIERS = ("ministry_province", "province_city", "city_county")


def day_start(day: dt.date) -> dt.datetime:
    """Midnight of a day in Asia/Shanghai, as a UTC datetime."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(dt.UTC)


def month_period(year: int, month: int) -> Interval:
    """A calendar month in Asia/Shanghai time."""
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return Interval(day_start(dt.date(year, month, 1)), day_start(nxt))


@dataclass
class LinkRate:
    site_code: str
    site_name: str
    path: str
    parent_code: str
    tier: str
    up_seconds: float
    down_seconds: float
    outages: int

    @property
    def rate(self) -> float | None:
        return LinkTime(self.up_seconds, self.down_seconds).rate

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site_code, "name": self.site_name, "parent": self.parent_code, "tier": self.tier,
                "up_seconds": round(self.up_seconds, 3), "down_seconds": round(self.down_seconds, 3),
                "rate": self.rate, "outages": self.outages}


@dataclass
class Connectivity:
    period: Interval
    links: list[LinkRate]
    tiers: dict[str, Aggregate] = field(default_factory=dict)
    total: Aggregate = field(default_factory=Aggregate)
    gaps: list[Interval] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def agg(a: Aggregate) -> dict[str, Any]:
            return {"rate": a.rate, "mean_rate": a.mean_rate, "links": a.links, "links_with_rate": a.links_with_rate,
                    "below_target": a.below_target, "up_seconds": a.up, "down_seconds": a.down}

        return {"from": self.period.start.isoformat(), "to": self.period.end.isoformat(),
                "tiers": {k: agg(v) for k, v in self.tiers.items()}, "total": agg(self.total),
                "poller_gaps": [{"from": g.start.isoformat(), "to": g.end.isoformat()} for g in self.gaps],
                "links": [link.as_dict() for link in self.links]}


@dataclass
class LinkTimeline:
    """When one link was observed and when it was down, over a span: what every rate is cut from.

    ``observed`` is monitored time minus poller gaps, unknown time (the parent was down) and
    maintenance windows; ``down`` lies within it. Any window's rate is then a clip of the two, so the
    month, each day and each of the last twelve months come from one pass over the history."""

    site_code: str
    site_name: str
    path: str
    parent_code: str
    tier: str
    observed: list[Interval]
    down: list[Interval]
    #: (start, end or None) of each outage record whose status was down (own link), for counting.
    down_outages: list[tuple[dt.datetime, dt.datetime | None]]

    def time_in(self, window: Interval) -> LinkTime:
        obs = total_seconds(clip(self.observed, window))
        down = total_seconds(clip(self.down, window))
        return LinkTime(up=obs - down, down=down)

    def outages_in(self, window: Interval) -> int:
        return sum(1 for s, e in self.down_outages if s < window.end and (e is None or e > window.start))

    def longest_down(self, window: Interval) -> float:
        return max((iv.seconds for iv in clip(self.down, window)), default=0.0)

    def rate_in(self, window: Interval) -> LinkRate:
        t = self.time_in(window)
        return LinkRate(self.site_code, self.site_name, self.path, self.parent_code, self.tier, t.up, t.down,
                        self.outages_in(window))

    def split(self, windows: list[Interval]) -> list[LinkTime]:
        """LinkTime per window (sorted, non-overlapping), in one sweep over the intervals."""
        obs = _split_seconds(self.observed, windows)
        down = _split_seconds(self.down, windows)
        return [LinkTime(up=o - d, down=d) for o, d in zip(obs, down, strict=True)]


def _split_seconds(intervals: list[Interval], windows: list[Interval]) -> list[float]:
    out = [0.0] * len(windows)
    i = 0
    for iv in intervals:  # both sorted and non-overlapping
        while i < len(windows) and windows[i].end <= iv.start:
            i += 1
        j = i
        while j < len(windows) and windows[j].start < iv.end:
            s, e = max(iv.start, windows[j].start), min(iv.end, windows[j].end)
            if e > s:
                out[j] += (e - s).total_seconds()
            j += 1
    return out


class ConnectivityService:
    def __init__(self, session: Session) -> None:
        self.session = session

    def compute(self, scope: Scope, start: dt.datetime, end: dt.datetime, *, tier: str | None = None,
                site_code: str | None = None, targets: dict[str, float] | None = None,
                now: dt.datetime | None = None) -> Connectivity:
        """Rates of every monitored link in scope (optionally one tier or one site's subtree).

        Raises ValidationFailed for an empty period or unknown tier, NotFound for a site out of scope."""
        period, timelines, gaps = self.timelines(scope, start, end, tier=tier, site_code=site_code, now=now)
        links = [tl.rate_in(period) for tl in timelines]
        targets = targets or {}
        result = Connectivity(period=period, links=links, gaps=gaps)
        for tname in TIERS:
            if tier and tname != tier:
                continue
            result.tiers[tname] = aggregate((LinkTime(x.up_seconds, x.down_seconds) for x in links
                                             if x.tier == tname), targets.get(tname))
        result.total = aggregate(LinkTime(x.up_seconds, x.down_seconds) for x in links)
        return result

    def timelines(self, scope: Scope, start: dt.datetime, end: dt.datetime, *, tier: str | None = None,
                  site_code: str | None = None, now: dt.datetime | None = None,
                  ) -> tuple[Interval, list[LinkTimeline], list[Interval]]:
        """(the period, cut at now; the timeline of every monitored link in it, by site code; poller gaps)."""
        if end <= start:
            raise ValidationFailed("the period must end after it starts", details=[{"field": "to", "message": ""}])
        if tier is not None and tier not in TIERS:
            raise ValidationFailed(f"tier must be one of {', '.join(TIERS)}", details=[{"field": "tier",
                                                                                        "message": "unknown"}])
        now = now or utcnow()
        period = Interval(start, min(end, max(now, start)))
        q = select(Site.id, Site.code, Site.name, Site.path).where(scope.site_clause())
        if site_code:
            q = q.where(subtree_clause(self.session, scope, site_code))
        sites = {row.id: row for row in self.session.execute(q)}
        parents = {row.path.strip("/").split("/")[-2] for row in sites.values() if row.path.count("/") > 1}
        tq = select(Site.code, Site.tier)
        if len(parents) < 500:  # one subtree: ask for its parents only
            tq = tq.where(Site.code.in_(parents))
        tiers_by_code = dict(self.session.execute(tq).all())
        devices = list(self.session.execute(
            select(Device.id, Device.site_id, Device.first_polled_at, Device.retired_at).where(
                Device.role == DeviceRole.UPLINK, Device.first_polled_at.isnot(None),
                Device.first_polled_at < period.end,
                or_(Device.retired_at.is_(None), Device.retired_at > period.start))))
        devices = [d for d in devices if d.site_id in sites]
        device_ids = {d.id for d in devices}
        gaps = normalize(Interval(max(g.started_at, period.start), min(g.ended_at, period.end))
                         for g in self.session.execute(select(PollerGap).where(
                             PollerGap.started_at < period.end, PollerGap.ended_at > period.start)).scalars())
        # Periods of the outages that overlap the period, read as plain rows (a year of them for the trend).
        down_i: dict[int, list[Interval]] = {}
        unknown_i: dict[int, list[Interval]] = {}
        down_records: dict[int, dict[int, tuple[dt.datetime, dt.datetime | None]]] = {}
        for row in self.session.execute(
                select(Outage.id, Outage.device_id, Outage.status, Outage.started_at, Outage.ended_at,
                       OutagePeriod.started_at.label("p_start"), OutagePeriod.ended_at.label("p_end"))
                .join(OutagePeriod, OutagePeriod.outage_id == Outage.id)
                .where(Outage.started_at < period.end, or_(Outage.ended_at.is_(None), Outage.ended_at > period.start),
                       *([Outage.device_id.in_(device_ids)] if len(device_ids) < 500 else []))
                .order_by(Outage.device_id, OutagePeriod.started_at)):
            if row.device_id not in device_ids:
                continue
            iv = Interval(row.p_start, row.p_end or now)
            if row.status == DeviceStatus.DOWN:
                down_i.setdefault(row.device_id, []).append(iv)
                down_records.setdefault(row.device_id, {})[row.id] = (row.started_at, row.ended_at)
            else:
                unknown_i.setdefault(row.device_id, []).append(iv)
        windows: dict[int, list[Interval]] = {}
        device_windows: dict[int, list[Interval]] = {}
        for w in self.session.execute(select(MaintenanceWindow.site_id, MaintenanceWindow.device_id,
                                             MaintenanceWindow.started_at, MaintenanceWindow.ended_at).where(
                MaintenanceWindow.started_at < period.end, MaintenanceWindow.ended_at > period.start,
                *([MaintenanceWindow.site_id.in_(list(sites))] if len(sites) < 500 else []))):
            if w.site_id not in sites:
                continue
            target = device_windows.setdefault(w.device_id, []) if w.device_id else windows.setdefault(w.site_id, [])
            target.append(Interval(w.started_at, w.ended_at))
        by_site: dict[int, list[Any]] = {}
        for d in devices:
            by_site.setdefault(d.site_id, []).append(d)
        timelines = []
        for site_id, devs in by_site.items():
            site = sites[site_id]
            codes = site.path.strip("/").split("/")
            if len(codes) < 2:
                continue  # the ministry has no link
            parent = codes[-2]
            ltier = link_tier(tiers_by_code.get(parent, ""))
            if ltier is None or (tier and ltier != tier):
                continue
            monitored = normalize(Interval(d.first_polled_at or period.start, d.retired_at or period.end)
                                  for d in devs)
            monitored = subtract(monitored, gaps)
            not_up: list[Interval] | None = None
            any_down: list[Interval] = []
            excluded = list(windows.get(site_id, []))
            records: dict[int, tuple[dt.datetime, dt.datetime | None]] = {}
            for d in devs:
                dev_not_up = normalize([*down_i.get(d.id, []), *unknown_i.get(d.id, [])])
                not_up = dev_not_up if not_up is None else intersect(not_up, dev_not_up)
                any_down += down_i.get(d.id, [])
                excluded += device_windows.get(d.id, [])
                records.update(down_records.get(d.id, {}))
            site_not_up = not_up or []
            site_down = intersect(site_not_up, any_down)
            site_unknown = subtract(site_not_up, site_down)
            observed = subtract(clip(monitored, period), [*site_unknown, *excluded])
            timelines.append(LinkTimeline(site.code, site.name, site.path, parent, ltier, observed,
                                          intersect(observed, site_down),
                                          sorted(records.values(), key=lambda r: r[0])))
        timelines.sort(key=lambda x: x.site_code)
        return period, timelines, gaps


def subtree_rate(links: list[LinkRate], path: str) -> float | None:
    """Pooled rate of the links at and below the site with ``path``."""
    return aggregate(LinkTime(x.up_seconds, x.down_seconds) for x in links if x.path.startswith(path)).rate
