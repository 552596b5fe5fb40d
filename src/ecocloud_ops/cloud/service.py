"""Cloud tenants: pools, tenants and their projects (onboarding, offboarding, quotas), VM provisioning
requests, day-2 actions and service-desk cloud requests. Whatever talks to the cloud for long runs in the
worker (:mod:`.engine`); the checks a user must see at once (quota pre-check, names) run here."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.scope import Scope
from ..automation.catalog import Catalog
from ..crypto import SecretBox
from ..db import utcnow
from ..errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from ..jobs.models import FINAL_STATES, Job
from ..jobs.service import JobService
from .adapter import CloudError, Flavor
from .models import (
    BUSY_PROJECT,
    FINAL_VM,
    CapacitySample,
    CloudServiceRequest,
    PoolState,
    ProjectStatus,
    RequestStatus,
    Tenant,
    TenantProject,
    Vm,
    VmRequest,
    VmStage,
)
from .pools import Connector

if TYPE_CHECKING:
    from ..servicedesk.service import TicketService

JOB_ONBOARD = "cloud.onboard"
JOB_OFFBOARD = "cloud.offboard"
JOB_QUOTA = "cloud.quota"
JOB_PROVISION = "cloud.provision"
JOB_VM_ACTION = "cloud.vm_action"
JOB_SYNC = "cloud.sync"

#: The onboarding steps, in order; offboarding runs the undo of each in reverse.
ONBOARD_STEPS = ("project", "quotas", "network", "security_group", "roles")
OFFBOARD_STEPS = ("roles", "security_group", "network", "quotas", "project")
#: Default quotas of a new tenant project (a quota request raises them).
DEFAULT_QUOTAS = {"cores": 20, "ram_mb": 51200, "instances": 10, "networks": 5, "subnets": 10, "ports": 50,
                  "routers": 2, "floating_ips": 5, "security_groups": 10, "volumes": 10, "gigabytes": 1000}
DEFAULT_RULES: list[dict[str, Any]] = [
    {"protocol": "tcp", "port_min": 22, "port_max": 22, "remote_ip_prefix": "0.0.0.0/0"},
    {"protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"},
]
VM_ACTIONS = ("start", "stop", "reboot", "resize", "confirm_resize", "delete")
#: OpenStack statuses from which each action makes sense.
_ACTION_FROM = {"start": {"SHUTOFF"}, "stop": {"ACTIVE"}, "reboot": {"ACTIVE"}, "resize": {"ACTIVE", "SHUTOFF"},
                "confirm_resize": {"VERIFY_RESIZE"}, "delete": None}
_CODE = re.compile(r"^[a-z][a-z0-9-]{1,23}$")
_VM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,50}$")
MAX_VMS_PER_REQUEST = 50


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


def vm_names(pattern: str, count: int) -> list[str]:
    """``web-{n}`` → web-1, web-2 ...; ``{n:02}`` pads; a plain name gets ``-<n>`` when count > 1."""
    if "{n" in pattern:
        try:
            names = [pattern.format(n=i) for i in range(1, count + 1)]
        except (ValueError, KeyError, IndexError) as exc:
            raise _fail("name", f"bad pattern: {exc}") from exc
    else:
        names = [pattern] if count == 1 else [f"{pattern}-{i}" for i in range(1, count + 1)]
    for n in names:
        if not _VM_NAME.match(n):
            raise _fail("name", "letters, digits and '-', starting with a letter, at most 51 characters")
    return names


def _quotas_in(values: dict[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in (values or {}).items():
        if key not in DEFAULT_QUOTAS:
            raise _fail(f"quotas.{key}", "unknown quota (one of " + ", ".join(DEFAULT_QUOTAS) + ")")
        if value is None or value == "":
            continue
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise _fail(f"quotas.{key}", "a whole number (-1: unlimited)") from exc
        if isinstance(value, bool) or number < -1 or number > 10_000_000:
            raise _fail(f"quotas.{key}", "a whole number from -1 (unlimited) to 10,000,000")
        out[key] = number
    return out


class CloudService:
    def __init__(self, session: Session, audit: AuditLog, jobs: JobService, box: SecretBox,
                 connector: Callable[[], Connector], tickets: TicketService | None = None,
                 catalog: Catalog | None = None) -> None:
        self.session = session
        self.audit = audit
        self.jobs = jobs
        self.box = box
        self._connector = connector
        self.tickets = tickets
        self.catalog = catalog or Catalog()

    @property
    def connector(self) -> Connector:
        return self._connector()

    # Pools -------------------------------------------------------------------------------------
    def pools(self) -> list[dict[str, Any]]:
        """Every configured pool with what the last sync saw (never calls the cloud)."""
        states = {s.pool: s for s in self.session.execute(select(PoolState)).scalars()}
        out = []
        for p in self.connector.pools:
            st = states.get(p.name)
            tenants = self.session.execute(select(func.count()).select_from(TenantProject).where(
                TenantProject.pool == p.name, TenantProject.status == ProjectStatus.ACTIVE)).scalar_one()
            vms = self.session.execute(select(func.count()).select_from(Vm).where(
                Vm.pool == p.name, Vm.stage != VmStage.DELETED)).scalar_one()
            out.append({"name": p.name, "zone": p.zone, "cloud": p.cloud, "region": p.region,
                        "availability_zone": p.availability_zone, "routers": p.routers,
                        "tenants": tenants, "vms": vms,
                        "capacity": st.capacity if st else {}, "synced_at": _iso(st.synced_at if st else None),
                        "error": st.error if st else None, "error_at": _iso(st.error_at if st else None),
                        "flavors": len(st.flavors) if st else 0, "images": len(st.images) if st else 0})
        return out

    def pool_state(self, pool: str) -> PoolState | None:
        self.connector.pool(pool)
        return self.session.get(PoolState, pool)

    def flavors(self, pool: str) -> list[dict[str, Any]]:
        st = self.pool_state(pool)
        return list(st.flavors) if st else []

    def images(self, pool: str) -> list[dict[str, Any]]:
        st = self.pool_state(pool)
        return list(st.images) if st else []

    def capacity_trend(self, pool: str, days: int = 30) -> list[CapacitySample]:
        since = utcnow() - dt.timedelta(days=days)
        return list(self.session.execute(select(CapacitySample).where(
            CapacitySample.pool == pool, CapacitySample.at >= since).order_by(CapacitySample.at)).scalars())

    def top_tenants(self, pool: str, limit: int = 10) -> list[dict[str, Any]]:
        """Tenants of a pool by vCPUs in use (from the last sync), with their quota."""
        rows = self.session.execute(select(TenantProject, Tenant).join(Tenant, Tenant.id == TenantProject.tenant_id)
                                    .where(TenantProject.pool == pool,
                                           TenantProject.status == ProjectStatus.ACTIVE)).all()
        out = []
        for tp, t in rows:
            cores = (tp.usage or {}).get("cores") or {}
            ram = (tp.usage or {}).get("ram_mb") or {}
            out.append({"tenant": t.name, "tenant_id": t.id, "cores_used": cores.get("in_use", 0),
                        "cores_limit": cores.get("limit", (tp.quotas or {}).get("cores")),
                        "ram_mb_used": ram.get("in_use", 0), "ram_mb_limit": ram.get("limit")})
        out.sort(key=lambda r: (-int(r["cores_used"] or 0), r["tenant"]))
        return out[:limit]

    # Tenants -----------------------------------------------------------------------------------
    def tenants(self, scope: Scope) -> list[Tenant]:
        return list(self.session.execute(select(Tenant).where(scope.code_clause(Tenant.site_code))
                                         .order_by(Tenant.name)).scalars())

    def tenant(self, ref: int | str, scope: Scope) -> Tenant:
        q = select(Tenant).where(scope.code_clause(Tenant.site_code))
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            q = q.where(Tenant.id == int(ref))
        else:
            q = q.where((Tenant.code == ref) | (Tenant.name == ref))
        t = self.session.execute(q).scalar()
        if t is None:
            raise NotFound(f"tenant {ref} not found")
        return t

    def projects(self, tenant: Tenant) -> list[TenantProject]:
        return list(self.session.execute(select(TenantProject).where(TenantProject.tenant_id == tenant.id)
                                         .order_by(TenantProject.pool)).scalars())

    def project(self, tenant: Tenant, pool: str) -> TenantProject:
        tp = self.session.execute(select(TenantProject).where(TenantProject.tenant_id == tenant.id,
                                                              TenantProject.pool == pool)).scalar()
        if tp is None:
            raise NotFound(f"tenant {tenant.name} is not in pool {pool}")
        return tp

    def save_tenant(self, actor: Actor, tenant: Tenant | None = None, **fields: Any) -> Tenant:
        """Create or change a tenant's record (name, code, site, description, contacts, users); audited."""
        creating = tenant is None
        allowed = {"name", "code", "site_code", "description", "contacts", "users"}
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise _fail(unknown[0], "cannot be set")
        values: dict[str, Any] = {}
        if creating or "name" in fields:
            name = (fields.get("name") or "").strip()
            if not 1 <= len(name) <= 100:
                raise _fail("name", "1 to 100 characters")
            values["name"] = name
        if creating or "code" in fields:
            code = (fields.get("code") or "").strip().lower()
            if not creating and tenant is not None and code != tenant.code and self.projects(tenant):
                raise _fail("code", "cannot change once the tenant has projects")
            if not _CODE.match(code):
                raise _fail("code", "2 to 24 lower-case letters, digits or '-', starting with a letter")
            values["code"] = code
        if creating or "site_code" in fields:
            from ..sites.models import Site

            site_code = fields.get("site_code") or "000000"
            if self.session.execute(select(Site.id).where(Site.code == site_code)).scalar() is None:
                raise _fail("site_code", "no such site")
            values["site_code"] = site_code
        if "description" in fields:
            values["description"] = (fields["description"] or "").strip()[:2000]
        if "contacts" in fields:
            contacts = fields["contacts"] or []
            if not isinstance(contacts, list) or not all(isinstance(c, dict) and (c.get("name") or "").strip()
                                                         for c in contacts):
                raise _fail("contacts", "a list of {name, phone, email}")
            values["contacts"] = [{"name": str(c["name"]).strip()[:50], "phone": str(c.get("phone") or "")[:30],
                                   "email": str(c.get("email") or "")[:100]} for c in contacts][:10]
        if "users" in fields:
            users = fields["users"] or []
            if isinstance(users, str):
                users = [u.strip() for u in users.replace(";", ",").split(",")]
            users = [u for u in users if u]
            if not all(isinstance(u, str) and 1 <= len(u) <= 64 for u in users):
                raise _fail("users", "OpenStack user names, 1 to 64 characters each")
            values["users"] = sorted(set(users))
        for key in ("name", "code"):
            if key in values:
                clash = self.session.execute(select(Tenant.id).where(getattr(Tenant, key) == values[key])).scalar()
                if clash is not None and (tenant is None or clash != tenant.id):
                    raise Conflict(f"a tenant with {key} {values[key]} already exists")
        t = tenant or Tenant(created_by=actor.username, contacts=[], users=[], description="")
        before = {k: getattr(t, k) for k in values} if not creating else {}
        changed = {k: v for k, v in values.items() if creating or getattr(t, k) != v}
        for k, v in changed.items():
            setattr(t, k, v)
        t.updated_at = utcnow()
        if creating:
            self.session.add(t)
        self.session.flush()
        if changed:
            self.audit.record(actor, "cloud.tenant.create" if creating else "cloud.tenant.update",
                              target_type="cloud_tenant", target_id=t.code,
                              before={k: before[k] for k in changed if k in before} or None, after=changed)
        return t

    # Onboarding --------------------------------------------------------------------------------
    def _suggest_cidr(self, pool: str) -> str:
        used = {tp.network_cidr for tp in self.session.execute(select(TenantProject).where(
            TenantProject.pool == pool)).scalars()}
        for i in range(1, 255):
            cidr = f"10.{100 + self.connector.pools.index(self.connector.pool(pool))}.{i}.0/24"
            if cidr not in used:
                return cidr
        raise _fail("cidr", "no free /24 left in the pool's default range; give one")

    def onboard(self, actor: Actor, tenant: Tenant, pool: str, *, quotas: dict[str, Any] | None = None,
                cidr: str | None = None) -> TenantProject:
        """Record the tenant's project in ``pool`` and queue the onboarding job. A failed onboarding is
        retried by calling this again: it continues from the failed step."""
        info = self.connector.pool(pool)
        tp = self.session.execute(select(TenantProject).where(TenantProject.tenant_id == tenant.id,
                                                              TenantProject.pool == pool)
                                  .with_for_update()).scalar()
        wanted = {**DEFAULT_QUOTAS, **_quotas_in(quotas)}
        if tp is not None:
            if tp.status in BUSY_PROJECT:
                raise Conflict(f"{tenant.name} in {pool} is already {tp.status} (job {tp.job_id})")
            if tp.status == ProjectStatus.ACTIVE:
                raise Conflict(f"{tenant.name} is already onboarded in {pool}; change quotas instead")
            retry = tp.status in (ProjectStatus.FAILED,)
            if tp.status in (ProjectStatus.OFFBOARDED, ProjectStatus.OFFBOARD_FAILED):
                retry = False
                tp.steps = []
                tp.project_id = tp.network_id = tp.subnet_id = tp.router_id = None
            if quotas:
                tp.quotas = wanted
        else:
            retry = False
            if cidr:
                try:
                    net = ipaddress.ip_network(cidr, strict=True)
                except ValueError as exc:
                    raise _fail("cidr", f"not a network address: {exc}") from exc
                if net.version != 4 or not 16 <= net.prefixlen <= 28:
                    raise _fail("cidr", "an IPv4 network from /16 to /28")
                cidr = str(net)
            tp = TenantProject(tenant_id=tenant.id, pool=pool, project_name=f"{tenant.code}-{info.name}",
                               quotas=wanted, network_cidr=cidr or self._suggest_cidr(pool), steps=[])
            self.session.add(tp)
            self.session.flush()
        if not tp.steps:
            tp.steps = [{"name": n, "status": "pending", "detail": "", "at": None} for n in ONBOARD_STEPS]
        tp.status = ProjectStatus.PENDING
        tp.last_error = None
        tp.updated_at = utcnow()
        job = self.jobs.enqueue(actor, JOB_ONBOARD, {"project_ref": tp.id}, site_code=tenant.site_code)
        tp.job_id = job.id
        self.audit.record(actor, "cloud.tenant.onboard", target_type="cloud_tenant", target_id=tenant.code,
                          after={"pool": pool, "project": tp.project_name, "retry": retry, "job_id": job.id,
                                 "quotas": tp.quotas, "cidr": tp.network_cidr})
        return tp

    def offboard(self, actor: Actor, tenant: Tenant, pool: str, *, force: bool = False) -> TenantProject:
        tp = self.session.execute(select(TenantProject).where(TenantProject.tenant_id == tenant.id,
                                                              TenantProject.pool == pool)
                                  .with_for_update()).scalar()
        if tp is None:
            raise NotFound(f"tenant {tenant.name} is not in pool {pool}")
        if tp.status in BUSY_PROJECT:
            raise Conflict(f"{tenant.name} in {pool} is {tp.status} (job {tp.job_id}); wait for it")
        if tp.status == ProjectStatus.OFFBOARDED:
            raise Conflict(f"{tenant.name} is already offboarded from {pool}")
        vms = self.session.execute(select(func.count()).select_from(Vm).where(
            Vm.project_ref == tp.id, Vm.stage != VmStage.DELETED)).scalar_one()
        if vms and not force:
            raise Conflict(f"{tenant.name} still has {vms} VM(s) in {pool}; delete them or offboard with force "
                           f"(which deletes them)")
        if tp.status != ProjectStatus.OFFBOARD_FAILED or not any(s.get("phase") == "offboard" for s in tp.steps):
            tp.steps = [{"name": n, "status": "pending", "detail": "", "at": None, "phase": "offboard"}
                        for n in ("servers", *OFFBOARD_STEPS)]
        tp.status = ProjectStatus.OFFBOARDING
        tp.last_error = None
        tp.updated_at = utcnow()
        job = self.jobs.enqueue(actor, JOB_OFFBOARD, {"project_ref": tp.id, "force": force},
                                site_code=tenant.site_code)
        tp.job_id = job.id
        self.audit.record(actor, "cloud.tenant.offboard", target_type="cloud_tenant", target_id=tenant.code,
                          after={"pool": pool, "project": tp.project_name, "force": force, "vms": vms,
                                 "job_id": job.id})
        return tp

    def change_quotas(self, actor: Actor, tenant: Tenant, pool: str, quotas: dict[str, Any], *,
                      ticket_id: int | None = None) -> Job:
        """Apply new quota values through a job (the audit entry holds the old and new values)."""
        tp = self.project(tenant, pool)
        if tp.status != ProjectStatus.ACTIVE:
            raise InvalidTransition(f"{tenant.name} in {pool} is {tp.status}; quotas change on active projects")
        new = _quotas_in(quotas)
        if not new:
            raise _fail("quotas", "give at least one quota value")
        old = {k: (tp.quotas or {}).get(k) for k in new}
        job = self.jobs.enqueue(actor, JOB_QUOTA, {"project_ref": tp.id, "quotas": new, "ticket_id": ticket_id},
                                site_code=tenant.site_code)
        self.audit.record(actor, "cloud.quota.change", target_type="cloud_tenant", target_id=tenant.code,
                          before={"pool": pool, **old}, after={"pool": pool, **new, "job_id": job.id})
        return job

    # Provisioning ------------------------------------------------------------------------------
    def _flavor(self, pool: str, name: str) -> Flavor:
        """From the synced list, or the cloud itself when the pool was never synced."""
        for f in self.flavors(pool):
            if f["name"] == name or f["id"] == name:
                return Flavor(**f)
        try:
            for fl in self.connector.adapter(pool).flavors():
                if name in (fl.name, fl.id):
                    return fl
        except CloudError as exc:
            raise _fail("flavor", f"cannot list the flavors of {pool}: {exc.message}") from exc
        raise _fail("flavor", f"no flavor {name} in {pool}")

    def quota_check(self, tp: TenantProject, flavor: Flavor, count: int) -> dict[str, Any]:
        """Needed vs available (live from the cloud) for cores, RAM and instances; raises ValidationFailed
        naming every short resource."""
        usage = self.connector.adapter(tp.pool).quota_usage(tp.project_id or "")
        needed = {"instances": count, "cores": count * flavor.vcpus, "ram_mb": count * flavor.ram_mb}
        short: list[dict[str, Any]] = []
        report: dict[str, Any] = {}
        for key, need in needed.items():
            u = usage.get(key)
            avail = None if u is None else u.available
            report[key] = {"needed": need, "available": avail, "limit": None if u is None else u.limit,
                           "in_use": None if u is None else u.in_use}
            if u is not None and avail is not None and need > avail:
                short.append({"field": f"quota.{key}", "message": f"needs {need}, {avail} available "
                                                                  f"(limit {u.limit}, in use {u.in_use})",
                              "needed": need, "available": avail, "limit": u.limit, "in_use": u.in_use})
        if short:
            raise ValidationFailed("quota exceeded: " + "; ".join(f"{d['field'][6:]} {d['message']}" for d in short),
                                   details=short)
        return report

    def request_vms(self, actor: Actor, tenant: Tenant, pool: str, *, name: str, count: int = 1, flavor: str,
                    image: str, network: str | None = None, key_name: str | None = None,
                    password_policy: str = "key", playbook: str | None = None,
                    playbook_vars: dict[str, Any] | None = None, uid: str | None = None,
                    ticket_id: int | None = None) -> tuple[VmRequest, bool]:
        """Validate, check the quota, record the request and its VMs (queued) and queue the job.
        Returns (request, created): a uid seen before returns the first request, creating nothing."""
        uid = (uid or "").strip() or uuid.uuid4().hex
        if not re.match(r"^[A-Za-z0-9_.:-]{8,64}$", uid):
            raise _fail("uid", "8 to 64 letters, digits or _.:-")
        existing = self.session.execute(select(VmRequest).where(VmRequest.uid == uid)).scalar()
        if existing is not None:
            if existing.tenant_id != tenant.id:
                raise Conflict("that request id belongs to another tenant's request")
            return existing, False
        tp = self.project(tenant, pool)
        if tp.status != ProjectStatus.ACTIVE or not tp.project_id:
            raise InvalidTransition(f"{tenant.name} is not onboarded in {pool} ({tp.status})")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_VMS_PER_REQUEST:
            raise _fail("count", f"a whole number from 1 to {MAX_VMS_PER_REQUEST}")
        names = vm_names((name or "").strip(), count)
        taken = set(self.session.execute(select(Vm.name).where(Vm.project_ref == tp.id, Vm.name.in_(names),
                                                               Vm.stage != VmStage.DELETED)).scalars())
        if taken:
            raise _fail("name", f"already used in this project: {', '.join(sorted(taken))}")
        if password_policy not in ("key", "generated"):
            raise _fail("password_policy", "key or generated")
        if password_policy == "key" and not key_name and not playbook:
            pass  # a VM reachable only through the console: allowed (some images use a baked-in user)
        if key_name is not None and not re.match(r"^[A-Za-z0-9_.-]{1,64}$", key_name):
            raise _fail("key_name", "a key pair name")
        fl = self._flavor(pool, flavor)
        images = self.images(pool)
        if images and not any(image in (i["name"], i["id"]) for i in images):
            raise _fail("image", f"no image {image} in {pool}")
        vars_ = {}
        if playbook:
            spec = self.catalog.get(playbook)
            vars_ = spec.validate(playbook_vars or {})
        self.quota_check(tp, fl, count)
        req = VmRequest(uid=uid, tenant_id=tenant.id, project_ref=tp.id, pool=pool, site_code=tenant.site_code,
                        name_pattern=name, count=count, flavor=fl.name, image=image,
                        network=network or f"{tp.project_name}-net", key_name=key_name or None,
                        password_policy=password_policy, playbook=playbook or None, playbook_vars=vars_,
                        status=RequestStatus.QUEUED, requested_by=actor.username, ticket_id=ticket_id)
        self.session.add(req)
        try:
            with self.session.begin_nested():
                self.session.flush()
        except IntegrityError:  # the same uid submitted twice at once: the other one won
            first = self.session.execute(select(VmRequest).where(VmRequest.uid == uid)).scalar_one()
            return first, False
        for i, vm_name in enumerate(names, start=1):
            self.session.add(Vm(request_id=req.id, index=i, tenant_id=tenant.id, project_ref=tp.id, pool=pool,
                                site_code=tenant.site_code, name=vm_name, stage=VmStage.QUEUED, flavor=fl.name,
                                addresses={}))
        job = self.jobs.enqueue(actor, JOB_PROVISION, {"request_id": req.id}, site_code=tenant.site_code)
        req.job_id = job.id
        self.audit.record(actor, "cloud.vm.request", target_type="cloud_vm_request", target_id=req.id,
                          after={"tenant": tenant.code, "pool": pool, "names": names, "flavor": fl.name,
                                 "image": image, "playbook": playbook, "uid": uid, "job_id": job.id})
        return req, True

    def vm_request(self, request_id: int, scope: Scope) -> VmRequest:
        r = self.session.execute(select(VmRequest).where(VmRequest.id == request_id,
                                                         scope.code_clause(VmRequest.site_code))).scalar()
        if r is None:
            raise NotFound(f"VM request {request_id} not found")
        return r

    def vm_requests(self, scope: Scope, tenant: Tenant | None = None, limit: int = 50) -> list[VmRequest]:
        q = select(VmRequest).where(scope.code_clause(VmRequest.site_code))
        if tenant is not None:
            q = q.where(VmRequest.tenant_id == tenant.id)
        return list(self.session.execute(q.order_by(VmRequest.id.desc()).limit(limit)).scalars())

    def request_vms_of(self, req: VmRequest) -> list[Vm]:
        return list(self.session.execute(select(Vm).where(Vm.request_id == req.id).order_by(Vm.index)).scalars())

    def vms(self, scope: Scope, *, tenant: Tenant | None = None, pool: str | None = None,
            include_deleted: bool = False) -> list[Vm]:
        q = select(Vm).where(scope.code_clause(Vm.site_code))
        if tenant is not None:
            q = q.where(Vm.tenant_id == tenant.id)
        if pool:
            q = q.where(Vm.pool == pool)
        if not include_deleted:
            q = q.where(Vm.stage != VmStage.DELETED)
        return list(self.session.execute(q.order_by(Vm.pool, Vm.name)).scalars())

    def vm(self, vm_id: int, scope: Scope) -> Vm:
        v = self.session.execute(select(Vm).where(Vm.id == vm_id, scope.code_clause(Vm.site_code))).scalar()
        if v is None:
            raise NotFound(f"VM {vm_id} not found")
        return v

    def vm_password(self, actor: Actor, vm: Vm) -> str | None:
        """The generated admin password (decrypted); the reveal is audited."""
        if not vm.password_enc:
            return None
        self.audit.record(actor, "cloud.vm.password_reveal", target_type="cloud_vm", target_id=vm.id)
        return self.box.decrypt(vm.password_enc)

    def vm_action(self, actor: Actor, vm: Vm, action: str, *, flavor: str | None = None,
                  confirm: bool = False) -> Job:
        if action not in VM_ACTIONS:
            raise _fail("action", "one of " + ", ".join(VM_ACTIONS))
        if vm.stage in (VmStage.DELETED, VmStage.DELETING) or not vm.server_id:
            raise InvalidTransition(f"VM {vm.name} is {vm.stage}; nothing to {action}")
        allowed = _ACTION_FROM[action]
        if allowed is not None and vm.status not in allowed:
            raise InvalidTransition(f"cannot {action} VM {vm.name} while it is {vm.status}")
        if action == "delete" and not confirm:
            raise _fail("confirm", f"deleting {vm.name} cannot be undone: confirm it")
        params: dict[str, Any] = {"vm_id": vm.id, "action": action}
        if action == "resize":
            if not flavor:
                raise _fail("flavor", "required for resize")
            fl = self._flavor(vm.pool, flavor)
            if fl.name == vm.flavor:
                raise _fail("flavor", "the VM already has this flavor")
            params["flavor"] = fl.name
        running = self.session.execute(select(Job.id).where(
            Job.kind == JOB_VM_ACTION, Job.state.notin_([s.value for s in FINAL_STATES]))).scalars()
        for job_id in running:
            job = self.session.get(Job, job_id)
            if job is not None and job.params.get("vm_id") == vm.id:
                raise Conflict(f"an action on {vm.name} is already running (job {job_id})")
        if action == "delete":
            vm.stage = VmStage.DELETING
        job = self.jobs.enqueue(actor, JOB_VM_ACTION, params, site_code=vm.site_code)
        self.audit.record(actor, f"cloud.vm.{action}", target_type="cloud_vm", target_id=vm.id,
                          before={"name": vm.name, "status": vm.status, "flavor": vm.flavor},
                          after={**({"flavor": params["flavor"]} if "flavor" in params else {}), "job_id": job.id})
        return job

    # Service-desk requests ------------------------------------------------------------------------
    def file_request(self, actor: Actor, scope: Scope, *, kind: str, tenant: Tenant, pool: str,
                     params: dict[str, Any], requester: Any = None, title: str | None = None,
                     description: str = "") -> CloudServiceRequest:
        """A "new VM" or "quota increase" service request: a service-desk ticket plus its cloud part."""
        assert self.tickets is not None
        from ..servicedesk.models import Category, TicketType

        if kind not in ("new_vm", "quota_increase"):
            raise _fail("kind", "new_vm or quota_increase")
        tp = self.project(tenant, pool)
        if kind == "new_vm":
            count = int(params.get("count") or 1)
            names = vm_names(str(params.get("name") or ""), count)
            self._flavor(pool, str(params.get("flavor") or ""))
            clean = {"name": params["name"], "count": count, "flavor": params["flavor"], "image": params.get("image"),
                     "playbook": params.get("playbook") or None, "key_name": params.get("key_name") or None}
            if not clean["image"]:
                raise _fail("image", "required")
            summary = f"{count} × {clean['flavor']} ({', '.join(names[:3])}{'…' if count > 3 else ''})"
        else:
            clean = _quotas_in(params)
            if not clean:
                raise _fail("quotas", "give at least one quota value")
            summary = ", ".join(f"{k}: {(tp.quotas or {}).get(k)} → {v}" for k, v in clean.items())
        label = "新建云主机" if kind == "new_vm" else "配额调整"
        ticket = self.tickets.create(actor, scope, type=TicketType.SERVICE_REQUEST,
                                     title=title or f"{label}: {tenant.name} / {pool}",
                                     description=(description + "\n\n" if description else "") + summary,
                                     category=Category.CLOUD_RESOURCE, site_code=tenant.site_code,
                                     requester=requester)
        req = CloudServiceRequest(ticket_id=ticket.id, kind=kind, tenant_id=tenant.id, pool=pool, params=clean,
                                  status="pending")
        self.session.add(req)
        self.session.flush()
        self.tickets.link(actor, ticket, "tenant", str(tenant.id))
        self.audit.record(actor, "cloud.request.file", target_type="cloud_request", target_id=req.id,
                          after={"kind": kind, "tenant": tenant.code, "pool": pool, "ticket": ticket.number,
                                 "params": clean})
        return req

    def service_request(self, request_id: int) -> CloudServiceRequest:
        r = self.session.get(CloudServiceRequest, request_id)
        if r is None:
            raise NotFound(f"cloud request {request_id} not found")
        return r

    def service_request_of_ticket(self, ticket_id: int) -> CloudServiceRequest | None:
        return self.session.execute(select(CloudServiceRequest).where(
            CloudServiceRequest.ticket_id == ticket_id)).scalar()

    def decide(self, actor: Actor, req: CloudServiceRequest, approve: bool, comment: str = "") -> CloudServiceRequest:
        """A cloud_ops user approves (the request runs through the normal path) or rejects it."""
        assert self.tickets is not None
        from ..servicedesk.models import Ticket, TicketStatus

        claimed = self.session.execute(update(CloudServiceRequest).where(
            CloudServiceRequest.id == req.id, CloudServiceRequest.status == "pending").values(
            status="approved" if approve else "rejected", decided_by=actor.username, decided_at=utcnow()))
        if getattr(claimed, "rowcount", 0) != 1:
            raise InvalidTransition(f"request {req.id} was already decided")
        self.session.refresh(req)
        ticket = self.session.get(Ticket, req.ticket_id)
        assert ticket is not None
        tenant = self.session.get(Tenant, req.tenant_id)
        assert tenant is not None
        if not approve:
            advance_ticket(self.tickets, actor, ticket, TicketStatus.RESOLVED,
                           f"已拒绝 / rejected by {actor.username}: {comment or 'no reason given'}")
            self.audit.record(actor, "cloud.request.reject", target_type="cloud_request", target_id=req.id,
                              after={"comment": comment})
            return req
        try:
            if req.kind == "new_vm":
                p = req.params
                vmreq, _ = self.request_vms(actor, tenant, req.pool, name=p["name"], count=int(p["count"]),
                                            flavor=p["flavor"], image=p["image"], key_name=p.get("key_name"),
                                            playbook=p.get("playbook"), uid=f"ticket-{ticket.number}",
                                            ticket_id=ticket.id)
                req.vm_request_id, req.job_id = vmreq.id, vmreq.job_id
                note = f"已批准，创建任务 #{vmreq.job_id} / approved: provisioning job #{vmreq.job_id}"
            else:
                job = self.change_quotas(actor, tenant, req.pool, req.params, ticket_id=ticket.id)
                req.job_id = job.id
                note = f"已批准，配额调整任务 #{job.id} / approved: quota job #{job.id}"
        except (ValidationFailed, InvalidTransition, CloudError) as exc:
            req.status = "failed"
            self.tickets.comment(actor, ticket, f"批准后无法执行 / approved but refused: {exc.message}")
            self.audit.record(actor, "cloud.request.approve", target_type="cloud_request", target_id=req.id,
                              outcome="failure", detail=exc.message)
            return req
        advance_ticket(self.tickets, actor, ticket, TicketStatus.IN_PROGRESS, note)
        self.audit.record(actor, "cloud.request.approve", target_type="cloud_request", target_id=req.id,
                          after={"job_id": req.job_id, "comment": comment})
        return req

    # Housekeeping --------------------------------------------------------------------------------
    def settle_orphans(self) -> list[int]:
        """Projects and requests still busy whose job has ended (the worker died): marked failed with the
        reason so they can be retried, never busy forever."""
        settled: list[int] = []
        q = (select(TenantProject, Job).join(Job, Job.id == TenantProject.job_id)
             .where(TenantProject.status.in_([s.value for s in BUSY_PROJECT]),
                    Job.state.in_([s.value for s in FINAL_STATES])))
        for tp, job in self.session.execute(q).all():
            tp.status = (ProjectStatus.OFFBOARD_FAILED if tp.status == ProjectStatus.OFFBOARDING
                         else ProjectStatus.FAILED)
            tp.last_error = f"its job #{job.id} ended ({job.state}) without finishing: {job.error or ''}"
            settled.append(tp.id)
        q2 = (select(VmRequest, Job).join(Job, Job.id == VmRequest.job_id)
              .where(VmRequest.status.in_([RequestStatus.QUEUED, RequestStatus.RUNNING]),
                     Job.state.in_([s.value for s in FINAL_STATES])))
        for req, job in self.session.execute(q2).all():
            req.status = RequestStatus.FAILED
            req.error = f"its job #{job.id} ended ({job.state}): {job.error or ''}; submit it again to continue"
            req.finished_at = utcnow()
            for vm in self.request_vms_of(req):
                if vm.stage not in FINAL_VM:
                    vm.stage, vm.fault = VmStage.ERROR, "the provisioning job ended before this VM was ready"
        return settled

    def link_dr_service(self, actor: Actor, service_id: int, tenant: Tenant | None) -> None:
        from ..dr.models import ProtectedService

        s = self.session.get(ProtectedService, service_id)
        if s is None:
            raise NotFound(f"protected service {service_id} not found")
        before = {"tenant_id": s.tenant_id, "tenant": s.tenant}
        s.tenant_id = tenant.id if tenant else None
        s.tenant = tenant.name if tenant else s.tenant
        self.audit.record(actor, "dr.service.tenant", target_type="dr_service", target_id=s.id, before=before,
                          after={"tenant_id": s.tenant_id, "tenant": s.tenant})


def advance_ticket(tickets: TicketService, actor: Actor, ticket: Any, target: str, comment: str) -> None:
    """Move a cloud request's ticket along the desk's state machine towards ``target`` (in_progress or
    resolved) with ``comment``: a new ticket is first assigned to the acting user (the approver). A rejected
    request is resolved too (the requester sees why, and may reopen or rate it)."""
    from ..auth.models import User
    from ..servicedesk.models import TicketStatus as T

    if ticket.status in (T.RESOLVED, T.CLOSED, T.CANCELED) or target == ticket.status:
        tickets.comment(actor, ticket, comment)
        return
    if ticket.status == T.NEW:
        user = tickets.session.execute(select(User).where(User.username == actor.username)).scalar()
        if user is None:
            tickets.comment(actor, ticket, comment)
            return
        tickets.assign(actor, ticket, team=None, assignee=user)
    if ticket.status == T.ASSIGNED:
        tickets.transition(actor, ticket, T.IN_PROGRESS, comment=None if target == T.RESOLVED else comment)
        if target == T.IN_PROGRESS:
            return
    if target == T.RESOLVED:
        tickets.transition(actor, ticket, T.RESOLVED, comment=comment)
    else:
        tickets.comment(actor, ticket, comment)


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def tenant_json(t: Tenant, projects: list[TenantProject] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t.id, "name": t.name, "code": t.code, "site_code": t.site_code,
                           "description": t.description, "contacts": t.contacts, "users": t.users,
                           "created_by": t.created_by, "created_at": _iso(t.created_at)}
    if projects is not None:
        out["projects"] = [project_json(p) for p in projects]
    return out


def project_json(p: TenantProject) -> dict[str, Any]:
    return {"id": p.id, "pool": p.pool, "status": p.status, "project_name": p.project_name,
            "project_id": p.project_id, "quotas": p.quotas, "network_cidr": p.network_cidr,
            "network_id": p.network_id, "subnet_id": p.subnet_id, "router_id": p.router_id, "steps": p.steps,
            "last_error": p.last_error, "job_id": p.job_id, "usage": p.usage, "usage_at": _iso(p.usage_at)}


def vm_json(v: Vm) -> dict[str, Any]:
    return {"id": v.id, "name": v.name, "pool": v.pool, "tenant_id": v.tenant_id, "request_id": v.request_id,
            "server_id": v.server_id, "stage": v.stage, "status": v.status, "fault": v.fault, "flavor": v.flavor,
            "image_id": v.image_id, "addresses": v.addresses, "host": v.host,
            "availability_zone": v.availability_zone, "has_password": bool(v.password_enc),
            "playbook_run_id": v.playbook_run_id, "created_at": _iso(v.created_at),
            "synced_at": _iso(v.synced_at), "disappeared_at": _iso(v.disappeared_at)}


def request_json(r: VmRequest, vms: list[Vm] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "uid": r.uid, "tenant_id": r.tenant_id, "pool": r.pool,
                           "name_pattern": r.name_pattern, "count": r.count, "flavor": r.flavor, "image": r.image,
                           "network": r.network, "key_name": r.key_name, "password_policy": r.password_policy,
                           "playbook": r.playbook, "status": r.status, "job_id": r.job_id,
                           "ticket_id": r.ticket_id, "error": r.error, "requested_by": r.requested_by,
                           "created_at": _iso(r.created_at), "finished_at": _iso(r.finished_at)}
    if vms is not None:
        out["vms"] = [vm_json(v) for v in vms]
    return out
