"""Cloud tenants end to end against the real OpenStack lab (Keystone, Nova with the fake driver, Placement,
Glance, Neutron, Cinder's API): the platform's own jobs and services, checked through OpenStack itself with an admin
connection. Each VM's fixed IP is given to a network namespace running sshd (lab/guests.py), so the post-boot
playbook really runs against "the VM"."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.cloud.adapter import CloudAdapter, CloudError
from ecocloud_ops.cloud.models import ProjectStatus, RequestStatus, TenantProject, Vm, VmRequest, VmStage
from ecocloud_ops.cloud.openstack_adapter import OpenStackAdapter
from ecocloud_ops.cloud.pools import Connector
from ecocloud_ops.errors import ValidationFailed
from ecocloud_ops.jobs.models import Job
from ecocloud_ops.jobs.runner import Worker
from ecocloud_ops.lab.guests import GuestHosts
from ecocloud_ops.lab.openstack import OpenStackLab

from ..conftest import CLOUD_POOLS, TEST_ACTOR, Account

pytestmark = [
    pytest.mark.lab,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:openstack.*"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack.*"),
]
ALL = Scope.everything()


@pytest.fixture(scope="module")
def guests(oslab: OpenStackLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestHosts]:
    """Stand-in guests for every ACTIVE server of the lab (polled every 0.5 s)."""
    GuestHosts.cleanup_stale("ecogst")
    hosts = GuestHosts("ecogst", tmp_path_factory.mktemp("guests"))
    hosts.watch(oslab.connect, interval=0.5)
    try:
        yield hosts
    finally:
        hosts.stop()


@pytest.fixture
def lab_container(container: Container, oslab_clouds_yaml: Path, guests: GuestHosts, small_tree: None,
                  tmp_path: Path) -> Container:
    """The test container pointed at the lab: three pools (availability zones of the cloud "ecolab"), the
    lab's clouds.yaml, the guests' key, and the baseline playbook writing under a directory per guest."""
    container.settings = container.settings.model_copy(update={
        "cloud_pools": CLOUD_POOLS, "clouds_yaml": oslab_clouds_yaml, "cloud_ssh_key_path": guests.private_key,
        "cloud_ssh_wait_seconds": 60,
        "cloud_guest_vars": {"baseline_root": f"{tmp_path}/guest-root/{{{{ inventory_hostname }}}}",
                             "ansible_python_interpreter": "/usr/bin/python3"}})
    container.__dict__["cloud"] = Connector(container.settings)
    return container


def run(container: Container, job_id: int | None) -> Job:
    assert job_id is not None
    Worker(container, name="lab-worker").run_job_now(job_id)
    with container.unit_of_work() as svc:
        job = svc.session.get(Job, job_id)
        assert job is not None
        svc.session.expunge(job)
        return job


def new_tenant(container: Container, admin: Any, pool: str = "egov", *, onboard: bool = True,
               quotas: dict[str, int] | None = None) -> tuple[int, str]:
    code = f"t{uuid.uuid4().hex[:8]}"
    user = admin.identity.create_user(name=f"{code}-ops", password=uuid.uuid4().hex, domain_id="default")
    with container.unit_of_work() as svc:
        t = svc.cloud.save_tenant(TEST_ACTOR, name=f"生态环境 {code}", code=code, users=[user.name])
        tenant_id = t.id
        job_id = svc.cloud.onboard(TEST_ACTOR, t, pool, quotas=quotas).job_id if onboard else None
    if onboard:
        job = run(container, job_id)
        assert job.state == "succeeded", job.error
    return tenant_id, code


def project_of(container: Container, tenant_id: int, pool: str = "egov") -> TenantProject:
    with container.unit_of_work() as svc:
        tp = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), pool)
        svc.session.expunge(tp)
        return tp


def test_onboarding_end_to_end_verified_through_openstack(lab_container: Container, admin: Any) -> None:
    t0 = time.monotonic()
    # quotas other than every service's stock defaults (which equal the platform's): proof they were applied
    wanted = {"cores": 24, "ram_mb": 40960, "instances": 12, "networks": 4, "routers": 1, "ports": 40,
              "volumes": 8, "gigabytes": 800}
    tenant_id, code = new_tenant(lab_container, admin, quotas=wanted)
    print(f"\n[cloud] onboarding in {time.monotonic() - t0:.1f} s")
    tp = project_of(lab_container, tenant_id)
    assert tp.status == ProjectStatus.ACTIVE and all(s["status"] == "done" for s in tp.steps)
    project = admin.identity.get_project(tp.project_id)
    assert project.name == f"{code}-egov"
    quota = admin.compute.get_quota_set(project.id)
    assert (quota.cores, quota.ram, quota.instances) == (24, 40960, 12)
    nquota = admin.network.get_quota(project.id)
    assert (nquota.networks, nquota.routers, nquota.ports, nquota.subnets) == (4, 1, 40, 10)  # subnets: default
    vquota = admin.block_storage.get_quota_set(project.id)  # the lab's Cinder defaults are 2 volumes, 20 GB
    assert (vquota.volumes, vquota.gigabytes) == (8, 800)
    network = admin.network.get_network(tp.network_id)
    assert network.project_id == project.id and network.name == f"{code}-egov-net"
    subnet = admin.network.get_subnet(tp.subnet_id)
    assert subnet.cidr == tp.network_cidr
    router = admin.network.get_router(tp.router_id)
    public = admin.network.find_network("public", ignore_missing=False)
    assert router.external_gateway_info["network_id"] == public.id
    assert [p.fixed_ips[0]["subnet_id"] for p in admin.network.ports(device_id=router.id,
                                                                      device_owner="network:router_interface")] == [
        subnet.id]
    group = next(iter(admin.network.security_groups(project_id=project.id, name="default")))
    rules = {(r.protocol, r.port_range_min) for r in admin.network.security_group_rules(
        security_group_id=group.id, direction="ingress", ether_type="IPv4")}
    assert {("tcp", 22), ("icmp", None)} <= rules
    user = admin.identity.find_user(f"{code}-ops", ignore_missing=False)
    member = admin.identity.find_role("member", ignore_missing=False)
    assigned = list(admin.identity.role_assignments(scope_project_id=project.id, user_id=user.id))
    assert [a.role["id"] for a in assigned] == [member.id]


class _FailOnce:
    """The real adapter with one failure injected between the network and the security-group steps."""

    def __init__(self, real: CloudAdapter, method: str) -> None:
        self._real, self._method, self.failed = real, method, False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name == self._method and not self.failed:
            def fail(*args: Any, **kwargs: Any) -> Any:
                self.failed = True
                raise CloudError("injected failure: the neutron server went away")
            return fail
        return attr


def test_retry_after_a_failure_between_steps(lab_container: Container, admin: Any) -> None:
    wrappers: dict[str, _FailOnce] = {}

    def factory(pool: Any, path: Path | None) -> Any:
        wrappers[pool.name] = _FailOnce(OpenStackAdapter(pool, path), "ensure_default_security_rules")
        return wrappers[pool.name]

    lab_container.__dict__["cloud"] = Connector(lab_container.settings, factory=factory)
    tenant_id, code = new_tenant(lab_container, admin, onboard=False)
    with lab_container.unit_of_work() as svc:
        job_id = svc.cloud.onboard(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov").job_id
    job = run(lab_container, job_id)
    assert job.state == "failed" and "step 'security_group' failed" in (job.error or "")
    tp = project_of(lab_container, tenant_id)
    assert [s["status"] for s in tp.steps] == ["done", "done", "done", "failed", "pending"]
    assert "neutron server went away" in (tp.last_error or "")
    # what was done exists in OpenStack; the retry continues from the failed step and duplicates nothing
    with lab_container.unit_of_work() as svc:
        job_id = svc.cloud.onboard(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov").job_id
    assert run(lab_container, job_id).state == "succeeded"
    assert [p.name for p in admin.identity.projects(name=f"{code}-egov")] == [f"{code}-egov"]
    project_id = project_of(lab_container, tenant_id).project_id
    assert [n.name for n in admin.network.networks(project_id=project_id)] == [f"{code}-egov-net"]
    assert len(list(admin.network.routers(project_id=project_id))) == 1
    assert project_of(lab_container, tenant_id).status == ProjectStatus.ACTIVE


def test_ten_vms_from_a_service_request_configured_by_the_post_boot_playbook(
        lab_container: Container, admin: Any, guests: GuestHosts, make_user: Any, tmp_path: Path) -> None:
    tenant_id, code = new_tenant(lab_container, admin)
    staff: Account = make_user("hb.staff", "provincial_staff", site="130000")
    ops: Account = make_user("cloud.ops", "cloud_ops")
    with lab_container.unit_of_work() as svc:
        t = svc.cloud.tenant(tenant_id, ALL)
        t.site_code = "130000"  # a Hebei application system: the provincial staff may ask for it
        user = svc.auth.by_username(staff.username)
        from ecocloud_ops.audit.service import Actor

        creq = svc.cloud.file_request(Actor(staff.username, role=staff.role, channel="console"),
                                      Scope.for_user("provincial_staff", "000000/130000/"), kind="new_vm",
                                      tenant=t, pool="egov", requester=user,
                                      params={"name": "app-{n:02}", "count": 10, "flavor": "m1.tiny",
                                              "image": "cirros-fake", "playbook": "baseline_hardening"})
        creq_id, ticket_id = creq.id, creq.ticket_id
    with lab_container.unit_of_work() as svc:
        from ecocloud_ops.audit.service import Actor

        creq = svc.cloud.service_request(creq_id)
        svc.cloud.decide(Actor(ops.username, role=ops.role, channel="console"), creq, True, "ok")
        request_id, job_id = creq.vm_request_id, creq.job_id
    t0 = time.monotonic()
    job = run(lab_container, job_id)
    elapsed = time.monotonic() - t0
    assert job.state == "succeeded", job.error
    print(f"\n[cloud] 10 VMs ACTIVE and configured in {elapsed:.1f} s")
    with lab_container.unit_of_work() as svc:
        req = svc.session.get(VmRequest, request_id)
        assert req is not None and req.status == RequestStatus.SUCCEEDED
        vms = svc.cloud.request_vms_of(req)
        assert [v.stage for v in vms] == [VmStage.CONFIGURED] * 10
        addresses = {v.name: v.addresses[f"{code}-egov-net"][0] for v in vms}
        project_id = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "egov").project_id
        run_ids = {v.playbook_run_id for v in vms}
        from ecocloud_ops.servicedesk.models import Ticket, TicketEvent

        ticket = svc.session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status == "resolved"
        bodies = [e.body or "" for e in svc.session.execute(select(TicketEvent).where(
            TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)).scalars()]
        assert any("approved: provisioning job" in b for b in bodies)
        assert any("provisioning succeeded: 10/10 ready" in b for b in bodies)
        assert all(name in bodies[-1] and ip in bodies[-1] for name, ip in addresses.items())
    # OpenStack's view: ten ACTIVE servers in the egov zone with these addresses and the request id
    servers = {s.name: s for s in admin.compute.servers(details=True, all_projects=True, project_id=project_id)}
    assert set(servers) == set(addresses)
    for name, server in servers.items():
        assert server.status == "ACTIVE" and server.availability_zone == "az-egov"
        assert server.addresses[f"{code}-egov-net"][0]["addr"] == addresses[name]
        assert server.metadata["ecocloud_request"] == f"ticket-{ticket.number}"
    # the playbook ran against each guest over SSH: one run, each guest's baseline record written
    assert len(run_ids) == 1
    for name, ip in addresses.items():
        record = json.loads((tmp_path / "guest-root" / name / "var/lib/ecocloud/baseline.json").read_text())
        assert record == {"version": "2026.1", "host": name, "address": ip}


def test_double_submission_and_quota_refusal(lab_container: Container, admin: Any) -> None:
    tenant_id, _code = new_tenant(lab_container, admin, pool="internet")
    with lab_container.unit_of_work() as svc:
        t = svc.cloud.tenant(tenant_id, ALL)
        with pytest.raises(ValidationFailed) as refused:  # instances: 10 allowed, 11 asked
            svc.cloud.request_vms(TEST_ACTOR, t, "internet", name="big", count=11, flavor="m1.tiny",
                                  image="cirros-fake")
        assert "instances needs 11, 10 available" in refused.value.message
    with lab_container.unit_of_work() as svc:
        assert svc.session.execute(select(VmRequest)).first() is None
    uid = uuid.uuid4().hex
    ids = set()
    for _ in range(2):  # a double-clicked submit: the same form token twice
        with lab_container.unit_of_work() as svc:
            req, _created = svc.cloud.request_vms(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "internet",
                                                  name="web", count=2, flavor="m1.tiny", image="cirros-fake", uid=uid)
            ids.add((req.id, req.job_id))
    assert len(ids) == 1
    (request_id, job_id), = ids
    assert run(lab_container, job_id).state == "succeeded"
    # the job run again (a retried job) adopts the servers: still two in OpenStack
    with lab_container.unit_of_work() as svc:
        job_id = svc.jobs.enqueue(TEST_ACTOR, "cloud.provision", {"request_id": request_id}).id
    assert run(lab_container, job_id).state == "succeeded"
    project_id = project_of(lab_container, tenant_id, "internet").project_id
    servers = list(admin.compute.servers(all_projects=True, project_id=project_id))
    assert sorted(s.name for s in servers) == ["web-1", "web-2"]


def test_delete_and_sync_after_an_out_of_band_delete(lab_container: Container, admin: Any) -> None:
    tenant_id, _code = new_tenant(lab_container, admin, pool="business")
    with lab_container.unit_of_work() as svc:
        req, _ = svc.cloud.request_vms(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "business", name="db",
                                       count=2, flavor="m1.tiny", image="cirros-fake")
        job_id, request_id = req.job_id, req.id
    assert run(lab_container, job_id).state == "succeeded"
    with lab_container.unit_of_work() as svc:
        vms = svc.cloud.request_vms_of(svc.cloud.vm_request(request_id, ALL))
        first, second = vms[0].id, vms[1].id
        second_server = vms[1].server_id
        job_id = svc.cloud.vm_action(TEST_ACTOR, vms[0], "delete", confirm=True).id
    assert run(lab_container, job_id).state == "succeeded"
    # behind the platform's back, in Horizon: the second one
    admin.compute.delete_server(second_server)
    admin.compute.wait_for_delete(admin.compute.get_server(second_server), interval=0.5, wait=120)
    with lab_container.unit_of_work() as svc:
        job_id = svc.jobs.enqueue(TEST_ACTOR, "cloud.sync").id
    job = run(lab_container, job_id)
    assert job.state == "succeeded", job.error
    assert set(job.result["pools"]) == {"internet", "egov", "business"}
    assert all("error" not in r for r in job.result["pools"].values()), job.result
    with lab_container.unit_of_work() as svc:
        a, b = svc.cloud.vm(first, ALL), svc.cloud.vm(second, ALL)
        assert a.stage == VmStage.DELETED and a.disappeared_at is None  # deleted by the platform
        assert b.stage == VmStage.DELETED and b.disappeared_at is not None  # found gone by the sync
        pools = {p["name"]: p for p in svc.cloud.pools()}
        for pool, host in (("business", "compute-business"), ("egov", "compute-egov")):
            # Placement's own figures: (total - reserved) x allocation ratio of the pool's compute host
            rp = admin.placement.get(f"/resource_providers?name={host}", microversion="1.39").json()
            inv = admin.placement.get(f"/resource_providers/{rp['resource_providers'][0]['uuid']}/inventories",
                                      microversion="1.39").json()["inventories"]

            def usable(rc: str, inv: dict[str, Any] = inv) -> int:
                return int((inv[rc]["total"] - inv[rc]["reserved"]) * inv[rc]["allocation_ratio"])

            cap = pools[pool]["capacity"]
            assert (cap["vcpus_total"], cap["ram_mb_total"], cap["disk_gb_total"]) == (
                usable("VCPU"), usable("MEMORY_MB"), usable("DISK_GB"))
        assert inv["VCPU"]["total"] == 64  # the egov pool's host as the lab defines it
        assert {f["name"] for f in svc.cloud.flavors("business")} >= {"m1.tiny", "m1.small", "m1.medium"}
        assert "cirros-fake" in {i["name"] for i in svc.cloud.images("business")}
        usage = svc.cloud.project(svc.cloud.tenant(tenant_id, ALL), "business").usage  # the tenant's quota usage
        assert usage["instances"] == {"limit": 10, "in_use": 0, "reserved": 0}  # both VMs are gone
        assert usage["volumes"] == {"limit": 10, "in_use": 0, "reserved": 0}  # from Cinder
        assert usage["networks"]["in_use"] == 1


def test_offboarding_refuses_with_vms_then_removes_everything(lab_container: Container, admin: Any) -> None:
    tenant_id, code = new_tenant(lab_container, admin)
    with lab_container.unit_of_work() as svc:
        req, _ = svc.cloud.request_vms(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov", name="x", count=1,
                                       flavor="m1.tiny", image="cirros-fake")
        job_id = req.job_id
    assert run(lab_container, job_id).state == "succeeded"
    tp = project_of(lab_container, tenant_id)
    with lab_container.unit_of_work() as svc:
        from ecocloud_ops.errors import Conflict

        with pytest.raises(Conflict):
            svc.cloud.offboard(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov")
        job_id = svc.cloud.offboard(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), "egov", force=True).job_id
    job = run(lab_container, job_id)
    assert job.state == "succeeded", job.error
    assert admin.identity.find_project(f"{code}-egov") is None
    assert admin.network.find_network(tp.network_id) is None
    assert list(admin.compute.servers(all_projects=True, project_id=tp.project_id)) == []
    with lab_container.unit_of_work() as svc:
        assert all(v.stage == VmStage.DELETED for v in svc.session.execute(select(Vm)).scalars())


class _Answer500(http.server.BaseHTTPRequestHandler):
    def _reply(self) -> None:
        body = b'{"error": {"code": 500, "title": "Internal Server Error", "message": "database is locked"}}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_credentials_unreachable_and_500_give_clear_errors_and_no_half_records(
        lab_container: Container, admin: Any, oslab: OpenStackLab, oslab_clouds_yaml: Path, tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer500)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        good = yaml.safe_load(oslab_clouds_yaml.read_text())["clouds"]["ecolab"]
        clouds = {"clouds": {
            "ecolab": good,
            "badpw": {**good, "auth": {**good["auth"], "password": "not-the-password"}},
            "down": {**good, "auth": {**good["auth"], "auth_url": f"http://127.0.0.1:{_free_port()}/v3"}},
            "broken": {**good, "auth": {**good["auth"], "auth_url": f"http://127.0.0.1:{server.server_port}/v3"}},
        }}
        path = tmp_path / "clouds.yaml"
        path.write_text(yaml.safe_dump(clouds))
        path.chmod(0o600)
        pools = [{"name": n, "zone": "互联网区", "cloud": n, "region": "RegionOne", "availability_zone": "az-egov"}
                 for n in ("badpw", "down", "broken")] + [CLOUD_POOLS[0]]
        lab_container.settings = lab_container.settings.model_copy(update={"cloud_pools": pools,
                                                                           "clouds_yaml": path})
        lab_container.__dict__["cloud"] = Connector(lab_container.settings)
        expected = {"badpw": "credentials", "down": "does not answer", "broken": "500"}
        for pool, words in expected.items():
            tenant_id, code = new_tenant(lab_container, admin, pool, onboard=False)
            with lab_container.unit_of_work() as svc:
                job_id = svc.cloud.onboard(TEST_ACTOR, svc.cloud.tenant(tenant_id, ALL), pool).job_id
            t0 = time.monotonic()
            job = run(lab_container, job_id)
            assert time.monotonic() - t0 < 60
            assert job.state == "failed" and "step 'project' failed" in (job.error or ""), job.error
            assert words in (job.error or "").lower(), job.error
            tp = project_of(lab_container, tenant_id, pool)
            assert tp.status == ProjectStatus.FAILED and tp.project_id is None and tp.network_id is None
            assert [s["status"] for s in tp.steps] == ["failed", "pending", "pending", "pending", "pending"]
            assert admin.identity.find_project(f"{code}-{pool}") is None
        # the sync records each pool's error and still syncs the good one
        with lab_container.unit_of_work() as svc:
            job_id = svc.jobs.enqueue(TEST_ACTOR, "cloud.sync").id
        job = run(lab_container, job_id)
        assert job.state == "succeeded"
        with lab_container.unit_of_work() as svc:
            states = {p["name"]: p for p in svc.cloud.pools()}
            for pool, words in expected.items():
                assert words in (states[pool]["error"] or "").lower(), states[pool]
            assert states["internet"]["error"] is None and states["internet"]["synced_at"]
    finally:
        server.shutdown()
