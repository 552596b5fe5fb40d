"""Devices of the dedicated network, their poll state, outage intervals, rollups, maintenance windows."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from ..sites.models import Site


class DeviceRole(enum.StrEnum):
    UPLINK = "uplink"  # carries the site's link to its parent: its state is the site's state
    CORE = "core"
    ACCESS = "access"
    FIREWALL = "firewall"
    SERVER = "server"


class DeviceStatus(enum.StrEnum):
    UNPOLLED = "unpolled"  # never polled yet
    UP = "up"  # answered ICMP or SNMP in the last cycle
    DOWN = "down"  # answered neither, and its parent site is up: its own link is blamed
    UNKNOWN = "unknown"  # answered neither, and its parent site is down or unknown


class Cause(enum.StrEnum):
    OWN = "own"  # the device's own link failed
    PARENT = "parent"  # a site above it is down; its link is not blamed


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Inventory host name (the Ansible inventory's host key); unique.
    hostname: Mapped[str] = mapped_column(String(128), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: Management address (``ansible_host``).
    address: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default=DeviceRole.UPLINK)
    #: netmiko device type: huawei, hp_comware, cisco_ios, ruijie_os, linux, ...
    platform: Mapped[str] = mapped_column(String(32), default="linux")
    #: Interface carrying the site's link to its parent; without it reachability alone decides.
    uplink_interface: Mapped[str | None] = mapped_column(String(64))
    #: ifIndex of the uplink interface, learned by an SNMP walk and cached.
    uplink_ifindex: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(default=True)
    #: Groups of the Ansible inventory the host belongs to (kept for a faithful export).
    groups: Mapped[list] = mapped_column(JSON, default=list)
    snmp_version: Mapped[str] = mapped_column(String(2), default="2c")
    snmp_port: Mapped[int] = mapped_column(Integer, default=161)
    snmp_user: Mapped[str | None] = mapped_column(String(64))
    snmp_auth_protocol: Mapped[str | None] = mapped_column(String(8))
    snmp_priv_protocol: Mapped[str | None] = mapped_column(String(8))
    #: Fernet-encrypted JSON: {"community"} or {"auth_key", "priv_key"}.
    snmp_secret_enc: Mapped[str | None] = mapped_column(Text)
    ssh_user: Mapped[str | None] = mapped_column(String(64))
    ssh_port: Mapped[int] = mapped_column(Integer, default=22)
    #: Path of a private key file on the poller (a path, not a secret).
    ssh_key_file: Mapped[str | None] = mapped_column(String(255))
    ssh_password_enc: Mapped[str | None] = mapped_column(Text)
    # Current state, updated by every poll cycle.
    status: Mapped[str] = mapped_column(String(16), default=DeviceStatus.UNPOLLED, index=True)
    status_cause: Mapped[str | None] = mapped_column(String(16))
    status_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: First cycle that polled it: rates count from here.
    first_polled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_rtt_ms: Mapped[float | None] = mapped_column(Float)
    last_sys_uptime: Mapped[int | None] = mapped_column(BigInteger)
    last_sys_name: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Last raw uplink counters, to compute traffic deltas. Text, because a Counter64 fits neither a
    #: signed BIGINT nor SQLite's NUMERIC (which would round it through a float).
    last_in_octets: Mapped[str | None] = mapped_column(String(20))
    last_out_octets: Mapped[str | None] = mapped_column(String(20))
    #: SSH host key pinned at first contact ("<type> <base64>"); a different key is refused.
    ssh_host_key: Mapped[str | None] = mapped_column(Text)
    ssh_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    ssh_error: Mapped[str | None] = mapped_column(Text)
    #: Outputs of the platform's check commands at the last SSH check, secrets masked.
    ssh_outputs: Mapped[dict | None] = mapped_column(JSON)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    site: Mapped[Site] = relationship(lazy="joined")


class ConfigBackup(Base):
    """One version of a device's configuration; a new row only when the content changed."""

    __tablename__ = "config_backups"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: Last time a backup found this same content.
    confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    #: The configuration as the device printed it, Fernet-encrypted (it holds secrets).
    content_enc: Mapped[str] = mapped_column(Text)


class Outage(Base):
    """A period in which a device did not answer: down (own link) or unknown (parent down).

    A flapping link is one record grouping its down periods (``OutagePeriod``); rates add up the
    periods, never the record's overall span."""

    __tablename__ = "outages"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    #: Null while the outage is open.
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    flap_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Free-text cause entered by an engineer (e.g. "fibre cut").
    note: Mapped[str | None] = mapped_column(String(500))
    #: Generated history (the demo's past months), never measured: reports say so.
    demo: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Number of the incident opened automatically for this outage (see servicedesk.auto_incidents).
    ticket_number: Mapped[str | None] = mapped_column(String(16), index=True)

    device: Mapped[Device] = relationship(lazy="joined")
    periods: Mapped[list[OutagePeriod]] = relationship(order_by="OutagePeriod.started_at", lazy="selectin",
                                                       cascade="all, delete-orphan")

    __table_args__ = (Index("ix_outages_open", "device_id", "ended_at"),)


class OutagePeriod(Base):
    __tablename__ = "outage_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    outage_id: Mapped[int] = mapped_column(ForeignKey("outages.id"), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class PollCycle(Base):
    """One poll cycle: when it ran and what it found (a summary, not a row per probe)."""

    __tablename__ = "poll_cycles"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    devices: Mapped[int] = mapped_column(Integer, default=0)
    up: Mapped[int] = mapped_column(Integer, default=0)
    down: Mapped[int] = mapped_column(Integer, default=0)
    unknown: Mapped[int] = mapped_column(Integer, default=0)
    snmp_errors: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    #: Generated history (the demo's past months), never measured: reports say so.
    demo: Mapped[bool] = mapped_column(default=False, server_default=false())


class PollerGap(Base):
    """Time no cycle covered (worker stopped, machine down): excluded from rates and shown as such."""

    __tablename__ = "poller_gaps"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: Generated history (the demo's past months), never measured: reports say so.
    demo: Mapped[bool] = mapped_column(default=False, server_default=false())


class MaintenanceWindow(Base):
    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The whole site (and so its link), or one device when ``device_id`` is set.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Generated history (the demo's past months), never measured: reports say so.
    demo: Mapped[bool] = mapped_column(default=False, server_default=false())

    site: Mapped[Site] = relationship(lazy="joined")


class DeviceRollup(Base):
    """Compact per-device figures per hour or day: reachability, RTT, uplink traffic."""

    __tablename__ = "device_rollups"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    #: "hour" (kept 35 days) or "day" (kept 13 months)
    granularity: Mapped[str] = mapped_column(String(8))
    bucket: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    polls: Mapped[int] = mapped_column(Integer, default=0)
    up_polls: Mapped[int] = mapped_column(Integer, default=0)
    rtt_sum: Mapped[float] = mapped_column(Float, default=0.0)
    rtt_count: Mapped[int] = mapped_column(Integer, default=0)
    rtt_max: Mapped[float | None] = mapped_column(Float)
    in_octets: Mapped[Decimal] = mapped_column(Numeric(24, 0), default=0)
    out_octets: Mapped[Decimal] = mapped_column(Numeric(24, 0), default=0)

    __table_args__ = (UniqueConstraint("device_id", "granularity", "bucket"),)
