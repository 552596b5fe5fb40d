"""DR drill pages: data centers, protected services, drill plans, drills with their live status, abort,
manual confirmations and findings, and the drill report (page and PDF).

Every change goes through :class:`~ecocloud_ops.dr.service.DRService`, which validates and audits it.
A refused change (invalid input, a drill already running, a step that is not waiting, another role's
step) is rolled back, audited as a failure like any refused request, and shown as a message next to the
form or on the page it came from: never an error page.
"""

from __future__ import annotations

from typing import Any

import yaml
from flask import Blueprint, Response, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import select

from ...auth.permissions import has_permission
from ...dr.models import ACTIVE_DRILL, CenterRole, DrillMode, DrillPlan, DrillRun, DrillStatus, HealthKind
from ...dr.plans import PLAYBOOK_PURPOSES, default_steps
from ...dr.report import (
    center_role_names,
    drill_status_names,
    format_seconds,
    marker_rows,
    mode_explanations,
    mode_names,
    phase_names,
    render_html,
    render_pdf,
    report_data,
    rollback_names,
    severity_names,
    step_kind_names,
    step_status_names,
    target_names,
)
from ...dr.service import SECRET_FIELDS, SEVERITIES, DRService
from ...errors import Conflict, EcoCloudError, NotFound, ValidationFailed
from .. import select_locale
from ..security import requires, services
from .forms import form_int as _int
from .forms import local_time as _local_time
from .forms import refused as _refused

bp = Blueprint("dr", __name__, url_prefix="/dr")
PAGE = 50
#: Bootstrap badge of each drill and step status.
STATUS_CLASSES = {"queued": "text-bg-secondary", "pending": "text-bg-light", "running": "text-bg-primary",
                  "waiting": "text-bg-warning", "rolling_back": "text-bg-warning", "succeeded": "text-bg-success",
                  "failed": "text-bg-danger", "error": "text-bg-danger", "aborted": "text-bg-dark",
                  "canceled": "text-bg-dark", "skipped": "text-bg-light"}
#: The secrets a service may go without (the health target is required).
OPTIONAL_SECRETS = tuple(n for n in SECRET_FIELDS if n != "health_target")
#: The report's own page: inline styles only, no script, no form, no frame.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")


def _dr() -> DRService:
    return services().dr


def status_meanings() -> dict[str, str]:
    """What each drill status means (one meaning each), shown with the drill list."""
    return {"queued": _("recorded; waiting for a worker to start it"),
            "running": _("a step is executing"),
            "waiting": _("a manual step waits for a confirmation by a user of the named role"),
            "rolling_back": _("after an abort or a failed step: the rollbacks run in reverse order"),
            "succeeded": _("every step succeeded (RTO and RPO are judged against their targets separately)"),
            "failed": _("a step failed; the steps already done were rolled back"),
            "aborted": _("stopped by a user; the steps already started were rolled back"),
            "error": _("the platform could not carry the drill on (worker lost, internal error): check the "
                       "service's state before the next drill")}


def purpose_labels() -> dict[str, str]:
    return {"precheck": _("Check replication"), "failover": _("Fail over"), "verify": _("Verify the DR center"),
            "failback": _("Fail back"), "copy_build": _("Build the copy"), "copy_promote": _("Promote the copy"),
            "copy_cleanup": _("Remove the copy")}


def secret_labels() -> tuple[dict[str, str], dict[str, str]]:
    """Labels and help of the secret fields."""
    labels = {"health_target": _("Health check target"), "copy_target": _("Health target of the test copy"),
              "marker_primary": _("RPO markers: primary (DSN)"), "marker_dr": _("RPO markers: DR center (DSN)"),
              "marker_copy": _("RPO markers: test copy (DSN)")}
    helps = {"health_target": _("URL (http), host:port (tcp) or PostgreSQL DSN (sql) of the service address; it "
                                "follows the service to the DR center."),
             "copy_target": _("Where the isolated copy of a test drill answers (same kind of check)."),
             "marker_primary": _("Where the drill writes timestamped markers during the switch."),
             "marker_dr": _("Where the markers are read after a failover."),
             "marker_copy": _("Where the markers are read on a test drill's copy.")}
    return labels, helps


@bp.context_processor
def _labels() -> dict[str, Any]:
    labels, helps = secret_labels()
    return {"dr_modes": mode_names(_), "dr_mode_help": mode_explanations(_), "dr_statuses": drill_status_names(_),
            "dr_status_meanings": status_meanings(), "dr_step_statuses": step_status_names(_),
            "dr_center_roles": center_role_names(_), "dr_kinds": step_kind_names(_), "dr_phases": phase_names(_),
            "dr_severities": severity_names(_), "dr_rollbacks": rollback_names(_), "dr_targets": target_names(_),
            "purpose_labels": purpose_labels(), "secret_labels": labels, "secret_help": helps,
            "status_class": STATUS_CLASSES, "fmt_seconds": lambda v: format_seconds(v, _),
            "local_time": _local_time}


def _plan_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = g.db.execute(select(DrillPlan.id, DrillPlan.name).where(DrillPlan.id.in_(ids))).all()
    return {pid: name for pid, name in rows}


def _drill_rows(drills: list[DrillRun]) -> dict[str, Any]:
    """What the drills table shows besides the drills: service and plan names."""
    dr = _dr()
    return {"service_names": {s.id: s.name for s in dr.services(g.scope)},
            "plan_names": _plan_names({d.plan_id for d in drills})}


# Overview ---------------------------------------------------------------------------------------
@bp.route("/")
@requires("dr.read")
def index() -> Any:
    dr = _dr()
    centers = dr.centers()
    protected = dr.services(g.scope)
    drills, _total = dr.drills(g.scope, limit=10)
    return render_template("dr/index.html", centers=centers, centers_by_id={c.id: c for c in centers},
                           services=protected, overdue=dict((s.id, days) for s, days in dr.overdue(g.scope)),
                           drills=drills, **_drill_rows(drills))


@bp.route("/centers/new", methods=["GET", "POST"])
@requires("dr.manage")
def new_center() -> Any:
    form = request.form
    if request.method == "POST":
        try:
            center = _dr().create_center(g.actor, code=form.get("code", ""), name=form.get("name", ""),
                                         role=form.get("role", ""), location=form.get("location", ""))
        except EcoCloudError as exc:
            _refused(exc, show=False)
            return render_template("dr/center_form.html", form=form, error=exc, roles=list(CenterRole)), 422
        flash(_("Data center %(code)s defined.", code=center.code), "success")
        return redirect(url_for("dr.index"))
    return render_template("dr/center_form.html", form={"role": "production"}, error=None, roles=list(CenterRole))


# Protected services -------------------------------------------------------------------------------
def _service_fields(creating: bool) -> dict[str, Any]:
    """The service's fields from the form. An empty secret input means "unchanged" (on an edit);
    the optional secrets are removed with their "clear" checkbox."""
    f = request.form
    fields: dict[str, Any] = {
        "name": f.get("name", ""), "tenant": f.get("tenant", ""), "site_code": (f.get("site_code") or "").strip(),
        "primary_center": f.get("primary_center", ""), "dr_center": f.get("dr_center", ""),
        "rto_seconds": _int(f.get("rto_seconds")), "rpo_seconds": _int(f.get("rpo_seconds")),
        "health_kind": f.get("health_kind", ""), "health_query": f.get("health_query", ""),
        "inventory": f.get("inventory", ""),
        "playbooks": {p: f[f"playbook_{p}"] for p in PLAYBOOK_PURPOSES if f.get(f"playbook_{p}")},
    }
    if (f.get("drill_interval_days") or "").strip() or not creating:
        fields["drill_interval_days"] = _int(f.get("drill_interval_days"))
    for name in SECRET_FIELDS:
        value = (f.get(name) or "").strip()
        if value:
            fields[name] = value
        elif creating and name == "health_target":
            fields[name] = ""  # required: refused by name
        elif not creating and name in OPTIONAL_SECRETS and f.get(f"clear_{name}"):
            fields[name] = None
    return fields


def _check_site(code: str) -> None:
    """The owning site must be one the user sees (a provincial coordinator cannot hand a service away)."""
    try:
        services().sites.get(code, g.scope)
    except NotFound as exc:
        raise ValidationFailed(f"site_code: no site {code} in your scope",
                               details=[{"field": "site_code", "message": f"no site {code} in your scope"}]) from exc


def _service_form(service: Any, form: Any, error: EcoCloudError | None, status: int = 200) -> Any:
    dr = _dr()
    secrets_set = {n: bool(getattr(service, SECRET_FIELDS[n])) for n in SECRET_FIELDS} if service else {}
    return render_template("dr/service_form.html", service=service, form=form, error=error,
                           centers=dr.centers(), purposes=PLAYBOOK_PURPOSES, catalog=dr.catalog.all(),
                           health_kinds=list(HealthKind), secret_names=list(SECRET_FIELDS),
                           optional_secrets=OPTIONAL_SECRETS, secrets_set=secrets_set), status


def _service_form_values(service: Any) -> dict[str, Any]:
    """An existing service as form values (secrets never)."""
    centers = {c.id: c.code for c in _dr().centers()}
    values = {"name": service.name, "tenant": service.tenant or "", "site_code": service.site_code,
              "primary_center": centers.get(service.primary_center_id, ""),
              "dr_center": centers.get(service.dr_center_id, ""), "rto_seconds": service.rto_seconds,
              "rpo_seconds": service.rpo_seconds, "drill_interval_days": service.drill_interval_days,
              "health_kind": service.health_kind, "health_query": service.health_query or "",
              "inventory": service.inventory or ""}
    values |= {f"playbook_{p}": n for p, n in (service.playbooks or {}).items()}
    return values


@bp.route("/services/new", methods=["GET", "POST"])
@requires("dr.manage")
def new_service() -> Any:
    if request.method == "POST":
        fields = _service_fields(creating=True)
        try:
            _check_site(fields["site_code"])
            s = _dr().save_service(g.actor, **fields)
        except EcoCloudError as exc:
            _refused(exc, show=False)
            return _service_form(None, request.form, exc, 422)
        flash(_("Protected service %(name)s defined.", name=s.name), "success")
        return redirect(url_for("dr.service", service_id=s.id))
    centers = _dr().centers()
    primary = next((c.code for c in centers if c.role == CenterRole.PRODUCTION), "")
    standby = next((c.code for c in centers if c.role != CenterRole.PRODUCTION), "")
    return _service_form(None, {"site_code": g.user.site.code, "rpo_seconds": 0, "drill_interval_days": 90,
                                "health_kind": "tcp", "primary_center": primary, "dr_center": standby}, None)


@bp.route("/services/<int:service_id>")
@requires("dr.read")
def service(service_id: int) -> Any:
    dr = _dr()
    s = dr.service(service_id, g.scope)
    overdue = dict((o.id, days) for o, days in dr.overdue(g.scope))
    drills, total = dr.drills(g.scope, service_id=s.id, limit=PAGE)
    centers = {c.id: c for c in dr.centers()}
    return render_template("dr/service.html", service=s, plans=dr.plans(s), drills=drills, total=total,
                           overdue=s.id in overdue, overdue_days=overdue.get(s.id), centers_by_id=centers,
                           secrets_set={n: bool(getattr(s, SECRET_FIELDS[n])) for n in SECRET_FIELDS},
                           **_drill_rows(drills))


@bp.route("/services/<int:service_id>/edit", methods=["GET", "POST"])
@requires("dr.manage")
def edit_service(service_id: int) -> Any:
    dr = _dr()
    s = dr.service(service_id, g.scope)
    if request.method == "POST":
        fields = _service_fields(creating=False)
        try:
            _check_site(fields["site_code"])
            dr.save_service(g.actor, s, **fields)
        except EcoCloudError as exc:
            _refused(exc, show=False)
            return _service_form(dr.service(service_id, g.scope), request.form, exc, 422)
        flash(_("Saved."), "success")
        return redirect(url_for("dr.service", service_id=s.id))
    return _service_form(s, _service_form_values(s), None)


# Plans ------------------------------------------------------------------------------------------
class _PlainDumper(yaml.SafeDumper):
    """Writes a rollback shared by several steps out in full at each (no ``&id001`` anchors to puzzle over)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _steps_yaml(steps: Any) -> str:
    return yaml.dump(steps, Dumper=_PlainDumper, allow_unicode=True, sort_keys=False, default_flow_style=False,
                     width=100)


def _plan_fields() -> dict[str, Any]:
    """Name, mode, schedule and the steps parsed from the YAML textarea (empty: the mode's default steps
    for a new plan, the current steps otherwise)."""
    f = request.form
    text = f.get("steps") or ""
    steps = None
    if text.strip():
        try:
            steps = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            message = f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}"
            raise ValidationFailed(f"steps: {message}", details=[{"field": "steps", "message": message}]) from exc
    return {"name": f.get("name", ""), "mode": f.get("mode", ""), "schedule": f.get("schedule", ""), "steps": steps}


def _plan_form(service: Any, plan: Any, form: Any, error: EcoCloudError | None, status: int = 200) -> Any:
    return render_template("dr/plan_form.html", service=service, plan=plan, form=form, error=error,
                           modes=list(DrillMode)), status


@bp.route("/services/<int:service_id>/plans/new", methods=["GET", "POST"])
@requires("dr.manage")
def new_plan(service_id: int) -> Any:
    dr = _dr()
    s = dr.service(service_id, g.scope)
    if request.method == "POST":
        try:
            p = dr.save_plan(g.actor, s, None, **_plan_fields())
        except EcoCloudError as exc:
            _refused(exc, show=False)
            return _plan_form(dr.service(service_id, g.scope), None, request.form, exc, 422)
        flash(_("Drill plan %(name)s saved.", name=p.name), "success")
        return redirect(url_for("dr.plan", plan_id=p.id))
    mode = request.args.get("mode", "")
    if mode not in {m.value for m in DrillMode}:
        mode = DrillMode.TEST.value
    form = {"mode": mode, "name": "", "schedule": "", "steps": _steps_yaml(default_steps(mode, s.playbooks or {}))}
    return _plan_form(s, None, form, None)


@bp.route("/plans/<int:plan_id>")
@requires("dr.read")
def plan(plan_id: int) -> Any:
    dr = _dr()
    p = dr.plan(plan_id, g.scope)
    s = dr.service(p.service_id, g.scope)
    drills, _total = dr.drills(g.scope, service_id=s.id, limit=200)
    drills = [d for d in drills if d.plan_id == p.id][:PAGE]
    running = dr.session.get(DrillRun, s.active_drill_id) if s.active_drill_id else None
    return render_template("dr/plan.html", plan=p, service=s, drills=drills, running=running,
                           **_drill_rows(drills))


@bp.route("/plans/<int:plan_id>/edit", methods=["GET", "POST"])
@requires("dr.manage")
def edit_plan(plan_id: int) -> Any:
    dr = _dr()
    p = dr.plan(plan_id, g.scope)
    s = dr.service(p.service_id, g.scope)
    if request.method == "POST":
        try:
            dr.save_plan(g.actor, s, p, **_plan_fields())
        except EcoCloudError as exc:
            _refused(exc, show=False)
            p = dr.plan(plan_id, g.scope)
            return _plan_form(dr.service(p.service_id, g.scope), p, request.form, exc, 422)
        flash(_("Drill plan %(name)s saved.", name=p.name), "success")
        return redirect(url_for("dr.plan", plan_id=p.id))
    form = {"mode": p.mode, "name": p.name, "schedule": p.schedule or "", "steps": _steps_yaml(p.steps)}
    return _plan_form(s, p, form, None)


@bp.route("/plans/<int:plan_id>/start", methods=["POST"])
@requires("dr.run")
def start(plan_id: int) -> Any:
    dr = _dr()
    p = dr.plan(plan_id, g.scope)
    try:
        drill = dr.start(g.actor, p)
    except Conflict as exc:
        _refused(exc, show=False)
        s = dr.service(dr.plan(plan_id, g.scope).service_id, g.scope)
        message = Markup(escape(exc.message))
        if s.active_drill_id:
            link = url_for("dr.drill", drill_id=s.active_drill_id)
            message += Markup(' <a class="alert-link" href="{}" id="running-drill-link">{}</a>').format(
                link, _("Open drill #%(n)s", n=s.active_drill_id))
        flash(message, "danger")
        return redirect(url_for("dr.plan", plan_id=plan_id))
    except EcoCloudError as exc:
        _refused(exc)
        return redirect(url_for("dr.plan", plan_id=plan_id))
    flash(_("Drill #%(n)s queued: the worker starts it within seconds.", n=drill.id), "success")
    return redirect(url_for("dr.drill", drill_id=drill.id))


# Drills -----------------------------------------------------------------------------------------
@bp.route("/drills")
@requires("dr.read")
def drills() -> Any:
    a = request.args
    status = a.get("status") if a.get("status") in {s.value for s in DrillStatus} else None
    service_id = a.get("service_id", type=int)
    page = max(a.get("page", 1, type=int) or 1, 1)
    rows, total = _dr().drills(g.scope, service_id=service_id, status=status, limit=PAGE, offset=(page - 1) * PAGE)
    return render_template("dr/drills.html", drills=rows, total=total, page=page, pages=max(-(-total // PAGE), 1),
                           status=status, service_id=service_id, statuses=list(DrillStatus),
                           services=_dr().services(g.scope), **_drill_rows(rows))


def _live_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps as the drill page shows them (labels and local times computed here, not in the script)."""
    statuses = step_status_names(_)
    can_runs = has_permission(g.user.role, "jobs.read")
    return [{"id": s["id"], "status": s["status"], "status_label": statuses.get(s["status"], s["status"]),
             "status_class": STATUS_CLASSES.get(s["status"], "text-bg-light"),
             "started": _local_time(s["started_at"], "%H:%M:%S"), "finished": _local_time(s["finished_at"], "%H:%M:%S"),
             "duration": format_seconds(s["duration_seconds"], _) if s["duration_seconds"] is not None else "—",
             "message": s["message"], "playbook_run_id": s["playbook_run_id"],
             "run_url": (url_for("automation.run", run_id=s["playbook_run_id"])
                         if s["playbook_run_id"] and can_runs else None)} for s in data["steps"]]


@bp.route("/drills/<int:drill_id>")
@requires("dr.read")
def drill(drill_id: int) -> Any:
    dr = _dr()
    d = dr.drill(drill_id, g.scope)
    data = report_data(dr, d)
    waiting = next((s for s in data["steps"] if s["status"] == "waiting"), None)
    can_confirm = bool(waiting and waiting["role"] == g.user.role)
    return render_template("dr/drill.html", drill=d, data=data, steps=data["steps"], live=_live_steps(data),
                           active=d.status in ACTIVE_DRILL, waiting=waiting, can_confirm=can_confirm,
                           severities=SEVERITIES, marker_rows=marker_rows(data["markers"], _))


@bp.route("/drills/<int:drill_id>/status")
@requires("dr.read")
def drill_status(drill_id: int) -> Any:
    """Polled every second by the drill page while the drill is active."""
    dr = _dr()
    d = dr.drill(drill_id, g.scope)
    data = report_data(dr, d)
    return jsonify({"id": d.id, "status": d.status, "status_label": drill_status_names(_).get(d.status, d.status),
                    "active": d.status in ACTIVE_DRILL, "abort_requested_by": d.abort_requested_by,
                    "rto": data["rto"] | {"text": format_seconds(d.rto_seconds, _)},
                    "rpo": data["rpo"] | {"text": format_seconds(d.rpo_seconds, _)},
                    "steps": _live_steps(data)})


@bp.route("/drills/<int:drill_id>/abort", methods=["POST"])
@requires("dr.run")
def abort(drill_id: int) -> Any:
    dr = _dr()
    d = dr.drill(drill_id, g.scope)
    try:
        d = dr.abort(g.actor, d)
    except EcoCloudError as exc:
        _refused(exc)
    else:
        if d.status == DrillStatus.ABORTED:
            flash(_("Drill #%(n)s aborted before it started.", n=d.id), "info")
        else:
            flash(_("Abort requested: the step running now is canceled, then the steps already started are rolled "
                    "back in reverse order."), "warning")
    return redirect(url_for("dr.drill", drill_id=drill_id))


@bp.route("/drills/<int:drill_id>/confirm", methods=["POST"])
@requires("dr.read")  # and the step's role (checked by the service): the named role confirms
def confirm(drill_id: int) -> Any:
    dr = _dr()
    d = dr.drill(drill_id, g.scope)
    ok = request.form.get("decision") != "reject"
    try:
        step = dr.confirm(g.actor, d, ok=ok, note=request.form.get("note") or "")
    except EcoCloudError as exc:
        _refused(exc)
    else:
        flash(_("Step confirmed: %(step)s", step=step.name) if ok
              else _("Step rejected: %(step)s; the drill rolls back.", step=step.name), "success" if ok else "warning")
    return redirect(url_for("dr.drill", drill_id=drill_id))


@bp.route("/drills/<int:drill_id>/findings", methods=["POST"])
@requires("dr.run")
def add_finding(drill_id: int) -> Any:
    dr = _dr()
    d = dr.drill(drill_id, g.scope)
    try:
        f = dr.add_finding(g.actor, d, request.form.get("severity") or "", request.form.get("text") or "")
    except EcoCloudError as exc:
        _refused(exc)
    else:
        flash(_("Finding recorded; change ticket %(n)s opened.", n=f.ticket_number), "success")
    return redirect(url_for("dr.drill", drill_id=drill_id) + "#findings")


@bp.route("/drills/<int:drill_id>/findings/<int:finding_id>/ticket", methods=["POST"])
@requires("dr.run")
def finding_ticket(drill_id: int, finding_id: int) -> Any:
    """Open the change ticket of a finding that has none (one recorded while the desk refused it)."""
    dr = _dr()
    d = dr.drill(drill_id, g.scope)
    finding = next((f for f in dr.findings(d) if f.id == finding_id), None)
    if finding is None:
        raise NotFound(f"drill #{d.id} has no finding {finding_id}")
    try:
        number = dr.open_ticket(g.actor, finding)
    except EcoCloudError as exc:
        _refused(exc)
    else:
        flash(_("Change ticket %(n)s opened.", n=number), "success")
    return redirect(url_for("dr.drill", drill_id=drill_id) + "#findings")


# Report -----------------------------------------------------------------------------------------
def _report_locale() -> str:
    lang = request.args.get("lang")
    return lang if lang in ("zh_CN", "en") else select_locale()


@bp.route("/drills/<int:drill_id>/report")
@requires("dr.read")
def report(drill_id: int) -> Any:
    """The report as the printable document it is in the PDF (its own styles, no script)."""
    dr = _dr()
    d = dr.drill(drill_id, g.scope)
    locale = _report_locale()
    links = {_("Back to drill #%(n)s", n=d.id): url_for("dr.drill", drill_id=d.id),
             _("Download PDF"): url_for("dr.report_pdf", drill_id=d.id, lang=locale)}
    resp = Response(render_html(report_data(dr, d), locale, links=links), mimetype="text/html")
    resp.headers["Content-Security-Policy"] = REPORT_CSP
    return resp


@bp.route("/drills/<int:drill_id>/report.pdf")
@requires("dr.read")
def report_pdf(drill_id: int) -> Any:
    dr = _dr()
    d = dr.drill(drill_id, g.scope)
    pdf = render_pdf(report_data(dr, d), _report_locale())
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="dr-drill-{d.id}.pdf"'})
