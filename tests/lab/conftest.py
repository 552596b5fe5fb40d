"""Fixtures of the lab suites: the disaster-recovery lab and the OpenStack lab, each started once per session."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecocloud_ops.lab.drlab import DRLab
from ecocloud_ops.lab.netlab import _proc_stat
from ecocloud_ops.lab.openstack import OpenStackLab, _quiet_sdk, default_venv

#: unique name: a demo or a drill may run a DR lab with the default name at the same time
DRLAB_NAME = "ecodrtest"


@pytest.fixture(scope="session")
def drlab() -> Iterator[DRLab]:
    """The DR lab (production primary, DR standby, copy host) for the whole session; stopped at the end.

    Tests bring it back to its initial state with ``drlab.reset()`` before they use it."""
    DRLab.cleanup_stale(DRLAB_NAME)
    lab = DRLab(DRLAB_NAME)
    t0 = time.monotonic()
    lab.start()
    print(f"\n[drlab] started in {time.monotonic() - t0:.1f} s on {lab.network}")
    try:
        yield lab
    finally:
        lab.stop()


# ------------------------------------------------------------------ the OpenStack lab

def _memory_mb(pids: set[int]) -> tuple[float, float]:
    """RSS and PSS (shared pages split between their users: the honest sum) of the processes, in MB."""
    totals = {"Rss:": 0, "Pss:": 0}
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            key, _, rest = line.partition(" ")
            if key in totals:
                totals[key] += int(rest.split()[0])
    return totals["Rss:"] / 1024, totals["Pss:"] / 1024


def _memory(pids: set[int]) -> str:
    rss, pss = _memory_mb(pids)
    return f"{len(pids)} processes, RSS {rss:.0f} MB, PSS {pss:.0f} MB"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def _started(pid: int) -> int | None:
    """The process's start time (clock ticks since boot): with the pid, it tells a process from a later one that
    reuses the pid (pid_max is 32768 here, and other suites run beside this one)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rfind(")") + 2:].split()[19])


def _stop_and_check(lab: OpenStackLab) -> None:
    """Stop the lab and assert that none of its processes (nor a zombie of one) and none of its ports is left."""
    pids = lab.pids()
    commands = {pid: _cmdline(pid) for pid in pids}
    started = {pid: _started(pid) for pid in pids}
    ports = dict(lab.ports)
    print(f"\n[oslab] before stop: {_memory(pids)}")
    t0 = time.monotonic()
    lab.stop()
    print(f"[oslab] stopped in {time.monotonic() - t0:.1f} s")
    assert pids
    left = [(pid, _proc_stat(pid), commands[pid]) for pid in sorted(pids)
            if _proc_stat(pid) is not None and _started(pid) == started[pid]]
    assert left == [], "lab processes (or zombies) left: (pid, (state, ppid), command)"
    assert lab.pids() == set()
    for name, port in ports.items():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{name} still listens on {port}"


@pytest.fixture(scope="session")
def oslab() -> Iterator[OpenStackLab]:
    """The OpenStack lab for the whole session: the venv ensured (fast when it is current), then started once.

    Its teardown stops it and checks that no process or port of it is left (a failure there is a test error)."""
    OpenStackLab.cleanup_stale()
    t0 = time.monotonic()
    venv = OpenStackLab.ensure_venv(default_venv(), say=lambda msg: print(f"\n[oslab] {msg}"))
    t_venv = time.monotonic() - t0
    lab = OpenStackLab(venv=venv)
    t1 = time.monotonic()
    lab.start()
    print(f"\n[oslab] venv {t_venv:.1f} s, start {time.monotonic() - t1:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in lab.timings.items())}); "
          f"{_memory(lab.pids())}")
    try:
        yield lab
    except BaseException:
        lab.stop()
        raise
    _stop_and_check(lab)


@pytest.fixture(scope="session")
def oslab_clouds_yaml(oslab: OpenStackLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clouds.yaml (mode 0600) with the lab's cloud ``ecolab`` (the admin's credentials)."""
    return oslab.clouds_yaml(tmp_path_factory.mktemp("oslab-clouds") / "clouds.yaml")


@pytest.fixture(scope="session")
def admin(oslab: OpenStackLab) -> Iterator[Any]:
    """An admin connection (openstacksdk) to the lab, for checks beside the code under test."""
    conn = oslab.connect()
    try:
        yield conn
    finally:
        with _quiet_sdk():
            conn.close()
