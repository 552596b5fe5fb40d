"""Cloud tenant pages: the resource pools with their capacity, tenants with their project per pool
(onboarding steps, retry, offboarding, quotas), VM provisioning requests with live per-VM progress,
the VMs with their day-2 actions, and the decision on service-desk cloud requests.

Every change goes through :class:`~ecocloud_ops.cloud.service.CloudService`, which validates and audits it
and leaves the cloud work to the worker. A refused change is rolled back, audited as a failure and shown
next to the form (or as a message on the page it came from), never as an error page; an object outside
the user's site scope is a 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import pgettext
from sqlalchemy import func, select

from ...auth.permissions import has_permission
from ...cloud.models import (
    FINAL_VM,
    CloudServiceRequest,
    ProjectStatus,
    RequestStatus,
    Tenant,
    TenantProject,
    Vm,
    VmRequest,
    VmStage,
)
from ...cloud.service import DEFAULT_QUOTAS, CloudService
from ...errors import EcoCloudError, NotFound, ValidationFailed
from ..security import requires, services
from .forms import form_int as _int
from .forms import local_time
from .forms import refused as _refused

bp = Blueprint("cloud", __name__, url_prefix="/cloud")

#: Bootstrap badge of each VM stage, project status, step status and request status.
BADGES = {"queued": "text-bg-secondary", "pending": "text-bg-light", "building": "text-bg-primary",
          "running": "text-bg-primary", "onboarding": "text-bg-primary", "offboarding": "text-bg-primary",
          "configuring": "text-bg-info", "active": "text-bg-success", "configured": "text-bg-success",
          "succeeded": "text-bg-success", "done": "text-bg-success", "approved": "text-bg-success",
          "partial": "text-bg-warning", "skipped": "text-bg-light", "deleting": "text-bg-warning",
          "deleted": "text-bg-dark", "offboarded": "text-bg-dark", "rejected": "text-bg-dark",
          "error": "text-bg-danger", "failed": "text-bg-danger", "offboard_failed": "text-bg-danger"}
FINAL_REQUEST = {RequestStatus.SUCCEEDED, RequestStatus.PARTIAL, RequestStatus.FAILED}
#: The quotas shown in the forms, in this order.
QUOTA_KEYS = tuple(DEFAULT_QUOTAS)


def _cloud() -> CloudService:
    return services().cloud


def stage_names() -> dict[str, str]:
    return {"queued": _("queued"), "building": _("building"), "active": pgettext("vm stage", "active"),
            "configuring": _("configuring"), "configured": _("configured"), "error": _("error"),
            "deleting": _("deleting"), "deleted": _("deleted")}


def project_status_names() -> dict[str, str]:
    return {"pending": _("waiting for the worker"), "onboarding": _("onboarding"), "active": _("active"),
            "failed": _("onboarding failed"), "offboarding": _("offboarding"),
            "offboard_failed": _("offboarding failed"), "offboarded": _("offboarded")}


def step_names() -> dict[str, str]:
    return {"project": _("Project"), "quotas": _("Quotas"), "network": _("Network, subnet and router"),
            "security_group": _("Security group rules"), "roles": _("Role assignments"),
            "servers": _("Delete the VMs")}


def step_status_names() -> dict[str, str]:
    return {"pending": _("pending"), "running": _("running"), "done": _("done"), "failed": _("failed"),
            "skipped": _("skipped")}


def request_status_names() -> dict[str, str]:
    return {"queued": _("queued"), "running": _("running"), "succeeded": _("succeeded"),
            "partial": _("partly failed"), "failed": _("failed")}


def quota_names() -> dict[str, str]:
    return {"cores": _("vCPUs"), "ram_mb": _("RAM (MB)"), "instances": _("Instances"), "networks": _("Networks"),
            "subnets": _("Subnets"), "ports": _("Ports"), "routers": _("Routers"), "floating_ips": _("Floating IPs"),
            "security_groups": _("Security groups"), "volumes": _("Volumes"), "gigabytes": _("Volume storage (GB)"),
            "security_group_rules": _("Security group rules"), "key_pairs": _("Key pairs")}


def action_names() -> dict[str, str]:
    return {"start": pgettext("vm action", "Start"), "stop": pgettext("vm action", "Stop"),
            "reboot": pgettext("vm action", "Reboot"), "resize": pgettext("vm action", "Resize"),
            "confirm_resize": _("Confirm the resize"), "delete": pgettext("vm action", "Delete")}


def service_request_names() -> tuple[dict[str, str], dict[str, str]]:
    kinds = {"new_vm": _("New VM"), "quota_increase": _("Quota increase")}
    statuses = {"pending": _("waiting for approval"), "approved": _("approved"), "rejected": _("rejected"),
                "done": _("done"), "failed": _("failed")}
    return kinds, statuses


def cloud_labels() -> dict[str, Any]:
    """The labels every cloud page uses (also given to the service-desk pages that show cloud requests)."""
    kinds, statuses = service_request_names()
    return {"vm_stages": stage_names(), "project_statuses": project_status_names(), "step_names": step_names(),
            "step_statuses": step_status_names(), "request_statuses": request_status_names(),
            "quota_names": quota_names(), "action_names": action_names(), "cloud_request_kinds": kinds,
            "cloud_request_statuses": statuses, "badge": BADGES, "local_time": local_time}


@bp.context_processor
def _labels() -> dict[str, Any]:
    return cloud_labels()


def _quotas_from_form(prefix: str = "quota_") -> dict[str, Any]:
    return {k: request.form.get(prefix + k, "").strip() for k in QUOTA_KEYS if request.form.get(prefix + k, "").strip()}


def _can_jobs() -> bool:
    return has_permission(g.user.role, "jobs.read")


def _job_link_done(message: str, job_id: int | None) -> None:
    flash(message + (" " + _("(job #%(n)s)", n=job_id) if job_id else ""), "success")


# Pools ------------------------------------------------------------------------------------------
def _quota_sums() -> dict[str, dict[str, Any]]:
    """Per pool, the sum of the active projects' quotas (cores, RAM, volume storage); -1 means unlimited."""
    sums: dict[str, dict[str, Any]] = {}
    rows = g.db.execute(select(TenantProject.pool, TenantProject.quotas)
                        .where(TenantProject.status == ProjectStatus.ACTIVE)).all()
    for pool, quotas in rows:
        s = sums.setdefault(pool, {"cores": 0, "ram_mb": 0, "gigabytes": 0, "unlimited": set()})
        for key in ("cores", "ram_mb", "gigabytes"):
            value = (quotas or {}).get(key)
            if value is None:
                continue
            if int(value) < 0:
                s["unlimited"].add(key)
            else:
                s[key] += int(value)
    return sums


def _pct(part: Any, whole: Any) -> int:
    try:
        return max(0, min(100, round(100 * float(part) / float(whole)))) if whole and float(whole) > 0 else 0
    except (TypeError, ValueError):
        return 0


def capacity_bars(capacity: dict[str, Any], sums: dict[str, Any] | None) -> list[dict[str, Any]]:
    """vCPU, RAM and disk: used vs physical, and the sum of the tenants' quotas vs physical."""
    sums = sums or {"cores": 0, "ram_mb": 0, "gigabytes": 0, "unlimited": set()}
    out = []
    for key, label, used_key, total_key, quota_key, unit, div in (
            ("vcpus", _("vCPUs"), "vcpus_used", "vcpus_total", "cores", "", 1),
            ("ram", _("RAM"), "ram_mb_used", "ram_mb_total", "ram_mb", "GB", 1024),
            ("disk", _("Disk"), "disk_gb_used", "disk_gb_total", "gigabytes", "GB", 1)):
        total, used = capacity.get(total_key), capacity.get(used_key)
        quota = sums.get(quota_key, 0)
        out.append({"key": key, "label": label, "unit": unit,
                    "used": None if used is None else round(used / div, 1) if div != 1 else used,
                    "total": None if total is None else round(total / div, 1) if div != 1 else total,
                    "quota": round(quota / div, 1) if div != 1 else quota,
                    "quota_unlimited": quota_key in sums.get("unlimited", set()),
                    "used_pct": _pct(used, total), "quota_pct": _pct(quota, total),
                    "overcommit": bool(total) and quota > (total or 0)})
    return out


@bp.route("/")
@requires("cloud.read")
def index() -> Any:
    cloud = _cloud()
    connector = cloud.connector
    if not connector.configured:
        settings = g.container.settings
        return render_template("cloud/setup.html", clouds_yaml=settings.clouds_yaml,
                               instance_dir=settings.instance_dir)
    pools = cloud.pools()
    sums = _quota_sums()
    bars = {p["name"]: capacity_bars(p["capacity"], sums.get(p["name"])) for p in pools}
    return render_template("cloud/index.html", pools=pools, bars=bars,
                           requests=cloud.vm_requests(g.scope, limit=10), tenant_names=_tenant_names())


@bp.route("/sync", methods=["POST"])
@requires("cloud.manage")
def sync() -> Any:
    """Queue an inventory sync of every pool (or of the pool named in the form)."""
    cloud = _cloud()
    pool = (request.form.get("pool") or "").strip() or None
    back = url_for("cloud.pool", pool=pool) if pool else url_for("cloud.index")
    try:
        if not cloud.connector.configured:
            raise ValidationFailed("no cloud pools are configured", details=[{"field": "pool", "message": "none"}])
        if pool:
            cloud.connector.pool(pool)
    except EcoCloudError as exc:
        _refused(exc)
        return redirect(url_for("cloud.index"))
    job = services().jobs.enqueue(g.actor, "cloud.sync", {"pool": pool} if pool else {})
    _job_link_done(_("Sync queued: the console shows what it finds when it ends."), job.id)
    return redirect(url_for("main.job", job_id=job.id) if _can_jobs() else back)


@bp.route("/pools/<pool>")
@requires("cloud.read")
def pool(pool: str) -> Any:
    cloud = _cloud()
    cloud.connector.pool(pool)  # NotFound: 404
    row = next(p for p in cloud.pools() if p["name"] == pool)
    days = request.args.get("days", 30, type=int) or 30
    days = days if days in (1, 7, 30, 90) else 30
    trend = cloud.capacity_trend(pool, days=days)
    labels = [local_time(s.at, "%m-%d %H:%M") for s in trend]
    chart_cpu = {"labels": labels, "series": [
        {"label": _("vCPUs used"), "data": [s.vcpus_used for s in trend]},
        {"label": _("vCPUs (physical)"), "data": [s.vcpus_total for s in trend]},
        {"label": _("vCPU quotas (sum)"), "data": [s.quota_cores for s in trend]}]}
    chart_ram = {"labels": labels, "series": [
        {"label": _("RAM used (GB)"), "data": [round(s.ram_mb_used / 1024, 1) for s in trend]},
        {"label": _("RAM (physical, GB)"), "data": [round(s.ram_mb_total / 1024, 1) for s in trend]},
        {"label": _("RAM quotas (sum, GB)"), "data": [round(s.quota_ram_mb / 1024, 1) for s in trend]}]}
    sums = _quota_sums().get(pool)
    state = cloud.pool_state(pool)
    return render_template("cloud/pool.html", p=row, bars=capacity_bars(row["capacity"], sums),
                           top=cloud.top_tenants(pool), trend=trend, days=days, chart_cpu=chart_cpu,
                           chart_ram=chart_ram, flavors=state.flavors if state else [],
                           images=state.images if state else [])


# Tenants ----------------------------------------------------------------------------------------
def _tenant_names() -> dict[int, str]:
    return {t.id: t.name for t in _cloud().tenants(g.scope)}


@bp.route("/tenants")
@requires("cloud.read")
def tenants() -> Any:
    cloud = _cloud()
    rows = cloud.tenants(g.scope)
    ids = [t.id for t in rows]
    projects: dict[int, list[TenantProject]] = {}
    vm_counts: dict[int, int] = {}
    if ids:
        for tp in g.db.execute(select(TenantProject).where(TenantProject.tenant_id.in_(ids))
                               .order_by(TenantProject.pool)).scalars():
            projects.setdefault(tp.tenant_id, []).append(tp)
        vm_counts = dict(g.db.execute(select(Vm.tenant_id, func.count()).where(
            Vm.tenant_id.in_(ids), Vm.stage != VmStage.DELETED).group_by(Vm.tenant_id)).all())
    return render_template("cloud/tenants.html", tenants=rows, projects=projects, vm_counts=vm_counts,
                           configured=cloud.connector.configured)


def _contacts_from_text(text: str) -> list[dict[str, str]]:
    """One contact a line: ``name, phone, email`` (phone and e-mail optional)."""
    out = []
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.replace("，", ",").split(",")]
        if not any(parts):
            continue
        out.append({"name": parts[0], "phone": parts[1] if len(parts) > 1 else "",
                    "email": parts[2] if len(parts) > 2 else ""})
    return out


def _contacts_text(contacts: list[dict[str, Any]] | None) -> str:
    return "\n".join(", ".join(x for x in (c.get("name", ""), c.get("phone", ""), c.get("email", "")) if x)
                     for c in contacts or [])


def _tenant_fields() -> dict[str, Any]:
    f = request.form
    return {"name": f.get("name", ""), "code": f.get("code", ""), "site_code": (f.get("site_code") or "").strip(),
            "description": f.get("description", ""), "contacts": _contacts_from_text(f.get("contacts", "")),
            "users": f.get("users", "")}


def _check_site(code: str) -> None:
    """The owning site must be one the user sees."""
    try:
        services().sites.get(code, g.scope)
    except NotFound as exc:
        raise ValidationFailed(f"site_code: no site {code} in your scope",
                               details=[{"field": "site_code", "message": f"no site {code} in your scope"}]) from exc


def _tenant_form(tenant: Tenant | None, form: Any, error: EcoCloudError | None, status: int = 200) -> Any:
    return render_template("cloud/tenant_form.html", tenant=tenant, form=form, error=error), status


@bp.route("/tenants/new", methods=["GET", "POST"])
@requires("cloud.manage")
def new_tenant() -> Any:
    if request.method == "POST":
        try:
            fields = _tenant_fields()
            _check_site(fields["site_code"])
            t = _cloud().save_tenant(g.actor, None, **fields)
        except EcoCloudError as exc:
            _refused(exc, show=False)
            return _tenant_form(None, request.form, exc, 422)
        flash(_("Tenant %(name)s saved.", name=t.name), "success")
        return redirect(url_for("cloud.tenant", tenant_id=t.id))
    return _tenant_form(None, {"site_code": g.user.site.code}, None)


@bp.route("/tenants/<int:tenant_id>/edit", methods=["GET", "POST"])
@requires("cloud.manage")
def edit_tenant(tenant_id: int) -> Any:
    cloud = _cloud()
    t = cloud.tenant(tenant_id, g.scope)
    if request.method == "POST":
        try:
            fields = _tenant_fields()
            _check_site(fields["site_code"])
            cloud.save_tenant(g.actor, t, **fields)
        except EcoCloudError as exc:
            _refused(exc, show=False)
            return _tenant_form(cloud.tenant(tenant_id, g.scope), request.form, exc, 422)
        flash(_("Saved."), "success")
        return redirect(url_for("cloud.tenant", tenant_id=t.id))
    form = {"name": t.name, "code": t.code, "site_code": t.site_code, "description": t.description or "",
            "contacts": _contacts_text(t.contacts), "users": ", ".join(t.users or [])}
    return _tenant_form(t, form, None)


@bp.route("/tenants/<int:tenant_id>")
@requires("cloud.read")
def tenant(tenant_id: int) -> Any:
    cloud = _cloud()
    t = cloud.tenant(tenant_id, g.scope)
    projects = cloud.projects(t)
    in_pools = {tp.pool for tp in projects if tp.status not in (ProjectStatus.OFFBOARDED,)}
    pools = [p.name for p in cloud.connector.pools]
    return render_template("cloud/tenant.html", tenant=t, projects=projects,
                           vms=cloud.vms(g.scope, tenant=t), requests=cloud.vm_requests(g.scope, tenant=t, limit=20),
                           onboard_pools=[p for p in pools if p not in in_pools], pools=pools,
                           default_quotas=DEFAULT_QUOTAS, quota_keys=QUOTA_KEYS,
                           site=services().sites.by_code(t.site_code))


@bp.route("/tenants/<int:tenant_id>/onboard", methods=["POST"])
@requires("cloud.manage")
def onboard(tenant_id: int) -> Any:
    cloud = _cloud()
    t = cloud.tenant(tenant_id, g.scope)
    pool = (request.form.get("pool") or "").strip()
    try:
        if not pool:
            raise ValidationFailed("pool: choose the pool", details=[{"field": "pool", "message": "required"}])
        tp = cloud.onboard(g.actor, t, pool, quotas=_quotas_from_form() or None,
                           cidr=(request.form.get("cidr") or "").strip() or None)
    except EcoCloudError as exc:
        _refused(exc)
    else:
        _job_link_done(_("Onboarding of %(tenant)s into %(pool)s queued.", tenant=t.name, pool=pool), tp.job_id)
    return redirect(url_for("cloud.tenant", tenant_id=tenant_id) + f"#project-{pool}")


@bp.route("/tenants/<int:tenant_id>/pools/<pool>/retry", methods=["POST"])
@requires("cloud.manage")
def retry(tenant_id: int, pool: str) -> Any:
    """Continue a failed onboarding (or offboarding) from the step that failed."""
    cloud = _cloud()
    t = cloud.tenant(tenant_id, g.scope)
    try:
        tp = cloud.project(t, pool)
        if tp.status == ProjectStatus.OFFBOARD_FAILED:
            tp = cloud.offboard(g.actor, t, pool, force=request.form.get("force") == "1")
            message = _("Offboarding of %(tenant)s from %(pool)s retried.", tenant=t.name, pool=pool)
        else:
            tp = cloud.onboard(g.actor, t, pool)
            message = _("Onboarding of %(tenant)s into %(pool)s retried from the failed step.", tenant=t.name,
                        pool=pool)
    except EcoCloudError as exc:
        _refused(exc)
    else:
        _job_link_done(message, tp.job_id)
    return redirect(url_for("cloud.tenant", tenant_id=tenant_id) + f"#project-{pool}")


@bp.route("/tenants/<int:tenant_id>/pools/<pool>/offboard", methods=["POST"])
@requires("cloud.manage")
def offboard(tenant_id: int, pool: str) -> Any:
    cloud = _cloud()
    t = cloud.tenant(tenant_id, g.scope)
    try:
        if request.form.get("confirm") != "1":
            raise ValidationFailed("confirm: offboarding removes the project, its network and its roles: confirm it",
                                   details=[{"field": "confirm", "message": "required"}])
        tp = cloud.offboard(g.actor, t, pool, force=request.form.get("force") == "1")
    except EcoCloudError as exc:
        _refused(exc)
    else:
        _job_link_done(_("Offboarding of %(tenant)s from %(pool)s queued.", tenant=t.name, pool=pool), tp.job_id)
    return redirect(url_for("cloud.tenant", tenant_id=tenant_id) + f"#project-{pool}")


@bp.route("/tenants/<int:tenant_id>/pools/<pool>/quotas", methods=["POST"])
@requires("cloud.manage")
def quotas(tenant_id: int, pool: str) -> Any:
    cloud = _cloud()
    t = cloud.tenant(tenant_id, g.scope)
    try:
        tp = cloud.project(t, pool)
        current = tp.quotas or {}
        changed = {k: v for k, v in _quotas_from_form().items() if str(current.get(k)) != v}
        job = cloud.change_quotas(g.actor, t, pool, changed)
    except EcoCloudError as exc:
        _refused(exc)
    else:
        _job_link_done(_("Quota change of %(tenant)s in %(pool)s queued.", tenant=t.name, pool=pool), job.id)
    return redirect(url_for("cloud.tenant", tenant_id=tenant_id) + f"#project-{pool}")


# VM requests ------------------------------------------------------------------------------------
def _pool_choices() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per pool, the flavors and images of the last sync (what the selects offer)."""
    cloud = _cloud()
    out = {}
    for p in cloud.connector.pools:
        out[p.name] = {"flavors": sorted(cloud.flavors(p.name), key=lambda f: (f["vcpus"], f["ram_mb"], f["name"])),
                       "images": sorted(cloud.images(p.name), key=lambda i: i["name"])}
    return out


def _active_projects(tenants: list[Tenant]) -> dict[int, list[str]]:
    ids = [t.id for t in tenants]
    out: dict[int, list[str]] = {}
    if ids:
        for tid, pool in g.db.execute(select(TenantProject.tenant_id, TenantProject.pool).where(
                TenantProject.tenant_id.in_(ids), TenantProject.status == ProjectStatus.ACTIVE)
                .order_by(TenantProject.pool)).all():
            out.setdefault(tid, []).append(pool)
    return out


def playbook_choices() -> list[Any]:
    """The catalog's playbooks a post-boot step may run (baseline hardening first)."""
    specs = [s for s in _cloud().catalog.all() if not s.name.startswith(("dr_", "fail", "sleep", "many_"))]
    return sorted(specs, key=lambda s: (s.name != "baseline_hardening", s.name))


def _request_form(form: Any, error: EcoCloudError | None, status: int = 200) -> Any:
    cloud = _cloud()
    tenants = cloud.tenants(g.scope)
    quota_short = [d for d in (error.details if error else []) if str(d.get("field", "")).startswith("quota.")]
    return render_template("cloud/request_form.html", form=form, error=error, tenants=tenants,
                           active=_active_projects(tenants), choices=_pool_choices(), playbooks=playbook_choices(),
                           quota_short=quota_short, configured=cloud.connector.configured), status


@bp.route("/requests/new", methods=["GET", "POST"])
@requires("cloud.manage")
def new_request() -> Any:
    cloud = _cloud()
    f = request.form
    if request.method == "POST":
        try:
            tenant_ref = (f.get("tenant_id") or "").strip()
            if not tenant_ref.isdigit():
                raise ValidationFailed("tenant: choose the tenant", details=[{"field": "tenant",
                                                                             "message": "required"}])
            t = cloud.tenant(int(tenant_ref), g.scope)
            req, created = cloud.request_vms(
                g.actor, t, (f.get("pool") or "").strip(), name=f.get("name") or "", count=_int(f.get("count")),
                flavor=f.get("flavor") or "", image=f.get("image") or "",
                key_name=(f.get("key_name") or "").strip() or None,
                password_policy=f.get("password_policy") or "key", playbook=(f.get("playbook") or "").strip() or None,
                uid=f.get("uid") or None)
        except EcoCloudError as exc:
            _refused(exc, show=False)
            return _request_form(f, exc, 422)
        if created:
            flash(_("Request #%(n)s queued: %(count)s VM(s) are created by the worker.", n=req.id, count=req.count),
                  "success")
        else:
            flash(_("This form was already submitted: nothing was created twice. Here is request #%(n)s.", n=req.id),
                  "info")
        return redirect(url_for("cloud.vm_request", request_id=req.id))
    a = request.args
    form = {"tenant_id": a.get("tenant_id", ""), "pool": a.get("pool", ""), "count": "1",
            "password_policy": "key", "uid": uuid.uuid4().hex}
    return _request_form(form, None)


@bp.route("/requests")
@requires("cloud.read")
def vm_requests() -> Any:
    return render_template("cloud/requests.html", requests=_cloud().vm_requests(g.scope, limit=200),
                           tenant_names=_tenant_names())


def _vm_row(v: Vm) -> dict[str, Any]:
    """One VM as the request page shows it (labels computed here, not in the script)."""
    stages = stage_names()
    addresses = [f"{a.get('addr')}" if isinstance(a, dict) else str(a)
                 for net in (v.addresses or {}).values() for a in (net if isinstance(net, list) else [net])]
    return {"id": v.id, "name": v.name, "stage": v.stage, "stage_label": stages.get(v.stage, v.stage),
            "stage_class": BADGES.get(v.stage, "text-bg-light"), "status": v.status or "—", "fault": v.fault or "",
            "addresses": ", ".join(addresses) or "—", "address_list": addresses, "host": v.host or "—",
            "final": v.stage in FINAL_VM, "url": url_for("cloud.vm", vm_id=v.id)}


@bp.route("/requests/<int:request_id>")
@requires("cloud.read")
def vm_request(request_id: int) -> Any:
    cloud = _cloud()
    req = cloud.vm_request(request_id, g.scope)
    vms = cloud.request_vms_of(req)
    return render_template("cloud/request.html", req=req, vms=[_vm_row(v) for v in vms],
                           tenant=g.db.get(Tenant, req.tenant_id), live=req.status not in FINAL_REQUEST)


@bp.route("/requests/<int:request_id>/progress.json")
@requires("cloud.read")
def request_progress(request_id: int) -> Any:
    """Polled by the request page until every VM is final."""
    cloud = _cloud()
    req = cloud.vm_request(request_id, g.scope)
    rows = [_vm_row(v) for v in cloud.request_vms_of(req)]
    done = req.status in FINAL_REQUEST and all(r["final"] for r in rows)
    return jsonify({"id": req.id, "status": req.status,
                    "status_label": request_status_names().get(req.status, req.status),
                    "status_class": BADGES.get(req.status, "text-bg-light"), "error": req.error, "job_id": req.job_id,
                    "final": done, "vms": rows})


# VMs --------------------------------------------------------------------------------------------
@bp.route("/vms")
@requires("cloud.read")
def vms() -> Any:
    cloud = _cloud()
    a = request.args
    tenant = cloud.tenant(a["tenant_id"], g.scope) if (a.get("tenant_id") or "").isdigit() else None
    pool = a.get("pool") if a.get("pool") in {p.name for p in cloud.connector.pools} else None
    rows = cloud.vms(g.scope, tenant=tenant, pool=pool, include_deleted=a.get("deleted") == "1")
    return render_template("cloud/vms.html", vms=rows, tenant=tenant, pool=pool, tenants=cloud.tenants(g.scope),
                           pools=[p.name for p in cloud.connector.pools], tenant_names=_tenant_names(),
                           show_deleted=a.get("deleted") == "1")


def _vm_page(v: Vm, password: str | None = None) -> Any:
    cloud = _cloud()
    flavors = []
    try:
        flavors = cloud.flavors(v.pool)
    except NotFound:
        pass
    req = g.db.get(VmRequest, v.request_id) if v.request_id else None
    return render_template("cloud/vm.html", vm=v, row=_vm_row(v), tenant=g.db.get(Tenant, v.tenant_id),
                           flavors=flavors, req=req, password=password)


@bp.route("/vms/<int:vm_id>")
@requires("cloud.read")
def vm(vm_id: int) -> Any:
    return _vm_page(_cloud().vm(vm_id, g.scope))


@bp.route("/vms/<int:vm_id>/action", methods=["POST"])
@requires("cloud.manage")
def vm_action(vm_id: int) -> Any:
    cloud = _cloud()
    v = cloud.vm(vm_id, g.scope)
    action = request.form.get("action") or ""
    try:
        job = cloud.vm_action(g.actor, v, action, flavor=(request.form.get("flavor") or "").strip() or None,
                              confirm=request.form.get("confirm") == "1")
    except EcoCloudError as exc:
        _refused(exc)
    else:
        _job_link_done(_("%(action)s of %(vm)s queued.", action=action_names().get(action, action), vm=v.name),
                       job.id)
    back = request.form.get("back")
    if back == "list":
        return redirect(url_for("cloud.vms", tenant_id=v.tenant_id))
    return redirect(url_for("cloud.vm", vm_id=vm_id))


@bp.route("/vms/<int:vm_id>/password", methods=["POST"])
@requires("cloud.manage")
def vm_password(vm_id: int) -> Any:
    """Show the generated admin password once on this page (never in a redirect or a flash); audited."""
    cloud = _cloud()
    v = cloud.vm(vm_id, g.scope)
    password = cloud.vm_password(g.actor, v)
    if password is None:
        flash(_("This VM has no generated password (it uses a key pair)."), "info")
    return _vm_page(v, password)


# Service-desk cloud requests --------------------------------------------------------------------
@bp.route("/service-requests/<int:cloud_request_id>/decide", methods=["POST"])
@requires("cloud.manage")
def decide(cloud_request_id: int) -> Any:
    """Approve (the request runs through the normal path) or reject a service-desk cloud request."""
    cloud = _cloud()
    req: CloudServiceRequest = cloud.service_request(cloud_request_id)
    cloud.tenant(req.tenant_id, g.scope)  # out of scope: 404
    from ...servicedesk.models import Ticket

    ticket = g.db.get(Ticket, req.ticket_id)
    back = url_for("servicedesk.ticket", ref=ticket.number) if ticket else url_for("cloud.index")
    decision = request.form.get("decision") or ""
    try:
        if decision not in ("approve", "reject"):
            raise ValidationFailed("decision: approve or reject", details=[{"field": "decision",
                                                                            "message": "approve or reject"}])
        req = cloud.decide(g.actor, req, decision == "approve", comment=(request.form.get("comment") or "").strip())
    except EcoCloudError as exc:
        _refused(exc)
        return redirect(back)
    if req.status == "failed":
        flash(_("Approved, but the request could not be carried out: see the ticket's comments."), "warning")
    elif decision == "approve":
        _job_link_done(_("Request approved."), req.job_id)
    else:
        flash(_("Request rejected."), "info")
    return redirect(back)
