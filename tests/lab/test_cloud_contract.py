"""The cloud adapter contract: every test runs against the real adapter on the OpenStack lab ("openstack", pool
``az-egov``) and against the in-memory FakeCloud ("fake") the console's tests use. The real adapter's error
translation (refused credentials, an endpoint that does not answer, a 500, a missing cloud) is checked against real
sockets. Names are unique per test (uuid): reruns on a live lab do not clash."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecocloud_ops.cloud.adapter import (
    META_REQUEST,
    Capacity,
    CloudAdapter,
    CloudAuthError,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    CloudUnreachable,
    PoolInfo,
    ProjectRef,
    Quotas,
    Server,
    ServerRequest,
)
from ecocloud_ops.cloud.fake import FakeCloud, fake_factory
from ecocloud_ops.cloud.openstack_adapter import OpenStackAdapter
from ecocloud_ops.lab.openstack import CLOUD_NAME, DEFAULT_POOLS, FILES, PUBLIC_NETWORK, REGION

pytestmark = [
    pytest.mark.lab,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:openstack.*"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack.*"),
]

LAB_POOL = next(p for p in DEFAULT_POOLS if p.zone == "az-egov")
POOL = PoolInfo(name="egov", zone="电子政务外网区", cloud=CLOUD_NAME, region=REGION,
                availability_zone=LAB_POOL.zone)
RULES = [{"protocol": "tcp", "port_min": 22, "port_max": 22, "remote_ip_prefix": "0.0.0.0/0"},
         {"protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"}]
#: the lab's nova.conf must allow a resize on the same host: each availability zone has one host
RESIZE_CONFIG = "allow_resize_to_same_host = true"


@dataclass
class Env:
    """One adapter under test and what the tests need beside it (the lab's admin connection for the real one)."""

    kind: str
    adapter: CloudAdapter
    admin: Any = None
    users: list[str] = field(default_factory=list)

    def make_user(self, name: str) -> None:
        if self.kind == "fake":
            assert isinstance(self.adapter, FakeCloud)
            self.adapter.add_user(name)
        else:
            self.admin.identity.create_user(name=name, password=uuid.uuid4().hex, domain_id="default")
            self.users.append(name)

    def expected_capacity(self) -> tuple[int, int, int]:
        """vCPUs, RAM (MB), disk (GB) of the pool after Placement's reserved amounts and allocation ratios; for the
        lab, its inventories must be the ComputePool's figures."""
        if self.kind == "fake":
            return LAB_POOL.vcpus, LAB_POOL.memory_mb, LAB_POOL.disk_gb
        providers = self.admin.placement.get("/resource_providers", microversion="1.39").json()
        rp = next(p["uuid"] for p in providers["resource_providers"] if p["name"] == LAB_POOL.host)
        inv = self.admin.placement.get(f"/resource_providers/{rp}/inventories",
                                       microversion="1.39").json()["inventories"]
        assert (inv["VCPU"]["total"], inv["MEMORY_MB"]["total"], inv["DISK_GB"]["total"]) == (
            LAB_POOL.vcpus, LAB_POOL.memory_mb, LAB_POOL.disk_gb)
        return tuple(int((inv[rc]["total"] - inv[rc]["reserved"]) * inv[rc]["allocation_ratio"])  # type: ignore
                     for rc in ("VCPU", "MEMORY_MB", "DISK_GB"))


@pytest.fixture(scope="module", params=["openstack", "fake"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if request.param == "fake":
        lab_capacity = Capacity(vcpus_total=LAB_POOL.vcpus, vcpus_used=0, ram_mb_total=LAB_POOL.memory_mb,
                                ram_mb_used=0, disk_gb_total=LAB_POOL.disk_gb, disk_gb_used=0, providers=1)
        # the lab has a block-storage service (cinder's API): the fake gets one too, for the same expectations
        factory = fake_factory(capacity=lab_capacity, build_seconds=0.3, volume_service=True)
        adapter: Any = factory(POOL, None)
        assert factory(POOL, None) is adapter  # one state per pool name
        yield Env("fake", adapter)
        return
    clouds_yaml = request.getfixturevalue("oslab_clouds_yaml")
    admin = request.getfixturevalue("admin")
    real = OpenStackAdapter(POOL, clouds_yaml)
    e = Env("openstack", real, admin)
    try:
        yield e
    finally:
        for name in e.users:
            user = admin.identity.find_user(name, domain_id="default")
            if user is not None:
                admin.identity.delete_user(user)
        real.close()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _offboard(adapter: CloudAdapter, project_id: str, networks: list[str]) -> None:
    for server in adapter.servers(project_id):
        adapter.server_action(project_id, server.id, "delete")
    _wait(lambda: not adapter.servers(project_id), "the project's servers to be gone")
    for name in networks:
        adapter.delete_network(project_id, name)
    adapter.delete_security_groups(project_id)
    adapter.remove_role_assignments(project_id)
    adapter.delete_project(project_id)


@pytest.fixture
def project(env: Env) -> Iterator[ProjectRef]:
    """A fresh tenant project with the network ``net``; offboarded afterwards (whatever the test left)."""
    ref = env.adapter.ensure_project(_name("ct"), "contract test")
    try:
        yield ref
    finally:
        _offboard(env.adapter, ref.id, ["net"])


def _wait(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    end = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def _settled(adapter: CloudAdapter, project_id: str, server_id: str, status: str) -> Server:
    def check() -> Server | None:
        server = adapter.get_server(project_id, server_id)
        assert server is not None, "the server vanished"
        assert server.status != "ERROR", server.fault
        return server if server.status == status and not server.task_state else None

    result: Server = _wait(check, f"server {server_id} to be {status}")
    return result


def _boot(env: Env, project_id: str, network_id: str, flavor: str = "m1.tiny",
          metadata: dict[str, str] | None = None) -> Server:
    flavors = {f.name: f for f in env.adapter.flavors()}
    image = next(i for i in env.adapter.images() if i.name == "cirros-fake")
    return env.adapter.create_server(project_id, ServerRequest(
        name=_name("vm"), flavor_id=flavors[flavor].id, image_id=image.id, network_id=network_id,
        metadata=metadata or {}, user_data="#cloud-config\nhostname: contract\n"))


# ------------------------------------------------------------------ projects, roles, quotas


def test_project_is_idempotent(env: Env) -> None:
    name = _name("ct")
    first = env.adapter.ensure_project(name, "contract test")
    try:
        again = env.adapter.ensure_project(name, "contract test")
        assert again == first and first.name == name and first.enabled
        assert env.adapter.find_project(name) == first
        assert first.id in {p.id for p in env.adapter.projects()}
        assert env.adapter.find_project(_name("absent")) is None
    finally:
        _offboard(env.adapter, first.id, [])


def test_role_assignments(env: Env, project: ProjectRef) -> None:
    user = _name("ct-user")
    env.make_user(user)
    ids = env.adapter.ensure_role_assignments(project.id, [user])
    assert len(ids) == 1
    assert env.adapter.ensure_role_assignments(project.id, [user]) == ids
    assert env.adapter.role_assignments(project.id)[user] == ["member"]
    missing = _name("nobody")
    with pytest.raises(CloudNotFound, match=missing):
        env.adapter.ensure_role_assignments(project.id, [user, missing])
    env.adapter.remove_role_assignments(project.id)
    assert user not in env.adapter.role_assignments(project.id)


def test_quotas_set_and_read_back(env: Env, project: ProjectRef) -> None:
    wanted = Quotas(cores=3, ram_mb=3072, instances=2, networks=4, subnets=4, ports=20, routers=2, floating_ips=0,
                    security_groups=5, volumes=5, gigabytes=50)
    result = env.adapter.set_quotas(project.id, wanted)
    assert result.as_dict() == wanted.as_dict()  # the volume quotas too: the lab and the fake have a volume service
    if env.kind == "openstack":  # what Cinder itself holds for the project
        volume = env.admin.block_storage.get_quota_set(project.id)
        assert (volume.volumes, volume.gigabytes) == (5, 50)
    assert env.adapter.set_quotas(project.id, Quotas(cores=4)).as_dict() == {**result.as_dict(), "cores": 4}
    assert env.adapter.set_quotas(project.id, Quotas(gigabytes=60)).as_dict() == {
        **result.as_dict(), "cores": 4, "gigabytes": 60}
    env.adapter.ensure_network(project.id, "net", "10.31.0.0/24")
    usage = env.adapter.quota_usage(project.id)
    assert (usage["cores"].limit, usage["cores"].in_use, usage["cores"].available) == (4, 0, 4)
    assert (usage["ram_mb"].limit, usage["instances"].limit) == (3072, 2)
    assert (usage["networks"].limit, usage["networks"].in_use) == (4, 1)
    assert (usage["routers"].limit, usage["routers"].in_use) == (2, 1)
    assert (usage["volumes"].limit, usage["volumes"].in_use, usage["gigabytes"].limit) == (5, 0, 60)


# ------------------------------------------------------------------ networks


def test_network_is_idempotent_and_visible(env: Env, project: ProjectRef) -> None:
    first = env.adapter.ensure_network(project.id, "net", "10.32.0.0/24")
    assert first.router_id is not None  # the pool allows routers
    assert env.adapter.ensure_network(project.id, "net", "10.32.0.0/24") == first
    [listed] = env.adapter.networks(project.id)
    assert (listed["id"], listed["name"]) == (first.network_id, "net")
    assert [(s["id"], s["name"], s["cidr"]) for s in listed["subnets"]] == [
        (first.subnet_id, "net-subnet", "10.32.0.0/24")]
    if env.kind == "openstack":
        router = env.admin.network.get_router(first.router_id)
        public = env.admin.network.find_network(PUBLIC_NETWORK, ignore_missing=False)
        assert (router.name, router.project_id) == ("net-router", project.id)
        assert router.external_gateway_info["network_id"] == public.id
        interfaces = list(env.admin.network.ports(device_id=first.router_id,
                                                  device_owner="network:router_interface"))
        assert [ip["subnet_id"] for p in interfaces for ip in p.fixed_ips] == [first.subnet_id]


def test_default_security_rules_added_once(env: Env, project: ProjectRef) -> None:
    assert env.adapter.ensure_default_security_rules(project.id, RULES) == 2
    assert env.adapter.ensure_default_security_rules(project.id, RULES) == 0
    if env.kind == "openstack":
        [group] = [g for g in env.admin.network.security_groups() if g.project_id == project.id]
        rules = {(r["protocol"], r["port_range_min"], r["remote_ip_prefix"]) for r in group.security_group_rules
                 if r["direction"] == "ingress" and r["ethertype"] == "IPv4"}
        assert {("tcp", 22, "0.0.0.0/0"), ("icmp", None, "0.0.0.0/0")} <= rules


# ------------------------------------------------------------------ servers


def test_server_lifecycle(env: Env, project: ProjectRef) -> None:
    setup = env.adapter.ensure_network(project.id, "net", "10.33.0.0/24")
    metadata = {META_REQUEST: "42", "purpose": "contract"}
    created = _boot(env, project.id, setup.network_id, metadata=metadata)
    assert created.status in ("BUILD", "ACTIVE") and created.project_id == project.id
    server = _settled(env.adapter, project.id, created.id, "ACTIVE")
    assert server.metadata == metadata
    assert server.availability_zone == LAB_POOL.zone
    address = server.first_ipv4
    assert address is not None and ipaddress.ip_address(address) in ipaddress.ip_network("10.33.0.0/24")
    assert server.addresses == {"net": [address]}
    assert server.host and server.flavor_name == "m1.tiny"
    [listed] = env.adapter.servers(project.id)
    assert (listed.id, listed.metadata, listed.status) == (server.id, metadata, "ACTIVE")
    assert server.id in {s.id for s in env.adapter.servers(None)}
    assert all(s.availability_zone == LAB_POOL.zone for s in env.adapter.servers(None))

    env.adapter.server_action(project.id, server.id, "stop")
    _settled(env.adapter, project.id, server.id, "SHUTOFF")
    env.adapter.server_action(project.id, server.id, "start")
    _settled(env.adapter, project.id, server.id, "ACTIVE")
    env.adapter.server_action(project.id, server.id, "reboot")
    _settled(env.adapter, project.id, server.id, "ACTIVE")

    env.adapter.server_action(project.id, server.id, "delete")
    _wait(lambda: env.adapter.get_server(project.id, server.id) is None, "the server to be gone")
    assert env.adapter.servers(project.id) == []
    env.adapter.server_action(project.id, server.id, "delete")  # gone already: nothing to do
    with pytest.raises(CloudNotFound):
        env.adapter.server_action(project.id, server.id, "start")


def test_resize_and_confirm(env: Env, project: ProjectRef) -> None:
    if env.kind == "openstack" and RESIZE_CONFIG not in (FILES / "nova.conf").read_text():
        pytest.skip(f"the lab's nova.conf lacks '{RESIZE_CONFIG}' ([DEFAULT]): with one compute host per "
                    "availability zone a resize finds no host (the fake driver resizes once that is set)")
    setup = env.adapter.ensure_network(project.id, "net", "10.34.0.0/24")
    server = _settled(env.adapter, project.id, _boot(env, project.id, setup.network_id).id, "ACTIVE")
    small = next(f for f in env.adapter.flavors() if f.name == "m1.small")
    env.adapter.server_action(project.id, server.id, "resize", flavor_id=small.id)
    resized = _settled(env.adapter, project.id, server.id, "VERIFY_RESIZE")
    assert resized.flavor_name == "m1.small"
    env.adapter.server_action(project.id, server.id, "confirm_resize")
    confirmed = _settled(env.adapter, project.id, server.id, "ACTIVE")
    assert confirmed.flavor_name == "m1.small"


def test_oversized_server_refused_for_quota(env: Env, project: ProjectRef) -> None:
    env.adapter.set_quotas(project.id, Quotas(cores=2, ram_mb=4096, instances=4))
    setup = env.adapter.ensure_network(project.id, "net", "10.35.0.0/24")
    _settled(env.adapter, project.id, _boot(env, project.id, setup.network_id).id, "ACTIVE")
    with pytest.raises(CloudQuotaExceeded) as refused:
        _boot(env, project.id, setup.network_id, flavor="m1.medium")
    assert "Quota exceeded for cores" in refused.value.detail  # Nova's own words
    assert refused.value.detail in str(refused.value)
    assert len(env.adapter.servers(project.id)) == 1


def test_capacity_follows_servers(env: Env, project: ProjectRef) -> None:
    before = env.adapter.capacity()
    assert before.providers == 1
    assert (before.vcpus_total, before.ram_mb_total, before.disk_gb_total) == env.expected_capacity()
    setup = env.adapter.ensure_network(project.id, "net", "10.36.0.0/24")
    medium = next(f for f in env.adapter.flavors() if f.name == "m1.medium")
    server = _settled(env.adapter, project.id, _boot(env, project.id, setup.network_id, "m1.medium").id, "ACTIVE")
    during = env.adapter.capacity()
    assert during.vcpus_used - before.vcpus_used == medium.vcpus
    assert during.ram_mb_used - before.ram_mb_used == medium.ram_mb
    env.adapter.server_action(project.id, server.id, "delete")
    _wait(lambda: env.adapter.capacity().vcpus_used == before.vcpus_used, "the allocation to be released")


# ------------------------------------------------------------------ offboarding


def test_offboarding_leaves_nothing(env: Env) -> None:
    adapter = env.adapter
    project = adapter.ensure_project(_name("ct-off"), "offboarding")
    user = _name("ct-user")
    env.make_user(user)
    adapter.ensure_role_assignments(project.id, [user])
    setup = adapter.ensure_network(project.id, "net", "10.37.0.0/24")
    adapter.ensure_default_security_rules(project.id, RULES)
    server = _settled(adapter, project.id, _boot(env, project.id, setup.network_id).id, "ACTIVE")
    adapter.server_action(project.id, server.id, "delete")
    _wait(lambda: adapter.get_server(project.id, server.id) is None, "the server to be gone")

    for _ in range(2):  # each step is idempotent: a second offboarding finds nothing to do
        adapter.delete_network(project.id, "net")
        adapter.delete_security_groups(project.id)
        adapter.remove_role_assignments(project.id)
        adapter.delete_project(project.id)

    assert adapter.find_project(project.name) is None
    assert adapter.servers(project.id) == []
    if env.kind == "fake":
        assert isinstance(adapter, FakeCloud)
        assert adapter.networks(project.id) == [] and adapter.role_assignments(project.id) == {}
        assert project.id not in adapter._groups
        return
    admin = env.admin
    assert admin.identity.find_project(project.id) is None
    assert list(admin.identity.role_assignments(scope_project_id=project.id)) == []
    # listed unfiltered: neutron would make a new default group for a project it is asked about
    assert [g.id for g in admin.network.security_groups() if g.project_id == project.id] == []
    for kind in ("networks", "subnets", "routers", "ports"):
        assert [r.id for r in getattr(admin.network, kind)() if r.project_id == project.id] == [], kind
    assert list(admin.compute.servers(all_projects=True, project_id=project.id)) == []


# ------------------------------------------------------------------ the real adapter's errors


def _variant(clouds_yaml: Path, tmp_path: Path, **auth: str) -> Path:
    data = yaml.safe_load(clouds_yaml.read_text())
    data["clouds"][CLOUD_NAME]["auth"].update(auth)
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return path


def test_wrong_password_is_an_auth_error(oslab_clouds_yaml: Path, tmp_path: Path) -> None:
    adapter = OpenStackAdapter(POOL, _variant(oslab_clouds_yaml, tmp_path, password="not-the-password"))
    with pytest.raises(CloudAuthError, match=f"credentials of cloud '{CLOUD_NAME}' were refused") as refused:
        adapter.check()
    assert refused.value.http_status == 401
    with pytest.raises(CloudAuthError):
        adapter.flavors()
    adapter.close()


def test_closed_port_is_unreachable_quickly(oslab_clouds_yaml: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/v3"
    adapter = OpenStackAdapter(POOL, _variant(oslab_clouds_yaml, tmp_path, auth_url=url))
    t0 = time.monotonic()
    with pytest.raises(CloudUnreachable, match=f"127.0.0.1:{port}"):
        adapter.check()
    assert time.monotonic() - t0 < 15
    adapter.close()


class _Answer500(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b'{"error": {"code": 500, "message": "the lab server always fails"}}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("path", ["/v3", ""])
def test_server_error_is_a_cloud_error(oslab_clouds_yaml: Path, tmp_path: Path, path: str) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{path}"
        adapter = OpenStackAdapter(POOL, _variant(oslab_clouds_yaml, tmp_path, auth_url=url))
        with pytest.raises(CloudError, match="500") as failed:
            adapter.check()
        assert not isinstance(failed.value, (CloudAuthError, CloudUnreachable))
        assert failed.value.http_status == 500
        assert "identity" in str(failed.value)
        adapter.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_missing_cloud_is_an_auth_error(oslab_clouds_yaml: Path, tmp_path: Path) -> None:
    other = PoolInfo(name="other", zone="z", cloud="no-such-cloud", region=REGION)
    with pytest.raises(CloudAuthError, match=f"'no-such-cloud'.*{oslab_clouds_yaml}"):
        OpenStackAdapter(other, oslab_clouds_yaml).check()
    with pytest.raises(CloudAuthError, match="does not exist"):
        OpenStackAdapter(POOL, tmp_path / "absent.yaml").check()


def test_check_lists_the_endpoints(oslab_clouds_yaml: Path) -> None:
    adapter = OpenStackAdapter(POOL, oslab_clouds_yaml)
    info = adapter.check()
    assert info["project"] == "admin"
    assert {"identity", "compute", "network", "image", "placement", "block-storage"} <= set(info["endpoints"])
    adapter.close()


# ------------------------------------------------------------------ the fake's own hooks


def test_fake_fail_next_raises_once() -> None:
    cloud = FakeCloud(POOL)
    cloud.fail_next("flavors", CloudUnreachable("cloud 'ecolab' does not answer"))
    with pytest.raises(CloudUnreachable):
        cloud.flavors()
    assert [f.name for f in cloud.flavors()] == ["m1.tiny", "m1.small", "m1.medium"]
    with pytest.raises(ValueError):
        cloud.fail_next("no_such_method", RuntimeError())


def test_fake_pool_without_room_gives_an_error_server() -> None:
    cloud = FakeCloud(POOL, capacity=Capacity(1, 0, 1024, 0, 10, 0, 1))
    project = cloud.ensure_project("full", "")
    setup = cloud.ensure_network(project.id, "net", "10.40.0.0/24")
    flavors = {f.name: f for f in cloud.flavors()}
    server = cloud.create_server(project.id, ServerRequest("big", flavors["m1.medium"].id, cloud.images()[0].id,
                                                           setup.network_id, {}))
    assert server.status == "ERROR" and server.fault and "No valid host" in server.fault
    assert cloud.capacity().vcpus_used == 0
