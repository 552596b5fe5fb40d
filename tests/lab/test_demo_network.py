"""The README's demo network: namespaces for all 31 provinces and a sample below, really polled."""

from __future__ import annotations

import pytest

from ecocloud_ops.bootstrap import Container
from ecocloud_ops.lab.demo import DemoNetwork, demo_sites
from ecocloud_ops.network.poller import PollEngine
from tests.conftest import TEST_ACTOR

pytestmark = pytest.mark.lab


def test_demo_network_is_polled_and_a_cut_shows(container: Container) -> None:
    assert DemoNetwork.available() is None, DemoNetwork.available()
    with container.unit_of_work() as svc:
        svc.sites.seed_national(TEST_ACTOR)
    sites = demo_sites(container)
    provinces = [s for s in sites if s.parent == "000000"]
    assert len(provinces) == 31 and len(sites) > 80
    net = DemoNetwork(container, say=lambda _m: None, cut_every_seconds=3600)
    engine = PollEngine(container)
    try:
        n = net.start()
        assert n == len(sites) - 1
        summary = engine.run_cycle()
        assert summary.up == n, [r.as_json() for r in summary.results if r.status != "up"][:5]
        assert net.lab is not None
        net.lab.cut("130000")
        summary = engine.run_cycle()
        st = {r.site_code: r.status for r in summary.results}
        assert st["130000"] == "down" and st["130100"] == "unknown" and st["440000"] == "up"
        assert (container.settings.instance_dir / "demo-inventory.yml").exists()
        # Last month's report reads at once, from generated history that says it is demo data.
        from ecocloud_ops.reports.builder import previous_month

        with container.unit_of_work() as svc:
            report = svc.reports.get(previous_month())
            assert report.state == "draft" and report.demo and report.data["demo_data"]
            assert report.data["tiers"][0]["links"] == 31 and report.data["tiers"][0]["rate"] is not None
            assert report.data["completeness"]["covered"] > 0.99
    finally:
        engine.close()
        net.stop()
