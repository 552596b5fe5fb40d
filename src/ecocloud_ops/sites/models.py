"""The site tree: ministry -> provinces -> cities -> counties, by GB/T 2260 code."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow


class Tier(enum.StrEnum):
    MINISTRY = "ministry"  # the ministry itself, code 000000, root of the tree
    PROVINCE = "province"  # 31 provincial-level units
    CITY = "city"  # prefecture-level units
    COUNTY = "county"  # county-level units, under a city or directly under a province


TIER_DEPTH = {Tier.MINISTRY: 0, Tier.PROVINCE: 1, Tier.CITY: 2, Tier.COUNTY: 3}
MINISTRY_CODE = "000000"


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Six-digit GB/T 2260 administrative code; ``000000`` for the ministry.
    code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(16), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    #: Materialized path of codes, ``000000/130000/130100/`` — subtree queries are prefix matches.
    path: Mapped[str] = mapped_column(String(64))
    #: Set when a newer division list no longer has the site; the row and its history stay.
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    parent: Mapped[Site | None] = relationship(remote_side=[id])

    __table_args__ = (Index("ix_sites_path", "path"),)


class SiteEvent(Base):
    """History of a site: created, renamed, moved, retired, restored."""

    __tablename__ = "site_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    old_value: Mapped[str | None] = mapped_column(String(200))
    new_value: Mapped[str | None] = mapped_column(String(200))
