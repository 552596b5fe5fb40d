"""Service-desk teams: internal and vendor teams, their contracts (OLA targets), the routing of new
tickets (category × requester province → team), the on-duty roster, and the SLA bookkeeping tables
(warning/breach state per ticket, the notification outbox).

A team's ``name`` is the string stored in ``users.team`` and ``tickets.team`` (the vendor-team
visibility rule of :class:`~ecocloud_ops.servicedesk.service.TicketService` compares them), so it
never changes once created; the Chinese ``display_name`` is what people read.

Routing precedence, most specific first: exact category and province, then category with any province
(``*``), then any category with the province, then ``*``/``*``. At most one rule per (category,
province) pair, so the choice is deterministic.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from ..audit.service import Actor, AuditLog
from ..auth.models import User
from ..db import Base, UTCDateTime, utcnow
from ..errors import Conflict, NotFound, ValidationFailed
from ..sites.models import Site, Tier
from .models import Category, Ticket, TicketStatus

if TYPE_CHECKING:
    from .service import TicketService

ANY = "*"
PRIORITIES = ("P1", "P2", "P3", "P4")
#: The actor of automatic routing in the ticket history and the audit log.
ROUTER = Actor("auto-routing", channel="system")
#: The longest on-duty shift accepted (a data-entry guard, not a labour rule).
MAX_SHIFT = dt.timedelta(days=31)
_NAME_RE = re.compile(r"^[\w.-]{1,64}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class TeamKind(enum.StrEnum):
    INTERNAL = "internal"
    VENDOR = "vendor"


class NotificationKind(enum.StrEnum):
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"
    ESCALATION = "escalation"
    UNASSIGNED = "unassigned"
    OUT_OF_HOURS = "out_of_hours"


# --------------------------------------------------------------------------------------------------
# Models


class Team(Base):
    """An assignment group: an internal team or a vendor's team."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The same string as ``users.team`` and ``tickets.team``; never renamed.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), default=TeamKind.INTERNAL)
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: The team a ticket is raised to when it breaches its SLA.
    escalation_team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    email: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    leader: Mapped[User | None] = relationship(lazy="joined")
    escalation_team: Mapped[Team | None] = relationship(remote_side=[id])


class VendorContract(Base):
    """A team's contract: vendor company, validity, covered categories, OLA targets per priority."""

    __tablename__ = "vendor_contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    vendor: Mapped[str] = mapped_column(String(200))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date] = mapped_column(Date)
    #: Ticket categories the contract covers.
    categories: Mapped[list] = mapped_column(JSON, default=list)
    #: {"P1": {"response_minutes": 15, "resolve_minutes": 240}, ...}
    ola: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    team: Mapped[Team] = relationship(lazy="joined")


class RoutingRule(Base):
    """Category (or ``*``) × requester province code (or ``*``) → team."""

    __tablename__ = "routing_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(24))
    province: Mapped[str] = mapped_column(String(6))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    team: Mapped[Team] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("category", "province"),)


class RosterShift(Base):
    """Who is on duty for a team from ``starts_at`` (inclusive) to ``ends_at`` (exclusive)."""

    __tablename__ = "roster_shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    team: Mapped[Team] = relationship(lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (Index("ix_roster_shifts_team_time", "team_id", "starts_at", "ends_at"),)


class TicketSlaState(Base):
    """What the SLA watch already did for a ticket, so that nothing is sent or raised twice."""

    __tablename__ = "ticket_sla_states"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True, autoincrement=False)
    response_warned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolve_warned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    response_breached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolve_breached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    unassigned_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    out_of_hours_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Notification(Base):
    """Outbox of notifications, written in the transaction that decided them; a sender drains it
    (``sent_at`` stays null until delivered)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    #: Usernames.
    recipients: Mapped[list] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)


# --------------------------------------------------------------------------------------------------
# Service


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


def _aware(value: dt.datetime, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise _fail(field, "a date and time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(field, "needs a time zone offset")
    return value.astimezone(dt.UTC)


def province_of(site_path: str) -> str | None:
    """The province code of a site's materialized path (``000000/130000/130100/`` → ``130000``);
    None for the ministry itself."""
    parts = [p for p in (site_path or "").split("/") if p]
    return parts[1] if len(parts) > 1 else None


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def contract_for(session: Session, team: str, first_day: dt.date,
                 last_day: dt.date | None = None) -> VendorContract | None:
    """The team's contract valid on some day of ``[first_day, last_day]`` (one day when last_day is
    None); when several are, the one that started last."""
    last_day = last_day or first_day
    return session.execute(
        select(VendorContract).join(Team, VendorContract.team_id == Team.id)
        .where(Team.name == team, VendorContract.valid_from <= last_day, VendorContract.valid_to >= first_day)
        .order_by(VendorContract.valid_from.desc(), VendorContract.id.desc()).limit(1)).scalar()


class TeamService:
    """Teams, contracts, routing rules and the roster; every change is audited."""

    def __init__(self, session: Session, audit: AuditLog) -> None:
        self.session = session
        self.audit = audit

    # Teams ---------------------------------------------------------------------------------
    def teams(self) -> list[Team]:
        return list(self.session.execute(select(Team).order_by(Team.name)).scalars())

    def find(self, name: str | None) -> Team | None:
        if not name:
            return None
        return self.session.execute(select(Team).where(Team.name == name)).scalar_one_or_none()

    def get(self, name: str) -> Team:
        team = self.find(name)
        if team is None:
            raise NotFound(f"no team {name}")
        return team

    def _user(self, username: str, field: str) -> User:
        user = self.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None or not user.is_active:
            raise _fail(field, f"no active user {username}")
        return user

    def _apply(self, team: Team, changes: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Validate and apply team fields; returns field -> (old, new) as shown in the audit log."""
        done: dict[str, tuple[Any, Any]] = {}
        for field, value in changes.items():
            if field == "display_name":
                value = (value or "").strip()
                if not 1 <= len(value) <= 100:
                    raise _fail("display_name", "1 to 100 characters")
                old: Any = team.display_name
                team.display_name = value
            elif field == "kind":
                if value not in {k.value for k in TeamKind}:
                    raise _fail("kind", "internal or vendor")
                old, team.kind = team.kind, value
            elif field == "email":
                value = (value or "").strip()
                if value and (len(value) > 200 or not _EMAIL_RE.match(value)):
                    raise _fail("email", "an e-mail address")
                old, team.email = team.email, value
            elif field == "leader":
                leader = self._user(value, "leader") if value else None
                old = team.leader.username if team.leader else None
                team.leader_id, team.leader = (leader.id if leader else None), leader
                value = leader.username if leader else None
            elif field == "escalation_team":
                target = self.get(value) if value else None
                if target is not None and target.name == team.name:
                    raise _fail("escalation_team", "a team cannot escalate to itself")
                old = team.escalation_team.name if team.escalation_team else None
                team.escalation_team_id, team.escalation_team = (target.id if target else None), target
                value = target.name if target else None
            else:
                raise _fail(field, "cannot be changed")
            if old != value:
                done[field] = (old, value)
        return done

    def create_team(self, actor: Actor, *, name: str, display_name: str, kind: str = TeamKind.INTERNAL,
                    leader: str | None = None, escalation_team: str | None = None, email: str = "") -> Team:
        name = (name or "").strip()
        if not _NAME_RE.match(name):
            raise _fail("name", "1 to 64 letters, digits, '.', '_' or '-'")
        if self.find(name) is not None:
            raise Conflict(f"team {name} exists")
        team = Team(name=name, display_name="", kind=TeamKind.INTERNAL, email="")
        self._apply(team, {"display_name": display_name, "kind": kind, "email": email, "leader": leader,
                           "escalation_team": escalation_team})
        self.session.add(team)
        self.session.flush()
        self.audit.record(actor, "team.create", target_type="team", target_id=name, after=team_dict(team))
        return team

    def update_team(self, actor: Actor, name: str, **changes: Any) -> Team:
        """Change display_name, kind, leader (username or None), escalation_team (name or None), email."""
        team = self.get(name)
        done = self._apply(team, changes)
        if done:
            team.updated_at = utcnow()
            self.audit.record(actor, "team.update", target_type="team", target_id=name,
                              before={k: v[0] for k, v in done.items()}, after={k: v[1] for k, v in done.items()})
        return team

    def delete_team(self, actor: Actor, name: str) -> None:
        """Remove a team nothing refers to any more (rules, contracts, escalations, open tickets);
        its roster goes with it."""
        team = self.get(name)
        uses = []
        if self.session.execute(select(RoutingRule.id).where(RoutingRule.team_id == team.id)).first():
            uses.append("routing rules")
        if self.session.execute(select(VendorContract.id).where(VendorContract.team_id == team.id)).first():
            uses.append("contracts")
        if self.session.execute(select(Team.id).where(Team.escalation_team_id == team.id)).first():
            uses.append("other teams' escalation")
        if self.session.execute(select(Ticket.id).where(Ticket.team == name, Ticket.status.notin_(
                [TicketStatus.CLOSED, TicketStatus.CANCELED]))).first():
            uses.append("open tickets")
        if uses:
            raise Conflict(f"team {name} is still used by {', '.join(uses)}")
        before = team_dict(team)
        for shift in self.session.execute(select(RosterShift).where(RosterShift.team_id == team.id)).scalars():
            self.session.delete(shift)
        self.session.delete(team)
        self.session.flush()
        self.audit.record(actor, "team.delete", target_type="team", target_id=name, before=before)

    # Contracts -----------------------------------------------------------------------------
    def _contract_fields(self, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in ("name", "vendor"):
            if field in values:
                text = (values[field] or "").strip()
                if not 1 <= len(text) <= 200:
                    raise _fail(field, "1 to 200 characters")
                out[field] = text
        for field in ("valid_from", "valid_to"):
            if field in values:
                value = values[field]
                if isinstance(value, str):
                    try:
                        value = dt.date.fromisoformat(value)
                    except ValueError as exc:
                        raise _fail(field, "a date YYYY-MM-DD") from exc
                if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
                    raise _fail(field, "a date YYYY-MM-DD")
                out[field] = value
        if "categories" in values:
            cats = list(values["categories"] or [])
            known = {c.value for c in Category}
            bad = [c for c in cats if c not in known]
            if bad:
                raise _fail("categories", f"unknown {', '.join(map(str, bad))}; use {', '.join(sorted(known))}")
            out["categories"] = sorted(set(cats))
        if "ola" in values:
            ola: dict[str, dict[str, int]] = {}
            for priority, target in (values["ola"] or {}).items():
                if priority not in PRIORITIES or not isinstance(target, dict):
                    raise _fail("ola", f"keys are {', '.join(PRIORITIES)}, values {{response_minutes, "
                                       "resolve_minutes}")
                entry = {}
                for key in ("response_minutes", "resolve_minutes"):
                    minutes = target.get(key)
                    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 60 * 24 * 120:
                        raise _fail("ola", f"{priority}.{key}: whole minutes from 1 to 172800")
                    entry[key] = minutes
                if set(target) - {"response_minutes", "resolve_minutes"}:
                    raise _fail("ola", f"{priority}: only response_minutes and resolve_minutes")
                ola[priority] = entry
            out["ola"] = ola
        return out

    def add_contract(self, actor: Actor, team: str, *, name: str, vendor: str, valid_from: dt.date | str,
                     valid_to: dt.date | str, categories: list[str] | None = None,
                     ola: dict[str, dict[str, int]] | None = None) -> VendorContract:
        t = self.get(team)
        fields = self._contract_fields({"name": name, "vendor": vendor, "valid_from": valid_from,
                                        "valid_to": valid_to, "categories": categories or [], "ola": ola or {}})
        if fields["valid_to"] < fields["valid_from"]:
            raise _fail("valid_to", "not before valid_from")
        contract = VendorContract(team_id=t.id, team=t, **fields)
        self.session.add(contract)
        self.session.flush()
        self.audit.record(actor, "team.contract.create", target_type="team", target_id=t.name,
                          after=contract_dict(contract))
        return contract

    def get_contract(self, contract_id: int) -> VendorContract:
        contract = self.session.get(VendorContract, contract_id)
        if contract is None:
            raise NotFound(f"no contract {contract_id}")
        return contract

    def update_contract(self, actor: Actor, contract_id: int, **changes: Any) -> VendorContract:
        contract = self.get_contract(contract_id)
        unknown = set(changes) - {"name", "vendor", "valid_from", "valid_to", "categories", "ola"}
        if unknown:
            raise _fail(sorted(unknown)[0], "cannot be changed")
        fields = self._contract_fields(changes)
        valid_from = fields.get("valid_from", contract.valid_from)
        if fields.get("valid_to", contract.valid_to) < valid_from:
            raise _fail("valid_to", "not before valid_from")
        before = contract_dict(contract)
        for k, v in fields.items():
            setattr(contract, k, v)
        after = contract_dict(contract)
        if after != before:
            self.audit.record(actor, "team.contract.update", target_type="team", target_id=contract.team.name,
                              before={k: v for k, v in before.items() if after[k] != v},
                              after={k: v for k, v in after.items() if before[k] != v})
        return contract

    def delete_contract(self, actor: Actor, contract_id: int) -> None:
        contract = self.get_contract(contract_id)
        before = contract_dict(contract)
        self.session.delete(contract)
        self.session.flush()
        self.audit.record(actor, "team.contract.delete", target_type="team", target_id=before["team"],
                          before=before)

    def contracts(self, team: str | None = None) -> list[VendorContract]:
        q = select(VendorContract)
        if team is not None:
            q = q.where(VendorContract.team_id == self.get(team).id)
        return list(self.session.execute(q.order_by(VendorContract.team_id, VendorContract.valid_from,
                                                    VendorContract.id)).scalars())

    def contract_for(self, team: str, first_day: dt.date, last_day: dt.date | None = None) -> VendorContract | None:
        """The team's contract valid on some day of ``[first_day, last_day]`` (see :func:`contract_for`)."""
        return contract_for(self.session, team, first_day, last_day)

    # Routing -------------------------------------------------------------------------------
    def rules(self) -> list[RoutingRule]:
        return list(self.session.execute(select(RoutingRule).order_by(RoutingRule.category,
                                                                      RoutingRule.province)).scalars())

    def set_rule(self, actor: Actor, *, category: str, province: str, team: str) -> RoutingRule:
        """Route ``category`` (or ``*``) from ``province`` (a province code, or ``*``) to ``team``;
        replaces the rule of the same pair."""
        category = (category or "").strip() or ANY
        province = (province or "").strip() or ANY
        if category != ANY and category not in {c.value for c in Category}:
            raise _fail("category", f"* or one of {', '.join(c.value for c in Category)}")
        if province != ANY and self.session.execute(select(Site.id).where(
                Site.code == province, Site.tier == Tier.PROVINCE)).first() is None:
            raise _fail("province", f"* or a province code; {province} is not one")
        t = self.get(team)
        rule = self.session.execute(select(RoutingRule).where(RoutingRule.category == category,
                                                              RoutingRule.province == province)).scalar()
        before = rule_dict(rule) if rule else None
        if rule is None:
            rule = RoutingRule(category=category, province=province, team_id=t.id, team=t)
            self.session.add(rule)
        else:
            rule.team_id, rule.team = t.id, t
        self.session.flush()
        if before != rule_dict(rule):
            self.audit.record(actor, "team.rule.set", target_type="routing_rule", target_id=f"{category}/{province}",
                              before=before, after=rule_dict(rule))
        return rule

    def delete_rule(self, actor: Actor, rule_id: int) -> None:
        rule = self.session.get(RoutingRule, rule_id)
        if rule is None:
            raise NotFound(f"no routing rule {rule_id}")
        before = rule_dict(rule)
        self.session.delete(rule)
        self.session.flush()
        self.audit.record(actor, "team.rule.delete", target_type="routing_rule",
                          target_id=f"{rule.category}/{rule.province}", before=before)

    def route(self, category: str, site_path: str) -> Team | None:
        """The team for a ticket of ``category`` from the site at ``site_path``: the most specific
        rule wins (category+province, category+*, *+province, *+*); None when no rule applies."""
        province = province_of(site_path)
        provinces = [province, ANY] if province else [ANY]
        rules = {(r.category, r.province): r for r in self.session.execute(select(RoutingRule).where(
            RoutingRule.category.in_([category, ANY]), RoutingRule.province.in_(provinces))).scalars()}
        for key in ((category, province), (category, ANY), (ANY, province), (ANY, ANY)):
            if key in rules:
                return rules[key].team
        return None

    # Roster --------------------------------------------------------------------------------
    def add_shift(self, actor: Actor, team: str, username: str, starts_at: dt.datetime,
                  ends_at: dt.datetime) -> RosterShift:
        t = self.get(team)
        user = self._user(username, "username")
        if user.team and user.team != t.name:
            raise _fail("username", f"{username} is in team {user.team}, not {t.name}")
        start, end = _aware(starts_at, "starts_at"), _aware(ends_at, "ends_at")
        if end <= start:
            raise _fail("ends_at", "after starts_at")
        if end - start > MAX_SHIFT:
            raise _fail("ends_at", "a shift lasts at most 31 days")
        clash = self.session.execute(select(RosterShift.id).where(
            RosterShift.team_id == t.id, RosterShift.user_id == user.id, RosterShift.starts_at < end,
            RosterShift.ends_at > start)).first()
        if clash is not None:
            raise Conflict(f"{username} already has a {t.name} shift overlapping that time")
        shift = RosterShift(team_id=t.id, team=t, user_id=user.id, user=user, starts_at=start, ends_at=end)
        self.session.add(shift)
        self.session.flush()
        self.audit.record(actor, "team.shift.create", target_type="team", target_id=t.name, after=shift_dict(shift))
        return shift

    def delete_shift(self, actor: Actor, shift_id: int) -> None:
        shift = self.session.get(RosterShift, shift_id)
        if shift is None:
            raise NotFound(f"no shift {shift_id}")
        before = shift_dict(shift)
        self.session.delete(shift)
        self.session.flush()
        self.audit.record(actor, "team.shift.delete", target_type="team", target_id=before["team"], before=before)

    def shifts(self, team: str, start: dt.datetime, end: dt.datetime) -> list[RosterShift]:
        """The team's shifts overlapping ``[start, end)``, by start."""
        t = self.get(team)
        return list(self.session.execute(select(RosterShift).where(
            RosterShift.team_id == t.id, RosterShift.starts_at < _aware(end, "end"),
            RosterShift.ends_at > _aware(start, "start")).order_by(RosterShift.starts_at, RosterShift.id)).scalars())

    def on_duty(self, team: str, at: dt.datetime) -> list[str]:
        """Usernames on duty for ``team`` at ``at`` (active accounts only), sorted; [] for an unknown team."""
        at = _aware(at, "at")
        rows = self.session.execute(
            select(User.username).join(RosterShift, RosterShift.user_id == User.id)
            .join(Team, RosterShift.team_id == Team.id)
            .where(Team.name == team, RosterShift.starts_at <= at, RosterShift.ends_at > at,
                   User.is_active.is_(True))).scalars()
        return sorted(set(rows))


# --------------------------------------------------------------------------------------------------
# Routing hook of TicketService.create


def route_new_ticket(tickets: TicketService, actor: Actor, ticket: Ticket, now: dt.datetime | None = None) -> None:
    """Give a new ticket without a team the team its routing rules name (a "field" event and an
    audit entry, status new → assigned, recorded as done by :data:`ROUTER`), then tell the on-duty
    engineers about it if it came in outside working hours.

    Automatic routing is not a response: the response clock keeps running until a person takes
    the ticket up (``responded_at`` stays empty)."""
    from .sla_watch import notify_out_of_hours

    now = now or utcnow()
    if not ticket.team:
        site = tickets.session.get(Site, ticket.site_id)
        team = TeamService(tickets.session, tickets.audit).route(ticket.category, site.path if site else "")
        if team is not None:
            responded = ticket.responded_at
            tickets.assign(ROUTER, ticket, team=team.name, assignee=None, now=now)
            ticket.responded_at = responded
    notify_out_of_hours(tickets, ticket, now)


# --------------------------------------------------------------------------------------------------
# Dicts (API / console)


def team_dict(t: Team) -> dict[str, Any]:
    return {"name": t.name, "display_name": t.display_name, "kind": t.kind,
            "leader": t.leader.username if t.leader else None,
            "escalation_team": t.escalation_team.name if t.escalation_team else None, "email": t.email}


def contract_dict(c: VendorContract) -> dict[str, Any]:
    return {"id": c.id, "team": c.team.name, "name": c.name, "vendor": c.vendor,
            "valid_from": c.valid_from.isoformat(), "valid_to": c.valid_to.isoformat(),
            "categories": list(c.categories or []), "ola": dict(c.ola or {})}


def rule_dict(r: RoutingRule) -> dict[str, Any]:
    return {"id": r.id, "category": r.category, "province": r.province, "team": r.team.name}


def shift_dict(s: RosterShift) -> dict[str, Any]:
    return {"id": s.id, "team": s.team.name, "username": s.user.username, "starts_at": _iso(s.starts_at),
            "ends_at": _iso(s.ends_at)}


def notification_dict(n: Notification) -> dict[str, Any]:
    return {"id": n.id, "at": _iso(n.at), "kind": n.kind, "ticket_id": n.ticket_id,
            "recipients": list(n.recipients or []), "subject": n.subject, "body": n.body, "sent_at": _iso(n.sent_at)}
