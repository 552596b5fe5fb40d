"""Job kinds: name -> function. Later issues add polling, provisioning, reports and drills here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

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


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _prune_network(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Retention: hourly rollups after ``retention_hourly_days``, daily rollups, closed outages and
    poll-cycle records after ``retention_daily_days`` (at least 13 months, for the 12-month trend)."""
    import datetime as dt

    from sqlalchemy import delete

    from ..db import utcnow
    from ..network.models import DeviceRollup, Outage, OutagePeriod, PollCycle

    s = ctx.container.settings
    now = utcnow()
    hourly_cut = now - dt.timedelta(days=s.retention_hourly_days)
    daily_cut = now - dt.timedelta(days=s.retention_daily_days)
    with ctx.unit_of_work() as svc:
        db = svc.session
        hourly = _count(db.execute(delete(DeviceRollup).where(DeviceRollup.granularity == "hour",
                                                              DeviceRollup.bucket < hourly_cut)))
        daily = _count(db.execute(delete(DeviceRollup).where(DeviceRollup.granularity == "day",
                                                             DeviceRollup.bucket < daily_cut)))
        old = [o for (o,) in db.execute(select(Outage.id).where(Outage.ended_at < daily_cut))]
        if old:
            db.execute(delete(OutagePeriod).where(OutagePeriod.outage_id.in_(old)))
            db.execute(delete(Outage).where(Outage.id.in_(old)))
        cycles = _count(db.execute(delete(PollCycle).where(PollCycle.started_at < daily_cut)))
    result = {"hourly_rollups": hourly, "daily_rollups": daily, "outages": len(old), "poll_cycles": cycles}
    ctx.log(f"pruned {result}")
    return result


def _ssh_checks(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from ..network.ssh_checks import run_checks

    summary = run_checks(ctx.container, ctx.actor, params.get("hostnames"), ctx.progress)
    ctx.log(f"SSH checks: {summary.ok}/{summary.devices} ok")
    for host, err in summary.failed.items():
        ctx.log(f"{host}: {err}", "warning")
    return summary.as_dict()


def _config_backup(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from ..network.ssh_checks import backup_configs

    summary = backup_configs(ctx.container, ctx.actor, params.get("hostnames"), ctx.progress)
    ctx.log(f"configuration backup: {summary.new_versions} new versions, {summary.unchanged} unchanged, "
            f"{len(summary.failed)} failed")
    for host, err in summary.failed.items():
        ctx.log(f"{host}: {err}", "warning")
    return summary.as_dict()


def _connectivity_report(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Build the draft of a month's assessment (default: the previous month); a published month is
    re-checked against the data instead, never changed."""
    from ..reports.builder import previous_month

    month = params.get("month") or previous_month()
    ctx.progress(0.1, f"building the {month} report")
    with ctx.unit_of_work() as svc:
        outcome = svc.reports.generate(ctx.actor, month)
    if outcome["action"] == "checked":
        ctx.log(f"{month} is published; recomputed figures are "
                + ("identical" if outcome["identical"] else f"different in {len(outcome['changes'])} places"),
                "info" if outcome["identical"] else "warning")
    else:
        ctx.log(f"{month} draft {outcome['action']} (revision {outcome['revision']})")
        # Render the Chinese PDF now, so the officer's download is instant (a national one takes a minute).
        from ..auth.scope import Scope
        from ..reports.service import cached_pdf

        ctx.progress(0.5, "rendering the PDF")
        with ctx.unit_of_work() as svc:
            data = svc.reports.data_for(month, Scope.everything())
        cached_pdf(ctx.container.settings.files_dir, data, "zh_CN")
    return {k: v for k, v in outcome.items() if k != "changes"} | {"changes": len(outcome.get("changes", []))}


def _publish_report(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Publish a month's draft: render and archive the PDF and data, freeze the report."""
    from ..reports.service import publish_report

    month = str(params.get("month") or "")
    result = publish_report(ctx.container, ctx.actor, month, ctx.progress)
    for item in result["archive"]:
        ctx.log(f"archived {item['name']} sha256 {item['sha256']} ({item['size']} bytes)")
    return result


def _sla_check(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from ..servicedesk.sla_watch import sla_check_job

    return sla_check_job(ctx, params)


def _deliver_mail(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Send the queued ticket notifications over SMTP (failures stay queued for the next run)."""
    from ..servicedesk.notify import deliver

    result = deliver(ctx.container)
    if result.get("failed"):
        ctx.log(f"{result['failed']} notification(s) not sent; retried at the next run", "warning")
    return result


def _playbook(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from ..automation.runner import playbook_job

    return playbook_job(ctx, params)


def _drill(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from ..dr.engine import drill_job

    return drill_job(ctx, params)


def _dr_schedule(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    with ctx.unit_of_work() as svc:
        lines = svc.dr.start_due(ctx.actor)
    for line in lines:
        ctx.log(line)
    return {"plans": len(lines)}


def _cloud(name: str) -> Callable[[JobContext, dict[str, Any]], dict[str, Any]]:
    def run(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
        from ..cloud import engine

        func: Callable[[JobContext, dict[str, Any]], dict[str, Any]] = getattr(engine, name)
        return func(ctx, params)

    run.__name__ = f"_cloud_{name}"
    return run


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
        JobKind("network.prune", _prune_network, "jobs.manage", "Apply the retention of rollups and outages"),
        JobKind("network.ssh_checks", _ssh_checks, "network.manage", "Run the SSH check commands of every device"),
        JobKind("network.config_backup", _config_backup, "network.manage",
                "Back up every device's configuration over SSH"),
        JobKind("reports.connectivity", _connectivity_report, "reports.manage",
                "Build a month's connectivity assessment draft (or re-check a published month)"),
        JobKind("reports.publish", _publish_report, "reports.manage",
                "Publish a month's assessment: archive its PDF and data with checksums"),
        JobKind("servicedesk.deliver_mail", _deliver_mail, "jobs.manage",
                "Send queued ticket notifications by e-mail"),
        JobKind("system.sleep", _sleep, "jobs.manage", "Wait, report progress, honour cancel (diagnostics)"),
        JobKind("automation.playbook", _playbook, "jobs.manage",
                "Run an Ansible playbook of playbooks/ (started as a playbook run: POST /playbook-runs)"),
        JobKind("dr.drill", _drill, "dr.run",
                "Run a DR drill step by step (started from a drill plan: POST /dr/plans/<id>/drills)"),
        JobKind("dr.schedule", _dr_schedule, "jobs.manage", "Start the scheduled DR drills that are due"),
        JobKind("cloud.onboard", _cloud("onboard_job"), "cloud.manage",
                "Onboard a tenant into a pool: project, quotas, network, security group, roles"),
        JobKind("cloud.offboard", _cloud("offboard_job"), "cloud.manage",
                "Offboard a tenant from a pool, in reverse order"),
        JobKind("cloud.quota", _cloud("quota_job"), "cloud.manage", "Apply new quotas to a tenant project"),
        JobKind("cloud.provision", _cloud("provision_job"), "cloud.manage",
                "Create the VMs of a provisioning request (and run its post-boot playbook)"),
        JobKind("cloud.vm_action", _cloud("vm_action_job"), "cloud.manage",
                "Start, stop, reboot, resize or delete a VM"),
        JobKind("cloud.sync", _cloud("sync_job"), "cloud.manage",
                "Sync every pool's projects, servers, flavors, images, quota usage and capacity"),
        JobKind("servicedesk.sla_check", _sla_check, "jobs.manage",
                "Service desk SLA check: warnings, breaches, escalation, unassigned and out-of-hours tickets"),
    ]
}

#: Scheduled tasks: (schedule id, job kind, cron fields in Asia/Shanghai time).
SCHEDULES: list[tuple[str, str, dict[str, Any]]] = [
    ("daily-audit-verify", "audit.verify", {"hour": 3, "minute": 0}),
    ("daily-network-prune", "network.prune", {"hour": 3, "minute": 30}),
    ("daily-config-backup", "network.config_backup", {"hour": 2, "minute": 0}),
    ("hourly-ssh-checks", "network.ssh_checks", {"minute": 20}),
    # The previous month's draft, at 01:00 on the 1st.
    ("monthly-connectivity-report", "reports.connectivity", {"day": 1, "hour": 1, "minute": 0}),
    ("servicedesk-sla-check", "servicedesk.sla_check", {"minute": "*/5"}),
    ("dr-schedule", "dr.schedule", {"minute": "*/5"}),
]
