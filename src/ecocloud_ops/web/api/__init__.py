"""REST API ``/api/v1``: bearer tokens, one error shape, an OpenAPI 3 document of every route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ... import __version__
from ...auth.models import User
from ...auth.permissions import AUTHENTICATED, PUBLIC, Role, has_permission
from ...auth.service import user_summary
from ...errors import PermissionDenied, ValidationFailed
from ...jobs.models import Job
from ...jobs.registry import JOB_KINDS
from ...sites.models import Site
from ..errors import error_body
from ..security import requires, services

api_bp = Blueprint("api", __name__, url_prefix="/api/v1")


@dataclass
class Operation:
    method: str
    rule: str
    summary: str
    permission: str
    body: type[BaseModel] | None = None
    query: list[tuple[str, str, str]] = field(default_factory=list)  # (name, type, description)
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


OPERATIONS: list[Operation] = []


def operation(rule: str, method: str, summary: str, permission: str, *, body: type[BaseModel] | None = None,
              query: list[tuple[str, str, str]] | None = None,
              response: dict[str, Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an API route with its permission and its OpenAPI description."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        OPERATIONS.append(Operation(method, rule, summary, permission, body, query or [],
                                    response or {"type": "object"}))
        view = requires(permission)(f)
        api_bp.add_url_rule(rule, endpoint=f.__name__, view_func=view, methods=[method])
        return view

    return deco


def parse_body(model: type[BaseModel]) -> Any:
    """Validate a JSON body: malformed JSON, unknown fields and bad values are 422 with details."""
    data = request.get_json(silent=True)
    if data is None:
        raise ValidationFailed("the request body must be a JSON object",
                               details=[{"field": "", "message": "malformed or missing JSON"}])
    if not isinstance(data, dict):
        raise ValidationFailed("the request body must be a JSON object",
                               details=[{"field": "", "message": f"got {type(data).__name__}"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        raise ValidationFailed("invalid request body: " + "; ".join(f"{d['field']}: {d['message']}"
                                                                     for d in details), details=details) from exc


def _page_args() -> tuple[int, int]:
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 1000)
        offset = max(int(request.args.get("offset", 0)), 0)
    except ValueError as exc:
        raise ValidationFailed("limit and offset must be whole numbers",
                               details=[{"field": "limit", "message": "not a number"}]) from exc
    return limit, offset


PAGE_QUERY = [("limit", "integer", "page size (1-1000, default 100)"), ("offset", "integer", "rows to skip")]


def site_json(s: Site) -> dict[str, Any]:
    return {"code": s.code, "name": s.name, "tier": s.tier,
            "parent": s.path.strip("/").split("/")[-2] if s.path.count("/") > 1 else None,
            "path": s.path.strip("/").split("/"), "retired": s.retired_at is not None}


def job_json(j: Job) -> dict[str, Any]:
    return {"id": j.id, "kind": j.kind, "state": j.state, "progress": j.progress, "message": j.message,
            "params": j.params, "result": j.result, "error": j.error, "created_by": j.created_by,
            "site": j.site_code, "created_at": j.created_at.isoformat(),
            "started_at": j.started_at.isoformat() if j.started_at else None,
            "finished_at": j.finished_at.isoformat() if j.finished_at else None}


# Me ------------------------------------------------------------------------------------------
@operation("/me", "GET", "The caller's account and permissions", AUTHENTICATED)
def me() -> Any:
    from ...auth.permissions import ROLE_PERMISSIONS

    user: User = g.user
    return jsonify(user_summary(user) | {"permissions": sorted(ROLE_PERMISSIONS[Role(user.role)])})


# Sites ---------------------------------------------------------------------------------------
@operation("/sites", "GET", "Sites in the caller's scope", "sites.read",
           query=[("tier", "string", "ministry, province, city or county"), ("parent", "string", "parent code"),
                  ("q", "string", "name contains or code starts with"), *PAGE_QUERY])
def list_sites() -> Any:
    limit, offset = _page_args()
    rows, total = services().sites.search(g.scope, tier=request.args.get("tier") or None,
                                        parent_code=request.args.get("parent") or None,
                                        query=(request.args.get("q") or None), limit=limit, offset=offset)
    return jsonify({"total": total, "items": [site_json(s) for s in rows]})


@operation("/sites/<code>", "GET", "One site with its children (404 outside the caller's scope)", "sites.read")
def get_site(code: str) -> Any:
    svc = services()
    s = svc.sites.get(code, g.scope)
    return jsonify(site_json(s) | {"children": [site_json(c) for c in svc.sites.children(s)]})


@operation("/sites/counts", "GET", "Active sites per tier in the caller's scope", "sites.read")
def site_counts() -> Any:
    c = services().sites.counts_by_tier(g.scope)
    return jsonify({"ministry": c.ministry, "province": c.province, "city": c.city, "county": c.county,
                    "total": c.total})


# Users ---------------------------------------------------------------------------------------
class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    role: Literal[tuple(r.value for r in Role)]  # type: ignore[valid-type]
    site: str = Field(pattern=r"^\d{6}$")
    display_name: str = Field("", max_length=100)
    email: str = Field("", max_length=200)
    team: str | None = Field(None, max_length=64)
    language: Literal["zh_CN", "en"] | None = None


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal[tuple(r.value for r in Role)] | None = None  # type: ignore[valid-type]
    site: str | None = Field(None, pattern=r"^\d{6}$")
    display_name: str | None = Field(None, max_length=100)
    email: str | None = Field(None, max_length=200)
    team: str | None = Field(None, max_length=64)
    is_active: bool | None = None


@operation("/users", "GET", "Accounts in the caller's scope", "users.read",
           query=[("role", "string", "filter by role"), ("q", "string", "username or name contains"), *PAGE_QUERY])
def list_users() -> Any:
    limit, offset = _page_args()
    rows, total = services().auth.list_users(g.scope, role=request.args.get("role") or None,
                                             query=request.args.get("q") or None, limit=limit, offset=offset)
    return jsonify({"total": total, "items": [user_summary(u) for u in rows]})


@operation("/users/<int:user_id>", "GET", "One account (404 outside the caller's scope)", "users.read")
def get_user(user_id: int) -> Any:
    return jsonify(user_summary(services().auth.get_user(user_id, g.scope)))


@operation("/users", "POST", "Create an account; 2FA roles get their TOTP secret once", "users.manage",
           body=UserCreate)
def create_user() -> Any:
    body = parse_body(UserCreate)
    user, secret = services().auth.create_user(
        g.actor, username=body.username, password=body.password, role=body.role, site_code=body.site,
        display_name=body.display_name, email=body.email, team=body.team, language=body.language)
    out = user_summary(user)
    if secret:
        out["totp_secret"] = secret
        out["totp_uri"] = services().auth.provisioning_uri(user, secret)
    return jsonify(out), 201


@operation("/users/<int:user_id>", "PATCH", "Change an account's role, site, names or active flag",
           "users.manage", body=UserUpdate)
def update_user(user_id: int) -> Any:
    body = parse_body(UserUpdate)
    svc = services()
    user = svc.auth.get_user(user_id, g.scope)
    changes = body.model_dump(exclude_unset=True)
    active = changes.pop("is_active", None)
    if changes:
        svc.auth.update_user(g.actor, user, **changes)
    if active is not None and active != user.is_active:
        svc.auth.set_active(g.actor, user, active)
    return jsonify(user_summary(user))


# Tokens --------------------------------------------------------------------------------------
@operation("/tokens", "GET", "The caller's API tokens (never their secrets)", "tokens.own")
def list_tokens() -> Any:
    return jsonify({"items": [
        {"id": t.id, "name": t.name, "prefix": t.prefix, "created_at": t.created_at.isoformat(),
         "expires_at": t.expires_at.isoformat() if t.expires_at else None,
         "revoked": t.revoked_at is not None} for t in services().auth.tokens_of(g.user)]})


@operation("/tokens/<int:token_id>", "DELETE", "Revoke one of the caller's tokens", "tokens.own")
def revoke_token(token_id: int) -> Any:
    svc = services()
    svc.auth.revoke_token(g.actor, svc.auth.get_token(token_id, owner=g.user, scope=g.scope))
    return "", 204


# Jobs ----------------------------------------------------------------------------------------
class JobStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


@operation("/jobs", "GET", "Background jobs in the caller's scope", "jobs.read",
           query=[("kind", "string", "job kind"), ("state", "string", "job state")])
def list_jobs() -> Any:
    rows = services().jobs.search(g.scope, kind=request.args.get("kind") or None,
                                state=request.args.get("state") or None, limit=200)
    return jsonify({"items": [job_json(j) for j in rows]})


@operation("/jobs/<int:job_id>", "GET", "One job with its log lines", "jobs.read")
def get_job(job_id: int) -> Any:
    svc = services()
    j = svc.jobs.get(job_id, g.scope)
    return jsonify(job_json(j) | {"log": [{"at": ln.at.isoformat(), "level": ln.level, "line": ln.line}
                                          for ln in svc.jobs.log_lines(j)]})


@operation("/jobs", "POST", "Queue a job of a registered kind", "jobs.manage", body=JobStart)
def start_job() -> Any:
    body = parse_body(JobStart)
    kind = JOB_KINDS.get(body.kind)
    if kind is None:
        raise ValidationFailed(f"unknown job kind {body.kind!r}",
                               details=[{"field": "kind", "message": f"one of {sorted(JOB_KINDS)}"}])
    if not has_permission(g.user.role, kind.permission):
        raise PermissionDenied(f"starting {body.kind} needs the permission {kind.permission}")
    job = services().jobs.enqueue(g.actor, body.kind, body.params)
    return jsonify(job_json(job)), 202


@operation("/jobs/<int:job_id>/cancel", "POST", "Cancel a queued or running job", "jobs.manage")
def cancel_job(job_id: int) -> Any:
    svc = services()
    job = svc.jobs.get(job_id, g.scope)
    svc.jobs.cancel(g.actor, job)
    return jsonify(job_json(job))


# Audit ---------------------------------------------------------------------------------------
@operation("/audit", "GET", "Audit entries, newest first", "audit.read",
           query=[("actor", "string", "username"), ("action", "string", "action prefix"), *PAGE_QUERY])
def list_audit() -> Any:
    from ...audit.service import AuditFilter, entry_to_dict

    limit, offset = _page_args()
    rows = services().audit.search(AuditFilter(actor=request.args.get("actor") or None,
                                               action=request.args.get("action") or None),
                                   limit=limit, offset=offset)
    return jsonify({"items": [entry_to_dict(e) for e in rows]})


@operation("/audit/verify", "GET", "Verify the whole audit chain", "audit.read")
def verify_audit() -> Any:
    return jsonify(services().audit.verify().as_dict())


# Network -------------------------------------------------------------------------------------
def device_json(d: Any) -> dict[str, Any]:
    from ...network.service import device_summary

    return device_summary(d) | {
        "status": d.status, "cause": d.status_cause,
        "status_since": d.status_since.isoformat() if d.status_since else None,
        "last_polled_at": d.last_polled_at.isoformat() if d.last_polled_at else None,
        "rtt_ms": d.last_rtt_ms, "sys_uptime": d.last_sys_uptime, "sys_name": d.last_sys_name,
        "error": d.last_error}


@operation("/devices", "GET", "Devices in the caller's scope", "network.read",
           query=[("tier", "string", "site tier"), ("province", "string", "province code"),
                  ("status", "string", "up, down, unknown, unpolled"), ("q", "string", "name, address or site"),
                  *PAGE_QUERY])
def list_devices() -> Any:
    limit, offset = _page_args()
    a = request.args
    rows, total = services().devices.search(g.scope, tier=a.get("tier") or None, province=a.get("province") or None,
                                            status=a.get("status") or None, query=a.get("q") or None,
                                            limit=limit, offset=offset)
    return jsonify({"total": total, "items": [device_json(d) for d in rows]})


@operation("/devices/<hostname>", "GET", "One device (404 outside the caller's scope)", "network.read")
def get_device(hostname: str) -> Any:
    return jsonify(device_json(services().devices.get(hostname, g.scope)))


class DeviceFields(BaseModel):
    """Inventory host variables (the names of an Ansible inventory); secrets are write-only."""

    model_config = ConfigDict(extra="forbid")

    ansible_host: str | None = Field(None, max_length=64)
    site_code: str | None = Field(None, pattern=r"^\d{6}$")
    platform: str | None = Field(None, max_length=32)
    role: str | None = Field(None, max_length=16)
    uplink_interface: str | None = Field(None, max_length=64)
    enabled: bool | None = None
    snmp_version: Literal["2c", "3"] | None = None
    snmp_port: int | None = Field(None, ge=1, le=65535)
    snmp_community: str | None = Field(None, max_length=128)
    snmp_user: str | None = Field(None, max_length=64)
    snmp_auth_protocol: Literal["SHA", "SHA256"] | None = None
    snmp_auth_key: str | None = Field(None, max_length=128)
    snmp_priv_protocol: Literal["AES", "AES256"] | None = None
    snmp_priv_key: str | None = Field(None, max_length=128)
    ansible_user: str | None = Field(None, max_length=64)
    ansible_password: str | None = Field(None, max_length=128)
    ansible_ssh_private_key_file: str | None = Field(None, max_length=255)
    ansible_port: int | None = Field(None, ge=1, le=65535)


class DeviceCreate(DeviceFields):
    hostname: str = Field(min_length=1, max_length=128)


@operation("/devices", "POST", "Create a device (host variables as in an Ansible inventory)", "network.manage",
           body=DeviceCreate)
def create_device() -> Any:
    body = parse_body(DeviceCreate)
    fields = body.model_dump(exclude={"hostname"}, exclude_none=True)
    d = services().devices.save(g.actor, g.scope, body.hostname, fields, create=True)
    return jsonify(device_json(d)), 201


@operation("/devices/<hostname>", "PATCH", "Change a device; a secret left out keeps the stored one",
           "network.manage", body=DeviceFields)
def update_device(hostname: str) -> Any:
    body = parse_body(DeviceFields)
    d = services().devices.save(g.actor, g.scope, hostname, body.model_dump(exclude_none=True), create=False)
    return jsonify(device_json(d))


@operation("/devices/<hostname>", "DELETE", "Retire a device (its history stays)", "network.manage")
def retire_device(hostname: str) -> Any:
    svc = services()
    svc.devices.retire(g.actor, svc.devices.get(hostname, g.scope))
    return "", 204


@operation("/devices/<hostname>/outages", "GET", "A device's outages, newest first", "network.read")
def device_outages(hostname: str) -> Any:
    svc = services()
    rows = svc.devices.outages(svc.devices.get(hostname, g.scope), limit=200)
    return jsonify({"items": [{
        "id": o.id, "status": o.status, "cause": o.cause, "started_at": o.started_at.isoformat(),
        "ended_at": o.ended_at.isoformat() if o.ended_at else None, "flap_count": o.flap_count,
        "flapping": o.flap_count >= g.container.settings.flap_threshold,
        "periods": [{"from": p.started_at.isoformat(), "to": p.ended_at.isoformat() if p.ended_at else None}
                    for p in o.periods]} for o in rows]})


def _date_arg(name: str) -> Any:
    import datetime as dt

    value = request.args.get(name, "")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(f"{name}: expected YYYY-MM-DD", details=[{"field": name, "message": "YYYY-MM-DD"}]
                               ) from exc


@operation("/connectivity", "GET", "Connectivity rates per link and tier (days in Asia/Shanghai, 'to' included)",
           "network.read", query=[("from", "string", "YYYY-MM-DD"), ("to", "string", "YYYY-MM-DD"),
                                  ("tier", "string", "ministry_province, province_city or city_county"),
                                  ("site", "string", "only this site's subtree")])
def connectivity() -> Any:
    import datetime as dt

    from ...network.connectivity import ConnectivityService, day_start

    start, end = _date_arg("from"), _date_arg("to")
    result = ConnectivityService(g.db).compute(g.scope, day_start(start), day_start(end + dt.timedelta(days=1)),
                                               tier=request.args.get("tier") or None,
                                               site_code=request.args.get("site") or None)
    return jsonify(result.as_dict())


class MaintenanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(pattern=r"^\d{6}$")
    device: str | None = Field(None, max_length=128)
    start: str = Field(description="ISO 8601 with offset, e.g. 2026-12-01T22:00:00+08:00")
    end: str
    reason: str = Field(min_length=1, max_length=500)


@operation("/maintenance", "GET", "Maintenance windows of the last 90 days and the next year", "network.read")
def list_maintenance() -> Any:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    rows = services().devices.maintenance(g.scope, now - dt.timedelta(days=90), now + dt.timedelta(days=365))
    return jsonify({"items": [{"id": w.id, "site": w.site.code, "device_id": w.device_id,
                               "start": w.started_at.isoformat(), "end": w.ended_at.isoformat(),
                               "reason": w.reason, "created_by": w.created_by} for w in rows]})


@operation("/maintenance", "POST", "Plan a maintenance window (excluded from rates)", "network.manage",
           body=MaintenanceCreate)
def create_maintenance() -> Any:
    import datetime as dt

    body = parse_body(MaintenanceCreate)
    try:
        start, end = dt.datetime.fromisoformat(body.start), dt.datetime.fromisoformat(body.end)
    except ValueError as exc:
        raise ValidationFailed("start/end: ISO 8601 expected", details=[{"field": "start", "message": "ISO 8601"}]
                               ) from exc
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed("start/end need a UTC offset (e.g. +08:00)",
                               details=[{"field": "start", "message": "no offset"}])
    mw = services().devices.add_maintenance(g.actor, g.scope, site_code=body.site, hostname=body.device,
                                            start=start, end=end, reason=body.reason)
    return jsonify({"id": mw.id}), 201


# OpenAPI -------------------------------------------------------------------------------------
def _path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}}}}}},
    }
    import re

    for op in OPERATIONS:
        params = [{"name": m.group(2), "in": "path", "required": True,
                   "schema": {"type": "integer" if m.group(1) == "int:" else "string"}}
                  for m in re.finditer(r"<([a-z]+:)?([a-z_]+)>", op.rule)]
        params += [{"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
                   for n, t, d in op.query]
        spec: dict[str, Any] = {
            "summary": op.summary, "operationId": f"{op.method.lower()}_{_path(op.rule)}",
            "parameters": params, "x-permission": op.permission,
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": op.response}}},
                          "default": {"description": "error", "content": {"application/json": {
                              "schema": {"$ref": "#/components/schemas/Error"}}}}},
        }
        if op.permission != PUBLIC:
            spec["security"] = [{"bearer": []}]
        if op.body is not None:
            schemas[op.body.__name__] = op.body.model_json_schema()
            spec["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}}}
        paths.setdefault("/api/v1" + _path(op.rule), {})[op.method.lower()] = spec
    return {
        "openapi": "3.0.3",
        "info": {"title": "EcoCloud Ops API", "version": __version__,
                 "description": "Every route needs 'Authorization: Bearer <personal access token>'. "
                                "Errors share one shape (components/schemas/Error)."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@operation("/openapi.json", "GET", "This document", PUBLIC)
def openapi() -> Any:
    return jsonify(openapi_document())


__all__ = ["api_bp", "error_body", "openapi_document"]


# Assessment reports --------------------------------------------------------------------------
def _report_summary(r: Any) -> dict[str, Any]:
    return {"month": r.month, "state": r.state, "revision": r.revision, "demo": r.demo,
            "generated_at": r.generated_at.isoformat(), "generated_by": r.generated_by,
            "published_at": r.published_at.isoformat() if r.published_at else None,
            "published_by": r.published_by, "targets": r.targets, "archive": r.archive,
            "tiers": {t["tier"]: {"rate": t["rate"], "met": t["met"]} for t in r.data["tiers"]},
            "last_check": r.last_check}


@operation("/reports/connectivity", "GET", "Stored monthly assessment reports (provincial users: published only)",
           "reports.read")
def list_reports() -> Any:
    rows = [r for r in services().reports.all_reports() if g.scope.national or r.state == "published"]
    return jsonify({"items": [_report_summary(r) for r in rows]})


@operation("/reports/connectivity/<month>", "GET",
           "A month's report: the stored one, else (national roles) computed now as a preview",
           "reports.read", query=[("format", "string", "json (default), html, pdf, xlsx or csv (a zip)"),
                                  ("province", "string", "only this province's sections"),
                                  ("locale", "string", "zh_CN (default) or en")])
def get_report(month: str) -> Any:
    from flask import Response

    from ...reports.service import export

    fmt = request.args.get("format", "json")
    locale = request.args.get("locale", "zh_CN")
    province = request.args.get("province") or None
    svc = services()
    data = svc.reports.data_for(month, g.scope, province=province)
    if fmt == "json" and request.args.get("format") is None:
        return jsonify(data)
    stored = svc.reports.find(month)
    if (fmt == "pdf" and stored is not None and stored.state == "published" and locale == "zh_CN"
            and data.get("scope") is None):
        name, content = svc.reports.archived(stored, ".pdf")
        media = "application/pdf"
    else:
        content, media, name = export(data, fmt, locale, files_dir=g.container.settings.files_dir)
    return Response(content, mimetype=media.split(";")[0], headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


@operation("/reports/connectivity/<month>/generate", "POST",
           "Build or rebuild a month's draft; a published month is re-checked against the data", "reports.manage")
def generate_report(month: str) -> Any:
    outcome = services().reports.generate(g.actor, month)
    return jsonify(outcome), 201 if outcome["action"] == "created" else 200


@operation("/reports/connectivity/<month>/publish", "POST",
           "Publish a draft as a background job (PDF rendered, archived with checksums, immutable afterwards); "
           "202 with the job to follow", "reports.manage")
def publish_report(month: str) -> Any:
    job = services().reports.start_publication(g.actor, month)
    return jsonify({"job": job_json(job)}), 202


class TargetsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ministry_province: float | None = Field(None, gt=0, le=1)
    province_city: float | None = Field(None, gt=0, le=1)
    city_county: float | None = Field(None, gt=0, le=1)


@operation("/reports/targets", "GET", "Assessment targets per link tier", "reports.read")
def get_targets() -> Any:
    return jsonify(services().policies.assessment().targets())


@operation("/reports/targets", "PUT", "Change assessment targets (audited with old and new values)",
           "reports.manage", body=TargetsUpdate)
def put_targets() -> Any:
    body = parse_body(TargetsUpdate)
    policy = services().policies.update(g.actor, "assessment", body.model_dump(exclude_none=True))
    return jsonify(policy.model_dump())


# Service desk ----------------------------------------------------------------------------------
from ...servicedesk.service import ticket_dict  # noqa: E402


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field("incident", description="incident, service_request, problem or change")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20000)
    category: str = "other"
    impact: int = Field(3, ge=1, le=4)
    urgency: int = Field(3, ge=1, le=4)
    site: str | None = Field(None, pattern=r"^\d{6}$", description="default: the caller's site")
    requester: str | None = Field(None, description="file on behalf of this user (desk roles)")
    links: list[dict[str, str]] = Field(default_factory=list, description='[{"type": "device", "id": "hb-r1"}]')


@operation("/tickets", "GET", "Tickets the caller may see, newest first", "servicedesk.use",
           query=[("status", "string", "a status, or 'open'"), ("type", "string", "ticket type"),
                  ("q", "string", "number or title contains"), *PAGE_QUERY])
def list_tickets() -> Any:
    limit, offset = _page_args()
    a = request.args
    rows, total = services().tickets.search(g.user, g.scope, status=a.get("status") or None,
                                            type=a.get("type") or None, query=(a.get("q") or "").strip() or None,
                                            limit=limit, offset=offset)
    return jsonify({"total": total, "items": [ticket_dict(t) for t in rows]})


@operation("/tickets", "POST", "File a ticket (requester: the caller, at the caller's site unless given)",
           "servicedesk.use", body=TicketCreate)
def create_ticket() -> Any:
    body = parse_body(TicketCreate)
    svc = services()
    requester = g.user
    if body.requester and body.requester != g.user.username:
        if not svc.tickets.can_file_for_others(g.user):
            raise PermissionDenied("only the desk files tickets on behalf of someone else")
        requester = svc.auth.by_username(body.requester)
        if requester is None:
            raise ValidationFailed(f"requester: no user {body.requester!r}",
                                   details=[{"field": "requester", "message": "unknown user"}])
    ticket = svc.tickets.create(g.actor, g.scope, type=body.type, title=body.title, description=body.description,
                                category=body.category, impact=body.impact, urgency=body.urgency,
                                site_code=body.site or requester.site.code, requester=requester, source="api",
                                links=[(x.get("type", ""), x.get("id", "")) for x in body.links])
    return jsonify(ticket_dict(ticket)), 201


@operation("/tickets/<ref>", "GET", "A ticket with its history and links", "servicedesk.use")
def get_ticket(ref: str) -> Any:
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    worker = svc.tickets.can_work(g.user, t)
    return jsonify(ticket_dict(t, history=svc.tickets.history(t, include_internal=worker),
                               links=svc.tickets.links(t)))


class TicketTransition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str
    comment: str | None = Field(None, max_length=20000)
    version: int | None = Field(None, description="the version read; a stale one is refused (409)")


@operation("/tickets/<ref>/transition", "POST",
           "Move a ticket to another state (requesters: cancel, close or reopen their own)", "servicedesk.use",
           body=TicketTransition)
def transition_ticket(ref: str) -> Any:
    body = parse_body(TicketTransition)
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    svc.tickets.require_transition_right(g.user, t, body.state)
    svc.tickets.transition(g.actor, t, body.state, comment=body.comment, version=body.version)
    return jsonify(ticket_dict(t))


class TicketComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=20000)
    kind: str = Field("comment", pattern=r"^(comment|worklog)$", description="worklog: internal work log (workers)")
    internal: bool = False


@operation("/tickets/<ref>/comments", "POST", "Comment on a ticket (workers: internal notes and work log)",
           "servicedesk.use", body=TicketComment)
def comment_ticket(ref: str) -> Any:
    body = parse_body(TicketComment)
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    if (body.internal or body.kind == "worklog") and not svc.tickets.can_work(g.user, t):
        raise PermissionDenied("internal notes and work log are for the team working the ticket")
    ev = svc.tickets.comment(g.actor, t, body.body, internal=body.internal, kind=body.kind)
    return jsonify({"id": ev.id, "kind": ev.kind, "internal": ev.internal}), 201


class TicketAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: str | None = Field(None, max_length=64)
    assignee: str | None = Field(None, max_length=64)
    version: int | None = None


@operation("/tickets/<ref>/assign", "POST", "Assign a ticket to a team and/or an engineer", "servicedesk.work",
           body=TicketAssign)
def assign_ticket(ref: str) -> Any:
    body = parse_body(TicketAssign)
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    svc.tickets.require_worker(g.user, t)
    assignee = None
    if body.assignee:
        assignee = svc.auth.by_username(body.assignee)
        if assignee is None:
            raise ValidationFailed(f"assignee: no user {body.assignee!r}",
                                   details=[{"field": "assignee", "message": "unknown user"}])
    svc.tickets.assign(g.actor, t, team=body.team or (assignee.team if assignee else None), assignee=assignee,
                       version=body.version)
    return jsonify(ticket_dict(t))


class TicketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=20000)
    category: str | None = None
    impact: int | None = Field(None, ge=1, le=4)
    urgency: int | None = Field(None, ge=1, le=4)
    version: int | None = None


@operation("/tickets/<ref>", "PATCH", "Change a ticket's fields (priority and deadlines follow)",
           "servicedesk.work", body=TicketUpdate)
def update_ticket(ref: str) -> Any:
    body = parse_body(TicketUpdate)
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    svc.tickets.require_worker(g.user, t)
    changes = body.model_dump(exclude_none=True)
    version = changes.pop("version", None)
    svc.tickets.update_fields(g.actor, t, version=version, **changes)
    return jsonify(ticket_dict(t))


from . import automation, cloud, dr, servicedesk_extra, servicedesk_teams  # noqa: E402,F401
