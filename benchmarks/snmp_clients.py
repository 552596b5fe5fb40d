"""SNMP poll-cycle speed: GufoClient vs. PysnmpClient vs. net-snmp's ``snmpget`` (``xargs -P 64``), side by side.

One real net-snmp ``snmpd`` (a foreground child, killed and reaped at the end) listens on 3,200 distinct
loopback addresses ``udp:127.40.x.y:PORT`` — never on 0.0.0.0 — so every target is a distinct device to the
clients. Each target gets the poller's single GET: sysUpTime.0, sysName.0 and the uplink's ifOperStatus /
ifHCInOctets / ifHCOutOctets (ifIndex 1), SNMPv2c, timeout 2 s, 1 retry.

For N = 400, 1,600 and 3,200 distinct targets it prints:

* gufo: one cycle with a fresh client (gufo keeps no per-target state, so every cycle is like the first);
* pysnmp: the first cycle with a fresh client ("cold": every target is new to the engine) and a second cycle
  with the same client ("warm": targets registered) — skipped when the estimate exceeds 60 s;
* snmpget: one ``snmpget`` process per target, 64 at a time.

    .venv/bin/python benchmarks/snmp_clients.py                 # needs apt packages snmpd and snmp
    .venv/bin/python benchmarks/snmp_clients.py --sizes 400,1600
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from ecocloud_ops.adapters.snmp import SnmpClient, SnmpCredentials, SnmpTarget, make_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.contract.snmpd_peer import (  # noqa: E402
    AGENT_SYS_NAME,
    COMMUNITY,
    IF_HC_IN_OCTETS,
    IF_HC_OUT_OCTETS,
    IF_OPER_STATUS,
    SYS_NAME,
    SYS_UPTIME,
    SnmpdPeer,
    free_udp_port,
)

OIDS = [SYS_UPTIME, SYS_NAME, f"{IF_OPER_STATUS}.1", f"{IF_HC_IN_OCTETS}.1", f"{IF_HC_OUT_OCTETS}.1"]
TIMEOUT, RETRIES = 2.0, 1
LIMIT_S = 60.0


@dataclass
class Run:
    seconds: float | None
    ok: int = 0
    note: str = ""

    def cell(self, n: int) -> str:
        if self.seconds is None:
            return self.note
        return f"{self.seconds:7.2f} s ({self.ok}/{n} ok)"


def addresses(n: int) -> list[str]:
    return [f"127.40.{i // 250}.{i % 250 + 1}" for i in range(n)]


async def cycle(client: SnmpClient, hosts: list[str], port: int, concurrency: int) -> Run:
    creds = SnmpCredentials("2c", community=COMMUNITY)
    requests = [(SnmpTarget(h, port=port, credentials=creds, name=f"dev-{i}"), OIDS) for i, h in enumerate(hosts)]
    started = time.perf_counter()
    async with asyncio.timeout(LIMIT_S):
        results = await client.get_many(requests, timeout=TIMEOUT, retries=RETRIES, concurrency=concurrency)
    elapsed = time.perf_counter() - started
    ok = sum(1 for r in results if r.ok and r.error_kind is None and r.values[SYS_NAME] == AGENT_SYS_NAME)
    return Run(elapsed, ok)


async def gufo_run(hosts: list[str], port: int) -> Run:
    client = make_client("gufo")
    try:
        return await cycle(client, hosts, port, concurrency=64)
    finally:
        client.close()


async def pysnmp_runs(hosts: list[str], port: int) -> tuple[Run, Run]:
    client = make_client("pysnmp")
    try:
        try:
            cold = await cycle(client, hosts, port, concurrency=32)
        except TimeoutError:
            return Run(None, note=f"aborted (> {LIMIT_S:.0f} s)"), Run(None, note="-")
        try:
            warm = await cycle(client, hosts, port, concurrency=32)
        except TimeoutError:
            warm = Run(None, note=f"aborted (> {LIMIT_S:.0f} s)")
        return cold, warm
    finally:
        client.close()
        await asyncio.sleep(0)


def snmpget_run(hosts: list[str], port: int, workdir: Path) -> Run:
    exe = shutil.which("snmpget")
    if exe is None:
        return Run(None, note="snmpget missing (apt-get install snmp)")
    listing = workdir / f"hosts-{len(hosts)}.txt"
    listing.write_text("".join(f"{h}:{port}\n" for h in hosts))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MIBS": "", "SNMP_PERSISTENT_DIR": str(workdir / "cli")}
    args = ["xargs", "-a", str(listing), "-P", "64", "-I{}", exe, "-v2c", "-c", COMMUNITY, "-t", str(TIMEOUT),
            "-r", str(RETRIES), "-On", "-Oqv", "{}", *OIDS]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    elapsed = time.perf_counter() - started
    ok = sum(1 for line in proc.stdout.splitlines() if line.strip().strip('"') == AGENT_SYS_NAME)
    return Run(elapsed, ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="400,1600,3200", help="comma-separated target counts")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    port = free_udp_port()
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} gufo-snmp={version('gufo-snmp')} "
          f"pysnmp={version('pysnmp')}; SNMPv2c GET of {len(OIDS)} OIDs per target, timeout {TIMEOUT} s, "
          f"{RETRIES} retry")
    with tempfile.TemporaryDirectory(prefix="snmp-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        peer = SnmpdPeer(workdir / "snmpd", [(a, port) for a in addresses(max(sizes))])
        peer.start(timeout=120)
        try:
            up = time.perf_counter() - started
            print(f"snmpd: {max(sizes)} listen addresses 127.40.x.y:{port}, answering after {up:.2f} s")
            header = f"{'targets':>7} | {'gufo (64 in flight)':<24} | {'pysnmp cold (32)':<24} | " \
                     f"{'pysnmp warm (32)':<24} | {'snmpget xargs -P64':<24}"
            print(header)
            print("-" * len(header))
            last: tuple[int, float] | None = None  # (n, seconds) of the last pysnmp cold run
            for n in sizes:
                hosts = addresses(n)
                gufo = asyncio.run(gufo_run(hosts, port))
                estimate = last[1] * n / last[0] * 1.3 if last else 0.0  # linear in new targets + 30 %
                if estimate > LIMIT_S:
                    cold, warm = Run(None, note=f"skipped (> {LIMIT_S:.0f} s)"), Run(None, note="skipped")
                else:
                    cold, warm = asyncio.run(pysnmp_runs(hosts, port))
                    if cold.seconds is not None:
                        last = (n, cold.seconds)
                cli = snmpget_run(hosts, port, workdir)
                print(f"{n:>7} | {gufo.cell(n):<24} | {cold.cell(n):<24} | {warm.cell(n):<24} | {cli.cell(n):<24}",
                      flush=True)
        finally:
            peer.stop()


if __name__ == "__main__":
    main()
