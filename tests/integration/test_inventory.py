"""Inventory import/export: all or nothing, dry run, prune, secrets kept and never exported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from ecocloud_ops.auth.scope import Scope
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.network.inventory import InventoryInvalid, parse, to_csv, to_yaml
from ecocloud_ops.network.models import Device
from tests.conftest import TEST_ACTOR, audit_count

INVENTORY = """
all:
  vars:
    snmp_version: "2c"
    snmp_community: lab-community
  children:
    provinces:
      hosts:
        hb-core-01:
          ansible_host: 198.18.1.1
          site_code: "130000"
          platform: huawei
          uplink_interface: GigabitEthernet0/0/1
          ansible_user: ops
          ansible_password: Ssh-Secret-1
    cities:
      hosts:
        sjz-core-01:
          ansible_host: 198.18.2.1
          site_code: "130100"
          platform: hp_comware
          snmp_version: "3"
          snmp_user: v3user
          snmp_auth_protocol: SHA256
          snmp_auth_key: auth-key-123
          snmp_priv_protocol: AES256
          snmp_priv_key: priv-key-123
        ts-core-01:
          ansible_host: 198.18.3.1
          site_code: "130200"
    counties:
      children:
        hebei-counties:
          hosts:
            ca-sw-01: {ansible_host: 198.18.4.1, site_code: "130102", role: access, enabled: false}
"""


def load(container: Container, text: str, **kw: bool) -> dict:
    with container.unit_of_work() as svc:
        specs = parse(text, "yaml", svc.devices.hosts_with_stored_secret())
        plan = svc.devices.import_inventory(TEST_ACTOR, specs, **kw)
        if kw.get("dry_run"):
            svc.session.rollback()
        return plan.as_dict()


def devices(container: Container) -> dict[str, Device]:
    with container.unit_of_work() as svc:
        return {d.hostname: d for d in svc.session.execute(select(Device)).scalars()}


def test_import_creates_devices_with_encrypted_secrets(container: Container, small_tree: None) -> None:
    assert load(container, INVENTORY, dry_run=True)["created"] == ["hb-core-01", "sjz-core-01", "ts-core-01",
                                                                   "ca-sw-01"]
    assert devices(container) == {}, "a dry run writes nothing"
    plan = load(container, INVENTORY)
    assert len(plan["created"]) == 4
    ds = devices(container)
    hb, sjz = ds["hb-core-01"], ds["sjz-core-01"]
    assert hb.site.code == "130000" and hb.platform == "huawei" and hb.groups == ["provinces"]
    assert ds["ca-sw-01"].groups == ["hebei-counties"] and ds["ca-sw-01"].enabled is False
    assert sjz.snmp_version == "3" and sjz.snmp_auth_protocol == "SHA256"
    assert "lab-community" not in (hb.snmp_secret_enc or "") and "Ssh-Secret-1" not in (hb.ssh_password_enc or "")
    with container.unit_of_work() as svc:
        assert svc.devices.snmp_secret(hb) == {"community": "lab-community"}
        assert svc.devices.snmp_secret(sjz) == {"auth_key": "auth-key-123", "priv_key": "priv-key-123"}
        assert svc.devices.ssh_password(hb) == "Ssh-Secret-1"
        from ecocloud_ops.audit.models import AuditEntry

        entries = svc.session.execute(select(AuditEntry).where(AuditEntry.action == "device.create")).scalars()
        text = json.dumps([e.after for e in entries])
        assert "lab-community" not in text and "auth-key-123" not in text and "Ssh-Secret-1" not in text
    assert load(container, INVENTORY)["unchanged"] == 4, "the same file again changes nothing"
    assert load(container, INVENTORY.replace("lab-community", "new-community"))["updated"] == {
        h: ["secrets"] for h in ("hb-core-01", "ts-core-01", "ca-sw-01")}


def test_one_bad_row_writes_nothing_and_names_row_and_field(container: Container, small_tree: None) -> None:
    bad = INVENTORY.replace('site_code: "130200"', 'site_code: "13020"').replace(
        "snmp_auth_protocol: SHA256", "snmp_auth_protocol: MD5")
    entries = audit_count(container)
    with pytest.raises(InventoryInvalid) as exc:
        load(container, bad)
    fields = {(e.origin, e.field) for e in exc.value.errors}
    assert ("host ts-core-01", "site_code") in fields and ("host sjz-core-01", "snmp_auth_protocol") in fields
    with pytest.raises(InventoryInvalid, match="no active site 999999"):
        load(container, INVENTORY.replace('"130102"', '"999999"'))
    with pytest.raises(InventoryInvalid, match="not valid YAML"):
        load(container, "all:\n  hosts: [unclosed\n")
    with pytest.raises(InventoryInvalid, match="required for SNMP v2c"):
        load(container, "all:\n  hosts:\n    x1: {ansible_host: 198.18.9.9, site_code: '130000'}\n")
    assert devices(container) == {} and audit_count(container) == entries


def test_update_keeps_secrets_and_prune_retires(container: Container, small_tree: None) -> None:
    load(container, INVENTORY)
    changed = INVENTORY.replace("198.18.3.1", "198.18.3.9").replace("          ansible_password: Ssh-Secret-1\n", "")
    changed = changed.replace("""    vars:
    snmp_version: "2c"
    snmp_community: lab-community
""", """    vars:
    snmp_version: "2c"
""")
    without_county = changed.replace(
        '            ca-sw-01: {ansible_host: 198.18.4.1, site_code: "130102", role: access, enabled: false}\n', "")
    without_county = without_county.replace("""    counties:
      children:
        hebei-counties:
          hosts:
""", "")
    plan = load(container, without_county, prune=True)
    assert plan["updated"] == {"ts-core-01": ["address"]} and plan["retired"] == []  # 130102 not in the file
    plan = load(container, changed.replace('"130102"', '"130200"'), prune=True)
    assert plan["updated"] == {"ca-sw-01": ["site"]}
    ds = devices(container)
    with container.unit_of_work() as svc:
        assert svc.devices.snmp_secret(ds["ts-core-01"]) == {"community": "lab-community"}, "secret kept"
        assert svc.devices.ssh_password(ds["hb-core-01"]) == "Ssh-Secret-1"
    plan = load(container, without_county, prune=True)
    assert plan["retired"] == ["ca-sw-01"]
    ds = devices(container)
    assert ds["ca-sw-01"].retired_at is not None and ds["ca-sw-01"].enabled is False


def test_yaml_and_csv_round_trip_lose_nothing_but_secrets(container: Container, small_tree: None) -> None:
    load(container, INVENTORY)
    with container.unit_of_work() as svc:
        specs = svc.devices.export_specs(Scope.everything())
    exported = to_yaml(specs)
    assert "lab-community" not in exported and "auth-key" not in exported and "Ssh-Secret" not in exported
    data = yaml.safe_load(exported)
    assert data["all"]["children"]["cities"]["hosts"]["sjz-core-01"]["snmp_auth_protocol"] == "SHA256"
    with container.unit_of_work() as svc:
        again = parse(exported, "yaml", svc.devices.hosts_with_stored_secret())
        assert sorted((s.hostname, s.address, s.site_code, s.platform, s.role, s.uplink_interface, s.enabled,
                       tuple(s.groups), s.snmp_version, s.snmp_user) for s in again) == sorted(
            (s.hostname, s.address, s.site_code, s.platform, s.role, s.uplink_interface, s.enabled,
             tuple(s.groups), s.snmp_version, s.snmp_user) for s in specs)
        assert svc.devices.import_inventory(TEST_ACTOR, again).as_dict()["unchanged"] == 4
        csv_text = to_csv(specs)
        from_csv = parse(csv_text, "csv", svc.devices.hosts_with_stored_secret())
        assert {s.hostname: s.groups for s in from_csv} == {s.hostname: s.groups for s in specs}
        assert svc.devices.import_inventory(TEST_ACTOR, from_csv).as_dict()["unchanged"] == 4


def test_csv_errors_name_the_row(container: Container, small_tree: None) -> None:
    text = "hostname,ansible_host,site_code,snmp_community\nok-1,198.18.5.1,130000,c\nbad,,130000,c\n"
    with pytest.raises(InventoryInvalid) as exc:
        parse(text, "csv")
    assert [(e.origin, e.field) for e in exc.value.errors] == [("row 3", "ansible_host")]
    with pytest.raises(InventoryInvalid, match="unknown column"):
        parse("hostname,colour\nx,red\n", "csv")


def test_cli_import_dry_run_and_export(container: Container, small_tree: None, tmp_path: Path) -> None:
    from tests.integration.test_cli import run

    f = tmp_path / "inv.yml"
    f.write_text(INVENTORY)
    instance, url = container.settings.instance_dir, container.settings.effective_database_url
    p = run(instance, url, "inventory", "import", str(f), "--dry-run")
    assert "would create hb-core-01" in p.stdout and "nothing written" in p.stdout
    assert devices(container) == {}
    run(instance, url, "inventory", "import", str(f))
    out = run(instance, url, "inventory", "export", "--site", "130100").stdout
    assert "sjz-core-01" in out and "hb-core-01" not in out
    bad = tmp_path / "bad.yml"
    bad.write_text(INVENTORY.replace("198.18.1.1", "not an address!"))
    p = run(instance, url, "inventory", "import", str(bad), ok=False)
    assert p.returncode == 1 and "host hb-core-01: ansible_host" in p.stderr and len(p.stderr.splitlines()) == 1


def test_the_shipped_example_inventory_is_valid() -> None:
    from ecocloud_ops.sites.service import national_divisions

    text = (Path(__file__).resolve().parents[2] / "inventory" / "example.yml").read_text("utf-8")
    specs = parse(text, "yaml")
    codes = {d.code for d in national_divisions()}
    assert len(specs) == 8 and all(s.site_code in codes for s in specs)
    assert all(s.address.startswith("198.18.") for s in specs), "lab addresses only"
