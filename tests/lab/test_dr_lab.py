"""Drills through the platform against the DR lab: a real PostgreSQL primary streaming to a hot standby in
namespaces, the service address moving between them, Ansible over SSH. The measured RTO and RPO are checked
against the steps' timestamps and the marker evidence, and the lab's state is checked with its own probes
after each drill (who is primary, who holds the service address, is replication streaming)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ecocloud_ops.audit.service import Actor
from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.automation.models import PlaybookRun
from ecocloud_ops.automation.service import PlaybookService
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.dr.health import probe
from ecocloud_ops.dr.models import DrillRun, DrillStep
from ecocloud_ops.errors import Conflict
from ecocloud_ops.jobs.runner import Worker
from ecocloud_ops.lab.dr_demo import HEALTH_QUERY, define_service
from ecocloud_ops.lab.drlab import DRLab

pytestmark = pytest.mark.lab
COORD = Actor("d.coord", "dr_coordinator", channel="api")
EVERY = Scope.everything()


@pytest.fixture
def service(container: Container, drlab: DRLab, small_tree: None) -> Iterator[tuple[int, dict[str, int]]]:
    drlab.reset()
    yield define_service(container, drlab, COORD, rto=60, rpo=5, schedule=False)
    drlab.reset()


def start(container: Container, plan_id: int) -> tuple[int, int]:
    with container.unit_of_work() as svc:
        d = svc.dr.start(COORD, svc.dr.plan(plan_id, EVERY))
        assert d.job_id is not None
        return d.id, d.job_id


def execute(container: Container, job_id: int) -> None:
    Worker(container, name="test-worker:1").run_job_now(job_id)


def load(container: Container, drill_id: int) -> tuple[DrillRun, list[DrillStep], list[Any]]:
    with container.unit_of_work() as svc:
        d = svc.session.get(DrillRun, drill_id)
        assert d is not None
        steps, findings = svc.dr.steps(d), svc.dr.findings(d)
        svc.session.expunge_all()
        return d, steps, findings


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def assert_production_serves(drlab: DRLab) -> None:
    """The initial state: prod is the primary with the service address, DR a standby, no copy."""
    assert drlab.role_of("prod") == "primary"
    assert drlab.role_of("dr") == "standby"
    assert drlab.vip_holder() == "prod"
    assert probe("sql", drlab.service_dsn, HEALTH_QUERY).ok


def step(steps: list[DrillStep], name_part: str, phase: str = "step") -> DrillStep:
    return next(s for s in steps if s.phase == phase and name_part in s.name)


def assert_rto_from_timestamps(d: DrillRun, steps: list[DrillStep], switch: str, health: str) -> None:
    sw, hc = step(steps, switch), step(steps, health)
    assert d.switch_at == sw.started_at and d.rto_seconds is not None and hc.finished_at is not None
    assert sw.started_at is not None and sw.finished_at is not None
    assert abs(d.rto_seconds - (hc.finished_at - sw.started_at).total_seconds()) < 1.0
    assert d.rto_seconds >= (sw.finished_at - sw.started_at).total_seconds()
    assert d.rto_met is (d.rto_seconds <= d.rto_target)


def marker_rpo(m: dict[str, Any]) -> float:
    """The RPO recomputed from the recorded evidence."""
    last, newest = m["last_acknowledged"], m["newest_at_dr"]
    if newest is not None and newest["seq"] >= last["seq"]:
        return 0.0
    return round((dt.datetime.fromisoformat(last["at"]) - dt.datetime.fromisoformat(newest["at"])).total_seconds(), 3)


def test_a_test_drill_promotes_a_copy_while_production_keeps_running(container: Container, drlab: DRLab,
                                                                     service: tuple[int, dict[str, int]]) -> None:
    _, plans = service
    drill_id, job_id = start(container, plans["test"])
    t0 = time.monotonic()
    execute(container, job_id)
    print(f"\n[dr] test drill: {time.monotonic() - t0:.1f} s")
    d, steps, findings = load(container, drill_id)
    assert d.status == "succeeded", (d.status_reason, [(s.name, s.status, s.message) for s in steps])
    assert [s.status for s in steps] == ["succeeded"] * 5 and findings == []
    assert_rto_from_timestamps(d, steps, "Promote the copy", "Health check of the copy")
    m = d.markers
    # Production was never interrupted: every marker the drill wrote was acknowledged by the primary.
    assert m["read_from"] == "copy" and m["failed"] == 0 and m["acknowledged"] >= 5
    assert m["cutoff"] == d.switch_at.isoformat()  # the copy stops replaying when its promotion starts
    assert d.rpo_seconds is not None and d.rpo_seconds == marker_rpo(m) and d.rpo_met is (d.rpo_seconds <= 5)
    print(f"[dr] test drill: RTO {d.rto_seconds:.3f} s, RPO {d.rpo_seconds:.3f} s, {m['acknowledged']} markers")
    # The copy is gone; production and replication are as before.
    assert drlab.role_of("copy") == "down"
    assert_production_serves(drlab)


def test_a_planned_migration_loses_nothing_and_fails_back(container: Container, drlab: DRLab,
                                                          service: tuple[int, dict[str, int]]) -> None:
    sid, plans = service
    drill_id, job_id = start(container, plans["planned_migration"])
    t0 = time.monotonic()
    execute(container, job_id)
    print(f"\n[dr] planned migration: {time.monotonic() - t0:.1f} s")
    d, steps, findings = load(container, drill_id)
    assert d.status == "succeeded", (d.status_reason, [(s.name, s.status, s.message) for s in steps])
    assert_rto_from_timestamps(d, steps, "Switch to the DR center", "Health check at the DR center")
    m = d.markers
    assert m["read_from"] == "dr" and m["acknowledged"] >= 5
    assert m["newest_at_dr"]["seq"] >= m["last_acknowledged"]["seq"]  # every acknowledged write arrived
    assert d.rpo_seconds == 0.0 and d.rpo_met is True and findings == []
    print(f"[dr] planned migration: RTO {d.rto_seconds:.3f} s, RPO 0 ({m['acknowledged']} acknowledged, "
          f"{m['failed']} refused while fenced)")
    assert_production_serves(drlab)  # the plan's last step failed back
    with container.unit_of_work() as svc:
        s = svc.dr.service(sid, EVERY)
        assert s.last_success_at == d.finished_at and s.active_drill_id is None


def test_a_disaster_drill_measures_what_was_lost(container: Container, drlab: DRLab,
                                                 service: tuple[int, dict[str, int]]) -> None:
    _, plans = service
    drill_id, job_id = start(container, plans["disaster"])
    execute(container, job_id)
    d, steps, _ = load(container, drill_id)
    assert d.status == "succeeded", (d.status_reason, [(s.name, s.status, s.message) for s in steps])
    assert_rto_from_timestamps(d, steps, "Take over at the DR center", "Health check at the DR center")
    assert d.rpo_seconds is not None and d.rpo_seconds == marker_rpo(d.markers)
    print(f"\n[dr] disaster: RTO {d.rto_seconds:.3f} s, RPO {d.rpo_seconds:.3f} s")
    assert_production_serves(drlab)


def test_abort_mid_drill_rolls_back_and_production_serves(container: Container, drlab: DRLab,
                                                          service: tuple[int, dict[str, int]]) -> None:
    _, plans = service
    drill_id, job_id = start(container, plans["planned_migration"])
    runner = threading.Thread(target=execute, args=(container, job_id))
    runner.start()

    def dr_serving() -> bool:
        _, steps, _ = load(container, drill_id)
        return step(steps, "Switch to the DR center").status == "succeeded"
    wait_for(dr_serving, 120, "the switch to the DR center")
    assert drlab.vip_holder() == "dr"
    # A second drill of the same service is refused while this one runs, naming it.
    with pytest.raises(Conflict, match=f"drill #{drill_id}"):
        start(container, plans["test"])
    with container.unit_of_work() as svc:
        svc.dr.abort(COORD, svc.dr.drill(drill_id, EVERY))
    runner.join(300)
    assert not runner.is_alive()
    d, steps, _ = load(container, drill_id)
    assert d.status == "aborted" and d.rollback == "succeeded", [(s.name, s.status, s.message) for s in steps]
    rollbacks = [s for s in steps if s.phase == "rollback"]
    assert [s.name for s in rollbacks] == ["Fail back to the production center"]  # shared rollback runs once
    assert rollbacks[0].status == "succeeded"
    assert step(steps, "Fail back to the production center").status == "skipped"
    assert_production_serves(drlab)


def test_a_failing_playbook_step_rolls_back(container: Container, drlab: DRLab,
                                            service: tuple[int, dict[str, int]]) -> None:
    sid, _ = service
    failback = {"name": "Fail back", "kind": "playbook", "playbook": "dr_failback"}
    steps = [{"name": "Switch", "kind": "playbook", "playbook": "dr_failover", "extra_vars": {"mode": "planned"},
              "switch": True, "rollback": failback},
             {"name": "Health check at the DR center", "kind": "health_check"},
             # Wrong on purpose: the production center is not serving after a switch.
             {"name": "Verify production serves", "kind": "playbook", "playbook": "dr_verify",
              "extra_vars": {"serving": "primary"}}]
    with container.unit_of_work() as svc:
        plan = svc.dr.save_plan(COORD, svc.dr.service(sid, EVERY), name="broken", mode="planned_migration",
                                steps=steps).id
    drill_id, job_id = start(container, plan)
    execute(container, job_id)
    d, rows, findings = load(container, drill_id)
    assert d.status == "failed" and "Verify production serves" in (d.status_reason or "")
    bad = step(rows, "Verify production serves")
    assert bad.status == "failed" and "failed" in bad.message
    with container.unit_of_work() as svc:
        run = svc.session.get(PlaybookRun, bad.playbook_run_id)
        assert run is not None and run.status == "failed" and "fatal" in run.stdout.lower()
    assert [(s.name, s.status) for s in rows if s.phase == "rollback"] == [("Fail back", "succeeded")]
    assert d.rto_seconds is not None  # the switch itself was measured before the failure
    assert findings and findings[0].severity == "critical" and findings[0].ticket_number
    assert_production_serves(drlab)


def test_cancel_a_running_playbook_run_over_ssh(container: Container, drlab: DRLab, small_tree: None) -> None:
    with container.unit_of_work() as svc:
        run = PlaybookService.of(svc).start(COORD, "sleep", {"seconds": 120}, inventory=drlab.inventory(),
                                            limit="primary")
        run_id, job_id = run.id, run.job_id
    runner = threading.Thread(target=execute, args=(container, job_id))
    runner.start()

    def sleeping() -> bool:
        with container.unit_of_work() as svc:
            r = svc.session.get(PlaybookRun, run_id)
            return r is not None and r.status == "running" and PlaybookService.of(svc).event_count(r) >= 3
    wait_for(sleeping, 60, "the sleep task to start on the lab host")
    time.sleep(1)
    t0 = time.monotonic()
    with container.unit_of_work() as svc:
        pb = PlaybookService.of(svc)
        pb.cancel(COORD, pb.get(run_id, EVERY))
    runner.join(60)
    assert not runner.is_alive() and time.monotonic() - t0 < 15
    with container.unit_of_work() as svc:
        r = svc.session.get(PlaybookRun, run_id)
        assert r is not None and r.status == "canceled" and r.status_reason == "canceled by d.coord"
