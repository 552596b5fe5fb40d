"""``ecocloud-ops cloud …`` through click's CliRunner against the test database, the three pools on FakeCloud
adapters (the CLI's container is built from the environment like a user's; only its cloud connector is the
test's, so the test sees what the commands did in the fake cloud)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from ecocloud_ops import cli as cli_module
from ecocloud_ops.audit.models import AuditEntry
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.cloud.adapter import CloudAuthError
from ecocloud_ops.cloud.models import Vm, VmRequest
from ecocloud_ops.jobs.models import Job


@pytest.fixture
def runner(container: Container, fake_cloud: Any, small_tree: None,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    built: list[Container] = []
    original = cli_module.App.container

    def container_with_fake_cloud(self: cli_module.App) -> Container:
        first = self._container is None
        c = original.fget(self)  # type: ignore[attr-defined]
        if first:
            c.__dict__["cloud"] = container.cloud  # the fixture's pools and FakeCloud adapters
            built.append(c)
        return c

    monkeypatch.setattr(cli_module.App, "container", property(container_with_fake_cloud))
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ECOCLOUD_")}  # unset the test's own
    env |= {"ECOCLOUD_INSTANCE_DIR": str(container.settings.instance_dir),
            "ECOCLOUD_DATABASE_URL": container.settings.effective_database_url}
    yield CliRunner(env=env)
    for c in built:
        c.__dict__.pop("cloud", None)
        c.dispose()


def run(runner: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> Result:
    r = runner.invoke(cli_module.cli, list(args), input=stdin, catch_exceptions=False)
    assert r.exit_code == code, f"{args}: exit {r.exit_code}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def test_pools_sync_tenants_and_onboarding(runner: CliRunner, container: Container, fake_cloud: Any,
                                           tmp_path: Path) -> None:
    r = run(runner, "cloud", "pools")
    lines = r.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["internet", "egov", "business"] and "never synced" in lines[0]
    r = run(runner, "cloud", "sync", "--wait")
    assert "syncing" in r.stderr  # the progress bar's label
    assert "internet: 0 servers" in r.stdout and "job" in r.stdout and "succeeded" in r.stdout
    pools = json.loads(run(runner, "cloud", "pools", "--json").stdout)
    assert pools[0]["capacity"]["vcpus_total"] == 32 and pools[0]["flavors"] == 3
    r = run(runner, "cloud", "sync", "--pool", "nowhere", code=1)
    assert r.stderr.startswith("error: no resource pool 'nowhere'") and len(r.stderr.splitlines()) == 1
    r = run(runner, "cloud", "sync", "--pool", "egov")
    assert "sync queued" in r.stdout and "no worker is running" in r.stderr

    r = run(runner, "cloud", "tenants", "create", "--name", "社保系统", "--code", "social", "--site", "130100",
            "--user", "alice", "--json")
    tenant = json.loads(r.stdout)
    assert tenant["code"] == "social" and tenant["users"] == ["alice"]
    r = run(runner, "cloud", "tenants", "create", "--name", "其它", "--code", "social", code=1)
    assert r.stderr.strip() == "error: a tenant with code social already exists"

    # An onboarding that fails between steps, then the same command continues from there.
    fake_cloud.clouds["internet"].fail_next("ensure_default_security_rules",
                                            CloudAuthError("network: authentication refused"))
    r = run(runner, "cloud", "tenants", "onboard", "social", "--pool", "internet", "--quota", "cores=24", "--wait",
            code=2)
    assert "onboarding social-internet" in r.stderr
    assert "social-internet in internet: failed" in r.stdout and "authentication refused" in r.stdout
    assert "security_group  failed" in r.stdout and "network         done" in r.stdout
    r = run(runner, "cloud", "tenants", "onboard", "social", "--pool", "internet", "--wait")
    assert "social-internet in internet: active" in r.stdout and "roles           done" in r.stdout
    cloud = fake_cloud.clouds["internet"]
    assert [p.name for p in cloud.projects()] == ["social-internet"]
    listed = json.loads(run(runner, "cloud", "tenants", "list", "--json").stdout)
    assert listed[0]["projects"][0]["status"] == "active" and listed[0]["projects"][0]["quotas"]["cores"] == 24
    r = run(runner, "cloud", "tenants", "list")
    assert "social" in r.stdout and "internet:active" in r.stdout

    # Quotas: shown, changed (audited with old and new values).
    r = run(runner, "cloud", "tenants", "quotas", "social", "--pool", "internet")
    assert "cores" in r.stdout and "24" in r.stdout
    r = run(runner, "cloud", "tenants", "quotas", "social", "cores=32", "instances=12", "--pool", "internet",
            "--wait")
    assert "succeeded" in r.stdout
    project_id = listed[0]["projects"][0]["project_id"]
    assert cloud.quota_usage(project_id)["cores"].limit == 32
    with container.unit_of_work() as svc:
        (entry,) = svc.session.execute(select(AuditEntry).where(AuditEntry.action == "cloud.quota.change")).scalars()
        assert entry.actor.startswith("cli:") and entry.channel == "cli"
        assert entry.before == {"pool": "internet", "cores": 24, "instances": 10}
        assert entry.after is not None and entry.after["cores"] == 32 and entry.after["instances"] == 12
    r = run(runner, "cloud", "tenants", "quotas", "social", "bogus=1", "--pool", "internet", code=1)
    assert "quotas.bogus" in r.stderr
    r = run(runner, "cloud", "tenants", "quotas", "social", "cores", "--pool", "internet", code=2)
    assert "expected NAME=VALUE" in r.stderr


def test_vms_create_list_delete_and_offboard(runner: CliRunner, container: Container, fake_cloud: Any) -> None:
    run(runner, "cloud", "tenants", "create", "--name", "税务系统", "--code", "tax", "--user", "alice")
    run(runner, "cloud", "tenants", "onboard", "tax", "--pool", "egov", "--wait")
    args = ("cloud", "vms", "create", "--tenant", "tax", "--pool", "egov", "--name", "app-{n}", "--count", "10",
            "--flavor", "m1.tiny", "--image", "cirros-fake", "--request-id", "cli-request-0001")
    r = run(runner, *args, "--wait")
    assert "request 1 (cli-request-0001) created" in r.stdout and "provisioning 10 VM(s)" in r.stderr
    assert "request 1: succeeded" in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if " app-" in ln]
    assert len(rows) == 10 and all(" active " in ln and "ACTIVE" in ln and " 10." in ln for ln in rows)
    # The same request id again: nothing new.
    r = run(runner, *args)
    assert "already exists (nothing created)" in r.stdout and "succeeded" in r.stdout
    again = json.loads(run(runner, *args, "--wait", "--json").stdout)
    assert again["created"] is False and again["id"] == 1 and len(again["vms"]) == 10
    with container.unit_of_work() as svc:
        assert len(svc.session.execute(select(VmRequest)).scalars().all()) == 1
        assert len(svc.session.execute(select(Vm)).scalars().all()) == 10
    cloud = fake_cloud.clouds["egov"]
    assert len(cloud.servers(None)) == 10
    # Oversized: refused by the quota pre-check with needed vs available, nothing recorded.
    r = run(runner, "cloud", "vms", "create", "--tenant", "tax", "--pool", "egov", "--name", "big", "--count", "4",
            "--flavor", "m1.medium", "--image", "cirros-fake", code=1)
    assert r.stderr.startswith("error: quota exceeded: ") and "instances needs 4, 0 available" in r.stderr
    with container.unit_of_work() as svc:
        assert len(svc.session.execute(select(VmRequest)).scalars().all()) == 1

    vms = json.loads(run(runner, "cloud", "vms", "list", "--tenant", "tax", "--json").stdout)
    assert len(vms) == 10 and {v["stage"] for v in vms} == {"active"}
    assert all(next(iter(v["addresses"].values()))[0].startswith("10.") for v in vms)
    r = run(runner, "cloud", "vms", "list", "--pool", "egov")
    assert r.stdout.strip().endswith("10 VMs")
    first = vms[0]
    r = run(runner, "cloud", "vms", "action", str(first["id"]), "stop", "--wait")
    assert "SHUTOFF" in r.stdout
    r = run(runner, "cloud", "vms", "action", str(first["id"]), "stop", code=1)
    assert "cannot stop" in r.stderr and "SHUTOFF" in r.stderr
    # Delete: asks first (no answer: nothing happens), then with --yes.
    r = run(runner, "cloud", "vms", "delete", str(first["id"]), stdin="n\n", code=1)
    assert "This cannot be undone" in r.stdout and "Aborted" in r.stderr
    assert len(cloud.servers(None)) == 10
    r = run(runner, "cloud", "vms", "delete", str(first["id"]), "--yes", "--wait")
    assert " deleted " in r.stdout and "succeeded" in r.stdout
    assert len(cloud.servers(None)) == 9
    with container.unit_of_work() as svc:
        actions = {e.action for e in svc.session.execute(select(AuditEntry).where(
            AuditEntry.target_type == "cloud_vm", AuditEntry.target_id == str(first["id"]))).scalars()}
        assert {"cloud.vm.stop", "cloud.vm.delete"} <= actions
    # A queued delete (no --wait) is left to the worker.
    r = run(runner, "cloud", "vms", "delete", str(vms[1]["id"]), "--yes")
    assert "delete app-" in r.stdout and "queued" in r.stdout
    with container.unit_of_work() as svc:
        assert svc.session.execute(select(Job).where(Job.kind == "cloud.vm_action", Job.state == "queued")
                                   ).scalars().all()

    r = run(runner, "cloud", "tenants", "offboard", "tax", "--pool", "egov", code=1)
    assert "still has 9 VM(s)" in r.stderr
    r = run(runner, "cloud", "tenants", "offboard", "tax", "--pool", "egov", "--force", "--yes", "--wait")
    assert "tax-egov in egov: offboarded" in r.stdout and "succeeded" in r.stdout
    assert cloud.servers(None) == [] and cloud.projects() == []
