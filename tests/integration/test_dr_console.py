"""The DR console through Flask's test client with CSRF on: data centers, protected services (secrets
encrypted, never shown back), plans (YAML steps), drills started from the plan page and executed by the
worker in this thread against this machine (``ping``/``fail`` playbooks, a TCP health check against a
socket the test opens), abort, manual confirmations by role, findings opening change tickets, the report
page and PDF, scope and permissions, and the overdue panel of the home page."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.db import utcnow
from ecocloud_ops.dr.models import DrillRun, DrillStep, ProtectedService
from ecocloud_ops.jobs.runner import Worker
from tests.conftest import TEST_ACTOR, Account, csrf_from, login

#: A switch step that runs quickly on this machine, then the health check that ends the RTO.
PING_SWITCH = {"name": "Switch (ping)", "kind": "playbook", "playbook": "ping", "switch": True,
               "rollback": {"name": "Undo the switch (ping)", "kind": "playbook", "playbook": "ping"}}
HEALTH = {"name": "Health check at the DR center", "kind": "health_check", "target": "service", "timeout": 20}


@pytest.fixture
def listening() -> Iterator[str]:
    """``host:port`` of a socket accepting connections on loopback (the "service" the health check probes)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def coordinator(make_user: Callable[..., Account]) -> Account:
    return make_user("dr.coord", "dr_coordinator")


@pytest.fixture
def coord(app: Flask, container: Container, coordinator: Account) -> FlaskClient:
    """A logged-in DR coordinator (dr.read, dr.manage, dr.run)."""
    client = app.test_client()
    login(client, coordinator, container)
    return client


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    return client.post(path, data={"csrf_token": csrf_from(client, "/dr/")} | (data or {}), **kw)


def page(client: FlaskClient, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:500])
    return r.get_data(as_text=True)


def flashes(html: str) -> str:
    return " ".join(re.findall(r'<div class="alert alert-[a-z]+">(.*?)</div>', html, re.S))


def make_service(container: Container, target: str, steps: list[dict[str, Any]] | None, *, name: str = "核心业务系统",
                 rto: int = 60, interval: int = 90) -> tuple[int, int | None]:
    """Two centers, a protected service with a TCP health check on ``target`` and (given steps) a test plan."""
    with container.unit_of_work() as svc:
        if not svc.dr.centers():
            svc.dr.create_center(TEST_ACTOR, code="dc-prod", name="北京生产中心", role="production")
            svc.dr.create_center(TEST_ACTOR, code="dc-dr", name="北京同城中心", role="same_city_dr")
        s = svc.dr.save_service(TEST_ACTOR, name=name, primary_center="dc-prod", dr_center="dc-dr", rto_seconds=rto,
                                rpo_seconds=5, drill_interval_days=interval, health_kind="tcp", health_target=target)
        plan_id = None
        if steps is not None:
            plan_id = svc.dr.save_plan(TEST_ACTOR, s, name="季度测试演练", mode="test", steps=steps).id
        return s.id, plan_id


def start_from_plan_page(client: FlaskClient, plan_id: int) -> int:
    r = post(client, f"/dr/plans/{plan_id}/start")
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    m = re.search(r"/dr/drills/(\d+)$", r.location)
    assert m, r.location
    return int(m.group(1))


def drill_row(container: Container, drill_id: int) -> DrillRun:
    with container.unit_of_work() as svc:
        d = svc.session.get(DrillRun, drill_id)
        assert d is not None
        svc.session.expunge(d)
        return d


def steps_of(container: Container, drill_id: int) -> list[tuple[str, str, str]]:
    with container.unit_of_work() as svc:
        rows = svc.session.execute(select(DrillStep).where(DrillStep.drill_id == drill_id).order_by(DrillStep.id))
        return [(s.phase, s.name, s.status) for s in rows.scalars()]


def execute(container: Container, drill_id: int) -> None:
    """What the worker does with the drill's job, in this thread."""
    job_id = drill_row(container, drill_id).job_id
    assert job_id is not None
    Worker(container, name="test-worker:1").run_job_now(job_id)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# Overview and forms ---------------------------------------------------------------------------------
def test_the_empty_index_explains_how_to_get_a_protected_service(coord: FlaskClient) -> None:
    html = page(coord, "/dr/")
    assert 'id="dr-empty"' in html and "尚无受保护服务" in html and "bash scripts/demo.sh --with-dr" in html
    assert 'href="/dr/services/new"' in html and 'href="/dr/centers/new"' in html
    assert 'href="/dr/"' in page(coord, "/"), "the navigation and the home card lead to the DR pages"


def test_centers_services_and_plans_through_the_forms(coord: FlaskClient, container: Container,
                                                      listening: str) -> None:
    for code, name, role in (("dc-prod", "北京生产中心", "production"), ("dc-remote", "贵阳异地中心", "remote_dr")):
        r = post(coord, "/dr/centers/new", {"code": code, "name": name, "role": role, "location": "机房 A"})
        assert r.status_code == 302
    r = post(coord, "/dr/centers/new", {"code": "dc-prod", "name": "again", "role": "production"})
    assert r.status_code == 422 and "already exists" in r.get_data(as_text=True)
    html = page(coord, "/dr/")
    assert "生产中心" in html and "异地灾备中心" in html and "贵阳异地中心" in html

    dsn = "postgresql://app:S3cret-Pw-9@127.0.0.1:5432/app"
    marker = "postgresql://marker:M4rker-Pw-7@127.0.0.1:5432/app"
    form = {"name": "统一身份认证", "tenant": "部机关", "site_code": "000000", "primary_center": "dc-prod",
            "dr_center": "dc-remote", "rto_seconds": "600", "rpo_seconds": "30", "drill_interval_days": "90",
            "health_kind": "sql", "health_target": dsn, "health_query": "select not pg_is_in_recovery()",
            "marker_primary": marker, "playbook_failover": "ping", "inventory": "all:\n  hosts:\n    localhost: {}\n"}
    r = post(coord, "/dr/services/new", form | {"rto_seconds": "ten"})
    assert r.status_code == 422 and "rto_seconds" in r.get_data(as_text=True)
    assert dsn not in r.get_data(as_text=True), "a refused form does not echo the secret back"
    r = post(coord, "/dr/services/new", form)
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    service_id = int(r.location.rsplit("/", 1)[1])
    with container.unit_of_work() as svc:
        row = svc.session.execute(text("SELECT * FROM dr_services WHERE id = :id"), {"id": service_id}).mappings().one()
        stored = " ".join(str(v) for v in row.values())
        assert "S3cret-Pw-9" not in stored and "M4rker-Pw-7" not in stored and "127.0.0.1:5432" not in stored
        s = svc.dr.service(service_id, Scope.everything())
        assert svc.dr.secret(s, "health_target") == dsn and svc.dr.secret(s, "marker_primary") == marker
        assert s.playbooks == {"failover": "ping"} and s.tenant == "部机关"
    for path in (f"/dr/services/{service_id}", f"/dr/services/{service_id}/edit", "/dr/"):
        html = page(coord, path)
        assert "S3cret-Pw-9" not in html and "M4rker-Pw-7" not in html and "127.0.0.1:5432" not in html, path
    html = page(coord, f"/dr/services/{service_id}")
    assert 'id="marker_primary-state">（已设置）' in html and 'id="marker_dr-state">未设置' in html
    assert "统一身份认证" in html and "贵阳异地中心" in html

    # An edit with the secret inputs left empty keeps them; the "remove" box clears an optional one.
    edit = form | {"health_target": "", "marker_primary": "", "rto_seconds": "300"}
    assert post(coord, f"/dr/services/{service_id}/edit", edit).status_code == 302
    with container.unit_of_work() as svc:
        s = svc.dr.service(service_id, Scope.everything())
        assert s.rto_seconds == 300 and svc.dr.secret(s, "health_target") == dsn
        assert svc.dr.secret(s, "marker_primary") == marker
    assert post(coord, f"/dr/services/{service_id}/edit", edit | {"clear_marker_primary": "1"}).status_code == 302
    with container.unit_of_work() as svc:
        assert svc.dr.service(service_id, Scope.everything()).marker_primary_enc is None

    # A new plan's form holds the mode's default steps; YAML and step errors are shown next to the form.
    html = page(coord, f"/dr/services/{service_id}/plans/new")
    assert "dr_precheck" in html and "dr_copy_build" in html
    assert "ping" in page(coord, f"/dr/services/{service_id}/plans/new?mode=disaster"), "failover: ping"
    plan = {"name": "季度演练", "mode": "test", "schedule": "0 2 1 1,4,7,10 *"}
    r = post(coord, f"/dr/services/{service_id}/plans/new", plan | {"steps": "- name: [unclosed"})
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="form-errors"' in body and "not valid YAML" in body and "line 1" in body
    r = post(coord, f"/dr/services/{service_id}/plans/new", plan | {"steps": "- {name: x, kind: explode}"})
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="steps-error"' in body and "steps[0].kind" in body
    steps = ("- {name: Switch, kind: playbook, playbook: ping, switch: true}\n"
             "- {name: Health, kind: health_check, target: service}\n")
    r = post(coord, f"/dr/services/{service_id}/plans/new", plan | {"steps": steps})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    html = page(coord, r.location)
    assert 'id="plan-steps"' in html and "<code>ping</code>" in html and "服务地址" in html
    assert re.search(r'id="next-run">\d{4}-\d\d-01 02:00<', html), "the next quarterly run, Beijing time"
    assert 'id="start-drill"' in html and "测试演练" in html


# Drills ---------------------------------------------------------------------------------------------
def test_a_drill_started_from_the_plan_page_runs_and_shows_its_rto(coord: FlaskClient, container: Container,
                                                                   listening: str) -> None:
    service_id, plan_id = make_service(container, listening, [PING_SWITCH, HEALTH])
    assert plan_id is not None
    drill_id = start_from_plan_page(coord, plan_id)
    html = page(coord, f"/dr/drills/{drill_id}")
    assert "排队中" in html and 'data-live="1"' in html and 'id="abort-drill"' in html

    # One drill at a time: the second start names the running drill and links to it.
    r = post(coord, f"/dr/plans/{plan_id}/start")
    assert r.status_code == 302 and r.location.endswith(f"/dr/plans/{plan_id}")
    html = page(coord, r.location)
    assert f"drill #{drill_id}" in flashes(html) and f'href="/dr/drills/{drill_id}" id="running-drill-link"' in html
    with container.unit_of_work() as svc:
        assert svc.dr.drills(Scope.everything(), service_id=service_id)[1] == 1

    execute(container, drill_id)
    d = drill_row(container, drill_id)
    assert d.status == "succeeded", d.status_reason
    assert d.rto_seconds is not None and d.rto_met is True
    html = page(coord, f"/dr/drills/{drill_id}")
    assert 'data-live=""' in html and 'id="abort-drill"' not in html
    assert html.count(">成功</span>") >= 3, "the drill and its two steps succeeded"
    assert f"{d.rto_seconds:.1f}秒" in html
    assert listening not in html, "the health target is a secret, even inside a step's message"
    assert re.search(r'href="/automation/runs/\d+">#\d+</a>', html), "the switch step links to its playbook run"
    assert re.search(r'href="/servicedesk/CHG-[^"]+">CHG-', html), "the automatic RPO finding opened a change"
    status = coord.get(f"/dr/drills/{drill_id}/status").json
    assert status["status"] == "succeeded" and status["active"] is False
    assert status["rto"]["measured"] == d.rto_seconds and status["rto"]["met"] is True
    assert [s["status"] for s in status["steps"]] == ["succeeded", "succeeded"]
    assert all(listening not in s["message"] for s in status["steps"])
    html = page(coord, f"/dr/services/{service_id}")
    assert 'id="service-overdue"' not in html and 'id="service-running"' not in html
    html = page(coord, f"/dr/drills?status=succeeded&service_id={service_id}")
    assert f'href="/dr/drills/{drill_id}"' in html
    assert f'href="/dr/drills/{drill_id}"' not in page(coord, "/dr/drills?status=failed")


def test_a_failed_step_rolls_back_and_shows_why(coord: FlaskClient, container: Container, listening: str) -> None:
    _sid, plan_id = make_service(container, listening, [
        PING_SWITCH, {"name": "Verify (fails)", "kind": "playbook", "playbook": "fail"}, HEALTH])
    assert plan_id is not None
    drill_id = start_from_plan_page(coord, plan_id)
    execute(container, drill_id)
    assert steps_of(container, drill_id) == [
        ("step", "Switch (ping)", "succeeded"), ("step", "Verify (fails)", "failed"),
        ("step", "Health check at the DR center", "skipped"), ("rollback", "Undo the switch (ping)", "succeeded")]
    html = page(coord, f"/dr/drills/{drill_id}")
    assert 'id="drill-reason"' in html and "Verify (fails)" in html and "已回退" in html and "已跳过" in html


def test_a_queued_drill_is_aborted_at_once(coord: FlaskClient, container: Container, listening: str) -> None:
    _sid, plan_id = make_service(container, listening, [PING_SWITCH, HEALTH])
    assert plan_id is not None
    drill_id = start_from_plan_page(coord, plan_id)
    r = post(coord, f"/dr/drills/{drill_id}/abort")
    assert r.status_code == 302
    html = page(coord, r.location)
    assert "在开始前已中止" in flashes(html) and "已中止" in html and 'id="abort-drill"' not in html
    d = drill_row(container, drill_id)
    assert d.status == "aborted" and d.abort_requested_by == "dr.coord"
    assert {s for _p, _n, s in steps_of(container, drill_id)} == {"skipped"}
    # Aborting again is refused with a message, not an error page; the service is free for the next drill.
    r = post(coord, f"/dr/drills/{drill_id}/abort")
    assert r.status_code == 302 and "aborted" in flashes(page(coord, r.location))
    assert start_from_plan_page(coord, plan_id) > drill_id


def test_manual_steps_are_confirmed_by_their_role_only(app: Flask, coord: FlaskClient, container: Container,
                                                       make_user: Callable[..., Account], listening: str) -> None:
    _sid, plan_id = make_service(container, listening, [
        {"name": "Approve the switch", "kind": "manual", "role": "dr_coordinator",
         "instructions": "Check that the business owner agreed.", "timeout": 120},
        {"name": "Cloud team checks the copy", "kind": "manual", "role": "cloud_ops", "timeout": 120},
    ])
    assert plan_id is not None
    drill_id = start_from_plan_page(coord, plan_id)
    worker = threading.Thread(target=execute, args=(container, drill_id), daemon=True)
    worker.start()
    try:
        wait_for(lambda: steps_of(container, drill_id)[0][2] == "waiting", "the first manual step")
        cloud = app.test_client()
        login(cloud, make_user("cloud.ops", "cloud_ops"), container)
        html = page(cloud, f"/dr/drills/{drill_id}")
        assert "Approve the switch" in html and 'id="confirm-not-yours"' in html and 'id="confirm-form"' not in html
        assert 'id="abort-drill"' not in html, "no dr.run, no abort button"
        r = cloud.post(f"/dr/drills/{drill_id}/confirm", data={"csrf_token": csrf_from(cloud, "/"),
                                                                "decision": "confirm"})
        assert r.status_code == 302 and "dr_coordinator" in flashes(page(cloud, r.location))
        assert steps_of(container, drill_id)[0][2] == "waiting"

        html = page(coord, f"/dr/drills/{drill_id}")
        assert 'id="confirm-form"' in html and "Check that the business owner agreed." in html
        r = post(coord, f"/dr/drills/{drill_id}/confirm", {"decision": "confirm", "note": "业务方已同意"})
        assert r.status_code == 302 and "步骤已确认" in flashes(page(coord, r.location))
        wait_for(lambda: steps_of(container, drill_id)[1][2] == "waiting", "the second manual step")
        with container.unit_of_work() as svc:
            first = svc.session.execute(select(DrillStep).where(DrillStep.drill_id == drill_id)
                                        .order_by(DrillStep.id)).scalars().first()
            assert first is not None and first.confirmed_by == "dr.coord" and "业务方已同意" in first.message

        # The coordinator cannot confirm the cloud team's step: refused with the role it needs.
        html = page(coord, f"/dr/drills/{drill_id}")
        assert 'id="confirm-form"' not in html and 'id="confirm-not-yours"' in html
        r = post(coord, f"/dr/drills/{drill_id}/confirm", {"decision": "confirm"})
        assert r.status_code == 302 and "cloud_ops" in flashes(page(coord, r.location))
        assert steps_of(container, drill_id)[1][2] == "waiting"
        # The cloud team (no dr.run) confirms its own step: the named role is what counts.
        html = page(cloud, f"/dr/drills/{drill_id}")
        assert 'id="confirm-form"' in html
        r = cloud.post(f"/dr/drills/{drill_id}/confirm", data={"csrf_token": csrf_from(cloud, "/"),
                                                                "decision": "confirm", "note": "副本正常"})
        assert r.status_code == 302
        worker.join(timeout=30)
        assert not worker.is_alive()
    finally:
        worker.join(timeout=30)
    assert drill_row(container, drill_id).status == "succeeded"
    assert [s for _p, _n, s in steps_of(container, drill_id)] == ["succeeded", "succeeded"]


def test_abort_while_waiting_for_a_confirmation(coord: FlaskClient, container: Container, listening: str) -> None:
    _sid, plan_id = make_service(container, listening, [
        PING_SWITCH, {"name": "Approve", "kind": "manual", "role": "dr_coordinator", "timeout": 120}])
    assert plan_id is not None
    drill_id = start_from_plan_page(coord, plan_id)
    worker = threading.Thread(target=execute, args=(container, drill_id), daemon=True)
    worker.start()
    try:
        wait_for(lambda: steps_of(container, drill_id)[1][2] == "waiting", "the manual step")
        r = post(coord, f"/dr/drills/{drill_id}/abort")
        assert r.status_code == 302 and "按相反顺序回退" in flashes(page(coord, r.location))
        worker.join(timeout=60)
        assert not worker.is_alive()
    finally:
        worker.join(timeout=60)
    assert drill_row(container, drill_id).status == "aborted"
    assert [s for _p, _n, s in steps_of(container, drill_id)] == ["succeeded", "canceled", "succeeded"]


def test_a_finding_opens_a_change_ticket(coord: FlaskClient, container: Container, listening: str) -> None:
    _sid, plan_id = make_service(container, listening, [PING_SWITCH, HEALTH])
    assert plan_id is not None
    drill_id = start_from_plan_page(coord, plan_id)
    r = post(coord, f"/dr/drills/{drill_id}/findings", {"severity": "warning", "text": "切换脚本缺少 DNS 更新步骤"})
    assert r.status_code == 302
    m = re.search(r"变更工单 (CHG-[\w-]+)", flashes(page(coord, r.location.split("#")[0])))
    assert m, "the flash names the change ticket"
    number = m.group(1)
    html = page(coord, f"/dr/drills/{drill_id}")
    assert f'href="/servicedesk/{number}">{number}</a>' in html and "切换脚本缺少 DNS 更新步骤" in html
    ticket = page(coord, f"/servicedesk/{number}")
    assert "切换脚本缺少 DNS 更新步骤" in ticket and f"#{drill_id}" in ticket

    r = post(coord, f"/dr/drills/{drill_id}/findings", {"severity": "loud", "text": "x"})
    assert r.status_code == 302 and "severity" in flashes(page(coord, r.location.split("#")[0]))
    # A finding recorded without a ticket gets one from the drill page.
    with container.unit_of_work() as svc:
        finding = svc.dr.add_finding(TEST_ACTOR, svc.dr.drill(drill_id, Scope.everything()), "info", "以后再说",
                                     open_ticket=False)
        finding_id = finding.id
    html = page(coord, f"/dr/drills/{drill_id}")
    assert f"/dr/drills/{drill_id}/findings/{finding_id}/ticket" in html
    r = post(coord, f"/dr/drills/{drill_id}/findings/{finding_id}/ticket")
    assert r.status_code == 302 and "CHG-" in flashes(page(coord, r.location.split("#")[0]))


def test_the_report_page_and_pdf(coord: FlaskClient, container: Container, listening: str, tmp_path: Path) -> None:
    _sid, plan_id = make_service(container, listening, [PING_SWITCH, HEALTH])
    assert plan_id is not None
    drill_id = start_from_plan_page(coord, plan_id)
    execute(container, drill_id)
    d = drill_row(container, drill_id)
    assert d.status == "succeeded" and d.rto_seconds is not None
    rto = f"{d.rto_seconds:.1f}"

    r = coord.get(f"/dr/drills/{drill_id}/report")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "script-src" not in r.headers["Content-Security-Policy"]
    assert "灾备演练报告" in html and "核心业务系统" in html and "北京同城中心" in html and "同城灾备中心" in html
    assert f"{rto}秒" in html and "达标" in html and "<td>回退</td>" not in html, "no rollback ran"
    assert "CHG-" in html and "dr.coord" in html and listening not in html
    english = coord.get(f"/dr/drills/{drill_id}/report?lang=en").get_data(as_text=True)
    assert "DR drill report" in english and f"{rto} s" in english

    r = coord.get(f"/dr/drills/{drill_id}/report.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.data.startswith(b"%PDF")
    assert r.headers["Content-Disposition"] == f'attachment; filename="dr-drill-{drill_id}.pdf"'
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(r.data)
    extracted = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    assert "灾备演练报告" in extracted.stdout and "恢复时间" in extracted.stdout and rto in extracted.stdout


# Scope, permissions and the home page ----------------------------------------------------------------
def test_provincial_staff_cannot_open_dr_pages(app: Flask, container: Container, make_user: Callable[..., Account],
                                               listening: str) -> None:
    _sid, plan_id = make_service(container, listening, [PING_SWITCH, HEALTH])
    assert plan_id is not None
    with container.unit_of_work() as svc:
        drill_id = svc.dr.start(TEST_ACTOR, svc.dr.plan(plan_id, Scope.everything())).id
    client = app.test_client()
    login(client, make_user("hebei.staff", "provincial_staff", "130000"), container)
    for path in ("/dr/", "/dr/drills", f"/dr/plans/{plan_id}", f"/dr/drills/{drill_id}",
                 f"/dr/drills/{drill_id}/status", f"/dr/drills/{drill_id}/report", f"/dr/drills/{drill_id}/report.pdf"):
        r = client.get(path)
        assert r.status_code in (403, 404), (path, r.status_code)
        assert "核心业务系统" not in r.get_data(as_text=True)
    r = client.post(f"/dr/plans/{plan_id}/start", data={"csrf_token": csrf_from(client, "/")})
    assert r.status_code == 403
    home = page(client, "/")
    assert 'id="dr-overdue"' not in home and 'href="/dr/"' not in home


def test_unknown_objects_are_404_pages(coord: FlaskClient) -> None:
    """A drill or service that does not exist is a 404 page, for a GET and a POST alike (objects of another
    province answer the same: see test_permissions_matrix)."""
    r = coord.get("/dr/drills/999999")
    assert r.status_code == 404
    assert post(coord, "/dr/drills/999999/abort").status_code == 404
    assert coord.get("/dr/services/999999/edit").status_code == 404


def test_the_home_page_lists_overdue_services(coord: FlaskClient, container: Container, listening: str) -> None:
    service_id, _plan = make_service(container, listening, None, name="公文交换系统", interval=30)
    make_service(container, listening, None, name="刚演练过的系统", interval=30)
    with container.unit_of_work() as svc:
        fresh = svc.session.execute(select(ProtectedService).where(ProtectedService.name == "刚演练过的系统"))
        fresh.scalar_one().last_success_at = utcnow()
    html = page(coord, "/")
    panel = html.split('id="dr-overdue"', 1)[1].split("</div></div>", 1)[0]
    assert f'href="/dr/services/{service_id}">公文交换系统</a>' in panel and "从未成功演练" in panel
    assert "刚演练过的系统" not in panel
    index = page(coord, "/dr/")
    assert "演练逾期" in index.split("公文交换系统", 1)[1].split("</tr>", 1)[0]
