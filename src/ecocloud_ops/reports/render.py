"""Renderers of the monthly connectivity assessment report: HTML (with inline SVG charts), PDF,
XLSX and a ZIP of CSV files, in Simplified Chinese (default) or English.

Input is the report's data dict built by :mod:`.builder` (JSON-compatible; timestamps are ISO 8601
in UTC, rates are unrounded fractions or None). Times are shown in Asia/Shanghai time. The rows of
the XLSX sheets and the CSV files come from one function, :func:`section_rows`.

Every label is a literal English msgid in a ``_("...")`` call so that ``pybabel extract`` finds it;
``_`` is the translator passed around (see :func:`translator`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.support import Translations

from ..network.rates import format_rate, meets_target
from . import svg
from .svg import esc

Translator = Callable[[str], str]

TIERS = ("ministry_province", "province_city", "city_county")
SHANGHAI = ZoneInfo("Asia/Shanghai")
LOCALES = ("zh_CN", "en")
#: The gettext catalogs of the console, shared by the reports.
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "web" / "translations"
#: Environment variable that overrides :data:`TRANSLATIONS_DIR` (e.g. a catalog compiled for a test).
TRANSLATIONS_DIR_ENV = "ECOCLOUD_TRANSLATIONS_DIR"
#: Sections of the XLSX workbook and the CSV zip, in order (also the CSV file stems).
SECTIONS = ("summary", "ranking", "drilldown", "outages", "maintenance", "poller_gaps", "daily", "monthly")

DASH = "—"
RATE_FORMAT = "0.00%"
RATE_CHANGE_FORMAT = "+0.00%;-0.00%;0.00%"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
SECONDS_FORMAT = "#,##0"

# Characters that XML (hence XLSX) does not allow; they have no business in a report anyway.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
# A CSV cell starting with one of these is taken for a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Rate(float):
    """A rate (fraction in [0, 1]): a float, formatted as a percentage in the XLSX."""

    __slots__ = ()


class RateChange(float):
    """A difference of two rates (fraction): a float, formatted as a signed percentage in the XLSX."""

    __slots__ = ()


# --------------------------------------------------------------------------------------------------
# Translations and labels


def _identity(message: str) -> str:
    return message


def translator(locale: str = "zh_CN") -> Translator:
    """The gettext function of a report locale: "zh_CN" (the ``zh_Hans_CN`` catalog) or "en" (identity).

    The catalog directory is the console's (:data:`TRANSLATIONS_DIR`) unless the environment variable
    ``ECOCLOUD_TRANSLATIONS_DIR`` names another one. Raises ValueError for another locale and
    RuntimeError when the compiled catalog (``messages.mo``) is missing."""
    if locale == "en":
        return _identity
    if locale != "zh_CN":
        raise ValueError(f"unsupported report locale {locale!r}; use one of {', '.join(LOCALES)}")
    dirname = os.environ.get(TRANSLATIONS_DIR_ENV) or str(TRANSLATIONS_DIR)
    catalog = Translations.load(dirname, ["zh_Hans_CN"], domain="messages")
    if not isinstance(catalog, Translations):  # load() falls back to NullTranslations silently
        raise RuntimeError(f"no compiled zh_Hans_CN catalog in {dirname} (run pybabel compile)")
    return catalog.gettext


def tier_names(_: Translator) -> dict[str, str]:
    return {"ministry_province": _("Ministry → province"), "province_city": _("Province → city"),
            "city_county": _("City → county")}


def status_names(_: Translator) -> dict[str, str]:
    return {"down": _("Down"), "unknown": _("Status unknown")}


def cause_names(_: Translator) -> dict[str, str]:
    return {"own": _("Own link"), "parent": _("Upstream outage")}


def state_names(_: Translator) -> dict[str, str]:
    return {"draft": _("Draft"), "published": _("Published")}


def section_titles(_: Translator) -> dict[str, str]:
    """Sheet titles of the XLSX workbook, by section."""
    return {"summary": _("Summary"), "ranking": _("Province ranking"), "drilldown": _("Drill-down"),
            "outages": _("Outages"), "maintenance": _("Maintenance windows"), "poller_gaps": _("Poller gaps"),
            "daily": _("Daily trend"), "monthly": _("Monthly trend")}


def met_label(met: bool | None, _: Translator) -> str | None:
    """"Met"/"Not met", None when undefined."""
    if met is None:
        return None
    return _("Met") if met else _("Not met")


def yes_no(value: bool, _: Translator) -> str:
    return _("Yes") if value else _("No")


def format_duration(seconds: float | None, _: Translator) -> str:
    """"2 h 05 min" / "2小时05分", "5 min", "42 s"; rounded to the minute from one minute on."""
    if seconds is None:
        return DASH
    s = max(0, round(seconds))
    if s < 60:
        return _("%(s)s s") % {"s": s}
    hours, minutes = divmod((s + 30) // 60, 60)
    if hours == 0:
        return _("%(m)s min") % {"m": minutes}
    return _("%(h)s h %(m)s min") % {"h": f"{hours:,}", "m": f"{minutes:02d}"}


def format_month(month: str, _: Translator) -> str:
    """"2026-10" as "2026-10" / "2026年10月"."""
    year, _sep, mon = month.partition("-")
    if not mon.isdigit():
        return month
    return _("%(year)s-%(month)s") % {"year": year, "month": f"{int(mon):02d}"}


def format_rate_change(change: float | None, _: Translator) -> str:
    """A change of rate in percentage points, signed: "+0.12 pp" / "+0.12个百分点"."""
    if change is None:
        return DASH
    return _("%(value)s pp") % {"value": f"{change * 100:+.2f}"}


def format_position_change(change: int | None) -> str:
    if change is None:
        return DASH
    if change > 0:
        return f"▲{change}"
    if change < 0:
        return f"▼{-change}"
    return "="


# --------------------------------------------------------------------------------------------------
# Values


def parse_time(value: str | None) -> dt.datetime | None:
    """An ISO 8601 timestamp (UTC, or naive = UTC) as an aware datetime in Asia/Shanghai time."""
    if value is None:
        return None
    t = dt.datetime.fromisoformat(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(SHANGHAI)


def format_time(value: str | None, *, seconds: bool = True) -> str:
    t = parse_time(value)
    if t is None:
        return DASH
    return t.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _clean(value: Any) -> str:
    return _CONTROL.sub("", str(value))


def _opt_clean(value: Any) -> str | None:
    return None if value is None else _clean(value)


def _rate(value: float | None) -> Rate | None:
    return None if value is None else Rate(value)


def _rate_change(value: float | None) -> RateChange | None:
    return None if value is None else RateChange(value)


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)


def _day(value: str) -> dt.date | str:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return value


def province_names(data: Mapping[str, Any]) -> dict[str, str]:
    """Province code -> name, from the ranking and the drill-down."""
    names = {str(r["code"]): str(r["name"]) for r in data.get("ranking", [])}
    names.update({str(code): str(p["name"]) for code, p in data.get("provinces", {}).items()})
    return names


def _provinces(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The drill-down provinces, by code."""
    provinces = data.get("provinces") or {}
    return [provinces[code] for code in sorted(provinces)]


def _province_links(province: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The province's own link first, then its city and county links."""
    own = province.get("own")
    return ([own] if own else []) + list(province.get("links") or [])


# --------------------------------------------------------------------------------------------------
# Sections as rows (XLSX and CSV)

Rows = list[list[Any]]


def section_rows(data: Mapping[str, Any], _: Translator) -> dict[str, tuple[list[str], Rows]]:
    """Every section of the workbook as (localized headers, rows of Python values), keyed as :data:`SECTIONS`.

    Values: str; int; float (seconds); :class:`Rate` / :class:`RateChange` (floats); aware datetimes
    in Asia/Shanghai time; dates; None for an empty cell (an undefined rate)."""
    tiers = tier_names(_)
    targets: Mapping[str, float] = data.get("targets") or {}
    names = province_names(data)

    # Summary: the tiers and the total, then (after a blank row) the report's facts as item/value.
    summary: Rows = []
    for t in data["tiers"]:
        summary.append([tiers.get(t["tier"], t["tier"]), _rate(t["rate"]), _rate(t["target"]), met_label(t["met"], _),
                        t["links"], t["links_with_rate"], t["below_target"], _rate(t["mean_rate"]),
                        _seconds(t["up_seconds"]), _seconds(t["down_seconds"])])
    total = data["total"]
    summary.append([_("All links"), _rate(total["rate"]), None, None, total["links"], total["links_with_rate"], None,
                    None, _seconds(total["up_seconds"]), _seconds(total["down_seconds"])])
    period, completeness = data["period"], data["completeness"]
    scope = data.get("scope")
    facts: list[tuple[str, Any]] = [
        (_("Report"), _("Monthly connectivity assessment report")),
        (_("Month"), data["month"]),
        (_("Period start"), parse_time(period["from"])),
        (_("Period end"), parse_time(period["to"])),
        (_("Time zone"), period.get("timezone", "Asia/Shanghai")),
        (_("Period (s)"), _seconds(period["seconds"])),
        (_("Month not over yet"), yes_no(bool(period.get("partial")), _)),
        (_("Scope"), f"{_clean(scope['name'])} ({scope['code']})" if scope else _("National")),
        (_("Generated at"), parse_time(data["generated_at"])),
    ]
    if data.get("state"):
        facts.append((_("State"), state_names(_).get(data["state"], data["state"])))
    if data.get("published_at"):
        facts.append((_("Published at"), parse_time(data["published_at"])))
    facts += [
        (_("Demo data included"), yes_no(bool(data.get("demo_data")), _)),
        (_("Data completeness"), _rate(completeness["covered"])),
        (_("Poller gaps"), len(completeness.get("gaps") or [])),
        (_("Poller gap time (s)"), _seconds(completeness["gap_seconds"])),
    ]
    for tier in TIERS:
        if tier in targets:
            facts.append((_("Target: %(tier)s") % {"tier": tiers[tier]}, _rate(targets[tier])))
    summary.append([])
    summary.append([_("Item"), _("Value")])
    summary += [[label, value] for label, value in facts]

    mp_target = targets.get("ministry_province")
    ranking: Rows = []
    for r in data.get("ranking") or []:
        met = meets_target(r["own_rate"], mp_target) if mp_target is not None else None
        ranking.append([r["position"], r["code"], _clean(r["name"]), _rate(r["own_rate"]), met_label(met, _),
                        _rate(r["subtree_rate"]), r["links"], r["previous_position"], r["position_change"],
                        _rate(r["previous_own_rate"]), _rate_change(r["own_rate_change"]),
                        _rate(r["previous_subtree_rate"])])

    drilldown: Rows = []
    for p in _provinces(data):
        for link in _province_links(p):
            target = targets.get(link["tier"])
            met = meets_target(link["rate"], target) if target is not None else None
            drilldown.append([p["code"], _clean(p["name"]), link["site"], _clean(link["name"]), link["parent"],
                              tiers.get(link["tier"], link["tier"]), _rate(link["rate"]), _rate(target),
                              met_label(met, _), _seconds(link["up_seconds"]), _seconds(link["down_seconds"]),
                              link["outages"], _seconds(link["longest_outage_seconds"]),
                              _seconds(link["downtime_seconds"])])

    statuses, causes = status_names(_), cause_names(_)
    outages: Rows = []
    for o in data.get("outages") or []:
        outages.append([o["id"], o["site"], _clean(o["name"]), o["province"], names.get(o["province"]),
                        tiers.get(o["tier"], o["tier"]), _opt_clean(o["device"]),
                        statuses.get(o["status"], o["status"]), causes.get(o["cause"], o["cause"]),
                        parse_time(o["started_at"]), parse_time(o["ended_at"]), _seconds(o["duration_seconds"]),
                        _seconds(o["in_period_seconds"]), o["flaps"], _opt_clean(o["ticket"]),
                        yes_no(bool(o.get("demo")), _)])

    maintenance: Rows = []
    for m in data.get("maintenance") or []:
        maintenance.append([m["id"], m["site"], _clean(m["name"]), _opt_clean(m["device"]),
                            parse_time(m["started_at"]), parse_time(m["ended_at"]), _seconds(m["seconds"]),
                            _opt_clean(m["reason"]), _opt_clean(m["created_by"])])

    gaps: Rows = [[parse_time(g["from"]), parse_time(g["to"]), _seconds(g["seconds"])]
                  for g in completeness.get("gaps") or []]
    daily: Rows = [[_day(d["day"]), *(_rate(d.get(t)) for t in TIERS)] for d in data.get("daily") or []]
    monthly: Rows = [[m["month"], *(_rate(m.get(t)) for t in TIERS)] for m in data.get("monthly") or []]

    rate_headers = [tiers[t] for t in TIERS]
    return {
        "summary": ([_("Tier"), _("Rate"), _("Target"), _("Assessment"), _("Links"), _("Links with a rate"),
                     _("Links below target"), _("Mean link rate"), _("Up (s)"), _("Down (s)")], summary),
        "ranking": ([_("Position"), _("Province code"), _("Province name"), _("Own link rate"), _("Assessment"),
                     _("Subtree rate"), _("Links"), _("Previous position"), _("Position change"),
                     _("Previous own link rate"), _("Own link rate change"), _("Previous subtree rate")], ranking),
        "drilldown": ([_("Province code"), _("Province name"), _("Site code"), _("Site name"), _("Parent code"),
                       _("Tier"), _("Rate"), _("Target"), _("Assessment"), _("Up (s)"), _("Down (s)"),
                       _("Number of outages"), _("Longest outage (s)"), _("Outage time (s)")], drilldown),
        "outages": ([_("ID"), _("Site code"), _("Site name"), _("Province code"), _("Province name"), _("Tier"),
                     _("Device"), _("Status"), _("Cause"), _("Start"), _("End"), _("Duration (s)"),
                     _("In period (s)"), _("Flaps"), _("Ticket"), _("Demo data")], outages),
        "maintenance": ([_("ID"), _("Site code"), _("Site name"), _("Device"), _("Start"), _("End"),
                         _("Duration (s)"), _("Reason"), _("Planned by")], maintenance),
        "poller_gaps": ([_("Start"), _("End"), _("Duration (s)")], gaps),
        "daily": ([_("Day"), *rate_headers], daily),
        "monthly": ([_("Month"), *rate_headers], monthly),
    }


def sheet_name(title: str) -> str:
    """A valid Excel sheet name: no []:*?/\\, at most 31 characters, not empty."""
    return _SHEET_FORBIDDEN.sub(" ", title).strip("' ")[:31] or "Sheet"


# --------------------------------------------------------------------------------------------------
# XLSX


def _display_width(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, dt.datetime):
        return 19
    if isinstance(value, dt.date):
        return 10
    if isinstance(value, Rate | RateChange):
        return 9
    if isinstance(value, float):
        return len(f"{value:,.0f}")
    text = str(value)
    return sum(2 if ord(c) >= 0x2E80 else 1 for c in text)


def _fixed_zip_time(data: Mapping[str, Any]) -> tuple[int, int, int, int, int, int]:
    """The report's generation time (Asia/Shanghai) as a zip entry time: the same data, the same bytes."""
    t = parse_time(data.get("generated_at")) or dt.datetime(1980, 1, 1, tzinfo=SHANGHAI)
    t = max(t, dt.datetime(1980, 1, 1, tzinfo=SHANGHAI))
    return (t.year, t.month, t.day, t.hour, t.minute, t.second)


def render_xlsx(data: Mapping[str, Any], locale: str = "zh_CN") -> bytes:
    """The report as an XLSX workbook, one sheet per section (see :func:`section_rows`).

    Rates are the unrounded fractions formatted as percentages, seconds are numbers, times are
    Excel datetimes in Asia/Shanghai time, an undefined rate is an empty cell."""
    _ = translator(locale)
    sections = section_rows(data, _)
    titles = section_titles(_)
    return write_workbook(data, _("Monthly connectivity assessment report"),
                          [(titles[key], *sections[key], None) for key in SECTIONS])


def write_workbook(data: Mapping[str, Any], title: str,
                   sheets: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]], Sequence[float] | None]],
                   ) -> bytes:
    """An XLSX of (sheet title, headers, rows, column widths or None to size them from the content):
    bold frozen header row, cells typed by :func:`_xlsx_cell`, file times from ``generated_at`` (the
    same data gives the same bytes)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    generated = parse_time(data.get("generated_at"))
    if generated is not None:
        wb.properties.created = generated.astimezone(dt.UTC).replace(tzinfo=None)
    wb.properties.title = title
    bold = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="EEF2F7")
    wrap = Alignment(vertical="top", wrap_text=True)
    used: set[str] = set()
    for sheet_title, headers, rows, fixed in sheets:
        name = sheet_name(sheet_title)
        while name.lower() in used:  # translations could collide once truncated
            name = name[:28] + f"~{len(used)}"
        used.add(name.lower())
        ws = wb.create_sheet(name)
        if fixed is not None:
            widths = [fixed[i] if i < len(fixed) else 14 for i in range(len(headers))]
        else:
            widths = [_display_width(h) for h in headers]
            for row in rows[:2000]:  # a sample is enough to size the columns
                for i, value in enumerate(row):
                    if i < len(widths):
                        widths[i] = max(widths[i], _display_width(value))
                    else:
                        widths.append(_display_width(value))
            widths = [min(max(w + 2, 8), 60) for w in widths]
        for i, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = w
        ws.freeze_panes = "A2"
        header_cells = []
        for h in headers:
            c = WriteOnlyCell(ws, value=h)
            c.font, c.fill, c.alignment = bold, header_fill, wrap
            header_cells.append(c)
        ws.append(header_cells)
        for row in rows:
            ws.append([_xlsx_cell(ws, value) for value in row])
    buf = io.BytesIO()
    wb.save(buf)
    return _normalize_zip(buf.getvalue(), _fixed_zip_time(data), generated)


def _xlsx_cell(ws: Any, value: Any) -> Any:
    """A value as a write-only cell with its number format (or as itself when it needs none)."""
    from openpyxl.cell import WriteOnlyCell

    fmt = None
    if isinstance(value, RateChange):
        value, fmt = float(value), RATE_CHANGE_FORMAT
    elif isinstance(value, Rate):
        value, fmt = float(value), RATE_FORMAT
    elif isinstance(value, dt.datetime):
        value, fmt = value.astimezone(SHANGHAI).replace(tzinfo=None), DATETIME_FORMAT  # Excel has no time zones
    elif isinstance(value, dt.date):
        fmt = DATE_FORMAT
    elif isinstance(value, float):
        fmt = SECONDS_FORMAT
    elif isinstance(value, str) and value.startswith("="):
        c = WriteOnlyCell(ws, value=value)
        c.data_type = "s"  # text from the data, never a formula
        return c
    else:
        return value
    c = WriteOnlyCell(ws, value=value)
    c.number_format = fmt
    return c


def _normalize_zip(raw: bytes, when: tuple[int, int, int, int, int, int], generated: dt.datetime | None) -> bytes:
    """Repack an XLSX with fixed entry times and 'modified' = 'created', so that it depends on the data only."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml" and generated is not None:
                stamp = generated.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
                content = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                                 rb"\g<1>" + stamp + rb"\g<2>", content)
            entry = zipfile.ZipInfo(info.filename, date_time=when)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = info.external_attr
            dst.writestr(entry, content)
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# CSV


def csv_value(value: Any) -> str:
    """A cell as CSV text: rates and seconds as ``repr(float)`` (exact), times ISO 8601 with offset,
    empty for None; text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, dt.datetime):
        return value.astimezone(SHANGHAI).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def render_csv_zip(data: Mapping[str, Any], locale: str = "zh_CN") -> bytes:
    """The report as a ZIP of UTF-8 CSV files (with BOM), one per section: ``<section>.csv``."""
    _ = translator(locale)
    sections = section_rows(data, _)
    when = _fixed_zip_time(data)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in SECTIONS:
            headers, rows = sections[key]
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow([csv_value(h) for h in headers])
            writer.writerows([csv_value(v) for v in row] for row in rows)
            entry = zipfile.ZipInfo(f"{key}.csv", date_time=when)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            zf.writestr(entry, text.getvalue().encode("utf-8-sig"))
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# HTML

Cell = str | tuple[str, str]  # text, or (text, CSS class)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], *, numeric: Iterable[int] = (),
           css: str = "", widths: Sequence[float] = (), nowrap: Iterable[int] = ()) -> str:
    """A table with a repeated header row; cell text is escaped, a newline in it breaks the line.

    ``widths``: column widths in percent (fixed layout, so that tables of a series line up)."""
    num, keep = set(numeric), set(nowrap)
    head = "".join(f'<th class="num">{esc(h)}</th>' if i in num else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            text, cls = (c, "") if isinstance(c, str) else c
            classes = " ".join(x for x in ("num" if i in num else "", "nowrap" if i in keep else "", cls) if x)
            content = esc(text).replace("\n", "<br>")
            cells.append(f'<td class="{classes}">{content}</td>' if classes else f"<td>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    classes = " ".join(x for x in (css, "fixed" if widths else "") if x)
    cls_attr = f' class="{classes}"' if classes else ""
    cols = ("<colgroup>" + "".join(f'<col style="width: {w:g}%">' for w in widths) + "</colgroup>") if widths else ""
    return (f"<table{cls_attr}>{cols}<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body)
            + "\n</tbody></table>")


def _css_string(text: str) -> str:
    """A CSS string literal."""
    text = _CONTROL.sub("", text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ")
    return '"' + text.replace("<", "\\3c ").replace(">", "\\3e ") + '"'


def _page_counter_content(template: str) -> str:
    """CSS ``content`` for a "Page %(page)s of %(pages)s" message."""
    out = []
    for part in re.split(r"(%\((?:page|pages)\)s)", template):
        if part == "%(page)s":
            out.append("counter(page)")
        elif part == "%(pages)s":
            out.append("counter(pages)")
        elif part:
            out.append(_css_string(part))
    return " ".join(out)


CSS = """
@page {
  size: A4 portrait;
  margin: 18mm 14mm 18mm 14mm;
  font-family: 'Noto Sans CJK SC', 'Noto Sans CJK', sans-serif;
  @top-left { content: @HEADER@; font-size: 7.5pt; color: #666; }
  @top-right { content: @HEADER_RIGHT@; font-size: 7.5pt; color: #666; }
  @bottom-center { content: @FOOTER@; font-size: 8pt; color: #666; }
}
@page :first { @top-left { content: none; } @top-right { content: none; } }
html { font-family: 'Noto Sans CJK SC', 'Noto Sans CJK', sans-serif; font-size: 9.5pt; color: #222;
       line-height: 1.35; }
body { margin: 0; }
@media screen { body { max-width: 190mm; margin: 1.5em auto; padding: 0 1em; } }
h1 { font-size: 20pt; margin: 0 0 2pt; color: #1f3f6a; }
.subtitle { font-size: 13pt; margin: 0 0 10pt; color: #1f3f6a; }
h2 { font-size: 14pt; color: #1f3f6a; border-bottom: 1.5pt solid #1f5fa8; padding-bottom: 2pt;
     margin: 16pt 0 6pt; break-after: avoid; }
h3 { font-size: 11pt; margin: 10pt 0 4pt; break-after: avoid; }
section.page { break-before: page; }
section.page > h2:first-child { margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0 8pt; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
th, td { border: 0.5pt solid #b8bec6; padding: 2pt 4pt; text-align: left; vertical-align: top; }
th { background: #eef2f7; font-weight: bold; }
.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.small { font-size: 7.5pt; }
table.small th, table.small td { padding: 1.5pt 2.5pt; }
th.num { white-space: normal; }
.nowrap { white-space: nowrap; }
table.fixed { table-layout: fixed; }
td { overflow-wrap: break-word; }
table.meta { width: auto; }
table.meta th { width: 30mm; }
.met { color: #2e7d32; }
.missed { color: #c62828; font-weight: bold; }
.notice { border: 1pt solid #c62828; background: #fdecea; color: #8e1b1b; padding: 5pt 8pt; margin: 6pt 0;
          font-weight: bold; }
.note { color: #555; font-size: 8.5pt; margin: 2pt 0 6pt; }
.chart { margin: 6pt 0 10pt; break-inside: avoid; }
.chart svg { max-width: 100%; height: auto; }
.empty { color: #555; font-style: italic; }
"""


def _met_cell(met: bool | None, _: Translator) -> Cell:
    label = met_label(met, _)
    if label is None:
        return DASH
    return (label, "met" if met else "missed")


def _open_section(anchor: str, number: int, title: str, *, new_page: bool) -> str:
    cls = ' class="page"' if new_page else ""
    return f'<section id="{anchor}"{cls}><h2>{number}. {esc(title)}</h2>'


def _para(text: str, css: str) -> str:
    return f'<p class="{css}">{esc(text)}</p>'


def _heading(text: str) -> str:
    return f"<h3>{esc(text)}</h3>"


def render_html(data: Mapping[str, Any], locale: str = "zh_CN") -> str:
    """The report as one self-contained, printable HTML document (inline CSS and SVG, no script)."""
    _ = translator(locale)
    tiers = tier_names(_)
    targets: Mapping[str, float] = data.get("targets") or {}
    names = province_names(data)
    title = _("Monthly connectivity assessment report")
    month = format_month(data["month"], _)
    scope = data.get("scope")
    scope_text = f"{scope['name']}（{scope['code']}）" if scope else _("National")
    period, completeness = data["period"], data["completeness"]
    parts: list[str] = []
    add = parts.append

    # Cover: title, month, period, generation, targets, notices, completeness.
    add(f"<header><h1>{esc(title)}</h1>")
    add(f'<p class="subtitle">{esc(month)} · {esc(scope_text)}</p>')
    if data.get("demo_data"):
        notice = _("Demo data: the history includes generated demonstration data. "
                   "These figures are not an assessment result.")
        add(f'<div class="notice">{esc(notice)}</div>')
    if data.get("state") == "draft":
        add(_para(_("Draft: the figures may change until the report is published."), "note"))
    period_text = f"{format_time(period['from'], seconds=False)} – {format_time(period['to'], seconds=False)}"
    if period.get("partial"):
        period_text += " " + _("(the month is not over yet; figures up to the end of the period)")
    meta: list[tuple[str, str]] = [
        (_("Month"), month),
        (_("Period"), period_text),
        (_("Time zone"), _("Beijing time (UTC+8)")),
        (_("Scope"), scope_text),
        (_("Generated at"), format_time(data["generated_at"])),
    ]
    if data.get("state"):
        state = state_names(_).get(data["state"], data["state"])
        if data.get("published_at"):
            state += f" ({format_time(data['published_at'])})"
        meta.append((_("State"), state))
    meta.append((_("Targets"), " · ".join(f"{tiers[t]} ≥ {format_rate(targets[t])}" for t in TIERS
                                          if t in targets)))
    gaps = completeness.get("gaps") or []
    meta.append((_("Data completeness"),
                 _("%(covered)s of the period covered by poll cycles; poller gaps: %(n)s, %(duration)s in total")
                 % {"covered": format_rate(completeness["covered"]), "n": len(gaps),
                    "duration": format_duration(completeness["gap_seconds"], _)}))
    add('<table class="meta"><tbody>')
    for label, value in meta:
        add(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>")
    add("</tbody></table>")
    definition = _("A link's rate is up time ÷ (up time + down time); maintenance windows, time while the site "
                   "above was down and poller gaps count in neither. A tier's rate pools the time of its links.")
    add(f'<p class="note">{esc(definition)}</p>')
    add("</header>")

    # 1. Tier summary.
    add(_open_section("tiers", 1, _("Tier summary"), new_page=False))
    rows: list[list[Cell]] = []
    for t in data["tiers"]:
        rows.append([tiers.get(t["tier"], t["tier"]), format_rate(t["rate"]), format_rate(t["target"]),
                     _met_cell(t["met"], _), str(t["links"]), str(t["links_with_rate"]), str(t["below_target"]),
                     format_rate(t["mean_rate"]), format_duration(t["down_seconds"], _)])
    total = data["total"]
    rows.append([(_("All links"), "total"), format_rate(total["rate"]), DASH, DASH, str(total["links"]),
                 str(total["links_with_rate"]), DASH, DASH, format_duration(total["down_seconds"], _)])
    add(_table([_("Tier"), _("Rate"), _("Target"), _("Assessment"), _("Links"), _("Links with a rate"),
                _("Links below target"), _("Mean link rate"), _("Down time")], rows, numeric=range(1, 9),
               nowrap=(0,)))
    add('<div class="chart">' + svg.tier_bar_chart(
        [(tiers.get(t["tier"], t["tier"]), t["rate"], t["target"]) for t in data["tiers"]],
        title=_("Rate per tier"), target_label=_("Target")) + "</div>")
    add("</section>")

    # 2. Province ranking.
    mp_target = targets.get("ministry_province")
    ranking = data.get("ranking") or []
    add(_open_section("ranking", 2, _("Province ranking"), new_page=True))
    note = _("Ranked by the rate of the ministry → province link; the subtree rate pools every link in the "
             "province.")
    add(f'<p class="note">{esc(note)}</p>')
    rows = []
    for r in ranking:
        met = meets_target(r["own_rate"], mp_target) if mp_target is not None else None
        rows.append([str(r["position"]), f"{r['name']}（{r['code']}）", format_rate(r["own_rate"]),
                     _met_cell(met, _), format_rate(r["subtree_rate"]), str(r["links"]),
                     DASH if r["previous_position"] is None else str(r["previous_position"]),
                     format_position_change(r["position_change"]),
                     format_rate_change(r["own_rate_change"], _)])
    if rows:
        add(_table([_("Position"), _("Province name"), _("Own link rate"), _("Assessment"), _("Subtree rate"),
                    _("Links"), _("Previous position"), _("Position change"), _("Own link rate change")],
                   rows, numeric=(0, 2, 4, 5, 6, 7, 8), css="small"))
        if mp_target is not None:
            add('<div class="chart">' + svg.ranking_chart(
                [(r["name"], r["own_rate"]) for r in ranking], title=_("Province ranking"),
                target=mp_target, target_label=_("Target")) + "</div>")
    else:
        add(_para(_("None in this period."), "empty"))
    add("</section>")

    # 3. Trends.
    tier_target_list = [targets.get(t) for t in TIERS]
    add(_open_section("trends", 3, _("Trends"), new_page=True))
    daily = data.get("daily") or []
    add(_heading(_("Daily rates this month")))
    add('<div class="chart">' + svg.line_chart(
        [str(int(d["day"][8:10])) if d["day"][8:10].isdigit() else d["day"] for d in daily],
        [(tiers[t], [d.get(t) for d in daily]) for t in TIERS], title=_("Daily rates this month"),
        targets=tier_target_list, target_label=_("Target"), height=230) + "</div>")
    add(_table([_("Day"), *(tiers[t] for t in TIERS)],
               ([d["day"], *(format_rate(d.get(t)) for t in TIERS)] for d in daily), numeric=(1, 2, 3),
               css="small"))
    monthly = data.get("monthly") or []
    add(_heading(_("The last 12 months")))
    add('<div class="chart">' + svg.line_chart(
        [m["month"] for m in monthly], [(tiers[t], [m.get(t) for m in monthly]) for t in TIERS],
        title=_("The last 12 months"), targets=tier_target_list, target_label=_("Target")) + "</div>")
    add(_table([_("Month"), *(tiers[t] for t in TIERS)],
               ([m["month"], *(format_rate(m.get(t)) for t in TIERS)] for m in monthly), numeric=(1, 2, 3),
               css="small"))
    add("</section>")

    # 4. Outages.
    statuses, causes = status_names(_), cause_names(_)
    everything = data.get("outages") or []
    # The printed list holds the links' own outages; the records of sites that were unreachable because
    # a site above them failed follow from that outage (tens of thousands in a national month) and
    # stay in the XLSX and CSV files.
    outages = [o for o in everything if o.get("cause") != "parent"]
    add(_open_section("outages", 4, _("Outages"), new_page=True))
    if len(everything) > len(outages):
        note = _("%(m)s further records are sites that were unreachable because a site above them failed; they "
                 "count under that outage and are listed in the XLSX and CSV files.") % {
            "m": len(everything) - len(outages)}
        add(f'<p class="note">{esc(note)}</p>')
    if outages:
        note = _("%(n)s outages overlapping the period; “In period” is the part of each outage inside the "
                 "period.") % {"n": len(outages)}
        add(f'<p class="note">{esc(note)}</p>')
        show_demo = any(o.get("demo") for o in outages)
        headers = [_("Site / province"), _("Tier"), _("Device"), _("Status"), _("Cause"), _("Start"),
                   _("End"), _("Duration"), _("In period"), _("Flaps"), _("Ticket")]
        if show_demo:
            headers.append(_("Demo"))
        rows = []
        for o in outages:
            row: list[Cell] = [f"{o['name']}（{o['site']}）\n{names.get(o['province'], o['province'])}",
                               tiers.get(o["tier"], o["tier"]), o["device"] or DASH,
                               statuses.get(o["status"], o["status"]), causes.get(o["cause"], o["cause"]),
                               format_time(o["started_at"], seconds=False),
                               format_time(o["ended_at"], seconds=False) if o["ended_at"] else _("ongoing"),
                               format_duration(o["duration_seconds"], _),
                               format_duration(o["in_period_seconds"], _), str(o["flaps"]), o["ticket"] or DASH]
            if show_demo:
                row.append(yes_no(bool(o.get("demo")), _))
            rows.append(row)
        widths = [14, 7, 9, 6.5, 7, 9, 9, 9, 9, 4, 11.5] + ([5] if show_demo else [])
        add(_table(headers, rows, numeric=(7, 8, 9), css="small", widths=widths))
    else:
        add(_para(_("No outages recorded."), "empty"))
    add("</section>")

    # 5. Maintenance windows.
    maintenance = data.get("maintenance") or []
    add(_open_section("maintenance", 5, _("Maintenance windows"), new_page=False))
    if maintenance:
        add(_table([_("Site"), _("Device"), _("Start"), _("End"), _("Duration"), _("Reason"), _("Planned by")],
                   ([f"{m['name']}（{m['site']}）", m["device"] or DASH, format_time(m["started_at"]),
                     format_time(m["ended_at"]), format_duration(m["seconds"], _), m["reason"] or DASH,
                     m["created_by"] or DASH] for m in maintenance), numeric=(4,), css="small"))
    else:
        add(_para(_("None in this period."), "empty"))
    add("</section>")

    # 6. Poller gaps.
    add(_open_section("poller-gaps", 6, _("Poller gaps"), new_page=False))
    add(_para(_("Periods without poll cycles: they count neither as up nor as down."), "note"))
    if gaps:
        add(_table([_("Start"), _("End"), _("Duration")],
                   ([format_time(g["from"]), format_time(g["to"]), format_duration(g["seconds"], _)] for g in gaps),
                   numeric=(2,), css="small"))
    else:
        add(_para(_("None in this period."), "empty"))
    add("</section>")

    # 7. Drill-down per province.
    add(_open_section("drilldown", 7, _("Drill-down by province"), new_page=True))
    provinces = _provinces(data)
    if not provinces:
        add(_para(_("None in this period."), "empty"))
    for p in provinces:
        own = p.get("own")
        heading = f"{p['name']}（{p['code']}）"
        if own:
            heading += f" · {tiers['ministry_province']} {format_rate(own['rate'])}"
        add(f"<h3>{esc(heading)}</h3>")
        rows = []
        for link in _province_links(p):
            target = targets.get(link["tier"])
            met = meets_target(link["rate"], target) if target is not None else None
            rows.append([link["site"], link["name"], tiers.get(link["tier"], link["tier"]), format_rate(link["rate"]),
                         _met_cell(met, _), format_duration(link["down_seconds"], _), str(link["outages"]),
                         format_duration(link["longest_outage_seconds"], _)])
        add(_table([_("Site code"), _("Site name"), _("Tier"), _("Rate"), _("Assessment"), _("Down time"),
                    _("Number of outages"), _("Longest outage")], rows, numeric=(3, 5, 6, 7), css="small",
                   widths=(10, 22, 13, 10, 9, 13, 10, 13)))
    add("</section>")

    return html_document(parts, title=f"{title} {month}", header=f"{title} · {month}", header_right=scope_text,
                         locale=locale, generated_at=data.get("generated_at"), _=_)


def html_document(parts: Sequence[str], *, title: str, header: str, header_right: str, locale: str,
                  generated_at: str | None, _: Translator, extra_css: str = "") -> str:
    """A report's standalone HTML: the A4 page CSS with running header and page counter, then ``parts``."""
    css = (CSS.replace("@HEADER@", _css_string(header)).replace("@HEADER_RIGHT@", _css_string(header_right))
           .replace("@FOOTER@", _page_counter_content(_("Page %(page)s of %(pages)s")))) + extra_css
    lang = "zh-CN" if locale == "zh_CN" else "en"
    generated = parse_time(generated_at)
    created = f'<meta name="dcterms.created" content="{esc(generated.isoformat())}">' if generated else ""
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{esc(title)}</title>\n"
            f'<meta name="generator" content="EcoCloud Ops">\n{created}\n'
            f"<style>{css}</style>\n</head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


# --------------------------------------------------------------------------------------------------
# PDF


def render_pdf(data: Mapping[str, Any], locale: str = "zh_CN") -> bytes:
    """The report as PDF: :func:`render_html` laid out by WeasyPrint (A4, CJK font embedded).

    Slow for a national report (about a minute for ~170 pages): call it from a background job."""
    return pdf_from_html(render_html(data, locale))


def pdf_from_html(html: str) -> bytes:
    """WeasyPrint's PDF of a standalone HTML document (A4, CJK font embedded)."""
    import weasyprint

    pdf = weasyprint.HTML(string=html).write_pdf()
    if pdf is None:  # write_pdf without a target returns the bytes
        raise RuntimeError("WeasyPrint returned no PDF")
    return bytes(pdf)
