"""Monthly SLA report per team / vendor: the data (:func:`sla_report`), an XLSX workbook and a PDF.

What is counted (``basis`` in the data says the same):

* **The tickets** are those created in the month, Asia/Shanghai time (``[1st 00:00, next 1st 00:00)``
  UTC+8), under the team that holds them when the report is made (after an escalation, the escalation
  team). Tickets without a team form their own row; teams with no tickets still get a row.
* ``resolved``: resolved (or closed) by now; ``canceled``; ``open``: the rest. ``created`` is their sum.
* Per clock (response, resolution): ``met`` = the clock stopped and no breach is recorded;
  ``breached`` = a breach is recorded on the ticket (``response_breached`` / ``resolve_breached``:
  set by the SLA watch at the deadline, or when the clock stopped late, and never cleared), whether
  or not the clock has stopped since. Tickets whose clock still runs without a breach count in neither.
  ``met_rate`` = met / (met + breached), None without either.
* **Average times** are measured on each ticket's SLA clock with pending time left out, and kept apart
  by clock kind because the units differ: ``*_business_seconds`` over business-hours tickets
  (working time 08:30–17:30 on the stored working calendar), ``*_24x7_seconds`` over 7×24 tickets
  (wall-clock time). The kind follows the current servicedesk policy (the priority's mode, or a
  category in ``categories_24x7``), as the deadlines do. Response time runs from creation to the
  first response, resolution time from creation to the (last) resolution.
* The team's contract is the one valid on some day of the month (the latest-starting when several).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import utcnow
from ..network.connectivity import month_period
from ..network.rates import format_rate
from ..policies.models import Policy
from ..policies.service import PolicyService, ServiceDeskPolicy
from ..reports.render import (
    CSS,
    DASH,
    Rate,
    Translator,
    _css_string,
    _page_counter_content,
    _table,
    format_duration,
    format_month,
    format_time,
    parse_time,
    translator,
    write_workbook,
)
from ..reports.svg import esc
from .calendar import SHANGHAI
from .models import Ticket, TicketStatus
from .sla import elapsed_business_seconds
from .sla_store import load_calendar, pauses_of
from .teams import Team, TeamKind, contract_for

COUNTS = ("created", "resolved", "open", "canceled", "response_met", "response_breached", "resolve_met",
          "resolve_breached", "business_tickets", "tickets_24x7")
AVERAGES = ("avg_response_business_seconds", "avg_response_24x7_seconds", "avg_resolve_business_seconds",
            "avg_resolve_24x7_seconds")


def month_bounds(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    """The month in Asia/Shanghai time as ``[start, end)``, aware datetimes in UTC."""
    if not 1 <= month <= 12 or not 2000 <= year <= 2999:
        raise ValueError(f"no month {year}-{month}")
    period = month_period(year, month)
    return period.start, period.end


def _policy(session: Session, policies: PolicyService | None) -> ServiceDeskPolicy:
    if policies is not None:
        return policies.servicedesk()
    row = session.get(Policy, "servicedesk")
    stored = dict(row.value) if row else {}
    return ServiceDeskPolicy(**{k: v for k, v in stored.items() if k in ServiceDeskPolicy.model_fields})


def _empty_row() -> dict[str, Any]:
    return dict.fromkeys(COUNTS, 0)


def _finish(row: dict[str, Any], sums: Mapping[str, list[float]]) -> dict[str, Any]:
    for key in AVERAGES:
        values = sums.get(key) or []
        row[key] = sum(values) / len(values) if values else None
    for clock in ("response", "resolve"):
        met, breached = row[f"{clock}_met"], row[f"{clock}_breached"]
        row[f"{clock}_met_rate"] = met / (met + breached) if met + breached else None
    return row


def sla_report(session: Session, year: int, month: int, *, now: dt.datetime | None = None,
               policies: PolicyService | None = None) -> dict[str, Any]:
    """The month's SLA figures per team (see the module docstring for every definition).

    JSON-compatible: ``{"kind", "month", "period": {from, to, timezone, partial}, "generated_at",
    "basis", "rows": [...], "total": {...}}``; each row has ``team`` (name or None), ``display_name``,
    ``kind`` (internal, vendor, or None for a team name without a team record), ``contract``
    (``{name, vendor, valid_from, valid_to}`` or None), the counts, the met rates and the averages."""
    now = now or utcnow()
    start, end = month_bounds(year, month)
    policy = _policy(session, policies)
    cal = load_calendar(session)
    tickets = list(session.execute(select(Ticket).where(Ticket.created_at >= start, Ticket.created_at < end)
                                   .order_by(Ticket.id)).scalars())
    pauses = pauses_of(session, [t.id for t in tickets])

    rows: dict[str | None, dict[str, Any]] = {}
    sums: dict[str | None, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in tickets:
        row = rows.setdefault(t.team, _empty_row())
        target = policy.sla.get(t.priority)
        mode = "24x7" if (target is not None and target.mode == "24x7") or t.category in policy.categories_24x7 \
            else "business"
        suffix = "24x7" if mode == "24x7" else "business"
        row["created"] += 1
        row["business_tickets" if mode == "business" else "tickets_24x7"] += 1
        if t.resolved_at is not None:
            row["resolved"] += 1
        elif t.status == TicketStatus.CANCELED:
            row["canceled"] += 1
        else:
            row["open"] += 1
        for clock, stopped, breached in (("response", t.responded_at, t.response_breached),
                                         ("resolve", t.resolved_at, t.resolve_breached)):
            if breached:
                row[f"{clock}_breached"] += 1
            elif stopped is not None:
                row[f"{clock}_met"] += 1
            if stopped is not None:
                seconds = elapsed_business_seconds(cal, t.created_at, stopped, mode=mode,  # type: ignore[arg-type]
                                                   pauses=pauses.get(t.id, []))
                sums[t.team][f"avg_{clock}_{suffix}_seconds"].append(seconds)

    first_day = start.astimezone(SHANGHAI).date()
    last_day = (end.astimezone(SHANGHAI) - dt.timedelta(days=1)).date()
    teams = {t.name: t for t in session.execute(select(Team)).scalars()}
    kind_order: dict[str, int] = {TeamKind.INTERNAL: 0, TeamKind.VENDOR: 1}
    configured = sorted(teams, key=lambda n: (kind_order.get(teams[n].kind, 2), n))
    names: list[str | None] = [*configured, *sorted(n for n in rows if n is not None and n not in teams)]
    if None in rows:
        names.append(None)

    out_rows = []
    for name in names:
        row = _finish(rows.get(name) or _empty_row(), sums.get(name, {}))
        team = teams.get(name) if name is not None else None
        contract = contract_for(session, team.name, first_day, last_day) if team is not None else None
        out_rows.append({"team": name, "display_name": team.display_name if team else name,
                         "kind": team.kind if team else None,
                         "leader": team.leader.username if team and team.leader else None,
                         "contract": {"name": contract.name, "vendor": contract.vendor,
                                      "valid_from": contract.valid_from.isoformat(),
                                      "valid_to": contract.valid_to.isoformat()} if contract else None,
                         **row})
    total = _empty_row()
    for r in rows.values():
        for key in COUNTS:
            total[key] += r[key]
    all_sums: dict[str, list[float]] = defaultdict(list)
    for s in sums.values():
        for key, values in s.items():
            all_sums[key] += values
    return {
        "kind": "servicedesk_sla",
        "month": f"{year:04d}-{month:02d}",
        "period": {"from": start.isoformat(), "to": end.isoformat(), "timezone": "Asia/Shanghai",
                   "partial": now < end},
        "generated_at": now.astimezone(dt.UTC).isoformat(),
        "basis": {
            "tickets": "created in the month (Asia/Shanghai), under the team holding them now",
            "met": "clock stopped, no breach recorded",
            "breached": "breach recorded on the ticket (never cleared)",
            "business_seconds": "working time 08:30-17:30 on the stored working calendar, pending time excluded",
            "24x7_seconds": "wall-clock time, pending time excluded",
        },
        "rows": out_rows,
        "total": _finish(total, all_sums),
    }


# --------------------------------------------------------------------------------------------------
# Rendering


def kind_names(_: Translator) -> dict[str, str]:
    return {TeamKind.INTERNAL: _("Internal team"), TeamKind.VENDOR: _("Vendor team")}


def _team_label(row: Mapping[str, Any], _: Translator) -> str:
    if row["team"] is None:
        return _("No team")
    if row["display_name"] and row["display_name"] != row["team"]:
        return f"{row['display_name']}（{row['team']}）"
    return str(row["team"])


def _rate(value: float | None) -> Rate | None:
    return None if value is None else Rate(value)


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def table_headers(_: Translator) -> list[str]:
    """Column headings of the XLSX sheet (the PDF table uses a shorter set)."""
    return [_("Team"), _("Team type"), _("Contract"), _("Vendor"), _("Contract valid from"), _("Contract valid to"),
            _("Tickets created"), _("Resolved"), _("Still open"), _("Canceled"), _("Response met"),
            _("Response breached"), _("Response met rate"), _("Resolution met"), _("Resolution breached"),
            _("Resolution met rate"),
            _("Business-hours tickets"), _("7×24 tickets"), _("Average response, working time (s)"),
            _("Average response, 7×24 (s)"), _("Average resolution, working time (s)"),
            _("Average resolution, 7×24 (s)")]


def table_rows(data: Mapping[str, Any], _: Translator) -> list[list[Any]]:
    """One row per team and the total, as Python values (None = empty cell)."""
    kinds = kind_names(_)
    out: list[list[Any]] = []
    for row in [*data["rows"], {**data["total"], "team": "", "display_name": "", "kind": None, "contract": None}]:
        contract = row.get("contract") or {}
        label = _("All teams") if row["team"] == "" else _team_label(row, _)
        out.append([label, kinds.get(row["kind"]) if row["kind"] else None, contract.get("name"),
                    contract.get("vendor"), _day(contract.get("valid_from")), _day(contract.get("valid_to")),
                    row["created"], row["resolved"], row["open"], row["canceled"], row["response_met"],
                    row["response_breached"], _rate(row["response_met_rate"]), row["resolve_met"],
                    row["resolve_breached"], _rate(row["resolve_met_rate"]), row["business_tickets"],
                    row["tickets_24x7"], *(None if row[k] is None else float(row[k]) for k in AVERAGES)])
    return out


def definitions(_: Translator) -> list[str]:
    return [
        _("Tickets created in the month (Beijing time), counted under the team that holds them now."),
        _("Met: the clock stopped and no breach was recorded. Breached: a breach was recorded on the ticket; "
          "recorded breaches are never cleared."),
        _("Average times run on each ticket's SLA clock without pending time: working time (08:30–17:30 on "
          "working days) for business-hours tickets, wall-clock time for 7×24 tickets."),
    ]


def render_sla_xlsx(data: Mapping[str, Any], locale: str = "zh_CN") -> bytes:
    """The report as an XLSX workbook: the table per team, then the report's facts and definitions.

    Counts are integers, rates fractions formatted as percentages, times seconds (numbers), contract
    dates Excel dates; the same data gives the same bytes."""
    _ = translator(locale)
    period = data["period"]
    facts: list[list[Any]] = [
        [_("Report"), _("Monthly service desk SLA report")],
        [_("Month"), data["month"]],
        [_("Period start"), parse_time(period["from"])],
        [_("Period end"), parse_time(period["to"])],
        [_("Time zone"), period.get("timezone", "Asia/Shanghai")],
        [_("Month not over yet"), _("Yes") if period.get("partial") else _("No")],
        [_("Generated at"), parse_time(data["generated_at"])],
        *([_("Definition"), text] for text in definitions(_)),
    ]
    sheets = [(_("SLA by team"), table_headers(_), table_rows(data, _), [28, 10, 24, 24, 12, 12]),
              (_("Report information"), [_("Item"), _("Value")], facts, [22, 100])]
    return write_workbook(data, _("Monthly service desk SLA report"), sheets)


def _count(value: int) -> str:
    return f"{value:,}"


def render_sla_html(data: Mapping[str, Any], locale: str = "zh_CN") -> str:
    """The report as one printable HTML document (A4 landscape), the source of the PDF."""
    _ = translator(locale)
    kinds = kind_names(_)
    title = _("Monthly service desk SLA report")
    month = format_month(data["month"], _)
    period = data["period"]
    parts: list[str] = [f"<header><h1>{esc(title)}</h1>", f'<p class="subtitle">{esc(month)}</p>']
    period_text = f"{format_time(period['from'], seconds=False)} – {format_time(period['to'], seconds=False)}"
    if period.get("partial"):
        period_text += " " + _("(the month is not over yet; figures up to the end of the period)")
    meta = [(_("Month"), month), (_("Period"), period_text), (_("Time zone"), _("Beijing time (UTC+8)")),
            (_("Generated at"), format_time(data["generated_at"]))]
    parts.append('<table class="meta"><tbody>' + "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in meta) + "</tbody></table>")
    parts += [f'<p class="note">{esc(text)}</p>' for text in definitions(_)]
    parts.append("</header>")

    def row_cells(row: Mapping[str, Any], label: str, contract_text: str) -> list[str]:
        return [label, contract_text, _count(row["created"]), _count(row["resolved"]), _count(row["open"]),
                f"{row['response_met']} / {row['response_breached']}", format_rate(row["response_met_rate"]),
                f"{row['resolve_met']} / {row['resolve_breached']}", format_rate(row["resolve_met_rate"]),
                format_duration(row["avg_response_business_seconds"], _),
                format_duration(row["avg_response_24x7_seconds"], _),
                format_duration(row["avg_resolve_business_seconds"], _),
                format_duration(row["avg_resolve_24x7_seconds"], _)]

    rows: list[list[str]] = []
    for row in data["rows"]:
        label = _team_label(row, _)
        if row["kind"]:
            label += "\n" + kinds.get(row["kind"], row["kind"])
        c = row.get("contract")
        contract_text = (f"{c['name']}\n{c['vendor']}\n{c['valid_from']} – {c['valid_to']}" if c else DASH)
        rows.append(row_cells(row, label, contract_text))
    rows.append(row_cells(data["total"], _("All teams"), DASH))
    headers = [_("Team"), _("Contract"), _("Tickets created"), _("Resolved"), _("Still open"),
               _("Response met / breached"), _("Response met rate"), _("Resolution met / breached"),
               _("Resolution met rate"), _("Average response, working time"), _("Average response, 7×24"),
               _("Average resolution, working time"), _("Average resolution, 7×24")]
    parts.append(f"<h2>{esc(_('SLA by team'))}</h2>")
    parts.append(_table(headers, rows, numeric=range(2, 13), css="small",
                        widths=(13, 15, 6, 6, 5, 7, 7, 7, 7, 7, 6.5, 7, 6.5)))

    css = (CSS.replace("A4 portrait", "A4 landscape")
           .replace("@HEADER@", _css_string(f"{title} · {month}")).replace("@HEADER_RIGHT@", _css_string(""))
           .replace("@FOOTER@", _page_counter_content(_("Page %(page)s of %(pages)s"))))
    lang = "zh-CN" if locale == "zh_CN" else "en"
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{esc(title)} {esc(month)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def render_sla_pdf(data: Mapping[str, Any], locale: str = "zh_CN") -> bytes:
    """The report as PDF (WeasyPrint, A4 landscape, CJK font embedded)."""
    import weasyprint

    pdf = weasyprint.HTML(string=render_sla_html(data, locale)).write_pdf()
    if pdf is None:
        raise RuntimeError("WeasyPrint returned no PDF")
    return bytes(pdf)
