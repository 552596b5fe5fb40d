"""The SLA clock against the database: the stored working calendar and a ticket's deadlines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from .calendar import BusinessCalendar, DayKind, DayOverride, chinese_calendar_days
from .models import CalendarDay, CalendarYear, Ticket
from .sla import add_business_time

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


def load_calendar(session: Session) -> BusinessCalendar:
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
    cal = session.info.get("ecocloud_calendar")
    if cal is None:
        cal = session.info["ecocloud_calendar"] = load_calendar(session)
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
