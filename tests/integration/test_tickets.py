"""Tickets: numbers, scope and team visibility, transitions with their rights, SLA deadlines on the
stored working calendar with pauses, history and audit, stale writes, concurrent numbering."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.errors import Conflict
from ecocloud_ops.servicedesk.models import TicketEvent
from tests.conftest import TEST_ACTOR, Account, api_token

CST = dt.timezone(dt.timedelta(hours=8))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(container: Container, make_user: Callable[..., Account]) -> dict[str, dict[str, str]]:
    accounts = {"hebei": make_user("hb.filer", "provincial_staff", "130000"),
                "shijiazhuang": make_user("sjz.filer", "provincial_staff", "130100"),
                "guangdong": make_user("gd.filer", "provincial_staff", "440000"),
                "agent": make_user("desk.agent", "desk_agent", "000000"),
                "vendor_a": make_user("vendor.a", "vendor_engineer", "000000", team="vendor-a"),
                "vendor_b": make_user("vendor.b", "vendor_engineer", "000000", team="vendor-b")}
    return {k: auth(api_token(container, a)) for k, a in accounts.items()}


def test_numbers_per_type_and_year(client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    numbers = []
    for kind in ("incident", "incident", "service_request", "change", "problem"):
        r = client.post("/api/v1/tickets", json={"type": kind, "title": "网络中断", "impact": 2, "urgency": 2},
                        headers=people["hebei"])
        assert r.status_code == 201, r.json
        numbers.append(r.json["number"])
    year = dt.datetime.now(CST).year
    assert numbers == [f"INC-{year}-000001", f"INC-{year}-000002", f"REQ-{year}-000001", f"CHG-{year}-000001",
                       f"PRB-{year}-000001"]
    t = client.get(f"/api/v1/tickets/{numbers[0]}", headers=people["hebei"]).json
    assert t["priority"] == "P2" and t["site"] == "130000" and t["requester"] == "hb.filer"
    assert t["status"] == "new" and t["history"][0]["kind"] == "created"
    assert dt.datetime.fromisoformat(t["created_at"]).tzinfo is not None


def test_bad_input_is_refused_with_the_field(client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    for body, field in (({"title": ""}, "title"), ({"title": "x", "impact": 5}, "impact"),
                        ({"title": "x", "type": "wish"}, "type"), ({"title": "x", "category": "misc"}, "category"),
                        ({"title": "x", "site": "440000"}, None)):
        r = client.post("/api/v1/tickets", json=body, headers=people["hebei"])
        if field is None:
            assert r.status_code == 404, "another province's site is not there"
        else:
            assert r.status_code == 422 and field in r.json["error"]["message"], (body, r.json)


def test_scope_and_team_visibility(client: FlaskClient, people: dict[str, dict[str, str]],
                                   container: Container) -> None:
    hb = client.post("/api/v1/tickets", json={"title": "河北 链路", "site": "130100"}, headers=people["hebei"]).json
    gd = client.post("/api/v1/tickets", json={"title": "广东 链路"}, headers=people["guangdong"]).json
    # Provincial staff: their subtree; a city sees its own subtree only.
    assert client.get(f"/api/v1/tickets/{gd['number']}", headers=people["hebei"]).status_code == 404
    assert client.get(f"/api/v1/tickets/{gd['id']}", headers=people["hebei"]).status_code == 404
    assert client.get(f"/api/v1/tickets/{hb['number']}", headers=people["shijiazhuang"]).status_code == 200
    listed = client.get("/api/v1/tickets", headers=people["hebei"]).json
    assert [t["number"] for t in listed["items"]] == [hb["number"]]
    before = container.unit_of_work
    with before() as svc:
        events = len(svc.session.execute(select(TicketEvent)).all())
    for url, body in ((f"/api/v1/tickets/{gd['number']}/comments", {"body": "窥探"}),
                      (f"/api/v1/tickets/{gd['number']}/transition", {"state": "canceled"})):
        assert client.post(url, json=body, headers=people["hebei"]).status_code == 404
    with before() as svc:
        assert len(svc.session.execute(select(TicketEvent)).all()) == events, "nothing written"
    # Vendors: their team's tickets only.
    assert client.post(f"/api/v1/tickets/{hb['number']}/assign", json={"team": "vendor-a"},
                       headers=people["agent"]).status_code == 200
    assert client.get(f"/api/v1/tickets/{hb['number']}", headers=people["vendor_a"]).status_code == 200
    assert client.get(f"/api/v1/tickets/{hb['number']}", headers=people["vendor_b"]).status_code == 404
    assert client.get(f"/api/v1/tickets/{gd['number']}", headers=people["vendor_a"]).status_code == 404
    assert client.get("/api/v1/tickets", headers=people["agent"]).json["total"] == 2


def test_lifecycle_rights_history_and_audit(client: FlaskClient, people: dict[str, dict[str, str]],
                                            container: Container) -> None:
    t = client.post("/api/v1/tickets", json={"title": "无法登录", "category": "account_access"},
                    headers=people["hebei"]).json
    n = t["number"]
    # The requester cannot work the ticket, the desk can.
    r = client.post(f"/api/v1/tickets/{n}/transition", json={"state": "in_progress"}, headers=people["hebei"])
    assert r.status_code == 403
    r = client.post(f"/api/v1/tickets/{n}/transition", json={"state": "resolved"}, headers=people["agent"])
    assert r.status_code == 409 and "cannot become resolved" in r.json["error"]["message"]
    assert client.post(f"/api/v1/tickets/{n}/assign", json={"assignee": "vendor.a"},
                       headers=people["agent"]).json["status"] == "assigned"
    for state in ("in_progress", "pending", "in_progress", "resolved"):
        r = client.post(f"/api/v1/tickets/{n}/transition", json={"state": state, "comment": f"→ {state}"},
                        headers=people["vendor_a"])
        assert r.status_code == 200 and r.json["status"] == state, r.json
    assert client.post(f"/api/v1/tickets/{n}/comments", json={"body": "查看日志", "kind": "worklog"},
                       headers=people["hebei"]).status_code == 403
    assert client.post(f"/api/v1/tickets/{n}/comments", json={"body": "已恢复，谢谢"},
                       headers=people["hebei"]).status_code == 201
    assert client.post(f"/api/v1/tickets/{n}/comments", json={"body": "重置了密码", "kind": "worklog"},
                       headers=people["vendor_a"]).status_code == 201
    # The requester reopens, then closes.
    assert client.post(f"/api/v1/tickets/{n}/transition", json={"state": "in_progress"},
                       headers=people["hebei"]).json["resolved_at"] is None
    client.post(f"/api/v1/tickets/{n}/transition", json={"state": "resolved"}, headers=people["vendor_a"])
    closed = client.post(f"/api/v1/tickets/{n}/transition", json={"state": "closed"}, headers=people["hebei"]).json
    assert closed["status"] == "closed" and closed["closed_at"]
    mine = client.get(f"/api/v1/tickets/{n}", headers=people["hebei"]).json
    worker = client.get(f"/api/v1/tickets/{n}", headers=people["agent"]).json
    assert [h["kind"] for h in worker["history"]].count("worklog") == 1
    assert all(not h["internal"] for h in mine["history"]), "the work log is internal"
    moves = [(h["from"], h["to"]) for h in worker["history"] if h["kind"] == "transition"]
    assert moves == [("new", "assigned"), ("assigned", "in_progress"), ("in_progress", "pending"),
                     ("pending", "in_progress"), ("in_progress", "resolved"), ("resolved", "in_progress"),
                     ("in_progress", "resolved"), ("resolved", "closed")]
    with container.unit_of_work() as svc:
        actions = [a for (a,) in svc.session.execute(select(AuditEntry.action).where(
            AuditEntry.target_id == n).order_by(AuditEntry.seq))]
    assert actions.count("ticket.transition") == 8 and "ticket.create" in actions and "ticket.worklog" in actions


def test_deadlines_follow_calendar_priority_and_pauses(container: Container, small_tree: None) -> None:
    # Friday 2025-09-26 16:00: P3 business (4 h response) -> Sunday 2025-09-28 is a make-up working day.
    created = dt.datetime(2025, 9, 26, 16, 0, tzinfo=CST)
    with container.unit_of_work() as svc:
        t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="慢", impact=3, urgency=3,
                               site_code="130000", now=created)
        assert t.priority == "P3"
        assert t.response_due == dt.datetime(2025, 9, 28, 11, 0, tzinfo=CST), "Friday 1.5 h + Sunday (调休) 2.5 h"
        assert t.due_estimated is False
        # A network fault runs 7x24 whatever the priority.
        f = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="断网", category="network_fault",
                               impact=3, urgency=3, site_code="130000", now=created)
        assert f.response_due == created + dt.timedelta(hours=4)
        # Pending for 2 hours of wall time pauses the 7x24 clock by 2 hours.
        svc.tickets.transition(TEST_ACTOR, f, "assigned", now=created + dt.timedelta(minutes=10))
        svc.tickets.transition(TEST_ACTOR, f, "in_progress", now=created + dt.timedelta(minutes=20))
        svc.tickets.transition(TEST_ACTOR, f, "pending", now=created + dt.timedelta(minutes=30))
        assert f.resolve_due is None, "the clock is stopped while pending"
        svc.tickets.transition(TEST_ACTOR, f, "in_progress", now=created + dt.timedelta(hours=2, minutes=30))
        assert f.resolve_due == created + dt.timedelta(hours=27 + 2)  # P3 resolve 27 h, +2 h paused
        # Raising the priority recomputes the deadlines (P1: 15 min response, 4 h resolve).
        svc.tickets.update_fields(TEST_ACTOR, f, impact=1, urgency=1, now=created + dt.timedelta(hours=3))
        assert f.priority == "P1" and f.resolve_due == created + dt.timedelta(hours=6)
        # Resolving after the deadline records the breach; it stays recorded.
        svc.tickets.transition(TEST_ACTOR, f, "resolved", now=created + dt.timedelta(hours=7))
        assert f.resolve_breached is True
        svc.tickets.transition(TEST_ACTOR, f, "in_progress", now=created + dt.timedelta(hours=8))
        assert f.resolve_breached is True, "a breach is never recomputed away"


def test_a_deadline_in_a_year_without_calendar_is_flagged(container: Container, small_tree: None) -> None:
    with container.unit_of_work() as svc:
        t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="service_request", title="开通账号",
                               impact=4, urgency=4, site_code="130000",
                               now=dt.datetime(2026, 12, 31, 16, 0, tzinfo=CST))
        assert t.due_estimated is True, "P4's 5 business days reach into 2027, which has no schedule yet"


def test_a_stale_write_is_refused(container: Container, small_tree: None) -> None:
    with container.unit_of_work() as svc:
        t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="x", site_code="130000")
        version = t.version
        svc.tickets.transition(TEST_ACTOR, t, "assigned", version=version)
        with pytest.raises(Conflict, match="changed by someone else"):
            svc.tickets.transition(TEST_ACTOR, t, "in_progress", version=version)


def test_concurrent_creation_gives_unique_numbers(container: Container, small_tree: None) -> None:
    numbers: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                with container.unit_of_work() as svc:
                    t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="并发",
                                           site_code="130000")
                    numbers.append(t.number)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(numbers) == 40 and len(set(numbers)) == 40


def test_cli_for_scripts_and_phone_agents(container: Container, make_user: Callable[..., Account]) -> None:
    import json

    from click.testing import CliRunner

    from ecocloud_ops.cli import cli

    make_user("phone.caller", "provincial_staff", "130100")
    env: dict[str, str | None] = {"ECOCLOUD_INSTANCE_DIR": str(container.settings.instance_dir),
                                  "ECOCLOUD_DATABASE_URL": container.settings.effective_database_url,
                                  "ECOCLOUD_TEST_DATABASE_URL": None}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        res = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert res.exit_code == code, res.output
        return res.output

    created = json.loads(run("tickets", "create", "--type", "incident", "--title", "电话报障：视频会议中断",
                             "--impact", "2", "--urgency", "1", "--requester", "phone.caller", "--json"))
    assert created["site"] == "130100" and created["priority"] == "P1" and created["source"] == "cli"
    shown = json.loads(run("tickets", "show", created["number"], "--json"))
    for key in ("number", "type", "status", "priority", "created_at", "response_due", "resolve_due", "breached"):
        assert key in shown
    assert dt.datetime.fromisoformat(shown["response_due"]).utcoffset() is not None
    assert "new → canceled" not in run("tickets", "transition", created["number"], "assigned")
    out = run("tickets", "transition", created["number"], "closed", code=1)
    assert "cannot become closed" in out
    listed = json.loads(run("tickets", "list", "--status", "open", "--json"))
    assert [t["number"] for t in listed["items"]] == [created["number"]]


def test_console_file_work_and_follow(app: object, container: Container, make_user: Callable[..., Account]) -> None:
    from tests.conftest import csrf_from, login

    filer = make_user("sjz.console", "provincial_staff", "130100")
    agent = make_user("desk.console", "desk_agent", "000000")
    c1 = app.test_client()  # type: ignore[attr-defined]
    login(c1, filer, container)
    form = c1.get("/servicedesk/new").get_data(as_text=True)
    assert 'value="130100"' in form, "the requester's site is pre-filled"
    token = csrf_from(c1, "/servicedesk/new")
    bad = c1.post("/servicedesk/new", data={"csrf_token": token, "title": "", "site": "130100"})
    assert bad.status_code == 422 and "title" in bad.get_data(as_text=True)
    r = c1.post("/servicedesk/new", data={"csrf_token": token, "type": "incident", "category": "network_fault",
                                          "title": "县局视频会议中断", "description": "从9点开始", "impact": "2",
                                          "urgency": "1", "site": "130100"})
    assert r.status_code == 302
    number = r.location.rsplit("/", 1)[1]
    page = c1.get(f"/servicedesk/{number}").get_data(as_text=True)
    assert "县局视频会议中断" in page and 'id="assign-form"' not in page
    assert number in c1.get("/servicedesk/").get_data(as_text=True)
    c2 = app.test_client()  # type: ignore[attr-defined]
    login(c2, agent, container)
    token = csrf_from(c2, f"/servicedesk/{number}")
    assert c2.post(f"/servicedesk/{number}/assign", data={"csrf_token": token, "team": "network-hebei",
                                                           "assignee": "desk.console"}).status_code == 302
    for state in ("in_progress", "resolved"):
        assert c2.post(f"/servicedesk/{number}/transition",
                       data={"csrf_token": token, "state": state}).status_code == 302
    c2.post(f"/servicedesk/{number}/comment", data={"csrf_token": token, "body": "更换了光模块", "kind": "worklog"})
    mine = c1.get(f"/servicedesk/{number}").get_data(as_text=True)
    assert "更换了光模块" not in mine, "the work log stays internal"
    token = csrf_from(c1, f"/servicedesk/{number}")
    assert c1.post(f"/servicedesk/{number}/transition", data={"csrf_token": token, "state": "closed"}
                   ).status_code == 302
    with container.unit_of_work() as svc:
        assert svc.tickets.get(number, None, Scope.everything()).status == "closed"


def test_admin_enters_next_years_calendar_and_sla(app: object, container: Container,
                                                  make_user: Callable[..., Account]) -> None:
    from ecocloud_ops.servicedesk.sla_store import missing_next_year
    from tests.conftest import csrf_from, login

    admin = make_user("sd.admin", "admin", "000000")
    with container.unit_of_work() as svc:
        assert missing_next_year(svc.session, dt.date(2026, 11, 1)) == 2027
        assert missing_next_year(svc.session, dt.date(2026, 10, 31)) is None, "warned from 1 November only"
        assert missing_next_year(svc.session, dt.date(2025, 11, 30)) is None, "2026 is seeded"
    c = app.test_client()  # type: ignore[attr-defined]
    login(c, admin, container)
    page = c.get("/servicedesk/admin")
    assert page.status_code == 200
    token = csrf_from(c, "/servicedesk/admin")
    bad = c.post("/servicedesk/admin/calendar", data={"csrf_token": token, "year": "2027",
                                                       "holidays": "2027-13-01 坏日期", "workdays": ""})
    assert bad.status_code == 422
    r = c.post("/servicedesk/admin/calendar", data={
        "csrf_token": token, "year": "2027", "holidays": "2027-01-01 元旦\n2027-10-01..2027-10-07 国庆节",
        "workdays": "2027-09-26 国庆节\n2027-10-09 国庆节"})
    assert r.status_code == 302
    with container.unit_of_work() as svc:
        assert missing_next_year(svc.session, dt.date(2026, 11, 1)) is None
        # 2026-12-31 (Thu) 16:00 + P4's 9 business hours to respond: 1.5 h that day; Friday 1 January 2027 is
        # now a holiday and 2-3 January a weekend, so the other 7.5 h run on Monday 4 January from 08:30.
        t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="service_request", title="x", impact=4,
                               urgency=4, site_code="130000", now=dt.datetime(2026, 12, 31, 16, 0, tzinfo=CST))
        assert t.due_estimated is False
        assert t.response_due == dt.datetime(2027, 1, 4, 16, 0, tzinfo=CST)
    token = csrf_from(c, "/servicedesk/admin")
    form = {"csrf_token": token, "warn_percent": "80", "reopen_days": "5", "categories_24x7": ["network_fault",
                                                                                                "security_incident"]}
    for p, (resp, res, mode) in {"P1": (10, 240, "24x7"), "P2": (30, 540, "business"), "P3": (240, 1620, "business"),
                                 "P4": (540, 2700, "business")}.items():
        form |= {f"{p}_response": str(resp), f"{p}_resolve": str(res), f"{p}_mode": mode}
    assert c.post("/servicedesk/admin/sla", data=form).status_code == 302
    with container.unit_of_work() as svc:
        policy = svc.policies.servicedesk()
        assert policy.sla["P1"].response_minutes == 10 and policy.warn_fraction == 0.8
        assert policy.categories_24x7 == ["network_fault", "security_incident"]


def test_console_attachments_kb_teams_and_sla_report(app: object, container: Container,
                                                     make_user: Callable[..., Account]) -> None:
    import io
    import subprocess

    from tests.conftest import csrf_from, login

    filer = make_user("hb.attach", "provincial_staff", "130000")
    agent = make_user("desk.report", "desk_agent", "000000", team="desk")
    with container.unit_of_work() as svc:
        from ecocloud_ops.servicedesk.teams import TeamService

        TeamService(svc.session, svc.audit).create_team(TEST_ACTOR, name="desk", display_name="统一服务台",
                                                        leader="desk.report")
        t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title="附件测试", site_code="130000",
                               requester=svc.auth.by_username("hb.attach"))
        number = t.number
    c1 = app.test_client()  # type: ignore[attr-defined]
    login(c1, filer, container)
    token = csrf_from(c1, f"/servicedesk/{number}")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    r = c1.post(f"/servicedesk/{number}/attachments",
                data={"csrf_token": token, "file": (io.BytesIO(png), "屏幕截图.png")},
                content_type="multipart/form-data")
    assert r.status_code == 302
    page = c1.get(f"/servicedesk/{number}").get_data(as_text=True)
    assert "屏幕截图.png" in page
    link = page.split(f'/servicedesk/{number}/attachments/')[1].split('"')[0]
    got = c1.get(f"/servicedesk/{number}/attachments/{link}")
    assert got.status_code == 200 and got.data == png and got.headers["X-Content-Type-Options"] == "nosniff"
    exe = c1.post(f"/servicedesk/{number}/attachments", data={"csrf_token": token,
                                                                "file": (io.BytesIO(b"MZ\x90\x00" * 8), "setup.png")},
                  content_type="multipart/form-data")
    assert exe.status_code == 422
    c2 = app.test_client()  # type: ignore[attr-defined]
    login(c2, agent, container)
    token = csrf_from(c2, "/servicedesk/kb/new")
    r = c2.post("/servicedesk/kb/new", data={"csrf_token": token, "title": "附件上传失败怎么办",
                                             "body": "检查文件类型。", "category": "other", "tags": "附件,上传",
                                             "published": "1"})
    assert r.status_code == 302
    assert "附件上传失败怎么办" in c1.get("/servicedesk/kb?q=附件").get_data(as_text=True), "published: readable by all"
    assert "统一服务台" in c2.get("/servicedesk/teams").get_data(as_text=True)
    month = dt.datetime.now(CST).strftime("%Y-%m")
    report = c2.get(f"/servicedesk/sla-report?month={month}").get_data(as_text=True)
    assert 'id="sla-table"' in report
    xlsx = c2.get(f"/servicedesk/sla-report/{month}.xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    pdf = c2.get(f"/servicedesk/sla-report/{month}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf.data, capture_output=True, check=True).stdout.decode()
    assert "统一服务台" in text
    assert c1.get(f"/servicedesk/sla-report?month={month}").status_code == 403
