"""DR API: data centers, protected services, drill plans, drills (start, abort, confirm), findings."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from ...dr.models import DrillRun
from ...dr.service import DRService, drill_detail, drill_json, finding_json, service_json, step_json
from ..security import services
from . import PAGE_QUERY, _page_args, operation, parse_body


def dr() -> DRService:
    return services().dr


def _centers() -> dict[int, Any]:
    return {c.id: c for c in dr().centers()}


def _drill_full(d: DrillRun) -> dict[str, Any]:
    return drill_detail(dr(), d)


@operation("/dr/centers", "GET", "Data centers (production, same-city DR, remote DR)", "dr.read")
def list_centers() -> Any:
    return jsonify({"items": [{"code": c.code, "name": c.name, "role": c.role, "location": c.location}
                              for c in dr().centers()]})


class CenterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=32)
    name: str = Field(max_length=100)
    role: str = Field(description="production, same_city_dr or remote_dr")
    location: str = Field("", max_length=200)


@operation("/dr/centers", "POST", "Define a data center", "dr.manage", body=CenterIn)
def create_center() -> Any:
    body = parse_body(CenterIn)
    c = dr().create_center(g.actor, code=body.code, name=body.name, role=body.role, location=body.location)
    return jsonify({"code": c.code, "name": c.name, "role": c.role, "location": c.location}), 201


class ServiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=100)
    tenant: str | None = Field(None, max_length=100)
    site_code: str | None = Field(None, max_length=12)
    primary_center: str | None = None
    dr_center: str | None = None
    rto_seconds: int | None = None
    rpo_seconds: int | None = None
    drill_interval_days: int | None = None
    playbooks: dict[str, str] | None = Field(None, description="playbook by purpose: precheck, failover, verify, "
                                                               "failback, copy_build, copy_promote, copy_cleanup")
    inventory: str | None = Field(None, max_length=100_000, description="YAML inventory of the service's hosts")
    health_kind: str | None = Field(None, description="http, tcp or sql")
    health_target: str | None = Field(None, description="URL, host:port or DSN (stored encrypted)")
    health_query: str | None = None
    copy_target: str | None = Field(None, description="health target of a test drill's copy (encrypted)")
    marker_primary: str | None = Field(None, description="DSN where RPO markers are written (encrypted)")
    marker_dr: str | None = Field(None, description="DSN where markers are read after a failover (encrypted)")
    marker_copy: str | None = Field(None, description="DSN where markers are read on a test copy (encrypted)")


def _service_out(s: Any) -> dict[str, Any]:
    overdue = {o.id for o, _ in dr().overdue(g.scope)}
    return service_json(s, _centers(), s.id in overdue)


@operation("/dr/services", "GET", "Protected services in the caller's scope, with their overdue state", "dr.read")
def list_services() -> Any:
    overdue = {o.id for o, _ in dr().overdue(g.scope)}
    centers = _centers()
    return jsonify({"items": [service_json(s, centers, s.id in overdue) for s in dr().services(g.scope)]})


@operation("/dr/services", "POST", "Define a protected service (secrets encrypted at rest)", "dr.manage",
           body=ServiceIn)
def create_service() -> Any:
    body = parse_body(ServiceIn)
    s = dr().save_service(g.actor, **body.model_dump(exclude_none=True))
    return jsonify(_service_out(s)), 201


@operation("/dr/services/<int:service_id>", "GET", "A protected service with its plans", "dr.read")
def get_service(service_id: int) -> Any:
    s = dr().service(service_id, g.scope)
    return jsonify(_service_out(s) | {"plans": [_plan_json(p) for p in dr().plans(s)]})


@operation("/dr/services/<int:service_id>", "PATCH", "Change a protected service (only the fields given)",
           "dr.manage", body=ServiceIn)
def update_service(service_id: int) -> Any:
    body = parse_body(ServiceIn)
    s = dr().save_service(g.actor, dr().service(service_id, g.scope), **body.model_dump(exclude_unset=True))
    return jsonify(_service_out(s))


def _plan_json(p: Any) -> dict[str, Any]:
    return {"id": p.id, "service_id": p.service_id, "name": p.name, "mode": p.mode, "steps": p.steps,
            "schedule": p.schedule, "next_run_at": p.next_run_at.isoformat() if p.next_run_at else None}


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=100)
    mode: str | None = Field(None, description="test, planned_migration or disaster")
    steps: list[Any] | None = Field(None, description="ordered steps; omitted: the mode's default plan")
    schedule: str | None = Field(None, max_length=100, description="five-field cron (Asia/Shanghai); '' clears")


@operation("/dr/services/<int:service_id>/plans", "POST", "Create a drill plan (default steps of its mode when "
           "none are given)", "dr.manage", body=PlanIn)
def create_plan(service_id: int) -> Any:
    body = parse_body(PlanIn)
    p = dr().save_plan(g.actor, dr().service(service_id, g.scope), name=body.name or "", mode=body.mode,
                       steps=body.steps, schedule=body.schedule)
    return jsonify(_plan_json(p)), 201


@operation("/dr/plans/<int:plan_id>", "GET", "A drill plan", "dr.read")
def get_plan(plan_id: int) -> Any:
    return jsonify(_plan_json(dr().plan(plan_id, g.scope)))


@operation("/dr/plans/<int:plan_id>", "PATCH", "Change a drill plan", "dr.manage", body=PlanIn)
def update_plan(plan_id: int) -> Any:
    body = parse_body(PlanIn)
    p = dr().plan(plan_id, g.scope)
    p = dr().save_plan(g.actor, dr().service(p.service_id, g.scope), p, name=body.name, mode=body.mode,
                       steps=body.steps, schedule=body.schedule)
    return jsonify(_plan_json(p))


@operation("/dr/plans/<int:plan_id>/drills", "POST", "Start a drill of the plan; 409 naming the running drill "
           "when the service already has one", "dr.run")
def start_drill(plan_id: int) -> Any:
    d = dr().start(g.actor, dr().plan(plan_id, g.scope))
    return jsonify(_drill_full(d)), 202


@operation("/dr/drills", "GET", "Drills in the caller's scope, newest first", "dr.read",
           query=[("service_id", "integer", "one protected service"),
                  ("status", "string", "queued, running, waiting, rolling_back, succeeded, failed, aborted, error"),
                  *PAGE_QUERY])
def list_drills() -> Any:
    limit, offset = _page_args()
    service_id = request.args.get("service_id", type=int)
    rows, total = dr().drills(g.scope, service_id=service_id, status=request.args.get("status") or None,
                              limit=limit, offset=offset)
    return jsonify({"total": total, "items": [drill_json(d) for d in rows]})


@operation("/dr/drills/<int:drill_id>", "GET", "A drill: steps (and rollbacks) with live status, measured "
           "RTO/RPO with the marker evidence, findings", "dr.read")
def get_drill(drill_id: int) -> Any:
    return jsonify(_drill_full(dr().drill(drill_id, g.scope)))


@operation("/dr/drills/<int:drill_id>/abort", "POST", "Abort a drill: the running step is canceled and the "
           "started steps are rolled back in reverse order", "dr.run")
def abort_drill(drill_id: int) -> Any:
    return jsonify(_drill_full(dr().abort(g.actor, dr().drill(drill_id, g.scope))))


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: bool = Field(True, description="false rejects: the step fails and the drill rolls back")
    note: str = Field("", max_length=1000)


@operation("/dr/drills/<int:drill_id>/confirm", "POST", "Confirm (or reject) the manual step the drill waits "
           "for; only a user of the step's role", "dr.read", body=ConfirmIn)
def confirm_drill_step(drill_id: int) -> Any:
    body = parse_body(ConfirmIn)
    step = dr().confirm(g.actor, dr().drill(drill_id, g.scope), ok=body.ok, note=body.note)
    return jsonify(step_json(step))


class FindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: str = Field(description="info, warning or critical")
    text: str = Field(max_length=2000)


@operation("/dr/drills/<int:drill_id>/findings", "POST", "Record a finding; it opens a change ticket", "dr.run",
           body=FindingIn)
def add_finding(drill_id: int) -> Any:
    body = parse_body(FindingIn)
    f = dr().add_finding(g.actor, dr().drill(drill_id, g.scope), body.severity, body.text)
    return jsonify(finding_json(f)), 201


@operation("/dr/drills/<int:drill_id>/report.pdf", "GET", "The drill report as PDF", "dr.read")
def drill_report_pdf(drill_id: int) -> Any:
    from ...dr.report import render_pdf, report_data

    d = dr().drill(drill_id, g.scope)
    pdf = render_pdf(report_data(dr(), d), "en" if request.args.get("lang") == "en" else "zh_CN")
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="drill-{d.id}.pdf"'})
