"""The assessment report's lifecycle (draft, publish, archive, re-check), targets as policy, scope,
bad input, the API, the console and the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.errors import Conflict, NotFound, ValidationFailed
from ecocloud_ops.jobs.runner import Worker
from ecocloud_ops.network.inventory import DeviceSpec
from ecocloud_ops.network.models import Device, MaintenanceWindow, Outage, OutagePeriod, PollCycle
from ecocloud_ops.reports.models import AssessmentReport
from ecocloud_ops.reports.service import publish_report
from tests.conftest import SMALL_TREE, TEST_ACTOR, Account, api_token, login

CST = dt.timezone(dt.timedelta(hours=8))
OCT = dt.datetime(2026, 10, 1, tzinfo=CST)
NOV = dt.datetime(2026, 11, 1, tzinfo=CST)


def outage(svc: object, hostname: str, start: dt.datetime, end: dt.datetime, status: str = "down") -> None:
    session = svc.session  # type: ignore[attr-defined]
    d = session.execute(select(Device).where(Device.hostname == hostname)).scalar_one()
    session.add(Outage(device_id=d.id, site_id=d.site_id, status=status, cause="own" if status == "down" else "parent",
                       started_at=start, ended_at=end, periods=[OutagePeriod(started_at=start, ended_at=end)]))


@pytest.fixture
def history(container: Container, small_tree: None) -> None:
    """One uplink per site of the small tree, polled from 1 October; Shijiazhuang down 2 h on 4 October
    (its counties unknown meanwhile), Guangzhou down 30 min on 2 November."""
    with container.unit_of_work() as svc:
        specs = [DeviceSpec(hostname=f"r{code}", address=f"198.18.9.{i + 1}", site_code=code, snmp_community="c")
                 for i, code in enumerate(SMALL_TREE)]
        svc.devices.import_inventory(TEST_ACTOR, specs)
        for d in svc.session.execute(select(Device)).scalars():
            d.first_polled_at = OCT
        start = OCT + dt.timedelta(days=3, hours=10)
        outage(svc, "r130100", start, start + dt.timedelta(hours=2))
        for county in ("r130102", "r130104"):
            outage(svc, county, start, start + dt.timedelta(hours=2), status="unknown")
        nov = NOV + dt.timedelta(days=1, hours=9)
        outage(svc, "r440100", nov, nov + dt.timedelta(minutes=30))
        svc.session.add(PollCycle(started_at=OCT, finished_at=OCT + dt.timedelta(seconds=2), devices=len(specs)))


def audit_actions(container: Container) -> list[str]:
    with container.unit_of_work() as svc:
        return [a for (a,) in svc.session.execute(select(AuditEntry.action).order_by(AuditEntry.seq))]


def test_draft_publish_archive_and_recheck(container: Container, history: None) -> None:
    with container.unit_of_work() as svc:
        out = svc.reports.generate(TEST_ACTOR, "2026-10")
        assert out["action"] == "created"
        data = svc.reports.get("2026-10").data
    pc = next(t for t in data["tiers"] if t["tier"] == "province_city")
    # 5 province→city links (3 cities, 2 county-level units of Beijing) × 31 days; 2 h down.
    assert pc["down_seconds"] == 7200 and pc["up_seconds"] == 5 * 31 * 86400 - 7200
    assert pc["rate"] == pc["up_seconds"] / (5 * 31 * 86400)
    cc = next(t for t in data["tiers"] if t["tier"] == "city_county")
    assert cc["down_seconds"] == 0 and cc["up_seconds"] == 4 * 31 * 86400 - 2 * 7200, "unknown time counts in neither"
    with container.unit_of_work() as svc:
        assert svc.reports.generate(TEST_ACTOR, "2026-10")["action"] == "rebuilt"
    archive = publish_report(container, TEST_ACTOR, "2026-10")["archive"]
    assert {a["name"] for a in archive} == {"connectivity-2026-10.pdf", "connectivity-2026-10.json"}
    folder = container.settings.files_dir / "reports" / "2026-10"
    for item in archive:
        assert hashlib.sha256((folder / item["name"]).read_bytes()).hexdigest() == item["sha256"]
    stored = json.loads((folder / "connectivity-2026-10.json").read_text())
    assert stored["tiers"] == data["tiers"] and stored["state"] == "published"
    with pytest.raises(Conflict, match="already published"):
        publish_report(container, TEST_ACTOR, "2026-10")
    # Same data: the same figures, and it says so.
    with container.unit_of_work() as svc:
        check = svc.reports.generate(TEST_ACTOR, "2026-10")
    assert check["action"] == "checked" and check["identical"] and check["changes"] == []
    # A late maintenance window over the outage: the published figures stay, the check lists the change.
    with container.unit_of_work() as svc:
        site = svc.sites.by_code("130100")
        assert site is not None
        svc.session.add(MaintenanceWindow(site_id=site.id, started_at=OCT + dt.timedelta(days=3, hours=10),
                                          ended_at=OCT + dt.timedelta(days=3, hours=11), reason="late entry",
                                          created_by="t"))
    with container.unit_of_work() as svc:
        check = svc.reports.generate(TEST_ACTOR, "2026-10")
        report = svc.reports.get("2026-10")
        assert report.data["tiers"] == data["tiers"], "a published report never changes"
        assert report.last_check is not None and report.last_check["identical"] is False
    paths = {c["path"] for c in check["changes"]}
    assert "tiers[tier=province_city].down_seconds" in paths
    assert any(p.startswith("maintenance[id=") for p in paths)
    acts = audit_actions(container)
    for action in ("report.generate", "report.rebuild", "report.publish", "report.regenerate"):
        assert action in acts
    # A tampered archive is refused, not served.
    (folder / "connectivity-2026-10.pdf").write_bytes(b"%PDF-1.7 forged")
    with container.unit_of_work() as svc:
        r = svc.reports.get("2026-10")
        with pytest.raises(Conflict, match="checksum"):
            svc.reports.archived(r, ".pdf")
        assert svc.reports.verify_archive(r)


def test_bad_months_formats_and_provinces(container: Container, history: None) -> None:
    with container.unit_of_work() as svc:
        for bad in ("2026-13", "26-10", "october", ""):
            with pytest.raises(ValidationFailed, match="YYYY-MM"):
                svc.reports.generate(TEST_ACTOR, bad)
        with pytest.raises(ValidationFailed, match="has not started"):
            svc.reports.compute("2099-01")
        with pytest.raises(ValidationFailed, match="before the first poll"):
            svc.reports.compute("2026-08")
        from ecocloud_ops.auth.scope import Scope

        with pytest.raises(NotFound, match="990000"):
            svc.reports.data_for("2026-10", Scope.everything(), province="990000")
        from ecocloud_ops.reports.service import export

        with pytest.raises(ValidationFailed, match="format must be one of"):
            export(svc.reports.compute("2026-10"), "docx")
        # The running month may be previewed and drafted, not published.
        svc.reports.generate(TEST_ACTOR, "2026-11")
    with pytest.raises(ValidationFailed, match="not over yet"):
        publish_report(container, TEST_ACTOR, "2026-11")


def test_no_history_at_all_is_a_clear_error(container: Container, small_tree: None) -> None:
    with container.unit_of_work() as svc, pytest.raises(ValidationFailed, match="no poll cycle has run yet"):
        svc.reports.compute("2026-10")


def test_targets_are_audited_policy_and_reports_keep_theirs(container: Container, history: None,
                                                           client: FlaskClient,
                                                           make_user: object) -> None:
    officer: Account = make_user("officer", "assessment_officer", "000000")  # type: ignore[operator]
    h = {"Authorization": f"Bearer {api_token(container, officer)}"}
    assert client.get("/api/v1/reports/targets", headers=h).json == {
        "ministry_province": 0.99, "province_city": 0.98, "city_county": 0.95}
    with container.unit_of_work() as svc:
        svc.reports.generate(TEST_ACTOR, "2026-10")
    publish_report(container, TEST_ACTOR, "2026-10")
    r = client.put("/api/v1/reports/targets", json={"province_city": 0.9999}, headers=h)
    assert r.status_code == 200 and r.json["province_city"] == 0.9999
    bad = client.put("/api/v1/reports/targets", json={"city_county": 1.5}, headers=h)
    assert bad.status_code == 422 and bad.json["error"]["details"][0]["field"] == "city_county"
    with container.unit_of_work() as svc:
        entry = svc.session.execute(select(AuditEntry).where(AuditEntry.action == "policy.update")
                                    .order_by(AuditEntry.seq.desc())).scalars().first()
        assert entry is not None and entry.actor == "officer"
        assert json.loads(json.dumps(entry.before))["province_city"] == 0.98
        # The published month keeps the targets it was judged against; a new draft uses the new ones.
        assert svc.reports.get("2026-10").targets["province_city"] == 0.98
        svc.reports.generate(TEST_ACTOR, "2026-11")
        nov = svc.reports.get("2026-11")
        assert nov.targets["province_city"] == 0.9999
        pc = next(t for t in nov.data["tiers"] if t["tier"] == "province_city")
        assert pc["target"] == 0.9999 and pc["met"] is False and pc["below_target"] == 1
        check = svc.reports.generate(TEST_ACTOR, "2026-10")
        assert check["identical"], "re-checked against its own targets"


def test_api_downloads_scope_and_lifecycle(container: Container, history: None, client: FlaskClient,
                                           make_user: object) -> None:
    officer: Account = make_user("officer2", "assessment_officer", "000000")  # type: ignore[operator]
    hebei: Account = make_user("hb.reader", "provincial_staff", "130000")  # type: ignore[operator]
    ho = {"Authorization": f"Bearer {api_token(container, officer)}"}
    hh = {"Authorization": f"Bearer {api_token(container, hebei)}"}
    # Before anything is stored: a national preview; provincial staff wait for publication.
    r = client.get("/api/v1/reports/connectivity/2026-10", headers=ho)
    assert r.status_code == 200 and r.json["state"] == "preview"
    assert client.get("/api/v1/reports/connectivity/2026-10", headers=hh).status_code == 404
    assert client.post("/api/v1/reports/connectivity/2026-10/generate", headers=ho).status_code == 201
    assert client.get("/api/v1/reports/connectivity/2026-10", headers=hh).status_code == 404, "drafts stay internal"
    r = client.post("/api/v1/reports/connectivity/2026-10/publish", headers=ho)
    assert r.status_code == 202 and r.json["job"]["kind"] == "reports.publish"
    again = client.post("/api/v1/reports/connectivity/2026-10/publish", headers=ho)
    assert again.status_code == 409 and "already being published" in again.json["error"]["message"]
    Worker(container, name="t:1").run_job_now(r.json["job"]["id"])
    job = client.get(f"/api/v1/jobs/{r.json['job']['id']}", headers=ho).json
    assert job["state"] == "succeeded" and job["result"]["state"] == "published"
    assert client.post("/api/v1/reports/connectivity/2026-10/publish", headers=ho).status_code == 409
    full = client.get("/api/v1/reports/connectivity/2026-10", headers=ho).json
    mine = client.get("/api/v1/reports/connectivity/2026-10", headers=hh).json
    assert set(full["provinces"]) == {"110000", "130000", "440000"}
    assert set(mine["provinces"]) == {"130000"} and mine["scope"]["code"] == "130000"
    assert mine["ranking"] == full["ranking"] and mine["tiers"] == full["tiers"]
    assert {o["site"][:2] for o in mine["outages"]} == {"13"}
    assert client.get("/api/v1/reports/connectivity/2026-10?province=440000", headers=hh).status_code == 404
    only_gd = client.get("/api/v1/reports/connectivity/2026-10?province=440000", headers=ho).json
    assert set(only_gd["provinces"]) == {"440000"}
    # The archived PDF is served as archived; other formats are rendered from the stored data.
    pdf = client.get("/api/v1/reports/connectivity/2026-10?format=pdf", headers=ho)
    with container.unit_of_work() as svc:
        item = next(a for a in svc.reports.get("2026-10").archive or [] if a["name"].endswith(".pdf"))
    assert pdf.status_code == 200 and hashlib.sha256(pdf.data).hexdigest() == item["sha256"]
    x = client.get("/api/v1/reports/connectivity/2026-10?format=xlsx&locale=en", headers=hh)
    assert x.status_code == 200 and x.data[:2] == b"PK"
    z = client.get("/api/v1/reports/connectivity/2026-10?format=csv", headers=hh)
    names = zipfile.ZipFile(io.BytesIO(z.data)).namelist()
    assert "summary.csv" in names and "outages.csv" in names
    bad = client.get("/api/v1/reports/connectivity/2026-10?format=docx", headers=ho)
    assert bad.status_code == 422 and "format" in bad.json["error"]["message"]
    assert client.get("/api/v1/reports/connectivity/2099-01", headers=ho).status_code == 422
    listing = client.get("/api/v1/reports/connectivity", headers=hh).json["items"]
    assert [i["month"] for i in listing] == ["2026-10"]


def test_console_month_page_and_actions(container: Container, history: None, client: FlaskClient,
                                        make_user: object) -> None:
    officer: Account = make_user("officer3", "assessment_officer", "000000")  # type: ignore[operator]
    login(client, officer, container)
    page = client.get("/reports/connectivity/2026-10")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and html.count("data-report-chart") == 4
    assert 'id="report-state"' in html and "publish" not in html.split('id="report-actions"')[1].split("</div>")[0]
    from tests.conftest import csrf_from

    token = csrf_from(client, "/reports/connectivity/2026-10")
    r = client.post("/reports/connectivity/2026-10/generate", data={"csrf_token": token})
    assert r.status_code == 302
    # A double-clicked publish: one job; the second click is refused while it is queued.
    token = csrf_from(client, "/reports/connectivity/2026-10")
    first = client.post("/reports/connectivity/2026-10/publish", data={"csrf_token": token})
    second = client.post("/reports/connectivity/2026-10/publish", data={"csrf_token": token})
    assert first.status_code == 302 and "/jobs/" in first.location and second.status_code == 409
    Worker(container, name="t:2").run_job_now(int(first.location.rstrip("/").rsplit("/", 1)[1]))
    with container.unit_of_work() as svc:
        assert svc.session.execute(select(AssessmentReport.state)).scalar_one() == "published"
    no_csrf = client.post("/reports/targets", data={"ministry_province": "99.5", "province_city": "98",
                                                    "city_county": "95"})
    assert no_csrf.status_code == 400
    token = csrf_from(client, "/reports/")
    client.post("/reports/targets", data={"csrf_token": token, "ministry_province": "99.5", "province_city": "98",
                                          "city_county": "95"})
    with container.unit_of_work() as svc:
        assert svc.policies.assessment().ministry_province == 0.995
    dl = client.get("/reports/connectivity/2026-10/download/json")
    assert dl.status_code == 200 and json.loads(dl.data)["month"] == "2026-10"


def test_cli_report_commands(container: Container, history: None, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ecocloud_ops.cli import cli

    env: dict[str, str | None] = {"ECOCLOUD_INSTANCE_DIR": str(container.settings.instance_dir),
                                  "ECOCLOUD_DATABASE_URL": container.settings.effective_database_url,
                                  "ECOCLOUD_TEST_DATABASE_URL": None}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        res = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert res.exit_code == code, res.output
        return res.output

    out = tmp_path / "oct.xlsx"
    run("report", "connectivity", "--month", "2026-10", "--format", "xlsx", "--out", str(out))
    assert out.read_bytes()[:2] == b"PK"
    data = json.loads(run("report", "connectivity", "--month", "2026-10"))
    assert data["state"] == "preview" and data["month"] == "2026-10"
    assert "draft created" in run("report", "generate", "--month", "2026-10")
    assert "published" in run("report", "publish", "--month", "2026-10")
    assert "2026-10  published" in run("report", "list")
    assert "same figures" in run("report", "generate", "--month", "2026-10")
    assert "99.50%" in run("report", "targets", "--set", "ministry_province=0.995")
    err = run("report", "connectivity", "--month", "2026-13", code=1)
    assert "YYYY-MM" in err


def test_the_scheduled_job_builds_last_months_draft_and_its_pdf(container: Container, history: None) -> None:
    from ecocloud_ops.jobs.registry import SCHEDULES
    from ecocloud_ops.reports.builder import previous_month

    assert ("monthly-connectivity-report", "reports.connectivity", {"day": 1, "hour": 1, "minute": 0}) in SCHEDULES
    with container.unit_of_work() as svc:
        job_id = svc.jobs.enqueue(TEST_ACTOR, "reports.connectivity", {}).id
    Worker(container, name="sched:1").run_job_now(job_id)
    month = previous_month()
    with container.unit_of_work() as svc:
        from ecocloud_ops.auth.scope import Scope

        job = svc.jobs.get(job_id, Scope.everything())
        assert job.state == "succeeded", job.error
        report = svc.reports.get(month)
        assert report.state == "draft" and report.generated_by == TEST_ACTOR.username
    cached = list((container.settings.files_dir / "reports" / "cache").glob("*-zh_CN.pdf"))
    assert len(cached) == 1 and cached[0].read_bytes().startswith(b"%PDF")


def test_diff_matches_list_items_by_identity() -> None:
    from ecocloud_ops.reports.service import diff

    before = {"tiers": [{"tier": "a", "rate": 0.5}, {"tier": "b", "rate": 1.0}], "maintenance": [],
              "outages": [{"id": 1, "end": None}]}
    after = {"tiers": [{"tier": "b", "rate": 1.0}, {"tier": "a", "rate": 0.75}], "maintenance": [{"id": 9}],
             "outages": [{"id": 1, "end": "x"}]}
    changes = {c["path"]: (c["before"], c["after"]) for c in diff(before, after)}
    assert changes == {"tiers[tier=a].rate": (0.5, 0.75), "maintenance[id=9]": (None, {"id": 9}),
                       "outages[id=1].end": (None, "x")}
    assert diff(before, before) == []
