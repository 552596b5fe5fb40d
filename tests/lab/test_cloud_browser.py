"""The cloud console end to end in Debian's Chromium against the real OpenStack lab: ``ecocloud-ops serve`` and
``ecocloud-ops worker`` as child processes on a fresh database, a cloud operator who creates a tenant, onboards it
into the egov pool, syncs the pools and requests two VMs with a double-clicked submit, then watches the request
page follow the provisioning live. OpenStack itself (an admin connection) and the database are the judges."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ecocloud_ops.cloud.models import VmRequest
from ecocloud_ops.lab.cloud_demo import POOLS
from tests.conftest import ARTIFACTS, BACKEND, PASSWORD, drop_pg_database, fresh_database_url, make_container
from tests.e2e.peers import cli, env_for, free_port, start, stop, wait_health
from tests.e2e.test_browser import ARGS, CHROMIUM

pytestmark = [
    pytest.mark.lab,
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:openstack.*"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack.*"),
]
POOL = "egov"
ADDRESS = re.compile(r"^10\.\d+\.\d+\.\d+$")


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def _choose(page: Any, select: str, pool: str, value: str) -> None:
    """Select the option of ``value`` offered for ``pool`` (every pool's flavors and images share one select)."""
    index = page.eval_on_selector(
        select, "(s, [p, v]) => [...s.options].findIndex(o => o.dataset.pool === p && o.value === v)", [pool, value])
    assert index >= 0, f"{select}: no option {value} for the pool {pool}"
    page.select_option(select, index=index)
    assert page.eval_on_selector(select, "s => [s.value, s.selectedOptions[0].dataset.pool]") == [value, pool]


def test_tenant_onboarding_and_a_double_clicked_vm_request_in_the_browser(
        oslab_clouds_yaml: Path, admin: Any, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: scripts/test.sh installs it"
    t_start = time.monotonic()
    url = fresh_database_url(tmp_path, f"ecocloud_cloudui_{os.getpid()}")
    instance = tmp_path / "instance"
    env = env_for(instance, url)
    env.update(ECOCLOUD_CLOUD_POOLS=json.dumps(POOLS), ECOCLOUD_CLOUD_SYNC_MINUTES="1",
               ECOCLOUD_CLOUDS_YAML=str(oslab_clouds_yaml))
    cli(env, "db", "upgrade")
    cli(env, "sites", "seed-national")
    account = json.loads(cli(env, "users", "create", "--username", "e2e.cloudops", "--role", "cloud_ops", "--site",
                             "000000", "--password", PASSWORD, "--json"))
    code = f"ui{uuid.uuid4().hex[:8]}"
    os_user = admin.identity.create_user(name=f"{code}-ops", password=uuid.uuid4().hex, domain_id="default")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
    server = start(env, "serve", "--port", str(port), log=serve_log)
    worker = start(env, "worker", log=worker_log)
    ok = False
    try:
        wait_health(base, server, serve_log, worker=True)
        assert worker.poll() is None, f"worker exited with {worker.returncode}:\n{_tail(worker_log)}"
        print(f"\n[cloud-ui] console and worker up in {time.monotonic() - t_start:.1f} s")
        uid, request_id = _in_browser(base, account, code, os_user.name)
        # OpenStack's view: the tenant's project in the egov zone holds exactly the two servers
        project = admin.identity.find_project(f"{code}-{POOL}", ignore_missing=False)
        servers = list(admin.compute.servers(details=True, all_projects=True, project_id=project.id))
        assert sorted(s.name for s in servers) == ["web-1", "web-2"], [s.name for s in servers]
        for s in servers:
            assert s.status == "ACTIVE" and s.availability_zone == f"az-{POOL}", (s.name, s.status)
            assert [a["addr"] for a in s.addresses[f"{code}-{POOL}-net"]][0].startswith("10.")
        assert {r.role["id"] for r in admin.identity.role_assignments(scope_project_id=project.id,
                                                                      user_id=os_user.id)} == {
            admin.identity.find_role("member", ignore_missing=False).id}
        # the platform's view: one request (the form's uid), two VMs
        c = make_container(instance, url)
        try:
            with c.unit_of_work() as svc:
                requests = list(svc.session.execute(select(VmRequest)).scalars())
                assert [(r.id, r.uid, r.count, r.status) for r in requests] == [(request_id, uid, 2, "succeeded")]
        finally:
            c.dispose()
        vms = json.loads(cli(env, "cloud", "vms", "list", "--tenant", code, "--json"))
        assert sorted((v["name"], v["stage"], v["status"]) for v in vms) == [
            ("web-1", "active", "ACTIVE"), ("web-2", "active", "ACTIVE")]
        assert {v["server_id"] for v in vms} == {s.id for s in servers}
        ok = True
        print(f"[cloud-ui] done in {time.monotonic() - t_start:.1f} s")
    finally:
        stop(server)
        stop(worker)
        if not ok:
            print(f"--- serve.log ---\n{_tail(serve_log)}\n--- worker.log ---\n{_tail(worker_log)}")
        if BACKEND == "postgresql":
            drop_pg_database(url)


def _in_browser(base: str, account: dict[str, Any], code: str, os_user: str) -> tuple[str, int]:
    """The operator's part, in zh-CN; returns the VM request form's uid and the request's id."""
    import pyotp
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                    if r.status >= 400 and not (r.status == 401 and "/login?" in r.url + "?") else None)

            # log in (2FA when the policy asks it of the role)
            page.goto(base + "/login")
            expect(page.locator("h1")).to_have_text("登录")
            page.fill("#username", account["username"])
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            if account.get("totp_secret"):
                expect(page.locator("h1")).to_have_text("双因素认证")
                page.fill("#code", pyotp.TOTP(account["totp_secret"]).now())
                page.click("#totp-submit")
            expect(page.locator("#logout")).to_be_visible()

            # a new tenant through the console form
            page.goto(base + "/cloud/")
            page.click("#new-tenant")
            expect(page.locator("h1")).to_have_text("新建租户")
            page.fill("#name", f"生态环境大数据平台 {code}")
            page.fill("#code", code)
            expect(page.locator("#site_code")).to_have_value("000000")
            page.fill("#description", "浏览器端到端测试的应用系统")
            page.fill("#contacts", "王工, 010-66556001, wang@example.gov.cn")
            page.fill("#users", os_user)
            page.click("#tenant-submit")
            expect(page.locator("#tenant-name")).to_contain_text(code)
            expect(page.locator("#tenant-users")).to_have_text(os_user)
            tenant_id = int(re.search(r"/cloud/tenants/(\d+)$", page.url).group(1))  # type: ignore[union-attr]

            # onboarded into the egov pool by the worker; the tenant page shows the project active
            t0 = time.monotonic()
            page.select_option("#onboard-pool", POOL)
            page.click("#onboard-submit")
            status = page.locator(f"#project-{POOL} .project-status")
            expect(status).to_be_visible()
            for _ in range(240):
                state = status.get_attribute("data-status")
                if state in ("active", "failed"):
                    break
                page.wait_for_timeout(500)
                page.reload()
            assert status.get_attribute("data-status") == "active", page.locator(f"#project-{POOL}").inner_text()
            expect(page.locator(f"#steps-{POOL} .step [data-status=done]")).to_have_count(5)
            print(f"[cloud-ui] onboarding seen active in {time.monotonic() - t0:.1f} s")
            page.screenshot(path=str(ARTIFACTS / "e2e-cloud-tenant-zh.png"), full_page=True)

            # "sync now", then the request form offers the pool's flavors and images
            t0 = time.monotonic()
            page.goto(base + "/cloud/")
            page.click("#sync-now")
            job = page.locator("#job")
            expect(job).to_be_visible()
            expect(job).to_have_attribute("data-state", "succeeded", timeout=120_000)  # the job page reloads itself
            flavor = f'#flavor option[data-pool="{POOL}"][value="m1.tiny"]'
            image = f'#image option[data-pool="{POOL}"][value="cirros-fake"]'
            for _ in range(120):  # a scheduled sync running at the same time makes the button's job skip
                page.goto(base + f"/cloud/requests/new?tenant_id={tenant_id}&pool={POOL}")
                if page.locator(flavor).count() and page.locator(image).count():
                    break
                page.wait_for_timeout(1000)
            print(f"[cloud-ui] pools synced in {time.monotonic() - t0:.1f} s")

            # two VMs, the submit button double-clicked
            expect(page.locator("h1")).to_have_text("申请云主机")
            page.select_option("#tenant_id", str(tenant_id))
            page.select_option("#pool", POOL)
            page.fill("#name", "web")
            page.fill("#count", "2")
            _choose(page, "#flavor", POOL, "m1.tiny")
            _choose(page, "#image", POOL, "cirros-fake")
            uid = page.input_value("#uid")
            assert re.fullmatch(r"[0-9a-f]{32}", uid), uid
            t0 = time.monotonic()
            page.locator("#request-submit").dblclick()
            expect(page).to_have_url(re.compile(r"/cloud/requests/\d+$"))
            request_id = int(page.url.rsplit("/", 1)[1])
            expect(page.locator("h1")).to_contain_text(f"#{request_id}")
            rows = page.locator("#request-vms tbody tr")
            expect(rows).to_have_count(2)

            # the page follows the provisioning by itself: no navigation from here on
            navigations: list[str] = []
            page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)
            page.evaluate("window.__stillTheSamePage = true")
            for i in range(2):
                row = rows.nth(i)
                expect(row.locator("[data-stage]")).to_have_attribute("data-stage", "active", timeout=180_000)
                expect(row.locator("[data-stage]")).to_have_text("运行中")
                expect(row.locator("td").nth(2)).to_have_text("ACTIVE")
                expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^10\.\d+\.\d+\.\d+"))
            expect(page.locator("#request-status")).to_have_text("成功", timeout=60_000)
            print(f"[cloud-ui] 2 VMs ACTIVE on the request page {time.monotonic() - t0:.1f} s after the submit")
            assert page.evaluate("window.__stillTheSamePage") is True and navigations == [], navigations
            names = sorted(rows.nth(i).locator("td").nth(0).inner_text() for i in range(2))
            assert names == ["web-1", "web-2"], names
            for i in range(2):
                assert ADDRESS.match(rows.nth(i).locator("td").nth(3).inner_text().split(",")[0].strip())
            expect(page.locator("#request-error")).to_be_hidden()
            page.screenshot(path=str(ARTIFACTS / "e2e-cloud-request-zh.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    return uid, request_id
