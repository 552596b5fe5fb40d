"""Device status from reachability and the site tree: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import Cause, DeviceRole, DeviceStatus

MINISTRY = "000000"


@dataclass
class ProbeResult:
    """One device's answer in a cycle (the ``poll once --json`` line)."""

    device: str
    site_code: str
    status: str = DeviceStatus.DOWN
    cause: str | None = None
    rtt_ms: float | None = None
    sys_uptime: int | None = None
    sys_name: str | None = None
    uplink_oper_status: int | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    error: str | None = None
    reachable: bool = False
    snmp_ok: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"device": self.device, "site_code": self.site_code, "status": self.status, "cause": self.cause,
                "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 3), "sys_uptime": self.sys_uptime,
                "sys_name": self.sys_name, "uplink_oper_status": self.uplink_oper_status, "error": self.error}


def classify(results: list[ProbeResult], paths: dict[str, str], roles: dict[str, str]) -> None:
    """Set each result's status and cause from reachability and the site tree (in place).

    A site is up when any of its uplink devices answered; a site without polled uplink devices takes
    the state of its nearest monitored ancestor; the ministry is always up. A device that did not
    answer is ``down`` (own link blamed) when its parent site is up, else ``unknown`` (cause parent)."""
    by_site: dict[str, list[ProbeResult]] = {}
    for r in results:
        if roles.get(r.device, DeviceRole.UPLINK) == DeviceRole.UPLINK:
            by_site.setdefault(r.site_code, []).append(r)
    state: dict[str, str] = {MINISTRY: DeviceStatus.UP}

    def site_state(code: str, path: str) -> str:
        if code in state:
            return state[code]
        codes = path.strip("/").split("/")
        parent = codes[-2] if len(codes) > 1 else MINISTRY
        parent_state = site_state(parent, paths.get(parent, "/".join(codes[:-1]) + "/"))
        members = by_site.get(code)
        if not members:
            state[code] = parent_state  # not monitored: inherits
        elif any(m.reachable for m in members):
            state[code] = DeviceStatus.UP
        else:
            state[code] = DeviceStatus.DOWN if parent_state == DeviceStatus.UP else DeviceStatus.UNKNOWN
        return state[code]

    for r in results:
        path = paths[r.site_code]
        codes = path.strip("/").split("/")
        parent = codes[-2] if len(codes) > 1 else MINISTRY
        parent_state = site_state(parent, paths.get(parent, "/".join(codes[:-1]) + "/"))
        if r.reachable:
            r.status, r.cause = DeviceStatus.UP, None
        elif parent_state == DeviceStatus.UP:
            r.status, r.cause = DeviceStatus.DOWN, Cause.OWN
        else:
            r.status, r.cause = DeviceStatus.UNKNOWN, Cause.PARENT
        site_state(r.site_code, path)
