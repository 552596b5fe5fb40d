"""Playbook runs (ansible-runner) and their events."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class RunStatus(enum.StrEnum):
    """One meaning each (see ``playbooks/README.md``)."""

    #: Recorded and executed by the process that created it, not queued for a worker
    #: (``ecocloud-ops jobs run --follow``); ansible-playbook has not started yet.
    NEW = "new"
    #: Queued: waiting for a worker to pick it up.
    PENDING = "pending"
    #: ansible-playbook is running.
    RUNNING = "running"
    #: ansible-playbook finished with return code 0.
    SUCCESSFUL = "successful"
    #: The playbook ran to its recap and at least one host failed or was unreachable (rc != 0).
    FAILED = "failed"
    #: The run could not be carried out: ansible-playbook did not start or stopped without a recap
    #: (syntax error, crash), the platform raised, or the worker stopped mid-run. ``status_reason`` says which.
    ERROR = "error"
    #: Stopped at a user's request, before or while running.
    CANCELED = "canceled"
    #: Stopped by the platform because it ran longer than its time limit.
    TIMEOUT = "timeout"


ACTIVE_STATUSES = frozenset({RunStatus.NEW, RunStatus.PENDING, RunStatus.RUNNING})
FINAL_STATUSES = frozenset(RunStatus) - ACTIVE_STATUSES
#: Kept of a run's standard output (the end of it, where the recap and the failures are).
STDOUT_CAP = 2 * 1024 * 1024


class PlaybookRun(Base):
    __tablename__ = "playbook_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The generic job that carries progress, cancel requests and the site scope.
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    playbook: Mapped[str] = mapped_column(String(64), index=True)
    #: The inventory used (INI or YAML text), kept so a run can be read and repeated later.
    inventory: Mapped[str] = mapped_column(Text)
    limit: Mapped[str | None] = mapped_column(String(500))
    #: Validated against the playbook's schema before the run was recorded.
    extra_vars: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True, default=RunStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(Text)
    started_by: Mapped[str] = mapped_column(String(64))
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    rc: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[float | None] = mapped_column()
    #: The last STDOUT_CAP characters of ansible-playbook's output, stored when the run ends.
    stdout: Mapped[str] = mapped_column(Text, default="")


class PlaybookEvent(Base):
    """One ansible-runner event; ``seq`` is ansible-runner's counter (the order of the playbook's output)."""

    __tablename__ = "playbook_events"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("playbook_runs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    uuid: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(64))
    play: Mapped[str | None] = mapped_column(String(500))
    task: Mapped[str | None] = mapped_column(String(500))
    host: Mapped[str | None] = mapped_column(String(255))
    ok: Mapped[bool] = mapped_column(default=False)
    changed: Mapped[bool] = mapped_column(default=False)
    failed: Mapped[bool] = mapped_column(default=False)
    unreachable: Mapped[bool] = mapped_column(default=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    stdout: Mapped[str] = mapped_column(Text, default="")
