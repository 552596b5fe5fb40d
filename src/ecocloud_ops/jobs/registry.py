"""Job kinds: name -> function. Later issues add polling, provisioning, reports and drills here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import JobContext


@dataclass(frozen=True)
class JobKind:
    name: str
    func: Callable[[JobContext, dict[str, Any]], dict[str, Any]]
    #: Permission needed to start it from the console or API.
    permission: str
    description: str


def _seed_national(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    with ctx.unit_of_work() as svc:
        report = svc.sites.seed_national(ctx.actor, progress=ctx.progress)
    ctx.log(f"sites: {report.added} added, {report.renamed} renamed, {report.moved} moved, "
            f"{report.retired} retired, {report.restored} restored, {report.unchanged} unchanged")
    return report.as_dict()


def _verify_audit(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    with ctx.unit_of_work() as svc:
        result = svc.audit.verify()
    ctx.log(("chain intact" if result.ok else f"CHAIN BROKEN: {result.reason}") + f" ({result.checked} entries)")
    if not result.ok:
        raise RuntimeError(f"audit chain broken: {result.reason}")
    return result.as_dict()


def _poll(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """A poll cycle started by hand (the worker also runs them on its schedule)."""
    from .runner import _ACTIVE

    if _ACTIVE is None:
        raise RuntimeError("no worker in this process")
    ctx.progress(0.1, "polling")
    summary = _ACTIVE.poll_cycle()
    if summary is None:
        raise RuntimeError("a poll cycle is already running or failed; see the worker log")
    ctx.log(f"{summary['devices']} devices: {summary['up']} up, {summary['down']} down, {summary['unknown']} unknown")
    return summary


def _sleep(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """A cancellable job of known length (diagnostics and tests of the job machinery)."""
    import time

    seconds = float(params.get("seconds", 1))
    steps = max(int(seconds * 10), 1)
    for i in range(steps):
        ctx.check_cancel()
        time.sleep(seconds / steps)
        if i % 10 == 0:
            ctx.progress(i / steps, f"{i}/{steps}")
    if params.get("fail"):
        raise RuntimeError(str(params["fail"]))
    return {"slept": seconds}


JOB_KINDS: dict[str, JobKind] = {
    k.name: k for k in [
        JobKind("sites.seed_national", _seed_national, "sites.manage",
                "Load or update the national site tree from the GB/T 2260 list"),
        JobKind("audit.verify", _verify_audit, "jobs.manage", "Verify the audit log's hash chain and signatures"),
        JobKind("network.poll", _poll, "jobs.manage", "Run one network poll cycle now"),
        JobKind("system.sleep", _sleep, "jobs.manage", "Wait, report progress, honour cancel (diagnostics)"),
    ]
}

#: Scheduled tasks: (schedule id, job kind, cron fields in Asia/Shanghai time).
SCHEDULES: list[tuple[str, str, dict[str, Any]]] = [
    ("daily-audit-verify", "audit.verify", {"hour": 3, "minute": 0}),
]
