"""Device CRUD over the API within scope, and poller gaps excluded from rates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select

from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.network.connectivity import ConnectivityService
from ecocloud_ops.network.models import Device, Outage, OutagePeriod, PollCycle, PollerGap
from tests.conftest import Account, api_token, audit_count


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_network_ops_create_change_and_retire_devices(client: FlaskClient, container: Container,
                                                       make_user: Callable[..., Account]) -> None:
    ops = auth(api_token(container, make_user("net.ops1", "network_ops")))
    body = {"hostname": "hb-r1", "ansible_host": "198.18.50.1", "site_code": "130000", "platform": "huawei",
            "snmp_community": "s3cret-community", "ansible_user": "ops", "ansible_password": "Ssh-Pass-1"}
    r = client.post("/api/v1/devices", json=body, headers=ops)
    assert r.status_code == 201, r.json
    assert r.json["hostname"] == "hb-r1" and r.json["has_snmp_secret"] and "s3cret" not in r.get_data(as_text=True)
    assert client.post("/api/v1/devices", json=body, headers=ops).status_code == 409
    r = client.patch("/api/v1/devices/hb-r1", json={"ansible_host": "198.18.50.2", "uplink_interface": "GE0/0/1"},
                     headers=ops)
    assert r.status_code == 200 and r.json["address"] == "198.18.50.2" and r.json["uplink_interface"] == "GE0/0/1"
    with container.unit_of_work() as svc:
        d = svc.session.execute(select(Device).where(Device.hostname == "hb-r1")).scalar_one()
        assert svc.devices.snmp_secret(d) == {"community": "s3cret-community"}, "a secret left out is kept"
    entries = audit_count(container)
    r = client.patch("/api/v1/devices/hb-r1", json={"snmp_version": "3"}, headers=ops)
    assert r.status_code == 422 and "snmp_user" in str(r.json["error"]["details"])
    r = client.patch("/api/v1/devices/hb-r1", json={"colour": "red"}, headers=ops)
    assert r.status_code == 422 and "colour" in r.json["error"]["message"]
    assert audit_count(container) == entries + 2, "refusals write only their audit entries"
    assert client.delete("/api/v1/devices/hb-r1", headers=ops).status_code == 204
    r = client.get("/api/v1/devices/hb-r1", headers=ops)
    assert r.status_code == 200 and r.json["retired"] is True and r.json["enabled"] is False


def test_provincial_staff_read_only_and_scoped(client: FlaskClient, container: Container,
                                               make_user: Callable[..., Account]) -> None:
    ops = auth(api_token(container, make_user("net.ops2", "network_ops")))
    for host, site, addr in (("hb-r2", "130100", "198.18.51.1"), ("gd-r2", "440100", "198.18.51.2")):
        r = client.post("/api/v1/devices", json={"hostname": host, "ansible_host": addr, "site_code": site,
                                                 "snmp_community": "c"}, headers=ops)
        assert r.status_code == 201
    hb = auth(api_token(container, make_user("hb.staff2", "provincial_staff", "130000")))
    r = client.get("/api/v1/devices", headers=hb)
    assert [d["hostname"] for d in r.json["items"]] == ["hb-r2"]
    assert client.get("/api/v1/devices/gd-r2", headers=hb).status_code == 404
    assert client.patch("/api/v1/devices/hb-r2", json={"enabled": False}, headers=hb).status_code == 403
    assert client.post("/api/v1/devices", json={"hostname": "x"}, headers=hb).status_code == 403


def test_poller_gaps_are_recorded_and_excluded(container: Container, small_tree: None) -> None:
    from ecocloud_ops.network.inventory import DeviceSpec
    from ecocloud_ops.network.poller import PollEngine
    from tests.conftest import TEST_ACTOR

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    t0 = now - dt.timedelta(hours=2)
    with container.unit_of_work() as svc:
        svc.devices.import_inventory(TEST_ACTOR, [DeviceSpec(hostname="gap-r1", address="198.18.52.1",
                                                             site_code="130100", snmp_community="c")])
        d = svc.session.execute(select(Device)).scalar_one()
        d.first_polled_at = t0
        # Down for the first 30 minutes, then the poller stops for an hour.
        svc.session.add(Outage(device_id=d.id, site_id=d.site_id, status="down", cause="own", started_at=t0,
                               ended_at=t0 + dt.timedelta(minutes=30),
                               periods=[OutagePeriod(started_at=t0, ended_at=t0 + dt.timedelta(minutes=30))]))
        svc.session.add(PollCycle(started_at=t0 + dt.timedelta(minutes=59), finished_at=t0 + dt.timedelta(minutes=60),
                                  devices=1))
    engine = PollEngine(container)
    try:
        engine.store(now, [], [], {})  # a cycle one hour after the last one
    finally:
        engine.close()
    with container.unit_of_work() as svc:
        gap = svc.session.execute(select(PollerGap)).scalar_one()
        assert gap.started_at == t0 + dt.timedelta(minutes=60) and gap.ended_at == now
        rates = ConnectivityService(svc.session).compute(Scope.everything(), t0, now, now=now)
        link = next(x for x in rates.links if x.site_code == "130100")
        assert link.down_seconds == 30 * 60 and link.up_seconds == 30 * 60, "the gap counts in neither"
        assert [(g.start, g.end) for g in rates.gaps] == [(gap.started_at, gap.ended_at)]
