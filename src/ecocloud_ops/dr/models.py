"""DR model: data centers, protected services, drill plans, drill runs, their steps and findings."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class CenterRole(enum.StrEnum):
    """两地三中心: the production center, the same-city DR center and the remote DR center."""

    PRODUCTION = "production"
    SAME_CITY_DR = "same_city_dr"
    REMOTE_DR = "remote_dr"


class HealthKind(enum.StrEnum):
    HTTP = "http"  # target: a URL; healthy = a 2xx/3xx answer
    TCP = "tcp"  # target: host:port; healthy = the connection is accepted
    SQL = "sql"  # target: a PostgreSQL DSN; healthy = the query's first column is true


class DrillMode(enum.StrEnum):
    #: On a copy: a new instance built from the standby's data is promoted in isolation and checked,
    #: while production and replication keep running; cleanup removes the copy.
    TEST = "test"
    #: A controlled switch: data synchronized first, no acknowledged write lost.
    PLANNED_MIGRATION = "planned_migration"
    #: The primary is assumed lost: the standby takes over at once.
    DISASTER = "disaster"


class DrillStatus(enum.StrEnum):
    """One meaning each (see docs in the DR console page)."""

    QUEUED = "queued"  # recorded; waiting for a worker
    RUNNING = "running"  # a step is executing
    WAITING = "waiting"  # a manual step waits for a confirmation by a named role
    ROLLING_BACK = "rolling_back"  # after an abort or a failed step: rollbacks run in reverse order
    SUCCEEDED = "succeeded"  # every step succeeded (RTO/RPO pass/fail is judged separately)
    FAILED = "failed"  # a step failed; the completed steps were rolled back
    ABORTED = "aborted"  # stopped by a user; the started steps were rolled back
    ERROR = "error"  # the platform could not carry the drill on (worker lost, internal error)


ACTIVE_DRILL = frozenset({DrillStatus.QUEUED, DrillStatus.RUNNING, DrillStatus.WAITING, DrillStatus.ROLLING_BACK})
FINAL_DRILL = frozenset(DrillStatus) - ACTIVE_DRILL


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # manual confirmation
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"  # interrupted by an abort
    SKIPPED = "skipped"  # never reached (an earlier step failed or the drill was aborted)


class DataCenter(Base):
    __tablename__ = "dr_centers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProtectedService(Base):
    """An application protected by a DR center. Connection strings (health check, markers) are
    encrypted at rest: they may carry passwords."""

    __tablename__ = "dr_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: The application's cloud tenant, once the cloud issue adds tenants (a name until then).
    tenant: Mapped[str | None] = mapped_column(String(100))
    #: The cloud tenant (cloud_tenants.id) the service runs in, when it is one of the platform's tenants.
    tenant_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: The owning site (scope): usually the ministry.
    site_code: Mapped[str] = mapped_column(String(12), default="000000", index=True)
    primary_center_id: Mapped[int] = mapped_column(ForeignKey("dr_centers.id"))
    dr_center_id: Mapped[int] = mapped_column(ForeignKey("dr_centers.id"))
    rto_seconds: Mapped[int] = mapped_column(Integer)
    rpo_seconds: Mapped[int] = mapped_column(Integer)
    #: A drill must succeed at least this often, or the service shows as overdue.
    drill_interval_days: Mapped[int] = mapped_column(Integer, default=90)
    #: Playbook names by purpose: precheck, failover, verify, failback, copy_build, copy_promote, copy_cleanup.
    playbooks: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The YAML inventory the drill's playbooks run against (how Ansible reaches the hosts).
    inventory: Mapped[str] = mapped_column(Text, default="")
    health_kind: Mapped[str] = mapped_column(String(8))
    #: Encrypted: the URL, host:port or DSN of the service address (follows the service to the DR center).
    health_target_enc: Mapped[str] = mapped_column(Text)
    health_query: Mapped[str | None] = mapped_column(Text)
    #: Encrypted: the health target of the isolated copy (test drills).
    copy_target_enc: Mapped[str | None] = mapped_column(Text)
    #: Encrypted PostgreSQL DSNs for the RPO markers: written on the primary, read at the DR center / copy.
    marker_primary_enc: Mapped[str | None] = mapped_column(Text)
    marker_dr_enc: Mapped[str | None] = mapped_column(Text)
    marker_copy_enc: Mapped[str | None] = mapped_column(Text)
    #: The drill running now (one at a time); set and cleared by a conditional UPDATE.
    active_drill_id: Mapped[int | None] = mapped_column(Integer)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DrillPlan(Base):
    __tablename__ = "dr_plans"
    __table_args__ = (UniqueConstraint("service_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("dr_services.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(20))
    #: Ordered steps (see :mod:`ecocloud_ops.dr.plans`), each with its rollback.
    steps: Mapped[list] = mapped_column(JSON, default=list)
    #: Five-field cron expression (Asia/Shanghai) for scheduled drills, e.g. quarterly ``0 2 1 1,4,7,10 *``.
    schedule: Mapped[str | None] = mapped_column(String(100))
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DrillRun(Base):
    __tablename__ = "dr_drills"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("dr_plans.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("dr_services.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), unique=True)
    mode: Mapped[str] = mapped_column(String(20))
    #: The plan's steps as they were when the drill started.
    steps: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), index=True, default=DrillStatus.QUEUED)
    status_reason: Mapped[str | None] = mapped_column(Text)
    started_by: Mapped[str] = mapped_column(String(64))
    abort_requested_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: ``none``, ``succeeded`` or ``failed`` (manual work needed).
    rollback: Mapped[str] = mapped_column(String(12), default="none")
    rto_target: Mapped[int] = mapped_column(Integer)
    rpo_target: Mapped[int] = mapped_column(Integer)
    #: Start of the switch step (failover, or the copy's promotion in test mode).
    switch_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: First successful health check after the switch.
    healthy_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    rto_seconds: Mapped[float | None] = mapped_column()
    rpo_seconds: Mapped[float | None] = mapped_column()
    rto_met: Mapped[bool | None] = mapped_column()
    rpo_met: Mapped[bool | None] = mapped_column()
    #: The marker evidence behind the RPO: written, acknowledged, last acknowledged, newest at the DR side.
    markers: Mapped[dict] = mapped_column(JSON, default=dict)


class DrillStep(Base):
    """One executed step (or rollback) of a drill run."""

    __tablename__ = "dr_drill_steps"
    __table_args__ = (UniqueConstraint("drill_id", "phase", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("dr_drills.id"), index=True)
    #: ``step`` or ``rollback`` (the rollback of step ``position``).
    phase: Mapped[str] = mapped_column(String(10))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12), default=StepStatus.PENDING)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    message: Mapped[str] = mapped_column(Text, default="")
    playbook_run_id: Mapped[int | None] = mapped_column(ForeignKey("playbook_runs.id"))
    #: Manual steps: the role that must confirm, and who did.
    role: Mapped[str | None] = mapped_column(String(32))
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    confirm_ok: Mapped[bool | None] = mapped_column()


class DrillFinding(Base):
    """Something a drill showed that needs a change: opens a change ticket in the service desk."""

    __tablename__ = "dr_findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("dr_drills.id"), index=True)
    severity: Mapped[str] = mapped_column(String(10))  # info | warning | critical
    text: Mapped[str] = mapped_column(Text)
    #: ``auto`` (from the measurements and steps) or the username who added it.
    source: Mapped[str] = mapped_column(String(64))
    ticket_number: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
