"""Incidents opened and resolved by the system from network outages.

After each poll cycle the worker calls :func:`open_and_close_incidents`, which works in short
transactions of its own:

1. **Open.** An open outage of a site's link (an uplink device ``down``, cause ``own``) that started at
   least ``threshold`` ago and has no ticket yet gets an incident (category network fault, impact by the
   site's tier, urgency 1, requester the system) linked to the outage, the site and the device; the
   outage keeps the ticket number, so the monthly report lists it. Outages of devices under a failed
   site are ``unknown`` and never get one: one incident for the failing tier. A flapping link is one
   outage record, hence one incident. Generated (demo) history, disabled or retired devices and sites
   in a maintenance window get none. When the device still has an open incident from an earlier
   outage (it turned ``unknown`` under a failed parent, then ``down`` again after the flap window), the
   new outage joins that incident instead of opening a second one.
2. **Reopen.** An outage whose incident was resolved (or closed) before the outage's current down
   period began — a link that came back, was resolved, and flapped again within the flap window —
   reopens that incident with a comment instead of opening a new one.
3. **Resolve.** An incident whose outages have all ended, on devices that answer again (no open
   outage of any status: a link that turned ``unknown`` is not known to be back), gets a comment
   with the outage's duration and is moved through the state machine to resolved.

Two workers never open two incidents for one outage: the outage is claimed with a conditional
``UPDATE … WHERE ticket_number IS NULL`` as the first statement of the transaction that creates the
ticket (PostgreSQL row lock; SQLite ``BEGIN IMMEDIATE``), and tickets are locked before they are
resolved or reopened. Everything goes through :class:`~.service.TicketService`, which audits it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from ..audit.service import Actor
from ..auth.scope import Scope
from ..errors import InvalidTransition
from ..network.history import SHANGHAI
from ..network.models import Cause, Device, DeviceRole, DeviceStatus, MaintenanceWindow, Outage
from ..network.rates import link_tier
from ..sites.models import Site, Tier
from .models import Category, Ticket, TicketStatus, TicketType
from .states import check_transition

if TYPE_CHECKING:
    from ..bootstrap import Container, Services

log = logging.getLogger(__name__)

#: How long a link must have been down before an incident is opened (the worker passes the
#: ``auto_incident_minutes`` setting).
DEFAULT_THRESHOLD = dt.timedelta(minutes=5)
ACTOR = Actor("system:auto-incident", channel="system")
REQUESTER_NAME = "系统（网络监测）"
SOURCE = "auto"
#: Statuses in which someone (or the system) still works the ticket.
OPEN = (TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.PENDING)
#: Held in ``outages.ticket_number`` only inside the transaction that creates the ticket.
_CLAIM = "claiming"
#: Impact by the tier of the site whose link failed (1 is the highest).
IMPACT: dict[str, int] = {Tier.MINISTRY: 1, Tier.PROVINCE: 1, Tier.CITY: 2, Tier.COUNTY: 3}
LINK_LABEL = {"ministry_province": "部→省", "province_city": "省→市", "city_county": "市→县"}
#: The steps from an open status to resolved (the state machine allows no shortcut).
_TO_RESOLVED = {
    TicketStatus.NEW: (TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.RESOLVED),
    TicketStatus.ASSIGNED: (TicketStatus.IN_PROGRESS, TicketStatus.RESOLVED),
    TicketStatus.IN_PROGRESS: (TicketStatus.RESOLVED,),
    TicketStatus.PENDING: (TicketStatus.RESOLVED,),
}


@dataclass
class IncidentSummary:
    """What one call did, by ticket number."""

    opened: list[str] = field(default_factory=list)
    #: Outages that joined an incident still open for the same device.
    joined: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"opened": list(self.opened), "joined": list(self.joined), "reopened": list(self.reopened),
                "resolved": list(self.resolved), "errors": self.errors}


def open_and_close_incidents(container: Container, now: dt.datetime,
                             threshold: dt.timedelta = DEFAULT_THRESHOLD) -> IncidentSummary:
    """Open incidents for links down longer than ``threshold``, reopen those of links that flapped again
    and resolve those of links that are back. Each ticket in its own transaction: one failure is logged
    and counted, and the others go on."""
    summary = IncidentSummary()
    with container.unit_of_work() as svc:
        due = _due_outages(svc.session, now, threshold)
    for outage_id in due:
        try:
            with container.unit_of_work() as svc:
                outcome = _open_one(svc, outage_id, now, threshold)
        except Exception:
            log.exception("could not open an incident for outage %s", outage_id)
            summary.errors += 1
            continue
        if outcome is not None:
            (summary.opened if outcome[0] == "opened" else summary.joined).append(outcome[1])

    with container.unit_of_work() as svc:
        reflapped = _reflapped(svc.session)
    for outage_id, ticket_id in reflapped:
        try:
            with container.unit_of_work() as svc:
                number = _reopen_one(svc, outage_id, ticket_id, now)
        except Exception:
            log.exception("could not reopen ticket %s for outage %s", ticket_id, outage_id)
            summary.errors += 1
            continue
        if number is not None:
            summary.reopened.append(number)

    with container.unit_of_work() as svc:
        recovered = _recovered(svc.session)
    for ticket_id in recovered:
        try:
            with container.unit_of_work() as svc:
                number = _resolve_one(svc, ticket_id, now)
        except Exception:
            log.exception("could not resolve ticket %s", ticket_id)
            summary.errors += 1
            continue
        if number is not None:
            summary.resolved.append(number)

    if summary.opened or summary.joined or summary.reopened or summary.resolved or summary.errors:
        log.info("automatic incidents: %s", summary.as_dict())
    return summary


# Queries ---------------------------------------------------------------------------------------
def _due_outages(session: Session, now: dt.datetime, threshold: dt.timedelta) -> list[int]:
    """Open outages of site links, down on their own for at least ``threshold``, without a ticket."""
    in_maintenance = exists().where(
        MaintenanceWindow.site_id == Outage.site_id,
        or_(MaintenanceWindow.device_id.is_(None), MaintenanceWindow.device_id == Outage.device_id),
        MaintenanceWindow.started_at <= now, MaintenanceWindow.ended_at > now)
    q = (select(Outage.id).join(Device, Device.id == Outage.device_id)
         .where(Outage.ended_at.is_(None), Outage.ticket_number.is_(None), Outage.status == DeviceStatus.DOWN,
                Outage.cause == Cause.OWN, Outage.demo.is_(False), Outage.started_at <= now - threshold,
                Device.role == DeviceRole.UPLINK, Device.enabled.is_(True), Device.retired_at.is_(None),
                ~in_maintenance)
         .order_by(Outage.started_at, Outage.id))
    return list(session.execute(q).scalars())


def _reflapped(session: Session) -> list[tuple[int, int]]:
    """(outage, ticket) of open outages whose ticket is resolved or closed."""
    q = (select(Outage.id, Ticket.id).join(Ticket, Ticket.number == Outage.ticket_number)
         .where(Outage.ended_at.is_(None), Ticket.status.in_([TicketStatus.RESOLVED, TicketStatus.CLOSED]))
         .order_by(Outage.id))
    return [(o, t) for o, t in session.execute(q).all()]


def _recovered(session: Session) -> list[int]:
    """Open tickets with an ended outage (whether all their outages ended is checked under the lock)."""
    q = (select(Ticket.id).join(Outage, Outage.ticket_number == Ticket.number)
         .where(Ticket.status.in_(OPEN), Outage.ended_at.is_not(None)).distinct().order_by(Ticket.id))
    return list(session.execute(q).scalars())


def _lock_ticket(session: Session, ticket_id: int) -> Ticket | None:
    """The ticket, its row locked until the transaction ends (PostgreSQL; SQLite writes one at a time)."""
    locked = session.execute(select(Ticket.id).where(Ticket.id == ticket_id).with_for_update()).scalar()
    return session.get(Ticket, locked) if locked is not None else None


# Texts -----------------------------------------------------------------------------------------
def local_time(at: dt.datetime) -> str:
    """``2026-11-01 10:01:00（北京时间）``: Asia/Shanghai wall-clock time, marked as such."""
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S（北京时间）")


def duration_text(seconds: float) -> str:
    """``1小时5分12秒``; ``2天3小时0分0秒`` beyond a day."""
    s = max(0, round(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    text = f"{minutes}分{s}秒"
    if hours or days:
        text = f"{hours}小时{text}"
    if days:
        text = f"{days}天{text}"
    return text


def _link_label(site: Site) -> str:
    parent = site.parent
    label = LINK_LABEL.get(link_tier(parent.tier) or "") if parent is not None else None
    return f"{label}链路" if label else "链路"


def _down_seconds(outage: Outage, now: dt.datetime) -> float:
    """Seconds the link was down: its periods added up (the time between flaps is up time)."""
    periods = outage.periods or []
    if not periods:
        return ((outage.ended_at or now) - outage.started_at).total_seconds()
    return sum(((p.ended_at or now) - p.started_at).total_seconds() for p in periods)


def incident_title(site: Site, device: Device) -> str:
    """``网络中断：河北省（130000）部→省链路 hb-core-01``."""
    return f"网络中断：{site.name}（{site.code}）{_link_label(site)} {device.hostname}"[:200]


def incident_description(site: Site, device: Device, outage: Outage, now: dt.datetime,
                         threshold: dt.timedelta) -> str:
    """Where, since when, which device and its last error, in the users' language."""
    lines = [
        f"网络监测发现 {site.name}（{site.code}）的{_link_label(site)}中断已超过 "
        f"{duration_text(threshold.total_seconds())}，系统自动创建本事件单。",
        f"站点：{site.name}（{site.code}）",
        f"设备：{device.hostname}（管理地址 {device.address}）",
        f"中断开始：{local_time(outage.started_at)}",
        f"已中断：{duration_text(_down_seconds(outage, now))}",
        f"最近一次错误：{device.last_error or '无'}",
    ]
    if outage.flap_count:
        lines.append(f"闪断：该链路已反复中断 {outage.flap_count + 1} 次（同一次中断记录）。")
    lines.append("因本链路中断而不可达的下级站点记为状态未知，不另建单。链路恢复后系统将自动添加说明并解决本单。")
    return "\n".join(lines)


# Steps -----------------------------------------------------------------------------------------
def _open_one(svc: Services, outage_id: int, now: dt.datetime,
              threshold: dt.timedelta) -> tuple[str, str] | None:
    """Claim the outage and open (or join) its incident; None when another worker got it first."""
    session = svc.session
    result = session.execute(
        update(Outage).where(Outage.id == outage_id, Outage.ticket_number.is_(None), Outage.ended_at.is_(None))
        .values(ticket_number=_CLAIM).execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 0) != 1:
        return None
    outage = session.get(Outage, outage_id)
    assert outage is not None
    device = outage.device
    site = session.get(Site, outage.site_id)
    assert site is not None
    earlier = session.execute(
        select(Ticket).join(Outage, Outage.ticket_number == Ticket.number)
        .where(Outage.device_id == outage.device_id, Outage.id != outage.id, Ticket.status.in_(OPEN))
        .order_by(Ticket.id.desc()).limit(1)).scalars().first()
    if earlier is not None:
        outage.ticket_number = earlier.number
        svc.tickets.link(ACTOR, earlier, "outage", str(outage.id))
        svc.tickets.comment(ACTOR, earlier, f"链路再次中断：{device.hostname} 自 {local_time(outage.started_at)} "
                                            f"起再次中断（中断记录 {outage.id}），并入本单。", now=now)
        return "joined", earlier.number
    ticket = svc.tickets.create(
        ACTOR, Scope.everything(), type=TicketType.INCIDENT, title=incident_title(site, device),
        description=incident_description(site, device, outage, now, threshold), category=Category.NETWORK_FAULT,
        impact=IMPACT.get(site.tier, 3), urgency=1,
        site_code=site.code, requester=None, requester_name=REQUESTER_NAME, source=SOURCE,
        links=[("outage", str(outage.id)), ("site", site.code), ("device", device.hostname)], now=now)
    outage.ticket_number = ticket.number
    return "opened", ticket.number


def _reopen_one(svc: Services, outage_id: int, ticket_id: int, now: dt.datetime) -> str | None:
    """Reopen the ticket of an outage that went down again after its ticket was resolved."""
    session = svc.session
    ticket = _lock_ticket(session, ticket_id)
    outage = session.get(Outage, outage_id)
    if ticket is None or outage is None or outage.ended_at is not None or ticket.number != outage.ticket_number:
        return None
    if ticket.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        return None
    current = outage.periods[-1].started_at if outage.periods else outage.started_at
    settled = ticket.resolved_at or ticket.closed_at
    if settled is not None and settled > current:
        return None  # someone resolved it during this very down period: theirs to decide
    try:
        check_transition(ticket.status, TicketStatus.IN_PROGRESS, closed_at=ticket.closed_at, now=now,
                         reopen_days=svc.policies.servicedesk().reopen_days)
    except InvalidTransition as exc:  # closed too long ago to reopen
        log.warning("ticket %s not reopened for outage %s: %s", ticket.number, outage.id, exc)
        return None
    svc.tickets.comment(ACTOR, ticket, f"链路再次中断：{outage.device.hostname} 于 {local_time(current)} "
                                       f"再次中断（第 {outage.flap_count} 次闪断），工单重新打开。", now=now)
    svc.tickets.transition(ACTOR, ticket, TicketStatus.IN_PROGRESS, comment="链路再次中断，系统自动重新打开", now=now)
    return ticket.number


def _resolve_one(svc: Services, ticket_id: int, now: dt.datetime) -> str | None:
    """Comment and resolve a ticket whose outages all ended on devices that answer again."""
    session = svc.session
    ticket = _lock_ticket(session, ticket_id)
    if ticket is None or ticket.status not in OPEN:
        return None
    outages = list(session.execute(select(Outage).where(Outage.ticket_number == ticket.number)
                                   .order_by(Outage.started_at, Outage.id)).scalars())
    if not outages or any(o.ended_at is None for o in outages):
        return None
    devices = {o.device_id for o in outages}
    still_out = session.execute(select(Outage.id).where(Outage.device_id.in_(devices), Outage.ended_at.is_(None))
                                .limit(1)).first()
    if still_out is not None:
        return None  # unknown under a failed parent (or down again): not known to be back
    back_at = max(o.ended_at for o in outages if o.ended_at is not None)
    down = sum(_down_seconds(o, now) for o in outages)
    flaps = sum(o.flap_count or 0 for o in outages)
    hosts = "、".join(sorted({o.device.hostname for o in outages}))
    body = (f"链路已恢复：{hosts} 于 {local_time(back_at)} 恢复，中断时长 {duration_text(down)}"
            f"（自 {local_time(outages[0].started_at)} 起"
            + (f"，期间闪断 {flaps} 次" if flaps else "") + "）。系统自动解决本单。")
    svc.tickets.comment(ACTOR, ticket, body, now=now)
    for target in _TO_RESOLVED[TicketStatus(ticket.status)]:
        note = "链路已恢复，系统自动解决" if target == TicketStatus.RESOLVED else "链路已恢复，系统自动推进"
        svc.tickets.transition(ACTOR, ticket, target, comment=note, now=now)
    return ticket.number
