"""Service-desk tickets, their history, links and number counters."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..auth.models import User
from ..db import Base, UTCDateTime, utcnow
from ..sites.models import Site


class TicketType(enum.StrEnum):
    INCIDENT = "incident"
    SERVICE_REQUEST = "service_request"
    PROBLEM = "problem"
    CHANGE = "change"


#: Number prefix per type: INC-2026-000123.
PREFIX = {TicketType.INCIDENT: "INC", TicketType.SERVICE_REQUEST: "REQ", TicketType.PROBLEM: "PRB",
          TicketType.CHANGE: "CHG"}


class Category(enum.StrEnum):
    NETWORK_FAULT = "network_fault"
    CLOUD_RESOURCE = "cloud_resource"
    ACCOUNT_ACCESS = "account_access"
    SECURITY_INCIDENT = "security_incident"
    CONSULTATION = "consultation"
    OTHER = "other"


class TicketStatus(enum.StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"  # waiting on the requester or a third party: the SLA clock stops
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELED = "canceled"


class TicketCounter(Base):
    """The last number given per prefix and year; incremented under a row lock."""

    __tablename__ = "ticket_counters"

    prefix: Mapped[str] = mapped_column(String(3), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.NEW, index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(24), default=Category.OTHER)
    #: 1 (whole agency) .. 4 (one person); urgency 1 (now) .. 4 (can wait).
    impact: Mapped[int] = mapped_column(Integer, default=3)
    urgency: Mapped[int] = mapped_column(Integer, default=3)
    priority: Mapped[str] = mapped_column(String(2), index=True)
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: Free-text requester for tickets from the system or unknown e-mail senders.
    requester_name: Mapped[str] = mapped_column(String(200), default="")
    #: The requester's site: provincial staff see the tickets of their subtree.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: Assignment group (a team's name, as in ``users.team``) and assignee.
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(16), default="web")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    response_due: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolve_due: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: A deadline reached into a year without an official calendar (computed on weekends only).
    due_estimated: Mapped[bool] = mapped_column(default=False, server_default=false())
    response_breached: Mapped[bool] = mapped_column(default=False, server_default=false())
    resolve_breached: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Optimistic lock: a stale form (double submit, two agents at once) is refused, not applied twice.
    version: Mapped[int] = mapped_column(Integer, default=1)

    site: Mapped[Site] = relationship(lazy="joined")
    requester: Mapped[User | None] = relationship(foreign_keys=[requester_id], lazy="joined")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")

    __mapper_args__ = {"version_id_col": version}


class TicketEvent(Base):
    """The ticket's history: creation, transitions, comments, work log, field changes, links."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    #: created, transition, comment, worklog, field, link
    kind: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    field: Mapped[str | None] = mapped_column(String(32))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    #: Work-log entries and internal notes are hidden from the requester.
    internal: Mapped[bool] = mapped_column(default=False, server_default=false())


class TicketLink(Base):
    """A ticket's link to anything the platform knows: a site, a device, an outage (later tenants, VMs)."""

    __tablename__ = "ticket_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_ticket_links_target", "target_type", "target_id"),)


class CalendarDay(Base):
    """An exception to Monday-Friday: a public holiday or a make-up working day (调休上班)."""

    __tablename__ = "calendar_days"

    day: Mapped[dt.date] = mapped_column(primary_key=True)
    workday: Mapped[bool] = mapped_column()
    name: Mapped[str] = mapped_column(String(64), default="")


class CalendarYear(Base):
    """A year whose official schedule is entered; deadlines reaching other years are estimates."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    #: "chinese-calendar" (seeded) or the admin who entered the State Council schedule.
    source: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
