"""Background jobs: one record for every kind of long work (kind, state, progress, log, result)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.scope import Scope
from ..db import utcnow
from ..errors import InvalidTransition, NotFound, ValidationFailed
from .models import CAN_CANCEL, Job, JobLogLine, JobState, WorkerHeartbeat


class JobService:
    def __init__(self, session: Session, audit: AuditLog) -> None:
        self.session = session
        self.audit = audit

    def enqueue(self, actor: Actor, kind: str, params: dict[str, Any] | None = None,
                site_code: str = "000000") -> Job:
        """Queue a job of a registered kind; the worker picks it up. Audited."""
        from .registry import JOB_KINDS

        if kind not in JOB_KINDS:
            raise ValidationFailed(f"unknown job kind {kind!r}", details=[{"field": "kind", "message": "unknown"}])
        job = Job(kind=kind, params=params or {}, created_by=actor.username, site_code=site_code,
                  state=JobState.QUEUED, message="queued")
        self.session.add(job)
        self.session.flush()
        self.audit.record(actor, "job.start", target_type="job", target_id=job.id,
                          after={"kind": kind, "params": params or {}})
        return job

    def get(self, job_id: int, scope: Scope) -> Job:
        job = self.session.execute(
            select(Job).where(Job.id == job_id, scope.code_clause(Job.site_code))).scalar_one_or_none()
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    def search(self, scope: Scope, *, kind: str | None = None, state: str | None = None,
             limit: int = 50) -> list[Job]:
        q = select(Job).where(scope.code_clause(Job.site_code))
        if kind:
            q = q.where(Job.kind == kind)
        if state:
            q = q.where(Job.state == state)
        return list(self.session.execute(q.order_by(Job.id.desc()).limit(limit)).scalars())

    def log_lines(self, job: Job, after_id: int = 0) -> list[JobLogLine]:
        q = select(JobLogLine).where(JobLogLine.job_id == job.id, JobLogLine.id > after_id).order_by(JobLogLine.id)
        return list(self.session.execute(q).scalars())

    def cancel(self, actor: Actor, job: Job) -> None:
        """A queued job is canceled at once; a running one is asked to stop at its next check."""
        if job.state not in CAN_CANCEL:
            raise InvalidTransition(f"job {job.id} is {job.state}; only queued or running jobs can be canceled")
        if job.state == JobState.QUEUED:
            job.state = JobState.CANCELED
            job.finished_at = utcnow()
            job.message = f"canceled by {actor.username}"
        else:
            job.cancel_requested = True
            job.message = f"cancel requested by {actor.username}"
        self.audit.record(actor, "job.cancel", target_type="job", target_id=job.id)

    # Worker side ---------------------------------------------------------------------------
    def claim_next(self, worker: str) -> Job | None:
        """Atomically move the oldest queued job to running for ``worker``."""
        candidate = self.session.execute(
            select(Job.id).where(Job.state == JobState.QUEUED).order_by(Job.id).limit(1)).scalar_one_or_none()
        if candidate is None:
            return None
        res = self.session.execute(
            update(Job).where(Job.id == candidate, Job.state == JobState.QUEUED)
            .values(state=JobState.RUNNING, worker=worker, started_at=utcnow(), message="running"))
        if getattr(res, "rowcount", 0) != 1:
            return None
        return self.session.get(Job, candidate, populate_existing=True)

    def heartbeat(self, name: str, stopped: bool = False) -> None:
        hb = self.session.get(WorkerHeartbeat, name)
        now = utcnow()
        if hb is None:
            hb = WorkerHeartbeat(name=name, started_at=now, beat_at=now, beats=0)
            self.session.add(hb)
        hb.beat_at = now
        hb.beats += 1
        hb.stopped_at = now if stopped else None

    def live_workers(self, heartbeat_seconds: int) -> list[WorkerHeartbeat]:
        cutoff = utcnow() - dt.timedelta(seconds=3 * heartbeat_seconds)
        q = select(WorkerHeartbeat).where(WorkerHeartbeat.beat_at >= cutoff, WorkerHeartbeat.stopped_at.is_(None))
        return list(self.session.execute(q).scalars())

    def last_heartbeat(self) -> WorkerHeartbeat | None:
        q = select(WorkerHeartbeat).order_by(WorkerHeartbeat.beat_at.desc()).limit(1)
        return self.session.execute(q).scalar_one_or_none()

    def fail_orphans(self, live_worker_names: set[str]) -> list[int]:
        """Running jobs whose worker is gone are failed with the reason, never left running."""
        q = select(Job).where(Job.state == JobState.RUNNING)
        failed = []
        for job in self.session.execute(q).scalars():
            if job.worker not in live_worker_names:
                job.state = JobState.FAILED
                job.error = f"the worker {job.worker} stopped while the job was running"
                job.message = "worker lost"
                job.finished_at = utcnow()
                failed.append(job.id)
        return failed
