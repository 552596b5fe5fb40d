"""The DR lab as a protected service: the replicated PostgreSQL pair of :class:`~.drlab.DRLab` defined in the
platform (three data centers, the service with its inventory, health check and marker connections, one plan
per drill mode). Used by ``ecocloud-ops demo --with-dr`` and by the lab's drill tests, so both drive the same
definition."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from ..audit.service import Actor
from ..bootstrap import Container
from ..dr.models import DataCenter, DrillMode, DrillPlan, ProtectedService
from ..dr.plans import LAB_PLAYBOOKS
from .drlab import DRLab

log = logging.getLogger(__name__)
SERVICE_NAME = "环境质量监测数据库"
CENTERS = [("bj-prod", "北京生产中心", "production", "北京市西城区"),
           ("bj-yz", "北京亦庄同城灾备中心", "same_city_dr", "北京经济技术开发区"),
           ("gy-dr", "贵阳异地灾备中心", "remote_dr", "贵州省贵阳市")]
PLAN_NAMES = {DrillMode.TEST: "季度测试演练（副本）", DrillMode.PLANNED_MIGRATION: "计划内切换演练",
              DrillMode.DISASTER: "灾难接管演练"}
#: The quarterly test drill: 02:00 on the first day of January, April, July and October (Beijing time).
QUARTERLY = "0 2 1 1,4,7,10 *"
HEALTH_QUERY = "select not pg_is_in_recovery()"


def why_not_available() -> str | None:
    """None when the DR lab can run here, else what is missing."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [p for p in ("/usr/lib/postgresql/15/bin/postgres", "/usr/sbin/sshd") if not Path(p).exists()]
    missing += [c for c in ("ip", "arping", "ssh") if shutil.which(c) is None]
    if missing:
        return "missing " + ", ".join(missing) + " (run scripts/setup.sh --with-dr)"
    return None


def define_service(container: Container, lab: DRLab, actor: Actor, *, rto: int = 60, rpo: int = 5,
                   schedule: bool = True) -> tuple[int, dict[str, int]]:
    """Create or refresh (addresses change between lab starts) the lab's protected service and its plans;
    returns the service id and the plan id per mode."""
    with container.unit_of_work() as svc:
        known = {c.code for c in svc.session.execute(select(DataCenter)).scalars()}
        for code, name, role, location in CENTERS:
            if code not in known:
                svc.dr.create_center(actor, code=code, name=name, role=role, location=location)
        fields: dict[str, Any] = dict(
            rto_seconds=rto, rpo_seconds=rpo, primary_center="bj-prod", dr_center="bj-yz", playbooks=LAB_PLAYBOOKS,
            inventory=yaml.safe_dump(lab.inventory(), sort_keys=False, allow_unicode=True), health_kind="sql",
            health_target=lab.service_dsn, health_query=HEALTH_QUERY, copy_target=lab.copy_dsn,
            marker_primary=lab.primary_dsn, marker_dr=lab.dr_dsn, marker_copy=lab.copy_dsn)
        existing = svc.session.execute(select(ProtectedService).where(ProtectedService.name == SERVICE_NAME)).scalar()
        service = svc.dr.save_service(actor, existing, **fields) if existing else \
            svc.dr.save_service(actor, name=SERVICE_NAME, tenant="生态环境监测", drill_interval_days=90, **fields)
        plans = {p.mode: p for p in svc.dr.plans(service)}
        ids = {}
        for mode, name in PLAN_NAMES.items():
            plan: DrillPlan | None = plans.get(mode)
            if plan is None:
                plan = svc.dr.save_plan(actor, service, name=name, mode=mode,
                                        schedule=QUARTERLY if schedule and mode == DrillMode.TEST else None)
            ids[mode.value] = plan.id
        return service.id, ids


class DemoDR:
    """The DR lab for the demo: started with the console, stopped with it."""

    def __init__(self, container: Container, say: Callable[[str], Any] = print) -> None:
        self.container = container
        self.say = say
        self.lab: DRLab | None = None

    def start(self) -> None:
        DRLab.cleanup_stale("ecodemo")
        self.lab = DRLab(name="ecodemo")
        self.lab.start()
        _, plans = define_service(self.container, self.lab, Actor("demo", channel="system"))
        self.say(f"DR lab: PostgreSQL primary → hot standby in namespaces, service {SERVICE_NAME} with plans "
                 f"{', '.join(f'{m} #{i}' for m, i in plans.items())}; run a test drill from the console (DR drills)")

    def stop(self) -> None:
        if self.lab is not None:
            self.lab.stop()
            self.lab = None
