"""One storage path for poll outcomes: status transitions as outage records, rollups, poll cycles and
poller gaps. The live poller (:class:`~.poller.PollEngine`) and the generated history of
:mod:`.synthetic` both write through :class:`HistoryWriter`, so the two can never disagree on what
an outage, a flap or a rollup is.

Semantics (the same for both writers):

* A device's **status change** at ``at`` closes its open outage (and the outage's last period) at
  ``at``. A change to ``up`` stops there. A change to ``down`` or ``unknown`` re-opens the device's
  most recently ended outage of that same status when it ended no more than ``flap_window`` before
  ``at`` (a flap: ``flap_count + 1`` and a new period from ``at``), else opens a new outage
  (cause ``own`` unless given).
* **Rollups** are per device per hour (UTC hours) and per day (midnight to midnight in
  Asia/Shanghai, like the monthly report) and are *added to* by an ``INSERT … ON CONFLICT DO UPDATE``:
  polls, up polls, RTT sum/count, RTT max, traffic deltas.
* A **poller gap** is the time between the end of one cycle and the start of the next when it is
  longer than the gap threshold; it is excluded from rates.

Everything the writer creates carries its ``demo`` flag (generated history is never measured)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Numeric, Table, case, insert, or_, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session

from ..db import UTCDateTime
from .models import (
    Cause,
    DeviceRollup,
    DeviceStatus,
    MaintenanceWindow,
    Outage,
    OutagePeriod,
    PollCycle,
    PollerGap,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Device ids per ``IN (…)`` list when loading outages (well below SQLite's parameter limit).
_CHUNK = 5000
ROLLUPS: Table = DeviceRollup.__table__  # type: ignore[assignment]
CYCLES: Table = PollCycle.__table__  # type: ignore[assignment]


def hour_bucket(at: dt.datetime) -> dt.datetime:
    """The UTC hour containing ``at``."""
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def day_bucket(at: dt.datetime) -> dt.datetime:
    """Midnight (Asia/Shanghai) of the day containing ``at``, as a UTC datetime."""
    local = at.astimezone(SHANGHAI)
    return dt.datetime(local.year, local.month, local.day, tzinfo=SHANGHAI).astimezone(dt.UTC)


def rollup_upsert_statement(dialect_name: str) -> Any:
    """``INSERT … ON CONFLICT (device_id, granularity, bucket) DO UPDATE`` adding the new figures to a
    bucket's existing ones (RTT max: the larger). Executed with a list of rows (executemany)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    ins = dialect_insert(ROLLUPS)
    ex = ins.excluded
    return ins.on_conflict_do_update(
        index_elements=["device_id", "granularity", "bucket"],
        set_={"polls": DeviceRollup.polls + ex.polls, "up_polls": DeviceRollup.up_polls + ex.up_polls,
              "rtt_sum": DeviceRollup.rtt_sum + ex.rtt_sum, "rtt_count": DeviceRollup.rtt_count + ex.rtt_count,
              "rtt_max": case((DeviceRollup.rtt_max.is_(None), ex.rtt_max),
                              (ex.rtt_max > DeviceRollup.rtt_max, ex.rtt_max), else_=DeviceRollup.rtt_max),
              "in_octets": DeviceRollup.in_octets + ex.in_octets,
              "out_octets": DeviceRollup.out_octets + ex.out_octets})


class RollupRow(NamedTuple):
    """One device's figures to add to one bucket (see :meth:`HistoryWriter.upsert_rollups`)."""

    device_id: int
    granularity: str  # "hour" or "day"
    bucket: dt.datetime  # see hour_bucket() and day_bucket()
    polls: int
    up_polls: int
    rtt_sum: float = 0.0
    rtt_count: int = 0
    rtt_max: float | None = None
    in_octets: Decimal = Decimal(0)
    out_octets: Decimal = Decimal(0)


def poll_buckets(at: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """The rollup buckets a poll at ``at`` counts in: its UTC hour and its Asia/Shanghai day."""
    return [("hour", hour_bucket(at)), ("day", day_bucket(at))]


def poll_rollup_rows(device_id: int, buckets: Sequence[tuple[str, dt.datetime]], *, up: bool,
                     rtt_ms: float | None, in_delta: int, out_delta: int) -> list[RollupRow]:
    """The rollup rows of one device's poll, one per bucket of :func:`poll_buckets`."""
    d_in, d_out = Decimal(in_delta), Decimal(out_delta)
    return [RollupRow(device_id, granularity, bucket, 1, int(up), rtt_ms or 0.0, int(rtt_ms is not None), rtt_ms,
                      d_in, d_out) for granularity, bucket in buckets]


class BulkStatement:
    """A Core statement compiled once and executed with ``executemany`` straight on the DB-API cursor,
    with rows given as tuples in the order of ``keys``.

    The columns' own bind processors are applied here, so the values sent are those SQLAlchemy
    would send; what is saved is its per-row parameter handling, most of the cost of the millions of
    rollup rows of a generated month. Processed datetimes and decimals are memoized per call (they
    repeat); floats are sent as they are (a Float or Numeric processor only makes a float)."""

    def __init__(self, statement: Any, table: Table, keys: Sequence[str], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = compiled.string
        self.keys = tuple(keys)
        positions = {k: i for i, k in enumerate(self.keys)}
        if compiled.positional:
            if sorted(compiled.positiontup) != sorted(keys):
                raise ValueError(f"the statement's parameters are not {keys}")
            self.order: tuple[int, ...] | None = tuple(positions[k] for k in compiled.positiontup)
        else:
            if set(compiled.binds) != set(keys):
                raise ValueError(f"the statement's parameters are not {keys}")
            self.order = None
        #: (index in a row, processor, memoize, floats pass) for every column with a bind processor
        self.converters: list[tuple[int, Callable[[Any], Any], bool, bool]] = []
        for k in keys:
            col_type = table.c[k].type
            proc = col_type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                numeric = isinstance(col_type, Numeric)  # Float is a Numeric
                self.converters.append((positions[k], proc, numeric or isinstance(col_type, UTCDateTime), numeric))

    def execute(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        converters: list[tuple[int, Callable[[Any], Any], dict[Any, Any] | None, bool]] = [
            (i, proc, {} if memo else None, floats) for i, proc, memo, floats in self.converters]

        def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
            values = list(row)
            for i, proc, cache, floats in converters:
                v = values[i]
                if v is None or (floats and type(v) is float):
                    continue
                if cache is None:
                    values[i] = proc(v)
                else:
                    c = cache.get(v)
                    if c is None:
                        c = cache[v] = proc(v)
                    values[i] = c
            return tuple(values)

        rows_out = [convert(r) for r in rows] if converters else rows
        params: list[Any]
        if self.order is not None:
            order = self.order
            params = [tuple(r[i] for i in order) for r in rows_out] if order != tuple(range(len(order))) \
                else [tuple(r) for r in rows_out]  # the DB-API wants plain tuples, not named ones
        else:
            params = [dict(zip(self.keys, r, strict=True)) for r in rows_out]
        connection.exec_driver_sql(self.sql, params)


@dataclass
class _DeviceOutages:
    """What the writer knows of one device's outage records (loaded once, then kept in step)."""

    open: Outage | None = None
    #: status -> the outage of that status that ended last (only those that can still regroup).
    closed: dict[str, Outage] = field(default_factory=dict)


class HistoryWriter:
    """Writes poll outcomes into one session: outage transitions, rollups, cycles, gaps, windows.

    Outage records of a device are loaded once per writer (:meth:`prefetch`, or lazily at its first
    transition) and then kept in memory, so transitions must be given in chronological order per
    device and no one else may write that device's outages through another session meanwhile. The
    caller commits."""

    def __init__(self, session: Session, *, flap_window: dt.timedelta, demo: bool = False) -> None:
        self.session = session
        self.flap_window = flap_window
        self.demo = demo
        self._devices: dict[int, _DeviceOutages] = {}
        self._upsert: BulkStatement | None = None

    # Outages ---------------------------------------------------------------------------------
    def prefetch(self, device_ids: Iterable[int], since: dt.datetime) -> None:
        """Load the open outage and the recently ended ones of these devices in bulk.

        ``since``: no transition of these devices will come before it (outages that ended more than
        the flap window before it can never be re-opened and are not loaded)."""
        ids = sorted({i for i in device_ids if i not in self._devices})
        for i in ids:
            self._devices[i] = _DeviceOutages()
        regroup = self.flap_window.total_seconds() > 0
        for n in range(0, len(ids), _CHUNK):
            chunk = ids[n:n + _CHUNK]
            cond: Any = Outage.ended_at.is_(None)
            if regroup:
                cond = or_(cond, Outage.ended_at >= since - self.flap_window)
            for o in self.session.execute(select(Outage).where(Outage.device_id.in_(chunk), cond)
                                          .order_by(Outage.id)).scalars():
                known = self._devices[o.device_id]
                if o.ended_at is None:
                    known.open = o  # several open ones would be an inconsistency: the newest wins
                    continue
                last = known.closed.get(o.status)
                if last is None or (o.ended_at, o.id) > (last.ended_at, last.id):
                    known.closed[o.status] = o

    def open_outage(self, device_id: int, at: dt.datetime) -> Outage | None:
        """The device's open outage (loading its records first if needed)."""
        if device_id not in self._devices:
            self.prefetch([device_id], at)
        return self._devices[device_id].open

    def transition(self, device_id: int, site_id: int, status: str, cause: str | None,
                   at: dt.datetime) -> tuple[int, int]:
        """Record that the device's status changed to ``status`` at ``at`` (see the module docstring).

        Returns (outages opened, outages closed); re-opening a flapping outage opens nothing."""
        current = self.open_outage(device_id, at)
        known = self._devices[device_id]
        opened = closed = 0
        if current is not None:  # up, or down <-> unknown: the open outage ends here
            current.ended_at = at
            if current.periods:
                current.periods[-1].ended_at = at
            closed = 1
            known.open = None
            known.closed[current.status] = current  # ends last of its status: ``at`` is the latest time
        if status == DeviceStatus.UP:
            return opened, closed
        recent = None
        if self.flap_window.total_seconds() > 0:
            candidate = known.closed.get(status)
            if candidate is not None and candidate.ended_at is not None and \
                    candidate.ended_at >= at - self.flap_window:
                recent = candidate
        if recent is not None and recent is not current:
            recent.ended_at = None
            recent.flap_count = (recent.flap_count or 0) + 1
            recent.periods.append(OutagePeriod(started_at=at, ended_at=None))
            known.open = recent
            # Any older outage of this status ended before this one started, more than the flap
            # window earlier (else they would be one record): it can never be re-opened.
            del known.closed[status]
            return opened, closed
        outage = Outage(device_id=device_id, site_id=site_id, status=status, cause=cause or Cause.OWN,
                        started_at=at, ended_at=None, flap_count=0, demo=self.demo,
                        periods=[OutagePeriod(started_at=at, ended_at=None)])
        self.session.add(outage)
        known.open = outage
        return opened + 1, closed

    # Rollups ---------------------------------------------------------------------------------
    def upsert_rollups(self, rows: Sequence[RollupRow]) -> int:
        """Add rows to their buckets in one bulk statement; returns the count.

        Rows of one call must not repeat a (device, granularity, bucket)."""
        if not rows:
            return 0
        connection = self.session.connection()
        if self._upsert is None:
            self._upsert = BulkStatement(rollup_upsert_statement(connection.dialect.name), ROLLUPS,
                                         RollupRow._fields, connection.dialect)
        self._upsert.execute(connection, rows)
        return len(rows)

    # Cycles, gaps, maintenance windows ---------------------------------------------------------
    def last_cycle(self) -> PollCycle | None:
        return self.session.execute(select(PollCycle).order_by(PollCycle.id.desc()).limit(1)).scalar_one_or_none()

    def record_gap_before(self, started: dt.datetime, gap_after: dt.timedelta) -> PollerGap | None:
        """Record a poller gap when the last cycle finished more than ``gap_after`` before ``started``."""
        previous = self.last_cycle()
        if previous is not None and previous.finished_at is not None and started - previous.finished_at > gap_after:
            return self.add_gap(previous.finished_at, started)
        return None

    def add_gap(self, start: dt.datetime, end: dt.datetime) -> PollerGap:
        gap = PollerGap(started_at=start, ended_at=end, demo=self.demo)
        self.session.add(gap)
        return gap

    def add_cycle(self, *, started_at: dt.datetime, finished_at: dt.datetime | None, devices: int, up: int,
                  down: int, unknown: int, snmp_errors: int, duration_ms: float | None = None) -> PollCycle:
        """One cycle record, flushed (its id is set)."""
        cycle = PollCycle(started_at=started_at, finished_at=finished_at, devices=devices, up=up, down=down,
                          unknown=unknown, snmp_errors=snmp_errors, duration_ms=duration_ms, demo=self.demo)
        self.session.add(cycle)
        self.session.flush()
        return cycle

    def add_cycles(self, rows: Sequence[dict[str, Any]]) -> int:
        """Many cycle records in one bulk insert, in the given (chronological) order.

        Each row: started_at, finished_at, devices, up, down, unknown, snmp_errors, duration_ms."""
        if not rows:
            return 0
        self.session.flush()  # cycle ids must follow time: nothing pending may come after these
        self.session.connection().execute(insert(CYCLES), [dict(r, demo=self.demo) for r in rows])
        return len(rows)

    def add_maintenance(self, *, site_id: int, start: dt.datetime, end: dt.datetime, reason: str,
                        created_by: str, device_id: int | None = None) -> MaintenanceWindow:
        window = MaintenanceWindow(site_id=site_id, device_id=device_id, started_at=start, ended_at=end,
                                   reason=reason, created_by=created_by, demo=self.demo)
        self.session.add(window)
        return window
