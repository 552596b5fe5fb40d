"""The cloud REST API over the three pools on FakeCloud adapters (the real OpenStack runs in tests/lab): tenants,
onboarding through the job, 10 VMs to ACTIVE with their addresses, the Idempotency-Key, the quota pre-check,
day-2 actions, quotas with their audit trail, service-desk cloud requests and the permission/scope checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.cloud.adapter import CloudUnreachable
from ecocloud_ops.cloud.models import Vm, VmRequest
from ecocloud_ops.errors import NotFound
from ecocloud_ops.jobs.models import Job
from ecocloud_ops.jobs.runner import Worker
from tests.conftest import Account, api_token


class Api:
    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.headers, **kw)

    def post(self, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(f"/api/v1{path}", json=body if body is not None else {},
                                headers=self.headers | (headers or {}))

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.put(f"/api/v1{path}", json=body, headers=self.headers)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.patch(f"/api/v1{path}", json=body, headers=self.headers)


@pytest.fixture
def ops(client: FlaskClient, container: Container, make_user: Callable[..., Account], fake_cloud: Any) -> Api:
    return Api(client, api_token(container, make_user("c.ops", "cloud_ops")))


def run_job(container: Container, job_id: int) -> Job:
    Worker(container).run_job_now(job_id)
    with container.unit_of_work() as svc:
        job = svc.session.get(Job, job_id)
        assert job is not None
        svc.session.expunge(job)
        return job


def onboarded(api: Api, container: Container, code: str = "finance", pool: str = "internet",
              site: str = "130100") -> dict[str, Any]:
    r = api.post("/cloud/tenants", {"name": f"{code} system", "code": code, "site_code": site,
                                    "contacts": [{"name": "张三", "phone": "010-1"}], "users": ["alice"]})
    assert r.status_code == 201, r.json
    tenant = r.json
    r = api.post(f"/cloud/tenants/{tenant['id']}/onboard", {"pool": pool})
    assert r.status_code == 202, r.json
    assert r.json["status"] == "pending" and r.json["job"]["kind"] == "cloud.onboard"
    job = run_job(container, r.json["job"]["id"])
    assert job.state == "succeeded", job.error
    return api.get(f"/cloud/tenants/{tenant['id']}").json


def test_pools_and_sync(ops: Api, container: Container, fake_cloud: Any) -> None:
    r = ops.get("/cloud/pools")
    assert r.status_code == 200
    assert [p["name"] for p in r.json["items"]] == ["internet", "egov", "business"]
    assert r.json["items"][2]["routers"] is False and r.json["items"][0]["synced_at"] is None
    r = ops.post("/cloud/sync", {"pool": "nowhere"})
    assert r.status_code == 404 and "internet" in r.json["error"]["message"]
    r = ops.post("/cloud/sync")
    assert r.status_code == 202 and r.json["kind"] == "cloud.sync"
    assert run_job(container, r.json["id"]).state == "succeeded"
    r = ops.get("/cloud/pools/internet")
    assert r.status_code == 200
    body = r.json
    assert body["synced_at"] and body["capacity"]["vcpus_total"] == 32
    assert {f["name"] for f in body["flavors"]} == {"m1.tiny", "m1.small", "m1.medium"}
    assert [i["name"] for i in body["images"]] == ["cirros-fake"]
    assert len(body["trend"]) == 1 and body["trend"][0]["vcpus_total"] == 32 and body["top_tenants"] == []
    assert ops.get("/cloud/pools/nowhere").status_code == 404
    # One pool's failure is recorded on it; the sync of one pool fails as a job with the reason.
    fake_cloud.clouds["egov"].fail_next("flavors", CloudUnreachable("compute: no answer from http://10.0.0.9"))
    r = ops.post("/cloud/sync", {"pool": "egov"})
    assert run_job(container, r.json["id"]).state == "failed"
    egov = next(p for p in ops.get("/cloud/pools").json["items"] if p["name"] == "egov")
    assert "no answer" in egov["error"]


def test_tenant_onboarding_provisioning_and_day2(ops: Api, container: Container, fake_cloud: Any) -> None:
    r = ops.post("/cloud/tenants", {"name": "x", "code": "Bad Code!"})
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "code"
    t = onboarded(ops, container)
    assert t["code"] == "finance" and t["site_code"] == "130100"
    (project,) = t["projects"]
    assert project["status"] == "active" and project["project_name"] == "finance-internet"
    assert [s["status"] for s in project["steps"]] == ["done"] * 5
    # ...and the project really is in the (fake) cloud with its network.
    cloud = fake_cloud.clouds["internet"]
    assert project["project_id"] in {p.id for p in cloud.projects()}
    assert project["network_id"] and project["subnet_id"] and project["router_id"]
    assert ops.get("/cloud/tenants/finance").json["id"] == t["id"]  # by code as well
    assert ops.get("/cloud/tenants").json["items"][0]["projects"][0]["pool"] == "internet"
    r = ops.patch(f"/cloud/tenants/{t['id']}", {"description": "财务系统"})
    assert r.status_code == 200 and r.json["description"] == "财务系统"
    r = ops.post(f"/cloud/tenants/{t['id']}/onboard", {"pool": "internet"})
    assert r.status_code == 409 and "already onboarded" in r.json["error"]["message"]
    # A failure between steps: the same call retries from the failed step, without duplicates.
    egov = fake_cloud.clouds["egov"]
    egov.fail_next("ensure_network", CloudUnreachable("network: no answer from http://10.0.0.9:9696"))
    r = ops.post(f"/cloud/tenants/{t['id']}/onboard", {"pool": "egov", "quotas": {"cores": 8}, "cidr": "10.9.0.0/24"})
    assert r.status_code == 202 and r.json["network_cidr"] == "10.9.0.0/24"
    assert run_job(container, r.json["job"]["id"]).state == "failed"
    failed = next(p for p in ops.get(f"/cloud/tenants/{t['id']}").json["projects"] if p["pool"] == "egov")
    assert failed["status"] == "failed" and "no answer" in failed["last_error"]
    assert [s["status"] for s in failed["steps"]][:3] == ["done", "done", "failed"]
    r = ops.post(f"/cloud/tenants/{t['id']}/onboard", {"pool": "egov"})
    assert r.status_code == 202
    assert run_job(container, r.json["job"]["id"]).state == "succeeded"
    done = next(p for p in ops.get(f"/cloud/tenants/{t['id']}").json["projects"] if p["pool"] == "egov")
    assert done["status"] == "active" and done["quotas"]["cores"] == 8
    assert [p.name for p in egov.projects()] == ["finance-egov"]
    assert len(egov.networks(done["project_id"])) == 1

    # 10 VMs in one request, with the Idempotency-Key as the request's id.
    body = {"tenant": "finance", "pool": "internet", "name": "web-{n:02}", "count": 10, "flavor": "m1.tiny",
            "image": "cirros-fake", "password_policy": "generated"}
    key = {"Idempotency-Key": "api-test-request-0001"}
    r = ops.post("/cloud/vm-requests", body, key)
    assert r.status_code == 201, r.json
    req = r.json
    assert req["uid"] == "api-test-request-0001" and req["status"] == "queued" and len(req["vms"]) == 10
    assert {v["stage"] for v in req["vms"]} == {"queued"} and req["job"]["state"] == "queued"
    again = ops.post("/cloud/vm-requests", body, key)
    assert again.status_code == 200 and again.json["id"] == req["id"]
    assert run_job(container, req["job_id"]).state == "succeeded"
    again = ops.post("/cloud/vm-requests", body, key)  # after the run as well
    assert again.status_code == 200 and again.json["id"] == req["id"]
    with container.unit_of_work() as svc:
        assert svc.session.execute(select(VmRequest)).scalars().all().__len__() == 1
        assert len(svc.session.execute(select(Vm)).scalars().all()) == 10
    assert len(cloud.servers(None)) == 10
    r = ops.get(f"/cloud/vm-requests/{req['id']}")
    assert r.status_code == 200 and r.json["status"] == "succeeded" and r.json["progress"] == 1.0
    assert r.json["stages"] == {"active": 10}
    assert [v["name"] for v in r.json["vms"]] == [f"web-{i:02}" for i in range(1, 11)]
    vms = ops.get("/cloud/vms", query_string={"tenant": "finance", "pool": "internet"}).json["items"]
    assert len(vms) == 10
    for v in vms:
        assert v["stage"] == "active" and v["status"] == "ACTIVE" and v["server_id"]
        (addresses,) = v["addresses"].values()
        assert addresses[0].startswith(project["network_cidr"].rsplit(".", 1)[0] + ".")
    assert ops.get("/cloud/vms", query_string={"pool": "egov"}).json["items"] == []
    assert ops.get("/cloud/vm-requests").json["items"][0]["id"] == req["id"]

    # The quota pre-check: 10 instances are in use, the default quota is 10.
    r = ops.post("/cloud/vm-requests", body | {"name": "big", "count": 3, "flavor": "m1.medium"},
                 {"Idempotency-Key": "api-test-request-0002"})
    assert r.status_code == 422, r.json
    err = r.json["error"]
    fields = {d["field"]: d["message"] for d in err["details"]}
    assert fields["quota.instances"] == "needs 3, 0 available (limit 10, in use 10)"
    assert "quota.cores" not in fields or "needs 6" in fields["quota.cores"]
    assert "quota exceeded" in err["message"]
    with container.unit_of_work() as svc:
        assert svc.session.execute(select(VmRequest)).scalars().all().__len__() == 1

    # One VM: its details, its generated password (audited), day-2 actions.
    vm = ops.get(f"/cloud/vms/{vms[0]['id']}").json
    assert vm["tenant_code"] == "finance" and vm["has_password"] is True
    r = ops.post(f"/cloud/vms/{vm['id']}/password")
    assert r.status_code == 200 and len(r.json["password"]) >= 12
    r = ops.post(f"/cloud/vms/{vm['id']}/actions", {"action": "start"})
    assert r.status_code == 409 and "ACTIVE" in r.json["error"]["message"]
    r = ops.post(f"/cloud/vms/{vm['id']}/actions", {"action": "stop"})
    assert r.status_code == 202 and r.json["job"]["kind"] == "cloud.vm_action"
    assert run_job(container, r.json["job_id"]).state == "succeeded"
    assert ops.get(f"/cloud/vms/{vm['id']}").json["status"] == "SHUTOFF"
    r = ops.post(f"/cloud/vms/{vm['id']}/actions", {"action": "explode"})
    assert r.status_code == 422
    r = ops.post(f"/cloud/vms/{vm['id']}/actions", {"action": "delete"})
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "confirm"
    r = ops.post(f"/cloud/vms/{vm['id']}/actions", {"action": "delete", "confirm": True})
    assert r.status_code == 202 and r.json["stage"] == "deleting"
    assert run_job(container, r.json["job_id"]).state == "succeeded"
    assert ops.get(f"/cloud/vms/{vm['id']}").json["stage"] == "deleted"
    assert len(cloud.servers(None)) == 9
    assert len(ops.get("/cloud/vms").json["items"]) == 9
    with container.unit_of_work() as svc:
        actions = [e.action for e in svc.session.execute(select(AuditEntry).where(
            AuditEntry.target_type == "cloud_vm", AuditEntry.target_id == str(vm["id"]))).scalars()]
    assert {"cloud.vm.password_reveal", "cloud.vm.stop", "cloud.vm.delete"} <= set(actions)

    # Offboarding is refused while VMs exist, then forced.
    r = ops.post(f"/cloud/tenants/{t['id']}/offboard", {"pool": "internet"})
    assert r.status_code == 409 and "9 VM(s)" in r.json["error"]["message"]
    r = ops.post(f"/cloud/tenants/{t['id']}/offboard", {"pool": "internet", "force": True})
    assert r.status_code == 202 and r.json["status"] == "offboarding"
    assert run_job(container, r.json["job"]["id"]).state == "succeeded"
    projects = {p["pool"]: p for p in ops.get(f"/cloud/tenants/{t['id']}").json["projects"]}
    assert projects["internet"]["status"] == "offboarded" and projects["egov"]["status"] == "active"
    assert cloud.servers(None) == [] and "finance-internet" not in {p.name for p in cloud.projects()}


def test_quota_change_is_audited_with_old_and_new_values(ops: Api, container: Container, fake_cloud: Any) -> None:
    t = onboarded(ops, container, "hr")
    r = ops.put(f"/cloud/tenants/{t['id']}/quotas", {"pool": "internet", "quotas": {"cores": 40, "ram_mb": 81920}})
    assert r.status_code == 202, r.json
    assert run_job(container, r.json["job_id"]).state == "succeeded"
    project = ops.get(f"/cloud/tenants/{t['id']}").json["projects"][0]
    assert project["quotas"]["cores"] == 40 and project["quotas"]["ram_mb"] == 81920
    usage = fake_cloud.clouds["internet"].quota_usage(project["project_id"])
    assert usage["cores"].limit == 40 and usage["ram_mb"].limit == 81920
    with container.unit_of_work() as svc:
        (entry,) = svc.session.execute(select(AuditEntry).where(AuditEntry.action == "cloud.quota.change")).scalars()
        assert entry.actor == "c.ops" and entry.target_id == "hr"
        assert entry.before == {"pool": "internet", "cores": 20, "ram_mb": 51200}
        assert entry.after == {"pool": "internet", "cores": 40, "ram_mb": 81920, "job_id": r.json["job_id"]}
    for bad in ({"pool": "internet", "quotas": {"bogus": 1}}, {"pool": "internet", "quotas": {"cores": -5}},
                {"pool": "internet", "quotas": {}}):
        assert ops.put(f"/cloud/tenants/{t['id']}/quotas", bad).status_code == 422
    assert ops.put(f"/cloud/tenants/{t['id']}/quotas", {"pool": "egov", "quotas": {"cores": 1}}).status_code == 404


def test_cloud_service_request_approval(ops: Api, container: Container, make_user: Callable[..., Account],
                                        fake_cloud: Any) -> None:
    t = onboarded(ops, container, "tax")
    from ecocloud_ops.audit.service import Actor

    with container.unit_of_work() as svc:
        tenant = svc.cloud.tenant(t["id"], Scope.everything())
        req = svc.cloud.file_request(Actor("c.ops", "cloud_ops"), Scope.everything(), kind="quota_increase",
                                     tenant=tenant, pool="internet", params={"cores": 30})
        request_id = req.id
    r = ops.get(f"/cloud/cloud-requests/{request_id}")
    assert r.status_code == 200 and r.json["status"] == "pending" and r.json["ticket"]["number"]
    assert ops.post(f"/cloud/cloud-requests/{request_id}/decision", {"comment": "x"}).status_code == 422
    r = ops.post(f"/cloud/cloud-requests/{request_id}/decision", {"approve": True, "comment": "ok"})
    assert r.status_code == 200 and r.json["status"] == "approved" and r.json["job"]["kind"] == "cloud.quota"
    assert run_job(container, r.json["job_id"]).state == "succeeded"
    assert ops.get(f"/cloud/tenants/{t['id']}").json["projects"][0]["quotas"]["cores"] == 30
    r = ops.post(f"/cloud/cloud-requests/{request_id}/decision", {"approve": False})
    assert r.status_code == 409 and "already decided" in r.json["error"]["message"]
    assert ops.get("/cloud/cloud-requests/99999").status_code == 404


def test_permissions_and_scope(client: FlaskClient, ops: Api, container: Container,
                               make_user: Callable[..., Account], fake_cloud: Any) -> None:
    t = onboarded(ops, container, "edu", site="440100")
    # Read-only roles read but do not change; the provincial roles have no cloud permission at all.
    dr = Api(client, api_token(container, make_user("c.dr", "dr_coordinator")))
    assert dr.get(f"/cloud/tenants/{t['id']}").status_code == 200
    r = dr.post(f"/cloud/tenants/{t['id']}/onboard", {"pool": "egov"})
    assert r.status_code == 403 and "cloud.manage" in r.json["error"]["message"]
    for role in ("provincial_staff", "vendor_engineer"):
        prov = Api(client, api_token(container, make_user(f"c.{role}", role, "130000",
                                                          team="vendor-a" if role == "vendor_engineer" else None)))
        for path in ("/cloud/pools", "/cloud/tenants", f"/cloud/tenants/{t['id']}", "/cloud/vms"):
            r = prov.get(path)
            assert r.status_code == 403 and "edu" not in r.get_data(as_text=True), (role, path)
        assert prov.post("/cloud/sync").status_code == 403
    assert client.get("/api/v1/cloud/tenants").status_code == 401
    # Every cloud role is national today; the scope the API passes down still hides other provinces' objects.
    r = ops.post("/cloud/vm-requests", {"tenant": "edu", "pool": "internet", "name": "db", "flavor": "m1.tiny",
                                        "image": "cirros-fake"}, {"Idempotency-Key": "scope-test-0001"})
    assert r.status_code == 201
    hebei = Scope.for_user("provincial_staff", "000000/130000/")
    guangdong = Scope.for_user("provincial_staff", "000000/440000/")
    with container.unit_of_work() as svc:
        c = svc.cloud
        assert c.tenant(t["id"], guangdong).code == "edu"
        for call in (lambda: c.tenant(t["id"], hebei), lambda: c.tenant("edu", hebei),
                     lambda: c.vm_request(r.json["id"], hebei), lambda: c.vm(r.json["vms"][0]["id"], hebei)):
            with pytest.raises(NotFound):
                call()
        assert c.tenants(hebei) == [] and c.vms(hebei) == [] and c.vm_requests(hebei) == []
    # A tenant can only be created for a site in the caller's scope, and only an existing one.
    r = ops.post("/cloud/tenants", {"name": "n", "code": "nowhere", "site_code": "999999"})
    assert r.status_code == 404
    # A refused change is audited.
    with container.unit_of_work() as svc:
        refused = svc.session.execute(select(AuditEntry).where(AuditEntry.actor == "c.dr",
                                                               AuditEntry.outcome == "failure")).scalars().all()
        assert refused and "cloud.manage" in (refused[0].detail or "")
