"""A full poll cycle of the national tree: the platform's poller vs. net-snmp's ``snmpget``.

One real net-snmp ``snmpd`` (a child process, killed at the end) answers on one loopback address per
device (``127.40.x.y``, never 0.0.0.0). The national site tree is seeded (3,208 sites) and one uplink
device per site is imported (3,207), each with its uplink interface. Then:

* the platform: ``PollEngine.run_cycle()`` — ICMP (fping) + one SNMP GET per device (sysUpTime, sysName,
  uplink ifOperStatus/ifHCInOctets/ifHCOutOctets), status with the site tree, results stored (device
  state, outages, hourly and daily rollups, the cycle record). The first cycle also learns every
  uplink's ifIndex by a walk; the steady state is the cycles after it.
* the baseline, in the same run over the same targets and OIDs: ``snmpget`` with ``xargs -P 64``.

    .venv/bin/python benchmarks/poll_cycle.py [DATABASE_URL]     # default: SQLite in a temporary folder

Targets (2 cores): a full cycle ≤ 2 s, ≥ 5× faster than the baseline, poller peak memory ≤ 300 MB.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402
from tests.contract.snmpd_peer import COMMUNITY, SnmpdPeer, free_udp_port  # noqa: E402

from benchmarks.snmp_clients import snmpget_run  # noqa: E402
from ecocloud_ops.audit.service import Actor  # noqa: E402
from ecocloud_ops.bootstrap import Container  # noqa: E402
from ecocloud_ops.config import load_settings  # noqa: E402
from ecocloud_ops.migrate import upgrade  # noqa: E402
from ecocloud_ops.network.inventory import DeviceSpec  # noqa: E402
from ecocloud_ops.network.poller import PollEngine  # noqa: E402
from ecocloud_ops.sites.models import Site  # noqa: E402


def address(i: int) -> str:
    return f"127.40.{i // 250}.{i % 250 + 1}"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else ""
    with tempfile.TemporaryDirectory(prefix="poll-bench-") as tmp:
        workdir = Path(tmp)
        c = Container(load_settings(environ={}, instance_dir=workdir / "instance", database_url=url,
                                    poll_timeout_seconds=2.0, poll_retries=1))
        upgrade(c)
        actor = Actor("bench")
        with c.unit_of_work() as svc:
            svc.sites.seed_national(actor)
            codes = list(svc.session.execute(select(Site.code).where(Site.code != "000000")
                                             .order_by(Site.code)).scalars())
        port = free_udp_port()
        specs = [DeviceSpec(hostname=f"dev-{code}", address=address(i), site_code=code, snmp_port=port,
                            uplink_interface="lo", snmp_community=COMMUNITY) for i, code in enumerate(codes)]
        with c.unit_of_work() as svc:
            svc.devices.import_inventory(actor, specs)
        hosts = [address(i) for i in range(len(codes))]
        peer = SnmpdPeer(workdir / "snmpd", [(h, port) for h in hosts])
        t0 = time.perf_counter()
        peer.start(timeout=180)
        print(f"database: {c.engine.dialect.name}; {len(specs)} devices; snmpd answering on {len(hosts)} "
              f"addresses after {time.perf_counter() - t0:.1f} s")
        engine = PollEngine(c)
        try:
            cycles = []
            for _ in range(4):
                s = engine.run_cycle()
                cycles.append(s)
            bad = [r.as_json() for r in cycles[-1].results if r.status != "up" or r.error]
            steady = sorted(x.duration_ms / 1000 for x in cycles[1:])
            median = steady[len(steady) // 2]
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            baseline = snmpget_run(hosts, port, workdir)
        finally:
            engine.close()
            peer.stop()
            c.dispose()
        assert baseline.seconds is not None, baseline.note
        print(f"{'':34} {'seconds':>9}")
        print(f"{'platform, first cycle (+ifIndex walk)':34} {cycles[0].duration_ms / 1000:>9.2f}")
        print(f"{'platform, steady cycle (median of 3)':34} {median:>9.2f}   "
              f"{cycles[-1].up}/{len(specs)} up, {len(bad)} with errors")
        print(f"{'snmpget, xargs -P 64 (baseline)':34} {baseline.seconds:>9.2f}   {baseline.ok}/{len(hosts)} ok")
        print(f"speed-up: {baseline.seconds / median:.1f}x   poller peak memory: {peak_mb:.0f} MB")
        if bad:
            print("first problems:", bad[:3])


if __name__ == "__main__":
    main()
