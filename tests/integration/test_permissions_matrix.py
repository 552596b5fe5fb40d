"""Every registered route x every role: the declared permission is what is enforced, and objects
outside a user's site scope answer 404 with no data."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ecocloud_ops.audit.service import Actor
from ecocloud_ops.auth.permissions import AUTHENTICATED, PUBLIC, Role, has_permission
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.web.security import SECOND_FACTOR
from tests.conftest import TEST_ACTOR, Account, api_token

HEBEI, GUANGDONG = "130000", "440000"
ARG = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


@dataclass
class World:
    accounts: dict[str, Account]
    tokens: dict[str, str]
    own_token_ids: dict[str, int]
    objects: dict[str, dict[str, Any]]  # "in" / "out" -> {arg: value}
    secrets: dict[str, str]  # names that must not leak from out-of-scope objects


@pytest.fixture
def world(container: Container, make_user: Callable[..., Account], fake_cloud: Any) -> World:
    accounts, tokens, own = {}, {}, {}
    for role in Role:
        site = HEBEI if role in (Role.PROVINCIAL_STAFF, Role.VENDOR_ENGINEER) else "000000"
        acc = make_user(f"r.{role.value}", role.value, site, team="vendor-a" if role == Role.VENDOR_ENGINEER else None)
        accounts[role.value] = acc
        tokens[role.value] = api_token(container, acc)
        with container.unit_of_work() as svc:
            t, _ = svc.auth.create_token(TEST_ACTOR, svc.auth.by_username(acc.username), "own")
            own[role.value] = t.id
    hebei_user = make_user("target.hebei", "provincial_staff", "130100")
    gd_user = make_user("target.gd", "provincial_staff", "440100")
    objects: dict[str, dict[str, Any]] = {}
    for key, user, site in (("in", hebei_user, "130100"), ("out", gd_user, "440100")):
        with container.unit_of_work() as svc:
            u = svc.auth.by_username(user.username)
            job = svc.jobs.enqueue(Actor(user.username), "system.sleep", {"seconds": 0}, site_code=site)
            tok, _ = svc.auth.create_token(TEST_ACTOR, u, "target")
            s = svc.auth.start_session(u, TEST_ACTOR, "t", fully=True)
            from ecocloud_ops.network.inventory import DeviceSpec

            hostname = f"dev-{key}-{site}"
            spec = DeviceSpec(hostname=hostname, address=f"198.18.200.{len(objects) + 1}", site_code=site,
                              snmp_community="c")
            svc.devices.import_inventory(TEST_ACTOR, [spec])
            from ecocloud_ops.db import utcnow
            from ecocloud_ops.network.models import ConfigBackup

            device = svc.devices.get(hostname, Scope.everything())
            backup = ConfigBackup(device_id=device.id, taken_at=utcnow(), confirmed_at=utcnow(), sha256="0" * 64,
                                  size=8, content_enc=container.box.encrypt(f"sysname {hostname}\n"))
            svc.session.add(backup)
            svc.session.flush()
            # A queued playbook run, scoped like its job by the site it is started for.
            from ecocloud_ops.automation.service import PlaybookService

            run = PlaybookService.of(svc).start(Actor(user.username), "sleep", {"seconds": 1}, site_code=site)
            objects[key] = {"code": site, "user_id": u.id, "job_id": job.id, "token_id": tok.id, "sid": s.id,
                            "hostname": hostname, "backup_id": backup.id, "run_id": run.id}
    # A published month (readable in every scope) and a month without a report (national preview only).
    import datetime as dt

    from ecocloud_ops.network.models import PollCycle

    with container.unit_of_work() as svc:
        first = dt.datetime(2026, 9, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        svc.session.add(PollCycle(started_at=first, finished_at=first, devices=2))
    with container.unit_of_work() as svc:
        svc.reports.generate(TEST_ACTOR, "2026-09")
    from ecocloud_ops.reports.service import publish_report

    publish_report(container, TEST_ACTOR, "2026-09")
    objects["in"] |= {"month": "2026-09", "fmt": "json"}
    objects["out"] |= {"month": "2026-10", "fmt": "json"}
    # Tickets: one in Hebei worked by vendor-a (the matrix's vendor), one in Guangdong worked by vendor-b.
    with container.unit_of_work() as svc:
        for key, site, team in (("in", "130100", "vendor-a"), ("out", "440100", "vendor-b")):
            t = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="incident", title=f"ticket {key}",
                                   site_code=site)
            svc.tickets.assign(TEST_ACTOR, t, team=team, assignee=None)
            objects[key]["ref"] = t.number
            from ecocloud_ops.servicedesk.ratings import rating_token

            objects[key]["token"] = rating_token(t, container.secret_key)
            objects[key]["team"] = team
            # A published article of the ticket's site and an attachment on the ticket.
            from ecocloud_ops.servicedesk.attachments import AttachmentService
            from ecocloud_ops.servicedesk.kb import KnowledgeBase

            art = KnowledgeBase(svc.session, svc.audit).create(
                TEST_ACTOR, svc.auth.by_username("r.admin"), Scope.everything(), title=f"kb-title-{key}",
                body="steps", site_code=site, published=True)
            att = AttachmentService(svc.session, svc.audit, container.settings.files_dir).add(
                TEST_ACTOR, t, f"attachment-{key}.txt", b"log line\n")
            objects[key] |= {"article_id": art.id, "attachment_id": att.id}
    # A protected service per scope (Hebei in, Guangdong out) with a plan, a queued drill and a finding.
    with container.unit_of_work() as svc:
        svc.dr.create_center(TEST_ACTOR, code="dc-prod", name="生产中心", role="production")
        svc.dr.create_center(TEST_ACTOR, code="dc-dr", name="同城灾备中心", role="same_city_dr")
        for key, site in (("in", "130100"), ("out", "440100")):
            ps = svc.dr.save_service(TEST_ACTOR, name=f"dr-service-{key}", site_code=site, primary_center="dc-prod",
                                     dr_center="dc-dr", rto_seconds=60, rpo_seconds=5, health_kind="tcp",
                                     health_target="127.0.0.1:9")
            plan = svc.dr.save_plan(TEST_ACTOR, ps, name=f"plan-{key}", mode="test",
                                    steps=[{"name": "ping", "kind": "playbook", "playbook": "ping"}])
            drill = svc.dr.start(TEST_ACTOR, plan)
            finding = svc.dr.add_finding(TEST_ACTOR, drill, "info", f"finding-{key}", open_ticket=False)
            objects[key] |= {"service_id": ps.id, "plan_id": plan.id, "drill_id": drill.id, "finding_id": finding.id}
    # A cloud tenant per scope, onboarded into the internet pool (FakeCloud), with a provisioned VM (its
    # password generated, so that the reveal answers) and a pending quota request filed through the service desk.
    from ecocloud_ops.cloud.models import CloudServiceRequest
    from ecocloud_ops.jobs.runner import Worker

    for key, site in (("in", "130100"), ("out", "440100")):
        with container.unit_of_work() as svc:
            tenant = svc.cloud.save_tenant(TEST_ACTOR, name=f"cloud-tenant-{key}", code=f"tenant-{key}",
                                           site_code=site, users=["alice"])
            job_id = svc.cloud.onboard(TEST_ACTOR, tenant, "internet").job_id
            tenant_id = tenant.id
        assert job_id is not None
        Worker(container).run_job_now(job_id)
        with container.unit_of_work() as svc:
            tenant = svc.cloud.tenant(tenant_id, Scope.everything())
            req, _ = svc.cloud.request_vms(TEST_ACTOR, tenant, "internet", name=f"vm-{key}", flavor="m1.tiny",
                                           image="cirros-fake", password_policy="generated")
            request_id, job_id = req.id, req.job_id
            ticket = svc.tickets.create(TEST_ACTOR, Scope.everything(), type="service_request",
                                        title=f"quota {key}", category="cloud_resource", site_code=site)
            cloud_req = CloudServiceRequest(ticket_id=ticket.id, kind="quota_increase", tenant_id=tenant_id,
                                            pool="internet", params={"cores": 30}, status="pending")
            svc.session.add(cloud_req)
            svc.session.flush()
            cloud_request_id = cloud_req.id
        assert job_id is not None
        Worker(container).run_job_now(job_id)
        with container.unit_of_work() as svc:
            (vm,) = svc.cloud.request_vms_of(svc.cloud.vm_request(request_id, Scope.everything()))
            assert vm.stage == "active", vm.fault
            objects[key] |= {"tenant_id": tenant_id, "request_id": request_id, "vm_id": vm.id,
                             "cloud_request_id": cloud_request_id}
    # A pool is shared infrastructure, no province's object: "out" names another pool.
    objects["in"]["pool"], objects["out"]["pool"] = "internet", "egov"
    # Data of the out-of-scope objects that must not appear (their ids may: the caller typed them).
    return World(accounts, tokens, own, objects, {"code": "广州市", "user_id": "target.gd",
                                                  "hostname": "198.18.200.2", "article_id": "kb-title-out",
                                                  "attachment_id": "attachment-out.txt",
                                                  "service_id": "dr-service-out", "drill_id": "finding-out",
                                                  "tenant_id": "cloud-tenant-out", "vm_id": "vm-out"})


def console_client(app: Flask, container: Container, acc: Account) -> FlaskClient:
    client = app.test_client()
    with container.unit_of_work() as svc:
        s = svc.auth.start_session(svc.auth.by_username(acc.username), TEST_ACTOR, "matrix", fully=True)
    with client.session_transaction() as sess:
        sess["sid"] = s.id
    return client


OWN_TOKEN_ENDPOINTS = {"auth.revoke_token", "api.revoke_token"}


def routes(app: Flask) -> list[tuple[str, str, Any]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, rule))
    return out


def build_url(rule: Any, values: dict[str, Any]) -> str:
    return ARG.sub(lambda m: str(values[m.group(1)]), rule.rule)


def call(app: Flask, container: Container, world: World, role: str, method: str, url: str) -> Any:
    if url.startswith("/api/"):
        client = app.test_client()
        return client.open(url, method=method, headers={"Authorization": f"Bearer {world.tokens[role]}"})
    client = console_client(app, container, world.accounts[role])
    return client.open(url, method=method, data={})


def test_every_route_declares_a_permission(app: Flask) -> None:
    missing = [f"{m} {r.rule} ({e})" for e, m, r in routes(app)
               if getattr(app.view_functions[e], "_permission", None) is None]
    assert not missing, f"routes without a declared permission: {missing}"


def test_every_route_and_role_is_allowed_or_denied_as_declared(app: Flask, container: Container,
                                                                world: World) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    failures = []
    checked = 0
    for endpoint, method, rule in routes(app):
        perm = app.view_functions[endpoint]._permission
        for role in Role:
            values = dict(world.objects["in"])
            if endpoint in OWN_TOKEN_ENDPOINTS:
                values["token_id"] = world.own_token_ids[role.value]
            url = build_url(rule, values)
            r = call(app, container, world, role.value, method, url)
            checked += 1
            allowed = perm in (PUBLIC, AUTHENTICATED, SECOND_FACTOR) or has_permission(role.value, perm)
            to_login = r.status_code == 302 and "/login" in (r.location or "") and endpoint != "auth.logout"
            if allowed and (r.status_code in (401, 403, 404) or r.status_code >= 500 or to_login):
                failures.append(f"{role.value} should reach {method} {url} ({perm}) but got {r.status_code}")
            if not allowed and r.status_code != 403:
                failures.append(f"{role.value} should be refused {method} {url} ({perm}) but got {r.status_code}")
    assert checked > 300
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", ["provincial_staff", "vendor_engineer"])
def test_objects_of_another_province_are_404_without_data(app: Flask, container: Container, world: World,
                                                         role: str) -> None:
    checked = 0
    for endpoint, method, rule in routes(app):
        if method != "GET":
            continue
        args = set(ARG.findall(rule.rule))
        if not args or args & {"token_id", "sid", "token"}:  # own tokens/sessions; signed e-mail links
            continue
        if endpoint == "servicedesk.sla_report_file":  # a month, not a province's object: rows filtered per team
            continue
        perm = app.view_functions[endpoint]._permission
        if not has_permission(role, perm):
            continue
        url = build_url(rule, world.objects["out"])
        r = call(app, container, world, role, method, url)
        body = r.get_data(as_text=True)
        assert r.status_code == 404, f"{role} GET {url}: {r.status_code}"
        for secret in world.secrets.values():
            assert secret not in body, f"{url} leaks {secret}"
        inside = call(app, container, world, role, method, build_url(rule, world.objects["in"]))
        assert inside.status_code == 200, f"{role} GET in-scope {rule.rule}: {inside.status_code}"
        checked += 1
    assert checked >= 2


def test_national_roles_see_other_provinces(app: Flask, container: Container, world: World) -> None:
    r = call(app, container, world, "network_ops", "GET", f"/api/v1/sites/{GUANGDONG}")
    assert r.status_code == 200 and r.json["name"] == "广东省"
    r = call(app, container, world, "auditor", "GET", f"/users/{world.objects['out']['user_id']}")
    assert r.status_code == 200 and "target.gd" in r.get_data(as_text=True)
