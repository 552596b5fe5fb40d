"""Network pages: the live national view with drill-down, devices, a device's history, maintenance."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ...errors import ValidationFailed
from ...network.connectivity import SHANGHAI, ConnectivityService, month_period, subtree_rate
from ...network.models import DeviceStatus
from ...network.rates import link_tier
from ...network.service import site_statuses
from ...sites.models import Tier
from ..security import requires, services

bp = Blueprint("network", __name__, url_prefix="/network")


def _month_rates(site_code: str | None = None) -> tuple[Any, dict[str, float | None]]:
    now = dt.datetime.now(SHANGHAI)
    period = month_period(now.year, now.month)
    result = ConnectivityService(g.db).compute(g.scope, period.start, period.end, site_code=site_code)
    return result, {link.site_code: link.rate for link in result.links}


@bp.route("/")
@requires("network.read")
def overview() -> Any:
    """31 provinces at a glance (or the user's own subtree), by live status and this month's rate."""
    svc = services()
    if g.scope.national:
        root = svc.sites.by_code("000000")
    else:
        root = svc.sites.by_code(g.user.site.code)
    assert root is not None
    return _site_view(root.code)


@bp.route("/sites/<code>")
@requires("network.read")
def site(code: str) -> Any:
    return _site_view(code)


def _site_view(code: str) -> Any:
    svc = services()
    s = svc.sites.get(code, g.scope)
    children = svc.sites.children(s)
    statuses = site_statuses(g.db, g.scope, [c.code for c in children] + [s.code])
    result, rates = _month_rates(s.code if s.code != "000000" else None)
    subtree = {c.code: subtree_rate(result.links, c.path) for c in children}
    devices = svc.devices.at_site(s)
    # Children's links are judged against their tier's assessment target (policy).
    targets = svc.policies.assessment().targets()
    target = targets.get(link_tier(s.tier) or "", targets["city_county"])
    return render_template("network/site.html", site=s, children=children, statuses=statuses, rates=rates,
                           target=target,
                           subtree=subtree, devices=devices, tiers=result.tiers,
                           ancestors=[a for a in svc.sites.ancestors(s) if g.scope.contains_path(a.path)])


@bp.route("/devices")
@requires("network.read")
def devices() -> Any:
    a = request.args
    tier = a.get("tier") if a.get("tier") in {t.value for t in Tier} else None
    status = a.get("status") if a.get("status") in {s.value for s in DeviceStatus} else None
    province = a.get("province") if (a.get("province") or "").isdigit() else None
    page = max(a.get("page", 1, type=int) or 1, 1)
    rows, total = services().devices.search(g.scope, tier=tier, province=province, status=status,
                                            query=(a.get("q") or "").strip()[:64] or None, limit=100,
                                            offset=(page - 1) * 100)
    provinces = services().sites.provinces(g.scope)
    return render_template("network/devices.html", devices=rows, total=total, page=page, args=a,
                           provinces=provinces, statuses=list(DeviceStatus), tiers=list(Tier))


@bp.route("/devices/<hostname>")
@requires("network.read")
def device(hostname: str) -> Any:
    svc = services()
    d = svc.devices.get(hostname, g.scope)
    outages = svc.devices.outages(d)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    rollups = svc.devices.rollups(d, "hour", since)
    chart = {
        "labels": [r.bucket.astimezone(SHANGHAI).strftime("%m-%d %H:00") for r in rollups],
        "reachability": [round(100 * r.up_polls / r.polls, 2) if r.polls else None for r in rollups],
        "rtt": [round(r.rtt_sum / r.rtt_count, 3) if r.rtt_count else None for r in rollups],
        "in_bps": [round(float(r.in_octets) * 8 / 3600, 1) for r in rollups],
        "out_bps": [round(float(r.out_octets) * 8 / 3600, 1) for r in rollups],
    }
    from ...auth.permissions import has_permission
    from ...network.ssh_checks import versions

    configs = versions(g.db, d) if has_permission(g.user.role, "configs.read") else []
    return render_template("network/device.html", device=d, outages=outages, chart=chart, configs=configs,
                           flap_threshold=g.container.settings.flap_threshold)


@bp.route("/maintenance")
@requires("network.read")
def maintenance() -> Any:
    now = dt.datetime.now(dt.UTC)
    windows = services().devices.maintenance(g.scope, now - dt.timedelta(days=90), now + dt.timedelta(days=365))
    return render_template("network/maintenance.html", windows=windows)


@bp.route("/maintenance/new", methods=["POST"])
@requires("network.manage")
def new_maintenance() -> Any:
    f = request.form

    def when(name: str) -> dt.datetime:
        try:
            return dt.datetime.fromisoformat(f.get(name, "")).replace(tzinfo=SHANGHAI)
        except ValueError as exc:
            raise ValidationFailed(_("%(field)s: expected a date and time", field=name),
                                   details=[{"field": name, "message": "YYYY-MM-DDTHH:MM"}]) from exc

    services().devices.add_maintenance(g.actor, g.scope, site_code=f.get("site", "").strip(),
                                       hostname=f.get("device") or None, start=when("start"), end=when("end"),
                                       reason=f.get("reason", ""))
    flash(_("Maintenance window planned."), "success")
    return redirect(url_for("network.maintenance"))


@bp.route("/devices/<hostname>/configs/<int:backup_id>")
@requires("configs.read")
def config_version(hostname: str, backup_id: int) -> Any:
    """One configuration version, secrets masked; with ?diff=1, the diff against the version before."""
    from ...adapters.ssh import config_diff, mask_secrets
    from ...network.ssh_checks import versions

    d = services().devices.get(hostname, g.scope)
    all_versions = versions(g.db, d)
    current = next((v for v in all_versions if v.id == backup_id), None)
    if current is None:
        from ...errors import NotFound

        raise NotFound(f"configuration version {backup_id} of {hostname} not found")
    text = g.container.box.decrypt(current.content_enc)
    older = [v for v in all_versions if v.taken_at < current.taken_at]
    diff = None
    if request.args.get("diff") and older:
        old_text = g.container.box.decrypt(older[0].content_enc)
        # difflib is quadratic on large repetitive input: a web request diffs ordinary configs only.
        diff = config_diff(old_text, text) if len(old_text) + len(text) <= 400_000 else _(
            "These versions are too large to compare here; export them and compare offline.")
    return render_template("network/config.html", device=d, version=current, config=mask_secrets(text),
                           diff=diff, previous=older[0] if older else None)


@bp.route("/devices/<hostname>/backup", methods=["POST"])
@requires("network.manage")
def backup_now(hostname: str) -> Any:
    d = services().devices.get(hostname, g.scope)
    job = services().jobs.enqueue(g.actor, "network.config_backup", {"hostnames": [d.hostname]},
                                  site_code=d.site.code)
    return redirect(url_for("main.job", job_id=job.id))


DEVICE_FORM_FIELDS = ("ansible_host", "site_code", "platform", "role", "uplink_interface", "snmp_version",
                      "snmp_port", "snmp_community", "snmp_user", "snmp_auth_protocol", "snmp_auth_key",
                      "snmp_priv_protocol", "snmp_priv_key", "ansible_user", "ansible_password",
                      "ansible_ssh_private_key_file", "ansible_port")


def _device_form() -> dict[str, Any]:
    """Host variables from the form; empty fields are left out (secrets: keep the stored one)."""
    f = request.form
    out: dict[str, Any] = {k: f[k].strip()[:255] for k in DEVICE_FORM_FIELDS if f.get(k, "").strip()}
    if "enabled" in f or "form_has_enabled" in f:
        out["enabled"] = "enabled" in f
    return out


@bp.route("/devices/new", methods=["POST"])
@requires("network.manage")
def new_device() -> Any:
    hostname = request.form.get("hostname", "").strip()
    d = services().devices.save(g.actor, g.scope, hostname, _device_form(), create=True)
    flash(_("Device %(name)s created.", name=d.hostname), "success")
    return redirect(url_for("network.device", hostname=d.hostname))


@bp.route("/devices/<hostname>/edit", methods=["POST"])
@requires("network.manage")
def edit_device(hostname: str) -> Any:
    d = services().devices.save(g.actor, g.scope, hostname, _device_form(), create=False)
    flash(_("Saved."), "success")
    return redirect(url_for("network.device", hostname=d.hostname))


@bp.route("/devices/<hostname>/retire", methods=["POST"])
@requires("network.manage")
def retire_device(hostname: str) -> Any:
    svc = services()
    svc.devices.retire(g.actor, svc.devices.get(hostname, g.scope))
    flash(_("Device retired; its history stays."), "success")
    return redirect(url_for("network.devices"))
