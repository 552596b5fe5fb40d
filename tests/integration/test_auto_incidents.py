"""Incidents opened and resolved by the system from outages: threshold, dependency awareness, flaps,
automatic resolution and reopening, the report's ticket column, two workers at once.

Outage records are written through the poller's own :class:`HistoryWriter` (flap window 15 minutes),
one writer per observation, as poll cycles would; the hook is called with explicit times. Expected
values are worked out from the scenarios by hand."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.network.history import HistoryWriter
from ecocloud_ops.network.inventory import DeviceSpec
from ecocloud_ops.network.models import Device, Outage
from ecocloud_ops.servicedesk import auto_incidents
from ecocloud_ops.servicedesk.auto_incidents import open_and_close_incidents
from ecocloud_ops.servicedesk.models import Ticket, TicketEvent, TicketLink
from ecocloud_ops.sites.models import Site
from tests.conftest import BACKEND, SMALL_TREE, TEST_ACTOR

#: 10:00 on 2 November 2026, Asia/Shanghai.
T0 = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)
FLAP_WINDOW = dt.timedelta(minutes=15)
SYSTEM = "system:auto-incident"
#: Below each site (inclusive), as the small tree has them.
SUBTREE = {"130000": ["130000", "130100", "130102", "130104", "130200", "130202"],
           "130100": ["130100", "130102", "130104"], "130200": ["130200", "130202"]}


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def devices(container: Container, small_tree: None) -> Container:
    with container.unit_of_work() as svc:
        svc.devices.import_inventory(TEST_ACTOR, [
            DeviceSpec(hostname=f"dev-{code}", address=f"198.18.0.{i}", site_code=code, snmp_community="c")
            for i, code in enumerate(sorted(SMALL_TREE), start=1)])
    return container


def observe(c: Container, when: dt.datetime, **states: str) -> None:
    """One poll cycle's changes: ``dev_130100="down"`` (own link), ``"unknown"`` (parent down), ``"up"``."""
    with c.unit_of_work() as svc:
        writer = HistoryWriter(svc.session, flap_window=FLAP_WINDOW)
        for key, status in states.items():
            d = svc.session.execute(select(Device).where(Device.hostname == key.replace("_", "-"))).scalar_one()
            cause = {"down": "own", "unknown": "parent"}.get(status)
            writer.transition(d.id, d.site_id, status, cause, when)
            d.status, d.status_cause, d.status_since = status, cause, when
            d.last_error = None if status == "up" else "ICMP: no echo reply; SNMP timeout: no response"
        writer.add_cycle(started_at=when, finished_at=when + dt.timedelta(seconds=1), devices=len(SMALL_TREE),
                         up=0, down=0, unknown=0, snmp_errors=0)


def cut(c: Container, site: str, when: dt.datetime) -> None:
    """The site's link fails: its device is down, every device below it unknown."""
    observe(c, when, **{f"dev_{code}": ("down" if code == site else "unknown") for code in SUBTREE[site]})


def restore(c: Container, site: str, when: dt.datetime) -> None:
    observe(c, when, **{f"dev_{code}": "up" for code in SUBTREE[site]})


def tickets(c: Container) -> list[dict[str, Any]]:
    with c.unit_of_work() as svc:
        rows = svc.session.execute(select(Ticket).order_by(Ticket.id)).scalars()
        return [{"number": t.number, "status": t.status, "site": t.site.code, "title": t.title, "impact": t.impact,
                 "urgency": t.urgency, "priority": t.priority, "category": t.category, "type": t.type,
                 "requester_id": t.requester_id, "requester_name": t.requester_name, "source": t.source,
                 "description": t.description, "created_at": t.created_at, "team": t.team} for t in rows]


def ticket_of(c: Container, hostname: str) -> set[str | None]:
    """The ticket numbers of every outage of the device."""
    with c.unit_of_work() as svc:
        return set(svc.session.execute(select(Outage.ticket_number).join(Outage.device)
                                       .where(Device.hostname == hostname)).scalars())


def events(c: Container, number: str) -> list[TicketEvent]:
    with c.unit_of_work() as svc:
        t = svc.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        return list(svc.session.execute(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                                        .order_by(TicketEvent.at, TicketEvent.id)).scalars())


def to_resolved(status: str) -> list[str]:
    """The state machine's road from an open status to resolved (written out by hand)."""
    return {"new": ["assigned", "in_progress", "resolved"], "assigned": ["in_progress", "resolved"],
            "in_progress": ["resolved"], "pending": ["resolved"]}[status]


def test_a_city_link_down_past_the_threshold_opens_one_incident(devices: Container) -> None:
    cut(devices, "130100", at(0))
    s = open_and_close_incidents(devices, at(4) + dt.timedelta(seconds=59))
    assert s.opened == [] and tickets(devices) == []
    s = open_and_close_incidents(devices, at(5))  # exactly the default threshold: due
    number = "INC-2026-000001"  # the first incident of 2026 (Asia/Shanghai year of the creation)
    assert s.opened == [number]
    [t] = tickets(devices)
    assert t["number"] == number and t["type"] == "incident" and t["category"] == "network_fault"
    assert t["site"] == "130100" and t["impact"] == 2 and t["urgency"] == 1 and t["priority"] == "P1"
    assert t["title"] == "网络中断：石家庄市（130100）省→市链路 dev-130100"
    assert t["requester_id"] is None and t["requester_name"] == "系统（网络监测）" and t["source"] == "auto"
    assert t["created_at"] == at(5)
    assert "中断开始：2026-11-02 10:00:00（北京时间）" in t["description"]
    assert "dev-130100" in t["description"] and "198.18.0." in t["description"]
    assert "SNMP timeout" in t["description"]
    assert ticket_of(devices, "dev-130100") == {number}
    assert ticket_of(devices, "dev-130102") == {None} and ticket_of(devices, "dev-130104") == {None}
    with devices.unit_of_work() as svc:
        tid = svc.session.execute(select(Ticket.id).where(Ticket.number == number)).scalar_one()
        outage_id = svc.session.execute(select(Outage.id).join(Outage.device)
                                        .where(Device.hostname == "dev-130100")).scalar_one()
        links = {(x.target_type, x.target_id) for x in svc.session.execute(
            select(TicketLink).where(TicketLink.ticket_id == tid)).scalars()}
        assert links == {("outage", str(outage_id)), ("site", "130100"), ("device", "dev-130100")}
        audit = svc.session.execute(select(AuditEntry).where(AuditEntry.action == "ticket.create")).scalar_one()
        assert audit.actor == SYSTEM and audit.target_id == number
    # While it is open, later cycles add nothing.
    for minute in (6, 30, 120):
        s = open_and_close_incidents(devices, at(minute))
        assert s.as_dict() == {"opened": [], "joined": [], "reopened": [], "resolved": [], "errors": 0}
    assert len(tickets(devices)) == 1


def test_a_province_outage_is_one_incident_and_none_for_its_unknown_descendants(devices: Container) -> None:
    cut(devices, "130000", at(0))
    s = open_and_close_incidents(devices, at(10))
    assert len(s.opened) == 1
    [t] = tickets(devices)
    assert t["site"] == "130000" and t["impact"] == 1 and t["priority"] == "P1"
    assert t["title"] == "网络中断：河北省（130000）部→省链路 dev-130000"
    for code in SUBTREE["130000"][1:]:
        assert ticket_of(devices, f"dev-{code}") == {None}, code
    open_and_close_incidents(devices, at(20))
    assert len(tickets(devices)) == 1


def test_a_county_link_gets_the_county_impact(devices: Container) -> None:
    observe(devices, at(0), dev_130202="down")
    open_and_close_incidents(devices, at(5))
    [t] = tickets(devices)
    assert t["site"] == "130202" and t["impact"] == 3 and t["priority"] == "P2"
    assert t["title"] == "网络中断：路南区（130202）市→县链路 dev-130202"


def test_a_flapping_link_is_one_incident(devices: Container) -> None:
    # Down 10:00-10:01, 10:02-10:03, 10:04-…: one outage record (each return within 15 minutes).
    for minute, state in ((0, "down"), (1, "up"), (2, "down"), (3, "up"), (4, "down")):
        observe(devices, at(minute), dev_130200=state)
        assert open_and_close_incidents(devices, at(minute) + dt.timedelta(seconds=30)).opened == []
    s = open_and_close_incidents(devices, at(5))  # the record started five minutes ago
    assert len(s.opened) == 1
    number = s.opened[0]
    observe(devices, at(6), dev_130200="up")
    observe(devices, at(7), dev_130200="down")  # flaps again before the next call
    s = open_and_close_incidents(devices, at(8))
    assert s.opened == [] and s.resolved == [] and s.reopened == []
    [t] = tickets(devices)
    assert t["number"] == number and t["status"] in ("new", "assigned")
    with devices.unit_of_work() as svc:
        [o] = svc.session.execute(select(Outage).join(Outage.device).where(Device.hostname == "dev-130200")).scalars()
        assert o.flap_count == 3 and len(o.periods) == 4 and o.ticket_number == number


def test_a_link_that_is_back_is_resolved_once_with_a_comment(devices: Container) -> None:
    cut(devices, "130100", at(0))
    [number] = open_and_close_incidents(devices, at(6)).opened
    before = tickets(devices)[0]["status"]
    restore(devices, "130100", at(20))
    s = open_and_close_incidents(devices, at(21))
    assert s.resolved == [number]
    [t] = tickets(devices)
    assert t["status"] == "resolved"
    evs = events(devices, number)
    comments = [e for e in evs if e.kind == "comment"]
    assert len(comments) == 1 and comments[0].actor == SYSTEM and not comments[0].internal
    assert comments[0].body.startswith("链路已恢复：dev-130100 于 2026-11-02 10:20:00（北京时间） 恢复")
    assert "中断时长 20分0秒" in comments[0].body
    moves = [e.to_status for e in evs if e.kind == "transition" and e.actor == SYSTEM and e.at == at(21)]
    assert moves == to_resolved(before)
    with devices.unit_of_work() as svc:
        tk = svc.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert tk.resolved_at == at(21)
        audited = svc.session.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.actor == SYSTEM, AuditEntry.action == "ticket.transition")).scalar_one()
        assert audited == sum(e.kind == "transition" and e.actor == SYSTEM for e in evs), "every move audited"
    # Once: later cycles leave it alone.
    for minute in (22, 40):
        assert open_and_close_incidents(devices, at(minute)).resolved == []
    assert sum(e.to_status == "resolved" for e in events(devices, number)) == 1


def test_a_pending_ticket_is_resolved_directly(devices: Container) -> None:
    observe(devices, at(0), dev_440100="down")
    [number] = open_and_close_incidents(devices, at(5)).opened
    with devices.unit_of_work() as svc:
        t = svc.tickets.get(number, None, Scope.everything())
        road = {"new": ["assigned", "in_progress", "pending"], "assigned": ["in_progress", "pending"]}[t.status]
        for target in road:
            svc.tickets.transition(TEST_ACTOR, t, target, now=at(6))
    observe(devices, at(9), dev_440100="up")
    assert open_and_close_incidents(devices, at(10)).resolved == [number]
    system_moves = [(e.from_status, e.to_status) for e in events(devices, number)
                    if e.kind == "transition" and e.at == at(10)]
    assert system_moves == [("pending", "resolved")]


def test_a_link_that_flaps_after_resolution_reopens_its_ticket(devices: Container) -> None:
    observe(devices, at(0), dev_130200="down")
    [number] = open_and_close_incidents(devices, at(5)).opened
    observe(devices, at(10), dev_130200="up")
    assert open_and_close_incidents(devices, at(10.5)).resolved == [number]
    observe(devices, at(12), dev_130200="down")  # back down 2 minutes later: the same outage record
    s = open_and_close_incidents(devices, at(12.5))
    assert s.reopened == [number] and s.opened == []
    [t] = tickets(devices)
    assert t["status"] == "in_progress"
    reopen = [e for e in events(devices, number) if e.kind == "comment" and e.at == at(12.5)]
    assert len(reopen) == 1 and "再次中断" in reopen[0].body and "2026-11-02 10:12:00" in reopen[0].body
    # Still down: nothing more; back up: resolved again, still one ticket.
    assert open_and_close_incidents(devices, at(13)).as_dict()["reopened"] == []
    observe(devices, at(14), dev_130200="up")
    s = open_and_close_incidents(devices, at(14.5))
    assert s.resolved == [number]
    assert len(tickets(devices)) == 1 and tickets(devices)[0]["status"] == "resolved"
    body = [e.body for e in events(devices, number) if e.kind == "comment"][-1]
    assert "中断时长 12分0秒" in body and "闪断 1 次" in body  # 10 + 2 minutes down, the 2 up not counted


def test_a_link_that_turns_unknown_is_not_resolved_until_it_answers(devices: Container) -> None:
    observe(devices, at(0), dev_130102="down")
    [county] = open_and_close_incidents(devices, at(6)).opened
    cut(devices, "130100", at(10))  # the city fails: the county is unknown, not back
    s = open_and_close_incidents(devices, at(11))
    assert s.resolved == [] and tickets(devices)[0]["status"] in ("new", "assigned")
    [city] = open_and_close_incidents(devices, at(16)).opened
    # The city comes back, the county is still down: its down record re-opens (10 minutes < window).
    observe(devices, at(20), dev_130100="up", dev_130104="up", dev_130102="down")
    s = open_and_close_incidents(devices, at(21))
    assert s.resolved == [city] and s.opened == [] and s.reopened == []
    observe(devices, at(30), dev_130102="up")
    assert open_and_close_incidents(devices, at(31)).resolved == [county]
    assert [t["status"] for t in tickets(devices)] == ["resolved", "resolved"]


def test_a_new_outage_joins_the_device_s_open_incident(devices: Container) -> None:
    observe(devices, at(0), dev_130102="down")
    [county] = open_and_close_incidents(devices, at(6)).opened
    cut(devices, "130100", at(10))
    observe(devices, at(40), dev_130100="up", dev_130104="up", dev_130102="down")  # 30 min: a new record
    s = open_and_close_incidents(devices, at(45))
    assert s.joined == [county] and s.opened == []
    assert ticket_of(devices, "dev-130102") == {county, None}  # two down records, the unknown one without
    observe(devices, at(50), dev_130102="up")
    assert open_and_close_incidents(devices, at(51)).resolved == [county]
    body = [e.body for e in events(devices, county) if e.kind == "comment"][-1]
    assert "中断时长 20分0秒" in body  # 10:00-10:10 and 10:40-10:50; the unknown half hour is not blamed


def test_maintenance_and_generated_history_open_nothing(devices: Container) -> None:
    with devices.unit_of_work() as svc:
        site_id = svc.session.execute(select(Site.id).where(Site.code == "130200")).scalar_one()
        HistoryWriter(svc.session, flap_window=FLAP_WINDOW).add_maintenance(
            site_id=site_id, start=at(-5), end=at(30), reason="计划维护：光缆割接", created_by="tester")
    observe(devices, at(0), dev_130200="down")
    with devices.unit_of_work() as svc:
        demo = HistoryWriter(svc.session, flap_window=FLAP_WINDOW, demo=True)
        d = svc.session.execute(select(Device).where(Device.hostname == "dev-440100")).scalar_one()
        demo.transition(d.id, d.site_id, "down", "own", at(0))
    assert open_and_close_incidents(devices, at(20)).opened == []
    [number] = open_and_close_incidents(devices, at(30)).opened  # the window is over, the link still down
    assert tickets(devices)[0]["site"] == "130200" and ticket_of(devices, "dev-440100") == {None}
    assert ticket_of(devices, "dev-130200") == {number}


def test_the_monthly_report_lists_the_ticket_number(devices: Container) -> None:
    cut(devices, "130100", at(0))
    [number] = open_and_close_incidents(devices, at(6)).opened
    restore(devices, "130100", at(20))
    open_and_close_incidents(devices, at(21))
    with devices.unit_of_work() as svc:
        data = svc.reports.compute("2026-11", now=at(60))
    rows = {r["device"]: r for r in data["outages"]}
    assert rows["dev-130100"]["ticket"] == number and rows["dev-130100"]["status"] == "down"
    assert rows["dev-130102"]["ticket"] is None and rows["dev-130104"]["ticket"] is None


def test_two_workers_never_open_two_incidents(devices: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker A claimed the outage and created its ticket but has not committed; worker B runs meanwhile."""
    observe(devices, at(0), dev_440000="down")
    with devices.unit_of_work() as svc:
        outage_id = svc.session.execute(select(Outage.id)).scalar_one()
    claimed, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}
    attempts: list[Any] = []
    real_open_one = auto_incidents._open_one

    def recording(*args: Any) -> Any:
        attempts.append(real_open_one(*args))
        return attempts[-1]

    monkeypatch.setattr(auto_incidents, "_open_one", recording)

    def worker_a() -> None:
        with devices.unit_of_work() as svc:
            results["a"] = real_open_one(svc, outage_id, at(6), auto_incidents.DEFAULT_THRESHOLD)
            claimed.set()
            release.wait(20)

    def worker_b() -> None:
        results["b"] = open_and_close_incidents(devices, at(6))

    a = threading.Thread(target=worker_a)
    a.start()
    assert claimed.wait(20)
    b = threading.Thread(target=worker_b)
    b.start()
    time.sleep(1.0)  # B reads the outage (or waits for the write lock) and blocks on A's claim
    release.set()
    a.join(30)
    b.join(30)
    assert results["a"] is not None and results["a"][0] == "opened"
    assert results["b"].opened == [] and results["b"].errors == 0
    assert [t["number"] for t in tickets(devices)] == [results["a"][1]]
    assert ticket_of(devices, "dev-440000") == {results["a"][1]}
    if BACKEND == "postgresql":
        # B read the outage while A's claim was uncommitted, then lost the claim: no ticket.
        assert attempts == [None]
    else:
        # SQLite: B's first transaction waited for A's (BEGIN IMMEDIATE) and found nothing due.
        assert attempts == []


def test_the_incident_goes_to_the_province_team(devices: Container) -> None:
    from ecocloud_ops.servicedesk.teams import TeamService

    with devices.unit_of_work() as svc:
        teams = TeamService(svc.session, svc.audit)
        teams.create_team(TEST_ACTOR, name="hebei-net", display_name="河北省网络组")
        teams.create_team(TEST_ACTOR, name="guangdong-net", display_name="广东省网络组")
        teams.set_rule(TEST_ACTOR, category="network_fault", province="130000", team="hebei-net")
        teams.set_rule(TEST_ACTOR, category="network_fault", province="440000", team="guangdong-net")
    cut(devices, "130200", at(0))
    [number] = open_and_close_incidents(devices, at(5)).opened
    [t] = tickets(devices)
    assert t["team"] == "hebei-net" and t["status"] == "assigned"
    restore(devices, "130200", at(8))
    assert open_and_close_incidents(devices, at(9)).resolved == [number]
    moves = [e.to_status for e in events(devices, number) if e.kind == "transition" and e.at == at(9)]
    assert moves == ["in_progress", "resolved"]
