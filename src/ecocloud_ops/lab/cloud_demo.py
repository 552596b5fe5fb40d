"""The OpenStack lab as the demo's cloud (``ecocloud-ops demo --with-cloud``): three resource pools (the lab's
three availability zones), a clouds.yaml in the instance folder (mode 0600), stand-in guests so the post-boot
playbook runs, and a few onboarded tenants — so a newcomer can provision a VM from the console."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..audit.service import Actor
from ..bootstrap import Container
from ..cloud.models import Tenant, TenantProject, Vm, VmRequest
from ..cloud.pools import Connector
from ..jobs.runner import Worker
from .guests import GuestHosts
from .openstack import OpenStackLab, default_venv

log = logging.getLogger(__name__)
#: The lab's availability zones as the agency's three pools.
POOLS: list[dict[str, Any]] = [
    {"name": "internet", "zone": "互联网区", "cloud": "ecolab", "region": "RegionOne",
     "availability_zone": "az-internet"},
    {"name": "egov", "zone": "电子政务外网区", "cloud": "ecolab", "region": "RegionOne",
     "availability_zone": "az-egov"},
    {"name": "business", "zone": "业务专网区", "cloud": "ecolab", "region": "RegionOne",
     "availability_zone": "az-business", "routers": False},
]
#: (code, name, site, pools, contact)
TENANTS = [
    ("envmon", "生态环境监测", "000000", ("egov", "business"), ("王工", "010-66556001")),
    ("portal", "政务服务门户", "000000", ("internet",), ("刘工", "010-66556002")),
    ("pollution", "排污许可管理", "130000", ("egov",), ("河北省厅 孙工", "0311-87654321")),
]


def why_not_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces for the stand-in guests)"
    missing = [c for c in ("ip", "ssh", "ssh-keygen") if shutil.which(c) is None]
    missing += [p for p in ("/usr/sbin/sshd", "/usr/lib/rabbitmq/bin/rabbitmq-server") if not Path(p).exists()]
    if missing:
        return "missing " + ", ".join(missing) + " (run scripts/setup.sh --with-cloud)"
    return None


class DemoCloud:
    """Started before the worker and the console (they read the pools from the container's settings)."""

    def __init__(self, container: Container, say: Callable[[str], Any] = print) -> None:
        self.container = container
        self.say = say
        self.lab: OpenStackLab | None = None
        self.guests: GuestHosts | None = None

    def start(self) -> None:
        c = self.container
        OpenStackLab.cleanup_stale()
        GuestHosts.cleanup_stale("ecodgst")
        self.say("OpenStack lab: preparing its venv (the first time downloads the services, a few minutes)")
        venv = OpenStackLab.ensure_venv(default_venv(), say=self.say)
        self.lab = OpenStackLab(venv=venv)
        self.say("OpenStack lab: starting Keystone, Nova, Placement, Glance, Neutron and RabbitMQ (~1 minute)")
        self.lab.start()
        instance = c.settings.instance_dir.resolve()
        clouds = self.lab.clouds_yaml(instance / "clouds.yaml")
        self.guests = GuestHosts("ecodgst", instance / "cloud-guests")
        c.settings = c.settings.model_copy(update={
            "cloud_pools": POOLS, "clouds_yaml": clouds, "cloud_ssh_key_path": self.guests.private_key,
            "cloud_ssh_wait_seconds": 60,
            "cloud_guest_vars": {"baseline_root": f"{instance}/cloud-guests/root/{{{{ inventory_hostname }}}}",
                                 "ansible_python_interpreter": "/usr/bin/python3"}})
        c.__dict__.pop("cloud", None)
        c.__dict__["cloud"] = Connector(c.settings)
        config = _write_config(instance / "cloud-demo.toml", c.settings.model_dump(include={
            "instance_dir", "cloud_pools", "clouds_yaml", "cloud_ssh_key_path", "cloud_ssh_wait_seconds",
            "cloud_guest_vars"}))
        self.guests.watch(self.lab.connect, interval=1.0)
        self._tenants()
        self.say(f"OpenStack lab: pools {', '.join(p['name'] for p in POOLS)} at {self.lab.auth_url}; "
                 f"tenants {', '.join(t[1] for t in TENANTS)} onboarded; provision a VM from the console (云租户), "
                 f"or with the CLI: ECOCLOUD_CONFIG={config} ecocloud-ops cloud vms create …")

    def _tenants(self) -> None:
        """The demo tenants, onboarded into their pools (a fresh lab has no projects: onboarding runs again
        and records new project ids), then one sync so the pages have flavors, images and capacity."""
        c = self.container
        actor = Actor("demo", channel="system")
        worker = Worker(c, name="demo-cloud")
        jobs = []
        with c.unit_of_work() as svc:
            for code, name, site, pools, (contact, phone) in TENANTS:
                t = svc.session.execute(select(Tenant).where(Tenant.code == code)).scalar()
                if t is None:
                    t = svc.cloud.save_tenant(actor, name=name, code=code, site_code=site,
                                              contacts=[{"name": contact, "phone": phone, "email": ""}])
                for pool in pools:
                    tp = svc.session.execute(select(TenantProject).where(
                        TenantProject.tenant_id == t.id, TenantProject.pool == pool)).scalar()
                    if tp is not None:  # a previous demo's lab is gone: start this project over
                        for model in (Vm, VmRequest):
                            for row in svc.session.execute(select(model).where(
                                    model.project_ref == tp.id)).scalars():
                                svc.session.delete(row)
                            svc.session.flush()
                        svc.session.delete(tp)
                        svc.session.flush()
                    jobs.append(svc.cloud.onboard(actor, t, pool).job_id)
            # the DR demo's protected service runs in a demo tenant: link it (DR may have started first)
            from ..dr.models import ProtectedService

            for service in svc.session.execute(select(ProtectedService).where(
                    ProtectedService.tenant_id.is_(None), ProtectedService.tenant.isnot(None))).scalars():
                tenant = svc.session.execute(select(Tenant).where(Tenant.name == service.tenant)).scalar()
                if tenant is not None:
                    svc.cloud.link_dr_service(actor, service.id, tenant)
        for job_id in jobs:
            assert job_id is not None
            worker.run_job_now(job_id)
        with c.unit_of_work() as svc:
            sync = svc.jobs.enqueue(actor, "cloud.sync").id
        worker.run_job_now(sync)

    def stop(self) -> None:
        if self.guests is not None:
            self.guests.stop()
            self.guests = None
        if self.lab is not None:
            self.lab.stop()
            self.lab = None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _write_config(path: Path, values: dict[str, Any]) -> Path:
    """The demo's cloud settings as a TOML file, so the CLI in another shell sees the same pools."""
    lines = ["# written by ecocloud-ops demo --with-cloud: the OpenStack lab's pools (valid while the demo runs)"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    return path
