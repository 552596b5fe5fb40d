"""The OpenStack lab (Keystone, Nova with the fake driver, Placement, Glance, Neutron, Cinder's API, RabbitMQ)
driven through openstacksdk the way the platform's cloud-tenant feature will: onboard a tenant, boot in a resource
pool, hit a quota, clean up, and read Placement's capacity. The lab is the session's (``oslab`` in conftest.py, shared
with the cloud adapter's contract tests); its teardown stops it and checks that no process or port of it is left."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import openstack
import openstack.connection
import pytest
from openstack import exceptions as os_exc
from openstack.config.loader import OpenStackConfig

from ecocloud_ops.lab.openstack import (
    DEFAULT_POOLS,
    FLAVORS,
    IMAGE_NAME,
    PUBLIC_NETWORK,
    REGION,
    OpenStackLab,
)

pytestmark = [
    pytest.mark.lab,
    # openstacksdk 4.2x warns about InfluxDB on every connection and about its own resource internals
    pytest.mark.filterwarnings("ignore::DeprecationWarning:openstack.*"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack.*"),
]

PLACEMENT_MICROVERSION = "1.39"


def _placement(admin: Any, path: str) -> dict[str, Any]:
    response = admin.placement.get(path, microversion=PLACEMENT_MICROVERSION)
    assert response.status_code == 200, (path, response.status_code, response.text)
    data: dict[str, Any] = response.json()
    return data


def _providers(admin: Any) -> dict[str, str]:
    """Resource provider name → uuid."""
    return {rp["name"]: rp["uuid"] for rp in _placement(admin, "/resource_providers")["resource_providers"]}


def test_catalog_and_initial_content(oslab: OpenStackLab, admin: Any, tmp_path: Path) -> None:
    assert set(oslab.endpoints) == {"identity", "compute", "placement", "image", "network", "block-storage"}
    assert all(url.startswith("http://127.0.0.1:") for url in oslab.endpoints.values())
    zones = {z.name for z in admin.compute.availability_zones() if z.state["available"]}
    assert {pool.zone for pool in DEFAULT_POOLS} <= zones
    hosts = {s.host: s.availability_zone for s in admin.compute.services(binary="nova-compute")}
    assert hosts == {pool.host: pool.zone for pool in DEFAULT_POOLS}
    assert {f.name for f in admin.compute.flavors()} >= {name for name, *_ in FLAVORS}
    image = admin.image.find_image(IMAGE_NAME, ignore_missing=False)
    assert (image.status, image.disk_format, image.container_format, image.visibility) == (
        "active", "raw", "bare", "public")
    public = admin.network.find_network(PUBLIC_NETWORK, ignore_missing=False)
    assert public.is_router_external and public.provider_network_type == "flat"
    # Cinder's API answers through the catalog, with the lab's own default volume quotas (cinder.conf)
    defaults = admin.block_storage.get_quota_set_defaults(admin.current_project_id)
    assert (defaults.volumes, defaults.gigabytes) == (2, 20)

    clouds = oslab.clouds_yaml(tmp_path / "clouds.yaml")
    assert clouds.stat().st_mode & 0o777 == 0o600
    config = OpenStackConfig(config_files=[str(clouds)], vendor_files=[], load_envvars=False)
    from_file: Any = openstack.connection.Connection(config=config.get_one(cloud="ecolab"))
    try:
        assert from_file.identity.find_project("admin", ignore_missing=False).name == "admin"
    finally:
        from_file.close()


def test_tenant_boot_quota_and_cleanup(oslab: OpenStackLab, admin: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    project = admin.identity.create_project(name=f"tenant-{suffix}", domain_id="default",
                                            description="cloud tenant test")
    password = f"Tenant-{suffix}-pw"
    user = admin.identity.create_user(name=f"tenant-user-{suffix}", password=password, domain_id="default",
                                      default_project_id=project.id)
    member = admin.identity.find_role("member", ignore_missing=False)
    admin.identity.assign_project_role_to_user(project, user, member)
    admin.compute.update_quota_set(project, cores=4, ram=4096, instances=4)

    tenant = openstack.connect(
        load_yaml_config=False, load_envvars=False, region_name=REGION, identity_interface="public",
        auth={"auth_url": oslab.auth_url, "username": user.name, "password": password, "project_id": project.id,
              "user_domain_name": "Default", "project_domain_name": "Default"})
    try:
        assert tenant.current_project_id == project.id
        quota = tenant.compute.get_quota_set(project.id)
        assert (quota.cores, quota.ram, quota.instances) == (4, 4096, 4)

        network = tenant.network.create_network(name="tenant-net")
        subnet = tenant.network.create_subnet(network_id=network.id, name="tenant-subnet", ip_version=4,
                                              cidr="192.0.2.0/24")
        public = tenant.network.find_network(PUBLIC_NETWORK, ignore_missing=False)
        router = tenant.network.create_router(name="tenant-router",
                                              external_gateway_info={"network_id": public.id})
        tenant.network.add_interface_to_router(router, subnet=subnet.id)
        assert router.external_gateway_info["network_id"] == public.id

        image = tenant.image.find_image(IMAGE_NAME, ignore_missing=False)
        tiny = tenant.compute.find_flavor("m1.tiny", ignore_missing=False)
        t0 = time.monotonic()
        server = tenant.compute.create_server(name="egov-vm-1", flavor_id=tiny.id, image_id=image.id,
                                              networks=[{"uuid": network.id}], availability_zone="az-egov")
        server = tenant.compute.wait_for_server(server, status="ACTIVE", interval=0.2, wait=120)
        print(f"\n[oslab] boot to ACTIVE in {time.monotonic() - t0:.1f} s")
        assert server.availability_zone == "az-egov"
        address = server.addresses["tenant-net"][0]["addr"]
        assert address.startswith("192.0.2.")
        assert admin.compute.get_server(server.id).compute_host == "compute-egov"
        ports = list(tenant.network.ports(device_id=server.id))
        assert [p.status for p in ports] == ["ACTIVE"]
        assert ports[0].fixed_ips[0]["ip_address"] == address

        egov = _providers(admin)["compute-egov"]
        usages = _placement(admin, f"/resource_providers/{egov}/usages")["usages"]
        assert usages["VCPU"] >= 1 and usages["MEMORY_MB"] >= 512

        medium = tenant.compute.find_flavor("m1.medium", ignore_missing=False)
        with pytest.raises(os_exc.HttpException) as refused:
            tenant.compute.create_server(name="too-big", flavor_id=medium.id, image_id=image.id,
                                         networks=[{"uuid": network.id}], availability_zone="az-egov")
        assert refused.value.status_code == 403, refused.value
        assert "quota" in str(refused.value).lower()

        t1 = time.monotonic()
        tenant.compute.delete_server(server)
        tenant.compute.wait_for_delete(server, interval=0.2, wait=120)
        deadline = time.monotonic() + 30
        while list(tenant.network.ports(device_id=server.id)):
            assert time.monotonic() < deadline, "the server's port outlived the server"
            time.sleep(0.2)
        print(f"[oslab] delete with port clean-up in {time.monotonic() - t1:.1f} s")

        tenant.network.remove_interface_from_router(router, subnet=subnet.id)
        tenant.network.delete_router(router)
        tenant.network.delete_network(network)
    finally:
        tenant.close()


def test_placement_inventories_and_usages(admin: Any) -> None:
    providers = _providers(admin)
    assert set(providers) == {pool.host for pool in DEFAULT_POOLS}
    for pool in DEFAULT_POOLS:
        inventories = _placement(admin, f"/resource_providers/{providers[pool.host]}/inventories")["inventories"]
        assert inventories["VCPU"]["total"] == pool.vcpus
        assert inventories["MEMORY_MB"]["total"] == pool.memory_mb
        assert inventories["DISK_GB"]["total"] == pool.disk_gb
        usages = _placement(admin, f"/resource_providers/{providers[pool.host]}/usages")["usages"]
        assert set(usages) >= {"VCPU", "MEMORY_MB", "DISK_GB"}
        assert all(value >= 0 for value in usages.values())
