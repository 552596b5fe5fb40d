"""The cloud console through Flask's test client with CSRF on, over the three pools on FakeCloud adapters
(``fake_cloud``): the pools overview and the sync, tenants created and onboarded through the forms (with
the recorded steps, a failure injected between steps and the retry), VM requests with their live progress
JSON, double submission and the quota pre-check, day-2 actions, the generated-password reveal, the
service-desk cloud request approved by cloud ops, permissions, and the page shown when no pool is
configured. The worker's jobs run in this thread (``Worker.run_job_now``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.cloud.adapter import CloudAuthError, CloudError
from ecocloud_ops.cloud.models import CloudServiceRequest, Tenant, TenantProject, Vm, VmRequest
from ecocloud_ops.jobs.models import Job
from ecocloud_ops.jobs.runner import Worker
from ecocloud_ops.servicedesk.models import Ticket
from tests.conftest import Account, csrf_from, login

UID_RE = re.compile(r'name="uid" value="([^"]+)"')


@pytest.fixture
def cloud_ops(make_user: Callable[..., Account]) -> Account:
    return make_user("cloud.ops", "cloud_ops")


def logged_in(app: Flask, container: Container, account: Account) -> FlaskClient:
    client = app.test_client()
    login(client, account, container)
    return client


@pytest.fixture
def ops(app: Flask, container: Container, cloud_ops: Account, fake_cloud: Any) -> FlaskClient:
    """A logged-in cloud ops engineer (cloud.read, cloud.manage) with the three fake pools configured."""
    return logged_in(app, container, cloud_ops)


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    return client.post(path, data={"csrf_token": csrf_from(client, "/cloud/")} | (data or {}), **kw)


def page(client: FlaskClient, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:500])
    return r.get_data(as_text=True)


def flashes(html: str) -> str:
    return " ".join(re.findall(r'<div class="alert alert-[a-z]+">(.*?)</div>', html, re.S))


def form_errors(html: str) -> str:
    m = re.search(r'id="form-errors">(.*?)</div>', html, re.S)
    return m.group(1) if m else html[:1000]


def run_job(container: Container, job_id: int | None) -> Job:
    assert job_id is not None
    Worker(container, name="test-worker:1").run_job_now(job_id)
    with container.unit_of_work() as svc:
        job = svc.session.get(Job, job_id)
        assert job is not None
        svc.session.expunge(job)
        return job


def sync(client: FlaskClient, container: Container) -> None:
    r = post(client, "/cloud/sync")
    assert r.status_code == 302 and "/jobs/" in r.location, r.location
    job = run_job(container, int(r.location.rsplit("/", 1)[1]))
    assert job.state == "succeeded", job.error


def create_tenant(client: FlaskClient, container: Container, *, name: str = "不动产登记系统", code: str = "bdc",
                  site: str = "000000") -> int:
    r = post(client, "/cloud/tenants/new", {"name": name, "code": code, "site_code": site,
                                            "description": "不动产登记业务", "users": "alice, bob",
                                            "contacts": "张三, 13800000000, zhangsan@example.cn"})
    assert r.status_code == 302, r.get_data(as_text=True)[:1000]
    m = re.search(r"/cloud/tenants/(\d+)$", r.location)
    assert m, r.location
    return int(m.group(1))


def project(container: Container, tenant_id: int, pool: str) -> TenantProject:
    with container.unit_of_work() as svc:
        tp = svc.session.execute(select(TenantProject).where(TenantProject.tenant_id == tenant_id,
                                                             TenantProject.pool == pool)).scalar_one()
        svc.session.expunge(tp)
        return tp


def onboard(client: FlaskClient, container: Container, tenant_id: int, pool: str = "internet",
            **quotas: Any) -> TenantProject:
    r = post(client, f"/cloud/tenants/{tenant_id}/onboard", {"pool": pool, **{f"quota_{k}": v
                                                                              for k, v in quotas.items()}})
    assert r.status_code == 302
    tp = project(container, tenant_id, pool)
    job = run_job(container, tp.job_id)
    assert job.state == "succeeded", job.error
    return project(container, tenant_id, pool)


def ready_tenant(client: FlaskClient, container: Container, **kw: Any) -> int:
    tenant_id = create_tenant(client, container, **kw)
    assert onboard(client, container, tenant_id).status == "active"
    sync(client, container)  # flavors and images for the request form
    return tenant_id


def request_form(client: FlaskClient, tenant_id: int) -> tuple[str, str]:
    html = page(client, f"/cloud/requests/new?tenant_id={tenant_id}&pool=internet")
    m = UID_RE.search(html)
    assert m, "the form carries its idempotency key"
    return html, m.group(1)


def counts(container: Container) -> tuple[int, int]:
    with container.unit_of_work() as svc:
        return (svc.session.execute(select(func.count()).select_from(VmRequest)).scalar_one(),
                svc.session.execute(select(func.count()).select_from(Vm)).scalar_one())


# Pools ------------------------------------------------------------------------------------------
def test_pools_overview_in_chinese_with_the_sync(ops: FlaskClient, container: Container) -> None:
    home = page(ops, "/")
    assert 'href="/cloud/"' in home, "the navigation and the home card lead to the cloud pages"
    html = page(ops, "/cloud/")
    assert "云资源池" in html and "立即同步" in html, "Chinese labels by default"
    for pool, zone in (("internet", "互联网区"), ("egov", "电子政务外网区"), ("business", "业务专网区")):
        assert f'id="pool-{pool}"' in html and zone in html
    assert "az-internet" in html and "尚未同步" in html
    sync(ops, container)
    html = page(ops, "/cloud/")
    assert "尚未同步" not in html and 'id="cap-internet-vcpus"' in html
    assert re.search(r'<span class="cap-total">32</span>', html), "the fake pool's 32 vCPUs"
    capacity = page(ops, "/cloud/pools/internet")
    assert "m1.small" in capacity and "cirros-fake" in capacity and 'id="chart-cpu"' in capacity
    assert "vendor/chart.js/chart.umd.min.js" in capacity and "cdn" not in capacity.lower()
    assert ops.get("/cloud/pools/nowhere").status_code == 404
    # A pool whose sync fails shows the cloud's error; the others go on.
    fake = container.cloud.factory.clouds["egov"]  # type: ignore[attr-defined]
    fake.fail_next("flavors", CloudAuthError("identity refused the credentials (HTTP 401)"))
    sync(ops, container)
    html = page(ops, "/cloud/")
    egov = html[html.index('id="pool-egov"'):html.index('id="pool-business"')]
    assert "同步失败" in egov and "identity refused the credentials" in egov


# Tenants and onboarding -------------------------------------------------------------------------
def test_tenant_onboarding_steps_failure_retry_quotas_and_offboarding(ops: FlaskClient, container: Container,
                                                                     fake_cloud: Any) -> None:
    r = post(ops, "/cloud/tenants/new", {"name": "x", "code": "Bad Code", "site_code": "000000"})
    assert r.status_code == 422 and "code" in r.get_data(as_text=True)
    tenant_id = create_tenant(ops, container)
    html = page(ops, f"/cloud/tenants/{tenant_id}")
    assert "不动产登记系统" in html and "张三" in html and "13800000000" in html and "alice, bob" in html
    assert 'id="onboard-form"' in html and "尚未接入任何资源池" in html
    tp = onboard(ops, container, tenant_id, "internet", cores=8)
    assert tp.status == "active" and tp.project_id and tp.quotas["cores"] == 8
    assert [s["status"] for s in tp.steps] == ["done"] * 5
    html = page(ops, f"/cloud/tenants/{tenant_id}")
    steps = html[html.index('id="steps-internet"'):]
    for label in ("项目", "配额", "网络、子网和路由器", "安全组规则", "角色分配"):
        assert label in steps
    assert steps.count('data-status="done"') == 5

    # A failure between steps: the network step fails, the retry continues from it.
    cloud = fake_cloud.clouds["egov"]
    cloud.fail_next("ensure_network", CloudError("network refused (HTTP 500)", detail="neutron exploded"))
    r = post(ops, f"/cloud/tenants/{tenant_id}/onboard", {"pool": "egov"})
    assert r.status_code == 302
    job = run_job(container, project(container, tenant_id, "egov").job_id)
    assert job.state == "failed"
    tp = project(container, tenant_id, "egov")
    assert tp.status == "failed" and [s["status"] for s in tp.steps][:3] == ["done", "done", "failed"]
    html = page(ops, f"/cloud/tenants/{tenant_id}")
    err = html[html.index('id="project-egov-error"'):]
    assert "网络、子网和路由器" in err[:400] and "network refused" in err and 'id="retry-egov"' in err
    projects_before = len(cloud.projects())
    r = post(ops, f"/cloud/tenants/{tenant_id}/pools/egov/retry")
    assert r.status_code == 302
    job = run_job(container, project(container, tenant_id, "egov").job_id)
    assert job.state == "succeeded", job.error
    tp = project(container, tenant_id, "egov")
    assert tp.status == "active" and [s["status"] for s in tp.steps] == ["done"] * 5
    assert len(cloud.projects()) == projects_before, "the retry created no second project"

    # Quotas: only the changed value is applied, old and new in the audit log.
    r = post(ops, f"/cloud/tenants/{tenant_id}/pools/internet/quotas",
             {"quota_cores": "12", "quota_instances": str(tp.quotas["instances"])})
    assert r.status_code == 302
    jobs = _jobs(container, "cloud.quota")
    assert len(jobs) == 1 and jobs[0].params["quotas"] == {"cores": 12}
    assert run_job(container, jobs[0].id).state == "succeeded"
    assert project(container, tenant_id, "internet").quotas["cores"] == 12
    with container.unit_of_work() as svc:
        entry = svc.session.execute(select(AuditEntry).where(AuditEntry.action == "cloud.quota.change")).scalar_one()
        assert entry.before["cores"] == 8 and entry.after["cores"] == 12

    # Offboarding: refused without the confirmation, then done in reverse order.
    r = post(ops, f"/cloud/tenants/{tenant_id}/pools/egov/offboard", {}, follow_redirects=True)
    assert "confirm" in flashes(r.get_data(as_text=True))
    assert project(container, tenant_id, "egov").status == "active"
    r = post(ops, f"/cloud/tenants/{tenant_id}/pools/egov/offboard", {"confirm": "1"})
    assert r.status_code == 302
    assert run_job(container, project(container, tenant_id, "egov").job_id).state == "succeeded"
    assert project(container, tenant_id, "egov").status == "offboarded"
    assert tp.project_id not in {p.id for p in cloud.projects()}
    html = page(ops, "/cloud/tenants")
    assert "不动产登记系统" in html and "租户" in html


def _jobs(container: Container, kind: str) -> list[Job]:
    with container.unit_of_work() as svc:
        rows = list(svc.session.execute(select(Job).where(Job.kind == kind).order_by(Job.id)).scalars())
        for j in rows:
            svc.session.expunge(j)
        return rows


# Provisioning -----------------------------------------------------------------------------------
def test_request_three_vms_with_progress_double_submit_and_quota(ops: FlaskClient, container: Container) -> None:
    tenant_id = ready_tenant(ops, container)
    html, uid = request_form(ops, tenant_id)
    assert "m1.small" in html and "cirros-fake" in html and 'data-pool="egov"' in html
    form = {"tenant_id": str(tenant_id), "pool": "internet", "name": "web-{n:02}", "count": "3",
            "flavor": "m1.small", "image": "cirros-fake", "password_policy": "generated", "uid": uid}
    r = post(ops, "/cloud/requests/new", form)
    assert r.status_code == 302, r.get_data(as_text=True)[:1000]
    m = re.search(r"/cloud/requests/(\d+)$", r.location)
    assert m
    request_id = int(m.group(1))
    html = page(ops, r.location)
    assert 'data-live="1"' in html and "web-01" in html and "web-03" in html and "排队中" in html
    assert f'data-progress-url="/cloud/requests/{request_id}/progress.json"' in html
    # The same form submitted again (double click, browser retry): the first request, nothing new.
    r2 = post(ops, "/cloud/requests/new", form)
    assert r2.status_code == 302 and r2.location.endswith(f"/cloud/requests/{request_id}")
    assert counts(container) == (1, 3)
    assert "没有重复创建" in flashes(page(ops, r2.location))

    before = ops.get(f"/cloud/requests/{request_id}/progress.json").json
    assert before["final"] is False and len(before["vms"]) == 3
    with container.unit_of_work() as svc:
        job_id = svc.session.get(VmRequest, request_id).job_id  # type: ignore[union-attr]
    assert run_job(container, job_id).state == "succeeded"
    prog = ops.get(f"/cloud/requests/{request_id}/progress.json").json
    assert prog["final"] is True and prog["status"] == "succeeded"
    assert [v["name"] for v in prog["vms"]] == ["web-01", "web-02", "web-03"]
    for v in prog["vms"]:
        assert v["stage"] == "active" and v["status"] == "ACTIVE" and v["stage_label"] == "运行中"
        assert re.fullmatch(r"10\.\d+\.\d+\.\d+", v["address_list"][0]), v
    html = page(ops, f"/cloud/requests/{request_id}")
    assert 'data-live="1"' not in html and prog["vms"][0]["address_list"][0] in html
    assert f'href="/jobs/{job_id}"' in html
    sync(ops, container)  # the tenant's quota usage, as the sync sees it
    html = page(ops, f"/cloud/tenants/{tenant_id}")
    usage = html[html.index('id="usage-internet"'):]
    row = r'data-quota="instances"><td>实例数</td><td class="text-end">3</td>\s*<td class="text-end">10</td>'
    assert re.search(row, usage), usage[:1500]
    r3 = post(ops, "/cloud/requests/new", form)  # still the same request after it ran
    assert r3.location.endswith(f"/cloud/requests/{request_id}") and counts(container) == (1, 3)

    # Oversized: the quota pre-check's numbers on the form, nothing recorded.
    _html, uid2 = request_form(ops, tenant_id)
    r = post(ops, "/cloud/requests/new", form | {"uid": uid2, "name": "big", "count": "30"})
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="quota-error"' in body and "配额不足" in body
    assert "needs 30, 7 available" in body and "needs 30, 17 available" in body, "instances and vCPUs"
    for key, available in (("instances", 7), ("cores", 17)):
        row = body[body.index(f'<tr data-quota="{key}">'):]
        row = row[:row.index("</tr>")]
        assert "30" in row and str(available) in row, row
    assert counts(container) == (1, 3)
    assert UID_RE.search(body).group(1) == uid2  # type: ignore[union-attr]

    # The generated password: revealed on demand, audited.
    vm_id = prog["vms"][0]["id"]
    html = page(ops, f"/cloud/vms/{vm_id}")
    assert 'id="reveal-password"' in html and 'id="vm-password"' not in html
    r = post(ops, f"/cloud/vms/{vm_id}/password")
    assert r.status_code == 200 and 'id="vm-password"' in r.get_data(as_text=True)
    with container.unit_of_work() as svc:
        assert svc.session.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "cloud.vm.password_reveal")).scalar_one() == 1


def test_vm_stop_and_delete_with_confirmation(ops: FlaskClient, container: Container, fake_cloud: Any) -> None:
    tenant_id = ready_tenant(ops, container)
    _html, uid = request_form(ops, tenant_id)
    r = post(ops, "/cloud/requests/new", {"tenant_id": str(tenant_id), "pool": "internet", "name": "db", "count": "1",
                                          "flavor": "m1.tiny", "image": "cirros-fake", "uid": uid})
    assert r.status_code == 302
    with container.unit_of_work() as svc:
        vm_request = svc.session.execute(select(VmRequest)).scalar_one()
        job_id = vm_request.job_id
    run_job(container, job_id)
    with container.unit_of_work() as svc:
        vm = svc.session.execute(select(Vm)).scalar_one()
        vm_id, server_id = vm.id, vm.server_id
    html = page(ops, f"/cloud/vms?tenant_id={tenant_id}&pool=internet")
    assert f'id="vm-{vm_id}"' in html and "db" in html and 'value="stop"' in html
    assert f'id="vm-{vm_id}"' not in page(ops, "/cloud/vms?pool=egov")

    r = post(ops, f"/cloud/vms/{vm_id}/action", {"action": "stop"})
    assert r.status_code == 302
    job = _jobs(container, "cloud.vm_action")[-1]
    assert run_job(container, job.id).state == "succeeded"
    html = page(ops, f"/cloud/vms/{vm_id}")
    assert "SHUTOFF" in html and 'id="vm-delete"' in html and "data-confirm" in html
    assert 'value="start"' in html and 'value="stop"' not in html and "开机" in html

    # Resize: the flavor select offers the other flavors; the job resizes and confirms.
    assert '<option value="m1.small">' in html and '<option value="m1.tiny">' not in html
    r = post(ops, f"/cloud/vms/{vm_id}/action", {"action": "resize", "flavor": "m1.small"})
    assert r.status_code == 302
    assert run_job(container, _jobs(container, "cloud.vm_action")[-1].id).state == "succeeded"
    with container.unit_of_work() as svc:
        assert svc.session.get(Vm, vm_id).flavor == "m1.small"  # type: ignore[union-attr]

    # Delete without the confirmation field: refused, nothing queued.
    r = post(ops, f"/cloud/vms/{vm_id}/action", {"action": "delete"}, follow_redirects=True)
    assert "confirm" in flashes(r.get_data(as_text=True))
    assert len(_jobs(container, "cloud.vm_action")) == 2
    r = post(ops, f"/cloud/vms/{vm_id}/action", {"action": "delete", "confirm": "1"})
    assert r.status_code == 302
    job = _jobs(container, "cloud.vm_action")[-1]
    assert run_job(container, job.id).state == "succeeded"
    with container.unit_of_work() as svc:
        assert svc.session.get(Vm, vm_id).stage == "deleted"  # type: ignore[union-attr]
    assert fake_cloud.clouds["internet"].get_server(project(container, tenant_id, "internet").project_id,
                                                    server_id) is None
    assert f'id="vm-{vm_id}"' not in page(ops, "/cloud/vms")
    with container.unit_of_work() as svc:
        actions = set(svc.session.execute(select(AuditEntry.action).where(
            AuditEntry.action.like("cloud.vm.%"))).scalars())
    assert {"cloud.vm.request", "cloud.vm.stop", "cloud.vm.delete"} <= actions


# Service desk -----------------------------------------------------------------------------------
def test_provincial_staff_files_a_new_vm_request_and_cloud_ops_approves(
        app: Flask, ops: FlaskClient, container: Container, make_user: Callable[..., Account]) -> None:
    hebei = ready_tenant(ops, container, name="河北社保系统", code="hb-sb", site="130100")
    create_tenant(ops, container, name="广东医保系统", code="gd-yb", site="440100")
    staff = logged_in(app, container, make_user("hb.staff", "provincial_staff", "130100"))
    assert staff.get("/cloud/").status_code == 403
    html = page(staff, "/servicedesk/")
    assert 'href="/servicedesk/cloud-request"' in html
    html = page(staff, "/servicedesk/cloud-request")
    assert "河北社保系统" in html and "广东医保系统" not in html, "only tenants in the user's scope"
    assert "新建云主机" in html and "配额调整" in html
    token = csrf_from(staff, "/servicedesk/cloud-request")
    bad = staff.post("/servicedesk/cloud-request", data={"csrf_token": token, "kind": "new_vm",
                                                         "tenant_id": str(hebei), "pool": "egov", "name": "app",
                                                         "count": "2", "flavor": "m1.small", "image": "cirros-fake"})
    assert bad.status_code == 422 and "not in pool egov" in bad.get_data(as_text=True)
    r = staff.post("/servicedesk/cloud-request", data={
        "csrf_token": token, "kind": "new_vm", "tenant_id": str(hebei), "pool": "internet", "name": "app",
        "count": "2", "flavor": "m1.small", "image": "cirros-fake", "description": "社保业务扩容"})
    assert r.status_code == 302, form_errors(r.get_data(as_text=True))
    ticket_url = r.location
    html = page(staff, ticket_url)
    assert 'id="cloud-request"' in html and "等待审批" in html and "m1.small" in html
    assert 'id="cloud-approve"' not in html, "only cloud ops decide"
    with container.unit_of_work() as svc:
        req = svc.session.execute(select(CloudServiceRequest)).scalar_one()
        req_id, ticket_id = req.id, req.ticket_id
    token = csrf_from(staff, ticket_url)
    assert staff.post(f"/cloud/service-requests/{req_id}/decide",
                      data={"csrf_token": token, "decision": "approve"}).status_code == 403

    html = page(ops, ticket_url)
    assert 'id="cloud-approve"' in html and 'id="cloud-reject"' in html
    r = ops.post(f"/cloud/service-requests/{req_id}/decide",
                 data={"csrf_token": csrf_from(ops, ticket_url), "decision": "approve", "comment": "同意"})
    assert r.status_code == 302 and r.location.endswith(ticket_url.rsplit("/", 1)[1])
    with container.unit_of_work() as svc:
        req = svc.session.get(CloudServiceRequest, req_id)
        assert req is not None and req.status == "approved" and req.vm_request_id
        job_id = req.job_id
        assert svc.session.get(Ticket, ticket_id).status == "in_progress"  # type: ignore[union-attr]
    html = page(ops, ticket_url)
    assert 'id="cloud-approve"' not in html and 'id="cloud-request-vm-request"' in html
    assert run_job(container, job_id).state == "succeeded"
    with container.unit_of_work() as svc:
        ticket = svc.session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status == "resolved"
    html = page(staff, ticket_url)
    assert "云主机创建结果" in html and "app-1" in html and "app-2" in html
    assert counts(container) == (1, 2)
    # Decided once only.
    r = ops.post(f"/cloud/service-requests/{req_id}/decide",
                 data={"csrf_token": csrf_from(ops, ticket_url), "decision": "reject"}, follow_redirects=True)
    assert "already decided" in flashes(r.get_data(as_text=True))


def test_quota_increase_request_rejected(app: Flask, ops: FlaskClient, container: Container,
                                         make_user: Callable[..., Account]) -> None:
    hebei = ready_tenant(ops, container, name="河北社保系统", code="hb-sb", site="130100")
    staff = logged_in(app, container, make_user("hb.staff", "provincial_staff", "130100"))
    token = csrf_from(staff, "/servicedesk/cloud-request")
    r = staff.post("/servicedesk/cloud-request", data={"csrf_token": token, "kind": "quota_increase",
                                                       "tenant_id": str(hebei), "pool": "internet",
                                                       "quota_cores": "40"})
    assert r.status_code == 302, form_errors(r.get_data(as_text=True))
    ticket_url = r.location
    assert "配额调整" in page(staff, ticket_url)
    with container.unit_of_work() as svc:
        req = svc.session.execute(select(CloudServiceRequest)).scalar_one()
        assert req.params == {"cores": 40}
        req_id, ticket_id = req.id, req.ticket_id
    r = ops.post(f"/cloud/service-requests/{req_id}/decide",
                 data={"csrf_token": csrf_from(ops, ticket_url), "decision": "reject", "comment": "资源紧张"},
                 follow_redirects=True)
    assert r.status_code == 200, flashes(r.get_data(as_text=True))
    with container.unit_of_work() as svc:
        assert svc.session.get(CloudServiceRequest, req_id).status == "rejected"  # type: ignore[union-attr]
        assert svc.session.get(Ticket, ticket_id).status == "resolved"  # type: ignore[union-attr]
    assert project(container, hebei, "internet").quotas["cores"] == 20


# Permissions and the unconfigured state ---------------------------------------------------------
def test_cloud_pages_need_cloud_read(app: Flask, container: Container, make_user: Callable[..., Account],
                                     fake_cloud: Any) -> None:
    with container.unit_of_work() as svc:
        from tests.conftest import TEST_ACTOR

        t = svc.cloud.save_tenant(TEST_ACTOR, None, name="测试系统", code="test", site_code="000000")
        tenant_id = t.id
    net = logged_in(app, container, make_user("net.ops", "network_ops"))
    for path in ("/cloud/", "/cloud/tenants", f"/cloud/tenants/{tenant_id}", "/cloud/vms", "/cloud/requests",
                 "/cloud/pools/internet", "/cloud/requests/new"):
        assert net.get(path).status_code == 403, path
    assert 'href="/cloud/"' not in page(net, "/")
    coord = logged_in(app, container, make_user("dr.coord", "dr_coordinator"))  # cloud.read, not cloud.manage
    html = page(coord, f"/cloud/tenants/{tenant_id}")
    assert "测试系统" in html and 'id="onboard-form"' not in html
    assert coord.get("/cloud/requests/new").status_code == 403
    token = csrf_from(coord, "/cloud/")
    assert coord.post("/cloud/sync", data={"csrf_token": token}).status_code == 403
    assert coord.post(f"/cloud/tenants/{tenant_id}/onboard", data={"csrf_token": token,
                                                                   "pool": "internet"}).status_code == 403
    # CSRF: a change without the token is refused.
    ops = logged_in(app, container, make_user("cloud.ops", "cloud_ops"))
    assert ops.post("/cloud/sync").status_code == 400
    with container.unit_of_work() as svc:
        assert svc.session.execute(select(func.count()).select_from(Job)).scalar_one() == 0
        assert svc.session.execute(select(func.count()).select_from(Tenant)).scalar_one() == 1


def test_without_pools_the_page_explains_how_to_connect_a_cloud(app: Flask, container: Container,
                                                                 cloud_ops: Account) -> None:
    client = logged_in(app, container, cloud_ops)
    html = page(client, "/cloud/")
    assert 'id="cloud-not-configured"' in html and "尚未配置资源池" in html
    assert "clouds.yaml" in html and "chmod 600" in html and "cloud_pools" in html and "clouds_yaml" in html
    assert "bash scripts/demo.sh --with-cloud" in html
    assert "尚无租户" in page(client, "/cloud/tenants")
    assert 'id="cloud-not-configured"' in page(client, "/servicedesk/cloud-request")
