"""Jobs and the worker: progress, log, failure, cancel, orphans, the scheduler's store, heartbeats."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text

from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.jobs.models import Job, JobState
from ecocloud_ops.jobs.runner import Worker, run_scheduled
from tests.conftest import TEST_ACTOR


@pytest.fixture
def worker(container: Container) -> Iterator[Worker]:
    w = Worker(container, name="test-worker:1")
    w.start()
    yield w
    w.stop()


def wait_for(container: Container, job_id: int, states: set[str], timeout: float = 15) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with container.unit_of_work() as svc:
            job = svc.jobs.get(job_id, Scope.everything())
            if job.state in states:
                return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {job.state}")


def enqueue(container: Container, kind: str, **params: object) -> int:
    with container.unit_of_work() as svc:
        return svc.jobs.enqueue(TEST_ACTOR, kind, dict(params)).id


def test_a_job_runs_with_progress_and_result(container: Container, worker: Worker) -> None:
    job_id = enqueue(container, "system.sleep", seconds=1.2)
    seen_progress = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        worker.poll_once()
        with container.unit_of_work() as svc:
            job = svc.jobs.get(job_id, Scope.everything())
            seen_progress.add(round(job.progress, 1))
            if job.state == JobState.SUCCEEDED:
                break
        time.sleep(0.1)
    assert job.state == JobState.SUCCEEDED and job.result == {"slept": 1.2} and job.progress == 1.0
    assert len(seen_progress) >= 3, f"progress was reported along the way: {seen_progress}"
    assert job.started_at and job.finished_at and job.worker == "test-worker:1"


def test_a_failing_job_records_its_error(container: Container, worker: Worker) -> None:
    job_id = enqueue(container, "system.sleep", seconds=0.1, fail="disk full")
    worker.poll_once()
    job = wait_for(container, job_id, {"failed"})
    assert "disk full" in (job.error or "")
    with container.unit_of_work() as svc:
        assert any("disk full" in ln.line for ln in svc.jobs.log_lines(job))


def test_cancel_queued_and_running_jobs(container: Container, worker: Worker) -> None:
    queued = enqueue(container, "system.sleep", seconds=0.1)
    with container.unit_of_work() as svc:
        svc.jobs.cancel(TEST_ACTOR, svc.jobs.get(queued, Scope.everything()))
    running = enqueue(container, "system.sleep", seconds=30)
    worker.poll_once()
    wait_for(container, running, {"running"})
    with container.unit_of_work() as svc:
        svc.jobs.cancel(TEST_ACTOR, svc.jobs.get(running, Scope.everything()))
    job = wait_for(container, running, {"canceled"}, timeout=10)
    assert job.finished_at is not None
    with container.unit_of_work() as svc:
        from ecocloud_ops.errors import InvalidTransition

        with pytest.raises(InvalidTransition):
            svc.jobs.cancel(TEST_ACTOR, svc.jobs.get(queued, Scope.everything()))


def test_a_restarted_worker_fails_the_jobs_of_a_dead_one(container: Container) -> None:
    job_id = enqueue(container, "system.sleep", seconds=1)
    with container.unit_of_work() as svc:
        job = svc.session.get(Job, job_id)
        assert job is not None
        job.state, job.worker = JobState.RUNNING, "gone-host:4242"
    w = Worker(container, name="fresh:1")
    w.start()
    w.stop()
    with container.unit_of_work() as svc:
        job = svc.jobs.get(job_id, Scope.everything())
        assert job.state == JobState.FAILED and "gone-host:4242 stopped" in (job.error or "")


def test_schedules_live_in_the_database_and_queue_jobs(container: Container, worker: Worker) -> None:
    with container.engine.connect() as conn:
        ids = {r[0] for r in conn.execute(text("SELECT id FROM apscheduler_jobs"))}
    assert "daily-audit-verify" in ids
    run_scheduled("audit.verify")
    with container.unit_of_work() as svc:
        job = svc.session.execute(select(Job).where(Job.kind == "audit.verify")).scalar_one()
        assert job.created_by == "scheduler"
    worker.poll_once()
    done = wait_for(container, job.id, {"succeeded", "failed"})
    assert done.state == "succeeded" and done.result and done.result["ok"] is True


def test_healthz_reports_the_worker(client: FlaskClient, container: Container) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json["database"]["ok"] and not r.json["worker"]["alive"]
    assert r.json["status"] == "degraded"
    w = Worker(container, name="hb:1")
    w.start()
    try:
        r = client.get("/healthz")
        assert r.json["worker"]["alive"] and r.json["status"] == "ok"
    finally:
        w.stop()
    assert not client.get("/healthz").json["worker"]["alive"], "a stopped worker is not alive"


def test_network_retention_prunes_old_rollups_and_outages(container: Container, worker: Worker,
                                                          small_tree: None) -> None:
    import datetime as dt
    from decimal import Decimal

    from ecocloud_ops.network.inventory import DeviceSpec
    from ecocloud_ops.network.models import Device, DeviceRollup, Outage, OutagePeriod

    now = dt.datetime.now(dt.UTC)
    with container.unit_of_work() as svc:
        svc.devices.import_inventory(TEST_ACTOR, [DeviceSpec(hostname="r1", address="198.18.9.1", site_code="130000",
                                                             snmp_community="c")])
        d = svc.session.execute(select(Device)).scalar_one()
        for gran, age in (("hour", 40), ("hour", 1), ("day", 500), ("day", 100)):
            svc.session.add(DeviceRollup(device_id=d.id, granularity=gran, bucket=now - dt.timedelta(days=age),
                                         polls=1, up_polls=1, rtt_sum=0.0, rtt_count=0, in_octets=Decimal(0),
                                         out_octets=Decimal(0)))
        for age in (500, 10):
            start = now - dt.timedelta(days=age)
            svc.session.add(Outage(device_id=d.id, site_id=d.site_id, status="down", cause="own", started_at=start,
                                   ended_at=start + dt.timedelta(hours=1),
                                   periods=[OutagePeriod(started_at=start, ended_at=start + dt.timedelta(hours=1))]))
    job_id = enqueue(container, "network.prune")
    worker.poll_once()
    job = wait_for(container, job_id, {"succeeded", "failed"})
    assert job.state == "succeeded", job.error
    assert job.result == {"hourly_rollups": 1, "daily_rollups": 1, "outages": 1, "poll_cycles": 0}
    with container.unit_of_work() as svc:
        assert len(svc.session.execute(select(DeviceRollup)).all()) == 2
        assert len(svc.session.execute(select(Outage)).all()) == 1
