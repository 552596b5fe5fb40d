"""The worker: runs queued jobs, the scheduler (APScheduler, job store in the database), heartbeats."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from ..audit.service import Actor
from ..db import utcnow
from .models import Job, JobLogLine, JobState
from .registry import JOB_KINDS, SCHEDULES

if TYPE_CHECKING:
    from ..bootstrap import Container, Services

log = logging.getLogger(__name__)
TZ = "Asia/Shanghai"
# The worker that scheduled tasks call back into (APScheduler pickles only a function reference).
_ACTIVE: Worker | None = None


class JobCanceled(Exception):
    pass


class JobContext:
    """What a running job may use: progress, log lines, cancel checks, units of work."""

    def __init__(self, container: Container, job_id: int, actor: Actor) -> None:
        self.container = container
        self.job_id = job_id
        self.actor = actor
        self._last_progress = 0.0
        self._last_cancel_check = 0.0

    @contextmanager
    def unit_of_work(self) -> Iterator[Services]:
        with self.container.unit_of_work() as svc:
            yield svc

    def progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < 0.5:
            return  # do not hammer the database
        self._last_progress = now
        with self.container.unit_of_work() as svc:
            job = svc.session.get(Job, self.job_id)
            if job is not None:
                job.progress = max(0.0, min(1.0, fraction))
                job.message = message[:500]

    def log(self, line: str, level: str = "info") -> None:
        with self.container.unit_of_work() as svc:
            svc.session.add(JobLogLine(job_id=self.job_id, line=line, level=level))

    def check_cancel(self) -> None:
        """Raise JobCanceled once a cancel was requested (looks at most twice a second)."""
        now = time.monotonic()
        if now - self._last_cancel_check < 0.5:
            return
        self._last_cancel_check = now
        with self.container.unit_of_work() as svc:
            job = svc.session.get(Job, self.job_id)
            if job is not None and job.cancel_requested:
                raise JobCanceled()


def run_poll_cycle() -> None:
    """Called by APScheduler every ``poll_interval_seconds``: one network poll cycle."""
    if _ACTIVE is not None:
        _ACTIVE.poll_cycle()


def run_mail_delivery() -> None:
    """Called by APScheduler: send queued notifications; an SMTP outage leaves them queued."""
    if _ACTIVE is None:
        return
    try:
        from ..servicedesk.notify import deliver

        deliver(_ACTIVE.container)
    except Exception:
        log.exception("notification delivery failed; retried in 30 s")


def run_scheduled(kind: str) -> None:
    """Called by APScheduler: queue a job of ``kind`` for the worker that is running."""
    if _ACTIVE is None:
        return
    with _ACTIVE.container.unit_of_work() as svc:
        svc.jobs.enqueue(Actor("scheduler", channel="worker"), kind)


class Worker:
    def __init__(self, container: Container, name: str | None = None) -> None:
        self.container = container
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.settings = container.settings
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=self.settings.worker_max_jobs, thread_name_prefix="job")
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self.scheduler: BackgroundScheduler | None = None
        self._poll_lock = threading.Lock()
        self._engine: Any = None

    # Lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        global _ACTIVE
        self.container.cloud.check_config()  # refuses a clouds.yaml other users can read
        _ACTIVE = self
        self.beat()
        with self.container.unit_of_work() as svc:
            live = {w.name for w in svc.jobs.live_workers(self.settings.worker_heartbeat_seconds)}
            failed = svc.jobs.fail_orphans(live - {self.name})
            if failed:
                log.warning("marked %d orphaned job(s) failed: %s", len(failed), failed)
            from ..automation.service import settle_orphaned_runs

            if runs := settle_orphaned_runs(svc):
                log.warning("marked %d playbook run(s) of ended jobs: %s", len(runs), runs)
            if drills := svc.dr.settle_orphans():
                log.warning("marked %d drill(s) of ended jobs as error: %s", len(drills), drills)
            if projects := svc.cloud.settle_orphans():
                log.warning("marked %d tenant project(s) of ended jobs as failed: %s", len(projects), projects)
        store = SQLAlchemyJobStore(engine=self.container.engine, tablename="apscheduler_jobs")
        self.scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=TZ)
        for sched_id, kind, cron in SCHEDULES:
            self.scheduler.add_job(run_scheduled, "cron", args=[kind], id=sched_id, replace_existing=True,
                                   misfire_grace_time=3600, coalesce=True, **cron)
        if self.container.cloud.configured:  # the inventory sync, every cloud_sync_minutes
            self.scheduler.add_job(run_scheduled, "interval", args=["cloud.sync"], id="cloud-sync",
                                   replace_existing=True, minutes=self.settings.cloud_sync_minutes,
                                   next_run_time=datetime.now(UTC) + timedelta(seconds=5),
                                   misfire_grace_time=600, coalesce=True)
        elif self.scheduler.get_job("cloud-sync") is not None:
            self.scheduler.remove_job("cloud-sync")
        # max_instances=1: a cycle still running is never started twice.
        self.scheduler.add_job(run_poll_cycle, "interval", seconds=self.settings.poll_interval_seconds,
                               id="network-poll", replace_existing=True, max_instances=1, coalesce=True,
                               misfire_grace_time=self.settings.poll_interval_seconds,
                               next_run_time=datetime.now(UTC) + timedelta(seconds=5))
        # Notifications leave every 30 s, without a job record each time.
        self.scheduler.add_job(run_mail_delivery, "interval", seconds=30, id="mail-delivery", replace_existing=True,
                               max_instances=1, coalesce=True, misfire_grace_time=30)
        self.scheduler.start()
        threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True).start()
        log.info("worker %s started", self.name)

    def poll_cycle(self) -> dict[str, Any] | None:
        """Run one network poll cycle unless one is running in this process; returns its summary."""
        if not self._poll_lock.acquire(blocking=False):
            log.info("a poll cycle is still running; this one is skipped")
            return None
        try:
            if self._engine is None:
                from ..network.poller import PollEngine

                self._engine = PollEngine(self.container)
            summary = dict(self._engine.run_cycle().as_dict())
        except Exception:  # the next cycle tries again; a dead database must not kill the worker
            log.exception("poll cycle failed")
            return None
        finally:
            self._poll_lock.release()
        try:  # incidents for long outages; a failure here must never stop polling
            from ..servicedesk.auto_incidents import open_and_close_incidents

            open_and_close_incidents(self.container, utcnow(),
                                     timedelta(minutes=self.settings.auto_incident_minutes))
        except Exception:
            log.exception("automatic incidents failed")
        return summary

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self._engine is not None:
            self._engine.close()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        try:
            with self.container.unit_of_work() as svc:
                svc.jobs.heartbeat(self.name, stopped=True)
        except Exception:  # the database may be gone at shutdown; nothing to save
            log.exception("could not record worker stop")

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.is_set():
                if not self.poll_once():
                    self._stop.wait(self.settings.worker_poll_seconds)
        finally:
            self.stop()

    def beat(self) -> None:
        with self.container.unit_of_work() as svc:
            svc.jobs.heartbeat(self.name)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.settings.worker_heartbeat_seconds):
            try:
                self.beat()
            except Exception:  # a database restart must not kill the worker; retry next beat
                log.exception("heartbeat failed")

    # Jobs --------------------------------------------------------------------------------
    def poll_once(self) -> bool:
        """Claim and start one job if there is capacity; True when a job was started."""
        with self._lock:
            if len(self._running) >= self.settings.worker_max_jobs:
                return False
        try:
            with self.container.unit_of_work() as svc:
                job = svc.jobs.claim_next(self.name)
                claimed = (job.id, job.kind, dict(job.params), job.created_by) if job else None
        except Exception:
            log.exception("could not claim a job")
            return False
        if claimed is None:
            return False
        with self._lock:
            self._running.add(claimed[0])
        self._pool.submit(self._execute, *claimed)
        return True

    def run_job_now(self, job_id: int) -> None:
        """Run one claimed or queued job in this thread (CLI ``--wait`` and tests)."""
        with self.container.unit_of_work() as svc:
            job = svc.session.get(Job, job_id)
            assert job is not None
            if job.state == JobState.QUEUED:
                job.state = JobState.RUNNING
                job.worker = self.name
                job.started_at = utcnow()
            args = (job.id, job.kind, dict(job.params), job.created_by)
        self._execute(*args)

    def _execute(self, job_id: int, kind: str, params: dict[str, Any], created_by: str) -> None:
        ctx = JobContext(self.container, job_id, Actor(created_by, channel="worker"))
        state, result, error = JobState.SUCCEEDED, None, None
        try:
            result = JOB_KINDS[kind].func(ctx, params)
        except JobCanceled:
            state, error = JobState.CANCELED, None
        except Exception as exc:
            log.exception("job %s (%s) failed", job_id, kind)
            state, error = JobState.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._running.discard(job_id)
        with self.container.unit_of_work() as svc:
            job = svc.session.get(Job, job_id)
            if job is not None:
                job.state = state
                job.result = result
                job.error = error
                job.finished_at = utcnow()
                if state == JobState.SUCCEEDED:
                    job.progress = 1.0
                job.message = {"succeeded": "done", "failed": "failed", "canceled": "canceled"}[state.value]
                if error:
                    svc.session.add(JobLogLine(job_id=job_id, line=error, level="error"))
