"""Monthly connectivity assessment reports: one per month, draft until an officer publishes it."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class ReportState(enum.StrEnum):
    DRAFT = "draft"  # rebuilt freely from the data; not yet the agency's figures
    PUBLISHED = "published"  # archived (files + checksums) and immutable


class AssessmentReport(Base):
    __tablename__ = "assessment_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: "YYYY-MM", a calendar month in Asia/Shanghai time.
    month: Mapped[str] = mapped_column(String(7), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=ReportState.DRAFT)
    #: The report's figures (see ``reports.builder``); frozen once published.
    data: Mapped[dict] = mapped_column(JSON)
    #: The targets the report was judged against (also inside ``data``).
    targets: Mapped[dict] = mapped_column(JSON)
    #: The history included generated demo data.
    demo: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Draft rebuilds so far (1 for the first build).
    revision: Mapped[int] = mapped_column(Integer, default=1)
    generated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    generated_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    published_by: Mapped[str | None] = mapped_column(String(64))
    #: Archived files of a published report: [{"name", "sha256", "size"}], under files/reports/<month>/.
    archive: Mapped[list | None] = mapped_column(JSON)
    #: Result of the last regeneration of a published month: {"at", "by", "identical", "changes": [...]}.
    last_check: Mapped[dict | None] = mapped_column(JSON)
