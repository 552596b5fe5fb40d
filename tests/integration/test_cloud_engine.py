"""The cloud jobs (onboarding with retry, provisioning, day-2, sync, offboarding) over the FakeCloud adapter,
which passes the same contract tests as the real one (tests/lab/test_cloud_contract.py). The same flows against
the real OpenStack lab are in tests/lab/test_cloud_lab.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.cloud.adapter import META_REQUEST, CloudError, CloudQuotaExceeded, ServerRequest
from ecocloud_ops.cloud.models import CapacitySample, ProjectStatus, RequestStatus, Vm, VmStage
from ecocloud_ops.db import utcnow
from ecocloud_ops.errors import Conflict, ValidationFailed
from ecocloud_ops.jobs.models import Job
from ecocloud_ops.jobs.runner import Worker

from ..conftest import TEST_ACTOR

ALL = Scope.everything()


def run(container: Container, job_id: int | None) -> Job:
    assert job_id is not None
    Worker(container, name="test-worker").run_job_now(job_id)
    with container.unit_of_work() as svc:
        job = svc.session.get(Job, job_id)
        assert job is not None
        svc.session.expunge(job)
        return job


def onboarded(container: Container, code: str = "envdata", pool: str = "egov", **quotas: int) -> int:
    with container.unit_of_work() as svc:
        t = svc.cloud.save_tenant(TEST_ACTOR, name=f"{code} 系统", code=code, site_code="000000",
                                  users=["alice"], contacts=[{"name": "张三", "phone": "010-1", "email": "z@x"}])
        tp = svc.cloud.onboard(TEST_ACTOR, t, pool, quotas=quotas or None)
        job_id, tenant_id = tp.job_id, t.id
    job = run(container, job_id)
    assert job.state == "succeeded", job.error
    return tenant_id


@pytest.fixture
def cloud(fake_cloud: Any, small_tree: None) -> Any:
    return fake_cloud


def test_onboarding_creates_every_part_and_records_steps(container: Container, cloud: Any) -> None:
    tenant_id = onboarded(container)
    fake = cloud.clouds["egov"]
    with container.unit_of_work() as svc:
        t = svc.cloud.tenant(tenant_id, ALL)
        tp = svc.cloud.project(t, "egov")
        assert tp.status == ProjectStatus.ACTIVE
        assert [(s["name"], s["status"]) for s in tp.steps] == [
            ("project", "done"), ("quotas", "done"), ("network", "done"), ("security_group", "done"),
            ("roles", "done")]
        project_id = tp.project_id
        assert project_id and tp.network_id and tp.subnet_id and tp.router_id
    assert fake.find_project("envdata-egov").id == project_id
    assert "member" in fake.role_assignments(project_id)["alice"]
    assert fake.quota_usage(project_id)["cores"].limit == 20
    # a pool without routers gets a network and no router
    with container.unit_of_work() as svc:
        t = svc.cloud.tenant(tenant_id, ALL)
        tp2 = svc.cloud.onboard(TEST_ACTOR, t, "business")
        job_id = tp2.job_id
    assert run(container, job_id).state == "succeeded"
    with container.unit_of_work() as svc:
        tp2 = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "business")
        assert tp2.network_id and tp2.router_id is None
        assert "no router" in next(s for s in tp2.steps if s["name"] == "network")["detail"]


def test_failed_step_is_reported_and_retry_continues_from_it(container: Container, cloud: Any) -> None:
    fake = cloud.clouds["egov"]
    fake.fail_next("ensure_network", CloudError("neutron is having a bad day"))
    with container.unit_of_work() as svc:
        t = svc.cloud.save_tenant(TEST_ACTOR, name="大气监测", code="air", users=["alice"])
        tp = svc.cloud.onboard(TEST_ACTOR, t, "egov")
        job_id, tenant_id = tp.job_id, t.id
    job = run(container, job_id)
    assert job.state == "failed" and "step 'network' failed" in (job.error or "")
    with container.unit_of_work() as svc:
        t = svc.cloud.tenant(tenant_id, ALL)
        tp = svc.cloud.project(t, "egov")
        assert tp.status == ProjectStatus.FAILED
        assert "neutron is having a bad day" in (tp.last_error or "")
        assert [s["status"] for s in tp.steps] == ["done", "done", "failed", "pending", "pending"]
        svc.cloud.onboard(TEST_ACTOR, t, "egov")  # the retry is queued ...
        with pytest.raises(Conflict, match="already pending"):  # ... and a second click while it waits is refused
            svc.cloud.onboard(TEST_ACTOR, t, "egov")
    # the retry (queued above) continues from the network step: the project is not created again
    calls_before = list(fake.calls)
    with container.unit_of_work() as svc:
        job_id = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov").job_id
    assert run(container, job_id).state == "succeeded"
    new_calls = fake.calls[len(calls_before):]
    assert "ensure_project" not in new_calls and "set_quotas" not in new_calls
    assert new_calls[:1] == ["ensure_network"]
    assert [p.name for p in fake.projects()].count("air-egov") == 1
    with container.unit_of_work() as svc:
        assert svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov").status == ProjectStatus.ACTIVE


def test_provision_ten_vms_idempotently(container: Container, cloud: Any) -> None:
    tenant_id = onboarded(container)
    fake = cloud.clouds["egov"]
    fake.build_seconds = 0.3  # BUILD first, as in a real cloud: the job's wait loop runs
    with container.unit_of_work() as svc:
        t = svc.cloud.tenant(tenant_id, ALL)
        req, created = svc.cloud.request_vms(TEST_ACTOR, t, "egov", name="web-{n:02}", count=10, flavor="m1.tiny",
                                             image="cirros-fake", uid="form-token-0001")
        assert created
        again, created2 = svc.cloud.request_vms(TEST_ACTOR, t, "egov", name="web-{n:02}", count=10,
                                                flavor="m1.tiny", image="cirros-fake", uid="form-token-0001")
        assert (again.id, created2) == (req.id, False)
        request_id, job_id = req.id, req.job_id
    assert run(container, job_id).state == "succeeded"
    with container.unit_of_work() as svc:
        req = svc.cloud.vm_request(request_id, ALL)
        vms = svc.cloud.request_vms_of(req)
        assert req.status == RequestStatus.SUCCEEDED
        assert [v.name for v in vms] == [f"web-{i:02}" for i in range(1, 11)]
        assert all(v.stage == VmStage.ACTIVE and v.status == "ACTIVE" and v.server_id for v in vms)
        addresses = [a for v in vms for a in v.addresses.get("envdata-egov-net", [])]
        assert len(set(addresses)) == 10
        project_id = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov").project_id
    servers = fake.servers(project_id)
    assert len(servers) == 10 and {s.metadata[META_REQUEST] for s in servers} == {"form-token-0001"}
    # the job runs again (a worker crash and a retry): it adopts the servers, creates none
    with container.unit_of_work() as svc:
        job = svc.jobs.enqueue(TEST_ACTOR, "cloud.provision", {"request_id": request_id})
        job_id = job.id
    assert run(container, job_id).state == "succeeded"
    assert len(fake.servers(project_id)) == 10


def test_quota_precheck_and_openstack_refusal(container: Container, cloud: Any) -> None:
    tenant_id = onboarded(container, cores=4, instances=3)
    fake = cloud.clouds["egov"]
    with container.unit_of_work() as svc:
        t = svc.cloud.tenant(tenant_id, ALL)
        with pytest.raises(ValidationFailed) as refused:
            svc.cloud.request_vms(TEST_ACTOR, t, "egov", name="big", count=3, flavor="m1.medium", image="cirros-fake")
        assert "cores needs 6, 4 available" in refused.value.message
        assert {d["field"] for d in refused.value.details} == {"quota.cores", "quota.ram_mb"} or \
            "quota.cores" in {d["field"] for d in refused.value.details}
    with container.unit_of_work() as svc:
        assert svc.cloud.vm_requests(ALL) == []  # nothing recorded
    # the cloud refuses one anyway (someone else used the quota meanwhile): shown as OpenStack's refusal
    fake.fail_next("create_server", CloudQuotaExceeded("Quota exceeded for instances",
                                                       detail="Quota exceeded for instances: Requested 1, "
                                                              "but already used 3 of 3 instances"))
    with container.unit_of_work() as svc:
        req, _ = svc.cloud.request_vms(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov", name="app", count=2,
                                       flavor="m1.tiny", image="cirros-fake")
        request_id, job_id = req.id, req.job_id
    job = run(container, job_id)
    assert job.state == "failed" and "1 of 2" in (job.error or "")
    with container.unit_of_work() as svc:
        req = svc.cloud.vm_request(request_id, ALL)
        vms = svc.cloud.request_vms_of(req)
        assert req.status == RequestStatus.PARTIAL
        assert vms[0].stage == VmStage.ERROR and "OpenStack refused (quota)" in (vms[0].fault or "")
        assert "already used 3 of 3" in (vms[0].fault or "")
        assert vms[1].stage == VmStage.ACTIVE


def test_day2_actions_and_delete(container: Container, cloud: Any) -> None:
    tenant_id = onboarded(container)
    with container.unit_of_work() as svc:
        req, _ = svc.cloud.request_vms(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov", name="db", count=1,
                                       flavor="m1.tiny", image="cirros-fake", password_policy="generated")
        job_id, request_id = req.job_id, req.id
    run(container, job_id)
    with container.unit_of_work() as svc:
        vm = svc.cloud.request_vms_of(svc.cloud.vm_request(request_id, ALL))[0]
        vm_id = vm.id
        password = svc.cloud.vm_password(TEST_ACTOR, vm)
        assert password and len(password) >= 16 and password not in (vm.password_enc or "")
        job_id = svc.cloud.vm_action(TEST_ACTOR, vm, "stop").id
    assert run(container, job_id).state == "succeeded"
    with container.unit_of_work() as svc:
        vm = svc.cloud.vm(vm_id, ALL)
        assert vm.status == "SHUTOFF"
        with pytest.raises(Exception, match="while it is SHUTOFF"):
            svc.cloud.vm_action(TEST_ACTOR, vm, "stop")
        job_id = svc.cloud.vm_action(TEST_ACTOR, vm, "start").id
    assert run(container, job_id).state == "succeeded"
    with container.unit_of_work() as svc:
        vm = svc.cloud.vm(vm_id, ALL)
        assert vm.status == "ACTIVE"
        job_id = svc.cloud.vm_action(TEST_ACTOR, vm, "resize", flavor="m1.small").id
    assert run(container, job_id).state == "succeeded"  # resized and confirmed
    with container.unit_of_work() as svc:
        vm = svc.cloud.vm(vm_id, ALL)
        assert (vm.flavor, vm.status) == ("m1.small", "ACTIVE")
        with pytest.raises(ValidationFailed, match="confirm"):
            svc.cloud.vm_action(TEST_ACTOR, vm, "delete")
        job_id = svc.cloud.vm_action(TEST_ACTOR, vm, "delete", confirm=True).id
    assert run(container, job_id).state == "succeeded"
    with container.unit_of_work() as svc:
        assert svc.cloud.vm(vm_id, ALL).stage == VmStage.DELETED
        actions = set(svc.session.execute(select(AuditEntry.action).where(
            AuditEntry.target_type == "cloud_vm")).scalars())
        assert {"cloud.vm.stop", "cloud.vm.resize", "cloud.vm.start", "cloud.vm.delete",
                "cloud.vm.password_reveal"} <= actions


def test_sync_marks_disappeared_and_discovers(container: Container, cloud: Any) -> None:
    tenant_id = onboarded(container)
    fake = cloud.clouds["egov"]
    with container.unit_of_work() as svc:
        req, _ = svc.cloud.request_vms(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov", name="s", count=2,
                                       flavor="m1.tiny", image="cirros-fake")
        job_id, request_id = req.job_id, req.id
        project_id = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov").project_id
    run(container, job_id)
    with container.unit_of_work() as svc:
        vms = svc.cloud.request_vms_of(svc.cloud.vm_request(request_id, ALL))
        gone_id, gone_server = vms[0].id, vms[0].server_id
    # behind the platform's back: one deleted, one created by hand in Horizon
    fake.server_action(project_id, gone_server, "delete")
    net = fake.networks(project_id)[0]["id"]
    flavor = next(f for f in fake.flavors() if f.name == "m1.small")
    image = fake.images()[0]
    fake.create_server(project_id, ServerRequest(name="by-hand", flavor_id=flavor.id, image_id=image.id,
                                                 network_id=net, metadata={}))
    with container.unit_of_work() as svc:
        job_id = svc.jobs.enqueue(TEST_ACTOR, "cloud.sync").id
    job = run(container, job_id)
    assert job.state == "succeeded", job.error
    assert job.result["pools"]["egov"]["disappeared"] == 1
    with container.unit_of_work() as svc:
        gone = svc.cloud.vm(gone_id, ALL)
        assert gone.stage == VmStage.DELETED and gone.disappeared_at is not None
        names = {v.name: v for v in svc.cloud.vms(ALL)}
        assert "by-hand" in names and names["by-hand"].flavor == "m1.small"
        assert set(names) == {"s-2", "by-hand"}
        pools = {p["name"]: p for p in svc.cloud.pools()}
        assert pools["egov"]["capacity"]["vcpus_used"] >= 2 and pools["egov"]["synced_at"]
        assert pools["egov"]["error"] is None
        tp = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov")
        assert tp.usage["instances"]["in_use"] == 2
        assert len(svc.cloud.capacity_trend("egov")) == 1
        # a sample older than the retention goes at the next sync; the new one is added
        old = svc.cloud.capacity_trend("egov")[0]
        svc.session.add(CapacitySample(pool="egov", at=utcnow() - dt.timedelta(days=500), vcpus_total=1,
                                       vcpus_used=0, ram_mb_total=1, ram_mb_used=0, disk_gb_total=1, disk_gb_used=0))
        old_id = old.id
    with container.unit_of_work() as svc:
        job_id = svc.jobs.enqueue(TEST_ACTOR, "cloud.sync").id
    assert run(container, job_id).state == "succeeded"
    with container.unit_of_work() as svc:
        samples = svc.session.execute(select(CapacitySample).where(CapacitySample.pool == "egov")).scalars().all()
        assert len(samples) == 2 and old_id in {x.id for x in samples}
        assert all(x.at > utcnow() - dt.timedelta(days=400) for x in samples)
        assert svc.cloud.top_tenants("egov")[0]["tenant_id"] == tenant_id


def test_sync_failure_of_one_pool_is_recorded_others_go_on(container: Container, cloud: Any) -> None:
    onboarded(container)
    from ecocloud_ops.cloud.adapter import CloudUnreachable

    cloud.clouds["internet"].fail_next("flavors", CloudUnreachable("cannot reach http://127.0.0.1:1/v3"))
    with container.unit_of_work() as svc:
        job_id = svc.jobs.enqueue(TEST_ACTOR, "cloud.sync").id
    job = run(container, job_id)
    assert job.state == "succeeded"
    with container.unit_of_work() as svc:
        pools = {p["name"]: p for p in svc.cloud.pools()}
        assert "cannot reach" in pools["internet"]["error"]
        assert pools["egov"]["error"] is None and pools["egov"]["synced_at"]


def test_offboarding_refuses_with_vms_then_force_removes_in_reverse(container: Container, cloud: Any) -> None:
    tenant_id = onboarded(container)
    fake = cloud.clouds["egov"]
    with container.unit_of_work() as svc:
        req, _ = svc.cloud.request_vms(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov", name="x", count=1,
                                       flavor="m1.tiny", image="cirros-fake")
        job_id = req.job_id
        project_id = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov").project_id
    run(container, job_id)
    with container.unit_of_work() as svc:
        with pytest.raises(Conflict, match="still has 1 VM"):
            svc.cloud.offboard(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov")
        tp = svc.cloud.offboard(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov", force=True)
        job_id = tp.job_id
    calls_before = len(fake.calls)
    assert run(container, job_id).state == "succeeded"
    order = [c for c in fake.calls[calls_before:] if c in (
        "remove_role_assignments", "delete_security_groups", "delete_network", "delete_project")]
    assert order == ["remove_role_assignments", "delete_security_groups", "delete_network", "delete_project"]
    assert fake.find_project("envdata-egov") is None
    with container.unit_of_work() as svc:
        tp = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov")
        assert tp.status == ProjectStatus.OFFBOARDED
        assert all(v.stage == VmStage.DELETED for v in svc.session.execute(select(Vm)).scalars())
    assert project_id


def test_quota_change_is_audited_with_old_and_new(container: Container, cloud: Any) -> None:
    tenant_id = onboarded(container)
    with container.unit_of_work() as svc:
        job_id = svc.cloud.change_quotas(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov",
                                         {"cores": 40, "instances": 20}).id
    assert run(container, job_id).state == "succeeded"
    with container.unit_of_work() as svc:
        tp = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov")
        assert tp.quotas["cores"] == 40 and tp.quotas["instances"] == 20
        entry = svc.session.execute(select(AuditEntry).where(AuditEntry.action == "cloud.quota.change")).scalar_one()
        assert entry.before["cores"] == 20 and entry.after["cores"] == 40
        assert entry.before["instances"] == 10 and entry.after["instances"] == 20
