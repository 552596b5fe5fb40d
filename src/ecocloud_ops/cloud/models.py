"""Cloud tenants: application systems, their project per pool (with the recorded onboarding steps), VM
provisioning requests and their VMs, service-desk cloud requests, and what the inventory sync saw."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class ProjectStatus(enum.StrEnum):
    PENDING = "pending"  # recorded; the onboarding job has not started
    ONBOARDING = "onboarding"
    ACTIVE = "active"
    FAILED = "failed"  # a step failed: a retry continues from it
    OFFBOARDING = "offboarding"
    OFFBOARD_FAILED = "offboard_failed"
    OFFBOARDED = "offboarded"


BUSY_PROJECT = frozenset({ProjectStatus.PENDING, ProjectStatus.ONBOARDING, ProjectStatus.OFFBOARDING})


class VmStage(enum.StrEnum):
    """The platform's view of one requested VM (OpenStack's status is kept beside it)."""

    QUEUED = "queued"
    BUILDING = "building"
    ACTIVE = "active"
    CONFIGURING = "configuring"  # the post-boot playbook runs
    CONFIGURED = "configured"
    ERROR = "error"
    DELETING = "deleting"
    DELETED = "deleted"  # deleted by the platform, or gone from the cloud (see disappeared_at)


FINAL_VM = frozenset({VmStage.ACTIVE, VmStage.CONFIGURED, VmStage.ERROR, VmStage.DELETED})


class RequestStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some VMs failed
    FAILED = "failed"


class Tenant(Base):
    """An application system hosted on the cloud."""

    __tablename__ = "cloud_tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: Short identifier used in the OpenStack project names (``<code>-<pool>``).
    code: Mapped[str] = mapped_column(String(32), unique=True)
    site_code: Mapped[str] = mapped_column(String(12), index=True, default="000000")
    description: Mapped[str] = mapped_column(Text, default="")
    #: [{"name", "phone", "email"}]
    contacts: Mapped[list] = mapped_column(JSON, default=list)
    #: OpenStack user names given the member role on the tenant's projects.
    users: Mapped[list] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TenantProject(Base):
    """A tenant in one pool: one OpenStack project, its quotas, network and the onboarding steps."""

    __tablename__ = "cloud_tenant_projects"
    __table_args__ = (UniqueConstraint("tenant_id", "pool"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("cloud_tenants.id"), index=True)
    pool: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=ProjectStatus.PENDING)
    project_name: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    #: The wanted quotas (Quotas.as_dict()); usage comes from the sync.
    quotas: Mapped[dict] = mapped_column(JSON, default=dict)
    network_cidr: Mapped[str] = mapped_column(String(43))
    network_id: Mapped[str | None] = mapped_column(String(64))
    subnet_id: Mapped[str | None] = mapped_column(String(64))
    router_id: Mapped[str | None] = mapped_column(String(64))
    #: [{"name", "status": pending|running|done|failed|skipped, "detail", "at"}] of the last on/offboarding.
    steps: Mapped[list] = mapped_column(JSON, default=list)
    last_error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(Integer)
    #: Usage as the last sync saw it: {resource: {"limit", "in_use", "reserved"}}.
    usage: Mapped[dict] = mapped_column(JSON, default=dict)
    usage_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class VmRequest(Base):
    """One provisioning request: ``count`` VMs of one flavor and image in one tenant project."""

    __tablename__ = "cloud_vm_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Given by the client (form token, Idempotency-Key, ticket) or generated: a second submission with the
    #: same uid returns the first request. Also written into each VM's metadata.
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("cloud_tenants.id"), index=True)
    project_ref: Mapped[int] = mapped_column(ForeignKey("cloud_tenant_projects.id"), index=True)
    pool: Mapped[str] = mapped_column(String(32))
    site_code: Mapped[str] = mapped_column(String(12), index=True, default="000000")
    name_pattern: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(64))
    image: Mapped[str] = mapped_column(String(128))
    #: The tenant network name (default: the project's own network).
    network: Mapped[str] = mapped_column(String(64))
    key_name: Mapped[str | None] = mapped_column(String(64))
    #: "key" (key pair only) or "generated" (a random admin password per VM, stored encrypted).
    password_policy: Mapped[str] = mapped_column(String(16), default="key")
    playbook: Mapped[str | None] = mapped_column(String(64))
    playbook_vars: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.QUEUED)
    job_id: Mapped[int | None] = mapped_column(Integer)
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Vm(Base):
    """A VM the platform created or the sync found in a tenant project."""

    __tablename__ = "cloud_vms"
    __table_args__ = (UniqueConstraint("pool", "server_id"), UniqueConstraint("request_id", "index"))

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("cloud_vm_requests.id"), index=True)
    index: Mapped[int | None] = mapped_column(Integer)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("cloud_tenants.id"), index=True)
    project_ref: Mapped[int] = mapped_column(ForeignKey("cloud_tenant_projects.id"), index=True)
    pool: Mapped[str] = mapped_column(String(32))
    site_code: Mapped[str] = mapped_column(String(12), index=True, default="000000")
    name: Mapped[str] = mapped_column(String(100))
    server_id: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16), default=VmStage.QUEUED)
    #: OpenStack's status (BUILD, ACTIVE, SHUTOFF, ERROR, VERIFY_RESIZE ...) as last seen.
    status: Mapped[str | None] = mapped_column(String(24))
    fault: Mapped[str | None] = mapped_column(Text)
    flavor: Mapped[str | None] = mapped_column(String(64))
    image_id: Mapped[str | None] = mapped_column(String(64))
    addresses: Mapped[dict] = mapped_column(JSON, default=dict)
    host: Mapped[str | None] = mapped_column(String(100))
    availability_zone: Mapped[str | None] = mapped_column(String(64))
    password_enc: Mapped[str | None] = mapped_column(Text)
    playbook_run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: The sync no longer found the server (deleted behind the platform's back).
    disappeared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class CloudServiceRequest(Base):
    """A service-desk request for cloud resources ("new VM", "quota increase"), approved by cloud ops."""

    __tablename__ = "cloud_service_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # new_vm | quota_increase
    tenant_id: Mapped[int] = mapped_column(ForeignKey("cloud_tenants.id"), index=True)
    pool: Mapped[str] = mapped_column(String(32))
    #: new_vm: name_pattern, count, flavor, image, playbook; quota_increase: the new quota values.
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|approved|rejected|done|failed
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    vm_request_id: Mapped[int | None] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PoolState(Base):
    """What the last sync of a pool saw: flavors, images, capacity, and its error if it failed."""

    __tablename__ = "cloud_pool_state"

    pool: Mapped[str] = mapped_column(String(32), primary_key=True)
    flavors: Mapped[list] = mapped_column(JSON, default=list)
    images: Mapped[list] = mapped_column(JSON, default=list)
    capacity: Mapped[dict] = mapped_column(JSON, default=dict)
    synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class CapacitySample(Base):
    """One pool's capacity and the sum of its tenants' quotas at one sync: the trend."""

    __tablename__ = "cloud_capacity_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    pool: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    vcpus_total: Mapped[int] = mapped_column(Integer)
    vcpus_used: Mapped[int] = mapped_column(Integer)
    ram_mb_total: Mapped[int] = mapped_column(Integer)
    ram_mb_used: Mapped[int] = mapped_column(Integer)
    disk_gb_total: Mapped[int] = mapped_column(Integer)
    disk_gb_used: Mapped[int] = mapped_column(Integer)
    quota_cores: Mapped[int] = mapped_column(Integer, default=0)
    quota_ram_mb: Mapped[int] = mapped_column(Integer, default=0)
