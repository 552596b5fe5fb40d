"""Service-desk pages: the ticket list, the short filing form, a ticket with its history and actions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ...auth.permissions import PUBLIC, has_permission
from ...errors import EcoCloudError, NotFound, ValidationFailed
from ...network.connectivity import SHANGHAI
from ...servicedesk.models import Category, TicketStatus, TicketType
from ...servicedesk.sla_store import missing_next_year, parse_days, set_year
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
    from ...servicedesk.ratings import RatingService

    rating = RatingService(g.db, svc.audit).get(t)
    can_rate = t.requester_id == g.user.id and t.status in ("resolved", "closed") and (
        rating is None or (t.resolved_at is not None and rating.rated_at < t.resolved_at))
    return render_template("servicedesk/ticket.html", t=t, worker=worker, targets=targets, rating=rating,
                           can_rate=can_rate, attachments=_attachments().list(t),
                           history=svc.tickets.history(t, include_internal=worker), links=svc.tickets.links(t),
                           impacts=IMPACT_LABELS, urgencies=URGENCY_LABELS, **_cloud_request_of(t))


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


@bp.route("/<ref>/rate", methods=["POST"])
@requires("servicedesk.use")
def rate(ref: str) -> Any:
    from ...servicedesk.ratings import RatingService

    svc = services()
    t = svc.tickets.get(ref, g.user, g.scope)
    RatingService(g.db, svc.audit).rate(g.actor, t, score=_int(request.form.get("score"), -1),
                                        comment=request.form.get("comment") or "", rater=g.user)
    flash(_("Thank you for rating the resolution."), "success")
    return redirect(url_for("servicedesk.ticket", ref=t.number))


@bp.route("/rate/<token>", methods=["GET", "POST"])
@requires(PUBLIC)
def rate_by_link(token: str) -> Any:
    """The link of the "resolved" e-mail: the requester rates without logging in (signed, 30 days)."""
    from sqlalchemy import select

    from ...audit.service import Actor
    from ...auth.models import User
    from ...servicedesk.models import Ticket
    from ...servicedesk.ratings import RatingService, verify_rating_token

    claim = verify_rating_token(token, g.container.secret_key)
    t = g.db.execute(select(Ticket).where(Ticket.id == claim.ticket_id)).scalar_one_or_none()
    if t is None:
        raise NotFound("no such ticket")
    svc = services()
    existing = RatingService(g.db, svc.audit).get(t)
    if request.method == "POST":
        requester = g.db.get(User, claim.requester_id) if claim.requester_id else None
        actor = Actor(requester.username if requester else "requester", role=requester.role if requester else "",
                      channel="console", ip=request.remote_addr or "", user_id=claim.requester_id)
        RatingService(g.db, svc.audit).rate(actor, t, score=_int(request.form.get("score"), -1),
                                            comment=request.form.get("comment") or "", claim=claim)
        return render_template("servicedesk/rate.html", t=t, done=True, rating=None)
    return render_template("servicedesk/rate.html", t=t, done=False, rating=existing)


# Attachments ----------------------------------------------------------------------------------
def _attachments() -> Any:
    from ...servicedesk.attachments import AttachmentService

    return AttachmentService(g.db, services().audit, g.container.settings.files_dir)


@bp.route("/<ref>/attachments", methods=["POST"])
@requires("servicedesk.use")
def upload(ref: str) -> Any:
    from ...servicedesk.attachments import MAX_ATTACHMENT_BYTES

    t = services().tickets.get(ref, g.user, g.scope)
    f = request.files.get("file")
    if f is None or not f.filename:
        raise ValidationFailed("choose a file to attach", details=[{"field": "file", "message": "missing"}])
    _attachments().add(g.actor, t, f.filename, f.stream.read(MAX_ATTACHMENT_BYTES + 1))
    flash(_("File attached."), "success")
    return redirect(url_for("servicedesk.ticket", ref=t.number))


@bp.route("/<ref>/attachments/<int:attachment_id>")
@requires("servicedesk.use")
def attachment(ref: str, attachment_id: int) -> Any:
    import io

    from flask import send_file

    t = services().tickets.get(ref, g.user, g.scope)
    store = _attachments()
    att = store.get(t, attachment_id)
    resp = send_file(io.BytesIO(store.read(att)), mimetype=att.content_type, as_attachment=True,
                     download_name=att.filename, max_age=0, conditional=False)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


# Knowledge base ---------------------------------------------------------------------------------
@bp.route("/kb")
@requires("servicedesk.use")
def kb() -> Any:
    from ...servicedesk.kb import KnowledgeBase

    q = (request.args.get("q") or "").strip()[:100]
    rows, total = KnowledgeBase(g.db, services().audit).search(g.user, g.scope, query=q or None, limit=50)
    return render_template("servicedesk/kb.html", articles=rows, total=total, q=q)


@bp.route("/kb/<int:article_id>")
@requires("servicedesk.use")
def article(article_id: int) -> Any:
    from ...servicedesk.kb import KnowledgeBase

    a = KnowledgeBase(g.db, services().audit).get(article_id, g.user, g.scope)
    return render_template("servicedesk/article.html", a=a)


@bp.route("/kb/new", methods=["GET", "POST"])
@requires("servicedesk.work")
def new_article() -> Any:
    from ...servicedesk.kb import KnowledgeBase

    if request.method == "POST":
        f = request.form
        a = KnowledgeBase(g.db, services().audit).create(
            g.actor, g.user, g.scope, title=f.get("title") or "", body=f.get("body") or "",
            category=f.get("category") or "other", tags=[x.strip() for x in (f.get("tags") or "").split(",")
                                                         if x.strip()], published=f.get("published") == "1")
        flash(_("Article saved."), "success")
        return redirect(url_for("servicedesk.article", article_id=a.id))
    return render_template("servicedesk/article_new.html", categories=list(Category))


# SLA report -------------------------------------------------------------------------------------
def _sla_data(month: str) -> dict[str, Any]:
    from ...reports.builder import parse_month
    from ...servicedesk.sla_report import sla_report

    year, mon = parse_month(month)
    data = sla_report(g.db, year, mon, policies=services().policies)
    if g.user.role == "vendor_engineer":  # a vendor sees its own team's line
        data["rows"] = [r for r in data["rows"] if r["team"] == g.user.team]
    return data


@bp.route("/sla-report")
@requires("servicedesk.work")
def sla_report_page() -> Any:
    month = request.args.get("month") or dt.datetime.now(SHANGHAI).strftime("%Y-%m")
    return render_template("servicedesk/sla_report.html", data=_sla_data(month), month=month)


@bp.route("/sla-report/<month>.<fmt>")
@requires("servicedesk.work")
def sla_report_file(month: str, fmt: str) -> Any:
    from flask import Response

    from ...servicedesk.sla_report import render_sla_pdf, render_sla_xlsx
    from .. import select_locale

    data = _sla_data(month)
    locale = request.args.get("locale") or select_locale()
    if fmt == "xlsx":
        content = render_sla_xlsx(data, locale)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    elif fmt == "pdf":
        content, media = render_sla_pdf(data, locale), "application/pdf"
    elif fmt == "json":
        import json

        content, media = json.dumps(data, ensure_ascii=False, indent=1).encode(), "application/json"
    else:
        raise NotFound(f"no {fmt} format")
    return Response(content, mimetype=media,
                    headers={"Content-Disposition": f'attachment; filename="sla-{month}.{fmt}"'})


# Teams -----------------------------------------------------------------------------------------
@bp.route("/teams")
@requires("servicedesk.work")
def teams() -> Any:
    from ...servicedesk.teams import TeamService

    ts = TeamService(g.db, services().audit)
    now = dt.datetime.now(dt.UTC)
    rows = [(t, ts.on_duty(t.name, now), ts.contracts(t.name)) for t in ts.teams()]
    return render_template("servicedesk/teams.html", teams=rows, rules=ts.rules())


@bp.app_context_processor
def _calendar_banner() -> dict[str, Any]:
    """From 1 November, admins are told when next year's working calendar is still missing."""
    user = getattr(g, "user", None)
    if user is None or getattr(g, "db", None) is None or not has_permission(user.role, "servicedesk.manage"):
        return {"calendar_missing": None}
    try:
        return {"calendar_missing": missing_next_year(g.db, dt.datetime.now(SHANGHAI).date())}
    except Exception:
        return {"calendar_missing": None}


@bp.route("/admin")
@requires("servicedesk.manage")
def admin() -> Any:
    from sqlalchemy import func, select

    from ...servicedesk.models import CalendarDay, CalendarYear

    years = []
    for y in g.db.execute(select(CalendarYear).order_by(CalendarYear.year.desc())).scalars():
        n = g.db.execute(select(func.count()).select_from(CalendarDay).where(
            CalendarDay.day >= dt.date(y.year, 1, 1), CalendarDay.day <= dt.date(y.year, 12, 31))).scalar()
        years.append((y, n))
    return render_template("servicedesk/admin.html", policy=services().policies.servicedesk(), years=years,
                           categories=list(Category), next_year=dt.datetime.now(SHANGHAI).year + 1)


@bp.route("/admin/calendar", methods=["POST"])
@requires("servicedesk.manage")
def calendar_year() -> Any:
    form = request.form
    year = form.get("year", type=int)
    if year is None:
        raise ValidationFailed("year: a year such as 2027", details=[{"field": "year", "message": "missing"}])
    result = set_year(g.db, services().audit, g.actor, year, parse_days(form.get("holidays") or ""),
                      parse_days(form.get("workdays") or ""))
    flash(_("Calendar %(y)s saved: %(h)s holidays, %(w)s make-up working days.", y=year, h=result["holidays"],
            w=result["workdays"]), "success")
    return redirect(url_for("servicedesk.admin"))


@bp.route("/admin/sla", methods=["POST"])
@requires("servicedesk.manage")
def sla_policy() -> Any:
    form = request.form
    sla = {}
    for p in ("P1", "P2", "P3", "P4"):
        sla[p] = {"response_minutes": _int(form.get(f"{p}_response"), -1),
                  "resolve_minutes": _int(form.get(f"{p}_resolve"), -1), "mode": form.get(f"{p}_mode") or ""}
    try:
        warn = float(form.get("warn_percent") or "") / 100
    except ValueError:
        warn = -1.0
    services().policies.update(g.actor, "servicedesk", {
        "sla": sla, "categories_24x7": form.getlist("categories_24x7"), "warn_fraction": warn,
        "reopen_days": _int(form.get("reopen_days"), -1)})
    flash(_("SLA policy saved."), "success")
    return redirect(url_for("servicedesk.admin"))


def _status_label(status: str) -> str:
    from ..labels import TICKET_STATUS_LABELS

    return str(TICKET_STATUS_LABELS.get(status, status))


# Cloud requests ---------------------------------------------------------------------------------
def _cloud_request_of(t: Any) -> dict[str, Any]:
    """The cloud part of a ticket filed as a cloud request (kind, tenant, pool, parameters, status), with the
    labels of the cloud pages."""
    from ...cloud.models import Tenant
    from .cloud import cloud_labels

    req = services().cloud.service_request_of_ticket(t.id)
    if req is None:
        return {"cloud_request": None}
    return {"cloud_request": req, "cloud_tenant": g.db.get(Tenant, req.tenant_id), **cloud_labels()}


def _cloud_request_form(form: Any, error: EcoCloudError | None, status: int = 200) -> Any:
    from ...cloud.service import DEFAULT_QUOTAS
    from .cloud import _active_projects, _pool_choices, cloud_labels, playbook_choices

    cloud = services().cloud
    tenants = cloud.tenants(g.scope)
    return render_template("servicedesk/cloud_request.html", form=form, error=error, tenants=tenants,
                           active=_active_projects(tenants), choices=_pool_choices(), playbooks=playbook_choices(),
                           quota_keys=tuple(DEFAULT_QUOTAS), configured=cloud.connector.configured,
                           **cloud_labels()), status


@bp.route("/cloud-request", methods=["GET", "POST"])
@requires("servicedesk.use")
def cloud_request() -> Any:
    """A "new VM" or "quota increase" request for a tenant in the user's scope: a ticket that a cloud ops
    engineer approves (the request then runs) or rejects."""
    svc = services()
    form = request.form
    if request.method == "POST":
        kind = form.get("kind") or ""
        try:
            tenant_ref = (form.get("tenant_id") or "").strip()
            if not tenant_ref.isdigit():
                raise ValidationFailed("tenant: choose the tenant", details=[{"field": "tenant",
                                                                             "message": "required"}])
            tenant = svc.cloud.tenant(int(tenant_ref), g.scope)
            if kind == "new_vm":
                count = (form.get("count") or "1").strip()
                if not count.isdigit() or not 1 <= int(count) <= 50:
                    raise ValidationFailed("count: a whole number from 1 to 50",
                                           details=[{"field": "count", "message": "a whole number from 1 to 50"}])
                params: dict[str, Any] = {"name": (form.get("name") or "").strip(), "count": int(count),
                                          "flavor": form.get("flavor") or "", "image": form.get("image") or "",
                                          "playbook": form.get("playbook") or None,
                                          "key_name": (form.get("key_name") or "").strip() or None}
            else:
                from ...cloud.service import DEFAULT_QUOTAS

                params = {k: form.get(f"quota_{k}", "").strip() for k in DEFAULT_QUOTAS
                          if form.get(f"quota_{k}", "").strip()}
            req = svc.cloud.file_request(g.actor, g.scope, kind=kind, tenant=tenant,
                                         pool=(form.get("pool") or "").strip(), params=params, requester=g.user,
                                         description=(form.get("description") or "").strip())
        except EcoCloudError as exc:
            from ..errors import _audit_failure

            _audit_failure(f"{exc.status} {exc.code}: {exc.message}")
            return _cloud_request_form(form, exc, 422)
        from ...servicedesk.models import Ticket

        ticket = g.db.get(Ticket, req.ticket_id)
        assert ticket is not None
        flash(_("Cloud request filed as ticket %(n)s: a cloud ops engineer approves it, then it is carried out.",
                n=ticket.number), "success")
        return redirect(url_for("servicedesk.ticket", ref=ticket.number))
    a = request.args
    return _cloud_request_form({"kind": a.get("kind", "new_vm"), "tenant_id": a.get("tenant_id", ""), "count": "1"},
                               None)
