"""Home, the site tree, background jobs, the four domains' sections, and the health check."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, jsonify, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import text

from ...auth.permissions import PUBLIC, has_permission
from ...errors import PermissionDenied
from ...jobs.registry import JOB_KINDS
from ...sites.models import Tier
from ..security import requires, services

bp = Blueprint("main", __name__)

#: What each domain section will hold, until its issue builds it.
DOMAINS: dict[str, dict[str, Any]] = {
    "cloud": {"endpoint": "cloud.index", "permission": "cloud.read", "title": _l("Cloud tenants"),
              "text": _l("Resource pools of the private cloud, tenant onboarding, quotas, VM provisioning "
                         "jobs, inventory sync and capacity per pool.")},
    "network": {"endpoint": "network.overview", "permission": "network.read", "title": _l("Network connectivity"),
                "text": _l("Devices of every site, live reachability by ICMP, SNMP and SSH, outages, "
                           "connectivity rates per link and tier, and the live tier map.")},
    "reports": {"endpoint": "reports.index", "permission": "reports.read", "title": _l("Assessment reports"),
                "text": _l("The monthly connectivity assessment: per-tier rates against targets, province "
                           "ranking, outages and trends, as a page, PDF, XLSX and CSV.")},
    "servicedesk": {"endpoint": "servicedesk.index", "permission": "servicedesk.use", "title": _l("Service desk"),
                    "text": _l("Tickets from provincial and local staff, SLAs on the Chinese business calendar, "
                               "internal and vendor teams, incidents opened automatically from outages.")},
    "dr": {"endpoint": "dr.index", "permission": "dr.read", "title": _l("DR drills"),
           "text": _l("Data centers, protected services and drill plans run step by step as Ansible playbooks, "
                      "with measured RTO and RPO and a drill report.")},
}


@bp.route("/")
@requires("console.view")
def home() -> Any:
    svc = services()
    counts = svc.sites.counts_by_tier(g.scope)
    jobs = svc.jobs.search(g.scope, limit=5) if has_permission(g.user.role, "jobs.read") else []
    root = None
    if not g.scope.national:
        root = svc.sites.by_code(g.user.site.code)
    # Protected services without a successful drill within their interval (or never drilled).
    overdue = svc.dr.overdue(g.scope) if has_permission(g.user.role, "dr.read") else []
    return render_template("home.html", counts=counts, jobs=jobs, scope_root=root,
                           worker_alive=_worker_alive(), domains=DOMAINS, dr_overdue=overdue)


def _worker_alive() -> bool:
    svc = services()
    return bool(svc.jobs.live_workers(g.container.settings.worker_heartbeat_seconds))


@bp.app_context_processor
def _worker_banner() -> dict[str, Any]:
    # The banner needs a database round trip: only for logged-in pages.
    if getattr(g, "user", None) is None or getattr(g, "db", None) is None:
        return {"worker_down": False}
    try:
        return {"worker_down": not _worker_alive()}
    except Exception:
        return {"worker_down": False}


@bp.route("/sites")
@requires("sites.read")
def sites() -> Any:
    tier = request.args.get("tier") or None
    if tier is not None and tier not in {t.value for t in Tier}:
        tier = None
    q = (request.args.get("q") or "").strip()[:50] or None
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    per_page = 50
    rows, total = services().sites.search(g.scope, tier=tier, query=q, parent_code=request.args.get("parent") or None,
                                        limit=per_page, offset=(page - 1) * per_page)
    return render_template("sites.html", sites=rows, total=total, tier=tier, q=q or "", page=page,
                           pages=max((total + per_page - 1) // per_page, 1), tiers=list(Tier))


@bp.route("/sites/<code>")
@requires("sites.read")
def site(code: str) -> Any:
    svc = services()
    s = svc.sites.get(code, g.scope)
    return render_template("site.html", site=s, ancestors=[a for a in svc.sites.ancestors(s)
                                                           if g.scope.contains_path(a.path)],
                           children=svc.sites.children(s), events=svc.sites.events(s))


@bp.route("/sites/seed", methods=["POST"])
@requires("sites.manage")
def seed_sites() -> Any:
    job = services().jobs.enqueue(g.actor, "sites.seed_national")
    return redirect(url_for("main.job", job_id=job.id))


@bp.route("/jobs")
@requires("jobs.read")
def jobs() -> Any:
    state = request.args.get("state") or None
    kind = request.args.get("kind") or None
    return render_template("jobs.html", jobs=services().jobs.search(g.scope, kind=kind, state=state, limit=200),
                           kinds=JOB_KINDS, state=state, kind=kind)


@bp.route("/jobs/<int:job_id>")
@requires("jobs.read")
def job(job_id: int) -> Any:
    svc = services()
    j = svc.jobs.get(job_id, g.scope)
    return render_template("job.html", job=j, lines=svc.jobs.log_lines(j))


@bp.route("/jobs/<int:job_id>/status")
@requires("jobs.read")
def job_status(job_id: int) -> Any:
    """Polled by the job page for live progress."""
    svc = services()
    j = svc.jobs.get(job_id, g.scope)
    after = request.args.get("after", 0, type=int) or 0
    return jsonify({
        "id": j.id, "state": j.state, "progress": j.progress, "message": j.message, "error": j.error,
        "lines": [{"id": ln.id, "at": ln.at.isoformat(), "level": ln.level, "line": ln.line}
                  for ln in svc.jobs.log_lines(j, after)],
    })


@bp.route("/jobs/<int:job_id>/cancel", methods=["POST"])
@requires("jobs.manage")
def cancel_job(job_id: int) -> Any:
    svc = services()
    svc.jobs.cancel(g.actor, svc.jobs.get(job_id, g.scope))
    return redirect(url_for("main.job", job_id=job_id))


@bp.route("/jobs/start", methods=["POST"])
@requires("jobs.manage")
def start_job() -> Any:
    kind = request.form.get("kind", "")
    jk = JOB_KINDS.get(kind)
    if jk is None:
        abort(400, description="unknown job kind")
    if not has_permission(g.user.role, jk.permission):
        raise PermissionDenied(f"starting {kind} needs {jk.permission}")
    job = services().jobs.enqueue(g.actor, kind)
    return redirect(url_for("main.job", job_id=job.id))


def _domain_view(name: str) -> Any:
    d = DOMAINS[name]

    @requires(d["permission"])
    def view() -> Any:
        return render_template("domain.html", name=name, domain=d)

    view.__name__ = f"domain_{name}"
    return view


for _name in DOMAINS:
    if _name not in ("cloud", "network", "reports", "servicedesk", "dr"):  # built: their own blueprints
        bp.add_url_rule(f"/{_name}", endpoint=_name, view_func=_domain_view(_name))


@bp.route("/healthz")
@requires(PUBLIC)
def healthz() -> Any:
    """Database and worker liveness for monitors: 200 when the database answers, 503 otherwise."""
    db_ok, detail = True, "ok"
    try:
        g.db.execute(text("SELECT 1"))
    except Exception as exc:
        db_ok, detail = False, f"{type(exc).__name__}"
        g.db.rollback()
    worker: dict[str, Any] = {"alive": False, "last_heartbeat": None}
    if db_ok:
        try:
            svc = services()
            hb = svc.jobs.last_heartbeat()
            worker = {"alive": bool(svc.jobs.live_workers(g.container.settings.worker_heartbeat_seconds)),
                      "last_heartbeat": hb.beat_at.isoformat() if hb else None}
        except Exception as exc:
            db_ok, detail = False, f"{type(exc).__name__}"
    status = "ok" if db_ok and worker["alive"] else ("degraded" if db_ok else "down")
    from ... import __version__

    return jsonify({"status": status, "database": {"ok": db_ok, "detail": detail}, "worker": worker,
                    "version": __version__}), (200 if db_ok else 503)
