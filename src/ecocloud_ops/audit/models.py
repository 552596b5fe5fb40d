"""Append-only, hash-chained, signed audit entries."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    #: Position in the chain, 1, 2, 3 ... with no gaps; a gap is a deleted entry.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(BigInteger, "postgresql"), primary_key=True,
                                     autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    actor_role: Mapped[str] = mapped_column(String(32), default="")
    #: console, api, cli, worker or system
    channel: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    #: success or failure
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    #: SHA-256 over the canonical content and ``prev_hash``.
    hash: Mapped[str] = mapped_column(String(64))
    #: Ed25519 signature of ``hash`` (hex) by the instance's audit key.
    signature: Mapped[str] = mapped_column(String(128))


class AuditHead(Base):
    """Single row locked while appending, so concurrent writers form one chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
