"""The demo network: real snmpd agents in network namespaces for all 31 provinces and a sample of
cities and counties, imported as the inventory the demo polls, with links cut and restored on a
schedule so outages and rates show something real within minutes."""

from __future__ import annotations

import logging
import random
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from ..audit.service import Actor
from ..bootstrap import Container
from ..network.inventory import DeviceSpec, to_yaml
from ..network.synthetic import generate_demo_history
from ..sites.models import Site, Tier
from .netlab import LabSite, NetLab

log = logging.getLogger(__name__)
DEMO_COMMUNITY = "demo-community"


def demo_sites(container: Container) -> list[LabSite]:
    """The ministry, every province, and under each province its first city (or, for a
    municipality, its first district) with one county below it."""
    with container.unit_of_work() as svc:
        rows = list(svc.session.execute(select(Site.code, Site.path, Site.tier).where(Site.retired_at.is_(None))
                                        .order_by(Site.code)).all())
    children: dict[str, list[tuple[str, str]]] = {}
    for code, path, tier in rows:
        parts = path.strip("/").split("/")
        if len(parts) > 1:
            children.setdefault(parts[-2], []).append((code, tier))
    sites = [LabSite("000000", None)]
    for province, _tier in children.get("000000", []):
        sites.append(LabSite(province, "000000"))
        below = children.get(province, [])
        if not below:
            continue
        first, first_tier = below[0]
        sites.append(LabSite(first, province))
        if first_tier == Tier.CITY and children.get(first):
            sites.append(LabSite(children[first][0][0], first))
    return sites


def demo_specs(lab: NetLab, sites: list[LabSite]) -> list[DeviceSpec]:
    tiers = {1: "provinces", 2: "cities", 3: "counties"}
    depth = {"000000": 0}
    for s in sites:
        if s.parent is not None:
            depth[s.code] = depth[s.parent] + 1
    return [DeviceSpec(hostname=f"demo-{s.code}", address=lab.address(s.code), site_code=s.code,
                       platform="linux", uplink_interface=lab.uplink_ifname(s.code), snmp_community=lab.community,
                       groups=[tiers.get(depth[s.code], "sites")]) for s in sites if s.parent is not None]


class DemoNetwork:
    """Starts the lab, imports its inventory, and runs the link-cutting schedule in a thread."""

    def __init__(self, container: Container, *, say: Callable[[str], None] = print,
                 cut_every_seconds: float = 180, cut_for_seconds: tuple[float, float] = (120, 600)) -> None:
        self.container = container
        self.say = say
        self.cut_every = cut_every_seconds
        self.cut_for = cut_for_seconds
        self.lab: NetLab | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def available() -> str | None:
        """None when the demo network can run here, else why not."""
        import os

        if os.geteuid() != 0:
            return "the demo network needs root (network namespaces)"
        for tool in ("ip", "snmpd"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                return f"'{tool}' is not installed"
        return None

    def start(self) -> int:
        """Build the namespaces and agents, import the devices; returns how many devices."""
        NetLab.cleanup_stale("eco")
        sites = demo_sites(self.container)
        self.lab = NetLab(sites, name="eco", community=DEMO_COMMUNITY, ssh=False, network="auto")
        self.lab.start()
        specs = demo_specs(self.lab, sites)
        inventory = self.container.settings.instance_dir / "demo-inventory.yml"
        inventory.write_text(to_yaml(specs), "utf-8")
        with self.container.unit_of_work() as svc:
            svc.devices.import_inventory(Actor("demo", channel="system"), specs, prune=False)
        # A first start also gets generated history (marked demo) from the start of last month, so
        # last month's report reads at once; the live poller then continues from its last cycle.
        if generate_demo_history(self.container, self.say) is not None:
            self._last_month_report()
        self._thread = threading.Thread(target=self._chaos, name="demo-link-cuts", daemon=True)
        self._thread.start()
        self.say(f"demo network: {len(specs)} devices in {len(sites)} namespaces (inventory: {inventory})")
        return len(specs)

    def _last_month_report(self) -> None:
        """Last month's assessment as a draft (from the generated history), so the report page has
        something to show at once."""
        from ..errors import EcoCloudError
        from ..reports.builder import previous_month

        month = previous_month()
        try:
            with self.container.unit_of_work() as svc:
                if svc.reports.find(month) is None:
                    svc.reports.generate(Actor("demo", channel="system"), month)
                    self.say(f"assessment report: {month} draft built from the demo history")
        except EcoCloudError as exc:
            self.say(f"assessment report for {month} not built: {exc.message}")

    def _chaos(self) -> None:
        assert self.lab is not None
        rng = random.Random(2026)
        candidates = [c for c in self.lab.codes if c != "000000"]
        while not self._stop.wait(self.cut_every):
            code = rng.choice(candidates)
            try:
                self.lab.cut(code)
                log.warning("demo: link of %s cut", code)
                if self._stop.wait(rng.uniform(*self.cut_for)):
                    return
                self.lab.restore(code)
                log.warning("demo: link of %s restored", code)
            except Exception:  # a demo hiccup must not stop the platform
                log.exception("demo link schedule failed")

    def stop(self) -> None:
        self._stop.set()
        if self.lab is not None:
            self.lab.stop()
