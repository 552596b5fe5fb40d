"""The drill report: what a drill did and showed, as data, a printable HTML document and a PDF.

:func:`report_data` collects everything from the database into a JSON-compatible dict (timestamps
ISO 8601 in UTC, durations in seconds); :func:`render_html` and :func:`render_pdf` lay it out in
Simplified Chinese (default) or English, with the same fonts and page furniture as the monthly
assessment report (:mod:`ecocloud_ops.reports.render`).

Connection strings of the service (health target, copy target, marker DSNs) are secrets: they never
appear in the data, and where a step's message quotes one (a TCP check names its ``host:port``, a
driver error may name a host) it is replaced by the field's name in brackets.

The label functions (``*_names(_)``) take a translator so that the console shows the same words:
it passes Flask-Babel's ``gettext``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..db import utcnow
from ..reports.render import (
    DASH,
    Cell,
    Translator,
    _heading,
    _para,
    _table,
    format_time,
    html_document,
    met_label,
    pdf_from_html,
    translator,
)
from ..reports.svg import esc
from .models import DataCenter, DrillPlan, DrillRun, ProtectedService
from .service import SECRET_FIELDS

if TYPE_CHECKING:
    from .service import DRService


# --------------------------------------------------------------------------------------------------
# Labels (shared with the console)


def mode_names(_: Translator) -> dict[str, str]:
    return {"test": _("Test drill (on a copy)"), "planned_migration": _("Planned migration"),
            "disaster": _("Disaster takeover")}


def mode_explanations(_: Translator) -> dict[str, str]:
    return {
        "test": _("A copy is built from the DR center's data, promoted in isolation and checked, while "
                  "production and replication keep running; the copy is removed afterwards."),
        "planned_migration": _("A controlled switch to the DR center: the data is synchronized first, so no "
                               "acknowledged write is lost; the service then fails back."),
        "disaster": _("The primary is assumed lost: the DR center takes over at once, and the RPO shows what "
                      "would have been lost; the service then fails back."),
    }


def drill_status_names(_: Translator) -> dict[str, str]:
    return {"queued": _("Queued"), "running": _("Running"), "waiting": _("Waiting for confirmation"),
            "rolling_back": _("Rolling back"), "succeeded": _("Succeeded"), "failed": _("Failed"),
            "aborted": _("Aborted"), "error": _("Platform error")}


def step_status_names(_: Translator) -> dict[str, str]:
    return {"pending": _("Not started"), "running": _("Running"), "waiting": _("Waiting for confirmation"),
            "succeeded": _("Succeeded"), "failed": _("Failed"), "canceled": _("Canceled"), "skipped": _("Skipped")}


def center_role_names(_: Translator) -> dict[str, str]:
    return {"production": _("Production center"), "same_city_dr": _("Same-city DR center"),
            "remote_dr": _("Remote DR center")}


def step_kind_names(_: Translator) -> dict[str, str]:
    return {"playbook": _("Playbook"), "health_check": _("Health check"), "wait": _("Wait"),
            "manual": _("Manual confirmation")}


def phase_names(_: Translator) -> dict[str, str]:
    return {"step": _("Step"), "rollback": _("Rollback")}


def severity_names(_: Translator) -> dict[str, str]:
    return {"info": _("Info"), "warning": _("Warning"), "critical": _("Critical")}


def rollback_names(_: Translator) -> dict[str, str]:
    return {"none": _("None needed"), "succeeded": _("Rolled back"),
            "failed": _("Rollback failed: manual recovery needed")}


def target_names(_: Translator) -> dict[str, str]:
    return {"service": _("the service address"), "copy": _("the isolated copy")}


def format_seconds(value: float | None, _: Translator) -> str:
    """"42 s", "3.5 s", "2 min 05 s", "1 h 02 min" (whole targets stay whole, measurements get a decimal)."""
    if value is None:
        return DASH
    if value < 60:
        shown = str(value) if isinstance(value, int) else f"{value:.1f}"
        return _("%(s)s s") % {"s": shown}
    whole = round(value)
    if whole < 3600:
        minutes, seconds = divmod(whole, 60)
        return _("%(m)s min %(s)s s") % {"m": minutes, "s": f"{seconds:02d}"}
    hours, minutes = divmod((whole + 30) // 60, 60)
    return _("%(h)s h %(m)s min") % {"h": f"{hours:,}", "m": f"{minutes:02d}"}


# --------------------------------------------------------------------------------------------------
# Data


def redactor(svc_dr: DRService, service: ProtectedService) -> Callable[[str], str]:
    """A function that replaces the service's secret values in a text by ``[field]``."""
    secrets = []
    for name in SECRET_FIELDS:
        value = svc_dr.secret(service, name)
        if value and len(value.strip()) >= 4:
            secrets.append((value.strip(), f"[{name}]"))
    secrets.sort(key=lambda s: -len(s[0]))  # a DSN before the host:port it may contain

    def redact(text: str) -> str:
        for value, label in secrets:
            text = text.replace(value, label)
        return text

    return redact


def _redact_tree(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v, redact) for v in value]
    return value


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds_between(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _center(c: DataCenter | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"code": c.code, "name": c.name, "role": c.role, "location": c.location}


def step_definition(drill: DrillRun, phase: str, position: int) -> dict[str, Any]:
    """The plan's definition of an executed step (or of the rollback of step ``position``)."""
    steps = drill.steps or []
    if not 0 <= position < len(steps):
        return {}
    step = steps[position]
    if phase == "rollback":
        return step.get("rollback") or {}
    return step


def report_data(svc_dr: DRService, drill: DrillRun) -> dict[str, Any]:
    """Everything the report shows, JSON-compatible. The caller has checked the drill is in scope."""
    from ..sites.models import Site

    session = svc_dr.session
    service = session.get(ProtectedService, drill.service_id)
    assert service is not None
    plan = session.get(DrillPlan, drill.plan_id)
    redact = redactor(svc_dr, service)
    site_name = session.execute(select(Site.name).where(Site.code == service.site_code)).scalar()
    steps = []
    for s in svc_dr.steps(drill):
        definition = step_definition(drill, s.phase, s.position)
        rollback = definition.get("rollback") if s.phase == "step" else None
        steps.append({
            "id": s.id, "phase": s.phase, "position": s.position, "number": s.position + 1, "name": s.name,
            "kind": s.kind, "status": s.status, "started_at": _iso(s.started_at), "finished_at": _iso(s.finished_at),
            "duration_seconds": _seconds_between(s.started_at, s.finished_at), "message": redact(s.message or ""),
            "playbook_run_id": s.playbook_run_id, "playbook": definition.get("playbook"),
            "target": definition.get("target"), "seconds": definition.get("seconds"), "role": s.role,
            "instructions": definition.get("instructions"), "confirmed_by": s.confirmed_by,
            "confirm_ok": s.confirm_ok, "switch": bool(definition.get("switch")),
            "rollback": rollback.get("name") if rollback else None,
        })
    return {
        "generated_at": utcnow().isoformat(),
        "drill": {"id": drill.id, "plan_id": drill.plan_id, "plan": plan.name if plan else None, "mode": drill.mode,
                  "status": drill.status, "status_reason": redact(drill.status_reason or "") or None,
                  "started_by": drill.started_by, "abort_requested_by": drill.abort_requested_by,
                  "created_at": _iso(drill.created_at), "started_at": _iso(drill.started_at),
                  "finished_at": _iso(drill.finished_at),
                  "duration_seconds": _seconds_between(drill.started_at, drill.finished_at),
                  "rollback": drill.rollback, "job_id": drill.job_id},
        "service": {"id": service.id, "name": service.name, "tenant": service.tenant, "site_code": service.site_code,
                    "site_name": site_name, "rto_target": service.rto_seconds, "rpo_target": service.rpo_seconds,
                    "drill_interval_days": service.drill_interval_days, "health_kind": service.health_kind},
        "centers": {"primary": _center(session.get(DataCenter, service.primary_center_id)),
                    "dr": _center(session.get(DataCenter, service.dr_center_id))},
        "rto": {"target": drill.rto_target, "measured": drill.rto_seconds, "met": drill.rto_met,
                "switch_at": _iso(drill.switch_at), "healthy_at": _iso(drill.healthy_at)},
        "rpo": {"target": drill.rpo_target, "measured": drill.rpo_seconds, "met": drill.rpo_met},
        "markers": _redact_tree(dict(drill.markers or {}), redact),
        "steps": steps,
        "findings": [{"id": f.id, "severity": f.severity, "text": redact(f.text), "source": f.source,
                      "ticket": f.ticket_number, "created_at": _iso(f.created_at)} for f in svc_dr.findings(drill)],
    }


# --------------------------------------------------------------------------------------------------
# HTML and PDF

EXTRA_CSS = """
.lead { font-size: 11pt; margin: 4pt 0 8pt; }
.status-succeeded, .status-met { color: #2e7d32; font-weight: bold; }
.status-failed, .status-error, .status-aborted { color: #c62828; font-weight: bold; }
.rollback-row td { background: #fbf3e6; }
.links { margin: 0 0 10pt; font-size: 9pt; }
@media print { .links { display: none; } }
"""


def _open_section(number: int, title: str) -> str:
    return f"<section><h2>{number}. {esc(title)}</h2>"


def _met(met: bool | None, measured: float | None, _: Translator) -> Cell:
    if measured is None:
        return _("Not measured")
    label = met_label(met, _) or DASH
    return (label, "met" if met else "missed")


def _center_text(c: Mapping[str, Any] | None, roles: Mapping[str, str]) -> str:
    if c is None:
        return DASH
    text = f"{c['name']} ({c['code']}) · {roles.get(c['role'], c['role'])}"
    return text + (f" · {c['location']}" if c.get("location") else "")


def marker_rows(markers: Mapping[str, Any], _: Translator) -> list[tuple[str, str]]:
    """The RPO evidence as (item, value) rows."""
    rows: list[tuple[str, str]] = []

    def seq_at(v: Mapping[str, Any] | None) -> str:
        if not v:
            return _("none")
        return _("marker %(seq)s written at %(at)s") % {"seq": v.get("seq"), "at": format_time(v.get("at"))}

    if "written" in markers:
        rows += [(_("Markers written on the primary"), str(markers.get("written"))),
                 (_("Acknowledged by the primary"), str(markers.get("acknowledged"))),
                 (_("Not acknowledged (write failed)"), str(markers.get("failed")))]
    if markers.get("cutoff"):
        rows.append((_("Cut-off (the switch)"), format_time(markers["cutoff"])))
    if "last_acknowledged" in markers:
        rows.append((_("Last write acknowledged before the cut-off"), seq_at(markers.get("last_acknowledged"))))
    if "newest_at_dr" in markers:
        side = _("the copy") if markers.get("read_from") == "copy" else _("the DR center")
        rows.append((_("Newest marker found at %(side)s") % {"side": side}, seq_at(markers.get("newest_at_dr"))))
    if markers.get("last_error"):
        rows.append((_("Last write error"), str(markers["last_error"])))
    if markers.get("error"):
        rows.append((_("Note"), str(markers["error"])))
    return rows


def _step_detail(s: Mapping[str, Any], _: Translator) -> str:
    parts = []
    if s.get("playbook"):
        parts.append(_("playbook %(name)s") % {"name": s["playbook"]}
                     + (f" (#{s['playbook_run_id']})" if s.get("playbook_run_id") else ""))
    if s.get("target"):
        parts.append(_("checks %(target)s") % {"target": target_names(_).get(s["target"], s["target"])})
    if s.get("role"):
        parts.append(_("confirmed by the role %(role)s") % {"role": s["role"]})
    if s.get("switch"):
        parts.append(_("the switch: RTO is measured from its start"))
    if s.get("rollback"):
        parts.append(_("rollback: %(name)s") % {"name": s["rollback"]})
    if s.get("message"):
        parts.append(str(s["message"]))
    return "\n".join(parts)


def render_html(data: Mapping[str, Any], locale: str = "zh_CN", *, links: Mapping[str, str] | None = None) -> str:
    """The report as one self-contained, printable HTML document (inline CSS, no script).

    ``links``: label -> URL shown on screen above the report (never printed), e.g. back to the drill."""
    _ = translator(locale)
    drill, service, centers = data["drill"], data["service"], data["centers"]
    roles, modes = center_role_names(_), mode_names(_)
    statuses, step_statuses = drill_status_names(_), step_status_names(_)
    title = _("DR drill report")
    subtitle = _("%(service)s · drill #%(id)s") % {"service": service["name"], "id": drill["id"]}
    parts: list[str] = []
    add = parts.append
    if links:
        add('<nav class="links">' + " · ".join(f'<a href="{esc(url)}">{esc(label)}</a>'
                                               for label, url in links.items()) + "</nav>")
    add(f"<header><h1>{esc(title)}</h1>")
    add(f'<p class="subtitle">{esc(subtitle)}</p>')
    status = drill["status"]
    verdict = statuses.get(status, status)
    outcome = _("Outcome")
    add(f'<p class="lead">{esc(outcome)}: <span class="status-{esc(status)}">{esc(verdict)}</span>'
        + (f" — {esc(drill['status_reason'])}" if drill.get("status_reason") else "") + "</p>")
    site = f"{service['site_name']} ({service['site_code']})" if service.get("site_name") else service["site_code"]
    meta: list[tuple[str, str]] = [
        (_("Protected service"), service["name"] + (f" · {service['tenant']}" if service.get("tenant") else "")),
        (_("Site"), site),
        (_("Primary center"), _center_text(centers.get("primary"), roles)),
        (_("DR center"), _center_text(centers.get("dr"), roles)),
        (_("Drill plan"), drill.get("plan") or DASH),
        (_("Mode"), modes.get(drill["mode"], drill["mode"])),
        (_("Started by"), drill["started_by"]),
        (_("Recorded at"), format_time(drill["created_at"])),
        (_("Started at"), format_time(drill["started_at"])),
        (_("Finished at"), format_time(drill["finished_at"])),
        (_("Duration"), format_seconds(drill.get("duration_seconds"), _)),
    ]
    if drill.get("abort_requested_by"):
        meta.append((_("Aborted by"), drill["abort_requested_by"]))
    meta.append((_("Rollback"), rollback_names(_).get(drill["rollback"], drill["rollback"])))
    meta.append((_("Time zone"), _("Beijing time (UTC+8)")))
    meta.append((_("Generated at"), format_time(data["generated_at"])))
    add('<table class="meta"><tbody>')
    for label, value in meta:
        add(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>")
    add("</tbody></table>")
    add(_para(mode_explanations(_).get(drill["mode"], ""), "note"))
    add("</header>")

    # 1. RTO and RPO against the targets.
    rto, rpo = data["rto"], data["rpo"]
    add(_open_section(1, _("Recovery objectives")))
    add(_table([_("Objective"), _("Target"), _("Measured"), _("Assessment")], [
        [_("RTO (recovery time)"), format_seconds(rto["target"], _), format_seconds(rto["measured"], _),
         _met(rto["met"], rto["measured"], _)],
        [_("RPO (data loss)"), format_seconds(rpo["target"], _), format_seconds(rpo["measured"], _),
         _met(rpo["met"], rpo["measured"], _)],
    ], numeric=(1, 2), widths=(34, 22, 22, 22)))
    add('<table class="meta"><tbody>')
    for label, value in ((_("Switch started at"), format_time(rto.get("switch_at"))),
                         (_("First healthy at"), format_time(rto.get("healthy_at")))):
        add(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>")
    add("</tbody></table>")
    add(_para(_("RTO: from the start of the switch step to the first successful health check after it. RPO: the "
                "time of acknowledged writes on the primary that were missing at the DR side after the switch "
                "(0 when every acknowledged write arrived)."), "note"))
    add(_heading(_("RPO evidence (markers)")))
    rows_of_markers = marker_rows(data.get("markers") or {}, _)
    if rows_of_markers:
        add('<table class="meta"><tbody>')
        for label, value in rows_of_markers:
            add(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>")
        add("</tbody></table>")
    else:
        add(_para(_("No marker evidence: the RPO was not measured."), "empty"))
    add("</section>")

    # 2. The timeline: every step, then the rollbacks.
    add(_open_section(2, _("Timeline")))
    kinds, phases = step_kind_names(_), phase_names(_)
    rows = []
    for s in data["steps"]:
        cls = "rollback-row" if s["phase"] == "rollback" else ""
        row: list[Cell] = [str(s["number"]), phases.get(s["phase"], s["phase"]), s["name"],
                           kinds.get(s["kind"], s["kind"]),
                           (step_statuses.get(s["status"], s["status"]), f"status-{s['status']}"),
                           format_time(s["started_at"]), format_time(s["finished_at"]),
                           format_seconds(s["duration_seconds"], _), _step_detail(s, _)]
        if cls:
            row = [(c, cls) if isinstance(c, str) else (c[0], f"{c[1]} {cls}") for c in row]
        rows.append(row)
    add(_table([_("No."), _("Phase"), _("Step"), _("Kind"), _("Status"), _("Start"), _("End"), _("Duration"),
                _("Details")], rows, numeric=(0, 7), css="small", widths=(4, 7, 17, 8, 8, 12, 12, 7, 25)))
    add(_para(_("When a step fails or the drill is aborted, the steps already started are rolled back in "
                "reverse order."), "note"))
    add("</section>")

    # 3. Findings and their change tickets.
    add(_open_section(3, _("Findings")))
    if data["findings"]:
        sev = severity_names(_)
        add(_table([_("Severity"), _("Finding"), _("Recorded by"), _("Change ticket"), _("Recorded at")],
                   [[sev.get(f["severity"], f["severity"]), f["text"],
                     _("automatic") if f["source"] == "auto" else f["source"], f["ticket"] or DASH,
                     format_time(f["created_at"])] for f in data["findings"]],
                   widths=(9, 43, 11, 19, 18)))
    else:
        add(_para(_("No findings."), "empty"))
    add("</section>")

    return html_document(parts, title=f"{title} · {subtitle}", header=f"{title} · {service['name']} · #{drill['id']}",
                         header_right=verdict, locale=locale, generated_at=data.get("generated_at"), _=_,
                         extra_css=EXTRA_CSS)


def render_pdf(data: Mapping[str, Any], locale: str = "zh_CN") -> bytes:
    """The report as PDF: :func:`render_html` laid out by WeasyPrint (A4, CJK font embedded)."""
    return pdf_from_html(render_html(data, locale))
