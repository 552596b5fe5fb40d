"""Playbook runs: start (validated before anything runs), list, read with events, cancel, orphan repair.

A run is a :class:`PlaybookRun` plus a generic job of kind ``automation.playbook`` that carries its
progress, its cancel request and its site scope; the worker executes it through ansible-runner
(:mod:`.runner`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.scope import Scope
from ..db import utcnow
from ..errors import InvalidTransition, NotFound, ValidationFailed
from ..jobs.models import CAN_CANCEL, FINAL_STATES, Job, JobState
from ..jobs.service import JobService
from .catalog import MAX_TIMEOUT, Catalog, PlaybookSpec, check_limit
from .models import ACTIVE_STATUSES, FINAL_STATUSES, PlaybookEvent, PlaybookRun, RunStatus

if TYPE_CHECKING:
    from ..bootstrap import Services

JOB_KIND = "automation.playbook"
DEFAULT_INVENTORY = "local"
WORKER_LOST = "the worker stopped while the run was running"


class PlaybookService:
    def __init__(self, session: Session, audit: AuditLog, jobs: JobService, catalog: Catalog | None = None) -> None:
        self.session = session
        self.audit = audit
        self.jobs = jobs
        self.catalog = catalog or Catalog()

    @classmethod
    def of(cls, svc: Services, playbooks_dir: Path | None = None) -> PlaybookService:
        return cls(svc.session, svc.audit, svc.jobs, Catalog(playbooks_dir))

    # Catalog ---------------------------------------------------------------------------------
    def playbooks(self) -> list[PlaybookSpec]:
        return self.catalog.all()

    def _inventory_text(self, inventory: str | Path | Mapping[str, Any] | None) -> str:
        """A named inventory of ``playbooks/inventories/``, a file (trusted callers: the CLI, the lab),
        or a generated YAML inventory given as a mapping."""
        if inventory is None:
            return self.catalog.inventory(DEFAULT_INVENTORY)
        if isinstance(inventory, Path):
            try:
                return inventory.read_text("utf-8")
            except OSError as exc:
                raise ValidationFailed(f"cannot read the inventory {inventory}: {exc.strerror}",
                                       details=[{"field": "inventory", "message": "unreadable file"}]) from exc
        if isinstance(inventory, Mapping):
            return yaml.safe_dump(dict(inventory), sort_keys=False, allow_unicode=True)
        return self.catalog.inventory(inventory)

    # Runs ------------------------------------------------------------------------------------
    def start(self, actor: Actor, playbook: str, extra_vars: dict[str, Any] | None = None,
              limit: str | None = None, inventory: str | Path | Mapping[str, Any] | None = None,
              timeout: int | None = None, *, site_code: str = "000000", from_text: bool = False,
              claimed_by: str | None = None) -> PlaybookRun:
        """Validate everything, then record the run and its job (audited). Nothing runs before the
        checks pass: a refused request leaves no run, no job and no file.

        ``from_text``: extra variables typed on a command line (``"5"`` may be an int).
        ``claimed_by``: the run is executed by this process (``jobs run --follow``), not queued: its job
        is recorded as running for that worker name, the run as ``new``."""
        spec = self.catalog.get(playbook)
        values = spec.validate(extra_vars, from_text=from_text)
        host_limit = check_limit(limit)
        if timeout is None:
            timeout = spec.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_TIMEOUT:
            raise ValidationFailed(f"timeout must be 1..{MAX_TIMEOUT} seconds",
                                   details=[{"field": "timeout", "message": f"1..{MAX_TIMEOUT} seconds"}])
        inventory_text = self._inventory_text(inventory)
        job = self.jobs.enqueue(actor, JOB_KIND, {"playbook": spec.name}, site_code=site_code)
        run = PlaybookRun(job_id=job.id, playbook=spec.name, inventory=inventory_text, limit=host_limit,
                          extra_vars=values, status=RunStatus.PENDING, started_by=actor.username,
                          timeout_seconds=timeout, created_at=utcnow(), stdout="")
        self.session.add(run)
        self.session.flush()
        job.params = {"playbook": spec.name, "run_id": run.id}
        job.message = f"{spec.name}: queued"
        if claimed_by is not None:
            job.state, job.worker, job.started_at = JobState.RUNNING, claimed_by, utcnow()
            job.message = f"{spec.name}: run by {claimed_by}"
            run.status = RunStatus.NEW
        self.audit.record(actor, "playbook.start", target_type="playbook_run", target_id=run.id,
                          after={"playbook": spec.name, "extra_vars": values, "limit": host_limit,
                                 "timeout": timeout, "job_id": job.id})
        return run

    def _query(self, scope: Scope) -> Any:
        return (select(PlaybookRun).join(Job, Job.id == PlaybookRun.job_id)
                .where(scope.code_clause(Job.site_code)))

    def get(self, run_id: int, scope: Scope) -> PlaybookRun:
        """One run in the caller's scope (the site of its job); 404 otherwise."""
        run = self.session.execute(self._query(scope).where(PlaybookRun.id == run_id)).scalar_one_or_none()
        if run is None:
            raise NotFound(f"playbook run {run_id} not found")
        self._settle(run, self.job_of(run))
        return run

    def job_of(self, run: PlaybookRun) -> Job:
        job = self.session.get(Job, run.job_id)
        assert job is not None
        return job

    def search(self, scope: Scope, *, status: str | None = None, playbook: str | None = None,
               started_by: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[PlaybookRun], int]:
        if status is not None and status not in set(RunStatus):
            raise ValidationFailed(f"unknown status {status!r}", details=[
                {"field": "status", "message": f"one of {', '.join(RunStatus)}"}])
        q = self._query(scope)
        if status:
            q = q.where(PlaybookRun.status == status)
        if playbook:
            q = q.where(PlaybookRun.playbook == playbook)
        if started_by:
            q = q.where(PlaybookRun.started_by == started_by)
        total = int(self.session.execute(select(func.count()).select_from(q.subquery())).scalar_one())
        rows = list(self.session.execute(q.order_by(PlaybookRun.id.desc()).limit(limit).offset(offset)).scalars())
        for run in rows:
            if run.status in ACTIVE_STATUSES:
                self._settle(run, self.job_of(run))
        return rows, total

    def events(self, run: PlaybookRun, after: int = 0, limit: int = 1000) -> list[PlaybookEvent]:
        """Events in counter order after ``after`` (the last ``seq`` a live view has shown)."""
        q = (select(PlaybookEvent).where(PlaybookEvent.run_id == run.id, PlaybookEvent.seq > after)
             .order_by(PlaybookEvent.seq).limit(limit))
        return list(self.session.execute(q).scalars())

    def event_count(self, run: PlaybookRun) -> int:
        q = select(func.count()).select_from(PlaybookEvent).where(PlaybookEvent.run_id == run.id)
        return int(self.session.execute(q).scalar_one())

    def cancel(self, actor: Actor, run: PlaybookRun) -> PlaybookRun:
        """A queued run is canceled at once; a running one is stopped by its cancel callback (within a
        second) and ends ``canceled``. Audited."""
        if run.status in FINAL_STATUSES:
            raise InvalidTransition(f"playbook run {run.id} is {run.status}; only new, pending or running runs "
                                    "can be canceled")
        job = self.job_of(run)
        if job.state not in CAN_CANCEL:
            raise InvalidTransition(f"playbook run {run.id} has already ended (its job is {job.state})")
        self.jobs.cancel(actor, job)
        if job.state == JobState.CANCELED:
            now = utcnow()
            run.status, run.finished_at = RunStatus.CANCELED, now
            run.status_reason = f"canceled by {actor.username} before it started"
        else:
            run.status_reason = f"cancel requested by {actor.username}"
        self.audit.record(actor, "playbook.cancel", target_type="playbook_run", target_id=run.id,
                          after={"status": run.status})
        return run

    # Consistency -------------------------------------------------------------------------------
    def _settle(self, run: PlaybookRun, job: Job) -> bool:
        """A run still new/pending/running whose job has ended gets the job's outcome; True if changed."""
        if run.status not in ACTIVE_STATUSES or job.state not in FINAL_STATES:
            return False
        now = utcnow()
        if job.state == JobState.CANCELED:
            run.status = RunStatus.CANCELED
            run.status_reason = run.status_reason or "canceled"
        elif job.state == JobState.FAILED and "stopped while the job was running" in (job.error or ""):
            run.status = RunStatus.ERROR
            run.status_reason = f"{WORKER_LOST} ({job.worker})" if job.worker else WORKER_LOST
        else:
            run.status = RunStatus.ERROR
            run.status_reason = f"its job ended ({job.state}) without recording the run's result: {job.error or ''}"
        run.finished_at = now
        if run.started_at is not None:
            run.duration_seconds = round((now - run.started_at).total_seconds(), 3)
        return True

    def settle_orphans(self) -> list[int]:
        """Runs left new, pending or running by a job that ended (a worker that died mid-run and was
        failed by ``fail_orphans``, a job canceled through the generic jobs API): marked ``error`` (or
        ``canceled``) with the reason, never left running. Called when a worker starts."""
        q = (select(PlaybookRun, Job).join(Job, Job.id == PlaybookRun.job_id)
             .where(PlaybookRun.status.in_([s.value for s in ACTIVE_STATUSES]),
                    Job.state.in_([s.value for s in FINAL_STATES])))
        return [run.id for run, job in self.session.execute(q).all() if self._settle(run, job)]


def settle_orphaned_runs(svc: Services) -> list[int]:
    """Worker start hook: see :meth:`PlaybookService.settle_orphans`."""
    return PlaybookService.of(svc).settle_orphans()


def run_json(run: PlaybookRun, job: Job | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": run.id, "job_id": run.job_id, "playbook": run.playbook, "status": run.status,
        "status_reason": run.status_reason, "limit": run.limit, "extra_vars": run.extra_vars,
        "started_by": run.started_by, "timeout": run.timeout_seconds, "rc": run.rc,
        "duration_seconds": run.duration_seconds, "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None}
    if job is not None:
        out |= {"site": job.site_code, "progress": job.progress, "message": job.message}
    return out


def event_json(e: PlaybookEvent) -> dict[str, Any]:
    return {"seq": e.seq, "uuid": e.uuid, "event": e.event, "play": e.play, "task": e.task, "host": e.host,
            "ok": e.ok, "changed": e.changed, "failed": e.failed, "unreachable": e.unreachable,
            "at": e.at.isoformat(), "stdout": e.stdout}
