"""SSH through netmiko: per-platform check commands on a slower schedule, and daily configuration
backups kept as versions (encrypted; shown masked, with a diff between versions)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..audit.service import Actor
from ..db import utcnow
from .models import ConfigBackup, Device

if TYPE_CHECKING:
    from ..adapters.ssh import CommandResult, SshTarget
    from ..bootstrap import Container

log = logging.getLogger(__name__)


@dataclass
class SshRunSummary:
    devices: int = 0
    ok: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # hostname -> error
    new_versions: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"devices": self.devices, "ok": self.ok, "failed": self.failed, "new_versions": self.new_versions,
                "unchanged": self.unchanged}


def _targets(container: Container, hostnames: list[str] | None) -> list[tuple[int, str, SshTarget]]:
    from ..adapters.ssh import SshTarget

    out = []
    with container.unit_of_work() as svc:
        for d in svc.devices.pollable():
            if not d.ssh_user or (hostnames and d.hostname not in hostnames):
                continue
            out.append((d.id, d.platform, SshTarget(
                d.address, port=d.ssh_port, username=d.ssh_user, password=svc.devices.ssh_password(d),
                key_file=d.ssh_key_file, platform=d.platform, name=d.hostname, known_host_key=d.ssh_host_key)))
    return out


def _pin(d: Device, r: CommandResult, actor: Actor, audit: Any) -> None:
    if r.host_key and not d.ssh_host_key:
        d.ssh_host_key = r.host_key
        audit.record(actor, "device.ssh_host_key_pinned", target_type="device", target_id=d.hostname,
                     detail=r.host_key.split(" ")[0])


def run_checks(container: Container, actor: Actor, hostnames: list[str] | None = None,
               progress: Callable[[float, str], None] | None = None) -> SshRunSummary:
    """Run each device's platform check commands (version, interface status); store masked outputs."""
    from ..adapters.ssh import PLATFORM_COMMANDS, mask_secrets, run_commands

    targets = _targets(container, hostnames)
    work = [(t, list(PLATFORM_COMMANDS[p].checks)) for _id, p, t in targets if p in PLATFORM_COMMANDS]
    summary = SshRunSummary(devices=len(work))
    if progress:
        progress(0.1, f"SSH checks on {len(work)} devices")
    s = container.settings
    results = run_commands(work, timeout=s.ssh_timeout_seconds, concurrency=s.ssh_concurrency) if work else []
    ids = {t.name: i for i, _p, t in targets}
    with container.unit_of_work() as svc:
        for r in results:
            d = svc.session.get(Device, ids[r.target.name])
            if d is None:
                continue
            d.ssh_checked_at = utcnow()
            d.ssh_error = None if r.ok else f"{r.error_kind}: {r.error}"
            if r.ok:
                summary.ok += 1
                d.ssh_outputs = {cmd: mask_secrets(out) for cmd, out in r.outputs.items()}
                _pin(d, r, actor, svc.audit)
            else:
                summary.failed[d.hostname] = d.ssh_error or ""
    return summary


def backup_configs(container: Container, actor: Actor, hostnames: list[str] | None = None,
                   progress: Callable[[float, str], None] | None = None) -> SshRunSummary:
    """Fetch every device's running configuration; store a new encrypted version when it changed."""
    from ..adapters.ssh import PLATFORM_COMMANDS, run_commands

    targets = _targets(container, hostnames)
    work = [(t, [PLATFORM_COMMANDS[p].config]) for _id, p, t in targets if p in PLATFORM_COMMANDS]
    summary = SshRunSummary(devices=len(work))
    if progress:
        progress(0.1, f"configuration backup of {len(work)} devices")
    s = container.settings
    results = run_commands(work, timeout=s.ssh_timeout_seconds, concurrency=s.ssh_concurrency) if work else []
    ids = {t.name: i for i, _p, t in targets}
    now = utcnow()
    with container.unit_of_work() as svc:
        for r in results:
            d = svc.session.get(Device, ids[r.target.name])
            if d is None:
                continue
            if not r.ok:
                summary.failed[d.hostname] = f"{r.error_kind}: {r.error}"
                d.ssh_error = summary.failed[d.hostname]
                continue
            _pin(d, r, actor, svc.audit)
            config = next(iter(r.outputs.values()), "")
            digest = hashlib.sha256(config.encode()).hexdigest()
            last = svc.session.execute(select(ConfigBackup).where(ConfigBackup.device_id == d.id)
                                       .order_by(ConfigBackup.taken_at.desc()).limit(1)).scalar_one_or_none()
            summary.ok += 1
            if last is not None and last.sha256 == digest:
                last.confirmed_at = now
                summary.unchanged += 1
                continue
            svc.session.add(ConfigBackup(device_id=d.id, taken_at=now, confirmed_at=now, sha256=digest,
                                         size=len(config.encode()), content_enc=container.box.encrypt(config)))
            summary.new_versions += 1
            svc.audit.record(actor, "device.config_backup", target_type="device", target_id=d.hostname,
                             detail=f"new version {digest[:12]} ({len(config)} characters)")
    return summary


def versions(session: Any, device: Device) -> list[ConfigBackup]:
    q = select(ConfigBackup).where(ConfigBackup.device_id == device.id).order_by(ConfigBackup.taken_at.desc())
    return list(session.execute(q).scalars())
