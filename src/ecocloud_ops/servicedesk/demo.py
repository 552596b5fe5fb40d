"""The demo's service desk: teams (one a vendor under contract), routing, a roster, the knowledge base's
first article, and tickets in several states, filed by the demo's provincial staff."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import func, select

from ..audit.service import Actor
from ..auth.scope import Scope
from ..bootstrap import Container
from ..db import utcnow
from .models import Ticket

TEAMS = [
    # name, display name, kind, leader, escalation team
    ("desk", "统一服务台", "internal", "desk.zhang", None),
    ("network-north", "网络运维北区组", "internal", "net.ops", "desk"),
    ("vendor-telecom", "电信驻场运维", "vendor", "vendor.li", "network-north"),
]
#: (category, province, team)
RULES = [("network_fault", "130000", "network-north"), ("network_fault", "*", "vendor-telecom"), ("*", "*", "desk")]
#: (requester, type, category, impact, urgency, title, description, path of states)
TICKETS = [
    ("hebei.staff", "incident", "network_fault", 2, 1, "石家庄市局视频会商系统卡顿",
     "上午九点起视频会商画面卡顿、掉线。", ["assigned", "in_progress"]),
    ("hebei.staff", "service_request", "account_access", 4, 3, "为新入职同事开通平台账号",
     "申请为监测科王五开通统一门户账号。", ["assigned", "in_progress", "pending"]),
    ("guangdong.staff", "incident", "cloud_resource", 3, 2, "广东省厅数据库虚拟机磁盘将满", "磁盘使用率 92%。",
     ["assigned", "in_progress", "resolved"]),
    ("guangdong.staff", "service_request", "consultation", 4, 4, "咨询月度连通率考核口径", "县级链路的考核目标是多少？",
     ["assigned", "in_progress", "resolved", "closed"]),
    ("hebei.staff", "incident", "security_incident", 2, 2, "收到疑似钓鱼邮件", "多名同事收到仿冒通知邮件。", []),
]


def prepare_servicedesk_demo(container: Container, say: Callable[[str], None]) -> None:
    """Once: teams, rules, this week's roster, an article and a few tickets (marked as filed by the demo)."""
    from .kb import KnowledgeBase
    from .teams import TeamService

    actor = Actor("demo", channel="system")
    with container.unit_of_work() as svc:
        if svc.session.execute(select(func.count(Ticket.id))).scalar():
            return
        teams = TeamService(svc.session, svc.audit)
        for name, display, kind, leader, _esc in TEAMS:
            if teams.find(name) is None:
                teams.create_team(actor, name=name, display_name=display, kind=kind, leader=leader)
        for name, _d, _k, _l, esc in TEAMS:
            if esc:
                teams.update_team(actor, name, escalation_team=esc)
        today = utcnow().date()
        teams.add_contract(actor, "vendor-telecom", name="专网运维服务合同（2026）", vendor="中国电信",
                           valid_from=dt.date(today.year, 1, 1), valid_to=dt.date(today.year, 12, 31),
                           categories=["network_fault"],
                           ola={"P1": {"response_minutes": 15, "resolve_minutes": 240},
                                "P2": {"response_minutes": 30, "resolve_minutes": 480}})
        for category, province, team in RULES:
            teams.set_rule(actor, category=category, province=province, team=team)
        start = utcnow().replace(minute=0, second=0, microsecond=0)
        for day in range(7):
            teams.add_shift(actor, "desk", "desk.zhang", start + dt.timedelta(days=day),
                            start + dt.timedelta(days=day, hours=24))
        KnowledgeBase(svc.session, svc.audit).create(
            actor, svc.auth.by_username("desk.zhang"), Scope.everything(), title="视频会商卡顿的排查步骤",
            category="network_fault", tags=["视频会商", "专网"], published=True,
            body="1. 在网络连通页面查看本地链路状态；\n2. 检查终端带宽占用；\n3. 仍无法解决时提交工单并附上终端型号。")
    for requester, ttype, category, impact, urgency, title, description, path in TICKETS:
        with container.unit_of_work() as svc:
            user = svc.auth.by_username(requester)
            if user is None:
                continue
            t = svc.tickets.create(actor, Scope.everything(), type=ttype, category=category, impact=impact,
                                   urgency=urgency, title=title, description=description, site_code=user.site.code,
                                   requester=user, source="web")
            for state in path:
                if state == "assigned" and t.status != "assigned":
                    svc.tickets.assign(actor, t, team=t.team or "desk", assignee=svc.auth.by_username("desk.zhang"))
                elif state != "assigned":
                    svc.tickets.transition(actor, t, state, comment="（演示数据）")
    say(f"service desk: {len(TEAMS)} teams, {len(RULES)} routing rules, {len(TICKETS)} demo tickets")
