"""The monthly connectivity assessment: list, month page with charts, downloads, build, publish, targets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ...auth.permissions import has_permission
from ...errors import EcoCloudError
from ...network.connectivity import SHANGHAI, TIERS
from ...reports.builder import parse_month, previous_month
from ...reports.service import FORMATS, export
from .. import select_locale
from ..security import requires, services

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.route("/")
@requires("reports.read")
def index() -> Any:
    svc = services()
    reports = [r for r in svc.reports.all_reports() if g.scope.national or r.state == "published"]
    return render_template("reports/index.html", reports=reports, targets=svc.policies.assessment(),
                           default_month=previous_month(), tiers=TIERS)


@bp.route("/open")
@requires("reports.read")
def open_month() -> Any:
    month = (request.args.get("month") or "").strip()
    try:
        parse_month(month)
    except EcoCloudError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("reports.index"))
    return redirect(url_for("reports.month", month=month))


@bp.route("/connectivity/<month>")
@requires("reports.read")
def month(month: str) -> Any:
    svc = services()
    province = request.args.get("province") or None
    data = svc.reports.data_for(month, g.scope, province=province if province and not g.scope.national else None)
    stored = svc.reports.find(month)
    # National readers pick one province's drill-down at a time; others see their own subtree's.
    provinces = data["provinces"]
    if g.scope.national:
        chosen = province if province in provinces else (data["ranking"][0]["code"] if data["ranking"] else None)
        drill = {chosen: provinces[chosen]} if chosen in provinces else {}
    else:
        chosen, drill = None, provinces
    charts = {
        "tiers": {"type": "tiers", "labels": [str(_tier_label(t["tier"])) for t in data["tiers"]],
                  "rates": [_pct(t["rate"]) for t in data["tiers"]],
                  "targets": [_pct(t["target"]) for t in data["tiers"]],
                  "rateLabel": _("Rate"), "targetLabel": _("Target")},
        "ranking": {"type": "ranking", "labels": [r["name"] for r in data["ranking"]],
                    "own": [_pct(r["own_rate"]) for r in data["ranking"]],
                    "subtree": [_pct(r["subtree_rate"]) for r in data["ranking"]],
                    "target": _pct(data["targets"]["ministry_province"]),
                    "ownLabel": _("Own link"), "subtreeLabel": _("Whole province"), "targetLabel": _("Target")},
        "daily": {"type": "trend", "labels": [d["day"][5:] for d in data["daily"]],
                  "series": [{"label": str(_tier_label(t)), "data": [_pct(d[t]) for d in data["daily"]]}
                             for t in TIERS]},
        "monthly": {"type": "trend", "labels": [m["month"] for m in data["monthly"]],
                    "series": [{"label": str(_tier_label(t)), "data": [_pct(m[t]) for m in data["monthly"]]}
                               for t in TIERS]},
    }
    return render_template("reports/month.html", data=data, stored=stored, charts=charts, drill=drill,
                           chosen=chosen, can_manage=has_permission(g.user.role, "reports.manage"),
                           formats=list(FORMATS), local=_local)


@bp.route("/connectivity/<month>/download/<fmt>")
@requires("reports.read")
def download(month: str, fmt: str) -> Any:
    if fmt not in FORMATS:
        abort(404)
    svc = services()
    province = request.args.get("province") or None
    locale = request.args.get("locale") or select_locale()
    data = svc.reports.data_for(month, g.scope, province=province)
    stored = svc.reports.find(month)
    if (fmt == "pdf" and stored is not None and stored.state == "published" and locale == "zh_CN"
            and data.get("scope") is None):
        name, content = svc.reports.archived(stored, ".pdf")
        media = "application/pdf"
    else:
        content, media, name = export(data, fmt, locale, files_dir=g.container.settings.files_dir)
    return Response(content, mimetype=media.split(";")[0],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/connectivity/<month>/generate", methods=["POST"])
@requires("reports.manage")
def generate(month: str) -> Any:
    outcome = services().reports.generate(g.actor, month)
    if outcome["action"] == "checked":
        if outcome["identical"]:
            flash(_("Published report re-checked: the data reproduce the same figures."), "success")
        else:
            flash(_("Published report re-checked: %(n)s figures differ from the data (listed below); "
                    "the published report is unchanged.", n=len(outcome["changes"])), "warning")
    else:
        flash(_("Draft built (revision %(n)s).", n=outcome["revision"]), "success")
    return redirect(url_for("reports.month", month=outcome["month"]))


@bp.route("/connectivity/<month>/publish", methods=["POST"])
@requires("reports.manage")
def publish(month: str) -> Any:
    job = services().reports.start_publication(g.actor, month)
    flash(_("Publishing: the PDF is being rendered and archived (a national report takes about a minute)."),
          "info")
    return redirect(url_for("main.job", job_id=job.id))


@bp.route("/targets", methods=["POST"])
@requires("reports.manage")
def targets() -> Any:
    changes: dict[str, Any] = {}
    for t in TIERS:
        raw = (request.form.get(t) or "").strip().rstrip("%")
        try:
            changes[t] = round(float(raw) / 100, 6)
        except ValueError:
            flash(_("%(tier)s: enter a percentage such as 99.00", tier=_tier_label(t)), "danger")
            return redirect(url_for("reports.index"))
    services().policies.update(g.actor, "assessment", changes)
    flash(_("Assessment targets saved."), "success")
    return redirect(url_for("reports.index"))


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 4)


def _tier_label(tier: str) -> Any:
    from ..labels import LINK_TIER_LABELS

    return LINK_TIER_LABELS.get(tier, tier)


def _local(iso: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if not iso:
        return "—"
    return dt.datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime(fmt)
