"""Generated poll history, for tests, the demo and benchmarks: what the poller *would* have stored over
a period, written without probing anything through the same :class:`~.history.HistoryWriter` the
poller uses (outage records, flaps, rollups, cycles, gaps).

**The poll grid.** A scenario is polled at ``start + k × poll_seconds`` for every ``k`` with that
instant before ``end``, except the instants inside a poller gap. Cycle ``k`` starts at its instant
and finishes ``cycle_seconds`` later.

**Quantization.** A change (a link failing or coming back, a device starting to be monitored) is
seen at the *first poll instant at or after* its time — the first cycle that could have observed it.
Instants are compared exactly (microseconds), so an event exactly on a poll instant is seen at that
instant, and the rounding is deterministic. A change inside a poller gap is therefore seen at the
first cycle after the gap; a failure that starts and ends between two polls (or inside one gap) is
never seen. Maintenance windows are plans, not observations: they are stored as given.

**Cascades.** A failed link makes its site and everything below it unreachable. Statuses then follow
:func:`~.status.classify` exactly: a device that does not answer is ``down`` (cause ``own``) while
the nearest monitored site above it is up, and ``unknown`` (cause ``parent``) while it is down or
unknown. So a city's failure is the city device's ``down`` outage and ``unknown`` outages of every
monitored device below it for the same time; a county already down on its own when its city fails
turns ``unknown`` (its ``down`` outage ends, an ``unknown`` one starts) and back to ``down`` if its
own failure outlasts the city's. A site without monitored uplink devices takes its parent's state,
so the devices below a failed unmonitored site are blamed (``down``), as the poller would blame them.

**Poller gaps.** No cycle runs in ``[start, end)`` of a gap. The gap is stored as the poller would
store it: from the end of the last cycle before it to the start of the first cycle after it. When
history is appended to stored history, the time from the last stored cycle to the first generated
one is a gap too when the poller would call it one (more than 2.5 poll intervals).

**Cycles and rollups** are computed per change point, never per device per poll: cycle summaries
from running counts of devices monitored / down / unknown, rollups per device per bucket from the
number of polls in the bucket minus those inside the device's down or unknown time.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import random
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db import utcnow
from ..sites.models import MINISTRY_CODE, Site, Tier
from .history import SHANGHAI, HistoryWriter, RollupRow, day_bucket, hour_bucket
from .models import Cause, Device, DeviceRole, DeviceStatus

if TYPE_CHECKING:
    from ..bootstrap import Container

_US = dt.timedelta(microseconds=1)
_ZERO = Decimal(0)
#: Rollup or cycle rows per bulk statement.
_BATCH = 20_000
#: Error shown on a device that did not answer its last generated poll.
NO_ANSWER = "ICMP: no echo reply; SNMP timeout: no response"


# Events ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkDown:
    """The site's link fails in ``[start, end)``: the site and its whole subtree are unreachable."""

    site_code: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Flap:
    """A flapping link: from ``start``, every ``period_seconds`` the link fails for ``down_seconds``
    (default half the period), until ``end``. Downs that come back within the flap window of the
    previous one are grouped by the writer into one outage record with several periods."""

    site_code: str
    start: dt.datetime
    end: dt.datetime
    period_seconds: int = 300
    down_seconds: int | None = None

    def downs(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """The failure intervals, clipped to ``end``."""
        down = dt.timedelta(seconds=self.down_seconds if self.down_seconds is not None else self.period_seconds / 2)
        step = dt.timedelta(seconds=self.period_seconds)
        out = []
        t = self.start
        while t < self.end:
            out.append((t, min(t + down, self.end)))
            t += step
        return out


@dataclass(frozen=True)
class Maintenance:
    """A maintenance window of a site (or of one device, by host name), stored as given."""

    site_code: str
    start: dt.datetime
    end: dt.datetime
    reason: str = "计划维护"
    device: str | None = None
    created_by: str = "demo"


@dataclass(frozen=True)
class PollerGap:
    """The poller did not run in ``[start, end)``."""

    start: dt.datetime
    end: dt.datetime


Event = LinkDown | Flap | Maintenance | PollerGap


@dataclass
class Scenario:
    """A period of history to generate. All datetimes are timezone-aware (UTC or any zone).

    ``events``: link failures, flaps, maintenance windows and poller gaps, in any order (failures of
    one site that overlap are one failure). ``monitored_from``: host name -> when the device started
    to be polled (default ``start``); its first poll is the first poll instant at or after that time."""

    start: dt.datetime
    end: dt.datetime
    poll_seconds: int = 60
    events: list[Event] = field(default_factory=list)
    monitored_from: dict[str, dt.datetime] = field(default_factory=dict)
    #: How long each generated cycle takes (start to finish).
    cycle_seconds: float = 1.5

    def __post_init__(self) -> None:
        times = [self.start, self.end, *self.monitored_from.values()]
        for e in self.events:
            times += [e.start, e.end]
        if any(t.tzinfo is None for t in times):
            raise ValueError("scenario times must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("a scenario must end after it starts")
        if self.poll_seconds < 1 or not 0 <= self.cycle_seconds < self.poll_seconds:
            raise ValueError("poll_seconds must be ≥ 1 and cycle_seconds shorter than it")
        for e in self.events:
            if e.end < e.start:
                raise ValueError(f"{e} ends before it starts")
            if isinstance(e, Flap) and not (e.period_seconds > 0 and (
                    e.down_seconds is None or 0 < e.down_seconds < e.period_seconds)):
                raise ValueError(f"{e}: need 0 < down_seconds < period_seconds")
            if isinstance(e, LinkDown | Flap) and e.site_code == MINISTRY_CODE:
                raise ValueError("the ministry has no link to fail")


@dataclass
class HistoryStats:
    """What :func:`write_history` wrote."""

    start: dt.datetime
    end: dt.datetime
    devices: int = 0
    cycles: int = 0
    transitions: int = 0
    outages_opened: int = 0
    outages_closed: int = 0
    gaps: int = 0
    maintenance: int = 0
    rollup_rows: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "devices": self.devices,
                "cycles": self.cycles, "transitions": self.transitions, "outages_opened": self.outages_opened,
                "outages_closed": self.outages_closed, "gaps": self.gaps, "maintenance": self.maintenance,
                "rollup_rows": self.rollup_rows, "seconds": round(self.seconds, 3)}


# The poll grid -----------------------------------------------------------------------------------
Span = tuple[int, int]  # half-open [a, b) of poll indices


class _Grid:
    """Poll instants as indices ``0 … n-1`` (instant ``k`` = start + k × poll), minus gap indices."""

    def __init__(self, scenario: Scenario) -> None:
        self.start = scenario.start
        self.step = scenario.poll_seconds * 1_000_000
        self.n = self._ceil(scenario.end)
        self.skipped = _norm([(self.index(g.start), self.index(g.end)) for g in scenario.events
                              if isinstance(g, PollerGap)])

    def _ceil(self, t: dt.datetime) -> int:
        return -(-((t - self.start) // _US) // self.step)

    def index(self, t: dt.datetime) -> int:
        """Index of the first grid instant at or after ``t``, clamped to ``[0, n]`` (gaps ignored)."""
        return max(0, min(self._ceil(t), self.n))

    def snap(self, k: int) -> int:
        """The first instant at or after index ``k`` at which a cycle runs (``n``: none)."""
        for a, b in self.skipped:
            if a <= k < b:
                return b
        return k

    def at(self, t: dt.datetime) -> int:
        """The first poll (a cycle that runs) at or after ``t``; ``n`` when there is none."""
        return self.snap(self.index(t))

    def time(self, k: int) -> dt.datetime:
        return self.start + dt.timedelta(microseconds=k * self.step)

    def count(self, a: int, b: int) -> int:
        """Cycles that run at indices in ``[a, b)``."""
        if b <= a:
            return 0
        return (b - a) - sum(max(0, min(b, y) - max(a, x)) for x, y in self.skipped)

    def runs(self) -> Iterator[int]:
        """Every index at which a cycle runs, in order."""
        k = 0
        for a, b in self.skipped:
            yield from range(k, a)
            k = max(k, b)
        yield from range(k, self.n)

    def last_before(self, k: int) -> int | None:
        """The last index before ``k`` at which a cycle runs (None: none)."""
        j = k - 1
        for a, b in reversed(self.skipped):
            if a <= j < b:
                j = a - 1
        return j if j >= 0 else None


def _norm(spans: Sequence[Span] | Iterator[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _intersect(x: list[Span], y: list[Span]) -> list[Span]:
    out, i, j = [], 0, 0
    while i < len(x) and j < len(y):
        a, b = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if b > a:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def _subtract(x: list[Span], y: list[Span]) -> list[Span]:
    out = []
    for a, b in x:
        pieces = [(a, b)]
        for c, d in y:
            if d <= a or c >= b:
                continue
            nxt = []
            for p, q in pieces:
                if c > p:
                    nxt.append((p, min(c, q)))
                if d < q:
                    nxt.append((max(d, p), q))
            pieces = [s for s in nxt if s[1] > s[0]]
        out += pieces
    return out


# Writing -----------------------------------------------------------------------------------------
def uplink_devices(session: Session) -> list[Device]:
    """Enabled, active uplink devices at active sites: what the poller polls and rates count."""
    q = (select(Device).join(Device.site)
         .where(Device.enabled.is_(True), Device.retired_at.is_(None), Device.role == DeviceRole.UPLINK,
                Site.retired_at.is_(None)).order_by(Device.id))
    return list(session.execute(q).scalars())


def _rtt_base(hostname: str, depth: int) -> tuple[float, int]:
    """A device's typical RTT (ms, deeper sites farther away) and a hash for its variations."""
    h = zlib.crc32(hostname.encode())
    return 2.0 + 4.0 * depth + (h % 1000) / 125.0, h


def write_history(session: Session, scenario: Scenario, *, devices: Sequence[Device] | None = None, demo: bool,
                  flap_window_minutes: int, hourly_since: dt.datetime | None = None) -> HistoryStats:
    """Write the scenario's history of ``devices`` (default: :func:`uplink_devices`) into ``session``.

    Through one :class:`HistoryWriter` (``demo`` stamped on everything it creates): maintenance
    windows, poller gaps, every status change in chronological order (outages open, close and group
    into flaps exactly as the poller's would), one cycle record per poll instant (summary counts of
    the devices monitored at that instant), hour and day rollups per device (polls and up polls
    counted from the status timeline; synthetic but deterministic RTT; no traffic). Hour rollups
    start at ``hourly_since`` when given (the retention of hourly rollups). Finally each device's
    ``first_polled_at``, ``last_polled_at``, ``status``, ``status_since`` match the end state.

    The devices' stored history must end before the scenario starts (ValueError otherwise); their
    stored status is the status before the first generated poll. The caller commits."""
    t0 = time.perf_counter()
    stats = HistoryStats(start=scenario.start, end=scenario.end)
    writer = HistoryWriter(session, flap_window=dt.timedelta(minutes=flap_window_minutes), demo=demo)
    grid = _Grid(scenario)
    n = grid.n
    sites = {code: (sid, path) for sid, code, path in session.execute(select(Site.id, Site.code, Site.path))}
    devs = sorted(devices if devices is not None else uplink_devices(session), key=lambda d: d.id)
    for d in devs:
        if d.last_polled_at is not None and d.last_polled_at >= scenario.start:
            raise ValueError(f"{d.hostname} was polled at {d.last_polled_at}, after the scenario's start")

    # Maintenance windows and gaps, stored as declared (gaps as the poller records them).
    for e in scenario.events:
        if isinstance(e, LinkDown | Flap | Maintenance) and e.site_code not in sites:
            raise ValueError(f"no site {e.site_code}")
        if isinstance(e, Maintenance):
            device_id = None
            if e.device is not None:
                device_id = session.execute(select(Device.id).where(Device.hostname == e.device)).scalar_one_or_none()
                if device_id is None:
                    raise ValueError(f"no device {e.device}")
            writer.add_maintenance(site_id=sites[e.site_code][0], device_id=device_id, start=e.start, end=e.end,
                                   reason=e.reason, created_by=e.created_by)
            stats.maintenance += 1
    first_run = grid.snap(0)
    if first_run < n:  # after stored history: a gap until the first generated cycle, as the poller sees it
        gap = writer.record_gap_before(grid.time(first_run), dt.timedelta(seconds=max(2.5 * scenario.poll_seconds,
                                                                                      30)))
        stats.gaps += gap is not None
    for a, b in grid.skipped:
        before = grid.last_before(a)
        gap_start = grid.time(before) + dt.timedelta(seconds=scenario.cycle_seconds) if before is not None \
            else scenario.start
        writer.add_gap(gap_start, grid.time(b) if b < n else scenario.end)
        stats.gaps += 1

    # Failures per site, on the poll grid.
    cuts: dict[str, list[Span]] = {}
    for e in scenario.events:
        if isinstance(e, LinkDown):
            cuts.setdefault(e.site_code, []).append((grid.at(e.start), grid.at(e.end)))
        elif isinstance(e, Flap):
            cuts.setdefault(e.site_code, []).extend((grid.at(s), grid.at(t)) for s, t in e.downs())
    cuts = {code: _norm(spans) for code, spans in cuts.items()}

    first = {d.id: grid.at(scenario.monitored_from.get(d.hostname, scenario.start)) for d in devs}
    monitored_site: dict[str, int] = {}  # site code -> first poll of its first monitored uplink device
    for d in devs:
        if d.role == DeviceRole.UPLINK and first[d.id] < n:
            code = d.site.code
            monitored_site[code] = min(monitored_site.get(code, n), first[d.id])

    cpath_memo: dict[str, list[Span]] = {}
    above_memo: dict[str, list[Span]] = {}

    def cpath(codes: list[str]) -> list[Span]:
        """When the site (last code) is unreachable: a failure at it or above it."""
        key = codes[-1]
        if key not in cpath_memo:
            cpath_memo[key] = [] if len(codes) < 2 else _norm(cpath(codes[:-1]) + cuts.get(key, []))
        return cpath_memo[key]

    def not_up(codes: list[str]) -> list[Span]:
        """When the site's state (classify) is not up: a monitored site at or above it is unreachable."""
        key = codes[-1]
        if key not in above_memo:
            if len(codes) < 2:
                above_memo[key] = []  # the ministry is always up
            else:
                own = _intersect(cpath(codes), [(monitored_site[key], n)]) if key in monitored_site else []
                above_memo[key] = _norm(not_up(codes[:-1]) + own)
        return above_memo[key]

    # Status timelines -> transitions, cycle counts, rollups.
    transitions: list[tuple[int, int, int, str]] = []  # (index, device id, site id, status)
    n_devices = [0] * (n + 1)
    n_down = [0] * (n + 1)
    n_unknown = [0] * (n + 1)
    final: dict[int, tuple[str, int | None]] = {}  # device id -> (status, index it began or None: unchanged)
    timelines: dict[int, list[Span]] = {}  # device id -> when not up
    for d in devs:
        f = first[d.id]
        if f >= n:
            continue
        stats.devices += 1
        codes = d.site.path.strip("/").split("/")
        window = [(f, n)]
        unreachable = _intersect(cpath(codes), window)
        unknown = _intersect(not_up(codes[:-1]), unreachable) if len(codes) > 1 else []
        down = _subtract(unreachable, unknown)
        timelines[d.id] = unreachable
        n_devices[f] += 1
        for spans, counter in ((down, n_down), (unknown, n_unknown)):
            for a, b in spans:
                counter[a] += 1
                counter[b] -= 1
        segments = sorted([(a, b, str(DeviceStatus.DOWN)) for a, b in down]
                          + [(a, b, str(DeviceStatus.UNKNOWN)) for a, b in unknown])
        prev = d.status if d.last_polled_at is not None else DeviceStatus.UNPOLLED
        since: int | None = None
        cur = f
        changes: list[tuple[int, str]] = []
        for a, b, st in segments:
            if a > cur:
                changes.append((cur, DeviceStatus.UP))
            changes.append((a, st))
            cur = b
        if cur < n:
            changes.append((cur, DeviceStatus.UP))
        for k, st in changes:
            if st == prev:
                continue
            if not (prev == DeviceStatus.UNPOLLED and st == DeviceStatus.UP):  # nothing to record
                transitions.append((k, d.id, d.site_id, st))
            prev, since = st, k
        final[d.id] = (prev, since)

    # Outage records, in time order.
    transitions.sort()
    stats.transitions = len(transitions)
    if transitions:
        writer.prefetch({t[1] for t in transitions}, grid.time(transitions[0][0]))
    for k, device_id, site_id, st in transitions:
        cause = Cause.OWN if st == DeviceStatus.DOWN else Cause.PARENT
        opened, closed = writer.transition(device_id, site_id, st, cause, grid.time(k))
        stats.outages_opened += opened
        stats.outages_closed += closed
    session.flush()

    # Device state at the end.
    last = grid.last_before(n)
    rtt = {d.id: _rtt_base(d.hostname, len(d.site.path.strip("/").split("/")) - 1) for d in devs}
    device_rows = []
    for d in devs:
        if d.id not in final or last is None:
            continue
        status, since = final[d.id]
        device_rows.append({
            "id": d.id, "status": status,
            "status_cause": None if status == DeviceStatus.UP else (
                Cause.OWN if status == DeviceStatus.DOWN else Cause.PARENT),
            "status_since": grid.time(since) if since is not None else d.status_since,
            "first_polled_at": d.first_polled_at or grid.time(first[d.id]), "last_polled_at": grid.time(last),
            "last_rtt_ms": round(rtt[d.id][0], 3) if status == DeviceStatus.UP else None,
            "last_error": None if status == DeviceStatus.UP else NO_ANSWER})
    if device_rows:
        session.execute(update(Device), device_rows)
        for d in devs:
            if d in session:
                session.expire(d)

    # Rollups, analytically per device per bucket.
    rollups = _rollups(grid, scenario, first, timelines, rtt, hourly_since)
    while batch := list(itertools.islice(rollups, _BATCH)):
        stats.rollup_rows += writer.upsert_rollups(batch)

    # Cycle records last: the newest cycle has the highest id, as the poller's gap detection expects.
    devices_at = list(itertools.accumulate(n_devices))
    down_at = list(itertools.accumulate(n_down))
    unknown_at = list(itertools.accumulate(n_unknown))
    cycle = dt.timedelta(seconds=scenario.cycle_seconds)
    cycle_ms = scenario.cycle_seconds * 1000
    rows = []
    for k in grid.runs():
        t = grid.time(k)
        bad = down_at[k] + unknown_at[k]
        rows.append({"started_at": t, "finished_at": t + cycle, "devices": devices_at[k],
                     "up": devices_at[k] - bad, "down": down_at[k], "unknown": unknown_at[k], "snmp_errors": bad,
                     "duration_ms": cycle_ms})
        if len(rows) >= _BATCH:
            stats.cycles += writer.add_cycles(rows)
            rows = []
    stats.cycles += writer.add_cycles(rows)
    session.flush()
    stats.seconds = time.perf_counter() - t0
    return stats


def _buckets(grid: _Grid, scenario: Scenario, granularity: str,
             since: dt.datetime | None) -> tuple[list[dt.datetime], list[int], list[int], list[int]]:
    """Buckets overlapping the scenario: their start, their first and end poll index, their cycles."""
    starts: list[dt.datetime] = []
    if granularity == "hour":
        b = hour_bucket(scenario.start)
        while b < scenario.end:
            starts.append(b)
            b += dt.timedelta(hours=1)
    else:
        day = scenario.start.astimezone(SHANGHAI).date()
        while (b := dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(dt.UTC)) < scenario.end:
            starts.append(b)
            day += dt.timedelta(days=1)
    if since is not None:
        starts = [s for s in starts if s >= since]
    step = dt.timedelta(hours=1) if granularity == "hour" else None
    los, his = [], []
    for s in starts:
        nxt = s + step if step else day_bucket(s + dt.timedelta(hours=36))
        los.append(grid.index(s))
        his.append(grid.index(nxt))
    return starts, los, his, [grid.count(a, b) for a, b in zip(los, his, strict=True)]


def _rollups(grid: _Grid, scenario: Scenario, first: dict[int, int], timelines: dict[int, list[Span]],
             rtt: dict[int, tuple[float, int]], hourly_since: dt.datetime | None) -> Iterator[RollupRow]:
    """Rollup rows of every polled device (``timelines``: id -> when not up), day buckets first.

    Polls in a bucket: the cycles that ran in it from the device's first poll on; up polls: those
    minus the ones that fell in the device's down or unknown time. RTT: the device's typical RTT
    times a factor (1 – 1.4) varying by bucket, deterministic; no traffic."""
    new_row = functools.partial(tuple.__new__, RollupRow)  # what RollupRow._make does, without the checks
    for granularity in ("day", "hour"):
        starts, los, his, full = _buckets(grid, scenario, granularity, hourly_since if granularity == "hour"
                                          else None)
        if not starts:
            continue
        unit = 3600 if granularity == "hour" else 86400
        numbers = [int(s.timestamp()) // unit for s in starts]
        for device_id in sorted(timelines):
            f = first[device_id]
            base, h = rtt[device_id]
            missed: dict[int, int] = {}
            for a, b in timelines[device_id]:
                j = max(0, bisect.bisect_right(los, a) - 1)
                while j < len(los) and los[j] < b:
                    c = grid.count(max(a, los[j]), min(b, his[j]))
                    if c:
                        missed[j] = missed.get(j, 0) + c
                    j += 1
            for j in range(max(0, bisect.bisect_right(los, f) - 1), len(starts)):
                polls = full[j] if los[j] >= f else grid.count(f, his[j])
                if polls <= 0:
                    continue
                up = polls - missed.get(j, 0)
                x = numbers[j]
                mean = base * (1.0 + ((h // 7 + 13 * x) % 17) / 40.0)
                yield new_row((device_id, granularity, starts[j], polls, up, mean * up, up,
                               mean * (1.3 + ((h + 7 * x) % 23) / 20.0) if up else None, _ZERO, _ZERO))


# Random scenarios --------------------------------------------------------------------------------
class SiteLike(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def tier(self) -> str: ...


@dataclass(frozen=True)
class _S:
    code: str
    path: str
    tier: str


MAINTENANCE_REASONS = ["计划维护：核心交换机软件升级", "计划维护：光缆割接", "计划维护：机房电源检修",
                       "计划维护：路由器板卡更换", "计划维护：线路扩容"]


def monitored_sites(session: Session) -> list[_S]:
    """Sites with at least one enabled uplink device, by code."""
    rows = session.execute(select(Site.code, Site.path, Site.tier).join(Device, Device.site_id == Site.id)
                           .where(Device.enabled.is_(True), Device.retired_at.is_(None),
                                  Device.role == DeviceRole.UPLINK, Site.retired_at.is_(None))
                           .distinct().order_by(Site.code)).all()
    return [_S(c, p, t) for c, p, t in rows]


def random_scenario(sites: Session | Sequence[SiteLike], start: dt.datetime, end: dt.datetime, *, seed: int,
                    outages: int | None = None, cascades: int | None = None, maintenance: int | None = None,
                    gaps: int = 1, flaps: int | None = None, poll_seconds: int = 60) -> Scenario:
    """A realistic random scenario over the sites (or the monitored sites of a session), deterministic
    for a seed. Every event ends before ``end`` (the hand-over to a live poller finds every link up).

    * ``outages`` short link failures (default: one per site per 30 days): mostly counties (75 %) and
      cities (20 %), heavy-tailed durations (Pareto: 3 minutes and up, median ≈ 6 minutes, a few last
      hours, at most 8 hours), some links much more often than others;
    * ``cascades`` province (⅓) or city (⅔) failures of 20 minutes to 3 hours (default 3 per 30 days):
      everything below them is unknown meanwhile;
    * ``maintenance`` night windows of 1–4 hours (default 4 per 30 days), most with the link really
      cut inside the window;
    * ``gaps`` poller gaps of about 20 minutes (default one);
    * ``flaps`` flapping links (default 3 per 30 days): 20–90 minutes of short downs every 4–10 polls;
    * one outage crossing midnight, Asia/Shanghai time, when the period has a midnight inside."""
    pool = [_S(s.code, s.path, str(s.tier)) for s in (monitored_sites(sites) if isinstance(sites, Session)
                                                       else sites)]
    pool = sorted((s for s in pool if s.code != MINISTRY_CODE), key=lambda s: s.code)
    if not pool:
        return Scenario(start=start, end=end, poll_seconds=poll_seconds)
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    months = span / (30 * 86400)
    by_tier: dict[str, list[_S]] = {}
    for s in pool:
        by_tier.setdefault(s.tier, []).append(s)
    weight = {s.code: rng.paretovariate(1.5) for s in pool}  # some links fail far more often than others
    children = {s.path.strip("/").split("/")[-2] for s in pool if s.path.count("/") > 2}
    events: list[Event] = []

    def pick(tiers: Sequence[tuple[str, float]], *, weighted: bool = True) -> _S:
        """A site of one of the tiers (by probability; any site if none of them exists)."""
        choices = [(t, p) for t, p in tiers if by_tier.get(t)]
        members = by_tier[rng.choices([t for t, _ in choices], [p for _, p in choices])[0]] if choices else pool
        return rng.choices(members, [weight[m.code] if weighted else 1.0 for m in members])[0]

    def place(seconds: float, margin: float = 60.0) -> tuple[dt.datetime, dt.datetime] | None:
        room = span - seconds - 2 * margin
        if room <= 0:
            return None
        at = start + dt.timedelta(seconds=int(margin + rng.uniform(0, room)))
        return at, at + dt.timedelta(seconds=int(seconds))

    leaf_tiers = [(Tier.COUNTY, 0.75), (Tier.CITY, 0.20), (Tier.PROVINCE, 0.05)]
    for _ in range(round(len(pool) * months) if outages is None else outages):
        site = pick(leaf_tiers)
        when = place(min(8 * 3600.0, 180.0 * rng.paretovariate(1.1)))
        if when:
            events.append(LinkDown(site.code, *when))
    parents = [s for s in pool if s.code in children]
    provinces = [s for s in parents if s.tier == Tier.PROVINCE]
    cities = [s for s in parents if s.tier != Tier.PROVINCE]
    for _ in range(max(1, round(3 * months)) if cascades is None else cascades):
        group = provinces if provinces and (not cities or rng.random() < 1 / 3) else cities
        if not group:
            break
        site = rng.choice(group)
        when = place(rng.uniform(20, 180) * 60)
        if when:
            events.append(LinkDown(site.code, *when))
    for _ in range(max(1, round(4 * months)) if maintenance is None else maintenance):
        site = pick([(Tier.CITY, 0.5), (Tier.COUNTY, 0.5)], weighted=False)
        minutes = rng.choice([60, 90, 120, 180, 240])
        local = (start + dt.timedelta(seconds=rng.uniform(0, span))).astimezone(SHANGHAI)
        w_start = local.replace(hour=rng.randint(0, 3), minute=rng.choice([0, 30]), second=0,
                                microsecond=0).astimezone(dt.UTC)
        w_end = w_start + dt.timedelta(minutes=minutes)
        if w_start < start or w_end > end - dt.timedelta(minutes=1):
            continue
        events.append(Maintenance(site.code, w_start, w_end, rng.choice(MAINTENANCE_REASONS)))
        if rng.random() < 0.75:
            cut = w_start + dt.timedelta(minutes=rng.randint(5, 20))
            events.append(LinkDown(site.code, cut, cut + dt.timedelta(minutes=int(minutes * rng.uniform(0.2, 0.6)))))
    for _ in range(gaps):
        length = rng.uniform(18, 24) * 60
        when = place(length, margin=min(7200.0, span / 4))
        if when:
            events.append(PollerGap(*when))
    for _ in range(max(1, round(3 * months)) if flaps is None else flaps):
        site = pick([(Tier.COUNTY, 0.7), (Tier.CITY, 0.3)])
        period = poll_seconds * rng.randint(4, 10)
        down = poll_seconds * max(1, period // poll_seconds // 2)
        when = place(rng.uniform(20, 90) * 60)
        if when:
            events.append(Flap(site.code, *when, period_seconds=period, down_seconds=down))
    midnights = []
    day = (start + dt.timedelta(hours=2)).astimezone(SHANGHAI).date() + dt.timedelta(days=1)
    while (m := dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)) < end - dt.timedelta(hours=3):
        midnights.append(m.astimezone(dt.UTC))
        day += dt.timedelta(days=1)
    if midnights:
        m = rng.choice(midnights)
        site = pick([(Tier.COUNTY, 0.6), (Tier.CITY, 0.4)])
        events.append(LinkDown(site.code, m - dt.timedelta(seconds=int(rng.uniform(10, 50) * 60)),
                               m + dt.timedelta(seconds=int(rng.uniform(15, 120) * 60))))
    return Scenario(start=start, end=end, poll_seconds=poll_seconds, events=events)


# The demo ----------------------------------------------------------------------------------------
DEMO_SEED = 2026


def previous_month_start(now: dt.datetime) -> dt.datetime:
    """Midnight (Asia/Shanghai) of the first day of the calendar month before ``now``'s, in UTC."""
    local = now.astimezone(SHANGHAI)
    year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    return dt.datetime(year, month, 1, tzinfo=SHANGHAI).astimezone(dt.UTC)


def generate_demo_history(container: Container, say: Callable[[str], None] = print, *,
                          now: dt.datetime | None = None, seed: int = DEMO_SEED) -> HistoryStats | None:
    """Generated history (``demo=True``) for a demo whose devices have never been polled: from the
    start of the previous calendar month (Asia/Shanghai) until now, so last month's report can be
    read at once. The poll grid is laid so that its last cycle finishes exactly at ``now``: the live
    poller taking over finds no gap. Returns None (and says why) when there is nothing to do."""
    settings = container.settings
    now = now or utcnow()
    with container.unit_of_work() as svc:
        session = svc.session
        if session.execute(select(Device.id).where(Device.first_polled_at.isnot(None)).limit(1)).first():
            say("demo history: not generated (devices have been polled already)")
            return None
        devices = uplink_devices(session)
        if not devices:
            say("demo history: not generated (no enabled uplink devices)")
            return None
        poll = dt.timedelta(seconds=settings.poll_interval_seconds)
        cycle = dt.timedelta(seconds=1.5)
        last = now - cycle  # the last generated cycle runs [last, now)
        begin = previous_month_start(now)
        start = last - poll * -(-(last - begin) // poll)  # on the grid ending at ``last``, at or before ``begin``
        scenario = random_scenario(session, start, now, seed=seed, poll_seconds=settings.poll_interval_seconds)
        scenario.cycle_seconds = cycle.total_seconds()
        stats = write_history(session, scenario, devices=devices, demo=True,
                              flap_window_minutes=settings.flap_window_minutes,
                              hourly_since=hour_bucket(now - dt.timedelta(days=settings.retention_hourly_days)))
    say(f"demo history: {stats.devices} devices since {begin.astimezone(SHANGHAI):%Y-%m-%d} (Asia/Shanghai), "
        f"{stats.outages_opened} outages, {stats.cycles} cycles, generated in {stats.seconds:.1f} s (marked demo)")
    return stats
