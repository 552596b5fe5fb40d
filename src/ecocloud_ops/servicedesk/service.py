"""Tickets: numbering, visibility, the state machine's side effects, history, SLA deadlines."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.models import User
from ..auth.permissions import Role
from ..auth.scope import Scope
from ..db import utcnow
from ..errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from ..policies.service import PolicyService
from ..sites.models import Site
from . import notify
from .models import PREFIX, Category, Ticket, TicketCounter, TicketEvent, TicketLink, TicketStatus, TicketType
from .states import check_transition

LINK_TYPES = ("site", "device", "outage", "tenant", "vm", "ticket", "article")
#: Roles that work tickets (assign, move through states, work log); vendors only their team's.
WORKERS = frozenset({Role.ADMIN, Role.DESK_AGENT, Role.VENDOR_ENGINEER, Role.NETWORK_OPS, Role.CLOUD_OPS,
                     Role.DR_COORDINATOR})


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


class TicketService:
    def __init__(self, session: Session, audit: AuditLog, policies: PolicyService, *,
                 public_url: str = "http://127.0.0.1:8080", secret_key: Callable[[], str] | None = None) -> None:
        self.session = session
        self.audit = audit
        self.policies = policies
        #: For links in notifications (the console's address as users reach it, and the rating link's key).
        self.public_url = public_url
        self._secret_key = secret_key

    # Numbers -------------------------------------------------------------------------------
    def next_number(self, ticket_type: str, at: dt.datetime) -> str:
        """``INC-2026-000123``: per type and (Asia/Shanghai) year; the counter row is locked by the
        UPDATE until the transaction ends, so concurrent tickets never share a number."""
        from ..network.connectivity import SHANGHAI

        prefix = PREFIX[TicketType(ticket_type)]
        year = at.astimezone(SHANGHAI).year
        stmt = (update(TicketCounter).where(TicketCounter.prefix == prefix, TicketCounter.year == year)
                .values(last=TicketCounter.last + 1).returning(TicketCounter.last))
        n = self.session.execute(stmt).scalar()
        if n is None:
            dialect = self.session.get_bind().dialect.name
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            self.session.execute(insert(TicketCounter).values(prefix=prefix, year=year, last=0)
                                 .on_conflict_do_nothing())
            n = self.session.execute(stmt).scalar_one()
        return f"{prefix}-{year}-{n:06d}"

    # Visibility ----------------------------------------------------------------------------
    def visible(self, user: User | None, scope: Scope) -> Any:
        """WHERE clause: national roles see all; vendor engineers their team's; others their subtree."""
        if user is not None and user.role == Role.VENDOR_ENGINEER:
            return Ticket.team == (user.team or "\x00no team")
        if scope.national:
            return Ticket.id.isnot(None)
        return Ticket.site_id.in_(select(Site.id).where(scope.site_clause()))

    def get(self, ref: str | int, user: User | None, scope: Scope) -> Ticket:
        """A ticket by number or id, if the caller may see it; NotFound otherwise (no hint it exists)."""
        q = select(Ticket).where(self.visible(user, scope))
        text = str(ref).strip().upper()
        q = q.where(Ticket.id == int(text)) if text.isdigit() else q.where(Ticket.number == text)
        ticket = self.session.execute(q).scalar_one_or_none()
        if ticket is None:
            raise NotFound(f"no ticket {ref}")
        return ticket

    def search(self, user: User | None, scope: Scope, *, status: str | None = None, type: str | None = None,
               query: str | None = None, team: str | None = None, mine: bool = False, limit: int = 50,
               offset: int = 0) -> tuple[list[Ticket], int]:
        q = select(Ticket).where(self.visible(user, scope))
        if status == "open":
            q = q.where(Ticket.status.notin_([TicketStatus.CLOSED, TicketStatus.CANCELED]))
        elif status:
            q = q.where(Ticket.status == status)
        if type:
            q = q.where(Ticket.type == type)
        if team:
            q = q.where(Ticket.team == team)
        if mine and user is not None:
            q = q.where(or_(Ticket.assignee_id == user.id, Ticket.requester_id == user.id))
        if query:
            like = f"%{query}%"
            q = q.where(or_(Ticket.number.ilike(like), Ticket.title.ilike(like)))
        total = self.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        rows = self.session.execute(q.order_by(Ticket.created_at.desc(), Ticket.id.desc())
                                    .limit(limit).offset(offset)).scalars()
        return list(rows), total

    # Creation ------------------------------------------------------------------------------
    def create(self, actor: Actor, scope: Scope, *, type: str, title: str, description: str = "",
               category: str = Category.OTHER, impact: int = 3, urgency: int = 3, site_code: str,
               requester: User | None = None, requester_name: str = "", source: str = "web",
               links: list[tuple[str, str]] | None = None, now: dt.datetime | None = None) -> Ticket:
        if type not in {t.value for t in TicketType}:
            raise _fail("type", f"one of {', '.join(t.value for t in TicketType)}")
        if category not in {c.value for c in Category}:
            raise _fail("category", f"one of {', '.join(c.value for c in Category)}")
        title = (title or "").strip()
        if not 1 <= len(title) <= 200:
            raise _fail("title", "1 to 200 characters")
        if len(description or "") > 20000:
            raise _fail("description", "at most 20,000 characters")
        for name, value in (("impact", impact), ("urgency", urgency)):
            if not isinstance(value, int) or not 1 <= value <= 4:
                raise _fail(name, "a whole number from 1 (highest) to 4")
        site = self.session.execute(select(Site).where(Site.code == site_code, scope.site_clause())).scalar()
        if site is None:
            raise NotFound(f"no site {site_code}")
        now = now or utcnow()
        policy = self.policies.servicedesk()
        # A provisional number first: the counter row stays locked from numbering to commit, so everything
        # else (events, links, deadlines) happens before the real number is taken.
        ticket = Ticket(number=f"TMP-{uuid.uuid4().hex[:12]}", type=type, status=TicketStatus.NEW, title=title,
                        description=description or "", category=category, impact=impact, urgency=urgency,
                        priority=policy.priority(impact, urgency), requester_id=requester.id if requester else None,
                        requester_name=requester_name or (requester.display_name or requester.username
                                                          if requester else ""),
                        site_id=site.id, source=source, created_at=now, updated_at=now)
        self.session.add(ticket)
        self.session.flush()
        self._event(ticket, actor, "created", to_status=TicketStatus.NEW, at=now)
        for target_type, target_id in links or []:
            self._link(ticket, actor, target_type, target_id)
        self.recompute_deadlines(ticket, now=now)
        ticket.number = self.next_number(type, now)
        self.session.flush()
        notify.on_created(self.session, ticket, self.public_url)
        self.audit.record(actor, "ticket.create", target_type="ticket", target_id=ticket.number,
                          after={"type": type, "category": category, "priority": ticket.priority,
                                 "site": site.code, "source": source})
        from .teams import route_new_ticket  # routing rules and the on-duty roster

        route_new_ticket(self, actor, ticket, now)
        return ticket

    # Changes -------------------------------------------------------------------------------
    def _expect(self, ticket: Ticket, version: int | None) -> None:
        if version is not None and version != ticket.version:
            raise Conflict(f"{ticket.number} was changed by someone else meanwhile; reload and try again")

    def transition(self, actor: Actor, ticket: Ticket, target: str, *, comment: str | None = None,
                   version: int | None = None, now: dt.datetime | None = None) -> Ticket:
        self._expect(ticket, version)
        now = now or utcnow()
        policy = self.policies.servicedesk()
        check_transition(ticket.status, target, closed_at=ticket.closed_at, now=now, reopen_days=policy.reopen_days)
        before = ticket.status
        ticket.status = target
        if target in (TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS) and ticket.responded_at is None:
            ticket.responded_at = now
        if target == TicketStatus.RESOLVED:
            ticket.resolved_at = now
        elif target == TicketStatus.CLOSED:
            ticket.closed_at = now
        elif target == TicketStatus.IN_PROGRESS and before in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            ticket.resolved_at = None  # reopened: the resolution clock runs again
            ticket.closed_at = None
        ticket.updated_at = now
        self._event(ticket, actor, "transition", from_status=before, to_status=target, body=comment, at=now)
        self.recompute_deadlines(ticket, now=now)
        notify.on_status(self.session, ticket, self.public_url, self.rating_url(ticket))
        self.audit.record(actor, "ticket.transition", target_type="ticket", target_id=ticket.number,
                          before={"status": before}, after={"status": target})
        return ticket

    def assign(self, actor: Actor, ticket: Ticket, *, team: str | None, assignee: User | None,
               version: int | None = None, now: dt.datetime | None = None) -> Ticket:
        self._expect(ticket, version)
        now = now or utcnow()
        if not team and assignee is None:
            raise _fail("team", "give a team or an assignee (to hand a ticket over, assign it to someone else)")
        if assignee is not None and team and assignee.team and assignee.team != team:
            raise _fail("assignee", f"{assignee.username} is not in team {team}")
        changes = {}
        if team != ticket.team:
            changes["team"] = (ticket.team, team)
            ticket.team = team
        if (assignee.id if assignee else None) != ticket.assignee_id:
            changes["assignee"] = (ticket.assignee.username if ticket.assignee else None,
                                   assignee.username if assignee else None)
            ticket.assignee_id = assignee.id if assignee else None
        for field, (old, new) in changes.items():
            self._event(ticket, actor, "field", field=field, old=old, new=new, at=now)
        if "assignee" in changes and assignee is not None:
            self.session.flush()
            self.session.refresh(ticket, ["assignee"])
            notify.on_assigned(self.session, ticket, self.public_url)
        if changes:
            self.audit.record(actor, "ticket.assign", target_type="ticket", target_id=ticket.number,
                              before={k: v[0] for k, v in changes.items()},
                              after={k: v[1] for k, v in changes.items()})
        if ticket.status == TicketStatus.NEW and (team or assignee):
            self.transition(actor, ticket, TicketStatus.ASSIGNED, now=now)
        ticket.updated_at = now
        return ticket

    def update_fields(self, actor: Actor, ticket: Ticket, *, version: int | None = None,
                      now: dt.datetime | None = None, **changes: Any) -> Ticket:
        """Change title, description, category, impact or urgency; the priority follows the matrix and
        the deadlines follow the priority."""
        self._expect(ticket, version)
        now = now or utcnow()
        allowed = {"title", "description", "category", "impact", "urgency"}
        unknown = set(changes) - allowed
        if unknown:
            raise _fail(sorted(unknown)[0], "cannot be changed")
        if "category" in changes and changes["category"] not in {c.value for c in Category}:
            raise _fail("category", f"one of {', '.join(c.value for c in Category)}")
        for name in ("impact", "urgency"):
            if name in changes and (not isinstance(changes[name], int) or not 1 <= changes[name] <= 4):
                raise _fail(name, "a whole number from 1 (highest) to 4")
        before, after = {}, {}
        for field, value in changes.items():
            old = getattr(ticket, field)
            if old != value:
                setattr(ticket, field, value)
                before[field], after[field] = old, value
                self._event(ticket, actor, "field", field=field, old=old, new=value, at=now)
        priority = self.policies.servicedesk().priority(ticket.impact, ticket.urgency)
        if priority != ticket.priority:
            before["priority"], after["priority"] = ticket.priority, priority
            self._event(ticket, actor, "field", field="priority", old=ticket.priority, new=priority, at=now)
            ticket.priority = priority
            self.recompute_deadlines(ticket, now=now)
        if after:
            ticket.updated_at = now
            self.audit.record(actor, "ticket.update", target_type="ticket", target_id=ticket.number,
                              before=before, after=after)
        return ticket

    def comment(self, actor: Actor, ticket: Ticket, body: str, *, internal: bool = False,
                kind: str = "comment", now: dt.datetime | None = None) -> TicketEvent:
        body = (body or "").strip()
        if not body:
            raise _fail("body", "must not be empty")
        if len(body) > 20000:
            raise _fail("body", "at most 20,000 characters")
        now = now or utcnow()
        event = self._event(ticket, actor, kind, body=body, internal=internal or kind == "worklog", at=now)
        ticket.updated_at = now
        if not event.internal:
            notify.on_comment(self.session, ticket, actor.username, body, self.public_url)
        self.audit.record(actor, f"ticket.{kind}", target_type="ticket", target_id=ticket.number,
                          after={"internal": event.internal, "length": len(body)})
        return event

    def link(self, actor: Actor, ticket: Ticket, target_type: str, target_id: str) -> TicketLink:
        link = self._link(ticket, actor, target_type, target_id)
        self.audit.record(actor, "ticket.link", target_type="ticket", target_id=ticket.number,
                          after={"type": target_type, "id": target_id})
        return link

    def _link(self, ticket: Ticket, actor: Actor, target_type: str, target_id: str) -> TicketLink:
        if target_type not in LINK_TYPES:
            raise _fail("link", f"type must be one of {', '.join(LINK_TYPES)}")
        existing = self.session.execute(select(TicketLink).where(
            TicketLink.ticket_id == ticket.id, TicketLink.target_type == target_type,
            TicketLink.target_id == str(target_id))).scalar()
        if existing is not None:
            return existing
        link = TicketLink(ticket_id=ticket.id, target_type=target_type, target_id=str(target_id),
                          created_by=actor.username)
        self.session.add(link)
        self._event(ticket, actor, "link", field=target_type, new=str(target_id))
        return link

    def _event(self, ticket: Ticket, actor: Actor, kind: str, *, from_status: str | None = None,
               to_status: str | None = None, field: str | None = None, old: Any = None, new: Any = None,
               body: str | None = None, internal: bool = False, at: dt.datetime | None = None) -> TicketEvent:
        ev = TicketEvent(ticket_id=ticket.id, at=at or utcnow(), actor=actor.username, kind=kind,
                         from_status=from_status, to_status=to_status, field=field,
                         old_value=None if old is None else str(old), new_value=None if new is None else str(new),
                         body=body, internal=internal)
        self.session.add(ev)
        return ev

    def history(self, ticket: Ticket, *, include_internal: bool = True) -> list[TicketEvent]:
        q = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
        if not include_internal:
            q = q.where(TicketEvent.internal.is_(False))
        return list(self.session.execute(q.order_by(TicketEvent.at, TicketEvent.id)).scalars())

    def links(self, ticket: Ticket) -> list[TicketLink]:
        return list(self.session.execute(select(TicketLink).where(TicketLink.ticket_id == ticket.id)
                                         .order_by(TicketLink.id)).scalars())

    def can_work(self, user: User, ticket: Ticket) -> bool:
        if user.role not in WORKERS:
            return False
        return user.role != Role.VENDOR_ENGINEER or (user.team is not None and ticket.team == user.team)

    def rating_url(self, ticket: Ticket) -> str | None:
        """The signed link of the "resolved" e-mail where the requester rates the resolution."""
        if ticket.status != TicketStatus.RESOLVED or ticket.requester_id is None or self._secret_key is None:
            return None
        from .ratings import rating_token

        return f"{self.public_url.rstrip('/')}/servicedesk/rate/{rating_token(ticket, self._secret_key())}"

    def can_file_for_others(self, user: User) -> bool:
        return user.role in (Role.ADMIN, Role.DESK_AGENT)

    def require_transition_right(self, user: User, ticket: Ticket, target: str) -> None:
        """Workers move tickets through every state; a requester (or anyone else who may see it) can
        cancel a ticket nobody works on yet, close a resolved one, or reopen it."""
        if self.can_work(user, ticket):
            return
        own = ticket.requester_id == user.id
        allowed = (target == TicketStatus.CANCELED and ticket.status in (TicketStatus.NEW, TicketStatus.ASSIGNED)
                   or target == TicketStatus.CLOSED and ticket.status == TicketStatus.RESOLVED
                   or target == TicketStatus.IN_PROGRESS and ticket.status in (TicketStatus.RESOLVED,
                                                                                TicketStatus.CLOSED))
        if not (own and allowed):
            raise PermissionDenied("requesters may cancel, close or reopen their own tickets; the desk does the rest")

    def require_worker(self, user: User, ticket: Ticket) -> None:
        if not self.can_work(user, ticket):
            raise PermissionDenied("only the desk and the assigned team work this ticket")

    # SLA -----------------------------------------------------------------------------------
    def pauses(self, ticket: Ticket) -> list[tuple[dt.datetime, dt.datetime | None]]:
        """Intervals the ticket spent pending (the last one open while it still is)."""
        from .sla_store import pauses_of

        return pauses_of(self.session, [ticket.id]).get(ticket.id, [])

    def recompute_deadlines(self, ticket: Ticket, *, now: dt.datetime | None = None) -> None:
        """Response and resolution deadlines from the SLA policy, the calendar and the pauses."""
        from .sla_store import deadlines

        deadlines(self, ticket)


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def ticket_dict(t: Ticket, *, history: list[Any] | None = None, links: list[Any] | None = None) -> dict[str, Any]:
    out = {"number": t.number, "id": t.id, "type": t.type, "status": t.status, "title": t.title,
           "description": t.description, "category": t.category, "impact": t.impact, "urgency": t.urgency,
           "priority": t.priority, "site": t.site.code, "site_name": t.site.name,
           "requester": t.requester.username if t.requester else None, "requester_name": t.requester_name,
           "team": t.team, "assignee": t.assignee.username if t.assignee else None, "source": t.source,
           "created_at": _iso(t.created_at), "updated_at": _iso(t.updated_at), "responded_at": _iso(t.responded_at),
           "resolved_at": _iso(t.resolved_at), "closed_at": _iso(t.closed_at),
           "response_due": _iso(t.response_due), "resolve_due": _iso(t.resolve_due),
           "due_estimated": t.due_estimated, "breached": t.response_breached or t.resolve_breached,
           "response_breached": t.response_breached, "resolve_breached": t.resolve_breached, "version": t.version}
    if history is not None:
        out["history"] = [{"at": _iso(e.at), "actor": e.actor, "kind": e.kind, "from": e.from_status,
                           "to": e.to_status, "field": e.field, "old": e.old_value, "new": e.new_value,
                           "body": e.body, "internal": e.internal} for e in history]
    if links is not None:
        out["links"] = [{"type": x.target_type, "id": x.target_id} for x in links]
    return out
