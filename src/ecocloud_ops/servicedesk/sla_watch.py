"""The scheduled SLA check (job ``servicedesk.sla_check``, every 5 minutes) and the notifications it sends.

For every open ticket (not resolved, closed or canceled) and each of its two clocks -- response
(until ``responded_at``) and resolution (until ``resolved_at``) -- the share of the SLA target used
so far is computed on the ticket's SLA clock (working time on the stored calendar, or wall time for
7×24 priorities and categories; time pending does not count):

* at ``warn_fraction`` of the policy (default 75 %): one ``sla_warning`` notification to the assignee
  (else the team's on-duty engineers, else its leader, else the service desk) and an internal "sla"
  event in the ticket's history -- once per clock;
* at 100 %: the breach is recorded (``tickets.response_breached`` / ``resolve_breached`` become True and
  are never reset, ``ticket_sla_states`` keeps when), the team leader is notified (``sla_breach``) and
  the ticket is raised once to the team's escalation team (an audited assignment, and an
  ``escalation`` notification to that team's on-duty engineers, else its leader).

Also, once per ticket: a ticket still without a team ten minutes after it came in, and a ticket that
came in outside working hours, are notified to the on-duty engineers of the team it routes to.

Notifications go through a :class:`Notifier`; the default one writes :class:`~.teams.Notification`
rows (an outbox, in the same transaction), which an SMTP sender drains.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.models import User
from ..auth.permissions import Role
from ..db import utcnow
from .calendar import SHANGHAI, BusinessCalendar
from .models import Ticket, TicketStatus
from .sla import fraction_used
from .sla_store import load_calendar
from .teams import Notification, NotificationKind, Team, TeamService, TicketSlaState

if TYPE_CHECKING:
    from ..jobs.runner import JobContext
    from .service import TicketService

#: A ticket still without a team this long after it came in is notified.
UNASSIGNED_AFTER = dt.timedelta(minutes=10)
#: Statuses whose clocks have stopped for good (a reopened ticket is in progress again).
FINISHED = (TicketStatus.RESOLVED, TicketStatus.CLOSED, TicketStatus.CANCELED)
#: Transaction-level advisory lock (PostgreSQL) so that two checks never run at once.
_LOCK_KEY = 0x5E5D_0005
CLOCK_NAMES = {"response": "响应", "resolve": "解决"}


class Notifier(Protocol):
    """Where notifications go. ``recipients`` are usernames."""

    def notify(self, recipients: list[str], subject: str, body: str, ticket_number: str, kind: str) -> None: ...


class OutboxNotifier:
    """Writes each notification as a :class:`Notification` row of the current transaction."""

    def __init__(self, session: Session, now: dt.datetime | None = None) -> None:
        self.session = session
        self.now = now

    def notify(self, recipients: list[str], subject: str, body: str, ticket_number: str, kind: str) -> None:
        ticket_id = self.session.execute(select(Ticket.id).where(Ticket.number == ticket_number)).scalar()
        self.session.add(Notification(at=self.now or utcnow(), kind=kind, ticket_id=ticket_id,
                                      recipients=list(dict.fromkeys(recipients)), subject=subject[:200], body=body))


def outbox(session: Session, limit: int = 100) -> list[Notification]:
    """Notifications not sent yet, oldest first (for the sender)."""
    return list(session.execute(select(Notification).where(Notification.sent_at.is_(None))
                                .order_by(Notification.id).limit(limit)).scalars())


def mark_sent(session: Session, ids: list[int], at: dt.datetime | None = None) -> None:
    """Record that the sender delivered these notifications."""
    at = at or utcnow()
    for n in session.execute(select(Notification).where(Notification.id.in_(ids))).scalars():
        n.sent_at = at


def in_business_hours(cal: BusinessCalendar, at: dt.datetime) -> bool:
    """Whether ``at`` falls in working time: a working day of the calendar, between opening and closing."""
    local = at.astimezone(cal.tz)
    return cal.is_workday(local.date()) and cal.opening <= local.time().replace(tzinfo=None) < cal.closing


def _local(t: dt.datetime | None) -> str:
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if t is not None else "—"


class _Check:
    """One run of the check: shared lookups and the actions on one ticket."""

    def __init__(self, session: Session, audit: AuditLog, tickets: TicketService, now: dt.datetime,
                 actor: Actor, notifier: Notifier) -> None:
        self.session, self.audit, self.tickets, self.now = session, audit, tickets, now
        self.actor, self.notifier = actor, notifier
        self.teams = TeamService(session, audit)
        self.cal = load_calendar(session)
        self.counts = {"tickets": 0, "warnings": 0, "breaches": 0, "escalations": 0, "unassigned": 0,
                       "out_of_hours": 0}
        self.policy = tickets.policies.servicedesk()
        self._desk: list[str] | None = None
        self._teams: dict[str, Team | None] = {}
        self._on_duty: dict[str, list[str]] = {}
        self.states: dict[int, TicketSlaState] = {}
        #: Tickets whose state row was looked up already (found or not).
        self.looked_up: set[int] = set()

    # Recipients ----------------------------------------------------------------------------
    def desk(self) -> list[str]:
        """The service desk's agents: who hears about tickets nobody else is set up to hear about."""
        if self._desk is None:
            self._desk = sorted(self.session.execute(select(User.username).where(
                User.role == Role.DESK_AGENT, User.is_active.is_(True))).scalars())
        return self._desk

    def leader(self, team: Team | None) -> list[str]:
        return [team.leader.username] if team is not None and team.leader and team.leader.is_active else []

    def on_duty_or_leader(self, team: Team | None) -> list[str]:
        if team is None:
            return self.desk()
        if team.name not in self._on_duty:
            self._on_duty[team.name] = self.teams.on_duty(team.name, self.now)
        return self._on_duty[team.name] or self.leader(team) or self.desk()

    def team_of(self, ticket: Ticket) -> Team | None:
        if not ticket.team:
            return None
        if ticket.team not in self._teams:
            self._teams[ticket.team] = self.teams.find(ticket.team)
        return self._teams[ticket.team]

    def routed_team(self, ticket: Ticket) -> Team | None:
        return self.team_of(ticket) or self.teams.route(ticket.category, ticket.site.path)

    # Helpers -------------------------------------------------------------------------------
    def known_state(self, ticket: Ticket) -> TicketSlaState | None:
        """The ticket's state row if it has one (looked up once per run)."""
        if ticket.id not in self.looked_up:
            self.looked_up.add(ticket.id)
            state = self.session.get(TicketSlaState, ticket.id)
            if state is not None:
                self.states[ticket.id] = state
        return self.states.get(ticket.id)

    def state(self, ticket: Ticket) -> TicketSlaState:
        """The ticket's state row, created on first use."""
        state = self.known_state(ticket)
        if state is None:
            state = self.states[ticket.id] = TicketSlaState(ticket_id=ticket.id)
            self.session.add(state)
        return state

    def send(self, ticket: Ticket, kind: str, recipients: list[str], subject: str, body: str) -> None:
        self.notifier.notify(list(dict.fromkeys(recipients)), f"[{subject}] {ticket.number} {ticket.title}"[:200],
                             body, ticket.number, kind)

    def event(self, ticket: Ticket, body: str, *, field: str | None = None, old: Any = None,
              new: Any = None) -> None:
        self.tickets._event(ticket, self.actor, "sla", field=field, old=old, new=new, body=body, internal=True,
                            at=self.now)

    def describe(self, ticket: Ticket) -> str:
        return (f"工单：{ticket.number} {ticket.title}\n优先级：{ticket.priority}\n"
                f"处理组：{ticket.team or '未分配'}\n处理人：{ticket.assignee.username if ticket.assignee else '—'}\n"
                f"响应时限：{_local(ticket.response_due)}\n解决时限：{_local(ticket.resolve_due)}\n")

    # The clocks ----------------------------------------------------------------------------
    def clocks(self, ticket: Ticket) -> None:
        state = self.known_state(ticket)
        policy = self.policy
        target = policy.sla.get(ticket.priority)
        if target is None:
            return
        mode = "24x7" if target.mode == "24x7" or ticket.category in policy.categories_24x7 else "business"
        pauses = None
        for clock, stopped, minutes in (("response", ticket.responded_at, target.response_minutes),
                                        ("resolve", ticket.resolved_at, target.resolve_minutes)):
            if stopped is not None or (state is not None and getattr(state, f"{clock}_breached_at")):
                continue
            if pauses is None:
                pauses = self.tickets.pauses(ticket)
            used = fraction_used(self.cal, ticket.created_at, self.now, minutes * 60, mode=mode,  # type: ignore[arg-type]
                                 pauses=pauses)
            if used >= 1.0:
                state = state or self.state(ticket)
                self.breach(ticket, state, clock)
            elif used >= policy.warn_fraction and (state is None or not getattr(state, f"{clock}_warned_at")):
                state = state or self.state(ticket)
                self.warn(ticket, state, clock, used)

    def warn(self, ticket: Ticket, state: TicketSlaState, clock: str, used: float) -> None:
        setattr(state, f"{clock}_warned_at", self.now)
        due = ticket.response_due if clock == "response" else ticket.resolve_due
        name = CLOCK_NAMES[clock]
        text_ = f"{name}时限已用 {used:.0%}，截止 {_local(due)}（北京时间）。"
        self.event(ticket, text_, field=f"{clock}_warning")
        team = self.team_of(ticket)
        recipients = [ticket.assignee.username] if ticket.assignee and ticket.assignee.is_active else []
        self.send(ticket, NotificationKind.SLA_WARNING, recipients or self.on_duty_or_leader(team),
                  f"SLA预警：{name}时限将至", text_ + "\n\n" + self.describe(ticket))
        self.audit.record(self.actor, "ticket.sla_warning", target_type="ticket", target_id=ticket.number,
                          after={"clock": clock, "used": round(used, 4), "due": due.isoformat() if due else None})
        self.counts["warnings"] += 1

    def breach(self, ticket: Ticket, state: TicketSlaState, clock: str) -> None:
        setattr(state, f"{clock}_breached_at", self.now)
        flag = f"{clock}_breached"
        was = bool(getattr(ticket, flag))
        setattr(ticket, flag, True)
        due = ticket.response_due if clock == "response" else ticket.resolve_due
        name = CLOCK_NAMES[clock]
        text_ = f"{name}时限已超：截止 {_local(due)}（北京时间）。"
        self.event(ticket, text_, field=flag, old=was, new=True)
        team = self.team_of(ticket)
        self.send(ticket, NotificationKind.SLA_BREACH, self.leader(team) or self.on_duty_or_leader(team),
                  f"SLA超时：{name}时限已过", text_ + "\n\n" + self.describe(ticket))
        self.audit.record(self.actor, "ticket.sla_breach", target_type="ticket", target_id=ticket.number,
                          before={flag: was}, after={flag: True, "due": due.isoformat() if due else None})
        self.counts["breaches"] += 1
        if state.escalated_at is None and team is not None and team.escalation_team is not None:
            target = team.escalation_team
            state.escalated_at = self.now
            self.tickets.assign(self.actor, ticket, team=target.name, assignee=None, now=self.now)
            self.session.flush()
            self.session.expire(ticket, ["assignee"])  # the relationship follows assignee_id again
            self.event(ticket, f"{name}时限已超，由 {team.display_name} 升级至 {target.display_name}。")
            self.send(ticket, NotificationKind.ESCALATION, self.on_duty_or_leader(target),
                      f"工单升级：{name}时限已超",
                      f"{text_}工单已由 {team.display_name} 升级至 {target.display_name}。\n\n" + self.describe(ticket))
            self.counts["escalations"] += 1

    # Intake --------------------------------------------------------------------------------
    def out_of_hours(self, ticket: Ticket) -> None:
        state = self.known_state(ticket)
        if (ticket.responded_at is not None or in_business_hours(self.cal, ticket.created_at)
                or (state is not None and state.out_of_hours_notified_at is not None)):
            return
        state = state or self.state(ticket)
        state.out_of_hours_notified_at = self.now
        team = self.routed_team(ticket)
        self.send(ticket, NotificationKind.OUT_OF_HOURS, self.on_duty_or_leader(team), "非工作时间工单",
                  f"工单于非工作时间 {_local(ticket.created_at)}（北京时间）提交，请值班人员处理。\n\n"
                  + self.describe(ticket))
        self.counts["out_of_hours"] += 1

    def unassigned(self, ticket: Ticket) -> None:
        state = self.known_state(ticket)
        if (ticket.team or ticket.assignee_id or self.now - ticket.created_at < UNASSIGNED_AFTER
                or (state is not None and state.unassigned_notified_at is not None)):
            return
        state = state or self.state(ticket)
        state.unassigned_notified_at = self.now
        minutes = int((self.now - ticket.created_at).total_seconds() // 60)
        self.send(ticket, NotificationKind.UNASSIGNED, self.on_duty_or_leader(self.routed_team(ticket)),
                  "工单未分派", f"工单提交 {minutes} 分钟后仍未分派处理组，请及时分派。\n\n" + self.describe(ticket))
        self.counts["unassigned"] += 1


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    # SQLite: every write transaction is BEGIN IMMEDIATE (see db.make_engine), so checks are serialized.


def run_sla_check(session: Session, audit: AuditLog, tickets: TicketService, now: dt.datetime | None = None, *,
                  actor: Actor | None = None, notifier: Notifier | None = None) -> dict[str, int]:
    """Warn, record breaches, escalate and notify unassigned / out-of-hours tickets (see the module
    docstring); idempotent: a second run at the same time does nothing. Returns counts of what it did."""
    now = now or utcnow()
    _lock(session)
    check = _Check(session, audit, tickets, now, actor or Actor("sla-watch", channel="system"),
                   notifier or OutboxNotifier(session, now))
    open_tickets = list(session.execute(select(Ticket).where(Ticket.status.notin_(FINISHED))
                                        .order_by(Ticket.id)).scalars())
    for start in range(0, len(open_tickets), 500):
        ids = [t.id for t in open_tickets[start:start + 500]]
        check.looked_up.update(ids)
        check.states.update((s.ticket_id, s) for s in session.execute(
            select(TicketSlaState).where(TicketSlaState.ticket_id.in_(ids))).scalars())
    for ticket in open_tickets:
        check.counts["tickets"] += 1
        check.clocks(ticket)
        check.unassigned(ticket)
        check.out_of_hours(ticket)
    session.flush()
    return check.counts


def notify_out_of_hours(tickets: TicketService, ticket: Ticket, now: dt.datetime | None = None, *,
                        notifier: Notifier | None = None) -> bool:
    """At intake: a ticket that came in outside working hours goes to the on-duty engineers of its
    team at once (the scheduled check catches any that were missed). True if a notification was sent."""
    session = tickets.session
    now = now or utcnow()
    check = _Check(session, tickets.audit, tickets, now, Actor("sla-watch", channel="system"),
                   notifier or OutboxNotifier(session, now))
    check.out_of_hours(ticket)
    return check.counts["out_of_hours"] > 0


def sla_check_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Job ``servicedesk.sla_check``: one run of :func:`run_sla_check` in one unit of work."""
    with ctx.unit_of_work() as svc:
        counts = run_sla_check(svc.session, svc.audit, svc.tickets, actor=ctx.actor)
    if any(v for k, v in counts.items() if k != "tickets"):
        ctx.log(f"SLA check of {counts['tickets']} open tickets: {counts['warnings']} warnings, "
                f"{counts['breaches']} breaches, {counts['escalations']} escalations, {counts['unassigned']} "
                f"unassigned, {counts['out_of_hours']} out of hours")
    return counts
