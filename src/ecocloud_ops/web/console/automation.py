"""Playbook runs: history with filters, a start form built from the playbook's declared variables, and a
live view of a run's events and output."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ...automation.models import RunStatus
from ...automation.service import PlaybookService, event_json, run_json
from ..security import requires, services

bp = Blueprint("automation", __name__, url_prefix="/automation")


def _svc() -> PlaybookService:
    return PlaybookService.of(services())


@bp.route("/")
@requires("jobs.read")
def runs() -> Any:
    a = request.args
    status = a.get("status") if a.get("status") in {s.value for s in RunStatus} else None
    playbook = (a.get("playbook") or "").strip() or None
    rows, total = _svc().search(g.scope, status=status, playbook=playbook, limit=100)
    return render_template("automation/runs.html", runs=rows, total=total, args=a, statuses=list(RunStatus),
                           playbooks=_svc().playbooks())


@bp.route("/run", methods=["GET", "POST"])
@requires("jobs.manage")
def start() -> Any:
    svc = _svc()
    name = request.values.get("playbook") or ""
    spec = next((p for p in svc.playbooks() if p.name == name), None)
    if request.method == "POST" and spec is not None:
        values = {k: request.form.get(f"var_{k}", "") for k in spec.variables if request.form.get(f"var_{k}", "") != ""}
        run = svc.start(g.actor, spec.name, values, limit=(request.form.get("limit") or "").strip() or None,
                        from_text=True)
        flash(_("Playbook run %(n)s queued.", n=run.id), "success")
        return redirect(url_for("automation.run", run_id=run.id))
    return render_template("automation/start.html", playbooks=svc.playbooks(), spec=spec)


@bp.route("/runs/<int:run_id>")
@requires("jobs.read")
def run(run_id: int) -> Any:
    svc = _svc()
    r = svc.get(run_id, g.scope)
    return render_template("automation/run.html", run=r, events=svc.events(r, limit=2000))


@bp.route("/runs/<int:run_id>/events")
@requires("jobs.read")
def run_events(run_id: int) -> Any:
    """Events after ``after`` (the live view polls this)."""
    svc = _svc()
    r = svc.get(run_id, g.scope)
    after = request.args.get("after", 0, type=int) or 0
    return jsonify({"run": run_json(r, svc.job_of(r)), "events": [event_json(e) for e in svc.events(r, after=after)]})


@bp.route("/runs/<int:run_id>/cancel", methods=["POST"])
@requires("jobs.manage")
def cancel(run_id: int) -> Any:
    svc = _svc()
    svc.cancel(g.actor, svc.get(run_id, g.scope))
    flash(_("Cancel requested."), "info")
    return redirect(url_for("automation.run", run_id=run_id))
