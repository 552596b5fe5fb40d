"""The SLA clock against the database: the stored working calendar and a ticket's deadlines."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..db import utcnow
from ..errors import ValidationFailed
from .calendar import BusinessCalendar, DayKind, DayOverride, chinese_calendar_days
from .models import CalendarDay, CalendarYear, Ticket, TicketEvent, TicketStatus
from .sla import Pause, add_business_time

if TYPE_CHECKING:
    from .service import TicketService


def seed_calendar(session: Session) -> list[int]:
    """Store the official schedules chinese-calendar knows, for the years not stored yet (an admin's
    entries are never overwritten); returns the years added."""
    days, years = chinese_calendar_days()
    have = set(session.execute(select(CalendarYear.year)).scalars())
    new = sorted(set(years) - have)
    if not new:
        return []
    existing = set(session.execute(select(CalendarDay.day)).scalars())
    for d, override in days.items():
        if d.year in new and d not in existing:
            session.add(CalendarDay(day=d, workday=override.is_workday, name=override.name))
    for y in new:
        session.add(CalendarYear(year=y, source="chinese-calendar"))
    session.flush()
    return new


#: (count and last change of the calendar's years) -> calendar, shared by the requests of a process.
_CACHE: dict[tuple[int, object], BusinessCalendar] = {}


def load_calendar(session: Session) -> BusinessCalendar:
    """The stored calendar, cached per process and rebuilt when a year is added or edited (``set_year``
    touches its year's row, in every process's view)."""
    from sqlalchemy import func

    key = tuple(session.execute(select(func.count(CalendarYear.year), func.max(CalendarYear.updated_at))).one())
    cal = _CACHE.get(key)  # type: ignore[arg-type]
    if cal is None:
        cal = _read_calendar(session)
        _CACHE.clear()
        _CACHE[key] = cal  # type: ignore[index]
    return cal


def _read_calendar(session: Session) -> BusinessCalendar:
    days = {row.day: DayOverride(DayKind.MAKEUP_WORKDAY if row.workday else DayKind.HOLIDAY, row.name)
            for row in session.execute(select(CalendarDay)).scalars()}
    years = frozenset(session.execute(select(CalendarYear.year)).scalars())
    return BusinessCalendar(days=days, known_years=years)


def deadlines(tickets: TicketService, ticket: Ticket) -> None:
    """Set the response and resolution deadlines from the ticket's priority and category, the stored
    calendar and the time it spent pending; record a breach once a clock stopped after its deadline
    (a breach is never recomputed away)."""
    session = tickets.session
    policy = tickets.policies.servicedesk()
    target = policy.sla[ticket.priority]
    mode = "24x7" if target.mode == "24x7" or ticket.category in policy.categories_24x7 else "business"
    cal = load_calendar(session)
    pauses = tickets.pauses(ticket)
    response = add_business_time(cal, ticket.created_at, target.response_minutes * 60, mode=mode,  # type: ignore[arg-type]
                                 pauses=pauses)
    resolve = add_business_time(cal, ticket.created_at, target.resolve_minutes * 60, mode=mode,  # type: ignore[arg-type]
                                pauses=pauses)
    ticket.response_due = response.due
    ticket.resolve_due = resolve.due
    ticket.due_estimated = response.estimated or resolve.estimated
    if ticket.responded_at and ticket.response_due and ticket.responded_at > ticket.response_due:
        ticket.response_breached = True
    if ticket.resolved_at and ticket.resolve_due and ticket.resolved_at > ticket.resolve_due:
        ticket.resolve_breached = True


def set_year(session: Session, audit: AuditLog, actor: Actor, year: int, holidays: dict[dt.date, str],
             workdays: dict[dt.date, str]) -> dict[str, int]:
    """Enter (or correct) a year's official schedule as the State Council publishes it: its public holidays
    and make-up working days. Replaces that year's stored days; audited with the old and new days."""
    if not 2000 <= year <= 2100:
        raise ValidationFailed("year: 2000 to 2100", details=[{"field": "year", "message": "out of range"}])
    for d in [*holidays, *workdays]:
        if d.year != year:
            raise ValidationFailed(f"{d} is not in {year}", details=[{"field": "days", "message": "wrong year"}])
    both = set(holidays) & set(workdays)
    if both:
        first = min(both)
        raise ValidationFailed(f"{first} is listed both as a holiday and as a working day",
                               details=[{"field": "days", "message": "both"}])
    for d in workdays:
        if d.weekday() < 5:
            raise ValidationFailed(f"{d} is a weekday: only a Saturday or Sunday can be a make-up working day",
                                   details=[{"field": "workdays", "message": "not a weekend"}])
    old = session.execute(select(CalendarDay).where(CalendarDay.day >= dt.date(year, 1, 1),
                                                    CalendarDay.day <= dt.date(year, 12, 31))).scalars().all()
    before = {str(r.day): ("workday" if r.workday else "holiday") + f" {r.name}" for r in old}
    for r in old:
        session.delete(r)
    session.flush()
    for d, name in sorted(holidays.items()):
        session.add(CalendarDay(day=d, workday=False, name=name[:64]))
    for d, name in sorted(workdays.items()):
        session.add(CalendarDay(day=d, workday=True, name=name[:64]))
    entry = session.get(CalendarYear, year)
    if entry is None:
        session.add(CalendarYear(year=year, source=actor.username))
    else:
        entry.source = actor.username
        entry.updated_at = utcnow()
    session.flush()
    after = {str(d): f"holiday {n}" for d, n in holidays.items()}
    after |= {str(d): f"workday {n}" for d, n in workdays.items()}
    audit.record(actor, "calendar.set_year", target_type="calendar", target_id=str(year), before=before, after=after)
    return {"holidays": len(holidays), "workdays": len(workdays)}


def parse_days(text: str) -> dict[dt.date, str]:
    """Lines ``2027-10-01 国庆节`` or ranges ``2027-10-01..2027-10-07 国庆节`` -> {date: name}."""
    out: dict[dt.date, str] = {}
    for n, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spec, _, name = line.partition(" ")
        try:
            if ".." in spec:
                a, b = (dt.date.fromisoformat(x) for x in spec.split("..", 1))
            else:
                a = b = dt.date.fromisoformat(spec)
        except ValueError as exc:
            raise ValidationFailed(f"line {n}: expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD, got {spec!r}",
                                   details=[{"field": "days", "message": f"line {n}"}]) from exc
        if b < a or (b - a).days > 31:
            raise ValidationFailed(f"line {n}: a range runs forward and spans at most a month",
                                   details=[{"field": "days", "message": f"line {n}"}])
        d = a
        while d <= b:
            out[d] = name.strip()
            d += dt.timedelta(days=1)
    return out


def missing_next_year(session: Session, today: dt.date) -> int | None:
    """From 1 November, the coming year when its schedule has not been entered yet (the console warns
    admins); else None."""
    if today.month < 11:
        return None
    nxt = today.year + 1
    return None if session.get(CalendarYear, nxt) is not None else nxt


def pauses_of(session: Session, ids: Sequence[int]) -> dict[int, list[Pause]]:
    """Intervals each ticket spent pending (the last one open while it still is), read in bulk."""
    out: dict[int, list[Pause]] = defaultdict(list)
    start: dict[int, dt.datetime] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for ev in session.execute(select(TicketEvent).where(TicketEvent.ticket_id.in_(chunk),
                                                            TicketEvent.kind == "transition")
                                  .order_by(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.id)).scalars():
            tid = ev.ticket_id
            if ev.to_status == TicketStatus.PENDING and tid not in start:
                start[tid] = ev.at
            elif ev.from_status == TicketStatus.PENDING and tid in start:
                out[tid].append((start.pop(tid), ev.at))
    for tid, at in start.items():
        out[tid].append((at, None))
    return out
