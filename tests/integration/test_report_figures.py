"""The assessment's figures from a generated history with known outages, checked against values worked
out by hand, and the same figures in JSON, XLSX, CSV and the PDF's text.

The history (one uplink device per site of the small tree, polled every 60 s from 1 October 00:00
Asia/Shanghai, events on minute boundaries so the poll grid does not move them; P = 31 days, G = the
poller gap):

* Hebei's own link (130000) down 10 Oct 10:00–12:00: a parent outage; every Hebei site below is
  unknown for those 2 h and counts in neither.
* Guangzhou (440100) down 15 Oct 21:00–23:00 inside a maintenance window 20:00–22:00: 1 h counts as
  down, the window's 2 h in neither; its county 440103 unknown 21:00–23:00.
* A poller gap 20 Oct 03:00–03:20 (stored from the end of the 02:59 cycle: 21 min); Tangshan (130200)
  down from 03:05, seen at 03:20, until 03:40: 20 min down; its county 130202 unknown meanwhile.
* Dongcheng (110101, a county-level unit under Beijing: province→city tier) down 31 Oct 23:00 –
  1 Nov 01:00: crosses the month boundary, 1 h in October.
* Chang'an (130102) down 5 Oct 23:30 – 6 Oct 00:30: crosses midnight in Asia/Shanghai, 30 min each day.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ecocloud_ops.bootstrap import Container
from ecocloud_ops.network.inventory import DeviceSpec
from ecocloud_ops.network.models import Device
from ecocloud_ops.network.synthetic import LinkDown, Maintenance, PollerGap, Scenario, write_history
from tests.conftest import SMALL_TREE, TEST_ACTOR

CST = dt.timezone(dt.timedelta(hours=8))
P = 31 * 86400.0
G = 21 * 60.0
H = 3600.0


def t(day: int, hour: int, minute: int = 0, month: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=CST)


@pytest.fixture
def report(container: Container, small_tree: None) -> dict[str, Any]:
    with container.unit_of_work() as svc:
        specs = [DeviceSpec(hostname=f"r{code}", address=f"198.18.8.{i + 1}", site_code=code, snmp_community="c")
                 for i, code in enumerate(SMALL_TREE)]
        svc.devices.import_inventory(TEST_ACTOR, specs)
    scenario = Scenario(start=t(1, 0), end=t(1, 6, month=11), poll_seconds=60, cycle_seconds=0, events=[
        LinkDown("130000", t(10, 10), t(10, 12)),
        Maintenance("440100", t(15, 20), t(15, 22), reason="cutover"),
        LinkDown("440100", t(15, 21), t(15, 23)),
        PollerGap(t(20, 3), t(20, 3, 20)),
        LinkDown("130200", t(20, 3, 5), t(20, 3, 40)),
        LinkDown("110101", t(31, 23), t(1, 1, month=11)),
        LinkDown("130102", t(5, 23, 30), t(6, 0, 30)),
    ])
    with container.unit_of_work() as svc:
        devices = list(svc.session.execute(select(Device).order_by(Device.hostname)).scalars())
        write_history(svc.session, scenario, devices=devices, demo=False, flap_window_minutes=10)
    with container.unit_of_work() as svc:
        svc.reports.generate(TEST_ACTOR, "2026-10", now=t(1, 6, month=11))
        return svc.reports.get("2026-10").data


def expected_links() -> dict[str, tuple[float, float]]:
    """(up, down) seconds of every link in October, by hand."""
    full = P - G
    return {
        # ministry -> province
        "110000": (full, 0), "130000": (full - 2 * H, 2 * H), "440000": (full, 0),
        # province -> city (and Beijing's county-level units)
        "110101": (full - H, H), "110102": (full, 0),
        "130100": (full - 2 * H, 0),  # unknown while Hebei was down
        "130200": (full - 2 * H - 1200, 1200),
        "440100": (full - 2 * H - H, H),  # the window's 2 h in neither, 1 h down after it
        # city -> county
        "130102": (full - 2 * H - H, H), "130104": (full - 2 * H, 0),
        "130202": (full - 2 * H - 1200, 0),  # unknown while Hebei, then Tangshan, was down
        "440103": (full - 2 * H, 0),
    }


TIER_OF = {"110000": "ministry_province", "130000": "ministry_province", "440000": "ministry_province",
           "110101": "province_city", "110102": "province_city", "130100": "province_city",
           "130200": "province_city", "440100": "province_city",
           "130102": "city_county", "130104": "city_county", "130202": "city_county", "440103": "city_county"}


def pooled(codes: list[str]) -> float:
    links = expected_links()
    up = sum(links[c][0] for c in codes)
    down = sum(links[c][1] for c in codes)
    return up / (up + down)


def test_every_section_matches_the_hand_worked_figures(report: dict[str, Any]) -> None:
    links = expected_links()
    # Tiers: pooled time, and ≥ target unrounded.
    for tier in report["tiers"]:
        codes = [c for c, tt in TIER_OF.items() if tt == tier["tier"]]
        up = sum(links[c][0] for c in codes)
        down = sum(links[c][1] for c in codes)
        assert (tier["up_seconds"], tier["down_seconds"]) == (up, down), tier["tier"]
        assert tier["rate"] == up / (up + down)
        assert tier["links"] == len(codes) and tier["met"] == (tier["rate"] >= tier["target"])
    assert [t["below_target"] for t in report["tiers"]] == [0, 0, 0]
    # Drill-down per province: rates, longest outage, downtime.
    drill = {x["site"]: x for p in report["provinces"].values() for x in [p["own"], *p["links"]] if x}
    assert set(drill) == set(links)
    for code, (up, down) in links.items():
        assert (drill[code]["up_seconds"], drill[code]["down_seconds"]) == (up, down), code
        assert drill[code]["rate"] == up / (up + down)
        assert drill[code]["downtime_seconds"] == down
    assert drill["130102"]["longest_outage_seconds"] == H, "one outage across midnight, not two"
    assert drill["440100"]["longest_outage_seconds"] == H and drill["130200"]["longest_outage_seconds"] == 1200
    assert drill["130100"]["outages"] == 0, "a parent outage is not the city's"
    # Ranking: own link, then whole province; September had no data.
    ranking = {r["code"]: r for r in report["ranking"]}
    assert [r["code"] for r in report["ranking"]] == ["110000", "440000", "130000"]
    assert ranking["130000"]["own_rate"] == pooled(["130000"])
    assert ranking["110000"]["subtree_rate"] == pooled(["110000", "110101", "110102"])
    assert ranking["440000"]["subtree_rate"] == pooled(["440000", "440100", "440103"])
    assert ranking["130000"]["subtree_rate"] == pooled(["130000", "130100", "130102", "130104", "130200", "130202"])
    assert all(r["previous_position"] is None and r["own_rate_change"] is None for r in report["ranking"])
    # Outages: 6 records from Hebei's cascade, 2 Guangzhou, 2 Tangshan, Dongcheng, Chang'an.
    outages = report["outages"]
    assert len(outages) == 12
    dongcheng = next(o for o in outages if o["site"] == "110101")
    assert dongcheng["duration_seconds"] == 2 * H and dongcheng["in_period_seconds"] == H
    assert dongcheng["ended_at"] == t(1, 1, month=11).astimezone(dt.UTC).isoformat()
    causes = {(o["site"], o["status"], o["cause"]) for o in outages if o["started_at"] ==
              t(10, 10).astimezone(dt.UTC).isoformat()}
    assert causes == {("130000", "down", "own")} | {(c, "unknown", "parent") for c in
                                                     ("130100", "130102", "130104", "130200", "130202")}
    tangshan = next(o for o in outages if o["site"] == "130200" and o["status"] == "down")
    assert tangshan["started_at"] == t(20, 3, 20).astimezone(dt.UTC).isoformat(), "seen at the first poll after the gap"
    assert [(m["site"], m["seconds"], m["reason"]) for m in report["maintenance"]] == [("440100", 2 * H, "cutover")]
    # Completeness: the gap from the end of the 02:59 cycle to the 03:20 cycle.
    comp = report["completeness"]
    assert comp["gap_seconds"] == G and comp["covered"] == 1 - G / P
    assert comp["cycles"] == 31 * 1440 - 20
    assert [(g["from"], g["to"]) for g in comp["gaps"]] == [(t(20, 2, 59).astimezone(dt.UTC).isoformat(),
                                                              t(20, 3, 20).astimezone(dt.UTC).isoformat())]
    # Daily trend: Asia/Shanghai days.
    daily = {d["day"]: d for d in report["daily"]}
    assert len(daily) == 31 and daily["2026-10-01"]["city_county"] == 1.0
    day = 86400.0
    assert daily["2026-10-05"]["city_county"] == (4 * day - 1800) / (4 * day)
    assert daily["2026-10-06"]["city_county"] == (4 * day - 1800) / (4 * day)
    assert daily["2026-10-10"]["ministry_province"] == (3 * day - 2 * H) / (3 * day)
    assert daily["2026-10-20"]["province_city"] == (5 * (day - G) - 1200) / (5 * (day - G))
    assert daily["2026-10-31"]["province_city"] == (5 * day - H) / (5 * day)
    # Twelve months: nothing before October; October's figures are the month's.
    monthly = report["monthly"]
    assert [m["month"] for m in monthly][0] == "2025-11" and monthly[-1]["month"] == "2026-10"
    assert all(m[k] is None for m in monthly[:-1] for k in TIER_OF.values())
    assert [monthly[-1][t["tier"]] for t in report["tiers"]] == [t["rate"] for t in report["tiers"]]


def test_november_takes_the_rest_of_the_crossing_outage(container: Container, report: dict[str, Any]) -> None:
    with container.unit_of_work() as svc:
        nov = svc.reports.compute("2026-11", now=t(1, 6, month=11))
    link = next(x for x in nov["provinces"]["110000"]["links"] if x["site"] == "110101")
    assert link["down_seconds"] == H and nov["period"]["partial"] is True
    assert nov["monthly"][-2]["province_city"] == report["tiers"][1]["rate"], "October as November's trend sees it"
    ranking = {r["code"]: r for r in nov["ranking"]}
    assert ranking["130000"]["previous_own_rate"] == pooled(["130000"])
    assert ranking["130000"]["previous_position"] == 3


def test_json_xlsx_csv_and_pdf_agree(report: dict[str, Any], tmp_path: Path) -> None:
    import openpyxl

    from ecocloud_ops.reports.render import render_csv_zip, render_pdf, render_xlsx, section_rows, translator

    sections = section_rows(report, translator("zh_CN"))
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(report)))
    zf = zipfile.ZipFile(io.BytesIO(render_csv_zip(report)))
    assert len(wb.sheetnames) == len(sections) == len(zf.namelist())
    for (name, (headers, rows)), ws, csv_name in zip(sections.items(), wb.worksheets, sorted(zf.namelist(),
                                                     key=lambda n: list(sections).index(n[:-4])), strict=True):
        assert csv_name == f"{name}.csv"
        sheet = [list(r) for r in ws.iter_rows(values_only=True)]
        assert [str(h) for h in sheet[0]] == headers
        lines = list(csv.reader(io.StringIO(zf.read(csv_name).decode("utf-8-sig"))))
        assert lines[0] == headers and len(lines) - 1 == len(sheet) - 1 == len(rows), name
        for want, got_x, got_c in zip(rows, sheet[1:], lines[1:], strict=True):
            for i, w in enumerate(want):  # the summary's fact rows are shorter than the sheet
                x, c = got_x[i], got_c[i]
                if isinstance(w, float):
                    assert x == w and float(c) == w, (name, w, x, c)
                elif isinstance(w, int) and not isinstance(w, bool):
                    assert x == w and int(c) == w, (name, w, x, c)
    # The numbers in the sheets are the JSON's numbers (not re-derived), e.g. the tier rates.
    _headers, summary = sections["summary"]
    assert [row[1] for row in summary[:3]] == [t["rate"] for t in report["tiers"]]
    _headers, ranking = sections["ranking"]
    flat = [v for row in ranking for v in row]
    assert all(r["own_rate"] in flat and r["subtree_rate"] in flat for r in report["ranking"])
    pdf = tmp_path / "oct.pdf"
    pdf.write_bytes(render_pdf(report))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    for heading in ("网络连通率月度考核报告", "省级排名", "中断记录", "维护窗口", "数据完整性"):
        assert heading in text, heading
    for tier in report["tiers"]:
        assert f"{tier['rate'] * 100:.2f}%" in text
    for r in report["ranking"]:
        assert r["name"] in text
