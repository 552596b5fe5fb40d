"""Service-desk teams: routing precedence and the routing of new tickets, the on-duty roster, the
scheduled SLA check (warnings, breaches, escalation, unassigned and out-of-hours tickets) and the
monthly SLA report per team with its XLSX and PDF.

All times are fixed in March 2026 (Asia/Shanghai), a month of the stored official calendar without
holidays: Monday 2 March is a working day, Saturday 7 March is not; working hours are 08:30-17:30.
Default SLA policy: P2 = response 30 min / resolution 9 h of working time; P1 = 15 min / 4 h on 7x24;
category network_fault always runs on 7x24; warnings at 75 %.
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.audit.service import Actor
from ecocloud_ops.auth.models import User
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container, Services
from ecocloud_ops.errors import Conflict, ValidationFailed
from ecocloud_ops.jobs.registry import JOB_KINDS, SCHEDULES
from ecocloud_ops.servicedesk.models import Ticket, TicketEvent
from ecocloud_ops.servicedesk.sla_report import render_sla_pdf, render_sla_xlsx, sla_report
from ecocloud_ops.servicedesk.sla_store import load_calendar
from ecocloud_ops.servicedesk.sla_watch import in_business_hours, run_sla_check, sla_check_job
from ecocloud_ops.servicedesk.teams import Notification, NotificationKind, TeamService, TicketSlaState
from tests.conftest import TEST_ACTOR, Account

CST = dt.timezone(dt.timedelta(hours=8))
DESK = Actor("desk.agent", role="desk_agent", channel="console")
SLA_KINDS = [k.value for k in NotificationKind]


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    """A moment of 2026 in Beijing time."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=CST)


@pytest.fixture
def teams(container: Container, make_user: Callable[..., Account]) -> None:
    """Four teams; net-ops escalates to l2, vendor-a to net-ops; l2 and service-desk do not escalate."""
    make_user("desk.agent", "desk_agent")
    for name, team in (("net.lead", "net-ops"), ("net.eng1", "net-ops"), ("net.eng2", "net-ops"),
                       ("l2.lead", "l2"), ("l2.eng", "l2")):
        make_user(name, "network_ops", team=team)
    make_user("vendor.a", "vendor_engineer", team="vendor-a")
    make_user("vendor.lead", "vendor_engineer", team="vendor-a")
    with container.unit_of_work() as svc:
        ts = TeamService(svc.session, svc.audit)
        ts.create_team(TEST_ACTOR, name="l2", display_name="二线专家组", leader="l2.lead")
        ts.create_team(TEST_ACTOR, name="net-ops", display_name="网络运维组", leader="net.lead", escalation_team="l2")
        ts.create_team(TEST_ACTOR, name="vendor-a", display_name="甲厂商驻场组", kind="vendor", leader="vendor.lead",
                       escalation_team="net-ops", email="noc@vendor-a.example.cn")
        ts.create_team(TEST_ACTOR, name="service-desk", display_name="服务台")


def new_ticket(svc: Services, when: dt.datetime, *, category: str = "account_access", impact: int = 2,
               urgency: int = 2, site: str = "130100", title: str = "无法登录") -> Ticket:
    return svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title=title, category=category,
                              impact=impact, urgency=urgency, site_code=site, now=when)


def ticket(svc: Services, number: str) -> Ticket:
    return svc.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()


def user(svc: Services, username: str) -> User:
    return svc.session.execute(select(User).where(User.username == username)).scalar_one()


def check(container: Container, when: dt.datetime) -> dict[str, int]:
    """One run of the scheduled check, in its own transaction like the job."""
    with container.unit_of_work() as svc:
        return run_sla_check(svc.session, svc.audit, svc.tickets, when)


def notes(container: Container, number: str | None = None) -> list[tuple[str, list[str]]]:
    """(kind, recipients) of the SLA watch's notifications, oldest first."""
    with container.unit_of_work() as svc:
        q = select(Notification).where(Notification.kind.in_(SLA_KINDS))
        if number is not None:
            q = q.where(Notification.ticket_id == ticket(svc, number).id)
        return [(n.kind, list(n.recipients)) for n in svc.session.execute(q.order_by(Notification.id)).scalars()]


def sla_events(container: Container, number: str) -> list[str]:
    with container.unit_of_work() as svc:
        return [e.body or "" for e in svc.session.execute(select(TicketEvent).where(
            TicketEvent.ticket_id == ticket(svc, number).id, TicketEvent.kind == "sla").order_by(TicketEvent.id))
            .scalars()]


# --------------------------------------------------------------------------------------------------
# Routing


def test_routing_precedence(container: Container, teams: None) -> None:
    with container.unit_of_work() as svc:
        ts = TeamService(svc.session, svc.audit)
        ts.set_rule(TEST_ACTOR, category="network_fault", province="130000", team="vendor-a")
        ts.set_rule(TEST_ACTOR, category="network_fault", province="*", team="net-ops")
        ts.set_rule(TEST_ACTOR, category="*", province="440000", team="l2")
        ts.set_rule(TEST_ACTOR, category="*", province="*", team="service-desk")

        def route(category: str, path: str) -> str | None:
            team = ts.route(category, path)
            return team.name if team else None

        assert route("network_fault", "000000/130000/130100/130102/") == "vendor-a"  # category + province
        assert route("network_fault", "000000/440000/440100/") == "net-ops"  # category + * beats * + province
        assert route("account_access", "000000/440000/") == "l2"  # * + province beats * + *
        assert route("account_access", "000000/130000/130100/") == "service-desk"  # * + *
        assert route("network_fault", "000000/") == "net-ops", "the ministry has no province"
        # One rule per pair: setting it again replaces the team.
        ts.set_rule(TEST_ACTOR, category="network_fault", province="130000", team="l2")
        assert route("network_fault", "000000/130000/") == "l2"
        assert len(ts.rules()) == 4
        catch_all = next(r for r in ts.rules() if (r.category, r.province) == ("*", "*"))
        ts.delete_rule(TEST_ACTOR, catch_all.id)
        assert route("account_access", "000000/130000/130100/") is None
        with pytest.raises(ValidationFailed, match="province"):
            ts.set_rule(TEST_ACTOR, category="*", province="130100", team="l2")  # a city, not a province
        with pytest.raises(ValidationFailed, match="category"):
            ts.set_rule(TEST_ACTOR, category="wish", province="*", team="l2")
        actions = [a for (a,) in svc.session.execute(select(AuditEntry.action).where(
            AuditEntry.action.like("team.rule.%")).order_by(AuditEntry.seq))]
    assert actions == ["team.rule.set"] * 5 + ["team.rule.delete"]


def test_new_ticket_is_routed_and_assigned(container: Container, teams: None) -> None:
    with container.unit_of_work() as svc:
        TeamService(svc.session, svc.audit).set_rule(TEST_ACTOR, category="account_access", province="130000",
                                                     team="vendor-a")
        routed = new_ticket(svc, at(2, 10), site="130102")
        unrouted = new_ticket(svc, at(2, 10), site="440100")
        numbers = routed.number, unrouted.number
    with container.unit_of_work() as svc:
        t = ticket(svc, numbers[0])
        assert (t.team, t.status, t.assignee_id) == ("vendor-a", "assigned", None)
        assert t.responded_at is None, "automatic routing is not a response"
        history = [(e.kind, e.actor, e.field, e.new_value, e.to_status) for e in svc.tickets.history(t)]
        assert ("field", "auto-routing", "team", "vendor-a", None) in history
        assert ("transition", "auto-routing", None, None, "assigned") in history
        audit = svc.session.execute(select(AuditEntry).where(AuditEntry.action == "ticket.assign",
                                                             AuditEntry.target_id == numbers[0])).scalar_one()
        assert audit.actor == "auto-routing" and audit.after == {"team": "vendor-a"}
        u = ticket(svc, numbers[1])
        assert (u.team, u.status) == (None, "new")
        # A vendor engineer of the team now sees the routed ticket (the team string is the team's name).
        vendor = user(svc, "vendor.a")
        assert svc.tickets.can_work(vendor, t) and not svc.tickets.can_work(vendor, u)


# --------------------------------------------------------------------------------------------------
# Roster


def test_on_duty_across_midnight(container: Container, teams: None) -> None:
    with container.unit_of_work() as svc:
        ts = TeamService(svc.session, svc.audit)
        ts.add_shift(TEST_ACTOR, "net-ops", "net.eng1", at(2, 22), at(3, 8))  # the night shift
        ts.add_shift(TEST_ACTOR, "net-ops", "net.eng2", at(3, 8), at(3, 22))
        ts.add_shift(TEST_ACTOR, "l2", "l2.eng", at(2, 0), at(9, 0))
        assert ts.on_duty("net-ops", at(2, 21, 59)) == []
        assert ts.on_duty("net-ops", at(2, 22)) == ["net.eng1"]
        assert ts.on_duty("net-ops", at(2, 23, 30)) == ["net.eng1"]
        assert ts.on_duty("net-ops", at(3, 0, 30)) == ["net.eng1"], "after midnight, still the night shift"
        assert ts.on_duty("net-ops", at(3, 7, 59)) == ["net.eng1"]
        assert ts.on_duty("net-ops", at(3, 8)) == ["net.eng2"], "a shift ends where the next begins"
        assert ts.on_duty("net-ops", at(2, 23, 30).astimezone(dt.UTC)) == ["net.eng1"]
        assert ts.on_duty("l2", at(3, 0, 30)) == ["l2.eng"]
        assert ts.on_duty("nobody", at(3, 0, 30)) == []
        with pytest.raises(Conflict):
            ts.add_shift(TEST_ACTOR, "net-ops", "net.eng1", at(3, 6), at(3, 9))
        with pytest.raises(ValidationFailed, match="username"):
            ts.add_shift(TEST_ACTOR, "net-ops", "vendor.a", at(4, 8), at(4, 18))  # another team's engineer
        with pytest.raises(ValidationFailed, match="time zone"):
            ts.add_shift(TEST_ACTOR, "net-ops", "net.eng2", dt.datetime(2026, 3, 4, 8), at(4, 18))
        with pytest.raises(ValidationFailed, match="ends_at"):
            ts.add_shift(TEST_ACTOR, "net-ops", "net.eng2", at(4, 18), at(4, 8))
        assert [s.user.username for s in ts.shifts("net-ops", at(3, 0), at(3, 12))] == ["net.eng1", "net.eng2"]


# --------------------------------------------------------------------------------------------------
# SLA check


def test_response_warning_breach_and_escalation_once(container: Container, teams: None) -> None:
    """P2 account_access (working time, response 30 min), created Monday 09:00 and routed to net-ops:
    75 % at 09:22:30, breach at 09:30."""
    with container.unit_of_work() as svc:
        ts = TeamService(svc.session, svc.audit)
        ts.set_rule(TEST_ACTOR, category="account_access", province="*", team="net-ops")
        ts.add_shift(TEST_ACTOR, "net-ops", "net.eng1", at(2, 8), at(2, 20))
        n = new_ticket(svc, at(2, 9)).number
    assert notes(container, n) == []

    assert check(container, at(2, 9, 20))["warnings"] == 0  # 20/30 = 67 %
    assert notes(container, n) == [] and sla_events(container, n) == []

    assert check(container, at(2, 9, 23))["warnings"] == 1  # 23/30 = 77 %: no assignee, so the on-duty engineer
    assert notes(container, n) == [("sla_warning", ["net.eng1"])]
    assert check(container, at(2, 9, 25))["warnings"] == 0, "a clock is warned about once"
    assert notes(container, n) == [("sla_warning", ["net.eng1"])]
    events = sla_events(container, n)
    assert len(events) == 1 and "响应时限已用 77%" in events[0]  # 23/30 = 76.7 %

    counts = check(container, at(2, 9, 31))
    assert (counts["breaches"], counts["escalations"]) == (1, 1)
    assert notes(container, n) == [("sla_warning", ["net.eng1"]), ("sla_breach", ["net.lead"]),
                                   ("escalation", ["l2.lead"])]  # nobody on duty in l2: its leader
    with container.unit_of_work() as svc:
        t = ticket(svc, n)
        assert t.response_breached and not t.resolve_breached
        assert (t.team, t.assignee_id) == ("l2", None)
        state = svc.session.get(TicketSlaState, t.id)
        assert state is not None and state.response_breached_at == at(2, 9, 31)
        assert state.escalated_at == at(2, 9, 31)
        moves = [(e.actor, e.old_value, e.new_value) for e in svc.tickets.history(t)
                 if e.kind == "field" and e.field == "team"]
        assert moves == [("auto-routing", None, "net-ops"), ("sla-watch", "net-ops", "l2")]
        actions = [a for (a,) in svc.session.execute(select(AuditEntry.action).where(
            AuditEntry.target_id == n).order_by(AuditEntry.seq))]
        assert actions.count("ticket.sla_warning") == 1 and actions.count("ticket.sla_breach") == 1
        assert actions[-2:] == ["ticket.sla_breach", "ticket.assign"]

    counts = check(container, at(2, 9, 40))
    assert (counts["warnings"], counts["breaches"], counts["escalations"]) == (0, 0, 0), "nothing twice"
    assert len(notes(container, n)) == 3
    # A late response later does not undo the breach.
    with container.unit_of_work() as svc:
        t = ticket(svc, n)
        svc.tickets.transition(DESK, t, "in_progress", now=at(2, 10))
    with container.unit_of_work() as svc:
        assert ticket(svc, n).response_breached


def test_pending_pauses_the_resolution_clock(container: Container, teams: None) -> None:
    """Two P2 tickets created Monday 09:00 and taken up at once; one waits on the requester 11:00-13:00.
    Resolution target 540 min of working time: without the pause 75 % is Monday 15:45 and the breach
    Tuesday 09:00 (Monday 09:00-17:30 = 510 min, then 30 from 08:30); with it, 405 min are reached
    Tuesday 08:45 and 540 min Tuesday 11:00."""
    with container.unit_of_work() as svc:
        ts = TeamService(svc.session, svc.audit)
        ts.set_rule(TEST_ACTOR, category="account_access", province="*", team="net-ops")
        eng = user(svc, "net.eng1")
        numbers = []
        for _ in range(2):
            t = new_ticket(svc, at(2, 9))
            svc.tickets.assign(DESK, t, team="net-ops", assignee=eng, now=at(2, 9, 5))
            svc.tickets.transition(DESK, t, "in_progress", now=at(2, 9, 10))
            numbers.append(t.number)
        paused, plain = numbers
        svc.tickets.transition(DESK, ticket(svc, paused), "pending", now=at(2, 11))
        svc.tickets.transition(DESK, ticket(svc, paused), "in_progress", now=at(2, 13))

    check(container, at(2, 15, 50))  # plain: 410/540 = 76 %; paused: 290/540 = 54 %
    assert notes(container, plain) == [("sla_warning", ["net.eng1"])], "the assignee is warned"
    assert notes(container, paused) == []
    assert "解决时限已用 76%" in sla_events(container, plain)[0]

    check(container, at(3, 8, 50))  # paused: 390 + 20 = 410 min = 76 %
    assert notes(container, paused) == [("sla_warning", ["net.eng1"])]
    check(container, at(3, 10, 59))  # plain breached at 09:00; paused: 539/540
    assert [k for k, _r in notes(container, plain)] == ["sla_warning", "sla_breach", "escalation"]
    assert notes(container, paused) == [("sla_warning", ["net.eng1"])]
    with container.unit_of_work() as svc:
        assert not ticket(svc, paused).resolve_breached and ticket(svc, plain).resolve_breached
        assert ticket(svc, plain).team == "l2"

    check(container, at(3, 11))  # exactly 540 min: the breach
    assert notes(container, paused) == [("sla_warning", ["net.eng1"]), ("sla_breach", ["net.lead"]),
                                        ("escalation", ["l2.lead"])]
    with container.unit_of_work() as svc:
        t = ticket(svc, paused)
        assert t.resolve_breached and not t.response_breached and t.team == "l2"
        svc.tickets.transition(DESK, t, "resolved", now=at(3, 12))
    with container.unit_of_work() as svc:
        assert ticket(svc, paused).resolve_breached, "a recorded breach is never recomputed away"
    check(container, at(3, 13))
    assert len(notes(container, paused)) == 3


def test_breach_escalates_once_even_when_both_clocks_breach(container: Container, teams: None) -> None:
    """A P1 network fault (7x24: response 15 min, resolution 4 h) nobody answers: both clocks breach,
    the ticket is raised to the escalation team once; the second breach goes to the new team's leader."""
    with container.unit_of_work() as svc:
        TeamService(svc.session, svc.audit).set_rule(TEST_ACTOR, category="network_fault", province="*",
                                                     team="vendor-a")
        n = new_ticket(svc, at(7, 10), category="network_fault", impact=1, urgency=1).number
    check(container, at(7, 14, 30))  # one run past both deadlines: response (10:15) and resolution (14:00)
    assert notes(container, n) == [
        ("out_of_hours", ["vendor.lead"]),  # Saturday: at intake, nobody on duty: the leader
        ("sla_breach", ["vendor.lead"]), ("escalation", ["net.lead"]), ("sla_breach", ["net.lead"])]
    with container.unit_of_work() as svc:
        t = ticket(svc, n)
        assert t.response_breached and t.resolve_breached and t.team == "net-ops", "raised once, not to l2"
    check(container, at(7, 15))
    assert len(notes(container, n)) == 4


def test_unassigned_and_out_of_hours_go_to_the_on_duty_engineer(container: Container, teams: None) -> None:
    with container.unit_of_work() as svc:
        ts = TeamService(svc.session, svc.audit)
        ts.add_shift(TEST_ACTOR, "vendor-a", "vendor.a", at(6, 18), at(9, 8, 30))
        ts.add_shift(TEST_ACTOR, "vendor-a", "vendor.lead", at(2, 8, 30), at(2, 17, 30))
        # Two consultations nobody routes when they come in (Monday 10:00, in working hours).
        first = new_ticket(svc, at(2, 10), category="consultation", impact=4, urgency=4).number
        second = new_ticket(svc, at(2, 10), category="other", impact=4, urgency=4).number
    assert check(container, at(2, 10, 9))["unassigned"] == 0
    with container.unit_of_work() as svc:  # a rule for consultations appears meanwhile
        TeamService(svc.session, svc.audit).set_rule(TEST_ACTOR, category="consultation", province="*",
                                                     team="vendor-a")
    assert check(container, at(2, 10, 10))["unassigned"] == 2
    assert notes(container, first) == [("unassigned", ["vendor.lead"])], "the routed team's engineer on duty"
    assert notes(container, second) == [("unassigned", ["desk.agent"])], "no team at all: the service desk"
    assert check(container, at(2, 10, 15))["unassigned"] == 0
    assert len(notes(container)) == 2

    with container.unit_of_work() as svc:
        TeamService(svc.session, svc.audit).set_rule(TEST_ACTOR, category="network_fault", province="*",
                                                     team="vendor-a")
        night = new_ticket(svc, at(7, 2), category="network_fault", impact=3, urgency=3).number
        day = new_ticket(svc, at(6, 9), category="network_fault", impact=3, urgency=3).number
    # At intake, at once: the engineer on the weekend shift.
    assert notes(container, night) == [("out_of_hours", ["vendor.a"])]
    assert notes(container, day) == []
    assert check(container, at(7, 2, 5))["out_of_hours"] == 0, "not twice"
    assert notes(container, night) == [("out_of_hours", ["vendor.a"])]


def test_business_hours_follow_the_calendar(container: Container) -> None:
    with container.unit_of_work() as svc:
        cal = load_calendar(svc.session)
    assert not in_business_hours(cal, at(2, 8, 29))
    assert in_business_hours(cal, at(2, 8, 30))
    assert in_business_hours(cal, at(2, 17, 29))
    assert not in_business_hours(cal, at(2, 17, 30))
    assert not in_business_hours(cal, at(7, 10)), "Saturday"
    assert not in_business_hours(cal, at(1, 10, month=10)), "National Day, a Thursday"
    assert in_business_hours(cal, at(10, 10, month=10)), "Saturday 10 October 2026 is a make-up working day"


def test_the_job_is_registered_and_runs(container: Container, teams: None) -> None:
    kind = JOB_KINDS["servicedesk.sla_check"]
    assert kind.permission == "jobs.manage"
    assert [(k, cron) for _id, k, cron in SCHEDULES if k == "servicedesk.sla_check"] == [
        ("servicedesk.sla_check", {"minute": "*/5"})]
    with container.unit_of_work() as svc:
        n = new_ticket(svc, dt.datetime.now(dt.UTC) - dt.timedelta(days=30), category="other").number
    lines: list[str] = []
    ctx = SimpleNamespace(unit_of_work=container.unit_of_work, actor=Actor("scheduler", channel="worker"),
                          log=lambda line, level="info": lines.append(line))
    result = kind.func(ctx, {})  # type: ignore[arg-type]
    assert result["tickets"] == 1 and result["breaches"] == 2 and result["unassigned"] == 1
    assert lines and "2 breaches" in lines[0]
    assert sla_check_job(ctx, {})["breaches"] == 0  # type: ignore[arg-type]
    with container.unit_of_work() as svc:
        t = ticket(svc, n)
        assert t.response_breached and t.resolve_breached


# --------------------------------------------------------------------------------------------------
# Monthly report


@pytest.fixture
def march(container: Container, teams: None) -> dict[str, Any]:
    """Tickets of March 2026 with hand-worked figures (the expectations are in the tests).

    Routing: consultations go to vendor-a, "other" tickets from Hebei to net-ops; nothing else is routed."""
    with container.unit_of_work() as svc:
        ts = TeamService(svc.session, svc.audit)
        for name, start, end in (("甲厂商2025年运维服务合同", "2025-01-01", "2025-12-31"),
                                 ("甲厂商2026年运维服务合同", "2026-01-01", "2026-12-31"),
                                 ("甲厂商2026年二期合同", "2026-04-01", "2026-12-31")):
            ts.add_contract(TEST_ACTOR, "vendor-a", name=name, vendor="甲科技有限公司", valid_from=start,
                            valid_to=end, categories=["network_fault", "account_access"],
                            ola={"P1": {"response_minutes": 10, "resolve_minutes": 180}})
        ts.set_rule(TEST_ACTOR, category="consultation", province="*", team="vendor-a")
        ts.set_rule(TEST_ACTOR, category="other", province="130000", team="net-ops")
        va, eng = user(svc, "vendor.a"), user(svc, "net.eng1")
        tk = svc.tickets

        # T1 vendor-a, P2 working time: responded 09:10 (600 s), resolved 11:00 (7,200 s): both met.
        t1 = new_ticket(svc, at(2, 9))
        tk.assign(DESK, t1, team="vendor-a", assignee=va, now=at(2, 9, 10))
        tk.transition(DESK, t1, "in_progress", now=at(2, 9, 20))
        tk.transition(DESK, t1, "resolved", now=at(2, 11))
        # T2 vendor-a, P2 created Monday 17:00, responded Tuesday 08:40: 30 + 10 = 40 min (2,400 s) > 30:
        # breached; pending 09:00-10:00, resolved 11:00: 30 + 150 - 60 = 120 min (7,200 s): met.
        t2 = new_ticket(svc, at(2, 17))
        tk.assign(DESK, t2, team="vendor-a", assignee=va, now=at(3, 8, 40))
        tk.transition(DESK, t2, "in_progress", now=at(3, 8, 45))
        tk.transition(DESK, t2, "pending", now=at(3, 9))
        tk.transition(DESK, t2, "in_progress", now=at(3, 10))
        tk.transition(DESK, t2, "resolved", now=at(3, 11))
        # T3 vendor-a, P1 network fault (7x24) on Saturday: response 20 min (1,200 s) > 15, resolution
        # 5 h (18,000 s) > 4 h: both breached when the clocks stopped.
        t3 = new_ticket(svc, at(7, 10), category="network_fault", impact=1, urgency=1)
        tk.assign(DESK, t3, team="vendor-a", assignee=va, now=at(7, 10, 20))
        tk.transition(DESK, t3, "in_progress", now=at(7, 10, 25))
        tk.transition(DESK, t3, "resolved", now=at(7, 15))
        # T6 net-ops, P2: responded 09:15 (900 s); the SLA check on Thursday 10:00 finds its resolution
        # breached (510 + 90 = 600 min > 540) and raises it to l2, where it is counted.
        t6 = new_ticket(svc, at(11, 9))
        tk.assign(DESK, t6, team="net-ops", assignee=eng, now=at(11, 9, 15))
    check(container, at(12, 10))  # the only open ticket so far is T6
    with container.unit_of_work() as svc:
        # T4 (P3 consultation, routed to vendor-a, open, no response yet); T5 (the same, canceled).
        new_ticket(svc, at(10, 10), category="consultation", impact=3, urgency=3)
        t5 = new_ticket(svc, at(10, 11), category="consultation", impact=3, urgency=3)
        svc.tickets.transition(DESK, t5, "canceled", now=at(10, 11, 30))
        # T7 from Guangdong, not routed, the month's last minute; T10 routed to net-ops, its first minute.
        new_ticket(svc, at(31, 23, 59), category="other", impact=3, urgency=3, site="440100")
        new_ticket(svc, at(1, 0), category="other", impact=3, urgency=3)
        # Outside the month: February's last second and April's first.
        new_ticket(svc, dt.datetime(2026, 2, 28, 23, 59, 59, tzinfo=CST), category="other")
        new_ticket(svc, at(1, 0, month=4), category="other")
    with container.unit_of_work() as svc:
        return sla_report(svc.session, 2026, 3, now=at(5, 9, month=4))


ZERO = {"created": 0, "resolved": 0, "open": 0, "canceled": 0, "response_met": 0, "response_breached": 0,
        "resolve_met": 0, "resolve_breached": 0, "business_tickets": 0, "tickets_24x7": 0,
        "response_met_rate": None, "resolve_met_rate": None, "avg_response_business_seconds": None,
        "avg_response_24x7_seconds": None, "avg_resolve_business_seconds": None, "avg_resolve_24x7_seconds": None}


def test_monthly_sla_report_figures(march: dict[str, Any]) -> None:
    data = march
    assert data["month"] == "2026-03"
    assert data["period"] == {"from": "2026-02-28T16:00:00+00:00", "to": "2026-03-31T16:00:00+00:00",
                              "timezone": "Asia/Shanghai", "partial": False}
    rows = {r["team"]: r for r in data["rows"]}
    assert [r["team"] for r in data["rows"]] == ["l2", "net-ops", "service-desk", "vendor-a", None]
    counts = {k: v for k, v in rows["vendor-a"].items() if k in ZERO}
    assert counts == {
        "created": 5, "resolved": 3, "open": 1, "canceled": 1,
        "response_met": 1, "response_breached": 2, "resolve_met": 2, "resolve_breached": 1,
        "business_tickets": 4, "tickets_24x7": 1,
        "response_met_rate": pytest.approx(1 / 3), "resolve_met_rate": pytest.approx(2 / 3),
        "avg_response_business_seconds": pytest.approx((600 + 2400) / 2), "avg_response_24x7_seconds": 1200.0,
        "avg_resolve_business_seconds": 7200.0, "avg_resolve_24x7_seconds": 18000.0}
    assert rows["vendor-a"]["contract"] == {"name": "甲厂商2026年运维服务合同", "vendor": "甲科技有限公司",
                                            "valid_from": "2026-01-01", "valid_to": "2026-12-31"}
    assert (rows["vendor-a"]["display_name"], rows["vendor-a"]["kind"]) == ("甲厂商驻场组", "vendor")
    assert {k: v for k, v in rows["l2"].items() if k in ZERO} == ZERO | {
        "created": 1, "open": 1, "response_met": 1, "resolve_breached": 1, "business_tickets": 1,
        "response_met_rate": 1.0, "resolve_met_rate": 0.0, "avg_response_business_seconds": 900.0}
    assert {k: v for k, v in rows["net-ops"].items() if k in ZERO} == ZERO | {
        "created": 1, "open": 1, "business_tickets": 1}
    assert rows["net-ops"]["contract"] is None
    assert {k: v for k, v in rows["service-desk"].items() if k in ZERO} == ZERO
    assert {k: v for k, v in rows[None].items() if k in ZERO} == ZERO | {
        "created": 1, "open": 1, "business_tickets": 1}
    assert data["total"] == ZERO | {
        "created": 8, "resolved": 3, "open": 4, "canceled": 1, "response_met": 2, "response_breached": 2,
        "resolve_met": 2, "resolve_breached": 2, "business_tickets": 7, "tickets_24x7": 1,
        "response_met_rate": 0.5, "resolve_met_rate": 0.5,
        "avg_response_business_seconds": pytest.approx((600 + 2400 + 900) / 3),
        "avg_response_24x7_seconds": 1200.0, "avg_resolve_business_seconds": 7200.0,
        "avg_resolve_24x7_seconds": 18000.0}


def test_monthly_sla_report_xlsx(march: dict[str, Any]) -> None:
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(render_sla_xlsx(march, "en")))
    assert wb.sheetnames == ["SLA by team", "Report information"]
    ws = wb["SLA by team"]
    values = [[c.value for c in row] for row in ws.iter_rows()]
    header = values[0]
    assert header[:8] == ["Team", "Team type", "Contract", "Vendor", "Contract valid from", "Contract valid to",
                          "Tickets created", "Resolved"]
    vendor = dict(zip(header, values[4], strict=True))
    assert vendor["Team"] == "甲厂商驻场组（vendor-a）" and vendor["Team type"] == "Vendor team"
    assert vendor["Contract"] == "甲厂商2026年运维服务合同" and vendor["Vendor"] == "甲科技有限公司"
    assert vendor["Contract valid from"] == dt.datetime(2026, 1, 1)
    assert (vendor["Tickets created"], vendor["Resolved"], vendor["Still open"], vendor["Canceled"]) == (5, 3, 1, 1)
    assert (vendor["Response met"], vendor["Response breached"]) == (1, 2)
    assert vendor["Response met rate"] == pytest.approx(1 / 3)
    assert ws.cell(row=5, column=header.index("Response met rate") + 1).number_format == "0.00%"
    assert vendor["Average response, working time (s)"] == 1500
    assert vendor["Average resolution, 7×24 (s)"] == 18000
    assert values[5][0] == "No team" and values[6][0] == "All teams" and values[6][6] == 8
    assert values[1][0] == "二线专家组（l2）" and values[1][header.index("Resolution met rate")] == 0
    assert values[3][header.index("Response met rate")] is None, "no figure, an empty cell"
    info = {row[0].value: row[1].value for row in wb["Report information"].iter_rows(min_row=2)}
    assert info["Month"] == "2026-03" and info["Period start"] == dt.datetime(2026, 3, 1)
    # Chinese: the numbers are the same.
    zh = load_workbook(io.BytesIO(render_sla_xlsx(march, "zh_CN")))
    zh_values = [[c.value for c in row] for row in zh.worksheets[0].iter_rows()]
    assert zh_values[4][6:12] == [5, 3, 1, 1, 1, 2]
    assert render_sla_xlsx(march, "en") == render_sla_xlsx(march, "en"), "the same data, the same bytes"


def pdf_text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF")
    out = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return out.stdout.decode()


def test_monthly_sla_report_pdf(march: dict[str, Any]) -> None:
    text = pdf_text(render_sla_pdf(march, "en"))
    for heading in ("Monthly service desk SLA report", "SLA by team",
                    "All teams", "No team", "2026-03", "Generated at"):
        assert heading in text, heading
    for figure in ("甲厂商驻场组", "甲科技有限公司", "33.33%", "66.67%", "25 min", "2 h 00 min", "5 h 00 min",
                   "15 min", "20 min"):
        assert figure in text, figure
    # Chinese (the default): the team names, contract and numbers (durations in Chinese units).
    zh = pdf_text(render_sla_pdf(march))
    for figure in ("甲厂商驻场组", "二线专家组", "甲科技有限公司", "2026年03月", "33.33%", "2小时00分", "5小时00分",
                   "25分钟"):
        assert figure in zh, figure


def test_teams_api_for_admins(client: object, container: Container, make_user: Callable[..., Any]) -> None:
    from tests.conftest import api_token

    admin = make_user("teams.admin", "admin", "000000")
    make_user("duty.eng", "desk_agent", "000000", team="north")
    h = {"Authorization": f"Bearer {api_token(container, admin)}"}
    c: Any = client
    assert c.post("/api/v1/teams", json={"name": "north", "display_name": "北区运维组"}, headers=h).status_code == 201
    assert c.post("/api/v1/teams", json={"name": "north", "display_name": "重复"}, headers=h).status_code in (409, 422)
    r = c.post("/api/v1/teams/north/contracts", headers=h,
               json={"name": "维保合同", "vendor": "某厂商", "valid_from": "2026-01-01", "valid_to": "2026-12-31",
                     "categories": ["network_fault"]})
    assert r.status_code == 201, r.json
    assert c.post("/api/v1/routing-rules", json={"category": "network_fault", "province": "130000", "team": "north"},
                  headers=h).status_code == 201
    now = dt.datetime.now(dt.UTC)
    assert c.post("/api/v1/teams/north/shifts", json={"username": "duty.eng", "starts_at": now.isoformat(),
                                                      "ends_at": (now + dt.timedelta(hours=8)).isoformat()},
                  headers=h).status_code == 201
    listed = c.get("/api/v1/teams", headers=h).json
    north = next(t for t in listed["items"] if t["name"] == "north")
    assert north["on_duty"] == ["duty.eng"] and north["contracts"][0]["vendor"] == "某厂商"
    assert listed["rules"] == [{"id": listed["rules"][0]["id"], "category": "network_fault", "province": "130000",
                                "team": "north"}]
