"""Drill runs through the worker with local playbooks (ansible_connection=local) and real health-check peers:
steps in order, measured RTO, rollback on a failed step and on an abort, one drill per service, manual
confirmation by role, orphaned drills, schedules, overdue services, findings opening change tickets, the
RPO markers against a real PostgreSQL, the API and the CLI. The full failover drills run in the lab
(tests/lab/test_dr_lab.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from ecocloud_ops.audit.service import Actor
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.dr.markers import Ack, MarkerWriter, newest_marker, rpo_from
from ecocloud_ops.dr.models import DrillRun, DrillStep, ProtectedService
from ecocloud_ops.errors import Conflict, InvalidTransition, PermissionDenied, ValidationFailed
from ecocloud_ops.jobs.models import Job
from ecocloud_ops.jobs.runner import Worker
from ecocloud_ops.servicedesk.models import Ticket
from tests.conftest import Account, api_token, recreate_pg_database

COORD = Actor("d.coord", "dr_coordinator", channel="api")
EVERY = Scope.everything()
EXE = str(Path(sys.executable).with_name("ecocloud-ops"))
PG = os.environ.get("ECOCLOUD_TEST_PG_URL") or "postgresql+psycopg://ecocloud:ecocloud@127.0.0.1:5432/ecocloud_test"


@pytest.fixture(autouse=True)
def sites(small_tree: None) -> None:
    """Findings open change tickets, which belong to a site (the ministry)."""


@pytest.fixture
def listening() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel completes the handshake from the backlog)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


@pytest.fixture
def closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def make_service(container: Container, target: str, **kw: Any) -> int:
    with container.unit_of_work() as svc:
        if not svc.dr.centers():
            svc.dr.create_center(COORD, code="bj-prod", name="北京生产中心", role="production", location="北京")
            svc.dr.create_center(COORD, code="bj-dr", name="北京同城灾备中心", role="same_city_dr", location="北京亦庄")
        fields = dict(name="环境质量监测系统", primary_center="bj-prod", dr_center="bj-dr", rto_seconds=60,
                      rpo_seconds=5, health_kind="tcp", health_target=target) | kw
        return svc.dr.save_service(COORD, **fields).id


def make_plan(container: Container, service_id: int, steps: list[dict[str, Any]], name: str = "plan",
              mode: str = "planned_migration") -> int:
    with container.unit_of_work() as svc:
        s = svc.dr.service(service_id, EVERY)
        return svc.dr.save_plan(COORD, s, name=name, mode=mode, steps=steps).id


def start(container: Container, plan_id: int, actor: Actor = COORD) -> tuple[int, int]:
    with container.unit_of_work() as svc:
        d = svc.dr.start(actor, svc.dr.plan(plan_id, EVERY))
        assert d.job_id is not None
        return d.id, d.job_id


def execute(container: Container, job_id: int) -> None:
    Worker(container, name="test-worker:1").run_job_now(job_id)


def load(container: Container, drill_id: int) -> tuple[DrillRun, list[DrillStep], list[Any], Job]:
    with container.unit_of_work() as svc:
        d = svc.session.get(DrillRun, drill_id)
        assert d is not None
        steps = svc.dr.steps(d)
        findings = svc.dr.findings(d)
        job = svc.session.get(Job, d.job_id)
        assert job is not None
        svc.session.expunge_all()
        return d, steps, findings, job


def wait_for(pred: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


PING = {"name": "Switch (ping)", "kind": "playbook", "playbook": "ping", "switch": True,
        "rollback": {"name": "Undo the switch (ping)", "kind": "playbook", "playbook": "ping"}}
HEALTH = {"name": "Health check", "kind": "health_check", "target": "service", "timeout": 10}


def test_a_drill_runs_its_steps_and_measures_the_rto(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    plan = make_plan(container, sid, [PING, HEALTH, {"name": "Settle", "kind": "wait", "seconds": 1}])
    drill_id, job_id = start(container, plan)
    execute(container, job_id)
    d, steps, findings, job = load(container, drill_id)
    assert d.status == "succeeded" and job.state == "succeeded"
    assert [(s.phase, s.name, s.status) for s in steps] == [
        ("step", "Switch (ping)", "succeeded"), ("step", "Health check", "succeeded"), ("step", "Settle", "succeeded")]
    assert steps[0].playbook_run_id is not None and "successful" in steps[0].message
    # RTO: from the switch step's start to the first healthy answer (the health step ends right after it).
    assert d.switch_at == steps[0].started_at
    assert d.rto_seconds is not None and d.healthy_at is not None
    assert steps[0].finished_at is not None and steps[1].finished_at is not None
    expected = (steps[1].finished_at - steps[0].started_at).total_seconds()
    assert abs(d.rto_seconds - expected) < 1.0
    assert d.rto_seconds >= (steps[0].finished_at - steps[0].started_at).total_seconds()  # includes the playbook
    assert d.rto_met is True
    # No marker connection configured: the RPO is not measured, and that is a finding with a change ticket.
    assert d.rpo_seconds is None and d.rpo_met is None
    assert [f.severity for f in findings] == ["warning"] and "RPO not measured" in findings[0].text
    assert findings[0].ticket_number and findings[0].ticket_number.startswith("CHG-")
    with container.unit_of_work() as svc:
        service = svc.session.get(ProtectedService, sid)
        assert service is not None and service.active_drill_id is None
        assert service.last_success_at == d.finished_at
        ticket = svc.session.execute(select(Ticket).where(Ticket.number == findings[0].ticket_number)).scalar_one()
        assert ticket.type == "change" and f"#{drill_id}" in ticket.title


def test_a_failing_step_rolls_back_the_started_steps_in_reverse(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    first = {"name": "Prepare", "kind": "playbook", "playbook": "ping",
             "rollback": {"name": "Undo prepare", "kind": "playbook", "playbook": "ping"}}
    failing = {"name": "Broken failover", "kind": "playbook", "playbook": "fail", "switch": True,
               "rollback": {"name": "Undo failover", "kind": "playbook", "playbook": "ping"}}
    never = {"name": "Never reached", "kind": "wait", "seconds": 1}
    drill_id, job_id = start(container, make_plan(container, sid, [first, failing, never]))
    execute(container, job_id)
    d, steps, findings, job = load(container, drill_id)
    assert d.status == "failed" and job.state == "failed"
    assert "step 2 (Broken failover) failed" in (d.status_reason or "") and "failed" in (d.status_reason or "")
    assert [(s.phase, s.name, s.status) for s in steps] == [
        ("step", "Prepare", "succeeded"), ("step", "Broken failover", "failed"), ("step", "Never reached", "skipped"),
        ("rollback", "Undo failover", "succeeded"), ("rollback", "Undo prepare", "succeeded")]
    rb = [s for s in steps if s.phase == "rollback"]
    assert rb[0].started_at is not None and rb[1].started_at is not None and rb[0].started_at < rb[1].started_at
    assert d.rollback == "succeeded" and d.rto_seconds is None
    assert [(f.severity, f.text.split(":")[0]) for f in findings] == [("critical", "step 2 (Broken failover) failed")]
    assert findings[0].ticket_number
    with container.unit_of_work() as svc:
        service = svc.session.get(ProtectedService, sid)
        assert service is not None and service.active_drill_id is None and service.last_success_at is None


def test_a_failing_rollback_is_reported_as_needing_manual_work(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    steps = [{"name": "A", "kind": "playbook", "playbook": "ping",
              "rollback": {"name": "Undo A", "kind": "playbook", "playbook": "ping"}},
             {"name": "B", "kind": "playbook", "playbook": "ping",
              "rollback": {"name": "Undo B (broken)", "kind": "playbook", "playbook": "fail"}},
             {"name": "C", "kind": "playbook", "playbook": "fail"}]
    drill_id, job_id = start(container, make_plan(container, sid, steps))
    execute(container, job_id)
    d, rows, findings, _ = load(container, drill_id)
    assert d.status == "failed" and d.rollback == "failed"
    assert [(s.name, s.status) for s in rows if s.phase == "rollback"] == [("Undo B (broken)", "failed"),
                                                                           ("Undo A", "skipped")]
    assert any(f.severity == "critical" and "manual recovery" in f.text for f in findings)


def test_abort_cancels_the_running_playbook_and_rolls_back(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    steps = [{"name": "Prepare", "kind": "playbook", "playbook": "ping",
              "rollback": {"name": "Undo prepare", "kind": "playbook", "playbook": "ping"}},
             {"name": "Long failover", "kind": "playbook", "playbook": "sleep", "extra_vars": {"seconds": 60},
              "switch": True, "rollback": {"name": "Undo failover", "kind": "playbook", "playbook": "ping"}},
             HEALTH]
    drill_id, job_id = start(container, make_plan(container, sid, steps))
    runner = threading.Thread(target=execute, args=(container, job_id))
    runner.start()

    def sleeping() -> bool:
        _, rows, _, _ = load(container, drill_id)
        return rows[1].status == "running" and rows[1].playbook_run_id is not None
    wait_for(sleeping, 60, "the long step to run")
    time.sleep(1.0)  # ansible-playbook is in its sleep task
    with container.unit_of_work() as svc:
        svc.dr.abort(Actor("d.coord", "dr_coordinator"), svc.dr.drill(drill_id, EVERY))
    t0 = time.monotonic()
    runner.join(120)
    assert not runner.is_alive()
    d, rows, findings, job = load(container, drill_id)
    assert d.status == "aborted" and job.state == "canceled" and d.abort_requested_by == "d.coord"
    assert [(s.phase, s.name, s.status) for s in rows] == [
        ("step", "Prepare", "succeeded"), ("step", "Long failover", "canceled"), ("step", "Health check", "skipped"),
        ("rollback", "Undo failover", "succeeded"), ("rollback", "Undo prepare", "succeeded")]
    assert "canceled" in rows[1].message
    assert time.monotonic() - t0 < 60  # the sleep was stopped, not waited out
    assert d.rollback == "succeeded" and findings == []
    with container.unit_of_work() as svc:
        from ecocloud_ops.automation.models import PlaybookRun

        run = svc.session.get(PlaybookRun, rows[1].playbook_run_id)
        assert run is not None and run.status == "canceled"
        with pytest.raises(InvalidTransition):
            svc.dr.abort(COORD, svc.dr.drill(drill_id, EVERY))


def test_one_drill_at_a_time_per_service(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    plan = make_plan(container, sid, [PING, HEALTH])
    drill_id, job_id = start(container, plan)
    with pytest.raises(Conflict, match=f"drill #{drill_id} .*started by d.coord"):
        start(container, plan)
    other = make_plan(container, sid, [PING], name="other plan")
    with pytest.raises(Conflict, match=f"#{drill_id}"):
        start(container, other)
    # An abort of the queued drill frees the service at once.
    with container.unit_of_work() as svc:
        d = svc.dr.abort(COORD, svc.dr.drill(drill_id, EVERY))
        assert d.status == "aborted"
    d2, job2 = start(container, plan)
    execute(container, job2)
    assert load(container, d2)[0].status == "succeeded"
    assert load(container, drill_id)[3].state == "canceled"


def test_concurrent_starts_claim_the_service_once(container: Container, listening: str) -> None:
    """Two requests at the same moment (a double click): exactly one drill."""
    sid = make_service(container, listening)
    plan = make_plan(container, sid, [PING])
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def go() -> None:
        barrier.wait()
        try:
            start(container, plan)
            outcomes.append("started")
        except Conflict:
            outcomes.append("refused")
        except Exception as exc:  # SQLite's writer lock: the loser may also fail to get the lock
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("started") == 1
    with container.unit_of_work() as svc:
        assert len(svc.dr.drills(EVERY, service_id=sid)[0]) == 1


def test_manual_step_waits_for_the_named_role(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    manual = {"name": "Business owner agrees", "kind": "manual", "role": "dr_coordinator",
              "instructions": "Call the duty manager", "timeout": 60}
    drill_id, job_id = start(container, make_plan(container, sid, [manual, PING, HEALTH]))
    runner = threading.Thread(target=execute, args=(container, job_id))
    runner.start()
    wait_for(lambda: load(container, drill_id)[0].status == "waiting", 30, "the drill to wait")
    assert load(container, drill_id)[1][0].status == "waiting"
    with container.unit_of_work() as svc:
        with pytest.raises(PermissionDenied, match="dr_coordinator"):
            svc.dr.confirm(Actor("n.ops", "network_ops"), svc.dr.drill(drill_id, EVERY))
    with container.unit_of_work() as svc:
        svc.dr.confirm(Actor("d.coord", "dr_coordinator"), svc.dr.drill(drill_id, EVERY), note="approved by phone")
    runner.join(120)
    d, rows, _, _ = load(container, drill_id)
    assert d.status == "succeeded"
    assert rows[0].status == "succeeded" and rows[0].confirmed_by == "d.coord"
    assert "approved by phone" in rows[0].message
    with container.unit_of_work() as svc:
        with pytest.raises(InvalidTransition):
            svc.dr.confirm(COORD, svc.dr.drill(drill_id, EVERY))


def test_a_rejected_manual_step_fails_the_drill(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    manual = {"name": "Go / no go", "kind": "manual", "role": "dr_coordinator", "timeout": 60}
    drill_id, job_id = start(container, make_plan(container, sid, [PING, manual]))
    runner = threading.Thread(target=execute, args=(container, job_id))
    runner.start()
    wait_for(lambda: load(container, drill_id)[0].status == "waiting", 60, "the drill to wait")
    with container.unit_of_work() as svc:
        svc.dr.confirm(COORD, svc.dr.drill(drill_id, EVERY), ok=False, note="network team not ready")
    runner.join(120)
    d, rows, _, _ = load(container, drill_id)
    assert d.status == "failed" and "network team not ready" in (d.status_reason or "")
    assert [(s.name, s.status) for s in rows if s.phase == "rollback"] == [("Undo the switch (ping)", "succeeded")]


def test_unhealthy_service_fails_the_health_step(container: Container, closed_port: str) -> None:
    sid = make_service(container, closed_port)
    drill_id, job_id = start(container, make_plan(container, sid, [PING, HEALTH | {"timeout": 2}]))
    execute(container, job_id)
    d, rows, findings, _ = load(container, drill_id)
    assert d.status == "failed" and d.rto_seconds is None
    assert rows[1].status == "failed" and "not healthy after" in rows[1].message
    assert "ConnectionRefusedError" in rows[1].message
    assert any("Health check" in f.text for f in findings)


def test_a_drill_whose_worker_died_is_marked_error(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    drill_id, job_id = start(container, make_plan(container, sid, [PING]))
    with container.unit_of_work() as svc:
        job = svc.session.get(Job, job_id)
        assert job is not None
        job.state, job.worker = "running", "dead-worker:1"
        d = svc.session.get(DrillRun, drill_id)
        assert d is not None
        d.status = "running"
    with container.unit_of_work() as svc:
        assert svc.jobs.fail_orphans(set()) == [job_id]
        assert svc.dr.settle_orphans() == [drill_id]
    d, _, _, _ = load(container, drill_id)
    assert d.status == "error" and "worker stopped" in (d.status_reason or "")
    # The service is free again.
    d2, job2 = start(container, make_plan(container, sid, [PING], name="again"))
    execute(container, job2)
    assert load(container, d2)[0].status == "succeeded"


def test_plans_are_validated(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    cases = [
        ([{"name": "x", "kind": "teleport"}], "steps[0].kind"),
        ([{"name": "x", "kind": "playbook", "playbook": "nope"}], None),
        ([{"name": "x", "kind": "playbook", "playbook": "sleep", "extra_vars": {"seconds": "ten"}}],
         "steps[0].extra_vars.seconds"),
        ([PING, PING], "steps[1].switch"),
        ([{"name": "x", "kind": "manual", "role": "king"}], "steps[0].role"),
        ([{"name": "x", "kind": "health_check", "switch": True}], "steps[0].switch"),
        ([{"name": "x", "kind": "wait", "seconds": 0}], "steps[0].seconds"),
        ([{"name": "x", "kind": "playbook", "playbook": "ping", "rollback": {"name": "y", "kind": "manual"}}],
         "steps[0].rollback.kind"),
        ([{"name": "x", "kind": "playbook", "playbook": "ping", "surprise": 1}], "steps[0].surprise"),
        ([], "steps"),
    ]
    from ecocloud_ops.errors import NotFound

    for steps, field in cases:
        with container.unit_of_work() as svc:
            s = svc.dr.service(sid, EVERY)
            if field is None:
                with pytest.raises(NotFound, match="nope"):
                    svc.dr.save_plan(COORD, s, name="bad", mode="test", steps=steps)
                continue
            with pytest.raises(ValidationFailed) as err:
                svc.dr.save_plan(COORD, s, name="bad", mode="test", steps=steps)
            assert err.value.details[0]["field"] == field, steps
    with container.unit_of_work() as svc:
        s = svc.dr.service(sid, EVERY)
        with pytest.raises(ValidationFailed, match="schedule"):
            svc.dr.save_plan(COORD, s, name="bad", mode="test", steps=[PING], schedule="every quarter")
        with pytest.raises(ValidationFailed, match="mode"):
            svc.dr.save_plan(COORD, s, name="bad", mode="chaos", steps=[PING])


def test_service_secrets_are_encrypted_and_audited_without_values(container: Container, listening: str) -> None:
    dsn = "host=10.9.8.7 port=5432 user=app password=S3cret-Passw0rd dbname=app"
    sid = make_service(container, listening, marker_primary=dsn, marker_dr=dsn.replace("10.9.8.7", "10.9.8.8"))
    with container.unit_of_work() as svc:
        s = svc.session.get(ProtectedService, sid)
        assert s is not None
        assert s.marker_primary_enc and "S3cret" not in s.marker_primary_enc
        assert svc.dr.secret(s, "marker_primary") == dsn
        svc.dr.save_service(COORD, s, rto_seconds=120, marker_primary=dsn.replace("S3cret", "N3w"))
    with container.unit_of_work() as svc:
        from ecocloud_ops.audit.models import AuditEntry

        entries = svc.session.execute(select(AuditEntry).where(AuditEntry.action.like("dr.service.%"))
                                      .order_by(AuditEntry.seq)).scalars().all()
        text = json.dumps([[e.before, e.after] for e in entries], ensure_ascii=False)
        assert "S3cret" not in text and "N3w" not in text and "10.9.8.7" not in text
        assert entries[-1].before == {"rto_seconds": 60, "marker_primary": "(set)"}
        assert entries[-1].after == {"rto_seconds": 120, "marker_primary": "(changed)"}
    bad = [({"health_kind": "tcp", "health_target": "no-port"}, "health_target"),
           ({"health_kind": "http", "health_target": "ftp://x"}, "health_target"),
           ({"health_kind": "sql", "health_target": "host=x", "health_query": ""}, "health_query"),
           ({"dr_center": "bj-prod"}, "dr_center"), ({"rto_seconds": 0}, "rto_seconds"),
           ({"inventory": "all: [unclosed"}, "inventory"), ({"playbooks": {"failover": "nope"}}, "playbooks.failover")]
    for fields, field in bad:
        with container.unit_of_work() as svc:
            s = svc.dr.service(sid, EVERY)
            with pytest.raises(ValidationFailed) as err:
                svc.dr.save_service(COORD, s, **fields)
            assert err.value.details[0]["field"] == field


def test_schedules_start_due_drills_and_overdue_services(container: Container, listening: str) -> None:
    sid = make_service(container, listening, drill_interval_days=90)
    now = dt.datetime(2026, 12, 31, 17, 0, tzinfo=dt.UTC)  # 01:00 on Jan 1st in Beijing
    with container.unit_of_work() as svc:
        s = svc.dr.service(sid, EVERY)
        # Quarterly at 02:00 Beijing time on the 1st of January, April, July and October.
        plan = svc.dr.save_plan(COORD, s, name="quarterly", mode="test", steps=[PING, HEALTH],
                                schedule="0 2 1 1,4,7,10 *", now=now)
        assert plan.next_run_at == dt.datetime(2026, 12, 31, 18, 0, tzinfo=dt.UTC)
        plan_id = plan.id
        assert [x.id for x, days in svc.dr.overdue(EVERY, now) if days is None] == [sid]
    with container.unit_of_work() as svc:
        assert svc.dr.start_due(COORD, now) == []  # not yet due
        lines = svc.dr.start_due(COORD, now + dt.timedelta(hours=1))
        assert len(lines) == 1 and "started" in lines[0]
        assert svc.dr.plan(plan_id, EVERY).next_run_at == dt.datetime(2027, 3, 31, 18, 0, tzinfo=dt.UTC)
    drills, _ = load_drills(container, sid)
    execute(container, drills[0].job_id)
    with container.unit_of_work() as svc:
        assert svc.dr.overdue(EVERY) == []
        later = utc_days(91)
        assert [(x.id, days) for x, days in svc.dr.overdue(EVERY, later)] == [(sid, 91)]
    # A due plan whose service is busy waits for its next slot (and says so).
    with container.unit_of_work() as svc:
        svc.dr.start(COORD, svc.dr.plan(plan_id, EVERY))
        p = svc.dr.plan(plan_id, EVERY)
        p.next_run_at = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    with container.unit_of_work() as svc:
        lines = svc.dr.start_due(COORD, dt.datetime(2027, 1, 2, tzinfo=dt.UTC))
        assert len(lines) == 1 and "skipped" in lines[0] and "already has a drill running" in lines[0]


def load_drills(container: Container, sid: int) -> tuple[list[DrillRun], int]:
    with container.unit_of_work() as svc:
        rows, total = svc.dr.drills(EVERY, service_id=sid)
        svc.session.expunge_all()
        return rows, total


def utc_days(days: int) -> dt.datetime:
    from ecocloud_ops.db import utcnow

    return utcnow() + dt.timedelta(days=days, hours=1)


# RPO markers against a real PostgreSQL --------------------------------------------------------
@pytest.fixture(scope="module")
def peer_dsn() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL, standing for a protected service's primary."""
    from tests.conftest import drop_pg_database

    url = recreate_pg_database(PG, f"ecocloud_markers_{os.getpid()}")
    u = make_url(url)
    yield f"host={u.host} port={u.port} user={u.username} password={u.password} dbname={u.database} connect_timeout=3"
    drop_pg_database(url)


def test_marker_writer_acknowledges_writes_and_reads_the_newest(peer_dsn: str) -> None:
    w = MarkerWriter(peer_dsn, drill_id=7, interval=0.05)
    w.prepare()
    w.start()
    time.sleep(1.0)
    cutoff = dt.datetime.now(dt.UTC)
    time.sleep(0.3)
    w.stop()
    assert len(w.acks) >= 10 and w.failures == 0
    assert [a.seq for a in w.acks] == list(range(1, len(w.acks) + 1))
    newest = newest_marker(peer_dsn, 7)
    assert newest is not None and newest[0] == w.acks[-1].seq
    last = w.last_ack_before(cutoff)
    assert last is not None and last.at <= cutoff < w.acks[-1].at
    assert rpo_from(last, newest, w.acks[0].at) == 0.0
    # The DR side missing the last half second of acknowledged writes: RPO = the gap between them.
    behind = next(a for a in w.acks if (w.acks[-1].at - a.at).total_seconds() >= 0.5)
    rpo = rpo_from(w.acks[-1], (behind.seq, behind.at), w.acks[0].at)
    assert rpo == round((w.acks[-1].at - behind.at).total_seconds(), 3) and rpo >= 0.5
    # Nothing at all arrived: everything since the first write is lost; no acknowledged write: no figure.
    assert rpo_from(Ack(5, w.acks[4].at), None, w.acks[0].at) == round((w.acks[4].at - w.acks[0].at).total_seconds(), 3)
    assert rpo_from(None, newest, None) is None
    # A second drill with the same id starts clean.
    w2 = MarkerWriter(peer_dsn, drill_id=7)
    w2.prepare()
    assert newest_marker(peer_dsn, 7) is None


def test_marker_writer_counts_refused_writes(closed_port: str) -> None:
    host, port = closed_port.split(":")
    w = MarkerWriter(f"host={host} port={port} user=x dbname=x connect_timeout=1", drill_id=1, interval=0.05)
    import psycopg

    with pytest.raises(psycopg.OperationalError):
        w.prepare()
    w.start()
    time.sleep(0.8)
    w.stop()
    assert w.acks == [] and w.failures >= 2 and "OperationalError" in w.last_error


def test_a_drill_measures_rpo_zero_when_every_marker_arrived(container: Container, peer_dsn: str) -> None:
    """Same database as primary and DR side: every acknowledged marker is visible, so the RPO is 0."""
    sid = make_service(container, "", health_kind="sql", health_target=peer_dsn,
                       health_query="select not pg_is_in_recovery()", marker_primary=peer_dsn, marker_dr=peer_dsn)
    drill_id, job_id = start(container, make_plan(container, sid, [PING, HEALTH]))
    execute(container, job_id)
    d, _, findings, _ = load(container, drill_id)
    assert d.status == "succeeded" and findings == []
    assert d.rpo_seconds == 0.0 and d.rpo_met is True and d.rto_met is True
    m = d.markers
    assert m["acknowledged"] >= 3 and m["read_from"] == "dr"
    assert m["newest_at_dr"]["seq"] >= m["last_acknowledged"]["seq"]


def test_a_drill_without_a_reachable_primary_for_markers_fails_clearly(container: Container, listening: str,
                                                                       closed_port: str) -> None:
    host, port = closed_port.split(":")
    dsn = f"host={host} port={port} user=x dbname=x"
    sid = make_service(container, listening, marker_primary=dsn, marker_dr=dsn)
    drill_id, job_id = start(container, make_plan(container, sid, [PING, HEALTH]))
    execute(container, job_id)
    d, rows, _, _ = load(container, drill_id)
    assert d.status == "failed" and "RPO markers cannot be written on the primary" in (d.status_reason or "")
    assert {s.status for s in rows} == {"skipped"}  # nothing ran against the service


# API and CLI ---------------------------------------------------------------------------------
@pytest.fixture
def coord(make_user: Callable[..., Account], container: Container) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(container, make_user('d.coord', 'dr_coordinator'))}"}


def test_api_drill_lifecycle(client: Any, container: Container, coord: dict[str, str], listening: str,
                             make_user: Callable[..., Account]) -> None:
    r = client.post("/api/v1/dr/centers", json={"code": "sh-dr", "name": "上海异地灾备中心", "role": "remote_dr"},
                    headers=coord)
    assert r.status_code == 201
    r = client.post("/api/v1/dr/centers", json={"code": "bj-prod", "name": "北京生产中心", "role": "production"},
                    headers=coord)
    assert r.status_code == 201
    r = client.post("/api/v1/dr/services", headers=coord, json={
        "name": "排污许可系统", "primary_center": "bj-prod", "dr_center": "sh-dr", "rto_seconds": 30,
        "rpo_seconds": 0, "health_kind": "tcp", "health_target": listening})
    assert r.status_code == 201, r.get_json()
    sid = r.get_json()["id"]
    assert r.get_json()["overdue"] is True and "health_target" not in r.get_json()
    r = client.post(f"/api/v1/dr/services/{sid}/plans", headers=coord,
                    json={"name": "月度演练", "mode": "planned_migration", "steps": [PING, HEALTH]})
    assert r.status_code == 201, r.get_json()
    plan_id = r.get_json()["id"]
    r = client.post(f"/api/v1/dr/plans/{plan_id}/drills", headers=coord)
    assert r.status_code == 202
    drill = r.get_json()
    assert drill["status"] == "queued" and [s["status"] for s in drill["steps"]] == ["pending", "pending"]
    r = client.post(f"/api/v1/dr/plans/{plan_id}/drills", headers=coord)
    assert r.status_code == 409 and f"drill #{drill['id']}" in r.get_json()["error"]["message"]
    execute(container, drill["job_id"])
    r = client.get(f"/api/v1/dr/drills/{drill['id']}", headers=coord)
    body = r.get_json()
    assert body["status"] == "succeeded" and body["rto"]["met"] is True and body["rto"]["target"] == 30
    assert [s["status"] for s in body["steps"]] == ["succeeded", "succeeded"]
    r = client.post(f"/api/v1/dr/drills/{drill['id']}/findings", headers=coord,
                    json={"severity": "warning", "text": "切换手册缺少 DNS 步骤"})
    assert r.status_code == 201 and r.get_json()["ticket"].startswith("CHG-")
    r = client.post(f"/api/v1/dr/drills/{drill['id']}/abort", headers=coord)
    assert r.status_code == 409
    r = client.get("/api/v1/dr/drills", headers=coord, query_string={"service_id": sid})
    assert r.get_json()["total"] == 1
    r = client.patch(f"/api/v1/dr/services/{sid}", headers=coord, json={"rto_seconds": 0})
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["field"] == "rto_seconds"
    # Read-only and out-of-role callers.
    desk = {"Authorization": f"Bearer {api_token(container, make_user('d.desk', 'desk_agent'))}"}
    assert client.get("/api/v1/dr/services", headers=desk).status_code == 403
    aud = {"Authorization": f"Bearer {api_token(container, make_user('a.aud', 'auditor'))}"}
    assert client.get(f"/api/v1/dr/drills/{drill['id']}", headers=aud).status_code == 200
    assert client.post(f"/api/v1/dr/plans/{plan_id}/drills", headers=aud).status_code == 403


def test_cli_drill_follow_and_show(container: Container, listening: str) -> None:
    sid = make_service(container, listening)
    plan = make_plan(container, sid, [PING, HEALTH])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOCLOUD_")}
    env |= {"ECOCLOUD_DATABASE_URL": container.settings.effective_database_url,
            "ECOCLOUD_INSTANCE_DIR": str(container.settings.instance_dir)}
    container.dispose()
    out = subprocess.run([EXE, "dr", "start", str(plan), "--follow"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Switch (ping)" in out.stdout and "succeeded" in out.stdout and "PASS" in out.stdout
    out = subprocess.run([EXE, "dr", "services"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "环境质量监测系统" in out.stdout and "OVERDUE" not in out.stdout
    out = subprocess.run([EXE, "dr", "drills", "--json"], env=env, capture_output=True, text=True, timeout=60)
    data = json.loads(out.stdout)
    assert data["total"] == 1 and data["items"][0]["status"] == "succeeded"
    out = subprocess.run([EXE, "dr", "abort", str(data["items"][0]["id"])], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "only a queued or running drill" in out.stderr
