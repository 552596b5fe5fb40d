"""Devices: inventory import/export, queries within a scope, maintenance windows."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..auth.scope import Scope
from ..crypto import SecretBox
from ..db import utcnow
from ..errors import NotFound, ValidationFailed
from ..sites.models import Site
from ..sites.service import subtree_clause
from .inventory import DeviceSpec, InventoryError, InventoryInvalid
from .models import Device, DeviceRollup, MaintenanceWindow, Outage

COMPARED = ("address", "platform", "role", "uplink_interface", "enabled", "groups", "snmp_version", "snmp_port",
            "snmp_user", "snmp_auth_protocol", "snmp_priv_protocol", "ssh_user", "ssh_port", "ssh_key_file")


@dataclass
class ImportPlan:
    """What an import did (or, with dry_run, would do)."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)  # hostname -> changed fields
    retired: list[str] = field(default_factory=list)
    unchanged: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "retired": self.retired,
                "unchanged": self.unchanged, "dry_run": self.dry_run}


def device_summary(d: Device) -> dict[str, Any]:
    """A device as the audit log and the API show it (never secrets)."""
    return {
        "hostname": d.hostname, "site": d.site.code if d.site else None, "address": d.address, "role": d.role,
        "platform": d.platform, "uplink_interface": d.uplink_interface, "enabled": d.enabled,
        "groups": list(d.groups or []), "snmp_version": d.snmp_version, "snmp_port": d.snmp_port,
        "snmp_user": d.snmp_user, "snmp_auth_protocol": d.snmp_auth_protocol,
        "snmp_priv_protocol": d.snmp_priv_protocol, "ssh_user": d.ssh_user, "ssh_port": d.ssh_port,
        "ssh_key_file": d.ssh_key_file, "has_snmp_secret": d.snmp_secret_enc is not None,
        "has_ssh_password": d.ssh_password_enc is not None,
        "retired": d.retired_at is not None,
    }


class DeviceService:
    def __init__(self, session: Session, audit: AuditLog, box: SecretBox) -> None:
        self.session = session
        self.audit = audit
        self.box = box

    # Inventory -----------------------------------------------------------------------------
    def hosts_with_stored_secret(self) -> set[str]:
        q = select(Device.hostname).where(Device.snmp_secret_enc.isnot(None))
        return set(self.session.execute(q).scalars())

    def import_inventory(self, actor: Actor, specs: list[DeviceSpec], *, dry_run: bool = False,
                         prune: bool = False) -> ImportPlan:
        """Create and update devices from validated specs, all or nothing.

        Raises InventoryInvalid (every bad host named) when a site code is unknown or an address is
        taken twice. With ``prune``, devices absent from the file whose site codes appear in it are
        retired (never deleted). A host without a secret keeps the stored one."""
        sites = {s.code: s for s in self.session.execute(
            select(Site).where(Site.code.in_({s.site_code for s in specs}))).scalars()}
        errors = []
        seen: dict[str, str] = {}
        for spec in specs:
            site = sites.get(spec.site_code)
            if site is None or site.retired_at is not None:
                errors.append(InventoryError(spec.origin, "site_code", f"no active site {spec.site_code}"))
            if spec.hostname in seen:
                errors.append(InventoryError(spec.origin, "hostname", f"also defined at {seen[spec.hostname]}"))
            seen[spec.hostname] = spec.origin
        if errors:
            raise InventoryInvalid(errors)
        existing = {d.hostname: d for d in self.session.execute(select(Device)).scalars()}
        plan = ImportPlan(dry_run=dry_run)
        for spec in specs:
            device = existing.get(spec.hostname)
            site = sites[spec.site_code]
            if device is None:
                plan.created.append(spec.hostname)
                if not dry_run:
                    device = Device(hostname=spec.hostname, site=site)
                    self._apply(device, spec)
                    self.session.add(device)
                    self.session.flush()
                    self.audit.record(actor, "device.create", target_type="device", target_id=spec.hostname,
                                      after=device_summary(device))
                continue
            changed = [f for f in COMPARED if getattr(device, f) != getattr(spec, f)]
            if device.site_id != site.id:
                changed.append("site")
            if device.retired_at is not None:
                changed.append("retired")
            if (spec.snmp_secret() is not None and spec.snmp_secret() != self.snmp_secret(device)) or (
                    spec.ssh_password is not None and spec.ssh_password != self.ssh_password(device)):
                changed.append("secrets")  # audited as a field name, never the values
            if not changed:
                plan.unchanged += 1
                continue
            plan.updated[spec.hostname] = changed
            if not dry_run:
                before = device_summary(device)
                device.site = site
                device.retired_at = None
                self._apply(device, spec)
                self.audit.record(actor, "device.update", target_type="device", target_id=spec.hostname,
                                  before=before, after=device_summary(device))
        if prune:
            codes = set(sites)
            for hostname, device in existing.items():
                if hostname not in seen and device.site.code in codes and device.retired_at is None:
                    plan.retired.append(hostname)
                    if not dry_run:
                        self.retire(actor, device)
        self.session.flush()
        return plan

    def _apply(self, device: Device, spec: DeviceSpec) -> None:
        for f in COMPARED:
            setattr(device, f, getattr(spec, f))
        if device.uplink_interface is None:
            device.uplink_ifindex = None
        secret = spec.snmp_secret()
        if secret is not None:
            device.snmp_secret_enc = self.box.encrypt(json.dumps(secret))
        if spec.ssh_password is not None:
            device.ssh_password_enc = self.box.encrypt(spec.ssh_password)

    def save(self, actor: Actor, scope: Scope, hostname: str, host_vars: dict[str, Any], *,
             create: bool) -> Device:
        """Create (``create=True``) or change one device from inventory host variables.

        Changes are merged into the stored values; a secret left out keeps the stored one. Raises
        InventoryInvalid (field by field), Conflict when creating a hostname that exists, NotFound
        for a device or site outside the scope."""
        from ..errors import Conflict
        from .inventory import host_vars as spec_vars
        from .inventory import validate_host

        existing = self.session.execute(select(Device).where(Device.hostname == hostname)).scalar_one_or_none()
        if create and existing is not None:
            raise Conflict(f"device {hostname} already exists")
        if not create:
            existing = self.get(hostname, scope)
        merged = dict(spec_vars(self.to_spec(existing))) if existing is not None else {}
        merged.update({k: v for k, v in host_vars.items() if v is not None})
        errors: list[InventoryError] = []
        spec = validate_host(hostname, merged, list(existing.groups or []) if existing else [], f"device {hostname}",
                             errors, has_stored_secret=existing is not None and existing.snmp_secret_enc is not None)
        if errors or spec is None:
            raise InventoryInvalid(errors)
        site = self.session.execute(select(Site).where(Site.code == spec.site_code, scope.site_clause())
                                    ).scalar_one_or_none()
        if site is None:
            raise NotFound(f"site {spec.site_code} not found")
        self.import_inventory(actor, [spec])
        device = self.session.execute(select(Device).where(Device.hostname == hostname)).scalar_one()
        return device

    def retire(self, actor: Actor, device: Device) -> None:
        if device.retired_at is None:
            device.retired_at = utcnow()
            device.enabled = False
            self.audit.record(actor, "device.retire", target_type="device", target_id=device.hostname)

    def export_specs(self, scope: Scope, site_code: str | None = None) -> list[DeviceSpec]:
        """Active devices in scope (optionally one site's subtree) as specs, without secrets."""
        q = select(Device).join(Device.site).where(scope.site_clause(), Device.retired_at.is_(None))
        if site_code:
            q = q.where(subtree_clause(self.session, scope, site_code))
        return [self.to_spec(d) for d in self.session.execute(q.order_by(Device.hostname)).scalars()]

    @staticmethod
    def to_spec(d: Device) -> DeviceSpec:
        return DeviceSpec(hostname=d.hostname, address=d.address, site_code=d.site.code, platform=d.platform,
                          role=d.role, uplink_interface=d.uplink_interface, enabled=d.enabled,
                          groups=list(d.groups or []), snmp_version=d.snmp_version, snmp_port=d.snmp_port,
                          snmp_user=d.snmp_user, snmp_auth_protocol=d.snmp_auth_protocol,
                          snmp_priv_protocol=d.snmp_priv_protocol, ssh_user=d.ssh_user, ssh_port=d.ssh_port,
                          ssh_key_file=d.ssh_key_file)

    def snmp_secret(self, d: Device) -> dict[str, str]:
        return json.loads(self.box.decrypt(d.snmp_secret_enc)) if d.snmp_secret_enc else {}

    def ssh_password(self, d: Device) -> str | None:
        return self.box.decrypt(d.ssh_password_enc) if d.ssh_password_enc else None

    # Queries -------------------------------------------------------------------------------
    def get(self, hostname: str, scope: Scope) -> Device:
        d = self.session.execute(select(Device).join(Device.site).where(
            Device.hostname == hostname, scope.site_clause())).scalar_one_or_none()
        if d is None:
            raise NotFound(f"device {hostname} not found")
        return d

    def search(self, scope: Scope, *, tier: str | None = None, province: str | None = None,
               status: str | None = None, query: str | None = None, include_retired: bool = False,
               limit: int = 100, offset: int = 0) -> tuple[list[Device], int]:
        q = select(Device).join(Device.site).where(scope.site_clause())
        if tier:
            q = q.where(Site.tier == tier)
        if province:
            q = q.where(Site.path.startswith(f"000000/{province}/", autoescape=True))
        if status:
            q = q.where(Device.status == status)
        if query:
            q = q.where(Device.hostname.contains(query, autoescape=True) | Device.address.startswith(query)
                        | Site.name.contains(query, autoescape=True))
        if not include_retired:
            q = q.where(Device.retired_at.is_(None))
        total = self.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        rows = self.session.execute(q.order_by(Site.path, Device.hostname).limit(limit).offset(offset)).scalars()
        return list(rows), int(total)

    def at_site(self, site: Site) -> list[Device]:
        """Active devices of one site (the caller has checked the site is in scope)."""
        q = select(Device).where(Device.site_id == site.id, Device.retired_at.is_(None)).order_by(Device.hostname)
        return list(self.session.execute(q).scalars())

    def outages(self, device: Device, limit: int = 50) -> list[Outage]:
        """A device's outage records, newest first."""
        q = select(Outage).where(Outage.device_id == device.id).order_by(Outage.started_at.desc()).limit(limit)
        return list(self.session.execute(q).scalars())

    def rollups(self, device: Device, granularity: str, since: dt.datetime) -> list[DeviceRollup]:
        """A device's rollups of one granularity from ``since`` on, oldest first."""
        q = (select(DeviceRollup).where(DeviceRollup.device_id == device.id, DeviceRollup.granularity == granularity,
                                        DeviceRollup.bucket >= since).order_by(DeviceRollup.bucket))
        return list(self.session.execute(q).scalars())

    def pollable(self) -> list[Device]:
        q = select(Device).join(Device.site).where(Device.enabled.is_(True), Device.retired_at.is_(None),
                                                   Site.retired_at.is_(None))
        return list(self.session.execute(q).scalars())

    # Maintenance windows -------------------------------------------------------------------
    def add_maintenance(self, actor: Actor, scope: Scope, *, site_code: str, start: dt.datetime,
                        end: dt.datetime, reason: str, hostname: str | None = None) -> MaintenanceWindow:
        """Plan a window (site or one device); excluded from rates. Raises ValidationFailed/NotFound."""
        if end <= start:
            raise ValidationFailed("a maintenance window must end after it starts",
                                   details=[{"field": "end", "message": "before start"}])
        if not reason.strip() or len(reason) > 500:
            raise ValidationFailed("a reason of 1-500 characters is required",
                                   details=[{"field": "reason", "message": "1-500 characters"}])
        site = self.session.execute(select(Site).where(Site.code == site_code, scope.site_clause())
                                    ).scalar_one_or_none()
        if site is None:
            raise NotFound(f"site {site_code} not found")
        device = self.get(hostname, scope) if hostname else None
        mw = MaintenanceWindow(site=site, device_id=device.id if device else None, started_at=start, ended_at=end,
                               reason=reason.strip(), created_by=actor.username)
        self.session.add(mw)
        self.session.flush()
        self.audit.record(actor, "maintenance.create", target_type="maintenance", target_id=mw.id,
                          after={"site": site_code, "device": hostname, "start": start.isoformat(),
                                 "end": end.isoformat(), "reason": mw.reason})
        return mw

    def maintenance(self, scope: Scope, start: dt.datetime, end: dt.datetime) -> list[MaintenanceWindow]:
        q = (select(MaintenanceWindow).join(MaintenanceWindow.site)
             .where(scope.site_clause(), MaintenanceWindow.started_at < end, MaintenanceWindow.ended_at > start)
             .order_by(MaintenanceWindow.started_at))
        return list(self.session.execute(q).scalars())


@dataclass
class SiteStatus:
    """A site's live state: ``unmonitored`` when it has no polled uplink device."""

    code: str
    status: str
    devices: int
    down_since: dt.datetime | None = None


def site_statuses(session: Session, scope: Scope, codes: list[str] | None = None) -> dict[str, SiteStatus]:
    """Live state per site from its uplink devices (up if any is up, else the worst of down/unknown)."""
    from .models import DeviceRole, DeviceStatus

    q = (select(Site.code, Device.status, Device.status_since).join(Device.site)
         .where(scope.site_clause(), Device.role == DeviceRole.UPLINK, Device.enabled.is_(True),
                Device.retired_at.is_(None)))
    if codes is not None:
        q = q.where(Site.code.in_(codes))
    out: dict[str, SiteStatus] = {}
    rank: dict[str, int] = {DeviceStatus.UP: 0, DeviceStatus.DOWN: 1, DeviceStatus.UNKNOWN: 2, DeviceStatus.UNPOLLED: 3}
    for code, status, since in session.execute(q):
        cur = out.get(code)
        if cur is None:
            out[code] = SiteStatus(code, status, 1, since if status != DeviceStatus.UP else None)
            continue
        cur.devices += 1
        better = rank.get(status, 9) < rank.get(cur.status, 9)
        if status == DeviceStatus.UP or (cur.status != DeviceStatus.UP and better):
            cur.status = status
            cur.down_since = None if status == DeviceStatus.UP else since
    return out
