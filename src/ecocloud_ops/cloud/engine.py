"""The cloud jobs the worker runs: onboarding and offboarding (recorded steps, retry from the failed one),
quota changes, VM provisioning (per-VM progress, idempotent by the request id in each VM's metadata,
an optional post-boot playbook), day-2 actions and the inventory sync.

Every write is a short unit of work of its own: the cloud is never called inside a database transaction,
so a slow cloud never holds a lock the console needs, and a step's outcome is committed the moment it is
known (a crash loses at most the step that was running, which the retry then finds done in the cloud).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import socket
import string
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from ..db import utcnow
from ..errors import EcoCloudError
from .adapter import (
    META_INDEX,
    META_REQUEST,
    META_TENANT,
    CloudAdapter,
    CloudError,
    CloudQuotaExceeded,
    Quotas,
    Server,
    ServerRequest,
    first_ipv4,
)
from .models import (
    FINAL_VM,
    CapacitySample,
    CloudServiceRequest,
    PoolState,
    ProjectStatus,
    RequestStatus,
    Tenant,
    TenantProject,
    Vm,
    VmRequest,
    VmStage,
)
from .service import DEFAULT_RULES, ONBOARD_STEPS, advance_ticket

if TYPE_CHECKING:
    from ..bootstrap import Services
    from ..jobs.runner import JobContext

log = logging.getLogger(__name__)
POLL = 1.0
#: How long a request waits for its VMs to leave BUILD.
BUILD_TIMEOUT = 900


class StepFailed(RuntimeError):
    pass


def _msg(exc: BaseException) -> str:
    return exc.message if isinstance(exc, EcoCloudError) else f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------- on/offboarding

def _load_project(svc: Services, project_ref: int) -> tuple[TenantProject, Tenant]:
    tp = svc.session.get(TenantProject, project_ref)
    if tp is None:
        raise RuntimeError(f"tenant project {project_ref} no longer exists")
    tenant = svc.session.get(Tenant, tp.tenant_id)
    assert tenant is not None
    return tp, tenant


def _set_step(ctx: JobContext, project_ref: int, name: str, step_status: str, detail: str = "",
              **fields: Any) -> None:
    with ctx.unit_of_work() as svc:
        tp = svc.session.get(TenantProject, project_ref)
        assert tp is not None
        steps = [dict(s) for s in tp.steps]
        for s in steps:
            if s["name"] == name:
                s.update(status=step_status, detail=detail[:1000], at=utcnow().isoformat())
        tp.steps = steps
        for k, v in fields.items():
            setattr(tp, k, v)
        tp.updated_at = utcnow()


def _onboard_step(adapter: CloudAdapter, name: str, tp: TenantProject, tenant: Tenant) -> tuple[str, dict[str, Any]]:
    """Run one onboarding step (idempotent); returns its detail and the fields to record."""
    if name == "project":
        ref = adapter.ensure_project(tp.project_name, f"{tenant.name} ({tp.pool}) — EcoCloud Ops tenant {tenant.code}")
        return f"project {ref.name} ({ref.id})", {"project_id": ref.id}
    assert tp.project_id, "the project step has not run"
    if name == "quotas":
        result = adapter.set_quotas(tp.project_id, Quotas.from_dict(tp.quotas))
        applied = {k: v for k, v in result.as_dict().items() if v is not None}
        skipped = [k for k, v in result.as_dict().items() if v is None and (tp.quotas or {}).get(k) is not None]
        detail = ", ".join(f"{k}={v}" for k, v in applied.items())
        if skipped:
            detail += f"; not applied (the pool has no such service): {', '.join(skipped)}"
        return detail, {}
    if name == "network":
        net = adapter.ensure_network(tp.project_id, f"{tp.project_name}-net", tp.network_cidr)
        detail = f"network {net.network_id}, subnet {tp.network_cidr} {net.subnet_id}" + (
            f", router {net.router_id}" if net.router_id else ", no router (the pool allows none)")
        return detail, {"network_id": net.network_id, "subnet_id": net.subnet_id, "router_id": net.router_id}
    if name == "security_group":
        added = adapter.ensure_default_security_rules(tp.project_id, DEFAULT_RULES)
        return f"{added} rule(s) added to the default security group ({len(DEFAULT_RULES) - added} present)", {}
    if name == "roles":
        if not tenant.users:
            return "no users named for this tenant", {}
        adapter.ensure_role_assignments(tp.project_id, list(tenant.users), "member")
        return "member: " + ", ".join(tenant.users), {}
    raise RuntimeError(f"unknown step {name}")


def onboard_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    ref = int(params["project_ref"])
    with ctx.unit_of_work() as svc:
        tp, tenant = _load_project(svc, ref)
        tp.status = ProjectStatus.ONBOARDING
        pool = tp.pool
    adapter = ctx.container.cloud.adapter(pool)
    done = 0
    for i, name in enumerate(ONBOARD_STEPS):
        with ctx.unit_of_work() as svc:
            tp, tenant = _load_project(svc, ref)
            step = next(s for s in tp.steps if s["name"] == name)
            if step["status"] == "done":
                done += 1
                continue
            svc.session.expunge(tp)
            svc.session.expunge(tenant)
        ctx.check_cancel()
        ctx.progress(i / len(ONBOARD_STEPS), f"{tp.project_name}: {name}")
        _set_step(ctx, ref, name, "running")
        try:
            detail, fields = _onboard_step(adapter, name, tp, tenant)
        except Exception as exc:
            reason = f"step '{name}' failed: {_msg(exc)}"
            _set_step(ctx, ref, name, "failed", _msg(exc), status=ProjectStatus.FAILED, last_error=reason)
            ctx.log(f"{tp.project_name}: {reason}", "error")
            raise StepFailed(f"{reason}; retry the onboarding to continue from this step") from exc
        _set_step(ctx, ref, name, "done", detail, **fields)
        ctx.log(f"{tp.project_name}: {name}: {detail}")
    with ctx.unit_of_work() as svc:
        tp, tenant = _load_project(svc, ref)
        tp.status = ProjectStatus.ACTIVE
        tp.last_error = None
        svc.audit.record(ctx.actor, "cloud.tenant.onboarded", target_type="cloud_tenant", target_id=tenant.code,
                         after={"pool": tp.pool, "project_id": tp.project_id, "network_id": tp.network_id,
                                "router_id": tp.router_id, "steps_skipped_as_done": done})
        return {"project_id": tp.project_id, "pool": tp.pool, "steps": len(ONBOARD_STEPS),
                "already_done": done}


def _delete_servers(ctx: JobContext, adapter: CloudAdapter, project_id: str, force: bool) -> str:
    servers = adapter.servers(project_id)
    if servers and not force:
        raise StepFailed(f"{len(servers)} server(s) exist in the project ({', '.join(s.name for s in servers[:5])}); "
                         f"offboard with force to delete them")
    for s in servers:
        adapter.server_action(project_id, s.id, "delete")
    deadline = time.monotonic() + 300
    while servers and adapter.servers(project_id):
        if time.monotonic() > deadline:
            raise StepFailed("servers still exist 5 minutes after their deletion")
        ctx.check_cancel()
        time.sleep(POLL)
    return f"{len(servers)} server(s) deleted"


def offboard_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    ref, force = int(params["project_ref"]), bool(params.get("force"))
    with ctx.unit_of_work() as svc:
        tp, tenant = _load_project(svc, ref)
        pool, project_id, project_name = tp.pool, tp.project_id, tp.project_name
        names = [s["name"] for s in tp.steps]
        states = {s["name"]: s["status"] for s in tp.steps}
    adapter = ctx.container.cloud.adapter(pool)
    for i, name in enumerate(names):
        if states.get(name) == "done":
            continue
        ctx.check_cancel()
        ctx.progress(i / len(names), f"{project_name}: remove {name}")
        _set_step(ctx, ref, name, "running")
        try:
            if not project_id:
                detail = "nothing was created in the cloud"
            elif name == "servers":
                detail = _delete_servers(ctx, adapter, project_id, force)
            elif name == "roles":
                adapter.remove_role_assignments(project_id)
                detail = "role assignments removed"
            elif name == "security_group":
                adapter.delete_security_groups(project_id)
                detail = "security groups deleted"
            elif name == "network":
                adapter.delete_network(project_id, f"{project_name}-net")
                detail = "router, subnet and network deleted"
            elif name == "quotas":
                detail = "released with the project"
            elif name == "project":
                adapter.delete_project(project_id)
                detail = f"project {project_id} deleted"
            else:
                raise RuntimeError(f"unknown step {name}")
        except Exception as exc:
            reason = f"offboarding step '{name}' failed: {_msg(exc)}"
            _set_step(ctx, ref, name, "failed", _msg(exc), status=ProjectStatus.OFFBOARD_FAILED, last_error=reason)
            raise StepFailed(reason + "; retry the offboarding to continue from this step") from exc
        _set_step(ctx, ref, name, "done", detail)
        ctx.log(f"{project_name}: {name}: {detail}")
    with ctx.unit_of_work() as svc:
        tp, tenant = _load_project(svc, ref)
        tp.status = ProjectStatus.OFFBOARDED
        tp.network_id = tp.subnet_id = tp.router_id = None
        tp.last_error = None
        now = utcnow()
        for vm in svc.session.execute(select(Vm).where(Vm.project_ref == ref, Vm.stage != VmStage.DELETED)).scalars():
            vm.stage, vm.updated_at = VmStage.DELETED, now
        svc.audit.record(ctx.actor, "cloud.tenant.offboarded", target_type="cloud_tenant", target_id=tenant.code,
                         after={"pool": pool, "project_id": project_id, "force": force})
    return {"pool": pool, "project_id": project_id, "offboarded": True}


# ---------------------------------------------------------------------------------- quotas

def _ticket_note(ctx: JobContext, ticket_id: int | None, text: str, resolve: bool) -> None:
    """The ticket follows the job: a comment with each result, resolved when the request is fulfilled."""
    if not ticket_id:
        return
    from ..servicedesk.models import Ticket, TicketStatus

    try:
        with ctx.unit_of_work() as svc:
            ticket = svc.session.get(Ticket, ticket_id)
            if ticket is None:
                return
            advance_ticket(svc.tickets, ctx.actor, ticket,
                           TicketStatus.RESOLVED if resolve else TicketStatus.IN_PROGRESS, text)
            req = svc.session.execute(select(CloudServiceRequest).where(
                CloudServiceRequest.ticket_id == ticket_id)).scalar()
            if req is not None and req.status == "approved":
                req.status = "done" if resolve else "failed"
    except Exception:  # the cloud work is done; a ticket problem must not turn it into a failure
        log.exception("could not update ticket %s", ticket_id)
        ctx.log(f"could not update ticket {ticket_id}; see the worker log", "warning")


def quota_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    ref = int(params["project_ref"])
    new = dict(params["quotas"])
    with ctx.unit_of_work() as svc:
        tp, tenant = _load_project(svc, ref)
        pool, project_id, name = tp.pool, tp.project_id, tp.project_name
    assert project_id
    ctx.progress(0.2, f"{name}: applying quotas")
    try:
        result = ctx.container.cloud.adapter(pool).set_quotas(project_id, Quotas.from_dict(new))
    except Exception as exc:
        _ticket_note(ctx, params.get("ticket_id"), f"配额调整失败 / quota change failed: {_msg(exc)}", False)
        raise
    applied = {k: v for k, v in result.as_dict().items() if k in new and v is not None}
    with ctx.unit_of_work() as svc:
        tp, tenant = _load_project(svc, ref)
        tp.quotas = {**(tp.quotas or {}), **applied}
    text = "配额已调整 / quotas applied: " + ", ".join(f"{k}={v}" for k, v in applied.items())
    skipped = sorted(set(new) - set(applied))
    if skipped:
        text += f"; not applied (no such service in the pool): {', '.join(skipped)}"
    ctx.log(text)
    _ticket_note(ctx, params.get("ticket_id"), text, True)
    return {"applied": applied, "skipped": skipped}


# ---------------------------------------------------------------------------------- provisioning

def _password() -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(16)) + "-" + secrets.choice(string.digits)
        if any(c.isupper() for c in pw) and any(c.islower() for c in pw):
            return pw


def _apply_server(vm: Vm, server: Server) -> None:
    vm.server_id = server.id
    vm.status = server.status
    vm.addresses = server.addresses
    vm.host = server.host or vm.host
    vm.availability_zone = server.availability_zone or vm.availability_zone
    vm.flavor = server.flavor_name or vm.flavor
    vm.image_id = server.image_id or vm.image_id
    vm.updated_at = vm.synced_at = utcnow()
    vm.disappeared_at = None
    if server.status == "ERROR":
        vm.stage, vm.fault = VmStage.ERROR, f"OpenStack: {server.fault or 'the server went to ERROR'}"
    elif server.status == "ACTIVE" and vm.stage in (VmStage.QUEUED, VmStage.BUILDING):
        vm.stage = VmStage.ACTIVE
    elif server.status == "BUILD" and vm.stage == VmStage.QUEUED:
        vm.stage = VmStage.BUILDING


class Provisioner:
    """One request's run. Safe to run again for the same request: VMs whose server exists (found by the
    request id and index in the server metadata) are adopted, never created twice."""

    def __init__(self, ctx: JobContext, request_id: int) -> None:
        self.ctx = ctx
        self.request_id = request_id
        with ctx.unit_of_work() as svc:
            req = svc.session.get(VmRequest, request_id)
            if req is None:
                raise RuntimeError(f"VM request {request_id} no longer exists")
            tp = svc.session.get(TenantProject, req.project_ref)
            tenant = svc.session.get(Tenant, req.tenant_id)
            assert tp is not None and tenant is not None
            self.uid, self.pool, self.project_id = req.uid, req.pool, tp.project_id or ""
            self.count, self.flavor, self.image, self.network = req.count, req.flavor, req.image, req.network
            self.key_name, self.policy = req.key_name, req.password_policy
            self.playbook, self.playbook_vars = req.playbook, dict(req.playbook_vars or {})
            self.ticket_id, self.tenant_code, self.site_code = req.ticket_id, tenant.code, req.site_code
            req.status = RequestStatus.RUNNING
        self.adapter = ctx.container.cloud.adapter(self.pool)

    def _mine(self) -> dict[int, Server]:
        """This request's servers in the project, by index."""
        out: dict[int, Server] = {}
        for s in self.adapter.servers(self.project_id):
            if s.metadata.get(META_REQUEST) == self.uid and str(s.metadata.get(META_INDEX, "")).isdigit():
                out[int(s.metadata[META_INDEX])] = s
        return out

    def _progress(self, message: str) -> None:
        with self.ctx.unit_of_work() as svc:
            stages = [v.stage for v in svc.session.execute(select(Vm).where(Vm.request_id == self.request_id))
                      .scalars()]
        final = sum(1 for s in stages if s in FINAL_VM)
        self.ctx.progress(0.05 + 0.9 * final / max(len(stages), 1), message)

    def _resolve_ids(self) -> tuple[str, str, str]:
        flavor = next((f for f in self.adapter.flavors() if self.flavor in (f.name, f.id)), None)
        if flavor is None:
            raise CloudError(f"flavor {self.flavor} no longer exists in {self.pool}")
        image = next((i for i in self.adapter.images() if self.image in (i.name, i.id)), None)
        if image is None:
            raise CloudError(f"image {self.image} does not exist in {self.pool}")
        nets = [n for n in self.adapter.networks(self.project_id) if self.network in (n.get("name"), n.get("id"))]
        if not nets:
            raise CloudError(f"network {self.network} does not exist in the tenant project")
        return flavor.id, image.id, str(nets[0]["id"])

    def run(self) -> dict[str, Any]:
        ctx = self.ctx
        try:
            flavor_id, image_id, network_id = self._resolve_ids()
            existing = self._mine()
        except Exception as exc:
            self._finish_all_error(_msg(exc))
            raise
        with ctx.unit_of_work() as svc:
            rows = list(svc.session.execute(select(Vm).where(Vm.request_id == self.request_id)
                                            .order_by(Vm.index)).scalars())
            vms = [(v.id, v.index, v.name, v.stage) for v in rows]
            for v in rows:
                if v.index in existing and v.stage not in FINAL_VM:
                    _apply_server(v, existing[v.index])
        # 1. submit what is not in the cloud yet
        refused = 0
        for vm_id, index, name, stage in vms:
            ctx.check_cancel()
            if index in existing or stage in FINAL_VM:
                continue
            password = _password() if self.policy == "generated" else None
            meta = {META_REQUEST: self.uid, META_INDEX: str(index), META_TENANT: self.tenant_code}
            try:
                server = self.adapter.create_server(self.project_id, ServerRequest(
                    name=name, flavor_id=flavor_id, image_id=image_id, network_id=network_id, metadata=meta,
                    key_name=self.key_name, admin_password=password))
            except CloudError as exc:
                refused += 1
                prefix = "OpenStack refused (quota)" if isinstance(exc, CloudQuotaExceeded) else "OpenStack refused"
                with ctx.unit_of_work() as svc:
                    vm = svc.session.get(Vm, vm_id)
                    assert vm is not None
                    vm.stage, vm.fault, vm.updated_at = VmStage.ERROR, f"{prefix}: {exc.message}", utcnow()
                ctx.log(f"{name}: {prefix}: {exc.message}", "error")
                continue
            with ctx.unit_of_work() as svc:
                vm = svc.session.get(Vm, vm_id)
                assert vm is not None
                if password:
                    vm.password_enc = ctx.container.box.encrypt(password)
                vm.stage = VmStage.BUILDING
                _apply_server(vm, server)
            ctx.log(f"{name}: submitted ({server.id})")
            self._progress(f"{name} submitted")
        # 2. wait for every VM to leave BUILD
        deadline = time.monotonic() + BUILD_TIMEOUT
        while True:
            with ctx.unit_of_work() as svc:
                waiting = [v.index for v in svc.session.execute(select(Vm).where(
                    Vm.request_id == self.request_id, Vm.stage.in_([VmStage.QUEUED, VmStage.BUILDING]))).scalars()]
            if not waiting:
                break
            if time.monotonic() > deadline:
                self._finish_all_error(f"still building after {BUILD_TIMEOUT} s")
                break
            ctx.check_cancel()
            time.sleep(POLL)
            try:
                mine = self._mine()
            except CloudError as exc:
                ctx.log(f"listing servers failed, retrying: {exc.message}", "warning")
                continue
            changed: list[str] = []  # logged after the commit: a log line is a unit of work of its own
            with ctx.unit_of_work() as svc:
                for v in svc.session.execute(select(Vm).where(Vm.request_id == self.request_id,
                                                              Vm.index.in_(waiting))).scalars():
                    if v.index in mine:
                        before = v.stage
                        _apply_server(v, mine[v.index])
                        if v.stage != before:
                            changed.append(f"{v.name}: {v.stage}" + (f" — {v.fault}" if v.fault else "")
                                           + (f" {_addr(v)}" if v.stage == VmStage.ACTIVE else ""))
            for line in changed:
                ctx.log(line, "error" if " — " in line else "info")
            self._progress(f"{len(waiting)} VM(s) building")
        # 3. post-boot playbook
        if self.playbook:
            self._configure()
        return self._finish()

    def _configure(self) -> None:
        ctx = self.ctx
        settings = ctx.container.settings
        with ctx.unit_of_work() as svc:
            active = list(svc.session.execute(select(Vm).where(Vm.request_id == self.request_id,
                                                               Vm.stage == VmStage.ACTIVE)).scalars())
            targets = [(v.id, v.name, first_ipv4(v.addresses)) for v in active]
            for v in active:
                v.stage = VmStage.CONFIGURING
        if not targets:
            return
        reachable: list[tuple[int, str, str]] = []
        deadline = time.monotonic() + settings.cloud_ssh_wait_seconds
        pending = list(targets)
        self.ctx.progress(0.9, f"waiting for SSH on {len(pending)} VM(s)")
        while pending:
            still = []
            for vm_id, name, ip in pending:
                if ip and _port_open(ip, 22):
                    reachable.append((vm_id, name, ip))
                else:
                    still.append((vm_id, name, ip))
            pending = still
            if not pending or time.monotonic() > deadline:
                break
            ctx.check_cancel()
            time.sleep(POLL)
        for vm_id, name, ip in pending:
            self._vm_error(vm_id, f"{name}: post-boot playbook not run: SSH on {ip or '(no IPv4 address)'} "
                                  f"did not answer within {settings.cloud_ssh_wait_seconds} s")
        if not reachable:
            return
        run_id, status, reason = self._run_playbook(reachable)
        with ctx.unit_of_work() as svc:
            for vm_id, _name, _ip in reachable:
                vm = svc.session.get(Vm, vm_id)
                assert vm is not None
                vm.playbook_run_id = run_id
                if status == "successful":
                    vm.stage = VmStage.CONFIGURED
                else:
                    vm.stage = VmStage.ERROR
                    vm.fault = f"post-boot playbook {self.playbook} (run #{run_id}) {status}" + (
                        f": {reason}" if reason else "")
                vm.updated_at = utcnow()
        ctx.log(f"post-boot playbook {self.playbook}: run #{run_id} {status}" + (f" — {reason}" if reason else ""),
                "info" if status == "successful" else "error")

    def _run_playbook(self, hosts: list[tuple[int, str, str]]) -> tuple[int, str, str | None]:
        from ..automation.models import PlaybookRun
        from ..automation.service import PlaybookService
        from ..jobs.runner import Worker

        settings = self.ctx.container.settings
        known_hosts = settings.instance_dir.resolve() / "cloud_known_hosts"
        common: dict[str, Any] = {
            **settings.cloud_guest_vars,
            "ansible_user": settings.cloud_guest_user,
            "ansible_ssh_common_args": (f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known_hosts} "
                                        f"-o ControlMaster=no -o ConnectTimeout=10 -o ServerAliveInterval=15"),
            "ansible_ssh_timeout": 10,
        }
        if settings.cloud_ssh_key_path:
            common["ansible_ssh_private_key_file"] = str(Path(settings.cloud_ssh_key_path).resolve())
        inventory = {"all": {"vars": common, "hosts": {name: {"ansible_host": ip} for _i, name, ip in hosts}}}
        worker_name = f"cloud-request-{self.request_id}"
        with self.ctx.unit_of_work() as svc:
            run = PlaybookService.of(svc).start(self.ctx.actor, self.playbook or "", self.playbook_vars,
                                                inventory=inventory, site_code=self.site_code,
                                                claimed_by=worker_name)
            run_id, job_id = run.id, run.job_id
        Worker(self.ctx.container, name=worker_name).run_job_now(job_id)
        with self.ctx.unit_of_work() as svc:
            ended = svc.session.get(PlaybookRun, run_id)
            assert ended is not None
            return run_id, str(ended.status), ended.status_reason

    def _vm_error(self, vm_id: int, fault: str) -> None:
        with self.ctx.unit_of_work() as svc:
            vm = svc.session.get(Vm, vm_id)
            assert vm is not None
            vm.stage, vm.fault, vm.updated_at = VmStage.ERROR, fault, utcnow()
        self.ctx.log(fault, "error")

    def _finish_all_error(self, reason: str) -> None:
        with self.ctx.unit_of_work() as svc:
            for v in svc.session.execute(select(Vm).where(Vm.request_id == self.request_id)).scalars():
                if v.stage not in FINAL_VM:
                    v.stage, v.fault, v.updated_at = VmStage.ERROR, reason, utcnow()
            req = svc.session.get(VmRequest, self.request_id)
            assert req is not None
            req.status, req.error, req.finished_at = RequestStatus.FAILED, reason, utcnow()
        _ticket_note(self.ctx, self.ticket_id, f"云主机创建失败 / provisioning failed: {reason}", False)

    def _finish(self) -> dict[str, Any]:
        good = VmStage.CONFIGURED if self.playbook else VmStage.ACTIVE
        with self.ctx.unit_of_work() as svc:
            vms = list(svc.session.execute(select(Vm).where(Vm.request_id == self.request_id)
                                           .order_by(Vm.index)).scalars())
            ok = [v for v in vms if v.stage == good]
            req = svc.session.get(VmRequest, self.request_id)
            assert req is not None
            req.status = (RequestStatus.SUCCEEDED if len(ok) == len(vms) else
                          RequestStatus.PARTIAL if ok else RequestStatus.FAILED)
            req.finished_at = utcnow()
            failed = [v for v in vms if v.stage != good]
            req.error = "; ".join(f"{v.name}: {v.fault}" for v in failed)[:4000] or None
            lines = [f"{v.name}: {v.stage} {_addr(v)}" + (f" — {v.fault}" if v.fault else "") for v in vms]
            status = req.status
            summary = {"status": status, "vms": len(vms), "ok": len(ok),
                       "addresses": {v.name: first_ipv4(v.addresses) for v in vms}}
        text = (f"云主机创建结果 / provisioning {status}: {len(ok)}/{len(lines)} ready\n" + "\n".join(lines))
        _ticket_note(self.ctx, self.ticket_id, text, status == RequestStatus.SUCCEEDED)
        if status != RequestStatus.SUCCEEDED:
            raise RuntimeError(f"{len(ok)} of {len(lines)} VM(s) ready; see the request for each VM's fault")
        return summary


def _addr(vm: Vm) -> str:
    return first_ipv4(vm.addresses) or ""


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return bool(sock.recv(4).startswith(b"SSH"))
    except OSError:
        return False


def provision_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    return Provisioner(ctx, int(params["request_id"])).run()


# ---------------------------------------------------------------------------------- day-2

_TARGET = {"start": {"ACTIVE"}, "stop": {"SHUTOFF"}, "reboot": {"ACTIVE"}, "resize": {"VERIFY_RESIZE"},
           "confirm_resize": {"ACTIVE", "SHUTOFF"}}


def vm_action_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    vm_id, action = int(params["vm_id"]), params["action"]
    with ctx.unit_of_work() as svc:
        vm = svc.session.get(Vm, vm_id)
        assert vm is not None
        tp = svc.session.get(TenantProject, vm.project_ref)
        assert tp is not None and vm.server_id
        pool, project_id, server_id, name = vm.pool, tp.project_id or "", vm.server_id, vm.name
    adapter = ctx.container.cloud.adapter(pool)
    flavor_id = None
    if action == "resize":
        flavor = next((f for f in adapter.flavors() if f.name == params["flavor"]), None)
        if flavor is None:
            raise CloudError(f"flavor {params['flavor']} no longer exists")
        flavor_id = flavor.id
    ctx.progress(0.1, f"{name}: {action}")
    try:
        adapter.server_action(project_id, server_id, action, flavor_id=flavor_id)
        steps = [action, "confirm_resize"] if action == "resize" else [action]
        for i, step in enumerate(steps):
            if i:
                adapter.server_action(project_id, server_id, step)
            server = _wait_for(ctx, adapter, project_id, server_id, None if step == "delete" else _TARGET[step])
    except Exception:
        if action == "delete":
            with ctx.unit_of_work() as svc:
                vm = svc.session.get(Vm, vm_id)
                assert vm is not None
                if vm.stage == VmStage.DELETING:
                    vm.stage = VmStage.ERROR if vm.status == "ERROR" else VmStage.ACTIVE
        raise
    with ctx.unit_of_work() as svc:
        vm = svc.session.get(Vm, vm_id)
        assert vm is not None
        if server is None:
            vm.stage, vm.status = VmStage.DELETED, "DELETED"
            vm.updated_at = utcnow()
        else:
            _apply_server(vm, server)
        result = {"vm": name, "action": action, "status": vm.status}
    ctx.log(f"{name}: {action} done ({result['status']})")
    return result


def _wait_for(ctx: JobContext, adapter: CloudAdapter, project_id: str, server_id: str,
              statuses: set[str] | None, timeout: float = 300) -> Server | None:
    """Until the server reaches one of ``statuses`` (None: until it is gone); ERROR raises with the fault."""
    deadline = time.monotonic() + timeout
    while True:
        server = adapter.get_server(project_id, server_id)
        if statuses is None and server is None:
            return None
        if server is not None:
            if statuses is not None and server.status in statuses and not server.task_state:
                return server
            if server.status == "ERROR":
                raise CloudError(f"the server went to ERROR: {server.fault or 'no fault message'}")
        elif statuses is not None:
            raise CloudError("the server disappeared")
        if time.monotonic() > deadline:
            raise CloudError(f"still {server.status if server else '?'} after {timeout:.0f} s")
        ctx.check_cancel()
        time.sleep(POLL)


# ---------------------------------------------------------------------------------- inventory sync

_SYNC_LOCK = threading.Lock()


def sync_pool(ctx: JobContext, pool: str) -> dict[str, Any]:
    """One pool: flavors, images, capacity, every tenant project's servers and quota usage. The cloud is
    read first, then written in one short transaction."""
    adapter = ctx.container.cloud.adapter(pool)
    flavors = adapter.flavors()
    images = adapter.images()
    capacity = adapter.capacity()
    with ctx.unit_of_work() as svc:
        projects = [(tp.id, tp.project_id, tp.tenant_id) for tp in svc.session.execute(
            select(TenantProject).where(TenantProject.pool == pool, TenantProject.project_id.isnot(None),
                                        TenantProject.status.in_([ProjectStatus.ACTIVE, ProjectStatus.FAILED,
                                                                  ProjectStatus.OFFBOARD_FAILED]))).scalars()]
    servers = {s.id: s for s in adapter.servers(None)}
    usage = {}
    for ref, project_id, _tenant in projects:
        try:
            usage[ref] = adapter.quota_usage(project_id or "")
        except CloudError as exc:
            ctx.log(f"{pool}: quota usage of project {project_id}: {exc.message}", "warning")
    by_project = {pid: (ref, tenant) for ref, pid, tenant in projects}
    now = utcnow()
    counts = {"servers": 0, "discovered": 0, "disappeared": 0, "projects": len(projects)}
    with ctx.unit_of_work() as svc:
        st = svc.session.get(PoolState, pool) or PoolState(pool=pool)
        st.flavors = [f.__dict__ for f in flavors]
        st.images = [i.__dict__ for i in images]
        st.capacity = dict(capacity.__dict__)
        st.synced_at, st.error, st.error_at = now, None, None
        svc.session.add(st)
        known = {v.server_id: v for v in svc.session.execute(select(Vm).where(
            Vm.pool == pool, Vm.server_id.isnot(None))).scalars()}
        for sid, server in servers.items():
            if server.project_id not in by_project:
                continue  # not a tenant of the platform (admin's own, other systems)
            counts["servers"] += 1
            vm = known.get(sid)
            if vm is None:
                ref, tenant_id = by_project[server.project_id]
                tenant = svc.session.get(Tenant, tenant_id)
                assert tenant is not None
                vm = Vm(tenant_id=tenant_id, project_ref=ref, pool=pool, site_code=tenant.site_code,
                        name=server.name, stage=VmStage.ACTIVE, addresses={})
                svc.session.add(vm)
                counts["discovered"] += 1
            if vm.stage in (VmStage.QUEUED, VmStage.BUILDING, VmStage.CONFIGURING, VmStage.DELETING):
                continue  # a job is working on it and owns its stage
            if vm.stage == VmStage.DELETED:
                vm.stage = VmStage.ACTIVE  # came back (or was never gone)
            vm.name = server.name
            _apply_server(vm, server)
        for gone_id, vm in known.items():
            if gone_id not in servers and vm.stage not in (VmStage.DELETED, VmStage.QUEUED, VmStage.BUILDING,
                                                        VmStage.DELETING):
                vm.stage, vm.status, vm.disappeared_at, vm.updated_at = VmStage.DELETED, "GONE", now, now
                counts["disappeared"] += 1
                svc.audit.record(ctx.actor, "cloud.vm.disappeared", target_type="cloud_vm", target_id=vm.id,
                                 after={"name": vm.name, "server_id": gone_id, "pool": pool})
        quota_cores = quota_ram = 0
        for ref, u in usage.items():
            tp = svc.session.get(TenantProject, ref)
            assert tp is not None
            tp.usage = {k: {"limit": v.limit, "in_use": v.in_use, "reserved": v.reserved} for k, v in u.items()}
            tp.usage_at = now
            if "cores" in u and u["cores"].limit > 0:
                quota_cores += u["cores"].limit
            if "ram_mb" in u and u["ram_mb"].limit > 0:
                quota_ram += u["ram_mb"].limit
        # the trend keeps as long as the daily network rollups (at least 13 months)
        keep = now - dt.timedelta(days=ctx.container.settings.retention_daily_days)
        svc.session.execute(delete(CapacitySample).where(CapacitySample.pool == pool, CapacitySample.at < keep))
        svc.session.add(CapacitySample(pool=pool, at=now, vcpus_total=capacity.vcpus_total,
                                       vcpus_used=capacity.vcpus_used, ram_mb_total=capacity.ram_mb_total,
                                       ram_mb_used=capacity.ram_mb_used, disk_gb_total=capacity.disk_gb_total,
                                       disk_gb_used=capacity.disk_gb_used, quota_cores=quota_cores,
                                       quota_ram_mb=quota_ram))
    return counts


def sync_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every pool (or ``params["pool"]``); one pool's failure is recorded on it and the others go on."""
    connector = ctx.container.cloud
    names = [params["pool"]] if params.get("pool") else [p.name for p in connector.pools]
    if not names:
        ctx.log("no cloud pools are configured")
        return {"pools": {}}
    if not _SYNC_LOCK.acquire(blocking=False):
        ctx.log("another sync is running in this worker; skipped")
        return {"skipped": True}
    results: dict[str, Any] = {}
    try:
        for i, name in enumerate(names):
            ctx.check_cancel()
            ctx.progress(i / len(names), f"syncing {name}")
            try:
                results[name] = sync_pool(ctx, name)
                ctx.log(f"{name}: {results[name]}")
            except Exception as exc:
                if isinstance(exc, CloudError) and exc.code == "cloud_auth":
                    connector.forget(name)
                results[name] = {"error": _msg(exc)}
                ctx.log(f"{name}: sync failed: {_msg(exc)}", "error")
                with ctx.unit_of_work() as svc:
                    st = svc.session.get(PoolState, name) or PoolState(pool=name, flavors=[], images=[], capacity={})
                    st.error, st.error_at = _msg(exc)[:2000], utcnow()
                    svc.session.add(st)
    finally:
        _SYNC_LOCK.release()
    failed = [n for n, r in results.items() if "error" in r]
    if failed and len(failed) == len(names):
        raise RuntimeError("every pool failed to sync: " + "; ".join(f"{n}: {results[n]['error']}" for n in failed))
    return {"pools": results}


def pending_counts(svc: Services) -> dict[str, int]:
    """For the console's header: requests and projects still being worked on."""
    busy = svc.session.execute(select(func.count()).select_from(VmRequest).where(
        VmRequest.status.in_([RequestStatus.QUEUED, RequestStatus.RUNNING]))).scalar_one()
    return {"requests": int(busy)}
