"""DR service: data centers, protected services, plans, drill runs (start, abort, confirm), findings,
schedules and overdue services. The drills themselves run in the worker (:mod:`.engine`)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.scope import Scope
from ..automation.catalog import Catalog
from ..crypto import SecretBox
from ..db import utcnow
from ..errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from ..jobs.models import FINAL_STATES, Job
from ..jobs.service import JobService
from .health import check_target
from .models import (
    ACTIVE_DRILL,
    CenterRole,
    DataCenter,
    DrillFinding,
    DrillMode,
    DrillPlan,
    DrillRun,
    DrillStatus,
    DrillStep,
    ProtectedService,
    StepStatus,
)
from .plans import PLAYBOOK_PURPOSES, check_steps, default_steps

if TYPE_CHECKING:
    from ..servicedesk.service import TicketService

JOB_KIND = "dr.drill"
TZ = "Asia/Shanghai"
SEVERITIES = ("info", "warning", "critical")
#: Secret fields of a protected service: stored encrypted, never shown back in full.
SECRET_FIELDS = {"health_target": "health_target_enc", "copy_target": "copy_target_enc",
                 "marker_primary": "marker_primary_enc", "marker_dr": "marker_dr_enc",
                 "marker_copy": "marker_copy_enc"}


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])


def next_fire(cron: str, after: dt.datetime) -> dt.datetime:
    """The next time a five-field cron expression (Asia/Shanghai) fires strictly after ``after``."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(cron, timezone=TZ)
    except ValueError as exc:
        raise _fail("schedule", f"not a five-field cron expression: {exc}") from exc
    fire = trigger.get_next_fire_time(None, after + dt.timedelta(seconds=1))
    if fire is None:
        raise _fail("schedule", "never fires")
    return fire.astimezone(dt.UTC)


class DRService:
    def __init__(self, session: Session, audit: AuditLog, jobs: JobService, box: SecretBox,
                 tickets: TicketService | None = None, catalog: Catalog | None = None) -> None:
        self.session = session
        self.audit = audit
        self.jobs = jobs
        self.box = box
        self.tickets = tickets
        self.catalog = catalog or Catalog()

    # Data centers ------------------------------------------------------------------------------
    def centers(self) -> list[DataCenter]:
        return list(self.session.execute(select(DataCenter).order_by(DataCenter.role, DataCenter.code)).scalars())

    def create_center(self, actor: Actor, *, code: str, name: str, role: str, location: str = "") -> DataCenter:
        code, name = (code or "").strip(), (name or "").strip()
        if not code or len(code) > 32 or not code.replace("-", "").replace("_", "").isalnum():
            raise _fail("code", "1 to 32 letters, digits, - or _")
        if not 1 <= len(name) <= 100:
            raise _fail("name", "1 to 100 characters")
        if role not in {r.value for r in CenterRole}:
            raise _fail("role", "one of " + ", ".join(CenterRole))
        if self.session.execute(select(DataCenter).where(DataCenter.code == code)).scalar() is not None:
            raise Conflict(f"a data center {code} already exists")
        center = DataCenter(code=code, name=name, role=role, location=(location or "").strip()[:200])
        self.session.add(center)
        self.session.flush()
        self.audit.record(actor, "dr.center.create", target_type="dr_center", target_id=code,
                          after={"name": name, "role": role, "location": center.location})
        return center

    def center(self, code: str) -> DataCenter:
        center = self.session.execute(select(DataCenter).where(DataCenter.code == code)).scalar()
        if center is None:
            raise NotFound(f"no data center {code}")
        return center

    # Protected services ------------------------------------------------------------------------
    def services(self, scope: Scope) -> list[ProtectedService]:
        return list(self.session.execute(select(ProtectedService).where(scope.code_clause(ProtectedService.site_code))
                                         .order_by(ProtectedService.name)).scalars())

    def service(self, service_id: int, scope: Scope) -> ProtectedService:
        s = self.session.execute(select(ProtectedService).where(
            ProtectedService.id == service_id, scope.code_clause(ProtectedService.site_code))).scalar()
        if s is None:
            raise NotFound(f"protected service {service_id} not found")
        return s

    def _of_service(self, model: Any, row_id: int, scope: Scope, what: str) -> Any:
        """A plan or drill by id, if its service is in the caller's scope; NotFound otherwise."""
        row = self.session.execute(
            select(model).join(ProtectedService, ProtectedService.id == model.service_id)
            .where(model.id == row_id, scope.code_clause(ProtectedService.site_code))).scalar()
        if row is None:
            raise NotFound(f"{what} {row_id} not found")
        return row

    def secret(self, service: ProtectedService, name: str) -> str | None:
        token = getattr(service, SECRET_FIELDS[name])
        return self.box.decrypt(token) if token else None

    def save_service(self, actor: Actor, service: ProtectedService | None = None, **fields: Any) -> ProtectedService:
        """Create (``service`` None) or change a protected service; validated, secrets encrypted, audited
        with the changed fields (secrets only as "changed")."""
        creating = service is None
        s = service or ProtectedService(site_code="000000", playbooks={}, inventory="", drill_interval_days=90)
        allowed = {"name", "tenant", "site_code", "primary_center", "dr_center", "rto_seconds", "rpo_seconds",
                   "drill_interval_days", "playbooks", "inventory", "health_kind", "health_query"} | set(SECRET_FIELDS)
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise _fail(unknown[0], "cannot be set")
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}

        pending: dict[str, Any] = {}  # applied only once everything is valid: a refusal changes nothing

        def put(name: str, value: Any, shown: Any = None) -> None:
            attr = SECRET_FIELDS.get(name, name)
            old = getattr(s, attr, None)
            if name in SECRET_FIELDS:
                if value == (self.box.decrypt(old) if old else None):
                    return
                pending[attr] = self.box.encrypt(value) if value else None
                before[name], after[name] = ("(set)" if old else None), ("(changed)" if value else None)
                return
            if old != value:
                pending[attr] = value
                if not creating:
                    before[name] = old if shown is None else shown[0]
                after[name] = value if shown is None else shown[1]

        if "name" in fields or creating:
            name = (fields.get("name") or "").strip()
            if not 1 <= len(name) <= 100:
                raise _fail("name", "1 to 100 characters")
            clash = self.session.execute(select(ProtectedService.id).where(ProtectedService.name == name)).scalar()
            if clash is not None and clash != s.id:
                raise Conflict(f"a protected service named {name} already exists")
            put("name", name)
        if "tenant" in fields:
            # the name (or code) of one of the platform's cloud tenants links the service to it; any other
            # text is kept as the name of a tenant the platform does not manage
            from ..cloud.models import Tenant

            text = (fields["tenant"] or "").strip()[:100] or None
            linked = self.session.execute(select(Tenant).where(
                (Tenant.name == text) | (Tenant.code == text))).scalar() if text else None
            put("tenant", linked.name if linked else text)
            put("tenant_id", linked.id if linked else None)
        if "site_code" in fields:
            from ..sites.models import Site

            if self.session.execute(select(Site.id).where(Site.code == fields["site_code"])).scalar() is None:
                raise _fail("site_code", "no such site")
            put("site_code", fields["site_code"])
        for key, attr in (("primary_center", "primary_center_id"), ("dr_center", "dr_center_id")):
            if key in fields or creating:
                if not fields.get(key):
                    raise _fail(key, "required (a data center code)")
                try:
                    center = self.center(fields[key])
                except NotFound as exc:
                    raise _fail(key, f"no data center {fields[key]}") from exc
                put(attr, center.id)
        if pending.get("primary_center_id", s.primary_center_id) == pending.get("dr_center_id", s.dr_center_id):
            raise _fail("dr_center", "must differ from the primary center")
        for key, low, high in (("rto_seconds", 1, 7 * 86400), ("rpo_seconds", 0, 7 * 86400),
                               ("drill_interval_days", 1, 3650)):
            if key in fields or (creating and key != "drill_interval_days"):
                value = fields.get(key)
                if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                    raise _fail(key, f"a whole number from {low} to {high}")
                put(key, value)
        if "playbooks" in fields:
            pbs = fields["playbooks"] or {}
            if not isinstance(pbs, dict) or set(pbs) - set(PLAYBOOK_PURPOSES):
                raise _fail("playbooks", "a mapping with keys among " + ", ".join(PLAYBOOK_PURPOSES))
            for purpose, name in pbs.items():
                try:
                    self.catalog.get(name)
                except NotFound as exc:
                    raise _fail(f"playbooks.{purpose}", f"no playbook {name}") from exc
            put("playbooks", dict(pbs))
        if "inventory" in fields:
            text = fields["inventory"] or ""
            try:
                parsed = yaml.safe_load(text) if text.strip() else {}
            except yaml.YAMLError as exc:
                raise _fail("inventory", f"not valid YAML: {str(exc).splitlines()[0]}") from exc
            if not isinstance(parsed, dict):
                raise _fail("inventory", "a YAML inventory (a mapping, e.g. all: {children: …})")
            put("inventory", text, ("(previous)", f"{len(text)} characters"))
        kind = fields.get("health_kind", s.health_kind)
        query_now = fields.get("health_query", s.health_query)
        if "health_kind" in fields or "health_target" in fields or "health_query" in fields or creating:
            target = str(fields.get("health_target", self.secret(s, "health_target") if s.health_target_enc else "")
                         or "")
            query = fields.get("health_query", s.health_query)
            check_target(str(kind), target, query)
            put("health_kind", kind)
            put("health_query", (query or "").strip() or None)
            put("health_target", target.strip())
        for name in ("copy_target", "marker_primary", "marker_dr", "marker_copy"):
            if name in fields:
                value = (fields[name] or "").strip() or None
                if value and name == "copy_target":
                    check_target(kind, value, query_now)
                elif value:
                    check_target("sql", value, "select 1")
                put(name, value)
        if not creating and not after:
            return s
        for attr, value in pending.items():
            setattr(s, attr, value)
        s.updated_at = utcnow()
        if creating:
            self.session.add(s)
        self.session.flush()
        self.audit.record(actor, "dr.service.create" if creating else "dr.service.update",
                          target_type="dr_service", target_id=s.id, before=before or None, after=after)
        return s

    # Plans -------------------------------------------------------------------------------------
    def plans(self, service: ProtectedService) -> list[DrillPlan]:
        return list(self.session.execute(select(DrillPlan).where(DrillPlan.service_id == service.id)
                                         .order_by(DrillPlan.id)).scalars())

    def plan(self, plan_id: int, scope: Scope) -> DrillPlan:
        return self._of_service(DrillPlan, plan_id, scope, "drill plan")

    def save_plan(self, actor: Actor, service: ProtectedService, plan: DrillPlan | None = None, *,
                  name: str | None = None, mode: str | None = None, steps: Any = None,
                  schedule: str | None = None, now: dt.datetime | None = None) -> DrillPlan:
        """Create or change a plan. Without steps, a new plan gets its mode's default steps."""
        now = now or utcnow()
        creating = plan is None
        mode = mode if mode is not None else (plan.mode if plan else None)
        if mode not in {m.value for m in DrillMode}:
            raise _fail("mode", "one of " + ", ".join(DrillMode))
        name = (name if name is not None else (plan.name if plan else "")).strip()
        if not 1 <= len(name) <= 100:
            raise _fail("name", "1 to 100 characters")
        clash = self.session.execute(select(DrillPlan.id).where(DrillPlan.service_id == service.id,
                                                                DrillPlan.name == name)).scalar()
        if clash is not None and (plan is None or clash != plan.id):
            raise Conflict(f"{service.name} already has a plan named {name}")
        if steps is None:
            steps = plan.steps if plan is not None and plan.mode == mode else default_steps(mode, service.playbooks)
        checked = check_steps(steps, self.catalog)
        schedule = (schedule or "").strip() or None if schedule is not None else (plan.schedule if plan else None)
        next_run = next_fire(schedule, now) if schedule else None
        before = None if plan is None else {"name": plan.name, "mode": plan.mode, "steps": plan.steps,
                                            "schedule": plan.schedule}
        p = plan or DrillPlan(service_id=service.id, created_by=actor.username, created_at=now)
        p.name, p.mode, p.steps, p.schedule, p.next_run_at, p.updated_at = name, mode, checked, schedule, next_run, now
        if creating:
            self.session.add(p)
        self.session.flush()
        self.audit.record(actor, "dr.plan.create" if creating else "dr.plan.update", target_type="dr_plan",
                          target_id=p.id, before=before,
                          after={"service": service.name, "name": name, "mode": mode, "steps": checked,
                                 "schedule": schedule})
        return p

    # Drill runs --------------------------------------------------------------------------------
    def start(self, actor: Actor, plan: DrillPlan, *, now: dt.datetime | None = None) -> DrillRun:
        """Record a drill and queue it. One drill at a time per service: the service row is claimed
        by a conditional UPDATE, so two starts (a double click, two users) cannot both pass."""
        service = self.session.get(ProtectedService, plan.service_id)
        assert service is not None
        self.settle_orphans()
        now = now or utcnow()
        result: Any = self.session.execute(
            update(ProtectedService)
            .where(ProtectedService.id == service.id, ProtectedService.active_drill_id.is_(None))
            .values(active_drill_id=0).execution_options(synchronize_session=False))
        claimed = result.rowcount
        if claimed != 1:
            self.session.refresh(service)
            running = self.session.get(DrillRun, service.active_drill_id) if service.active_drill_id else None
            what = (f"drill #{running.id} ({running.mode}, {running.status}, started by {running.started_by})"
                    if running else "another drill is being started")
            raise Conflict(f"{service.name} already has a drill running: {what}; abort it or wait until it ends")
        drill = DrillRun(plan_id=plan.id, service_id=service.id, mode=plan.mode, steps=list(plan.steps),
                         status=DrillStatus.QUEUED, started_by=actor.username, created_at=now,
                         rto_target=service.rto_seconds, rpo_target=service.rpo_seconds, markers={})
        self.session.add(drill)
        self.session.flush()
        self.session.execute(update(ProtectedService).where(ProtectedService.id == service.id)
                             .values(active_drill_id=drill.id).execution_options(synchronize_session=False))
        self.session.refresh(service)
        for i, step in enumerate(drill.steps):
            self.session.add(DrillStep(drill_id=drill.id, phase="step", position=i, name=step["name"],
                                       kind=step["kind"], status=StepStatus.PENDING, role=step.get("role")))
        job = self.jobs.enqueue(actor, JOB_KIND, {"drill_id": drill.id}, site_code=service.site_code)
        drill.job_id = job.id
        self.audit.record(actor, "dr.drill.start", target_type="dr_drill", target_id=drill.id,
                          after={"service": service.name, "plan": plan.name, "mode": plan.mode, "job_id": job.id})
        return drill

    def drill(self, drill_id: int, scope: Scope) -> DrillRun:
        return self._of_service(DrillRun, drill_id, scope, "drill")

    def drills(self, scope: Scope, *, service_id: int | None = None, status: str | None = None,
               limit: int = 50, offset: int = 0) -> tuple[list[DrillRun], int]:
        q = (select(DrillRun).join(ProtectedService, ProtectedService.id == DrillRun.service_id)
             .where(scope.code_clause(ProtectedService.site_code)))
        if service_id is not None:
            q = q.where(DrillRun.service_id == service_id)
        if status:
            if status not in {s.value for s in DrillStatus}:
                raise _fail("status", "one of " + ", ".join(DrillStatus))
            q = q.where(DrillRun.status == status)
        total = int(self.session.execute(select(func.count()).select_from(q.subquery())).scalar_one())
        rows = list(self.session.execute(q.order_by(DrillRun.id.desc()).limit(limit).offset(offset)).scalars())
        return rows, total

    def steps(self, drill: DrillRun) -> list[DrillStep]:
        return list(self.session.execute(select(DrillStep).where(DrillStep.drill_id == drill.id)
                                         .order_by(DrillStep.id)).scalars())

    def findings(self, drill: DrillRun) -> list[DrillFinding]:
        return list(self.session.execute(select(DrillFinding).where(DrillFinding.drill_id == drill.id)
                                         .order_by(DrillFinding.id)).scalars())

    def abort(self, actor: Actor, drill: DrillRun) -> DrillRun:
        """Stop the drill: the step running now is canceled (its playbook run too) and the started steps
        are rolled back in reverse order by the worker (it sees the request within a second). A queued
        drill ends at once."""
        if drill.status not in ACTIVE_DRILL:
            raise InvalidTransition(f"drill #{drill.id} is {drill.status}; "
                                    "only a queued or running drill can be aborted")
        if drill.status == DrillStatus.ROLLING_BACK:
            raise InvalidTransition(f"drill #{drill.id} is already rolling back")
        if drill.abort_requested_by:
            return drill
        drill.abort_requested_by = actor.username
        job = self.session.get(Job, drill.job_id) if drill.job_id else None
        if drill.status == DrillStatus.QUEUED and job is not None and job.state == "queued":
            self.jobs.cancel(actor, job)
            self._finish(drill, DrillStatus.ABORTED, f"aborted by {actor.username} before it started")
            for step in self.steps(drill):
                step.status = StepStatus.SKIPPED
        self.audit.record(actor, "dr.drill.abort", target_type="dr_drill", target_id=drill.id,
                          after={"status": drill.status})
        return drill

    def confirm(self, actor: Actor, drill: DrillRun, *, ok: bool = True, note: str = "") -> DrillStep:
        """A user of the step's role confirms (or rejects: the step fails) the manual step waiting now."""
        step = self.session.execute(select(DrillStep).where(
            DrillStep.drill_id == drill.id, DrillStep.status == StepStatus.WAITING)).scalar()
        if step is None:
            raise InvalidTransition(f"drill #{drill.id} is not waiting for a confirmation")
        if actor.role != step.role:
            raise PermissionDenied(f"this step must be confirmed by a user with the role {step.role}")
        step.confirmed_by, step.confirm_ok = actor.username, ok
        note = (note or "").strip()[:1000]
        step.message = f"{'confirmed' if ok else 'rejected'} by {actor.username}" + (f": {note}" if note else "")
        self.audit.record(actor, "dr.drill.confirm", target_type="dr_drill", target_id=drill.id,
                          after={"step": step.name, "ok": ok, "note": note})
        return step

    def _finish(self, drill: DrillRun, status: DrillStatus, reason: str | None) -> None:
        drill.status, drill.status_reason, drill.finished_at = status, reason, utcnow()
        self.session.execute(update(ProtectedService).where(ProtectedService.active_drill_id == drill.id)
                             .values(active_drill_id=None).execution_options(synchronize_session=False))

    def settle_orphans(self) -> list[int]:
        """Drills still active whose job has ended (the worker died mid-drill): marked ``error`` with
        the reason, the service freed for the next drill. Never "running" forever."""
        q = (select(DrillRun, Job).join(Job, Job.id == DrillRun.job_id)
             .where(DrillRun.status.in_([s.value for s in ACTIVE_DRILL]),
                    Job.state.in_([s.value for s in FINAL_STATES])))
        settled = []
        for drill, job in self.session.execute(q).all():
            reason = ("the worker stopped while the drill was running" if "stopped while" in (job.error or "")
                      else f"its job ended ({job.state}) without finishing the drill: {job.error or ''}")
            self._finish(drill, DrillStatus.ERROR, reason + "; check the service's state before the next drill")
            for step in self.steps(drill):
                if step.status in (StepStatus.RUNNING, StepStatus.WAITING):
                    step.status, step.finished_at = StepStatus.CANCELED, utcnow()
            settled.append(drill.id)
        return settled

    # Findings ----------------------------------------------------------------------------------
    def add_finding(self, actor: Actor, drill: DrillRun, severity: str, text: str, *,
                    source: str | None = None, open_ticket: bool = True) -> DrillFinding:
        """A finding; it opens a change ticket in the service desk (idempotent per finding)."""
        if severity not in SEVERITIES:
            raise _fail("severity", "one of " + ", ".join(SEVERITIES))
        text = (text or "").strip()
        if not 1 <= len(text) <= 2000:
            raise _fail("text", "1 to 2,000 characters")
        finding = DrillFinding(drill_id=drill.id, severity=severity, text=text, source=source or actor.username)
        self.session.add(finding)
        self.session.flush()
        if open_ticket:
            self.open_ticket(actor, finding)
        self.audit.record(actor, "dr.finding.add", target_type="dr_drill", target_id=drill.id,
                          after={"severity": severity, "text": text, "ticket": finding.ticket_number})
        return finding

    def open_ticket(self, actor: Actor, finding: DrillFinding) -> str:
        if finding.ticket_number:
            return finding.ticket_number
        assert self.tickets is not None, "DRService needs the ticket service to open change tickets"
        drill = self.session.get(DrillRun, finding.drill_id)
        assert drill is not None
        service = self.session.get(ProtectedService, drill.service_id)
        assert service is not None
        impact = {"critical": 2, "warning": 3, "info": 4}[finding.severity]
        ticket = self.tickets.create(
            actor, Scope.everything(), type="change", category="other", impact=impact, urgency=impact,
            title=f"DR drill #{drill.id} ({service.name}): {finding.text}"[:200],
            description=(f"Finding of DR drill #{drill.id} ({drill.mode}) of {service.name}, "
                         f"severity {finding.severity}:\n\n{finding.text}"),
            site_code=service.site_code, requester_name=f"DR drill #{drill.id}", source="dr")
        finding.ticket_number = ticket.number
        return ticket.number

    # Schedules and overdue ---------------------------------------------------------------------
    def overdue(self, scope: Scope, now: dt.datetime | None = None) -> list[tuple[ProtectedService, int | None]]:
        """Services whose last successful drill is older than their interval (or that never had one),
        with the days since that drill (None: never)."""
        now = now or utcnow()
        out: list[tuple[ProtectedService, int | None]] = []
        for s in self.services(scope):
            if s.last_success_at is None:
                out.append((s, None))
            elif now - s.last_success_at > dt.timedelta(days=s.drill_interval_days):
                out.append((s, (now - s.last_success_at).days))
        return out

    def start_due(self, actor: Actor, now: dt.datetime | None = None) -> list[str]:
        """Start the scheduled plans that are due (the worker's ``dr.schedule`` job); a plan whose service
        is busy waits for its next slot. Returns what happened, one line per plan."""
        now = now or utcnow()
        lines = []
        due = self.session.execute(select(DrillPlan).where(DrillPlan.schedule.isnot(None),
                                                           DrillPlan.next_run_at <= now)).scalars().all()
        for plan in due:
            assert plan.schedule is not None
            plan.next_run_at = next_fire(plan.schedule, now)
            try:
                with self.session.begin_nested():
                    drill = self.start(actor, plan, now=now)
                lines.append(f"plan {plan.id} ({plan.name}): drill #{drill.id} started")
            except Conflict as exc:
                lines.append(f"plan {plan.id} ({plan.name}): skipped, {exc}")
        return lines


def drill_json(d: DrillRun, service: ProtectedService | None = None) -> dict[str, Any]:
    def iso(v: dt.datetime | None) -> str | None:
        return v.isoformat() if v else None

    out = {"id": d.id, "plan_id": d.plan_id, "service_id": d.service_id, "job_id": d.job_id, "mode": d.mode,
           "status": d.status, "status_reason": d.status_reason, "started_by": d.started_by,
           "abort_requested_by": d.abort_requested_by, "created_at": iso(d.created_at),
           "started_at": iso(d.started_at), "finished_at": iso(d.finished_at), "rollback": d.rollback,
           "rto": {"target": d.rto_target, "measured": d.rto_seconds, "met": d.rto_met},
           "rpo": {"target": d.rpo_target, "measured": d.rpo_seconds, "met": d.rpo_met},
           "switch_at": iso(d.switch_at), "healthy_at": iso(d.healthy_at), "markers": d.markers}
    if service is not None:
        out["service"] = service.name
    return out


def drill_detail(dr: DRService, d: DrillRun) -> dict[str, Any]:
    """A drill with its steps (and rollbacks) and findings: the API's and the CLI's view."""
    service = dr.session.get(ProtectedService, d.service_id)
    return drill_json(d, service) | {"steps": [step_json(s) for s in dr.steps(d)],
                                     "findings": [finding_json(f) for f in dr.findings(d)]}


def step_json(s: DrillStep) -> dict[str, Any]:
    return {"id": s.id, "phase": s.phase, "position": s.position, "name": s.name, "kind": s.kind,
            "status": s.status, "started_at": s.started_at.isoformat() if s.started_at else None,
            "finished_at": s.finished_at.isoformat() if s.finished_at else None, "message": s.message,
            "playbook_run_id": s.playbook_run_id, "role": s.role, "confirmed_by": s.confirmed_by}


def finding_json(f: DrillFinding) -> dict[str, Any]:
    return {"id": f.id, "severity": f.severity, "text": f.text, "source": f.source, "ticket": f.ticket_number,
            "created_at": f.created_at.isoformat()}


def service_json(s: ProtectedService, centers: dict[int, DataCenter], overdue: bool | None = None) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "tenant": s.tenant, "tenant_id": s.tenant_id, "site": s.site_code,
            "primary_center": centers[s.primary_center_id].code, "dr_center": centers[s.dr_center_id].code,
            "rto_seconds": s.rto_seconds, "rpo_seconds": s.rpo_seconds, "drill_interval_days": s.drill_interval_days,
            "playbooks": s.playbooks, "health_kind": s.health_kind, "health_query": s.health_query,
            "markers": bool(s.marker_primary_enc), "active_drill_id": s.active_drill_id,
            "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None, "overdue": overdue}

