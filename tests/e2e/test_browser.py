"""The console in Debian's Chromium, driven by Playwright, against waitress on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.conftest import ARTIFACTS, BACKEND, PASSWORD, drop_pg_database, fresh_database_url
from tests.e2e.peers import cli, env_for, free_port, start, stop, wait_health

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("e2e")
    url = fresh_database_url(tmp, f"ecocloud_e2e_{os.getpid()}")
    env = env_for(tmp / "instance", url)
    cli(env, "db", "upgrade")
    cli(env, "sites", "seed-national")
    admin = json.loads(cli(env, "users", "create", "--username", "e2e.admin", "--role", "admin", "--site",
                           "000000", "--password", PASSWORD, "--json"))
    inventory = tmp / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    e2e-r1: {ansible_host: 198.18.77.1, site_code: '130000', "
                         "snmp_community: c}\n")
    cli(env, "inventory", "import", str(inventory))
    port = free_port()
    log = tmp / "serve.log"
    proc = start(env, "serve", "--port", str(port), log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_health(base, proc, log)
        yield {"base": base, "totp": admin["totp_secret"], "env": env}
    finally:
        stop(proc)
        if BACKEND == "postgresql":
            drop_pg_database(url)


def test_login_with_totp_language_switch_and_home_counts(server: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: scripts/test.sh installs it"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(locale="zh-CN")
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and not (r.status == 401 and "/login?" in r.url + "?") else None)
        page.goto(server["base"] + "/")
        expect(page.locator("h1")).to_have_text("登录")
        page.fill("#username", "e2e.admin")
        page.fill("#password", "wrong-password")
        page.click("#login-submit")
        expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")
        page.fill("#username", "e2e.admin")
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        expect(page.locator("h1")).to_have_text("双因素认证")
        page.fill("#code", pyotp.TOTP(server["totp"]).now())
        page.click("#totp-submit")
        expect(page.locator("#count-province")).to_have_text("31")
        expect(page.locator("#count-city")).to_have_text("333")
        expect(page.locator("#count-county")).to_have_text("2843")
        expect(page.locator("#count-ministry")).to_have_text("1")
        expect(page.locator("#worker-warning")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "e2e-home-zh.png"), full_page=True)
        page.click("#lang-en")
        expect(page.locator("#logout")).to_have_text("Log out")
        expect(page.locator("h1")).to_contain_text("Overview")
        expect(page.locator("#count-county")).to_have_text("2843")
        page.screenshot(path=str(ARTIFACTS / "e2e-home-en.png"), full_page=True)

        # A double-clicked submit button creates one account, not two.
        page.goto(server["base"] + "/users/new")
        page.fill("#username", "double.click")
        page.fill("#password", "Green-River-2026")
        page.select_option("#role", "auditor")
        page.locator("button[data-once]").dblclick()
        expect(page.locator("h1")).to_contain_text("double.click")
        page.goto(server["base"] + "/users?q=double.click")
        expect(page.locator("#users-table tbody tr")).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "e2e-users.png"))

        # The network view and a device page with its charts (Chart.js served by the instance).
        page.goto(server["base"] + "/network/")
        expect(page.locator("#tile-130000")).to_be_visible()
        expect(page.locator("#tile-440000")).to_contain_text("not monitored")
        page.goto(server["base"] + "/network/devices/e2e-r1")
        expect(page.locator("h1")).to_contain_text("e2e-r1")
        assert page.evaluate("typeof Chart") == "function"
        assert page.locator("canvas.chart").count() == 3
        page.screenshot(path=str(ARTIFACTS / "e2e-device.png"), full_page=True)

        # Static assets come from the instance, not a CDN.
        css = page.evaluate("[...document.styleSheets].map(s => s.href).filter(Boolean)")
        assert css and all(h.startswith(server["base"]) for h in css), css
        browser.close()
    assert not errors, errors


def test_assessment_report_page_charts_publish_and_english(server: dict) -> None:
    """A month of generated history, then the report page as an assessment officer: four charts drawn
    by the locally served Chart.js, a draft saved and published (confirm dialog), the archived PDF
    downloaded, and the page in English."""
    import datetime as dt

    from ecocloud_ops.network.synthetic import LinkDown, Scenario, write_history
    from tests.conftest import make_container

    env = server["env"]
    cst = dt.timezone(dt.timedelta(hours=8))
    c = make_container(Path(env["ECOCLOUD_INSTANCE_DIR"]), env["ECOCLOUD_DATABASE_URL"])
    try:
        scenario = Scenario(start=dt.datetime(2026, 10, 1, tzinfo=cst), end=dt.datetime(2026, 11, 1, tzinfo=cst),
                            events=[LinkDown("130000", dt.datetime(2026, 10, 9, 8, tzinfo=cst),
                                             dt.datetime(2026, 10, 9, 17, tzinfo=cst))])
        with c.unit_of_work() as svc:
            write_history(svc.session, scenario, demo=True, flap_window_minutes=10)
    finally:
        c.dispose()
    cli(env, "users", "create", "--username", "e2e.officer", "--role", "assessment_officer", "--site", "000000",
        "--password", PASSWORD)
    worker_log = Path(env["ECOCLOUD_INSTANCE_DIR"]).parent / "worker.log"
    worker = start(env, "worker", log=worker_log)
    try:
        _report_in_browser(server)
    finally:
        stop(worker)


def _report_in_browser(server: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda d: d.accept())
        page.goto(server["base"] + "/login")
        page.fill("#username", "e2e.officer")
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.goto(server["base"] + "/reports/")
        page.fill("#month", "2026-10")
        page.click("#open-month button")
        expect(page.locator("#report-title")).to_contain_text("2026-10")
        expect(page.locator("#demo-banner")).to_be_visible()
        drawn = page.evaluate("[...document.querySelectorAll('canvas[data-report-chart]')]"
                              ".map(c => !!Chart.getChart(c) && c.width > 0)")
        assert drawn == [True, True, True, True], drawn
        expect(page.locator("#tier-ministry_province .rate")).to_contain_text("%")
        page.click("#generate")
        expect(page.locator("#report-state")).to_have_text("草稿")
        page.screenshot(path=str(ARTIFACTS / "e2e-report-zh.png"), full_page=True)
        page.click("#publish")  # a job: the browser lands on its page and follows its progress
        expect(page.locator("h1")).to_contain_text("reports.publish")
        report_url = server["base"] + "/reports/connectivity/2026-10"
        for _ in range(120):
            page.goto(report_url)
            if page.locator("#report-state").inner_text() == "已发布":
                break
            page.wait_for_timeout(500)
        expect(page.locator("#report-state")).to_have_text("已发布")
        with page.expect_download() as dl:
            page.click("#download-pdf")
        pdf = Path(dl.value.path()).read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
        page.click("#lang-en")
        expect(page.locator("#report-title")).to_contain_text("Monthly connectivity assessment report")
        expect(page.locator("#report-state")).to_have_text("published")
        assert page.evaluate("[...document.querySelectorAll('canvas[data-report-chart]')]"
                             ".every(c => !!Chart.getChart(c))")
        page.screenshot(path=str(ARTIFACTS / "e2e-report-en.png"), full_page=True)
        browser.close()
    assert not errors, errors


def test_service_desk_file_work_and_rate_in_the_browser(server: dict) -> None:
    """A provincial user files a ticket in Chinese and sees it; a desk agent assigns and resolves it; the
    user rates the resolution."""
    from playwright.sync_api import expect, sync_playwright

    env = server["env"]
    for username, role, site in (("e2e.hebei", "provincial_staff", "130000"), ("e2e.desk", "desk_agent", "000000")):
        cli(env, "users", "create", "--username", username, "--role", role, "--site", site, "--password", PASSWORD)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        errors: list[str] = []

        def session(username: str) -> Any:
            page = browser.new_page(locale="zh-CN")
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server["base"] + "/login")
            page.fill("#username", username)
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            return page

        user = session("e2e.hebei")
        user.goto(server["base"] + "/servicedesk/new")
        expect(user.locator("#site")).to_have_value("130000")
        user.select_option("#category", "network_fault")
        user.fill("#title", "县局到省厅专线中断")
        user.fill("#description", "今天上午九点起无法访问省厅业务系统。")
        user.locator("#ticket-submit").dblclick()  # a double click files one ticket
        expect(user.locator("#ticket-title")).to_contain_text("县局到省厅专线中断")
        expect(user.locator("#ticket-status")).to_have_text("新建")
        number = user.locator("#ticket-title").inner_text().split(" ")[0]
        user.goto(server["base"] + "/servicedesk/")
        expect(user.locator("#tickets tbody tr")).to_have_count(1)
        expect(user.locator("#tickets")).to_contain_text(number)
        user.screenshot(path=str(ARTIFACTS / "e2e-servicedesk-filed.png"), full_page=True)

        agent = session("e2e.desk")
        agent.goto(server["base"] + f"/servicedesk/{number}")
        agent.fill("#assignee", "e2e.desk")
        agent.fill("#assign-form input[name=team]", "desk")
        agent.click("#assign-submit")
        expect(agent.locator("#ticket-status")).to_have_text("已分派")
        agent.click("#to-in_progress")
        expect(agent.locator("#ticket-status")).to_have_text("处理中")
        agent.fill("#transition-form input[name=comment]", "已更换光模块，链路恢复。")
        agent.click("#to-resolved")
        expect(agent.locator("#ticket-status")).to_have_text("已解决")

        user.goto(server["base"] + f"/servicedesk/{number}")
        expect(user.locator("#ticket-history")).to_contain_text("已更换光模块")
        user.check("#score-5")
        user.fill("#rate-form textarea[name=comment]", "处理及时")
        user.click("#rate-submit")
        expect(user.locator("#ticket-rating")).to_contain_text("5/5")
        user.screenshot(path=str(ARTIFACTS / "e2e-servicedesk-rated.png"), full_page=True)
        browser.close()
    assert not errors, errors
