"""Contract tests of :mod:`ecocloud_ops.adapters.icmp` (fping first, icmplib fallback).

All traffic stays on this machine: 127.0.0.0/8 answers echo on Linux, and the only other addresses are a /30
inside 198.18.255.0/24 (RFC 2544 benchmarking range) on a veth pair whose far end lives in a network namespace
this module creates (``ecoping-<pid>``) and deletes again. A blackhole route for the same /30 (higher metric)
guarantees that, should the veth route vanish, packets are dropped here instead of following the default route.
No host names are used (a name lookup would query the network's DNS server).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ecocloud_ops.adapters import icmp
from ecocloud_ops.adapters.icmp import PingResult, ping_many

LOOPBACK = ["127.0.0.1", "127.0.0.2", "127.1.2.3", "127.254.0.1"]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@dataclass
class DeadEnd:
    namespace: str
    near: str
    far: str
    far_if: str

    def far_down(self) -> None:
        out = _ip("-n", self.namespace, "link", "set", self.far_if, "down")
        assert out.returncode == 0, out.stderr


pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def dead_end() -> Iterator[DeadEnd]:
    """A veth pair: near end here (198.18.255.x+1/30), far end (x+2) in namespace ``ecoping-<pid>``."""
    assert os.geteuid() == 0 and shutil.which("ip") is not None, "needs root and iproute2 (scripts/setup.sh --test)"
    pid = os.getpid()
    base = 4 * (pid % 64)  # a /30 inside 198.18.255.0/24, distinct for concurrent runs
    ns, near_if, far_if = f"ecoping-{pid}", f"ecp{pid % 100000}a", f"ecp{pid % 100000}b"
    subnet, near, far = f"198.18.255.{base}/30", f"198.18.255.{base + 1}", f"198.18.255.{base + 2}"
    steps = [
        ("netns", "add", ns),
        ("link", "add", near_if, "type", "veth", "peer", "name", far_if, "netns", ns),
        ("route", "add", "blackhole", subnet, "metric", "4000"),
        ("addr", "add", f"{near}/30", "dev", near_if),
        ("link", "set", near_if, "up"),
        ("-n", ns, "addr", "add", f"{far}/30", "dev", far_if),
        ("-n", ns, "link", "set", far_if, "up"),
    ]
    try:
        for step in steps:
            out = _ip(*step)
            assert out.returncode == 0, f"ip {' '.join(step)}: {out.stderr}"
        yield DeadEnd(ns, near, far, far_if)
    finally:
        _ip("netns", "del", ns)  # removes both veth ends
        _ip("link", "del", near_if)
        _ip("route", "del", "blackhole", subnet, "metric", "4000")


def _assert_alive(r: PingResult) -> None:
    assert r.alive and r.error is None, r
    assert r.rtt_ms is not None and 0 <= r.rtt_ms < 100
    assert r.loss == 0.0


def _assert_dead(r: PingResult) -> None:
    assert not r.alive and r.rtt_ms is None and r.loss == 1.0, r
    assert r.error


def test_loopback_hosts_are_alive_with_rtt() -> None:
    results = asyncio.run(ping_many([*LOOPBACK, LOOPBACK[0]], timeout=0.5))
    assert list(results) == LOOPBACK  # one entry per distinct host, in the order given
    for host in LOOPBACK:
        assert results[host].host == host
        _assert_alive(results[host])


def test_thousands_of_loopback_hosts_well_under_a_second() -> None:
    hosts = [f"127.30.{i // 250}.{i % 250 + 1}" for i in range(3200)]
    started = time.monotonic()
    results = asyncio.run(ping_many(hosts, timeout=0.5))
    elapsed = time.monotonic() - started
    assert len(results) == 3200 and all(r.alive for r in results.values())
    assert elapsed < 1.0, elapsed


def test_dead_host_in_own_namespace(dead_end: DeadEnd) -> None:
    before = asyncio.run(ping_many([dead_end.far], timeout=0.5))
    _assert_alive(before[dead_end.far])  # the path works while the far end is up
    dead_end.far_down()
    started = time.monotonic()
    results = asyncio.run(ping_many([dead_end.far, "127.0.0.1"], timeout=0.3, count=2))
    assert time.monotonic() - started < 3.0
    _assert_dead(results[dead_end.far])
    assert "no echo reply" in str(results[dead_end.far].error)
    _assert_alive(results["127.0.0.1"])


def test_icmplib_fallback_when_fping_is_missing(dead_end: DeadEnd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icmp, "fping_path", lambda: None)
    dead_end.far_down()  # idempotent; the previous test may have run or not
    results = asyncio.run(ping_many([*LOOPBACK, dead_end.far], timeout=0.3, count=1))
    for host in LOOPBACK:
        _assert_alive(results[host])
    _assert_dead(results[dead_end.far])


def test_empty_and_bad_arguments() -> None:
    assert asyncio.run(ping_many([], timeout=0.5)) == {}
    with pytest.raises(ValueError):
        asyncio.run(ping_many(["127.0.0.1"], timeout=0))


def test_fping_summary_parsing() -> None:
    """fping's real -C/-q stderr format (fping 5.1), including lost replies and an unknown name."""
    stderr = (
        "127.0.0.1      : 0.031 0.029\n"
        "198.18.255.2   : - -\n"
        "198.18.255.6   : 0.150 -\n"
        "no-such-host.invalid: Name or service not known\n"
        "::1            : 0.040 0.050\n"
    )
    parsed = icmp._parse_fping(stderr, 2)
    _assert_alive(parsed["127.0.0.1"])
    assert parsed["127.0.0.1"].rtt_ms == pytest.approx(0.030)
    _assert_dead(parsed["198.18.255.2"])
    half = parsed["198.18.255.6"]
    assert half.alive and half.loss == 0.5 and half.rtt_ms == pytest.approx(0.150)
    _assert_dead(parsed["no-such-host.invalid"])
    assert parsed["no-such-host.invalid"].error == "Name or service not known"
    _assert_alive(parsed["::1"])
