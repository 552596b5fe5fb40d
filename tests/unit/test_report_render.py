"""Renderers of the monthly connectivity assessment report: HTML, PDF, XLSX and CSV agree with the data."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from openpyxl import load_workbook

from ecocloud_ops.network.rates import LinkTime, aggregate, format_rate, meets_target
from ecocloud_ops.reports import svg
from ecocloud_ops.reports.render import (
    SECTIONS,
    format_duration,
    render_csv_zip,
    render_html,
    render_pdf,
    render_xlsx,
    section_rows,
    section_titles,
    tier_names,
    translator,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TIERS = ("ministry_province", "province_city", "city_county")
TARGETS = {"ministry_province": 0.99, "province_city": 0.98, "city_county": 0.95}
MONTH_SECONDS = 31 * 86400.0
PDFTOTEXT = "/usr/bin/pdftotext"


# --------------------------------------------------------------------------------------------------
# Sample data, built like reports/builder.py builds it: figures computed from up/down seconds.


def _link(site: str, name: str, parent: str, tier: str, down: float, *, up: float | None = None, outages: int = 0,
          longest: float = 0.0) -> dict[str, Any]:
    up = MONTH_SECONDS - down if up is None else up
    return {"site": site, "name": name, "parent": parent, "tier": tier, "rate": LinkTime(up, down).rate,
            "up_seconds": up, "down_seconds": down, "outages": outages, "longest_outage_seconds": longest,
            "downtime_seconds": down}


def _utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> str:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC).isoformat()


def sample_data() -> dict[str, Any]:
    provinces = {
        "110000": {"code": "110000", "name": "北京市",
                   "own": _link("110000", "北京市", "000000", "ministry_province", 1200.0, outages=1, longest=1200.0),
                   "links": [_link("110101", "东城区", "110000", "province_city", 300.5, outages=1, longest=300.5),
                             # never observed: undefined rate
                             _link("110102", "西城区", "110000", "province_city", 0.0, up=0.0)]},
        "130000": {"code": "130000", "name": "河北省",
                   "own": _link("130000", "河北省", "000000", "ministry_province", 65500.0, outages=3,
                                longest=30000.0),
                   "links": [_link("130100", "石家庄市", "130000", "province_city", 9000.25, outages=2, longest=7000.0),
                             _link("130102", "长安区", "130100", "city_county", 150000.0, outages=4, longest=90000.0),
                             _link("130104", "桥西区", "130100", "city_county", 0.0)]},
        "440000": {"code": "440000", "name": "广东省",
                   "own": _link("440000", "广东省", "000000", "ministry_province", 4000.0, outages=1, longest=4000.0),
                   "links": [_link("440100", "广州市", "440000", "province_city", 61.0, outages=1, longest=61.0),
                             _link("440103", "荔湾区", "440100", "city_county", 7507.0, outages=2, longest=7507.0)]},
    }
    links = [link for p in provinces.values() for link in [p["own"], *p["links"]]]

    def times(items: list[dict[str, Any]]) -> list[LinkTime]:
        return [LinkTime(x["up_seconds"], x["down_seconds"]) for x in items]

    tiers = []
    for tier in TIERS:
        agg = aggregate(times([x for x in links if x["tier"] == tier]), TARGETS[tier])
        tiers.append({"tier": tier, "rate": agg.rate, "target": TARGETS[tier],
                      "met": meets_target(agg.rate, TARGETS[tier]), "links": agg.links,
                      "links_with_rate": agg.links_with_rate, "below_target": agg.below_target,
                      "mean_rate": agg.mean_rate, "up_seconds": agg.up, "down_seconds": agg.down})
    total = aggregate(times(links))
    previous = {"110000": (2, 0.9990, 0.9985), "130000": (3, 0.9801, 0.9702), "440000": (None, None, None)}
    ranked = sorted(provinces.values(), key=lambda p: -(p["own"]["rate"] or 0))
    ranking = []
    for pos, p in enumerate(ranked, start=1):
        prev_pos, prev_own, prev_sub = previous[p["code"]]
        own_rate = p["own"]["rate"]
        ranking.append({"position": pos, "code": p["code"], "name": p["name"], "own_rate": own_rate,
                        "subtree_rate": aggregate(times([p["own"], *p["links"]])).rate,
                        "links": 1 + len(p["links"]), "previous_position": prev_pos,
                        "previous_own_rate": prev_own, "previous_subtree_rate": prev_sub,
                        "own_rate_change": None if prev_own is None else own_rate - prev_own,
                        "position_change": None if prev_pos is None else prev_pos - pos})
    outages = [
        {"id": 11, "site": "130102", "name": "长安区", "province": "130000", "tier": "city_county",
         "device": "ha-ca-r1", "status": "down", "cause": "own", "started_at": _utc(2026, 10, 30, 8, 0, 0),
         "ended_at": None, "duration_seconds": 129600.0, "in_period_seconds": 129600.0, "flaps": 2,
         "ticket": None, "demo": False},
        {"id": 7, "site": "440103", "name": "荔湾区", "province": "440000", "tier": "city_county",
         "device": "gd-lw-r1", "status": "down", "cause": "own", "started_at": _utc(2026, 10, 3, 1, 2, 3),
         "ended_at": _utc(2026, 10, 3, 3, 7, 10), "duration_seconds": 7507.0, "in_period_seconds": 7507.0,
         "flaps": 0, "ticket": "INC-2026-0042", "demo": True},
        {"id": 5, "site": "130104", "name": "桥西区", "province": "130000", "tier": "city_county",
         "device": "hb-qx-r1", "status": "unknown", "cause": "parent", "started_at": _utc(2026, 9, 30, 15, 0, 0),
         "ended_at": _utc(2026, 9, 30, 17, 0, 0), "duration_seconds": 7200.0, "in_period_seconds": 3600.0,
         "flaps": 1, "ticket": None, "demo": False},
    ]
    daily = []
    for i in range(31):
        day = {"day": f"2026-10-{i + 1:02d}"}
        for k, tier in enumerate(TIERS):
            day[tier] = 1.0 - ((i * 7 + k * 3) % 11) / 997.0
        daily.append(day)
    daily[4]["city_county"] = None
    daily[5]["city_county"] = None
    monthly = []
    for i in range(12):
        year, month = (2025, 11 + i) if i < 2 else (2026, i - 1)
        monthly.append({"month": f"{year}-{month:02d}",
                        **{t: 0.97 + ((i + k) % 5) / 173.0 for k, t in enumerate(TIERS)}})
    monthly[0]["province_city"] = None
    monthly[-1].update({t["tier"]: t["rate"] for t in tiers})
    return {
        "kind": "connectivity_assessment", "schema": 1, "month": "2026-10",
        "period": {"from": _utc(2026, 9, 30, 16), "to": _utc(2026, 10, 31, 16), "timezone": "Asia/Shanghai",
                   "seconds": MONTH_SECONDS, "partial": False},
        "generated_at": "2026-11-01T00:05:12.345678+00:00",
        "demo_data": True,
        "scope": None,
        "targets": dict(TARGETS),
        "tiers": tiers,
        "total": {"rate": total.rate, "links": total.links, "links_with_rate": total.links_with_rate,
                  "up_seconds": total.up, "down_seconds": total.down},
        "completeness": {"covered": (MONTH_SECONDS - 3900.0) / MONTH_SECONDS, "period_seconds": MONTH_SECONDS,
                         "gap_seconds": 3900.0,
                         "gaps": [{"from": _utc(2026, 10, 12, 2), "to": _utc(2026, 10, 12, 3, 5),
                                   "seconds": 3900.0}]},
        "ranking": ranking,
        "provinces": provinces,
        "outages": outages,
        "maintenance": [{"id": 3, "site": "130100", "name": "石家庄市", "device": None,
                         "started_at": _utc(2026, 10, 20, 14), "ended_at": _utc(2026, 10, 20, 18),
                         "seconds": 14400.0, "reason": "=更换核心交换机", "created_by": "zhangsan"}],
        "daily": daily,
        "monthly": monthly,
        "state": "draft",
        "published_at": None,
    }


def shanghai(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso).astimezone(SHANGHAI)


def link_rows(data: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(province, link) in drill-down order: provinces by code, own link first."""
    return [(p, link) for code in sorted(data["provinces"]) for p in [data["provinces"][code]]
            for link in [p["own"], *p["links"]]]


# --------------------------------------------------------------------------------------------------
# XLSX


def _sheets(xlsx: bytes) -> Any:
    return load_workbook(io.BytesIO(xlsx))


def _assert_rate_cell(cell: Any, expected: float | None) -> None:
    if expected is None:
        assert cell.value is None
    else:
        # the identical float (openpyxl reads a whole number such as 1.0 back as an int)
        assert isinstance(cell.value, int | float) and cell.value == expected
        assert cell.number_format == "0.00%"


def test_xlsx_agrees_with_the_data() -> None:
    data = sample_data()
    _ = translator("zh_CN")
    wb = _sheets(render_xlsx(data))
    titles = section_titles(_)
    assert wb.sheetnames == [titles[k] for k in SECTIONS]
    for ws in wb.worksheets:
        assert len(ws.title) <= 31 and not re.search(r"[\[\]:*?/\\]", ws.title)
        assert ws.freeze_panes == "A2"

    summary = wb[titles["summary"]]
    names = tier_names(_)
    for i, t in enumerate(data["tiers"], start=2):
        assert summary.cell(i, 1).value == names[t["tier"]]
        _assert_rate_cell(summary.cell(i, 2), t["rate"])
        _assert_rate_cell(summary.cell(i, 3), t["target"])
        assert summary.cell(i, 4).value == (_("Met") if t["met"] else _("Not met"))
        assert [summary.cell(i, c).value for c in (5, 6, 7)] == [t["links"], t["links_with_rate"], t["below_target"]]
        _assert_rate_cell(summary.cell(i, 8), t["mean_rate"])
        assert summary.cell(i, 9).value == t["up_seconds"] and summary.cell(i, 10).value == t["down_seconds"]
    _assert_rate_cell(summary.cell(5, 2), data["total"]["rate"])
    facts = {row[0].value: row[1] for row in summary.iter_rows(min_row=7) if row[0].value}
    _assert_rate_cell(facts[_("Data completeness")], data["completeness"]["covered"])
    assert facts[_("Poller gap time (s)")].value == data["completeness"]["gap_seconds"]
    assert facts[_("Period start")].value == shanghai(data["period"]["from"]).replace(tzinfo=None)
    assert facts[_("Period start")].number_format == "yyyy-mm-dd hh:mm:ss"
    generated = facts[_("Generated at")].value  # Excel keeps milliseconds
    assert abs(generated - shanghai(data["generated_at"]).replace(tzinfo=None)) < dt.timedelta(milliseconds=1)

    ranking = list(wb[titles["ranking"]].iter_rows(min_row=2))
    assert len(ranking) == len(data["ranking"])
    for row, r in zip(ranking, data["ranking"], strict=True):
        assert [row[0].value, row[1].value, row[2].value] == [r["position"], r["code"], r["name"]]
        _assert_rate_cell(row[3], r["own_rate"])
        _assert_rate_cell(row[5], r["subtree_rate"])
        assert row[7].value == r["previous_position"] and row[8].value == r["position_change"]
        _assert_rate_cell(row[9], r["previous_own_rate"])
        assert row[10].value == r["own_rate_change"]
        _assert_rate_cell(row[11], r["previous_subtree_rate"])

    drill = list(wb[titles["drilldown"]].iter_rows(min_row=2))
    expected_links = link_rows(data)
    assert len(drill) == len(expected_links)
    for row, (p, link) in zip(drill, expected_links, strict=True):
        assert [c.value for c in row[:5]] == [p["code"], p["name"], link["site"], link["name"], link["parent"]]
        assert row[5].value == names[link["tier"]]
        _assert_rate_cell(row[6], link["rate"])
        _assert_rate_cell(row[7], TARGETS[link["tier"]])
        assert [c.value for c in row[9:]] == [link["up_seconds"], link["down_seconds"], link["outages"],
                                              link["longest_outage_seconds"], link["downtime_seconds"]]
    assert any(link["rate"] is None for _p, link in expected_links)

    outages = list(wb[titles["outages"]].iter_rows(min_row=2))
    for row, o in zip(outages, data["outages"], strict=True):
        assert [row[0].value, row[1].value, row[3].value] == [o["id"], o["site"], o["province"]]
        assert row[9].value == shanghai(o["started_at"]).replace(tzinfo=None)
        assert row[9].number_format == "yyyy-mm-dd hh:mm:ss"
        assert row[10].value == (None if o["ended_at"] is None else shanghai(o["ended_at"]).replace(tzinfo=None))
        assert [row[11].value, row[12].value, row[13].value] == [o["duration_seconds"], o["in_period_seconds"],
                                                                 o["flaps"]]
        assert row[14].value == o["ticket"]

    maint = list(wb[titles["maintenance"]].iter_rows(min_row=2))
    assert maint[0][7].value == data["maintenance"][0]["reason"]  # "=..." stays text, never a formula
    assert maint[0][7].data_type == "s"

    daily = list(wb[titles["daily"]].iter_rows(min_row=2))
    for row, d in zip(daily, data["daily"], strict=True):
        assert row[0].value.date() == dt.date.fromisoformat(d["day"])
        for cell, tier in zip(row[1:], TIERS, strict=True):
            _assert_rate_cell(cell, d[tier])
    monthly = list(wb[titles["monthly"]].iter_rows(min_row=2))
    for row, m in zip(monthly, data["monthly"], strict=True):
        assert row[0].value == m["month"]
        for cell, tier in zip(row[1:], TIERS, strict=True):
            _assert_rate_cell(cell, m[tier])


# --------------------------------------------------------------------------------------------------
# CSV


def _read_csv_zip(blob: bytes) -> dict[str, list[list[str]]]:
    out = {}
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        for name in zf.namelist():
            raw = zf.read(name)
            assert raw.startswith(b"\xef\xbb\xbf"), name  # BOM, for Excel
            out[name] = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return out


def _rate_text(text: str) -> float | None:
    return None if text == "" else float(text)


def test_csv_zip_agrees_with_the_data() -> None:
    data = sample_data()
    files = _read_csv_zip(render_csv_zip(data))
    assert list(files) == [f"{k}.csv" for k in SECTIONS]

    summary = files["summary.csv"]
    for row, t in zip(summary[1:4], data["tiers"], strict=True):
        assert _rate_text(row[1]) == t["rate"] and _rate_text(row[7]) == t["mean_rate"]
        assert float(row[8]) == t["up_seconds"] and float(row[9]) == t["down_seconds"]

    drill = files["drilldown.csv"][1:]
    for row, (p, link) in zip(drill, link_rows(data), strict=True):
        assert row[:5] == [p["code"], p["name"], link["site"], link["name"], link["parent"]]
        assert _rate_text(row[6]) == link["rate"]  # repr(float) round-trips exactly
        assert float(row[10]) == link["down_seconds"] and int(row[11]) == link["outages"]
    assert len(drill) == len(link_rows(data))

    for row, r in zip(files["ranking.csv"][1:], data["ranking"], strict=True):
        assert _rate_text(row[3]) == r["own_rate"] and _rate_text(row[10]) == r["own_rate_change"]

    for row, o in zip(files["outages.csv"][1:], data["outages"], strict=True):
        assert row[9].endswith("+08:00")
        assert dt.datetime.fromisoformat(row[9]) == dt.datetime.fromisoformat(o["started_at"])
        assert row[10] == ("" if o["ended_at"] is None else shanghai(o["ended_at"]).isoformat())
        assert row[14] == (o["ticket"] or "")
    gap = files["poller_gaps.csv"][1]
    g = data["completeness"]["gaps"][0]
    assert dt.datetime.fromisoformat(gap[0]) == dt.datetime.fromisoformat(g["from"]) and float(gap[2]) == g["seconds"]
    # Text a spreadsheet would execute is defused.
    assert files["maintenance.csv"][1][7] == "'" + data["maintenance"][0]["reason"]
    for row, d in zip(files["daily.csv"][1:], data["daily"], strict=True):
        assert row[0] == d["day"] and [_rate_text(x) for x in row[1:]] == [d[t] for t in TIERS]
    for row, m in zip(files["monthly.csv"][1:], data["monthly"], strict=True):
        assert row[0] == m["month"] and [_rate_text(x) for x in row[1:]] == [m[t] for t in TIERS]


def _same(xlsx_value: Any, text: str) -> bool:
    """A cell read back from the XLSX and the same cell in the CSV hold the same value."""
    if xlsx_value is None:
        return text == ""
    if isinstance(xlsx_value, dt.datetime):
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            assert parsed.utcoffset() == dt.timedelta(hours=8)
        return abs(parsed.replace(tzinfo=None) - xlsx_value) < dt.timedelta(milliseconds=1)
    if isinstance(xlsx_value, bool):
        return str(xlsx_value) == text
    if isinstance(xlsx_value, int | float):  # openpyxl reads 3.0 back as 3
        return float(text) == xlsx_value
    return text == xlsx_value or (xlsx_value.startswith("=") and text == "'" + xlsx_value)


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_csv_and_xlsx_hold_the_same_rows(locale: str) -> None:
    data = sample_data()
    wb = _sheets(render_xlsx(data, locale))
    files = _read_csv_zip(render_csv_zip(data, locale))
    for key, ws in zip(SECTIONS, wb.worksheets, strict=True):
        rows = files[f"{key}.csv"]
        sheet = [[c for c in row] for row in ws.iter_rows(values_only=True)]
        assert len(sheet) == len(rows), key
        for xrow, crow in zip(sheet, rows, strict=True):
            xrow = list(xrow)
            while xrow and xrow[-1] is None:  # the sheet is rectangular, CSV rows are not
                xrow.pop()
            assert len(xrow) <= len(crow), key
            for x, c in zip(xrow + [None] * (len(crow) - len(xrow)), crow, strict=True):
                if isinstance(x, dt.datetime) and len(c) == 10:  # a day
                    assert x.date().isoformat() == c
                else:
                    assert _same(x, c), (key, x, c)


def test_section_rows_and_outputs_are_deterministic() -> None:
    data = sample_data()
    _ = translator("en")
    sections = section_rows(data, _)
    assert list(sections) == list(SECTIONS)
    for headers, rows in sections.values():
        assert all(isinstance(h, str) and h for h in headers)
        assert all(len(r) in (0, 2, len(headers)) for r in rows)
    assert render_xlsx(data) == render_xlsx(data)
    assert render_csv_zip(data) == render_csv_zip(data)


# --------------------------------------------------------------------------------------------------
# HTML and PDF


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run([PDFTOTEXT, "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_pdf_has_the_chinese_headings_and_figures(tmp_path: Path) -> None:
    data = sample_data()
    pdf = render_pdf(data)
    assert pdf.startswith(b"%PDF-")
    text = _pdf_text(pdf, tmp_path)
    for heading in ("网络连通率月度考核报告", "分层级汇总", "省级排名", "趋势", "中断记录", "维护窗口",
                    "轮询中断时段", "分省逐级明细", "数据完整性", "演示数据", "部→省", "达标"):
        assert heading in text, heading
    mp = data["tiers"][0]
    assert format_rate(mp["rate"]) == "99.12%" and "99.12%" in text
    for t in data["tiers"]:
        assert format_rate(t["rate"]) in text
    for r in data["ranking"]:
        assert r["name"] in text and format_rate(r["own_rate"]) in text
    assert "INC-2026-0042" in text and "持续中" in text
    assert format_duration(data["outages"][1]["duration_seconds"], translator("zh_CN")) == "2小时05分"
    assert "2小时05分" in text
    assert re.search(r"第 1 页，共 \d+ 页", text)


def test_english_rendering() -> None:
    data = sample_data()
    html = render_html(data, "en")
    for heading in ("Monthly connectivity assessment report", "Tier summary", "Province ranking", "Trends",
                    "Outages", "Maintenance windows", "Poller gaps", "Drill-down by province", "Data completeness",
                    "Ministry → province", "Own link", "Not met", "further records are sites that were unreachable"):
        assert heading in html, heading
    # Upstream-caused records are counted in the printed report and listed in the files.
    parent = [o for o in data["outages"] if o["cause"] == "parent"]
    assert parent and f"{len(parent)} further records" in html
    sheet = _sheets(render_xlsx(data, "en"))["Outages"]
    assert sum(c.value == "Status unknown" for row in sheet.iter_rows() for c in row) == len(parent)
    assert "网络连通率月度考核报告" not in html
    assert format_duration(7507, translator("en")) == "2 h 05 min"
    assert '<html lang="en">' in html
    wb = _sheets(render_xlsx(data, "en"))
    assert wb.sheetnames == ["Summary", "Province ranking", "Drill-down", "Outages", "Maintenance windows",
                             "Poller gaps", "Daily trend", "Monthly trend"]


def test_html_is_self_contained_and_has_every_section_in_order() -> None:
    data = sample_data()
    html = render_html(data)
    assert html.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in html
    assert "<script" not in html.lower() and "url(" not in html and "src=" not in html and "href=" not in html
    assert "size: A4 portrait" in html and "counter(pages)" in html
    positions = [html.index(f'id="{anchor}"') for anchor in
                 ("tiers", "ranking", "trends", "outages", "maintenance", "poller-gaps", "drilldown")]
    assert positions == sorted(positions)
    assert html.count("<thead>") >= 10
    for p in data["provinces"].values():
        assert f"{p['name']}（{p['code']}）" in html
        for link in p["links"]:
            assert link["name"] in html


def test_html_escapes_names_from_the_data() -> None:
    data = sample_data()
    evil = '<script>alert("x")</script>'
    data["provinces"]["440000"]["links"][1]["name"] = evil
    data["outages"][0]["name"] = evil
    data["ranking"][0]["name"] = "A&B <b>"
    data["maintenance"][0]["reason"] = "<img src=x onerror=alert(1)>"
    html = render_html(data, "en")
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "A&amp;B &lt;b&gt;" in html
    for chart in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ET.fromstring(chart)


def test_provincial_report_shows_only_its_provinces() -> None:
    data = sample_data()
    data["scope"] = {"code": "130000", "name": "河北省"}
    data["provinces"] = {"130000": data["provinces"]["130000"]}
    data["outages"] = [o for o in data["outages"] if o["province"] == "130000"]
    full = sample_data()
    html = render_html(data)
    drill = html[html.index('id="drilldown"'):]
    assert "河北省（130000）" in drill and "石家庄市" in drill
    for code in ("110000", "440000"):
        for link in full["provinces"][code]["links"]:
            assert link["name"] not in html
    rows = section_rows(data, translator("en"))["drilldown"][1]
    assert {r[0] for r in rows} == {"130000"}


# --------------------------------------------------------------------------------------------------
# SVG charts


def test_charts_are_well_formed_svg() -> None:
    data = sample_data()
    charts = re.findall(r"<svg.*?</svg>", render_html(data), flags=re.S)
    assert len(charts) == 4  # tiers, ranking, daily, monthly
    for chart in charts:
        root = ET.fromstring(chart)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "Noto Sans CJK SC" in root.attrib["font-family"]
    ns = {"s": "http://www.w3.org/2000/svg"}
    tier_chart = ET.fromstring(charts[0])
    assert len(tier_chart.findall("s:rect", ns)) == sum(t["rate"] is not None for t in data["tiers"])
    dashed = [e for e in tier_chart.findall("s:line", ns) if "stroke-dasharray" in e.attrib]
    assert len(dashed) == len(data["tiers"]) + 1  # a target line per bar, and the legend
    texts = [e.text for e in tier_chart.iter("{http://www.w3.org/2000/svg}text")]
    assert format_rate(data["tiers"][0]["rate"]) in texts
    ranking_chart = ET.fromstring(charts[1])
    assert len(ranking_chart.findall("s:rect", ns)) == len(data["ranking"])


def test_line_chart_breaks_at_missing_values() -> None:
    values: list[float | None] = [0.99, 0.985, None, 0.97, None, None, 0.995]
    chart = ET.fromstring(svg.line_chart([str(i + 1) for i in range(len(values))], [("<a&b>", values)],
                                         title='"t" <x>', targets=[0.95], target_label="Target"))
    ns = {"s": "http://www.w3.org/2000/svg"}
    polylines = chart.findall("s:polyline", ns)
    assert len(polylines) == 1 and len(polylines[0].attrib["points"].split()) == 2
    assert len(chart.findall("s:circle", ns)) == sum(v is not None for v in values)
    assert "<a&b>" in [e.text for e in chart.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize("values", [[0.999, 0.995], [0.99, 0.95], [0.5, 0.9], [0.0, 1.0], [None], [],
                                    [0.991, 0.99]])
def test_rate_axis_zooms_below_the_lowest_value(values: list[float | None]) -> None:
    floor = svg.axis_floor(values)
    present = [v for v in values if v is not None]
    assert 0.0 <= floor < 1.0
    if present:
        assert floor <= min(present)
        if min(present) >= 0.9:
            assert floor >= 0.8  # zoomed in, not from 0
    ticks, _decimals = svg.axis_ticks(floor)
    assert ticks[0] >= floor and ticks[-1] == 1.0 and 2 <= len(ticks) <= 6


# --------------------------------------------------------------------------------------------------
# Translations


def test_translator_locales(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert translator("en")("Province ranking") == "Province ranking"
    with pytest.raises(ValueError):
        translator("fr")
    zh = translator("zh_CN")
    assert zh("Monthly connectivity assessment report") == "网络连通率月度考核报告"
    assert zh("Met") == "达标" and zh("Not met") == "未达标"
    # ECOCLOUD_TRANSLATIONS_DIR overrides the catalog directory.
    catalog = Catalog(locale="zh_Hans_CN")
    catalog.add("Province ranking", "测试排名")
    target = tmp_path / "zh_Hans_CN" / "LC_MESSAGES"
    target.mkdir(parents=True)
    with (target / "messages.mo").open("wb") as f:
        write_mo(f, catalog)
    monkeypatch.setenv("ECOCLOUD_TRANSLATIONS_DIR", str(tmp_path))
    assert translator("zh_CN")("Province ranking") == "测试排名"
    monkeypatch.setenv("ECOCLOUD_TRANSLATIONS_DIR", str(tmp_path / "missing"))
    with pytest.raises(RuntimeError):
        translator("zh_CN")


def test_durations() -> None:
    en = translator("en")
    assert format_duration(None, en) == "—"
    assert format_duration(42.4, en) == "42 s"
    assert format_duration(300.5, en) == "5 min"
    assert format_duration(7507, en) == "2 h 05 min"
    assert format_duration(129600, en) == "36 h 00 min"
    assert format_duration(7507, translator("zh_CN")) == "2小时05分"


def test_sample_data_is_not_mutated() -> None:
    data = sample_data()
    before = copy.deepcopy(data)
    render_html(data)
    section_rows(data, translator("zh_CN"))
    assert data == before
