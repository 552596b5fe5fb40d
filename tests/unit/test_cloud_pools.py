"""Pools are configuration: validated with clear messages; a clouds.yaml other users can read is refused at
start-up (server and worker); the demo's settings file round-trips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecocloud_ops.bootstrap import Container
from ecocloud_ops.cloud.pools import check_clouds_yaml, parse_pools
from ecocloud_ops.cloud.service import vm_names
from ecocloud_ops.config import load_settings
from ecocloud_ops.errors import ConfigError, ValidationFailed
from ecocloud_ops.lab.cloud_demo import POOLS, _write_config

GOOD = {"name": "egov", "zone": "电子政务外网区", "cloud": "ecolab", "region": "RegionOne"}


def test_pools_parse_and_refuse_with_the_field_named() -> None:
    pools = parse_pools(POOLS)
    assert [(p.name, p.availability_zone, p.routers) for p in pools] == [
        ("internet", "az-internet", True), ("egov", "az-egov", True), ("business", "az-business", False)]
    cases = [
        ([{**GOOD, "region": ""}], "cloud_pools[0]: region is required"),
        ([{**GOOD, "name": "Egov Pool"}], "must be lower-case"),
        ([{**GOOD, "colour": "red"}], "unknown field(s) colour"),
        ([GOOD, {**GOOD, "cloud": "other"}], "names must be unique"),
        ([GOOD, {**GOOD, "name": "egov2"}], "same cloud, region and availability zone"),
        ([{**GOOD, "routers": "yes"}], "routers must be true or false"),
        (["egov"], "must be a table"),
    ]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_pools(raw)


def test_pools_from_the_environment_as_json() -> None:
    s = load_settings(environ={"ECOCLOUD_CLOUD_POOLS": '[{"name": "egov", "zone": "z", "cloud": "c", "region": "r"}]'})
    assert s.cloud_pools[0]["name"] == "egov"
    with pytest.raises(ConfigError, match="cloud_pools.*not valid JSON"):
        load_settings(environ={"ECOCLOUD_CLOUD_POOLS": "[{name: egov}"})


def test_clouds_yaml_readable_by_others_is_refused_everywhere(tmp_path: Path) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds: {ecolab: {auth: {password: secret}}}\n")
    clouds.chmod(0o644)
    settings = load_settings(environ={}, instance_dir=tmp_path / "instance", cloud_pools=[GOOD], clouds_yaml=clouds)
    with pytest.raises(ConfigError, match=r"readable by other users \(mode 0644\).*chmod 600"):
        check_clouds_yaml(settings)
    container = Container(settings)
    from ecocloud_ops.web import create_app

    with pytest.raises(ConfigError, match="readable by other users"):
        create_app(container=container)
    from ecocloud_ops.jobs.runner import Worker

    with pytest.raises(ConfigError, match="readable by other users"):
        Worker(container).start()
    clouds.chmod(0o640)  # group-readable is "other users" too
    with pytest.raises(ConfigError, match="mode 0640"):
        check_clouds_yaml(settings)
    clouds.chmod(0o600)
    assert check_clouds_yaml(settings) == clouds
    missing = load_settings(environ={}, cloud_pools=[GOOD], clouds_yaml=tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="cannot be read"):
        check_clouds_yaml(missing)
    # no pools: nothing to check (the platform runs without a cloud)
    assert check_clouds_yaml(load_settings(environ={}, clouds_yaml=tmp_path / "nope.yaml")) is None


def test_vm_name_patterns() -> None:
    assert vm_names("web-{n:02}", 3) == ["web-01", "web-02", "web-03"]
    assert vm_names("db", 1) == ["db"]
    assert vm_names("db", 2) == ["db-1", "db-2"]
    for bad in ("-x", "web_{n}", "{n}", "web-{m}", "a" * 60):
        with pytest.raises(ValidationFailed, match="name"):
            vm_names(bad, 2)


def test_demo_settings_file_round_trips(tmp_path: Path) -> None:
    s = load_settings(environ={}, instance_dir=tmp_path, cloud_pools=POOLS, clouds_yaml=tmp_path / "c.yaml",
                      cloud_guest_vars={"baseline_root": "/x/{{ inventory_hostname }}", "n": 2})
    path = _write_config(tmp_path / "demo.toml", s.model_dump(include={
        "instance_dir", "cloud_pools", "clouds_yaml", "cloud_guest_vars", "cloud_ssh_wait_seconds"}))
    again = load_settings(config_file=path, environ={})
    assert (again.cloud_pools, again.clouds_yaml, again.cloud_guest_vars) == (
        s.cloud_pools, s.clouds_yaml, s.cloud_guest_vars)
