"""Service-desk pages: the ticket list, the short filing form, a ticket with its history and actions."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ...errors import EcoCloudError, ValidationFailed
from ...servicedesk.models import Category, TicketStatus, TicketType
from ...servicedesk.states import TRANSITIONS
from ..labels import IMPACT_LABELS, URGENCY_LABELS
from ..security import requires, services

bp = Blueprint("servicedesk", __name__, url_prefix="/servicedesk")
PAGE = 50


@bp.route("/")
@requires("servicedesk.use")
def index() -> Any:
    a = request.args
    status = a.get("status") if a.get("status") in {s.value for s in TicketStatus} | {"open"} else None
    ttype = a.get("type") if a.get("type") in {t.value for t in TicketType} else None
    page = max(a.get("page", 1, type=int) or 1, 1)
    rows, total = services().tickets.search(g.user, g.scope, status=status, type=ttype,
                                            query=(a.get("q") or "").strip()[:64] or None, mine=a.get("mine") == "1",
                                            limit=PAGE, offset=(page - 1) * PAGE)
    return render_template("servicedesk/index.html", tickets=rows, total=total, page=page, pages=-(-total // PAGE),
                           args=a, statuses=list(TicketStatus), types=list(TicketType))


@bp.route("/new", methods=["GET", "POST"])
@requires("servicedesk.use")
def new() -> Any:
    svc = services()
    form = request.form
    if request.method == "POST":
        try:
            ticket = svc.tickets.create(
                g.actor, g.scope, type=form.get("type") or "incident", title=form.get("title") or "",
                description=form.get("description") or "", category=form.get("category") or "other",
                impact=_int(form.get("impact"), 3), urgency=_int(form.get("urgency"), 3),
                site_code=(form.get("site") or g.user.site.code).strip(), requester=g.user, source="web")
        except EcoCloudError as exc:
            g.db.rollback()
            flash(exc.message, "danger")
            return render_template("servicedesk/new.html", form=form, **_choices()), 422
        flash(_("Ticket %(n)s filed.", n=ticket.number), "success")
        return redirect(url_for("servicedesk.ticket", ref=ticket.number))
    return render_template("servicedesk/new.html", form={"site": g.user.site.code, "impact": "3", "urgency": "3"},
                           **_choices())


def _choices() -> dict[str, Any]:
    return {"types": list(TicketType), "categories": list(Category), "impacts": IMPACT_LABELS,
            "urgencies": URGENCY_LABELS}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value or default)
    except ValueError:
        return -1  # refused by the service with the field's name


@bp.route("/<ref>")
@requires("servicedesk.use")
def ticket(ref: str) -> Any:
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    worker = svc.tickets.can_work(g.user, t)
    targets = []
    for target in sorted(TRANSITIONS[TicketStatus(t.status)], key=lambda s: list(TicketStatus).index(s)):
        try:
            svc.tickets.require_transition_right(g.user, t, target)
        except EcoCloudError:
            continue
        targets.append(target.value)
    return render_template("servicedesk/ticket.html", t=t, worker=worker, targets=targets,
                           history=svc.tickets.history(t, include_internal=worker), links=svc.tickets.links(t),
                           impacts=IMPACT_LABELS, urgencies=URGENCY_LABELS)


@bp.route("/<ref>/comment", methods=["POST"])
@requires("servicedesk.use")
def comment(ref: str) -> Any:
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    kind = "worklog" if request.form.get("kind") == "worklog" and svc.tickets.can_work(g.user, t) else "comment"
    svc.tickets.comment(g.actor, t, request.form.get("body") or "", kind=kind)
    flash(_("Work log entry added.") if kind == "worklog" else _("Comment added."), "success")
    return redirect(url_for("servicedesk.ticket", ref=t.number))


@bp.route("/<ref>/transition", methods=["POST"])
@requires("servicedesk.use")
def transition(ref: str) -> Any:
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    target = request.form.get("state") or ""
    if target not in {s.value for s in TicketStatus}:
        raise ValidationFailed("choose the state to move to", details=[{"field": "state", "message": "missing"}])
    svc.tickets.require_transition_right(g.user, t, target)
    svc.tickets.transition(g.actor, t, target, comment=(request.form.get("comment") or "").strip() or None,
                           version=request.form.get("version", type=int))
    flash(_("Ticket %(n)s is now %(s)s.", n=t.number, s=_status_label(t.status)), "success")
    return redirect(url_for("servicedesk.ticket", ref=t.number))


@bp.route("/<ref>/assign", methods=["POST"])
@requires("servicedesk.work")
def assign(ref: str) -> Any:
    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    svc.tickets.require_worker(g.user, t)
    assignee = None
    name = (request.form.get("assignee") or "").strip()
    if name:
        assignee = svc.auth.by_username(name)
        if assignee is None:
            flash(_("No user %(u)s.", u=name), "danger")
            return redirect(url_for("servicedesk.ticket", ref=t.number))
    team = (request.form.get("team") or "").strip() or (assignee.team if assignee else None)
    svc.tickets.assign(g.actor, t, team=team, assignee=assignee, version=request.form.get("version", type=int))
    flash(_("Assignment saved."), "success")
    return redirect(url_for("servicedesk.ticket", ref=t.number))


def _status_label(status: str) -> str:
    from ..labels import TICKET_STATUS_LABELS

    return str(TICKET_STATUS_LABELS.get(status, status))
