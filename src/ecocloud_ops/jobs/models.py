"""Generic background jobs and worker heartbeats."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class JobState(enum.StrEnum):
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker is executing it
    SUCCEEDED = "succeeded"  # finished, result recorded
    FAILED = "failed"  # the job raised or the worker died under it; error says why
    CANCELED = "canceled"  # stopped at a user's request


FINAL_STATES = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED}
CAN_CANCEL = {JobState.QUEUED, JobState.RUNNING}


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True, default=JobState.QUEUED)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    #: 0.0 .. 1.0
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str] = mapped_column(String(500), default="")
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    #: Site scope of the job's subject, so provincial users see only their own jobs.
    site_code: Mapped[str] = mapped_column(String(6), default="000000")
    worker: Mapped[str | None] = mapped_column(String(128))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class JobLogLine(Base):
    __tablename__ = "job_log_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    level: Mapped[str] = mapped_column(String(8), default="info")
    line: Mapped[str] = mapped_column(Text)


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    #: hostname:pid of the worker process
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    beat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    beats: Mapped[int] = mapped_column(Integer, default=0)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
