"""SSH checks and configuration backups through the platform, against real sshd in namespaces."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ecocloud_ops.bootstrap import Container
from ecocloud_ops.lab.netlab import LabSite, NetLab
from ecocloud_ops.network.inventory import DeviceSpec
from ecocloud_ops.network.models import ConfigBackup, Device
from ecocloud_ops.network.ssh_checks import backup_configs, run_checks
from ecocloud_ops.sites.service import build_divisions
from tests.conftest import TEST_ACTOR

pytestmark = pytest.mark.lab
SITES = {"000000": None, "130000": "000000", "130100": "130000"}


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    NetLab.cleanup_stale("ecobk")
    net = NetLab([LabSite(c, p) for c, p in SITES.items()], name="ecobk", snmp=False, network="auto")
    net.start()
    try:
        yield net
    finally:
        net.stop()


def devices(container: Container, lab: NetLab, password: str | None = None) -> None:
    with container.unit_of_work() as svc:
        svc.sites.sync(TEST_ACTOR, build_divisions({"130000": "河北省", "130100": "石家庄市"}))
        svc.devices.import_inventory(TEST_ACTOR, [
            DeviceSpec(hostname=f"bk-{code}", address=lab.address(code), site_code=code, platform="linux",
                       snmp_community="c", ssh_user=lab.ssh_user, ssh_password=password or lab.ssh_password)
            for code in ("130000", "130100")])


def test_checks_pin_the_host_key_and_backups_keep_versions(container: Container, lab: NetLab) -> None:
    devices(container, lab)
    summary = run_checks(container, TEST_ACTOR)
    assert summary.ok == 2, summary.failed
    with container.unit_of_work() as svc:
        d = svc.session.execute(select(Device).where(Device.hostname == "bk-130100")).scalar_one()
        assert d.ssh_host_key and d.ssh_host_key.startswith("ssh-ed25519 ")
        assert "uname -a" in (d.ssh_outputs or {}) and "Linux" in d.ssh_outputs["uname -a"]
    first = backup_configs(container, TEST_ACTOR)
    assert first.new_versions == 2, first.failed
    again = backup_configs(container, TEST_ACTOR)
    assert again.new_versions == 0 and again.unchanged == 2, "an unchanged config is no new version"
    extra = "198.18.254.77/32"
    subprocess.run(["ip", "-n", lab.namespace("130100"), "addr", "add", extra, "dev", "lo"], check=True)
    try:
        changed = backup_configs(container, TEST_ACTOR, ["bk-130100"])
    finally:
        subprocess.run(["ip", "-n", lab.namespace("130100"), "addr", "del", extra, "dev", "lo"], check=False)
    assert changed.new_versions == 1
    with container.unit_of_work() as svc:
        d = svc.session.execute(select(Device).where(Device.hostname == "bk-130100")).scalar_one()
        rows = list(svc.session.execute(select(ConfigBackup).where(ConfigBackup.device_id == d.id)
                                        .order_by(ConfigBackup.taken_at)).scalars())
        assert len(rows) == 2 and rows[0].sha256 != rows[1].sha256
        assert "198.18.254.77" not in rows[1].content_enc, "stored encrypted"
        assert "198.18.254.77" in container.box.decrypt(rows[1].content_enc)
        from ecocloud_ops.adapters.ssh import config_diff

        diff = config_diff(container.box.decrypt(rows[0].content_enc), container.box.decrypt(rows[1].content_enc))
        assert "+" in diff and "198.18.254.77" in diff


def test_changed_host_key_and_bad_password_are_refused(container: Container, lab: NetLab) -> None:
    devices(container, lab)
    assert run_checks(container, TEST_ACTOR).ok == 2
    lab.rotate_host_key("130100")
    summary = backup_configs(container, TEST_ACTOR)
    assert set(summary.failed) == {"bk-130100"} and "host_key_changed" in summary.failed["bk-130100"]
    with container.unit_of_work() as svc:
        d = svc.session.execute(select(Device).where(Device.hostname == "bk-130100")).scalar_one()
        assert "host_key_changed" in (d.ssh_error or "")
        assert not list(svc.session.execute(select(ConfigBackup).where(ConfigBackup.device_id == d.id)).scalars())
    devices(container, lab, password="Wrong-Password-1")
    summary = run_checks(container, TEST_ACTOR, ["bk-130000"])
    assert "auth_failure" in summary.failed.get("bk-130000", ""), summary.failed
