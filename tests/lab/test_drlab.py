"""The disaster-recovery lab (ecocloud_ops.lab.drlab) and the dr_* playbooks, run through the platform
(PlaybookService + the worker) against real PostgreSQL 15 servers in network namespaces, over SSH.

Needs root and the Debian packages iproute2, openssh-server, openssh-client, util-linux, postgresql-15 and
iputils-arping. Run with ``-s`` to see the timings of the lab and of each playbook.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ecocloud_ops.audit.service import Actor
from ecocloud_ops.automation.models import PlaybookRun
from ecocloud_ops.automation.service import PlaybookService
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.jobs.runner import Worker
from ecocloud_ops.lab.drlab import PG_BIN, DRLab
from ecocloud_ops.lab.netlab import NetLab

pytestmark = pytest.mark.lab

COORDINATOR = Actor("t.dr", "dr_coordinator", channel="api")
_TOOLS = ("ip", "sshd", "ssh", "ssh-keygen", "unshare", "nsenter", "runuser", "arping")


def test_the_tools_are_installed() -> None:
    # a missing tool is a failure here, never a silent skip
    assert os.geteuid() == 0, "the DR lab needs root"
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [t for t in _TOOLS if shutil.which(t, path=path) is None]
    missing += [b for b in ("pg_ctl", "pg_rewind", "pg_basebackup") if not (PG_BIN / b).exists()]
    assert not missing, f"missing tools: {missing} (run scripts/setup.sh --test)"


# Helpers ----------------------------------------------------------------------------------------
def playbook(container: Container, drlab: DRLab, name: str, extra_vars: dict[str, Any] | None = None,
             expect: str = "successful") -> PlaybookRun:
    """Start a run through the platform, execute it in this thread like the worker does, check its status."""
    t0 = time.monotonic()
    with container.unit_of_work() as svc:
        run = PlaybookService.of(svc).start(COORDINATOR, name, extra_vars or {}, inventory=drlab.inventory())
        run_id, job_id = run.id, run.job_id
    Worker(container, name="test-worker:1").run_job_now(job_id)
    with container.unit_of_work() as svc:
        done = svc.session.get(PlaybookRun, run_id)
        assert done is not None
        svc.session.expunge(done)
    rescued = sum(int(n) for n in re.findall(r"rescued=(\d+)", done.stdout))
    print(f"[drlab] {name} {extra_vars or ''}: {done.status} in {time.monotonic() - t0:.1f} s"
          + (f" ({rescued} block(s) rescued)" if rescued else ""))
    assert done.status == expect, f"{name}: {done.status} ({done.status_reason})\n{done.stdout[-6000:]}"
    return done


def query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def write_markers(dsn: str, drill: int, seqs: range) -> None:
    """Marker rows of series ``drill``, stored under ``-drill``: the platform's drills in the same session write
    positive ids. A series that starts at 1 starts clean."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if seqs.start == 1:
            conn.execute("DELETE FROM dr_markers WHERE drill = %s", (-drill,))
        for seq in seqs:
            conn.execute("INSERT INTO dr_markers (drill, seq) VALUES (%s, %s)", (-drill, seq))


def markers(dsn: str, drill: int) -> list[int]:
    return [r[0] for r in query(dsn, "SELECT seq FROM dr_markers WHERE drill = %s ORDER BY seq", (-drill,))]


def wait_for(what: str, check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def dr_streaming(drlab: DRLab) -> bool:
    rows = query(drlab.primary_dsn, "SELECT state FROM pg_stat_replication WHERE application_name = 'dr'")
    return [r[0] for r in rows] == ["streaming"]


def assert_initial_state(drlab: DRLab) -> None:
    assert drlab.vip_holder() == "prod"
    assert [drlab.role_of(h) for h in ("prod", "dr", "copy")] == ["primary", "standby", "down"]
    assert dr_streaming(drlab)
    assert query(drlab.service_dsn, "SELECT pg_is_in_recovery(), host(inet_server_addr())") == [
        (False, drlab.vip)], "the VIP reaches production"


def ssh(drlab: DRLab, host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command on a lab host over SSH the way Ansible reaches it (the inventory's key and known_hosts)."""
    inv = drlab.inventory()["all"]
    common = inv["vars"]
    target = next(h for group in inv["children"].values() for name, h in group["hosts"].items()
                  if name == drlab.namespace(host))
    cmd = ["ssh", "-i", common["ansible_ssh_private_key_file"], *common["ansible_ssh_common_args"].split(),
           f"root@{target['ansible_host']}", "--", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check)


# The lab ----------------------------------------------------------------------------------------
def test_the_initial_state_streams_and_the_copy_is_isolated(drlab: DRLab) -> None:
    t0 = time.monotonic()
    drlab.reset()
    print(f"[drlab] reset (already initial) in {time.monotonic() - t0:.2f} s")
    assert_initial_state(drlab)
    assert drlab.role_of("copy") == "down"
    assert query(drlab.primary_dsn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dr_slot' "
                                    "AND active") == [(1,)]
    write_markers(drlab.primary_dsn, 100, range(1, 4))
    wait_for("markers replicated to DR", lambda: markers(drlab.dr_dsn, 100) == [1, 2, 3])
    # Every host answers over SSH as itself, with the host key the lab wrote into known_hosts.
    assert ssh(drlab, "dr", "hostname").stdout.strip() == drlab.namespace("dr")
    # The copy reaches DR's replication link, nothing of production and not the VIP.
    inventory = drlab.inventory()["all"]["children"]
    dr_repl = inventory["standby"]["hosts"][drlab.namespace("dr")]["repl_address"]
    for target, reachable in ((dr_repl, True), (drlab.address("prod"), False), (drlab.vip, False)):
        result = subprocess.run(["ip", "-n", drlab.namespace("copy"), "route", "get", target], capture_output=True,
                                text=True, check=False)
        assert (result.returncode == 0) == reachable, (target, result.stdout, result.stderr)


def test_precheck_passes_in_the_initial_state(container: Container, small_tree: None, drlab: DRLab) -> None:
    drlab.reset()
    run = playbook(container, drlab, "dr_precheck", {"max_lag_seconds": 5})
    assert f"replay lag of {drlab.namespace('dr')}: " in run.stdout


def test_planned_failover_loses_nothing_and_failback_restores_the_initial_state(
        container: Container, small_tree: None, drlab: DRLab) -> None:
    drlab.reset()
    write_markers(drlab.primary_dsn, 1, range(1, 201))
    playbook(container, drlab, "dr_failover", {"mode": "planned"})
    assert drlab.vip_holder() == "dr"
    assert drlab.role_of("dr") == "primary" and drlab.role_of("prod") == "down"
    assert markers(drlab.dr_dsn, 1) == list(range(1, 201)), "every marker written before the switch is on DR"
    assert query(drlab.service_dsn, "SELECT pg_is_in_recovery()") == [(False,)]
    playbook(container, drlab, "dr_verify", {"serving": "standby"})
    write_markers(drlab.service_dsn, 1, range(201, 211))  # the service goes on at DR

    playbook(container, drlab, "dr_failback")
    assert_initial_state(drlab)
    assert markers(drlab.primary_dsn, 1) == list(range(1, 211)), "what DR took while serving came back"
    write_markers(drlab.service_dsn, 1, range(211, 216))
    wait_for("DR streams the new markers", lambda: markers(drlab.dr_dsn, 1) == list(range(1, 216)))


def test_disaster_failover_and_failback(container: Container, small_tree: None, drlab: DRLab) -> None:
    drlab.reset()
    write_markers(drlab.primary_dsn, 2, range(1, 51))
    wait_for("DR has the markers", lambda: markers(drlab.dr_dsn, 2) == list(range(1, 51)))
    playbook(container, drlab, "dr_failover", {"mode": "disaster"})
    assert drlab.vip_holder() == "dr"
    assert drlab.role_of("dr") == "primary" and drlab.role_of("prod") == "down"
    assert ssh(drlab, "prod", "pgrep", "-c", "-x", "postgres", check=False).stdout.strip() == "0", "all killed"
    assert markers(drlab.service_dsn, 2) == list(range(1, 51))
    run = playbook(container, drlab, "dr_precheck", expect="failed")
    assert "PostgreSQL is not running on" in run.stdout
    write_markers(drlab.service_dsn, 2, range(51, 61))

    playbook(container, drlab, "dr_failback")
    assert_initial_state(drlab)
    assert markers(drlab.primary_dsn, 2) == list(range(1, 61))


def test_disaster_failover_with_production_cut_off_and_failback_after_the_split_brain(
        container: Container, small_tree: None, drlab: DRLab) -> None:
    drlab.reset()
    write_markers(drlab.primary_dsn, 5, range(1, 21))
    wait_for("DR has the markers", lambda: markers(drlab.dr_dsn, 5) == list(range(1, 21)))
    prod_link = ["ip", "-n", drlab.namespace("prod"), "link", "set", "lan0"]
    subprocess.run([*prod_link, "down"], check=True)  # production is cut off: it cannot be fenced
    try:
        run = playbook(container, drlab, "dr_failover", {"mode": "disaster"})
        assert "ignored=1" in run.stdout, "the unreachable production host was skipped"
        assert drlab.vip_holder() == "dr" and drlab.role_of("dr") == "primary"
        assert drlab.role_of("prod") == "down"
        write_markers(drlab.service_dsn, 5, range(21, 31))
    finally:
        subprocess.run([*prod_link, "up"], check=True)
    # Production comes back still a primary with the VIP: a split brain, which the failback resolves for DR
    # (promoted last: its timeline is higher).
    wait_for("production answers again", lambda: drlab.role_of("prod") == "primary")
    with pytest.raises(RuntimeError, match="split brain"):
        drlab.vip_holder()
    playbook(container, drlab, "dr_failback")
    assert_initial_state(drlab)
    assert markers(drlab.primary_dsn, 5) == list(range(1, 31))


def test_failback_rolls_back_a_failover_interrupted_after_fencing(container: Container, small_tree: None,
                                                                 drlab: DRLab) -> None:
    drlab.reset()
    # A planned failover stopped after fencing production: primary down, VIP gone, DR not promoted.
    pg = drlab.inventory()["all"]["children"]["primary"]["hosts"][drlab.namespace("prod")]
    ssh(drlab, "prod", "ip", "addr", "del", f"{drlab.vip}/32", "dev", "lan0")
    ssh(drlab, "prod", "runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "stop", "-D", pg["pg_conf_dir"],
        "-m", "fast", "-w")
    assert drlab.vip_holder() is None and drlab.role_of("prod") == "down" and drlab.role_of("dr") == "standby"
    playbook(container, drlab, "dr_failback")
    assert_initial_state(drlab)
    playbook(container, drlab, "dr_verify", {"serving": "primary"})


def test_copy_drill_build_promote_cleanup_while_production_runs(container: Container, small_tree: None,
                                                               drlab: DRLab) -> None:
    drlab.reset()
    write_markers(drlab.primary_dsn, 3, range(1, 11))
    playbook(container, drlab, "dr_copy_build")
    assert drlab.role_of("copy") == "standby"
    wait_for("the copy has the markers", lambda: markers(drlab.copy_dsn, 3) == list(range(1, 11)))
    write_markers(drlab.primary_dsn, 3, range(11, 13))  # cascades production → DR → copy
    wait_for("the copy streams from DR", lambda: markers(drlab.copy_dsn, 3) == list(range(1, 13)))

    playbook(container, drlab, "dr_copy_promote")
    assert drlab.role_of("copy") == "primary"
    write_markers(drlab.copy_dsn, 3, range(1000, 1003))  # the copy accepts writes...
    assert drlab.role_of("prod") == "primary" and drlab.vip_holder() == "prod"  # ...production is untouched
    assert dr_streaming(drlab) and drlab.role_of("dr") == "standby"
    write_markers(drlab.primary_dsn, 3, range(13, 14))
    wait_for("DR still streams from production", lambda: markers(drlab.dr_dsn, 3) == list(range(1, 14)))
    assert markers(drlab.copy_dsn, 3) == [*range(1, 13), 1000, 1001, 1002], "the copy is on its own now"
    assert 1000 not in markers(drlab.primary_dsn, 3)

    playbook(container, drlab, "dr_copy_cleanup")
    assert drlab.role_of("copy") == "down"
    copy = drlab.inventory()["all"]["children"]["copy"]["hosts"][drlab.namespace("copy")]
    assert not Path(copy["pg_data_dir"]).exists()
    assert_initial_state(drlab)


def test_reset_from_a_messy_state(container: Container, small_tree: None, drlab: DRLab) -> None:
    drlab.reset()
    playbook(container, drlab, "dr_copy_build")
    # By hand, over SSH: the production host dies (its sshd, the init of its PID namespace, ends: every process
    # there with it), DR is promoted and given the VIP, takes a write, a link goes down.
    dr = drlab.inventory()["all"]["children"]["standby"]["hosts"][drlab.namespace("dr")]
    ssh(drlab, "prod", "ip", "addr", "del", f"{drlab.vip}/32", "dev", "lan0")
    ssh(drlab, "prod", "kill", "1", check=False)
    wait_for("production is down", lambda: drlab.role_of("prod") == "down")
    ssh(drlab, "dr", "runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "promote", "-D", dr["pg_conf_dir"],
        "-w")
    ssh(drlab, "dr", "ip", "addr", "add", f"{drlab.vip}/32", "dev", "lan0")
    ssh(drlab, "dr", "arping", "-q", "-U", "-c", "1", "-I", "lan0", drlab.vip)
    write_markers(drlab.service_dsn, 4, range(1, 4))  # DR diverges from production
    subprocess.run(["ip", "-n", drlab.namespace("dr"), "link", "set", "repl0", "down"], check=True)
    assert drlab.vip_holder() == "dr" and drlab.role_of("copy") == "standby"
    t0 = time.monotonic()
    drlab.reset()
    elapsed = time.monotonic() - t0
    print(f"[drlab] reset from a dead production host, DR promoted, a copy, a link down: {elapsed:.1f} s")
    assert_initial_state(drlab)
    assert elapsed < 15
    t0 = time.monotonic()
    drlab.reset()
    assert time.monotonic() - t0 < 2, "a reset in the initial state is nearly instant"
    link = subprocess.run(["ip", "-n", drlab.namespace("dr"), "-o", "link", "show", "repl0"], capture_output=True,
                          text=True, check=True).stdout
    assert ",UP," in link, "the replication link is up again"
    playbook(container, drlab, "dr_copy_cleanup")  # the reset removed the copy: nothing to clean is fine


def test_a_second_lab_beside_it_and_stop_leaves_nothing(drlab: DRLab) -> None:
    # Labs share 198.18.0.0/15: each registers its block, a NetLab starting now would pick around them.
    assert drlab.network is not None
    assert not ipaddress.IPv4Network(NetLab.free_network(22)).overlaps(drlab.network)
    other = DRLab("ecodrtwo")
    DRLab.cleanup_stale("ecodrtwo")
    t0 = time.monotonic()
    with other:
        print(f"[drlab] a second lab started in {time.monotonic() - t0:.1f} s on {other.network}")
        assert other.network is not None and not other.network.overlaps(drlab.network)
        assert other.role_of("prod") == "primary" and other.role_of("dr") == "standby"
        assert other.vip_holder() == "prod"
        workdir = other.workdir
        assert workdir is not None
        namespaces = [other.namespace(h) for h in ("prod", "dr", "copy")]
    assert not workdir.exists()
    assert not set(namespaces) & set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                                    check=True).stdout.split())
    assert not Path("/run/ecocloud-netlab/ecodrtwo.json").exists()
    assert str(other.network) not in subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True,
                                                    text=True, check=True).stdout
    leftovers = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()
                 and str(workdir).encode() in _cmdline(p)]
    assert not leftovers, "every process of the lab (sshd, PostgreSQL, SSH masters) is gone"
    # the session's lab is untouched
    assert_initial_state(drlab)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
