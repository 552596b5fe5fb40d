"""Cloud API: resource pools and their capacity, tenants (onboarding, offboarding, quotas), VM provisioning
requests, VMs and their day-2 actions, and the service desk's cloud requests. Long work runs as jobs: the
answer is 202 with the job, followed at ``/api/v1/jobs/<id>``."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from ...cloud.models import CloudServiceRequest, Tenant, Vm, VmRequest
from ...cloud.service import (
    JOB_SYNC,
    VM_ACTIONS,
    CloudService,
    project_json,
    request_json,
    tenant_json,
    vm_json,
)
from ...errors import Conflict, NotFound, ValidationFailed
from ...jobs.models import Job
from ..security import services
from . import job_json, operation, parse_body


def cloud() -> CloudService:
    return services().cloud


def _job(job_id: int | None) -> dict[str, Any] | None:
    if job_id is None:
        return None
    job = services().session.get(Job, job_id)
    return job_json(job) if job is not None else None


def _tenant(ref: str) -> Tenant:
    """A tenant by id or code, in the caller's scope (404 otherwise, never revealing it exists)."""
    return cloud().tenant(ref, g.scope)


def _tenant_out(t: Tenant) -> dict[str, Any]:
    return tenant_json(t, cloud().projects(t))


def _request_out(r: VmRequest) -> dict[str, Any]:
    """A provisioning request with each VM's stage and the job's progress."""
    vms = cloud().request_vms_of(r)
    job = _job(r.job_id)
    stages: dict[str, int] = {}
    for v in vms:
        stages[v.stage] = stages.get(v.stage, 0) + 1
    return request_json(r, vms) | {"job": job, "progress": job["progress"] if job else None, "stages": stages}


def _service_request(cloud_request_id: int) -> CloudServiceRequest:
    """A cloud service request whose tenant is in the caller's scope."""
    req = cloud().service_request(cloud_request_id)
    try:
        cloud().tenant(req.tenant_id, g.scope)
    except NotFound:
        raise NotFound(f"cloud request {cloud_request_id} not found") from None
    return req


def _service_request_json(r: CloudServiceRequest) -> dict[str, Any]:
    from ...servicedesk.models import Ticket

    ticket = services().session.get(Ticket, r.ticket_id)
    tenant = services().session.get(Tenant, r.tenant_id)
    return {"id": r.id, "kind": r.kind, "tenant_id": r.tenant_id, "tenant": tenant.name if tenant else None,
            "pool": r.pool, "params": r.params, "status": r.status, "decided_by": r.decided_by,
            "decided_at": r.decided_at.isoformat() if r.decided_at else None, "vm_request_id": r.vm_request_id,
            "job_id": r.job_id, "job": _job(r.job_id), "created_at": r.created_at.isoformat(),
            "ticket": {"id": ticket.id, "number": ticket.number, "status": ticket.status,
                       "title": ticket.title} if ticket else None}


# Pools ---------------------------------------------------------------------------------------------
@operation("/cloud/pools", "GET", "Resource pools with what the last sync saw (tenants, VMs, capacity)",
           "cloud.read")
def list_pools() -> Any:
    return jsonify({"items": cloud().pools()})


@operation("/cloud/pools/<pool>", "GET", "One pool: capacity (used vs physical vs sum of quotas), flavors, images, "
           "top tenants (in the caller's scope) and the capacity trend", "cloud.read",
           query=[("days", "integer", "trend window in days (1-365, default 30)")])
def get_pool(pool: str) -> Any:
    c = cloud()
    info = next((p for p in c.pools() if p["name"] == pool), None)
    if info is None:
        c.connector.pool(pool)  # raises NotFound naming the configured pools
        raise NotFound(f"no resource pool {pool!r}")
    days = request.args.get("days", 30, type=int) or 30
    if not 1 <= days <= 365:
        raise ValidationFailed("days: 1 to 365", details=[{"field": "days", "message": "1 to 365"}])
    visible = {t.id for t in c.tenants(g.scope)}
    trend = [{"at": s.at.isoformat(), "vcpus_total": s.vcpus_total, "vcpus_used": s.vcpus_used,
              "ram_mb_total": s.ram_mb_total, "ram_mb_used": s.ram_mb_used, "disk_gb_total": s.disk_gb_total,
              "disk_gb_used": s.disk_gb_used, "quota_cores": s.quota_cores, "quota_ram_mb": s.quota_ram_mb}
             for s in c.capacity_trend(pool, days)]
    top = [t for t in c.top_tenants(pool, limit=1000) if t["tenant_id"] in visible][:10]
    return jsonify(info | {"flavors": c.flavors(pool), "images": c.images(pool), "top_tenants": top,
                           "trend": trend})


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: str | None = Field(None, max_length=32, description="one pool; omitted: every pool")


@operation("/cloud/sync", "POST", "Queue an inventory sync (servers, flavors, images, quota usage, capacity) of "
           "every pool or one; 202 with the job", "cloud.manage", body=SyncIn)
def sync_pools() -> Any:
    body = parse_body(SyncIn) if request.get_data() else SyncIn(pool=None)
    params: dict[str, Any] = {}
    if body.pool:
        cloud().connector.pool(body.pool)
        params["pool"] = body.pool
    job = services().jobs.enqueue(g.actor, JOB_SYNC, params)
    return jsonify(job_json(job)), 202


# Tenants -------------------------------------------------------------------------------------------
class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=50)
    phone: str = Field("", max_length=30)
    email: str = Field("", max_length=100)


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=100, description="the application system's name")
    code: str | None = Field(None, max_length=24, description="short id used in project names (<code>-<pool>)")
    site_code: str | None = Field(None, max_length=12, description="owning site (default 000000)")
    description: str | None = Field(None, max_length=2000)
    contacts: list[Contact] | None = None
    users: list[str] | None = Field(None, description="OpenStack users given the member role on its projects")


def _tenant_fields(body: TenantIn, *, only_set: bool) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True) if only_set else body.model_dump(exclude_none=True)
    site = fields.get("site_code")
    if site:
        services().sites.get(site, g.scope)  # a site outside the caller's scope does not exist for them
    return fields


@operation("/cloud/tenants", "GET", "Tenants (application systems) in the caller's scope with their projects",
           "cloud.read")
def list_tenants() -> Any:
    return jsonify({"items": [_tenant_out(t) for t in cloud().tenants(g.scope)]})


@operation("/cloud/tenants", "POST", "Create a tenant (no cloud call: onboard it into pools afterwards)",
           "cloud.manage", body=TenantIn)
def create_tenant() -> Any:
    body = parse_body(TenantIn)
    t = cloud().save_tenant(g.actor, **_tenant_fields(body, only_set=False))
    return jsonify(_tenant_out(t)), 201


@operation("/cloud/tenants/<tenant_id>", "GET", "A tenant (by id or code) with its project per pool: status, "
           "onboarding steps, quotas and usage", "cloud.read")
def get_tenant(tenant_id: str) -> Any:
    t = _tenant(tenant_id)
    return jsonify(_tenant_out(t) | {"requests": [request_json(r) for r in cloud().vm_requests(g.scope, t, 20)]})


@operation("/cloud/tenants/<tenant_id>", "PATCH", "Change a tenant's record (only the fields given); audited",
           "cloud.manage", body=TenantIn)
def update_tenant(tenant_id: str) -> Any:
    body = parse_body(TenantIn)
    t = cloud().save_tenant(g.actor, _tenant(tenant_id), **_tenant_fields(body, only_set=True))
    return jsonify(_tenant_out(t))


class OnboardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: str = Field(max_length=32)
    quotas: dict[str, int | None] | None = Field(None, description="cores, ram_mb, instances, networks, subnets, "
                                                                   "ports, routers, floating_ips, security_groups, "
                                                                   "volumes, gigabytes (-1: unlimited)")
    cidr: str | None = Field(None, max_length=43, description="tenant subnet (default: a free /24 of the pool)")


@operation("/cloud/tenants/<tenant_id>/onboard", "POST", "Onboard a tenant into a pool (project, quotas, network, "
           "security group, roles) as a job; after a failure the same call continues from the failed step",
           "cloud.manage", body=OnboardIn)
def onboard_tenant(tenant_id: str) -> Any:
    body = parse_body(OnboardIn)
    tp = cloud().onboard(g.actor, _tenant(tenant_id), body.pool, quotas=body.quotas, cidr=body.cidr)
    return jsonify(project_json(tp) | {"job": _job(tp.job_id)}), 202


class OffboardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: str = Field(max_length=32)
    force: bool = Field(False, description="delete the tenant's VMs in the pool first (refused otherwise)")


@operation("/cloud/tenants/<tenant_id>/offboard", "POST", "Offboard a tenant from a pool (reverse order) as a job; "
           "409 while VMs exist unless forced", "cloud.manage", body=OffboardIn)
def offboard_tenant(tenant_id: str) -> Any:
    body = parse_body(OffboardIn)
    tp = cloud().offboard(g.actor, _tenant(tenant_id), body.pool, force=body.force)
    return jsonify(project_json(tp) | {"job": _job(tp.job_id)}), 202


class QuotasIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: str = Field(max_length=32)
    quotas: dict[str, int | None] = Field(description="the quota values to change (-1: unlimited)")


@operation("/cloud/tenants/<tenant_id>/quotas", "PUT", "Change a tenant project's quotas as a job (the audit entry "
           "holds the old and new values)", "cloud.manage", body=QuotasIn)
def put_quotas(tenant_id: str) -> Any:
    body = parse_body(QuotasIn)
    t = _tenant(tenant_id)
    job = cloud().change_quotas(g.actor, t, body.pool, body.quotas)
    return jsonify({"tenant_id": t.id, "pool": body.pool, "quotas": body.quotas, "job_id": job.id,
                    "job": job_json(job)}), 202


# Provisioning --------------------------------------------------------------------------------------
class VmRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str | int = Field(description="tenant id or code")
    pool: str = Field(max_length=32)
    name: str = Field(max_length=64, description="a name, or a pattern like web-{n} / web-{n:02}")
    count: int = Field(1, description="1 to 50")
    flavor: str = Field(max_length=64)
    image: str = Field(max_length=128)
    network: str | None = Field(None, max_length=64, description="default: the tenant's own network")
    key_name: str | None = Field(None, max_length=64)
    password_policy: str = Field("key", description="key (key pair only) or generated (random, stored encrypted)")
    playbook: str | None = Field(None, max_length=64, description="post-boot playbook of playbooks/")
    playbook_vars: dict[str, Any] | None = None


@operation("/cloud/vm-requests", "POST", "Request VMs (quota checked first: 422 with needed vs available). The "
           "Idempotency-Key header is the request's id: a repeated submission answers 200 with the first request "
           "and creates nothing", "cloud.manage", body=VmRequestIn)
def create_vm_request() -> Any:
    body = parse_body(VmRequestIn)
    uid = request.headers.get("Idempotency-Key") or None
    c = cloud()
    req, created = c.request_vms(g.actor, c.tenant(str(body.tenant), g.scope), body.pool, name=body.name,
                                 count=body.count, flavor=body.flavor, image=body.image, network=body.network,
                                 key_name=body.key_name, password_policy=body.password_policy,
                                 playbook=body.playbook, playbook_vars=body.playbook_vars, uid=uid)
    if not created:
        # The uid may be another scope's request: only show it when the caller may see it.
        req = c.vm_request(req.id, g.scope)
    return jsonify(_request_out(req)), 201 if created else 200


@operation("/cloud/vm-requests", "GET", "Provisioning requests in the caller's scope, newest first", "cloud.read",
           query=[("tenant", "string", "tenant id or code"), ("limit", "integer", "rows (1-500, default 50)")])
def list_vm_requests() -> Any:
    tenant = _tenant(request.args["tenant"]) if request.args.get("tenant") else None
    limit = min(max(request.args.get("limit", 50, type=int) or 50, 1), 500)
    return jsonify({"items": [request_json(r) for r in cloud().vm_requests(g.scope, tenant, limit)]})


@operation("/cloud/vm-requests/<int:request_id>", "GET", "A provisioning request with each VM's progress (queued, "
           "building, active, configuring, configured, error with OpenStack's fault) and its job", "cloud.read")
def get_vm_request(request_id: int) -> Any:
    return jsonify(_request_out(cloud().vm_request(request_id, g.scope)))


# VMs -----------------------------------------------------------------------------------------------
@operation("/cloud/vms", "GET", "VMs in the caller's scope", "cloud.read",
           query=[("tenant", "string", "tenant id or code"), ("pool", "string", "one pool"),
                  ("deleted", "boolean", "include deleted VMs")])
def list_vms() -> Any:
    tenant = _tenant(request.args["tenant"]) if request.args.get("tenant") else None
    rows = cloud().vms(g.scope, tenant=tenant, pool=request.args.get("pool") or None,
                       include_deleted=request.args.get("deleted") in ("1", "true", "yes"))
    return jsonify({"items": [vm_json(v) for v in rows]})


def _vm_out(v: Vm) -> dict[str, Any]:
    tenant = services().session.get(Tenant, v.tenant_id)
    return vm_json(v) | {"tenant": tenant.name if tenant else None, "tenant_code": tenant.code if tenant else None}


@operation("/cloud/vms/<int:vm_id>", "GET", "One VM: stage, OpenStack status and fault, flavor, addresses, host",
           "cloud.read")
def get_vm(vm_id: int) -> Any:
    return jsonify(_vm_out(cloud().vm(vm_id, g.scope)))


class VmActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(description=", ".join(VM_ACTIONS))
    flavor: str | None = Field(None, max_length=64, description="the new flavor (resize)")
    confirm: bool = Field(False, description="required true for delete")


@operation("/cloud/vms/<int:vm_id>/actions", "POST", "A day-2 action (start, stop, reboot, resize, confirm_resize, "
           "delete with confirm) as a job; audited", "cloud.manage", body=VmActionIn)
def vm_action(vm_id: int) -> Any:
    body = parse_body(VmActionIn)
    c = cloud()
    vm = c.vm(vm_id, g.scope)
    job = c.vm_action(g.actor, vm, body.action, flavor=body.flavor, confirm=body.confirm)
    return jsonify(_vm_out(vm) | {"job_id": job.id, "job": job_json(job)}), 202


@operation("/cloud/vms/<int:vm_id>/password", "POST", "Reveal a VM's generated admin password (audited); 409 when "
           "the VM has none (key pair policy)", "cloud.manage")
def vm_password(vm_id: int) -> Any:
    c = cloud()
    vm = c.vm(vm_id, g.scope)
    password = c.vm_password(g.actor, vm)
    if password is None:
        raise Conflict(f"VM {vm.name} has no generated password (it was created with a key pair)")
    return jsonify({"vm_id": vm.id, "name": vm.name, "password": password})


# Service-desk cloud requests -----------------------------------------------------------------------
@operation("/cloud/cloud-requests/<int:cloud_request_id>", "GET", "A service-desk cloud request (new VM, quota "
           "increase) with its ticket and, once approved, its job", "cloud.read")
def get_cloud_request(cloud_request_id: int) -> Any:
    return jsonify(_service_request_json(_service_request(cloud_request_id)))


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: bool
    comment: str = Field("", max_length=2000)


@operation("/cloud/cloud-requests/<int:cloud_request_id>/decision", "POST", "Approve (the request runs through the "
           "normal path and its ticket follows the job) or reject a cloud request; 409 once decided",
           "cloud.manage", body=DecisionIn)
def decide_cloud_request(cloud_request_id: int) -> Any:
    body = parse_body(DecisionIn)
    req = cloud().decide(g.actor, _service_request(cloud_request_id), body.approve, body.comment)
    return jsonify(_service_request_json(req))
