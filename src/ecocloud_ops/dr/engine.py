"""Runs a drill in the worker (job kind ``dr.drill``): steps in order, live status, abort and rollback,
measured RTO and RPO, findings.

* Playbook steps are playbook runs like any other (events, output, cancel), executed in this thread
  under the drill's worker name; a watcher cancels the run when the drill is aborted or its job canceled.
* RTO: from the start of the switch step to the first successful health check after it.
* RPO: :mod:`.markers`. The cut-off is the end of the switch step (every write the primary acknowledged
  before the DR center took over), or in a test drill its start (the copy stops replaying when it is
  promoted). The newest marker is read at the DR center (the copy in a test drill) once it is healthy.
* On an abort or a failed step, the steps that were started get their rollbacks in reverse order (a
  rollback shared by several steps runs once); a rollback that fails stops the rollback and is reported
  as needing manual work.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import update

from ..audit.service import Actor
from ..automation.models import PlaybookRun, RunStatus
from ..automation.service import PlaybookService
from ..db import utcnow
from ..jobs.models import Job
from ..jobs.runner import JobCanceled
from .health import probe
from .markers import MarkerWriter, newest_marker, rpo_from
from .models import DrillFinding, DrillMode, DrillRun, DrillStatus, DrillStep, ProtectedService, StepStatus
from .service import DRService

if TYPE_CHECKING:
    from ..jobs.runner import JobContext

log = logging.getLogger(__name__)
POLL = 0.5
HEALTH_INTERVAL = 0.25


class Aborted(Exception):
    pass


class DrillEngine:
    def __init__(self, ctx: JobContext, drill_id: int) -> None:
        self.ctx = ctx
        self.container = ctx.container
        self.drill_id = drill_id
        self._last_abort_check = 0.0
        self._aborted = False
        self.writer: MarkerWriter | None = None

    # Helpers ---------------------------------------------------------------------------------
    def _dr(self, svc: Any) -> DRService:
        return svc.dr

    def _update_step(self, step_id: int, **values: Any) -> None:
        with self.ctx.unit_of_work() as svc:
            step = svc.session.get(DrillStep, step_id)
            assert step is not None
            for k, v in values.items():
                setattr(step, k, v)

    def _update_drill(self, **values: Any) -> None:
        with self.ctx.unit_of_work() as svc:
            drill = svc.session.get(DrillRun, self.drill_id)
            assert drill is not None
            for k, v in values.items():
                setattr(drill, k, v)

    def abort_requested(self, force: bool = False) -> bool:
        """The drill's abort flag or its job's cancel flag (read at most twice a second)."""
        if self._aborted:
            return True
        now = time.monotonic()
        if not force and now - self._last_abort_check < POLL:
            return False
        self._last_abort_check = now
        with self.ctx.unit_of_work() as svc:
            drill = svc.session.get(DrillRun, self.drill_id)
            job = svc.session.get(Job, self.ctx.job_id)
            if drill is not None and job is not None and job.cancel_requested and not drill.abort_requested_by:
                drill.abort_requested_by = (job.message or "").removeprefix("cancel requested by ") or "job cancel"
            self._aborted = bool(drill is not None and drill.abort_requested_by)
        return self._aborted

    # The drill ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        with self.ctx.unit_of_work() as svc:
            drill = svc.session.get(DrillRun, self.drill_id)
            if drill is None:
                raise RuntimeError(f"drill {self.drill_id} does not exist")
            if drill.status != DrillStatus.QUEUED:
                raise RuntimeError(f"drill #{drill.id} is {drill.status}; a drill is run once")
            service = svc.session.get(ProtectedService, drill.service_id)
            assert service is not None
            dr = self._dr(svc)
            job = svc.session.get(Job, self.ctx.job_id)
            self.worker_name = (job.worker if job is not None and job.worker else "worker")
            self.actor = Actor(drill.started_by, channel="worker")
            self.mode = drill.mode
            self.plan_steps: list[dict[str, Any]] = list(drill.steps)
            self.step_ids = [s.id for s in dr.steps(drill) if s.phase == "step"]
            self.site_code = service.site_code
            self.inventory = yaml.safe_load(service.inventory) if (service.inventory or "").strip() else None
            self.health = (service.health_kind, dr.secret(service, "health_target"), service.health_query)
            self.copy_target = dr.secret(service, "copy_target")
            self.marker_primary = dr.secret(service, "marker_primary")
            self.marker_read = dr.secret(service, "marker_copy" if drill.mode == DrillMode.TEST else "marker_dr")
            self.service_name = service.name
            drill.status, drill.started_at = DrillStatus.RUNNING, utcnow()
        try:
            summary = self._run()
        except Exception as exc:
            log.exception("drill %s failed", self.drill_id)
            self._stop_writer()
            with self.ctx.unit_of_work() as svc:
                drill = svc.session.get(DrillRun, self.drill_id)
                assert drill is not None
                self._dr(svc)._finish(drill, DrillStatus.ERROR, f"{type(exc).__name__}: {exc}")
                for step in self._dr(svc).steps(drill):
                    if step.status in (StepStatus.RUNNING, StepStatus.WAITING):
                        step.status, step.finished_at = StepStatus.CANCELED, utcnow()
            raise
        self.ctx.log(f"drill #{self.drill_id} ({self.service_name}): {summary['status']}"
                     + (f" — {summary['reason']}" if summary["reason"] else ""),
                     "info" if summary["status"] == DrillStatus.SUCCEEDED else "warning")
        if summary["status"] == DrillStatus.ABORTED:
            raise JobCanceled()
        if summary["status"] == DrillStatus.FAILED:
            raise RuntimeError(f"drill #{self.drill_id} failed: {summary['reason']}")
        return summary

    def _run(self) -> dict[str, Any]:
        has_switch = any(s.get("switch") for s in self.plan_steps)
        failure: str | None = None
        if has_switch and self.marker_primary and self.marker_read:
            self.writer = MarkerWriter(self.marker_primary, self.drill_id)
            try:
                self.writer.prepare()
            except Exception as exc:
                self.writer = None
                failure = f"the RPO markers cannot be written on the primary: {type(exc).__name__}: {exc}"
            else:
                self.writer.start()
                time.sleep(0.5)  # some markers acknowledged before the first step
        started: list[int] = []
        switch_index: int | None = None
        measured = False
        n = len(self.plan_steps)
        for i, step in enumerate(self.plan_steps):
            if failure or self.abort_requested(force=True):
                break
            self.ctx.progress(i / n, f"step {i + 1}/{n}: {step['name']}")
            at = utcnow()
            self._update_step(self.step_ids[i], status=StepStatus.RUNNING, started_at=at)
            started.append(i)
            if step.get("switch"):
                switch_index = i
                self._update_drill(switch_at=at)
            try:
                ok, message, healthy_at = self._execute(step, self.step_ids[i])
                status = StepStatus.SUCCEEDED if ok else StepStatus.FAILED
            except Aborted as exc:
                ok, message, healthy_at, status = False, str(exc), None, StepStatus.CANCELED
            end = utcnow()
            self._update_step(self.step_ids[i], status=status, finished_at=end, message=message[:4000])
            if not ok and status == StepStatus.FAILED:
                failure = f"step {i + 1} ({step['name']}) failed: {message}"
            if i == switch_index:
                self._switch_done(at, end)
            if ok and healthy_at is not None and switch_index is not None and not measured:
                measured = True
                self._measure(healthy_at)
        self._stop_writer()
        aborted = self.abort_requested(force=True)
        rollback = "none"
        if failure or aborted:
            rollback = self._rollback(started)
        return self._conclude(failure, aborted, rollback)

    def _switch_done(self, start: dt.datetime, end: dt.datetime) -> None:
        """The cut-off for the RPO; the writer stops (the DR side or the copy has taken over)."""
        self.cutoff = start if self.mode == DrillMode.TEST else end
        self._stop_writer()

    def _stop_writer(self) -> None:
        if self.writer is not None:
            self.writer.stop()

    def _measure(self, healthy_at: dt.datetime) -> None:
        with self.ctx.unit_of_work() as svc:
            drill = svc.session.get(DrillRun, self.drill_id)
            assert drill is not None and drill.switch_at is not None
            drill.healthy_at = healthy_at
            drill.rto_seconds = round((healthy_at - drill.switch_at).total_seconds(), 3)
            drill.rto_met = drill.rto_seconds <= drill.rto_target
            switch_at = drill.switch_at
        evidence: dict[str, Any] = {}
        rpo = None
        if self.writer is not None:
            w = self.writer
            cutoff = getattr(self, "cutoff", switch_at)
            last = w.last_ack_before(cutoff)
            evidence = {"written": w.attempts, "acknowledged": len(w.acks), "failed": w.failures,
                        "last_error": w.last_error or None, "cutoff": cutoff.isoformat(),
                        "read_from": "copy" if self.mode == DrillMode.TEST else "dr",
                        "last_acknowledged": {"seq": last.seq, "at": last.at.isoformat()} if last else None}
            try:
                assert self.marker_read is not None
                newest = newest_marker(self.marker_read, self.drill_id)
                evidence["newest_at_dr"] = {"seq": newest[0], "at": newest[1].isoformat()} if newest else None
                rpo = rpo_from(last, newest, w.acks[0].at if w.acks else None)
            except Exception as exc:
                evidence["error"] = f"the newest marker could not be read: {type(exc).__name__}: {exc}"
        else:
            evidence = {"error": "no marker connection strings configured: the RPO was not measured"}
        with self.ctx.unit_of_work() as svc:
            drill = svc.session.get(DrillRun, self.drill_id)
            assert drill is not None
            drill.markers = evidence
            drill.rpo_seconds = rpo
            drill.rpo_met = None if rpo is None else rpo <= drill.rpo_target

    # Steps -------------------------------------------------------------------------------------
    def _execute(self, step: dict[str, Any], step_id: int) -> tuple[bool, str, dt.datetime | None]:
        kind = step["kind"]
        if kind == "playbook":
            ok, message = self._playbook(step, step_id)
            return ok, message, None
        if kind == "health_check":
            return self._health(step)
        if kind == "wait":
            deadline = time.monotonic() + step["seconds"]
            while time.monotonic() < deadline:
                if self.abort_requested():
                    raise Aborted("aborted while waiting")
                time.sleep(min(POLL, max(deadline - time.monotonic(), 0)))
            return True, f"waited {step['seconds']} s", None
        if kind == "manual":
            return self._manual(step, step_id)
        return False, f"unknown step kind {kind}", None

    def _playbook(self, step: dict[str, Any], step_id: int, abortable: bool = True) -> tuple[bool, str]:
        from ..jobs.runner import Worker

        with self.ctx.unit_of_work() as svc:
            run = PlaybookService.of(svc).start(
                self.actor, step["playbook"], step.get("extra_vars") or {}, limit=step.get("limit"),
                inventory=self.inventory, timeout=step.get("timeout"), site_code=self.site_code,
                claimed_by=self.worker_name)
            run_id, job_id = run.id, run.job_id
            svc.session.execute(update(DrillStep).where(DrillStep.id == step_id).values(playbook_run_id=run_id))
        done = threading.Event()

        def watch() -> None:  # cancel the run when the drill is aborted
            while not done.wait(POLL):
                try:
                    if abortable and self.abort_requested(force=True):
                        with self.container.unit_of_work() as svc:
                            svc.session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
                        return
                except Exception:
                    log.exception("drill %s: abort watch failed", self.drill_id)

        watcher = threading.Thread(target=watch, name=f"drill-{self.drill_id}-watch", daemon=True)
        watcher.start()
        try:
            Worker(self.container, name=self.worker_name).run_job_now(job_id)
        finally:
            done.set()
            watcher.join(timeout=5)
        with self.ctx.unit_of_work() as svc:
            ended = svc.session.get(PlaybookRun, run_id)
            assert ended is not None
            status, reason = ended.status, ended.status_reason
        message = f"{step['playbook']}: playbook run #{run_id} {status}" + (f" — {reason}" if reason else "")
        if status == RunStatus.CANCELED and abortable:
            raise Aborted(message)
        return status == RunStatus.SUCCESSFUL, message

    def _health(self, step: dict[str, Any], abortable: bool = True) -> tuple[bool, str, dt.datetime | None]:
        kind, target, query = self.health
        if step.get("target") == "copy":
            if not self.copy_target:
                return False, "the service has no health target for the copy (copy_target)", None
            target = self.copy_target
        assert target is not None
        deadline = time.monotonic() + step.get("timeout", 120)
        attempts, detail = 0, ""
        while True:
            attempts += 1
            result = probe(kind, target, query)
            if result.ok:
                return True, f"healthy after {attempts} attempt(s): {result.detail}", utcnow()
            detail = result.detail
            if time.monotonic() >= deadline:
                return False, f"not healthy after {attempts} attempts in {step.get('timeout', 120)} s: {detail}", None
            if abortable and self.abort_requested():
                raise Aborted(f"aborted during the health check ({attempts} attempts; last: {detail})")
            time.sleep(HEALTH_INTERVAL)

    def _manual(self, step: dict[str, Any], step_id: int) -> tuple[bool, str, dt.datetime | None]:
        self._update_step(step_id, status=StepStatus.WAITING)
        self._update_drill(status=DrillStatus.WAITING)
        self.ctx.progress(0.0, f"waiting for a confirmation by {step['role']}: {step['name']}")
        deadline = time.monotonic() + step.get("timeout", 3600)
        try:
            while time.monotonic() < deadline:
                with self.ctx.unit_of_work() as svc:
                    row = svc.session.get(DrillStep, step_id)
                    assert row is not None
                    confirmed, ok, message = row.confirmed_by, row.confirm_ok, row.message
                if confirmed:
                    return bool(ok), message, None
                if self.abort_requested():
                    raise Aborted("aborted while waiting for the confirmation")
                time.sleep(POLL)
            return False, f"no confirmation by {step['role']} within {step.get('timeout', 3600)} s", None
        finally:
            self._update_drill(status=DrillStatus.RUNNING)

    # Rollback and conclusion ---------------------------------------------------------------------
    def _rollback(self, started: list[int]) -> str:
        todo: list[tuple[int, dict[str, Any]]] = []
        for i in reversed(started):
            rb = self.plan_steps[i].get("rollback")
            if rb and rb not in [r for _, r in todo]:
                todo.append((i, rb))
        with self.ctx.unit_of_work() as svc:
            drill = svc.session.get(DrillRun, self.drill_id)
            assert drill is not None
            drill.status = DrillStatus.ROLLING_BACK
            for step in self._dr(svc).steps(drill):
                if step.phase == "step" and step.status == StepStatus.PENDING:
                    step.status = StepStatus.SKIPPED
            ids = []
            for i, rb in todo:
                row = DrillStep(drill_id=drill.id, phase="rollback", position=i, kind=rb["kind"],
                                name=rb["name"], status=StepStatus.PENDING)
                svc.session.add(row)
                svc.session.flush()
                ids.append(row.id)
        if not todo:
            return "none"
        for (i, rb), step_id in zip(todo, ids, strict=True):
            self.ctx.progress(0.0, f"rolling back step {i + 1}: {rb['name']}")
            self._update_step(step_id, status=StepStatus.RUNNING, started_at=utcnow())
            if rb["kind"] == "playbook":
                ok, message = self._playbook(rb, step_id, abortable=False)
            elif rb["kind"] == "health_check":
                ok, message, _ = self._health(rb, abortable=False)
            else:
                time.sleep(rb["seconds"])
                ok, message = True, f"waited {rb['seconds']} s"
            self._update_step(step_id, status=StepStatus.SUCCEEDED if ok else StepStatus.FAILED,
                              finished_at=utcnow(), message=message[:4000])
            if not ok:
                with self.ctx.unit_of_work() as svc:
                    for sid in ids[ids.index(step_id) + 1:]:
                        svc.session.execute(update(DrillStep).where(DrillStep.id == sid)
                                            .values(status=StepStatus.SKIPPED))
                return "failed"
        return "succeeded"

    def _conclude(self, failure: str | None, aborted: bool, rollback: str) -> dict[str, Any]:
        findings: list[tuple[str, str]] = []
        with self.ctx.unit_of_work() as svc:
            dr = self._dr(svc)
            drill = svc.session.get(DrillRun, self.drill_id)
            assert drill is not None
            service = svc.session.get(ProtectedService, drill.service_id)
            assert service is not None
            drill.rollback = rollback
            if failure:
                status, reason = DrillStatus.FAILED, failure
                findings.append(("critical" if drill.switch_at else "warning", failure))
            elif aborted:
                status, reason = DrillStatus.ABORTED, f"aborted by {drill.abort_requested_by}"
            else:
                status, reason = DrillStatus.SUCCEEDED, None
            if rollback == "failed":
                findings.append(("critical", "a rollback step failed: the service needs manual recovery "
                                             "(see the drill's rollback steps)"))
            for what, met, value, target in (("RTO", drill.rto_met, drill.rto_seconds, drill.rto_target),
                                             ("RPO", drill.rpo_met, drill.rpo_seconds, drill.rpo_target)):
                if met is False:
                    findings.append(("warning", f"{what} {value:.1f} s exceeded the target of {target} s"))
            if status == DrillStatus.SUCCEEDED and drill.switch_at and drill.rto_seconds is None:
                findings.append(("warning", "no successful health check after the switch: the RTO was not measured"))
            if status == DrillStatus.SUCCEEDED and drill.rto_seconds is not None and drill.rpo_seconds is None:
                findings.append(("warning", "RPO not measured: " + str((drill.markers or {}).get("error", ""))))
            dr._finish(drill, status, reason)
            if status == DrillStatus.SUCCEEDED and drill.rto_met is not False and drill.rpo_met is not False:
                service.last_success_at = drill.finished_at
            summary = {"drill_id": drill.id, "status": status.value, "reason": reason,
                       "rto_seconds": drill.rto_seconds, "rpo_seconds": drill.rpo_seconds, "rollback": rollback}
        worker = Actor("dr-drill", channel="worker")
        for severity, text in findings:
            with self.ctx.unit_of_work() as svc:  # the finding is kept even if no ticket can be opened
                drill = svc.session.get(DrillRun, self.drill_id)
                assert drill is not None
                finding_id = svc.dr.add_finding(worker, drill, severity, text, source="auto", open_ticket=False).id
            try:
                with self.ctx.unit_of_work() as svc:
                    finding = svc.session.get(DrillFinding, finding_id)
                    assert finding is not None
                    svc.dr.open_ticket(worker, finding)
            except Exception:
                log.exception("drill %s: no change ticket opened for finding %s", self.drill_id, finding_id)
        return summary


def drill_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    return DrillEngine(ctx, int(params["drill_id"])).run()


def settle_orphaned_drills(svc: Any) -> list[int]:
    """Worker start hook (after orphaned jobs were failed): see :meth:`DRService.settle_orphans`."""
    return svc.dr.settle_orphans()
