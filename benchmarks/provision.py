"""Time to get 20 VMs ACTIVE through the platform, beside the same 20 created directly with openstacksdk, in the
same run against the same OpenStack lab (Keystone, Nova with the fake driver, Placement, Glance, Neutron).

The lab is started (or ``--auth-url``/``--password`` name a running one's admin), a tenant is onboarded into the
egov pool through the platform (SQLite instance in a temporary folder), its quota raised to fit 20 VMs. Then,
alternating, ``--rounds`` times each:

* direct: openstacksdk in the tenant project — 20 ``create_server`` calls, then polling the project's server list
  every 0.2 s until all are ACTIVE (what a careful script does);
* platform: ``request_vms`` (validation, quota pre-check, records) and the ``cloud.provision`` job run in this
  process (its per-VM progress writes, metadata-based idempotency, 1 s polling) until the request is finished.

Between rounds the servers are deleted and their ports waited for. The figures printed are the wall-clock
seconds of each round and the platform's overhead on the medians; the target is ≤ 10 %.

    .venv/bin/python benchmarks/provision.py [--count 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ecocloud_ops.audit.service import Actor  # noqa: E402
from ecocloud_ops.auth.scope import Scope  # noqa: E402
from ecocloud_ops.bootstrap import Container  # noqa: E402
from ecocloud_ops.cloud.models import RequestStatus, VmRequest  # noqa: E402
from ecocloud_ops.cloud.pools import Connector  # noqa: E402
from ecocloud_ops.config import load_settings  # noqa: E402
from ecocloud_ops.jobs.runner import Worker  # noqa: E402
from ecocloud_ops.lab.cloud_demo import POOLS  # noqa: E402
from ecocloud_ops.lab.openstack import IMAGE_NAME, OpenStackLab, _quiet_sdk, default_venv  # noqa: E402
from ecocloud_ops.migrate import upgrade  # noqa: E402
from ecocloud_ops.sites.service import build_divisions  # noqa: E402

ACTOR = Actor("bench", channel="system")
TARGET = 0.10


def direct_round(lab: OpenStackLab, project_id: str, network_id: str, count: int) -> float:
    admin = lab.connect()
    with _quiet_sdk():
        conn = admin.connect_as(project_id=project_id)
    try:
        image = conn.image.find_image(IMAGE_NAME, ignore_missing=False)
        flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
        tag = uuid.uuid4().hex[:6]
        t0 = time.monotonic()
        for i in range(count):
            conn.compute.create_server(name=f"direct-{tag}-{i}", flavor_id=flavor.id, image_id=image.id,
                                       networks=[{"uuid": network_id}], availability_zone="az-egov")
        while True:
            servers = [s for s in conn.compute.servers(details=True) if s.name.startswith(f"direct-{tag}-")]
            if any(s.status == "ERROR" for s in servers):
                raise RuntimeError("a direct server went to ERROR")
            if len(servers) == count and all(s.status == "ACTIVE" for s in servers):
                return time.monotonic() - t0
            time.sleep(0.2)
    finally:
        conn.close()
        admin.close()


def platform_round(container: Container, tenant_id: int, count: int) -> float:
    t0 = time.monotonic()
    with container.unit_of_work() as svc:
        req, _ = svc.cloud.request_vms(ACTOR, svc.cloud.tenant(tenant_id, Scope.everything()), "egov",
                                       name=f"plat-{uuid.uuid4().hex[:6]}-{{n}}", count=count, flavor="m1.tiny",
                                       image=IMAGE_NAME)
        request_id, job_id = req.id, req.job_id
    assert job_id is not None
    Worker(container, name="bench").run_job_now(job_id)
    elapsed = time.monotonic() - t0
    with container.unit_of_work() as svc:
        done = svc.session.get(VmRequest, request_id)
        assert done is not None and done.status == RequestStatus.SUCCEEDED, (done.status if done else None)
    return elapsed


def clean(lab: OpenStackLab, project_id: str) -> None:
    admin = lab.connect()
    try:
        servers = list(admin.compute.servers(all_projects=True, project_id=project_id))
        for s in servers:
            admin.compute.delete_server(s)
        deadline = time.monotonic() + 300
        while list(admin.compute.servers(all_projects=True, project_id=project_id)) or \
                [p for p in admin.network.ports(project_id=project_id) if p.device_owner.startswith("compute:")]:
            if time.monotonic() > deadline:
                raise RuntimeError("servers not deleted in 5 minutes")
            time.sleep(0.5)
    finally:
        admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    OpenStackLab.cleanup_stale()
    lab = OpenStackLab(venv=OpenStackLab.ensure_venv(default_venv()))
    t0 = time.monotonic()
    lab.start()
    print(f"OpenStack lab started in {time.monotonic() - t0:.1f} s")
    tmp = Path(tempfile.mkdtemp(prefix="bench-provision-"))
    try:
        clouds = lab.clouds_yaml(tmp / "clouds.yaml")
        settings = load_settings(environ={}, instance_dir=tmp / "instance", cloud_pools=POOLS, clouds_yaml=clouds)
        container = Container(settings)
        upgrade(container)
        container.__dict__["cloud"] = Connector(settings)
        with container.unit_of_work() as svc:
            svc.sites.sync(ACTOR, build_divisions({"110000": "北京市"}))  # the ministry and one province
        with container.unit_of_work() as svc:
            t = svc.cloud.save_tenant(ACTOR, name="基准测试", code="bench")
            tenant_id = t.id
            job_id = svc.cloud.onboard(ACTOR, t, "egov", quotas={"instances": args.count + 5,
                                                                  "cores": args.count * 2 + 10,
                                                                  "ram_mb": args.count * 1024 + 10240,
                                                                  "ports": args.count * 2 + 20}).job_id
        assert job_id is not None
        Worker(container, name="bench").run_job_now(job_id)
        with container.unit_of_work() as svc:
            tp = svc.cloud.project(svc.cloud.tenant(tenant_id, Scope.everything()), "egov")
            project_id, network_id = tp.project_id, tp.network_id
            assert tp.status == "active", tp.last_error
        assert project_id and network_id
        results: dict[str, list[float]] = {"direct openstacksdk": [], "platform": []}
        for r in range(args.rounds):
            for label in (("direct openstacksdk", "platform") if r % 2 == 0 else ("platform", "direct openstacksdk")):
                if label == "platform":
                    seconds = platform_round(container, tenant_id, args.count)
                else:
                    seconds = direct_round(lab, project_id, network_id, args.count)
                results[label].append(seconds)
                print(f"round {r + 1}: {label:<20} {args.count} VMs ACTIVE in {seconds:6.2f} s")
                clean(lab, project_id)
        base = statistics.median(results["direct openstacksdk"])
        plat = statistics.median(results["platform"])
        overhead = plat / base - 1
        print()
        print(f"{'':<22}{'median s':>10}{'rounds':>30}")
        for label, xs in results.items():
            print(f"{label:<22}{statistics.median(xs):>10.2f}{', '.join(f'{x:.2f}' for x in xs):>30}")
        verdict = "within" if overhead <= TARGET else "ABOVE"
        print(f"platform overhead {overhead * 100:+.1f} % ({verdict} the {TARGET * 100:.0f} % target)")
        container.dispose()
        return 0 if overhead <= TARGET else 1
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
