"""The cloud adapter: everything the platform asks of one resource pool, in the platform's own terms.

One adapter talks to one pool (a clouds.yaml cloud, a region, optionally an availability zone) with the
credentials of that cloud's entry (an administrator: it creates projects). :class:`OpenStackAdapter`
(:mod:`.openstack_adapter`) is the real one, over openstacksdk; :class:`~.fake.FakeCloud` is an in-memory
one for console tests only. Both pass the same contract tests (``tests/lab/test_cloud_contract.py``).

Every method is idempotent where the name says ``ensure_``: called twice, it finds what the first call made
(by name inside the project) and returns it. Errors are :class:`CloudError` subclasses whose message says what
failed in words an operator can act on; OpenStack's own refusal text is kept in :attr:`CloudError.detail`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import AdapterError

#: Server metadata keys the platform sets on every VM it creates.
META_REQUEST = "ecocloud_request"
META_INDEX = "ecocloud_index"
META_TENANT = "ecocloud_tenant"


class CloudError(AdapterError):
    """A pool refused or failed an operation. ``detail``: the cloud's own message, if it gave one."""

    code = "cloud_error"

    def __init__(self, message: str, *, detail: str = "", http_status: int | None = None) -> None:
        super().__init__(message + (f": {detail}" if detail and detail not in message else ""))
        self.detail = detail
        self.http_status = http_status


class CloudAuthError(CloudError):
    """The clouds.yaml credentials were refused (HTTP 401) or the cloud entry is missing."""

    code = "cloud_auth"


class CloudUnreachable(CloudError):
    """No answer from an endpoint (connection refused, timeout, DNS)."""

    code = "cloud_unreachable"


class CloudQuotaExceeded(CloudError):
    """The cloud refused for quota (OpenStack's own refusal, after the platform's pre-check passed)."""

    status = 409
    code = "cloud_quota"


class CloudNotFound(CloudError):
    status = 404
    code = "cloud_not_found"


class CloudConflict(CloudError):
    status = 409
    code = "cloud_conflict"


@dataclass(frozen=True)
class PoolInfo:
    """What the platform knows of one pool (from settings)."""

    name: str
    zone: str  # the network zone label (互联网区, 电子政务外网区, 业务专网区 ...)
    cloud: str  # the clouds.yaml cloud name
    region: str
    availability_zone: str | None = None
    routers: bool = True  # may tenant networks get a router to the external network?
    external_network: str | None = None  # the router gateway network (default: the first external one)


@dataclass
class Quotas:
    """The quota set the platform manages. ``None``: leave as the cloud's default."""

    cores: int | None = None
    ram_mb: int | None = None
    instances: int | None = None
    networks: int | None = None
    subnets: int | None = None
    ports: int | None = None
    routers: int | None = None
    floating_ips: int | None = None
    security_groups: int | None = None
    volumes: int | None = None
    gigabytes: int | None = None

    COMPUTE = ("cores", "ram_mb", "instances")
    NETWORK = ("networks", "subnets", "ports", "routers", "floating_ips", "security_groups")
    VOLUME = ("volumes", "gigabytes")

    def as_dict(self) -> dict[str, int | None]:
        return {k: getattr(self, k) for k in (*self.COMPUTE, *self.NETWORK, *self.VOLUME)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Quotas:
        data = data or {}
        known = {*cls.COMPUTE, *cls.NETWORK, *cls.VOLUME}
        return cls(**{k: (None if v is None else int(v)) for k, v in data.items() if k in known})


@dataclass(frozen=True)
class QuotaUsage:
    """limit (-1: unlimited), in use and reserved of one resource."""

    limit: int
    in_use: int
    reserved: int = 0

    @property
    def available(self) -> int | None:
        return None if self.limit < 0 else max(self.limit - self.in_use - self.reserved, 0)


@dataclass(frozen=True)
class ProjectRef:
    id: str
    name: str
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class NetworkSetup:
    """What :meth:`CloudAdapter.ensure_network` made or found."""

    network_id: str
    subnet_id: str
    router_id: str | None  # None when the pool allows no routers


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    is_public: bool = True


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    status: str
    min_disk_gb: int = 0
    min_ram_mb: int = 0
    size: int | None = None


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    project_id: str
    status: str  # OpenStack's: BUILD, ACTIVE, SHUTOFF, ERROR, REBOOT, VERIFY_RESIZE, DELETED ...
    flavor_name: str
    image_id: str | None
    #: network name -> fixed/floating IPv4/IPv6 addresses
    addresses: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    availability_zone: str | None = None
    host: str | None = None  # admin-visible compute host
    fault: str | None = None  # OpenStack's fault message of an ERROR server
    task_state: str | None = None
    created_at: str | None = None

    @property
    def first_ipv4(self) -> str | None:
        return first_ipv4(self.addresses)


def first_ipv4(addresses: dict[str, list[str]] | None) -> str | None:
    """The first IPv4 address of a server's addresses (network name -> addresses)."""
    for addrs in (addresses or {}).values():
        for a in addrs:
            if ":" not in a:
                return str(a)
    return None


@dataclass(frozen=True)
class Capacity:
    """One pool's physical capacity (Placement inventories, after allocation ratios) and usage."""

    vcpus_total: int
    vcpus_used: int
    ram_mb_total: int
    ram_mb_used: int
    disk_gb_total: int
    disk_gb_used: int
    providers: int


@dataclass(frozen=True)
class ServerRequest:
    name: str
    flavor_id: str
    image_id: str
    network_id: str
    metadata: dict[str, str]
    key_name: str | None = None
    admin_password: str | None = None
    user_data: str | None = None  # cloud-init, plain text (the adapter encodes it)


class CloudAdapter(Protocol):
    """One pool. Methods that take ``project_id`` act inside that tenant project."""

    pool: PoolInfo

    def check(self) -> dict[str, Any]:
        """Authenticate and list the endpoints: raises CloudAuthError / CloudUnreachable."""
        ...

    # Projects and identity --------------------------------------------------------------------
    def ensure_project(self, name: str, description: str) -> ProjectRef: ...
    def find_project(self, name: str) -> ProjectRef | None: ...
    def projects(self) -> list[ProjectRef]: ...
    def delete_project(self, project_id: str) -> None: ...
    def ensure_role_assignments(self, project_id: str, users: list[str], role: str = "member") -> list[str]:
        """Give each named (existing) user ``role`` on the project; returns the user ids. A missing user
        raises CloudNotFound naming it."""
        ...

    def role_assignments(self, project_id: str) -> dict[str, list[str]]:
        """user name -> role names on the project."""
        ...

    def remove_role_assignments(self, project_id: str) -> None: ...

    # Quotas ----------------------------------------------------------------------------------
    def set_quotas(self, project_id: str, quotas: Quotas) -> Quotas:
        """Apply the non-None values; return the resulting limits. A pool without a volume service skips
        the volume quotas (their values come back None)."""
        ...

    def quota_usage(self, project_id: str) -> dict[str, QuotaUsage]:
        """cores, ram_mb, instances (+ network ones where known): limit, in use, reserved."""
        ...

    # Networks --------------------------------------------------------------------------------
    def ensure_network(self, project_id: str, name: str, cidr: str) -> NetworkSetup: ...
    def ensure_default_security_rules(self, project_id: str, rules: list[dict[str, Any]]) -> int:
        """Add the rules (protocol, port_min, port_max, remote_ip_prefix) to the project's ``default``
        security group when missing; returns how many were added."""
        ...

    def delete_network(self, project_id: str, name: str) -> None:
        """Router interface, router, subnet and network named ``name``, in that order; absent parts skipped."""
        ...

    def delete_security_groups(self, project_id: str) -> None: ...
    def networks(self, project_id: str) -> list[dict[str, Any]]: ...

    # Flavors, images ---------------------------------------------------------------------------
    def flavors(self) -> list[Flavor]: ...
    def images(self) -> list[Image]: ...

    # Servers ----------------------------------------------------------------------------------
    def create_server(self, project_id: str, request: ServerRequest) -> Server: ...
    def servers(self, project_id: str | None = None) -> list[Server]:
        """Servers of one project (or of every project of the pool's availability zone)."""
        ...

    def get_server(self, project_id: str, server_id: str) -> Server | None: ...
    def server_action(self, project_id: str, server_id: str, action: str, flavor_id: str | None = None) -> None:
        """start, stop, reboot, resize (flavor_id), confirm_resize, delete."""
        ...

    # Capacity ----------------------------------------------------------------------------------
    def capacity(self) -> Capacity: ...

    def close(self) -> None: ...
