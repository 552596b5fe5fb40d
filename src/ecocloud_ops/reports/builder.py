"""The monthly connectivity assessment's figures, from the stored history.

Every rate comes from :class:`~ecocloud_ops.network.connectivity.LinkTimeline`, the same code as the
console's live rates, with the definitions of :mod:`ecocloud_ops.network.rates` (pooled time, a
target is met when rate ≥ target unrounded, undefined rates left out). Months are calendar months in
Asia/Shanghai time. One pass over the last twelve months' history gives the month, its days, the
twelve-month trend and the previous month for the ranking.

The result is a JSON-compatible dict (schema 1); the renderers (:mod:`.render`) and the console read
it, and a published report stores it unchanged:

* ``month``, ``period`` {from, to, timezone, seconds, partial}, ``generated_at``, ``demo_data``,
  ``scope`` (null, or the site a provincial user's copy is limited to), ``targets`` per tier;
* ``tiers``: per tier rate, target, met, links, links_with_rate, below_target, mean_rate, up/down seconds;
  ``total``;
* ``completeness``: share of the period covered by poll cycles, and the poller gaps;
* ``ranking``: provinces by own link rate, then subtree rate, then code (undefined rates last), with the
  previous month's position and rates;
* ``provinces``: per province its own link and every city and county link (rate, up/down seconds,
  outages, longest outage, downtime);
* ``outages`` (uplink outages overlapping the month, cause own or parent), ``maintenance``;
* ``daily`` (rates per tier per day) and ``monthly`` (the last twelve months per tier).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..auth.scope import Scope
from ..db import utcnow
from ..errors import NotFound, ValidationFailed
from ..network.connectivity import SHANGHAI, TIERS, LinkTimeline, day_start, month_period
from ..network.models import Device, MaintenanceWindow, Outage, OutagePeriod, PollCycle
from ..network.rates import Interval, LinkTime, aggregate, clip, link_tier, meets_target, normalize, total_seconds
from ..policies.service import AssessmentPolicy
from ..sites.models import Site, Tier

SCHEMA = 1
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` -> (year, month); a clear error otherwise."""
    m = _MONTH.match((text or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise ValidationFailed(f"month must be YYYY-MM (e.g. 2026-10), got {text!r}",
                               details=[{"field": "month", "message": "format YYYY-MM"}])
    return int(m.group(1)), int(m.group(2))


def shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    n = year * 12 + (month - 1) + delta
    return n // 12, n % 12 + 1


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def previous_month(now: dt.datetime | None = None) -> str:
    local = (now or utcnow()).astimezone(SHANGHAI)
    return month_key(*shift_month(local.year, local.month, -1))


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.UTC).isoformat()


def _rate_of(times: list[LinkTime]) -> float | None:
    return aggregate(times).rate


def check_month(session: Session, year: int, month: int, now: dt.datetime) -> Interval:
    """The month's period; refuses a month that has not started or that lies before the first poll."""
    full = month_period(year, month)
    if full.start > now:
        raise ValidationFailed(f"{month_key(year, month)} has not started yet",
                               details=[{"field": "month", "message": "in the future"}])
    first = session.execute(select(func.min(PollCycle.started_at))).scalar()
    if first is None:
        raise ValidationFailed("no poll cycle has run yet: there is no history to report on",
                               details=[{"field": "month", "message": "no poll data"}])
    first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
    if first >= full.end:
        local = first.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
        raise ValidationFailed(f"{month_key(year, month)} lies before the first poll ({local} Asia/Shanghai)",
                               details=[{"field": "month", "message": "before the first poll"}])
    return full


def build_connectivity_report(session: Session, year: int, month: int, targets: dict[str, float] | None = None,
                              *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The national report of a month (scope it for a user with :func:`for_scope`)."""
    now = now or utcnow()
    targets = {**AssessmentPolicy.model_validate({}).targets(), **(targets or {})}
    full = check_month(session, year, month, now)
    span_start = month_period(*shift_month(year, month, -11)).start
    from ..network.connectivity import ConnectivityService

    span, timelines, gaps = ConnectivityService(session).timelines(Scope.everything(), span_start, full.end, now=now)
    period = Interval(full.start, min(full.end, max(now, full.start)))

    # The month: the same per-link figures as the live view.
    links = {tl.site_code: tl.rate_in(period) for tl in timelines}
    by_tier: dict[str, list[LinkTime]] = {t: [] for t in TIERS}
    for lr in links.values():
        by_tier[lr.tier].append(LinkTime(lr.up_seconds, lr.down_seconds))
    tiers = []
    for t in TIERS:
        agg = aggregate(by_tier[t], targets[t])
        tiers.append({"tier": t, "rate": agg.rate, "target": targets[t], "met": meets_target(agg.rate, targets[t]),
                      "links": agg.links, "links_with_rate": agg.links_with_rate, "below_target": agg.below_target,
                      "mean_rate": agg.mean_rate, "up_seconds": agg.up, "down_seconds": agg.down})
    total = aggregate(LinkTime(x.up_seconds, x.down_seconds) for x in links.values())

    # Days of the month and the last twelve months, from one sweep per link.
    days = []
    d = dt.date(year, month, 1)
    while day_start(d) < period.end:
        days.append(Interval(day_start(d), min(day_start(d + dt.timedelta(days=1)), period.end)))
        d += dt.timedelta(days=1)
    months = [month_period(*shift_month(year, month, k)) for k in range(-11, 1)]
    months = [Interval(m.start, min(m.end, period.end)) for m in months]
    daily_t: dict[str, list[list[LinkTime]]] = {t: [[] for _ in days] for t in TIERS}
    monthly_t: dict[str, list[list[LinkTime]]] = {t: [[] for _ in months] for t in TIERS}
    prev_by_site: dict[str, LinkTime] = {}
    for tl in timelines:
        for i, lt in enumerate(tl.split(days)):
            daily_t[tl.tier][i].append(lt)
        per_month = tl.split(months)
        for i, lt in enumerate(per_month[:-1]):
            monthly_t[tl.tier][i].append(lt)
        prev_by_site[tl.site_code] = per_month[-2]
    daily = [{"day": (d0.start.astimezone(SHANGHAI).date()).isoformat(),
              **{t: _rate_of(daily_t[t][i]) for t in TIERS}} for i, d0 in enumerate(days)]
    monthly = []
    for i, m0 in enumerate(months):
        local = m0.start.astimezone(SHANGHAI)
        entry: dict[str, Any] = {"month": month_key(local.year, local.month)}
        for t in TIERS:  # the report's own month takes the month's figures, not a re-summed copy
            entry[t] = _rate_of(monthly_t[t][i]) if i < len(months) - 1 else tiers[TIERS.index(t)]["rate"]
        monthly.append(entry)

    sites = {s.code: s for s in session.execute(select(Site.code, Site.name, Site.path, Site.tier)).all()}
    provinces = sorted((s for s in sites.values() if s.tier == Tier.PROVINCE), key=lambda s: s.code)
    ranking, drill = _ranking(provinces, timelines, links, prev_by_site, period)
    outages = _outages(session, period, sites, now)
    maintenance = _maintenance(session, period)
    gaps_in = clip(gaps, period)
    first_cycle = session.execute(select(func.min(PollCycle.started_at))).scalar()
    uncovered = list(gaps_in)
    if first_cycle is not None and first_cycle > period.start:
        uncovered.append(Interval(period.start, min(first_cycle, period.end)))
    gap_seconds = float(total_seconds(normalize(uncovered)))
    cycles = session.execute(select(func.count(PollCycle.id)).where(
        PollCycle.started_at >= period.start, PollCycle.started_at < period.end)).scalar() or 0
    demo = bool(session.execute(select(Outage.id).where(
        Outage.demo.is_(True), Outage.started_at < period.end,
        or_(Outage.ended_at.is_(None), Outage.ended_at > period.start)).limit(1)).first()
        or session.execute(select(PollCycle.id).where(
            PollCycle.demo.is_(True), PollCycle.started_at >= period.start,
            PollCycle.started_at < period.end).limit(1)).first())
    return {
        "kind": "connectivity_assessment", "schema": SCHEMA, "month": month_key(year, month),
        "period": {"from": _iso(period.start), "to": _iso(period.end), "timezone": "Asia/Shanghai",
                   "seconds": period.seconds, "partial": period.end < full.end},
        "generated_at": _iso(now), "demo_data": demo, "scope": None, "targets": targets,
        "tiers": tiers,
        "total": {"rate": total.rate, "links": total.links, "links_with_rate": total.links_with_rate,
                  "up_seconds": total.up, "down_seconds": total.down},
        "completeness": {"covered": 1 - gap_seconds / period.seconds if period.seconds else 0.0,
                         "period_seconds": period.seconds, "gap_seconds": gap_seconds, "cycles": cycles,
                         "gaps": [{"from": _iso(g.start), "to": _iso(g.end), "seconds": g.seconds}
                                  for g in gaps_in]},
        "ranking": ranking, "provinces": drill, "outages": outages, "maintenance": maintenance,
        "daily": daily, "monthly": monthly,
    }


def _rank_key(own: float | None, subtree: float | None, code: str) -> tuple[Any, ...]:
    return (own is None, -(own or 0.0), subtree is None, -(subtree or 0.0), code)


def _ranking(provinces: list[Any], timelines: list[LinkTimeline], links: dict[str, Any],
             prev: dict[str, LinkTime], period: Interval) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    under: dict[str, list[LinkTimeline]] = {}
    for tl in timelines:
        codes = tl.path.strip("/").split("/")
        if len(codes) >= 2:
            under.setdefault(codes[1], []).append(tl)
    rows = []
    drill: dict[str, Any] = {}
    for p in provinces:
        tls = under.get(p.code, [])
        own = links.get(p.code)
        own_prev = prev.get(p.code)
        sub = aggregate(LinkTime(links[t.site_code].up_seconds, links[t.site_code].down_seconds) for t in tls)
        sub_prev = aggregate(prev[t.site_code] for t in tls)
        rows.append({"code": p.code, "name": p.name, "own_rate": own.rate if own else None,
                     "subtree_rate": sub.rate, "links": len(tls),
                     "previous_own_rate": own_prev.rate if own_prev else None,
                     "previous_subtree_rate": sub_prev.rate})
        entries = []
        own_entry = None
        for t in tls:
            lr = links[t.site_code]
            e = {"site": t.site_code, "name": t.site_name, "path": t.path, "parent": t.parent_code, "tier": t.tier,
                 "rate": lr.rate, "up_seconds": lr.up_seconds, "down_seconds": lr.down_seconds,
                 "outages": lr.outages, "longest_outage_seconds": t.longest_down(period),
                 "downtime_seconds": lr.down_seconds}
            if t.site_code == p.code:
                own_entry = e
            else:
                entries.append(e)
        drill[p.code] = {"code": p.code, "name": p.name, "path": p.path, "own": own_entry, "links": entries}
    prev_order = sorted(rows, key=lambda r: _rank_key(r["previous_own_rate"], r["previous_subtree_rate"], r["code"]))
    prev_pos = {r["code"]: i + 1 for i, r in enumerate(prev_order)
                if r["previous_own_rate"] is not None or r["previous_subtree_rate"] is not None}
    rows.sort(key=lambda r: _rank_key(r["own_rate"], r["subtree_rate"], r["code"]))
    for i, r in enumerate(rows):
        r["position"] = i + 1
        pp = prev_pos.get(r["code"])
        r["previous_position"] = pp
        r["position_change"] = None if pp is None else pp - r["position"]
        r["own_rate_change"] = (None if r["own_rate"] is None or r["previous_own_rate"] is None
                                else r["own_rate"] - r["previous_own_rate"])
    keys = ["position", "code", "name", "own_rate", "subtree_rate", "links", "previous_position",
            "previous_own_rate", "previous_subtree_rate", "own_rate_change", "position_change"]
    return [{k: r[k] for k in keys} for r in rows], drill


def _outages(session: Session, period: Interval, sites: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """Uplink outages overlapping the period (plain rows: a national month holds tens of thousands)."""
    tiers = {code: s.tier for code, s in sites.items()}
    overlap = (Outage.started_at < period.end, or_(Outage.ended_at.is_(None), Outage.ended_at > period.start))
    spans: dict[int, list[Interval]] = {}
    for oid, p_start, p_end in session.execute(
            select(OutagePeriod.outage_id, OutagePeriod.started_at, OutagePeriod.ended_at)
            .join(Outage, Outage.id == OutagePeriod.outage_id).where(*overlap)):
        spans.setdefault(oid, []).append(Interval(p_start, p_end or now))
    rows = []
    for o in session.execute(
            select(Outage.id, Outage.status, Outage.cause, Outage.started_at, Outage.ended_at, Outage.flap_count,
                   Outage.note, Outage.demo, Outage.ticket_number, Device.hostname, Site.code, Site.name, Site.path)
            .join(Device, Device.id == Outage.device_id).join(Site, Site.id == Device.site_id)
            .where(Device.role == "uplink", *overlap).order_by(Outage.started_at, Outage.id)):
        codes = o.path.strip("/").split("/")
        own = spans.get(o.id, [])
        rows.append({
            "id": o.id, "site": o.code, "name": o.name, "path": o.path,
            "province": codes[1] if len(codes) > 1 else None,
            "tier": link_tier(tiers.get(codes[-2], "")) if len(codes) > 1 else None,
            "device": o.hostname, "status": o.status, "cause": o.cause,
            "started_at": _iso(o.started_at), "ended_at": _iso(o.ended_at),
            "duration_seconds": total_seconds(own), "in_period_seconds": total_seconds(clip(own, period)),
            "flaps": o.flap_count, "ticket": o.ticket_number, "note": o.note, "demo": bool(o.demo)})
    return rows


def _maintenance(session: Session, period: Interval) -> list[dict[str, Any]]:
    rows = []
    for w in session.execute(select(MaintenanceWindow).where(
            MaintenanceWindow.started_at < period.end, MaintenanceWindow.ended_at > period.start)
            .order_by(MaintenanceWindow.started_at, MaintenanceWindow.id)).scalars():
        device = session.get(Device, w.device_id) if w.device_id else None
        rows.append({"id": w.id, "site": w.site.code, "name": w.site.name, "path": w.site.path,
                     "device": device.hostname if device else None, "started_at": _iso(w.started_at),
                     "ended_at": _iso(w.ended_at), "seconds": (w.ended_at - w.started_at).total_seconds(),
                     "reason": w.reason, "created_by": w.created_by, "demo": w.demo})
    return rows


def for_scope(data: dict[str, Any], scope: Scope, *, province: str | None = None,
              site_name: str | None = None) -> dict[str, Any]:
    """A copy limited to what a user may read: the national summary, ranking and trends stay; drill-downs,
    outages and maintenance windows only within the user's subtree (and ``province`` when asked)."""
    if scope.national and province is None:
        return data
    out = dict(data)
    root = scope.root_path
    if province is not None:
        if province not in data["provinces"]:
            raise NotFound(f"no province with code {province!r}")
        ppath = data["provinces"][province]["path"]
        if not scope.national and not (ppath.startswith(root) or root.startswith(ppath)):
            raise NotFound(f"no province with code {province!r}")
        if scope.national or len(ppath) > len(root):
            root = ppath

    def inside(path: str | None) -> bool:
        return bool(path) and str(path).startswith(root)

    provinces = {}
    for code, p in data["provinces"].items():
        if not (p["path"].startswith(root) or root.startswith(p["path"])):
            continue
        provinces[code] = {**p, "own": p["own"] if p["own"] and inside(p["own"]["path"]) else None,
                           "links": [x for x in p["links"] if inside(x["path"])]}
    out["provinces"] = provinces
    out["outages"] = [o for o in data["outages"] if inside(o.get("path"))]
    out["maintenance"] = [m for m in data["maintenance"] if inside(m.get("path"))]
    code = root.strip("/").split("/")[-1]
    out["scope"] = {"code": code, "name": site_name or (provinces[code]["name"] if code in provinces else code)}
    return out
