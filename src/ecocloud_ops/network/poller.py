"""The poll engine: one cycle probes every enabled device (ICMP + one SNMP GET), decides each
device's status with the site tree (a device under a down site is ``unknown``, not ``down``), and
stores state changes as outage intervals and compact rollups — never a row per probe."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from ..adapters.icmp import PingResult, ping_many
from ..adapters.snmp import SnmpClient, SnmpCredentials, SnmpResult, SnmpTarget, make_client
from ..db import utcnow
from .history import HistoryWriter, RollupRow, poll_buckets, poll_rollup_rows
from .models import Device, DeviceStatus, PollCycle
from .status import ProbeResult, classify

if TYPE_CHECKING:
    from ..bootstrap import Container

log = logging.getLogger(__name__)

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_HC_IN = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.10"


@dataclass(frozen=True)
class ProbeTarget:
    """What the engine needs of one device; built from the database, then probed without it."""

    device_id: int
    hostname: str
    site_code: str
    site_path: str
    address: str
    role: str
    uplink_ifindex: int | None
    uplink_interface: str | None
    snmp: SnmpTarget


@dataclass
class CycleSummary:
    cycle_id: int
    started_at: dt.datetime
    duration_ms: float
    devices: int = 0
    up: int = 0
    down: int = 0
    unknown: int = 0
    snmp_errors: int = 0
    opened: int = 0
    closed: int = 0
    results: list[ProbeResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("cycle_id", "devices", "up", "down", "unknown", "snmp_errors",
                                              "opened", "closed", "duration_ms")} | {
            "started_at": self.started_at.isoformat()}


def credentials_of(d: Device, secret: dict[str, str]) -> SnmpCredentials:
    if d.snmp_version == "3":
        return SnmpCredentials(version="3", user=d.snmp_user, auth_protocol=d.snmp_auth_protocol,  # type: ignore[arg-type]
                               auth_key=secret.get("auth_key"), priv_protocol=d.snmp_priv_protocol,  # type: ignore[arg-type]
                               priv_key=secret.get("priv_key"))
    return SnmpCredentials(version="2c", community=secret.get("community") or "")


class PollEngine:
    """Runs cycles: ``run_cycle()`` loads targets, probes them concurrently, stores what changed."""

    def __init__(self, container: Container, snmp: SnmpClient | None = None) -> None:
        self.container = container
        self.settings = container.settings
        self.snmp = snmp or make_client(self.settings.snmp_client)

    def close(self) -> None:
        self.snmp.close()

    # Loading -------------------------------------------------------------------------------
    def targets(self) -> tuple[list[ProbeTarget], dict[str, str]]:
        """Enabled devices with decrypted credentials, and every site's path by code."""
        from ..sites.models import Site

        with self.container.unit_of_work() as svc:
            paths = dict(svc.session.execute(select(Site.code, Site.path)).all())
            out = []
            for d in svc.devices.pollable():
                creds = credentials_of(d, svc.devices.snmp_secret(d))
                out.append(ProbeTarget(d.id, d.hostname, d.site.code, d.site.path, d.address, d.role,
                                       d.uplink_ifindex, d.uplink_interface,
                                       SnmpTarget(d.address, port=d.snmp_port, credentials=creds, name=d.hostname)))
        return out, paths

    async def _resolve_ifindexes(self, targets: list[ProbeTarget]) -> dict[int, int]:
        """Learn the ifIndex of uplink interfaces named in the inventory (ifName, then ifDescr)."""
        found: dict[int, int] = {}
        todo = [t for t in targets if t.uplink_interface and t.uplink_ifindex is None]
        sem = asyncio.Semaphore(32)

        async def one(t: ProbeTarget) -> None:
            async with sem:
                for table in (IF_NAME, IF_DESCR):
                    try:
                        rows = await self.snmp.walk(t.snmp, table, timeout=self.settings.poll_timeout_seconds,
                                                    retries=self.settings.poll_retries)
                    except Exception as exc:  # an unreachable device is resolved at a later cycle
                        log.debug("ifIndex walk of %s failed: %s", t.hostname, exc)
                        return
                    for oid, value in rows.items():
                        name = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                        if name == t.uplink_interface:
                            found[t.device_id] = int(oid.rsplit(".", 1)[1])
                            return

        await asyncio.gather(*(one(t) for t in todo))
        return found

    async def probe(self, targets: list[ProbeTarget]) -> tuple[list[ProbeResult], dict[int, int]]:
        """Ping and GET every target concurrently; partial failure is data."""
        s = self.settings
        learned = await self._resolve_ifindexes(targets)
        requests = []
        for t in targets:
            oids = [SYS_UPTIME, SYS_NAME]
            idx = learned.get(t.device_id, t.uplink_ifindex)
            if idx is not None:
                oids += [f"{IF_OPER_STATUS}.{idx}", f"{IF_HC_IN}.{idx}", f"{IF_HC_OUT}.{idx}"]
            requests.append((t.snmp, oids))
        pings_task = asyncio.ensure_future(ping_many(sorted({t.address for t in targets}),
                                                     timeout=s.poll_timeout_seconds))
        snmp_results: list[SnmpResult] = await self.snmp.get_many(
            requests, timeout=s.poll_timeout_seconds, retries=s.poll_retries, concurrency=s.poll_concurrency)
        pings: dict[str, PingResult] = await pings_task
        results = []
        for t, (_target, oids), sr in zip(targets, requests, snmp_results, strict=True):
            p = pings.get(t.address)
            r = ProbeResult(device=t.hostname, site_code=t.site_code)
            errors = []
            if p is not None and p.alive:
                r.rtt_ms = p.rtt_ms
            else:
                errors.append(f"ICMP: {p.error if p and p.error else 'no echo reply'}")
            v = sr.values
            r.sys_uptime = v.get(SYS_UPTIME) if isinstance(v.get(SYS_UPTIME), int) else None  # type: ignore[assignment]
            name = v.get(SYS_NAME)
            r.sys_name = name.decode(errors="replace") if isinstance(name, bytes) else name  # type: ignore[assignment]
            r.snmp_ok = r.sys_uptime is not None
            if len(oids) > 2:
                oper, hin, hout = (v.get(o) for o in oids[2:])
                r.uplink_oper_status = oper if isinstance(oper, int) else None
                r.in_octets = hin if isinstance(hin, int) else None
                r.out_octets = hout if isinstance(hout, int) else None
            if sr.error:
                errors.append(f"SNMP {sr.error_kind}: {sr.error}")
            r.reachable = (p is not None and p.alive) or r.snmp_ok
            if r.reachable and r.uplink_oper_status not in (None, 1):
                # The device answers (e.g. over a backup path) but reports its uplink down.
                r.reachable = False
                errors.append(f"uplink {t.uplink_interface} ifOperStatus={r.uplink_oper_status}")
            r.error = "; ".join(errors) or None
            results.append(r)
        return results, learned

    # A cycle -------------------------------------------------------------------------------
    def run_cycle(self, progress: Callable[[float, str], None] | None = None) -> CycleSummary:
        """Run one cycle and store it. Returns the summary with every device's result."""
        started = utcnow()
        t0 = time.perf_counter()
        targets, paths = self.targets()
        if progress:
            progress(0.1, f"probing {len(targets)} devices")
        results, learned = asyncio.run(self.probe(targets)) if targets else ([], {})
        if progress:
            progress(0.8, "storing results")
        roles = {t.hostname: t.role for t in targets}
        classify(results, paths, roles)
        summary = self.store(started, targets, results, learned)
        summary.duration_ms = (time.perf_counter() - t0) * 1000
        with self.container.unit_of_work() as svc:
            cycle = svc.session.get(PollCycle, summary.cycle_id)
            if cycle is not None:
                cycle.duration_ms = summary.duration_ms
        if progress:
            progress(1.0, f"{summary.up} up, {summary.down} down, {summary.unknown} unknown")
        return summary

    def store(self, started: dt.datetime, targets: list[ProbeTarget], results: list[ProbeResult],
              learned: dict[int, int]) -> CycleSummary:
        """Write device states, open/close/group outages, rollups, the cycle and any poller gap.

        Bulk statements for what every device gets each cycle (its state, its rollups); the ORM only
        for the few devices whose status changed (their outage records, through :class:`HistoryWriter`)."""
        now = utcnow()
        flap_window = dt.timedelta(minutes=self.settings.flap_window_minutes)
        summary = CycleSummary(cycle_id=0, started_at=started, duration_ms=0, devices=len(results), results=results)
        with self.container.unit_of_work() as svc:
            session = svc.session
            writer = HistoryWriter(session, flap_window=flap_window)
            writer.record_gap_before(started, dt.timedelta(seconds=max(2.5 * self.settings.poll_interval_seconds, 30)))
            ids = [t.device_id for t in targets]
            state = {row.id: row for row in session.execute(
                select(Device.id, Device.site_id, Device.status, Device.status_since, Device.first_polled_at,
                       Device.last_in_octets, Device.last_out_octets, Device.last_sys_uptime, Device.last_sys_name)
                .where(Device.id.in_(ids)))}
            changed = [t.device_id for t, r in zip(targets, results, strict=True)
                       if t.device_id in state and state[t.device_id].status != r.status]
            if changed:
                writer.prefetch(changed, started)
            buckets = poll_buckets(started)  # days are Asia/Shanghai days, like the monthly report's
            device_rows: list[dict[str, Any]] = []
            rollup_rows: list[RollupRow] = []
            for t, r in zip(targets, results, strict=True):
                st = state.get(t.device_id)
                if st is None:
                    continue  # deleted while the cycle ran
                summary.up += r.status == DeviceStatus.UP
                summary.down += r.status == DeviceStatus.DOWN
                summary.unknown += r.status == DeviceStatus.UNKNOWN
                summary.snmp_errors += not r.snmp_ok
                if st.status != r.status:
                    opened, closed = writer.transition(t.device_id, st.site_id, r.status, r.cause, started)
                    summary.opened += opened
                    summary.closed += closed
                row: dict[str, Any] = {
                    "id": t.device_id, "status": r.status, "status_cause": r.cause,
                    "status_since": started if st.status != r.status else st.status_since,
                    "last_polled_at": started, "first_polled_at": st.first_polled_at or started,
                    "last_rtt_ms": r.rtt_ms, "last_error": r.error,
                    "last_sys_uptime": r.sys_uptime if r.sys_uptime is not None else st.last_sys_uptime,
                    "last_sys_name": r.sys_name[:255] if r.sys_name else st.last_sys_name,
                    "last_in_octets": str(r.in_octets) if r.in_octets is not None else st.last_in_octets,
                    "last_out_octets": str(r.out_octets) if r.out_octets is not None else st.last_out_octets,
                }
                if t.device_id in learned:
                    row["uplink_ifindex"] = learned[t.device_id]
                device_rows.append(row)
                rollup_rows += poll_rollup_rows(t.device_id, buckets, up=r.status == DeviceStatus.UP,
                                                rtt_ms=r.rtt_ms, in_delta=_delta(r.in_octets, st.last_in_octets),
                                                out_delta=_delta(r.out_octets, st.last_out_octets))
            session.flush()  # outage records first
            with_ifindex = [r for r in device_rows if "uplink_ifindex" in r]
            without = [r for r in device_rows if "uplink_ifindex" not in r]
            for rows in (with_ifindex, without):
                if rows:
                    session.execute(update(Device), rows)
            writer.upsert_rollups(rollup_rows)
            cycle = writer.add_cycle(started_at=started, finished_at=now, devices=summary.devices, up=summary.up,
                                     down=summary.down, unknown=summary.unknown, snmp_errors=summary.snmp_errors)
            summary.cycle_id = cycle.id
        return summary


def _delta(new: int | None, last: str | None) -> int:
    """Counter increase since the last reading; 0 on the first reading, a wrap or a reset."""
    if new is None or last is None or new < int(last):
        return 0
    return new - int(last)
