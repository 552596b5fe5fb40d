"""Automatic incidents from a real link cut: snmpd agents in network namespaces, the real poller driven
through the worker's poll cycle (which runs the hook with the default threshold after each cycle), and
the hook called with a threshold of a few seconds (run once, on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ecocloud_ops.bootstrap import Container
from ecocloud_ops.db import utcnow
from ecocloud_ops.jobs.runner import Worker
from ecocloud_ops.lab.netlab import LabSite, NetLab
from ecocloud_ops.network.inventory import DeviceSpec
from ecocloud_ops.network.models import Device, Outage
from ecocloud_ops.servicedesk.auto_incidents import open_and_close_incidents
from ecocloud_ops.servicedesk.models import Ticket, TicketEvent
from ecocloud_ops.sites.service import build_divisions
from tests.conftest import TEST_ACTOR

pytestmark = pytest.mark.lab

TREE = {"000000": None, "130000": "000000", "130100": "130000", "130200": "130000",
        "130102": "130100", "130104": "130100", "130202": "130200"}
NAMES = {"130000": "河北省", "130100": "石家庄市", "130200": "唐山市", "130102": "长安区", "130104": "桥西区",
         "130202": "路南区"}
THRESHOLD = dt.timedelta(seconds=3)
SYSTEM = "system:auto-incident"


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    NetLab.cleanup_stale("ecoai")
    net = NetLab([LabSite(c, p) for c, p in TREE.items()], name="ecoai", ssh=False, network="auto")
    net.start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def worker(container: Container, lab: NetLab) -> Iterator[Worker]:
    with container.unit_of_work() as svc:
        svc.sites.sync(TEST_ACTOR, build_divisions(NAMES))
        svc.devices.import_inventory(TEST_ACTOR, [
            DeviceSpec(hostname=f"dev-{code}", address=lab.address(code), site_code=code,
                       uplink_interface=lab.uplink_ifname(code), snmp_community=lab.community)
            for code in TREE if code != "000000"])
    w = Worker(container, name="lab-auto-incident")
    try:
        yield w
    finally:
        w.stop(wait=True)
        for code in TREE:
            if code != "000000" and not lab.reachable(code, 0.5):
                lab.restore(code)


def status_of(summary: dict[str, object] | None, container: Container, hostname: str) -> str:
    assert summary is not None, "the poll cycle failed"
    with container.unit_of_work() as svc:
        return svc.session.execute(select(Device.status).where(Device.hostname == hostname)).scalar_one()


def incidents(container: Container) -> list[tuple[str, str, str]]:
    with container.unit_of_work() as svc:
        return [(t.number, t.site.code, t.status)
                for t in svc.session.execute(select(Ticket).order_by(Ticket.id)).scalars()]


def test_a_real_cut_opens_one_incident_and_the_restore_resolves_it(worker: Worker, lab: NetLab,
                                                                    container: Container) -> None:
    assert status_of(worker.poll_cycle(), container, "dev-130100") == "up"
    lab.cut("130100")
    for _ in range(10):
        time.sleep(0.5)
        if status_of(worker.poll_cycle(), container, "dev-130100") == "down":
            break
    else:
        raise AssertionError("the cut city never showed down")
    with container.unit_of_work() as svc:
        states = dict(svc.session.execute(select(Device.hostname, Device.status)).all())
        started = svc.session.execute(select(Outage.started_at).join(Outage.device)
                                      .where(Device.hostname == "dev-130100")).scalar_one()
    assert states["dev-130102"] == "unknown" and states["dev-130104"] == "unknown" and states["dev-130200"] == "up"

    # Poll until the threshold has passed; before that, nothing is opened.
    number = None
    deadline = time.monotonic() + 30
    while number is None and time.monotonic() < deadline:
        time.sleep(1.0)
        worker.poll_cycle()  # its own hook uses the 5-minute default: opens nothing here
        now = utcnow()
        s = open_and_close_incidents(container, now, threshold=THRESHOLD)
        if now - started < THRESHOLD:
            assert s.opened == [], "opened before the threshold"
        else:
            assert len(s.opened) == 1, s.as_dict()
            number = s.opened[0]
    assert number is not None, "no incident within 30 s"
    assert [(n, site) for n, site, _st in incidents(container)] == [(number, "130100")], "none for the counties"

    # More cycles while it is still cut: still one incident.
    for _ in range(3):
        time.sleep(0.5)
        worker.poll_cycle()
        s = open_and_close_incidents(container, utcnow(), threshold=THRESHOLD)
        assert s.opened == [] and s.resolved == []
    assert len(incidents(container)) == 1

    lab.restore("130100")
    for _ in range(10):  # the worker's own hook resolves it in the cycle that sees the link back
        time.sleep(0.5)
        if status_of(worker.poll_cycle(), container, "dev-130100") == "up":
            break
    else:
        raise AssertionError("the restored city never showed up")
    for _ in range(3):
        worker.poll_cycle()
        open_and_close_incidents(container, utcnow(), threshold=THRESHOLD)
    assert incidents(container) == [(number, "130100", "resolved")]
    with container.unit_of_work() as svc:
        t = svc.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        evs = list(svc.session.execute(select(TicketEvent).where(TicketEvent.ticket_id == t.id)).scalars())
        outage = svc.session.execute(select(Outage).join(Outage.device)
                                     .where(Device.hostname == "dev-130100")).scalar_one()
    comments = [e.body or "" for e in evs if e.kind == "comment" and e.actor == SYSTEM]
    assert len(comments) == 1 and comments[0].startswith("链路已恢复：dev-130100") and "中断时长" in comments[0]
    assert sum(e.to_status == "resolved" for e in evs) == 1, "resolved once"
    assert t.requester_name == "系统（网络监测）" and t.category == "network_fault" and t.impact == 2
    assert outage.ticket_number == number and outage.ended_at is not None
    assert t.resolved_at is not None and t.resolved_at >= outage.ended_at
