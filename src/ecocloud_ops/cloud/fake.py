"""An in-memory cloud adapter for the console's tests only: it keeps the :class:`~.adapter.CloudAdapter` contract the
real adapter keeps (``tests/lab/test_cloud_contract.py`` runs the same tests against both), nothing more.

It behaves like the OpenStack lab: ``ensure_*`` find what they made, quotas are enforced with Nova's own words
(:class:`~.adapter.CloudQuotaExceeded`), servers go BUILD → ACTIVE after ``build_seconds`` with an address from
their subnet, stop → SHUTOFF, resize → VERIFY_RESIZE, the pool's capacity grows with its servers, an unknown user
is :class:`~.adapter.CloudNotFound`. :meth:`FakeCloud.fail_next` makes the next call of a method raise once.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .adapter import (
    Capacity,
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    Flavor,
    Image,
    NetworkSetup,
    PoolInfo,
    ProjectRef,
    Quotas,
    QuotaUsage,
    Server,
    ServerRequest,
)

OWN_USER = "admin"
OWN_ROLE = "admin"
ROLES = ("admin", "member", "reader", "manager")
#: name, vCPUs, RAM (MB), root disk (GB): the OpenStack lab's flavors
DEFAULT_FLAVORS: tuple[tuple[str, int, int, int], ...] = (
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
)
DEFAULT_IMAGES = ("cirros-fake",)
#: the lab's az-internet pool
DEFAULT_CAPACITY = Capacity(vcpus_total=32, vcpus_used=0, ram_mb_total=131072, ram_mb_used=0, disk_gb_total=2000,
                            disk_gb_used=0, providers=1)
#: Nova's and Neutron's default quotas
DEFAULT_QUOTAS = Quotas(cores=20, ram_mb=51200, instances=10, networks=100, subnets=100, ports=500, routers=10,
                        floating_ips=50, security_groups=10)
_NS = uuid.UUID("0b8f1f2e-8c55-4c3e-9a57-3f0d1c0e4a11")


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


@dataclass
class _Network:
    id: str
    name: str
    project_id: str
    subnet_id: str
    cidr: str
    router_id: str | None
    next_host: int = 2  # .1 is the gateway (the router's interface)


@dataclass
class _Server:
    id: str
    name: str
    project_id: str
    flavor: Flavor
    image_id: str
    network: str
    address: str
    metadata: dict[str, str]
    ready_at: float
    created_at: str
    state: str = "ACTIVE"  # what it is once built: ACTIVE, SHUTOFF, VERIFY_RESIZE, ERROR
    old_flavor: Flavor | None = None
    fault: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FakeCloud:
    """One pool in memory. Thread-safe (one lock). See the module doc."""

    def __init__(self, pool: PoolInfo, *, users: Iterable[str] = ("alice", "bob"),
                 flavors: Iterable[tuple[str, int, int, int]] = DEFAULT_FLAVORS,
                 images: Iterable[str] = DEFAULT_IMAGES, capacity: Capacity = DEFAULT_CAPACITY,
                 build_seconds: float = 0.0, volume_service: bool = False) -> None:
        self.pool = pool
        self.build_seconds = build_seconds
        self.volume_service = volume_service
        self.users = {name: _id("user", name) for name in (OWN_USER, *users)}
        self._flavors = [Flavor(id=_id("flavor", n), name=n, vcpus=c, ram_mb=r, disk_gb=d) for n, c, r, d in flavors]
        self._images = [Image(id=_id("image", n), name=n, status="active", size=4096) for n in images]
        self._base = capacity
        self._lock = threading.RLock()
        self._projects: dict[str, ProjectRef] = {}
        self._roles: dict[str, dict[str, set[str]]] = {}  # project -> user name -> roles
        self._quotas: dict[str, Quotas] = {}
        self._networks: dict[str, _Network] = {}  # network id -> network
        self._groups: dict[str, list[dict[str, Any]]] = {}  # project -> rules of its default group
        self._servers: dict[str, _Server] = {}
        self._failures: dict[str, BaseException] = {}
        self._pre_resize: dict[str, str] = {}
        self.calls: list[str] = []

    # ------------------------------------------------------------------ test hooks

    def fail_next(self, method_name: str, exc: BaseException) -> None:
        """The next call of ``method_name`` raises ``exc`` (once)."""
        if not callable(getattr(self, method_name, None)):
            raise ValueError(f"FakeCloud has no method {method_name!r}")
        with self._lock:
            self._failures[method_name] = exc

    def add_user(self, name: str) -> None:
        with self._lock:
            self.users.setdefault(name, _id("user", name))

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        exc = self._failures.pop(method, None)
        if exc is not None:
            raise exc

    def _project(self, project_id: str) -> ProjectRef:
        project = self._projects.get(project_id)
        if project is None:
            raise CloudNotFound(f"identity: not found (project {project_id})", detail=f"Could not find project: "
                                f"{project_id}.", http_status=404)
        return project

    # ------------------------------------------------------------------ check

    def check(self) -> dict[str, Any]:
        with self._lock:
            self._enter("check")
            base = f"fake://{self.pool.cloud}"
            return {"project": "admin", "user": OWN_USER, "region": self.pool.region,
                    "endpoints": {s: f"{base}/{s}" for s in ("identity", "compute", "network", "image", "placement")}}

    # ------------------------------------------------------------------ projects and identity

    def ensure_project(self, name: str, description: str) -> ProjectRef:
        with self._lock:
            self._enter("ensure_project")
            project = self._find(name)
            if project is None:
                project = ProjectRef(id=uuid.uuid4().hex, name=name, description=description)
                self._projects[project.id] = project
                self._quotas[project.id] = replace(DEFAULT_QUOTAS)
            self._roles.setdefault(project.id, {}).setdefault(OWN_USER, set()).add(OWN_ROLE)
            return project

    def _find(self, name: str) -> ProjectRef | None:
        return next((p for p in self._projects.values() if p.name == name), None)

    def find_project(self, name: str) -> ProjectRef | None:
        with self._lock:
            self._enter("find_project")
            return self._find(name)

    def projects(self) -> list[ProjectRef]:
        with self._lock:
            self._enter("projects")
            return sorted(self._projects.values(), key=lambda p: p.name)

    def delete_project(self, project_id: str) -> None:
        with self._lock:
            self._enter("delete_project")
            self._projects.pop(project_id, None)
            self._roles.pop(project_id, None)
            self._quotas.pop(project_id, None)

    def ensure_role_assignments(self, project_id: str, users: list[str], role: str = "member") -> list[str]:
        with self._lock:
            self._enter("ensure_role_assignments")
            self._project(project_id)
            if role not in ROLES:
                raise CloudNotFound(f"cloud {self.pool.cloud!r} has no role {role!r}")
            for name in users:
                if name not in self.users:
                    raise CloudNotFound(f"cloud {self.pool.cloud!r} has no user {name!r} (domain default)")
            for name in users:
                self._roles.setdefault(project_id, {}).setdefault(name, set()).add(role)
            return [self.users[name] for name in users]

    def role_assignments(self, project_id: str) -> dict[str, list[str]]:
        with self._lock:
            self._enter("role_assignments")
            return {user: sorted(roles) for user, roles in sorted(self._roles.get(project_id, {}).items()) if roles}

    def remove_role_assignments(self, project_id: str) -> None:
        with self._lock:
            self._enter("remove_role_assignments")
            self._roles.pop(project_id, None)

    # ------------------------------------------------------------------ quotas

    def set_quotas(self, project_id: str, quotas: Quotas) -> Quotas:
        with self._lock:
            self._enter("set_quotas")
            self._project(project_id)
            current = self._quotas.setdefault(project_id, replace(DEFAULT_QUOTAS))
            for key, value in quotas.as_dict().items():
                if value is None:
                    continue
                if value < -1:
                    raise CloudError(f"quota {key} must be -1 or more", detail=f"Invalid value {value}",
                                     http_status=400)
                if key in Quotas.VOLUME and not self.volume_service:
                    continue
                setattr(current, key, value)
            return replace(current)

    def _usage(self, project_id: str) -> dict[str, int]:
        servers = [s for s in self._servers.values() if s.project_id == project_id]
        networks = [n for n in self._networks.values() if n.project_id == project_id]
        flavors = [self._charged(s) for s in servers]
        return {"cores": sum(f.vcpus for f in flavors), "ram_mb": sum(f.ram_mb for f in flavors),
                "instances": len(servers), "networks": len(networks), "subnets": len(networks),
                "routers": sum(1 for n in networks if n.router_id),
                "ports": len(servers) + sum(1 for n in networks if n.router_id),
                "floating_ips": 0, "security_groups": 1 if project_id in self._groups else 0}

    @staticmethod
    def _charged(s: _Server) -> Flavor:
        """What a server holds: during a resize, the larger of its old and new flavors (as Nova counts)."""
        if s.old_flavor is None:
            return s.flavor
        old, new = s.old_flavor, s.flavor
        return replace(new, vcpus=max(old.vcpus, new.vcpus), ram_mb=max(old.ram_mb, new.ram_mb),
                       disk_gb=max(old.disk_gb, new.disk_gb))

    def quota_usage(self, project_id: str) -> dict[str, QuotaUsage]:
        with self._lock:
            self._enter("quota_usage")
            self._project(project_id)
            limits = self._quotas[project_id]
            used = self._usage(project_id)
            keys = (*Quotas.COMPUTE, *Quotas.NETWORK, *(Quotas.VOLUME if self.volume_service else ()))
            return {key: QuotaUsage(limit=getattr(limits, key), in_use=used.get(key, 0))
                    for key in keys if getattr(limits, key) is not None}

    def _check_quota(self, project_id: str, cores: int, ram_mb: int, instances: int) -> None:
        limits = self._quotas[project_id]
        used = self._usage(project_id)
        for key, wanted, unit in (("instances", instances, "instances"), ("cores", cores, "cores"),
                                  ("ram_mb", ram_mb, "ram")):
            limit = getattr(limits, key)
            if wanted > 0 and limit is not None and limit >= 0 and used[key] + wanted > limit:
                detail = (f"Quota exceeded for {unit}: Requested {wanted}, but already used {used[key]} of "
                          f"{limit} {unit}")
                raise CloudQuotaExceeded("compute refused for quota", detail=detail, http_status=403)

    # ------------------------------------------------------------------ networks

    def ensure_network(self, project_id: str, name: str, cidr: str) -> NetworkSetup:
        with self._lock:
            self._enter("ensure_network")
            self._project(project_id)
            net_cidr = ipaddress.ip_network(cidr, strict=False)
            network = next((n for n in self._networks.values() if n.project_id == project_id and n.name == name),
                           None)
            if network is None:
                network = _Network(id=uuid.uuid4().hex, name=name, project_id=project_id, subnet_id=uuid.uuid4().hex,
                                   cidr=str(net_cidr), router_id=None)
                self._networks[network.id] = network
                self._default_group(project_id)
            elif ipaddress.ip_network(network.cidr) != net_cidr:
                raise CloudConflict(f"network {name!r} already has the subnet {network.cidr}, not {net_cidr}")
            if self.pool.routers and network.router_id is None:
                network.router_id = uuid.uuid4().hex
            return NetworkSetup(network_id=network.id, subnet_id=network.subnet_id,
                                router_id=network.router_id if self.pool.routers else None)

    def _default_group(self, project_id: str) -> list[dict[str, Any]]:
        """Neutron makes a project's default group on first sight: egress anywhere, ingress from the group."""
        if project_id not in self._groups:
            self._groups[project_id] = [
                {"direction": "egress", "ethertype": "IPv4", "protocol": None, "port_min": None, "port_max": None,
                 "remote_ip_prefix": None, "remote_group": None},
                {"direction": "egress", "ethertype": "IPv6", "protocol": None, "port_min": None, "port_max": None,
                 "remote_ip_prefix": None, "remote_group": None},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": None, "port_min": None, "port_max": None,
                 "remote_ip_prefix": None, "remote_group": "default"},
                {"direction": "ingress", "ethertype": "IPv6", "protocol": None, "port_min": None, "port_max": None,
                 "remote_ip_prefix": None, "remote_group": "default"},
            ]
        return self._groups[project_id]

    def ensure_default_security_rules(self, project_id: str, rules: list[dict[str, Any]]) -> int:
        with self._lock:
            self._enter("ensure_default_security_rules")
            self._project(project_id)
            group = self._default_group(project_id)
            added = 0
            for rule in rules:
                prefix = rule.get("remote_ip_prefix") or None
                ethertype = rule.get("ethertype") or (
                    "IPv6" if prefix and ipaddress.ip_network(prefix, strict=False).version == 6 else "IPv4")
                if prefix in ("0.0.0.0/0", "::/0"):
                    prefix = None
                wanted = {"direction": rule.get("direction", "ingress"), "ethertype": ethertype,
                          "protocol": rule.get("protocol"), "port_min": rule.get("port_min"),
                          "port_max": rule.get("port_max"), "remote_ip_prefix": prefix, "remote_group": None}
                if wanted not in group:
                    group.append(wanted)
                    added += 1
            return added

    def delete_network(self, project_id: str, name: str) -> None:
        with self._lock:
            self._enter("delete_network")
            for network in [n for n in self._networks.values() if n.project_id == project_id and n.name == name]:
                users = [s.name for s in self._servers.values() if s.network == network.id]
                if users:
                    raise CloudConflict("network refused delete the network: conflict",
                                        detail=f"Unable to complete operation on subnet {network.subnet_id}: "
                                               f"One or more ports have an IP allocation from this subnet.",
                                        http_status=409)
                del self._networks[network.id]

    def delete_security_groups(self, project_id: str) -> None:
        with self._lock:
            self._enter("delete_security_groups")
            self._groups.pop(project_id, None)

    def networks(self, project_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self._enter("networks")
            result = []
            for n in self._networks.values():
                if n.project_id != project_id:
                    continue
                gateway = str(next(ipaddress.ip_network(n.cidr).hosts()))
                result.append({"id": n.id, "name": n.name, "status": "ACTIVE", "is_shared": False,
                               "subnets": [{"id": n.subnet_id, "name": f"{n.name}-subnet", "cidr": n.cidr,
                                            "gateway_ip": gateway}]})
            return sorted(result, key=lambda n: n["name"])

    # ------------------------------------------------------------------ flavors, images

    def flavors(self) -> list[Flavor]:
        with self._lock:
            self._enter("flavors")
            return sorted(self._flavors, key=lambda f: (f.vcpus, f.ram_mb, f.name))

    def images(self) -> list[Image]:
        with self._lock:
            self._enter("images")
            return sorted(self._images, key=lambda i: i.name)

    # ------------------------------------------------------------------ servers

    def _flavor(self, flavor_id: str) -> Flavor:
        flavor = next((f for f in self._flavors if f.id == flavor_id or f.name == flavor_id), None)
        if flavor is None:
            raise CloudError("compute refused create the server (HTTP 400)",
                             detail=f"Flavor {flavor_id} could not be found.", http_status=400)
        return flavor

    def _status(self, s: _Server) -> str:
        if s.state != "ERROR" and time.monotonic() < s.ready_at:
            return "BUILD"
        return s.state

    def _view(self, s: _Server) -> Server:
        status = self._status(s)
        addresses = {self._networks[s.network].name: [s.address]} if s.network in self._networks and s.address \
            else {}
        return Server(id=s.id, name=s.name, project_id=s.project_id, status=status, flavor_name=s.flavor.name,
                      image_id=s.image_id, addresses=addresses, metadata=dict(s.metadata),
                      availability_zone=self.pool.availability_zone, host=None if status == "ERROR" else self._host,
                      fault=s.fault, task_state="spawning" if status == "BUILD" else None, created_at=s.created_at)

    @property
    def _host(self) -> str:
        return f"compute-{self.pool.name}"

    def _used(self) -> tuple[int, int, int]:
        """What the pool's hosts hold: during a resize, both flavors (Placement keeps the old allocation until
        the resize is confirmed)."""
        flavors = [f for s in self._servers.values() if s.state != "ERROR"
                   for f in (s.flavor, s.old_flavor) if f is not None]
        return (sum(f.vcpus for f in flavors), sum(f.ram_mb for f in flavors), sum(f.disk_gb for f in flavors))

    def create_server(self, project_id: str, request: ServerRequest) -> Server:
        with self._lock:
            self._enter("create_server")
            self._project(project_id)
            flavor = self._flavor(request.flavor_id)
            if not any(i.id == request.image_id for i in self._images):
                raise CloudError("compute refused create the server (HTTP 400)",
                                 detail=f"Image {request.image_id} could not be found.", http_status=400)
            network = self._networks.get(request.network_id)
            if network is None or network.project_id != project_id:
                raise CloudError("compute refused create the server (HTTP 400)",
                                 detail=f"Network {request.network_id} could not be found.", http_status=400)
            self._check_quota(project_id, flavor.vcpus, flavor.ram_mb, 1)
            server = _Server(id=str(uuid.uuid4()), name=request.name, project_id=project_id, flavor=flavor,
                             image_id=request.image_id, network=network.id, address="",
                             metadata=dict(request.metadata), ready_at=time.monotonic() + self.build_seconds,
                             created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            vcpus, ram, disk = self._used()
            base = self._base
            if (vcpus + flavor.vcpus > base.vcpus_total - base.vcpus_used
                    or ram + flavor.ram_mb > base.ram_mb_total - base.ram_mb_used
                    or disk + flavor.disk_gb > base.disk_gb_total - base.disk_gb_used):
                server.state = "ERROR"
                server.fault = "No valid host was found. There are not enough hosts available."
            else:
                hosts = list(ipaddress.ip_network(network.cidr).hosts())
                if network.next_host - 1 >= len(hosts):
                    server.state = "ERROR"
                    server.fault = f"No more IP addresses available on network {network.id}."
                else:
                    server.address = str(hosts[network.next_host - 1])
                    network.next_host += 1
            if request.user_data:
                server.extra["user_data"] = request.user_data
            if request.key_name:
                server.extra["key_name"] = request.key_name
            self._servers[server.id] = server
            return self._view(server)

    def servers(self, project_id: str | None = None) -> list[Server]:
        with self._lock:
            self._enter("servers")
            return [self._view(s) for s in sorted(self._servers.values(), key=lambda s: (s.created_at, s.name))
                    if project_id is None or s.project_id == project_id]

    def get_server(self, project_id: str, server_id: str) -> Server | None:
        with self._lock:
            self._enter("get_server")
            s = self._servers.get(server_id)
            return None if s is None or s.project_id != project_id else self._view(s)

    def server_action(self, project_id: str, server_id: str, action: str, flavor_id: str | None = None) -> None:
        with self._lock:
            self._enter("server_action")
            actions = ("start", "stop", "reboot", "resize", "confirm_resize", "delete")
            if action not in actions:
                raise ValueError(f"unknown server action {action!r} (one of {', '.join(actions)})")
            s = self._servers.get(server_id)
            if s is None or s.project_id != project_id:
                if action == "delete":
                    return
                raise CloudNotFound(f"no server {server_id} in project {project_id}")
            if action == "delete":
                del self._servers[server_id]
                return
            status = self._status(s)
            allowed = {"start": ("SHUTOFF",), "stop": ("ACTIVE", "ERROR"), "reboot": ("ACTIVE", "SHUTOFF"),
                       "resize": ("ACTIVE", "SHUTOFF"), "confirm_resize": ("VERIFY_RESIZE",)}[action]
            if status not in allowed:
                raise CloudConflict(f"compute refused {action}: conflict",
                                    detail=f"Cannot '{action}' instance {server_id} while it is in "
                                           f"status {status}", http_status=409)
            if action == "start" or action == "reboot":
                s.state = "ACTIVE"
            elif action == "stop":
                s.state = "SHUTOFF"
            elif action == "resize":
                if not flavor_id:
                    raise ValueError("resize needs a flavor_id")
                new = self._flavor(flavor_id)
                if new.id == s.flavor.id:
                    raise CloudError("compute refused resize (HTTP 400)",
                                     detail="When resizing, instances must change flavor!", http_status=400)
                self._check_quota(project_id, max(new.vcpus - s.flavor.vcpus, 0),
                                  max(new.ram_mb - s.flavor.ram_mb, 0), 0)
                self._pre_resize[server_id] = status  # nova keeps a stopped server stopped after a resize
                s.old_flavor, s.flavor, s.state = s.flavor, new, "VERIFY_RESIZE"
            else:
                s.old_flavor, s.state = None, self._pre_resize.pop(server_id, "ACTIVE")

    # ------------------------------------------------------------------ capacity

    def capacity(self) -> Capacity:
        with self._lock:
            self._enter("capacity")
            vcpus, ram, disk = self._used()
            base = self._base
            return replace(base, vcpus_used=base.vcpus_used + vcpus, ram_mb_used=base.ram_mb_used + ram,
                           disk_gb_used=base.disk_gb_used + disk)

    def close(self) -> None:
        pass


def fake_factory(**kw: Any) -> Callable[[PoolInfo, Path | None], FakeCloud]:
    """A :class:`~.pools.Connector` factory: one FakeCloud per pool name, kept across ``forget`` (so a test sees
    the state the console made). ``factory.clouds``: pool name → FakeCloud."""
    clouds: dict[str, FakeCloud] = {}
    lock = threading.Lock()

    def factory(pool: PoolInfo, clouds_yaml: Path | None = None) -> FakeCloud:
        with lock:
            if pool.name not in clouds:
                clouds[pool.name] = FakeCloud(pool, **kw)
            return clouds[pool.name]

    factory.clouds = clouds  # type: ignore[attr-defined]
    return factory
