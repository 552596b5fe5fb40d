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
from .models import Device, DeviceRole, DeviceStatus, MaintenanceWindow, Outage, PollerGap
from .rates import Aggregate, Interval, LinkTime, aggregate, intersect, link_tier, link_time, normalize, subtract

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


class ConnectivityService:
    def __init__(self, session: Session) -> None:
        self.session = session

    def compute(self, scope: Scope, start: dt.datetime, end: dt.datetime, *, tier: str | None = None,
                site_code: str | None = None, targets: dict[str, float] | None = None,
                now: dt.datetime | None = None) -> Connectivity:
        """Rates of every monitored link in scope (optionally one tier or one site's subtree).

        Raises ValidationFailed for an empty period or unknown tier, NotFound for a site out of scope."""
        if end <= start:
            raise ValidationFailed("the period must end after it starts", details=[{"field": "to", "message": ""}])
        if tier is not None and tier not in TIERS:
            raise ValidationFailed(f"tier must be one of {', '.join(TIERS)}", details=[{"field": "tier",
                                                                                        "message": "unknown"}])
        now = now or utcnow()
        period = Interval(start, min(end, max(now, start)))
        q = select(Site).where(scope.site_clause())
        if site_code:
            q = q.where(subtree_clause(self.session, scope, site_code))
        sites = {s.id: s for s in self.session.execute(q).scalars()}
        tiers_by_code = dict(self.session.execute(select(Site.code, Site.tier)).all())
        devices = [d for d in self.session.execute(
            select(Device).where(Device.site_id.in_(list(sites)), Device.role == DeviceRole.UPLINK,
                                 Device.first_polled_at.isnot(None), Device.first_polled_at < period.end,
                                 or_(Device.retired_at.is_(None), Device.retired_at > period.start))).scalars()]
        gaps = normalize(Interval(max(g.started_at, period.start), min(g.ended_at, period.end))
                         for g in self.session.execute(select(PollerGap).where(
                             PollerGap.started_at < period.end, PollerGap.ended_at > period.start)).scalars())
        outages: dict[int, list[Outage]] = {}
        for o in self.session.execute(select(Outage).where(
                Outage.device_id.in_([d.id for d in devices]), Outage.started_at < period.end,
                or_(Outage.ended_at.is_(None), Outage.ended_at > period.start))).scalars():
            outages.setdefault(o.device_id, []).append(o)
        windows: dict[int, list[Interval]] = {}
        device_windows: dict[int, list[Interval]] = {}
        for w in self.session.execute(select(MaintenanceWindow).where(
                MaintenanceWindow.site_id.in_(list(sites)), MaintenanceWindow.started_at < period.end,
                MaintenanceWindow.ended_at > period.start)).scalars():
            target = device_windows.setdefault(w.device_id, []) if w.device_id else windows.setdefault(w.site_id, [])
            target.append(Interval(w.started_at, w.ended_at))
        by_site: dict[int, list[Device]] = {}
        for d in devices:
            by_site.setdefault(d.site_id, []).append(d)
        links = []
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
            n_outages = 0
            for d in devs:
                down_i: list[Interval] = []
                unknown_i: list[Interval] = []
                for o in outages.get(d.id, []):
                    n_outages += o.status == DeviceStatus.DOWN
                    for p in o.periods:
                        iv = Interval(p.started_at, p.ended_at or now)
                        (down_i if o.status == DeviceStatus.DOWN else unknown_i).append(iv)
                dev_not_up = normalize([*down_i, *unknown_i])
                not_up = dev_not_up if not_up is None else intersect(not_up, dev_not_up)
                any_down += down_i
                excluded += device_windows.get(d.id, [])
            site_not_up = not_up or []
            site_down = intersect(site_not_up, any_down)
            site_unknown = subtract(site_not_up, site_down)
            t = link_time(period, monitored=monitored, down=site_down, unknown=site_unknown, excluded=excluded)
            links.append(LinkRate(site.code, site.name, site.path, parent, ltier, t.up, t.down, n_outages))
        links.sort(key=lambda x: x.site_code)
        targets = targets or {}
        result = Connectivity(period=period, links=links, gaps=gaps)
        for tname in TIERS:
            if tier and tname != tier:
                continue
            result.tiers[tname] = aggregate((LinkTime(x.up_seconds, x.down_seconds) for x in links
                                             if x.tier == tname), targets.get(tname))
        result.total = aggregate(LinkTime(x.up_seconds, x.down_seconds) for x in links)
        return result


def subtree_rate(links: list[LinkRate], path: str) -> float | None:
    """Pooled rate of the links at and below the site with ``path``."""
    return aggregate(LinkTime(x.up_seconds, x.down_seconds) for x in links if x.path.startswith(path)).rate
