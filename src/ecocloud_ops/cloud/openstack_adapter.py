"""The real cloud adapter: one resource pool of an OpenStack cloud, over openstacksdk.

The adapter connects with the credentials of the pool's clouds.yaml entry (a cloud administrator) on first use.
Everything tenant-side is done by that administrator: projects, users' role assignments, quotas, networks and
security groups with an explicit ``project_id``; only a server boot needs a token scoped to the tenant project
(nova creates a server in the project of the token), so :meth:`OpenStackAdapter.ensure_project` gives the
adapter's own user the ``admin`` role on every project it makes, and boots go through a project-scoped
connection cached per project.

Every library exception is translated at the edge (:func:`_translated`) into a :class:`~.adapter.CloudError`
subclass whose message names the cloud, the service and what failed; OpenStack's own text is kept in ``detail``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import ipaddress
import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from .adapter import (
    Capacity,
    CloudAuthError,
    CloudConflict,
    CloudError,
    CloudNotFound,
    CloudQuotaExceeded,
    CloudUnreachable,
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

log = logging.getLogger(__name__)

DOMAIN = "default"
#: the role the adapter's own user takes on the projects it makes (to boot servers inside them)
OWN_ROLE = "admin"
PLACEMENT_MICROVERSION = "1.39"
API_TIMEOUT = 30.0
#: service types of a block-storage (cinder) endpoint in a catalog
_VOLUME_TYPES = ("block-storage", "volumev3", "volumev2", "volume")
#: Quotas field -> attribute of openstacksdk's compute QuotaSet / network Quota / block-storage QuotaSet
_COMPUTE_ATTRS = {"cores": "cores", "ram_mb": "ram", "instances": "instances"}
_NETWORK_ATTRS = {"networks": "networks", "subnets": "subnets", "ports": "ports", "routers": "routers",
                  "floating_ips": "floating_ips", "security_groups": "security_groups"}
_VOLUME_ATTRS = {"volumes": "volumes", "gigabytes": "gigabytes"}
_ACTIONS = ("start", "stop", "reboot", "resize", "confirm_resize", "delete")
_URL = re.compile(r"https?://[^\s'\"),]+")
_HTTP_STATUS = re.compile(r"\(HTTP (\d{3})\)")
_ANY_V4 = {None, "", "0.0.0.0/0"}
_ANY_V6 = {None, "", "::/0"}

P = ParamSpec("P")
T = TypeVar("T")


@contextlib.contextmanager
def _quiet_sdk() -> Iterator[None]:
    """Silence openstacksdk's own deprecation warnings (4.2x warns about InfluxDB on every connection and about
    its resource internals); a caller running with warnings as errors would fail on them."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(openstack|keystoneauth1)(\.|$)")
        yield


def _translated(action: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Run an adapter method with openstacksdk's warnings quiet and its exceptions translated."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            self = args[0]
            assert isinstance(self, OpenStackAdapter)
            try:
                with _quiet_sdk():
                    return fn(*args, **kwargs)
            except CloudError:
                raise
            except Exception as exc:
                translated = self._translate(exc, action)
                if translated is None:
                    raise
                raise translated from exc

        return wrapper

    return decorate


def _first(items: Any) -> Any:
    for item in items:
        return item
    return None


class OpenStackAdapter:
    """One pool of an OpenStack cloud (see the module doc). Lazily connected; safe to share between threads."""

    def __init__(self, pool: PoolInfo, clouds_yaml: Path | None = None, *, api_timeout: float = API_TIMEOUT) -> None:
        self.pool = pool
        self.clouds_yaml = Path(clouds_yaml) if clouds_yaml is not None else None
        self.api_timeout = api_timeout
        self._lock = threading.Lock()
        self._conn: Any = None
        self._project_conns: dict[str, Any] = {}
        self._auth_url: str | None = None
        #: endpoint URL -> service type, filled once authenticated (names the service in error messages)
        self._endpoints: dict[str, str] = {}

    # ------------------------------------------------------------------ connection

    @property
    def _where(self) -> str:
        return str(self.clouds_yaml) if self.clouds_yaml is not None else "the standard clouds.yaml locations"

    def _region_config(self) -> Any:
        from openstack import exceptions as os_exc
        from openstack.config.loader import OpenStackConfig

        if self.clouds_yaml is not None and not self.clouds_yaml.exists():
            raise CloudAuthError(f"cloud {self.pool.cloud!r}: clouds.yaml {self.clouds_yaml} does not exist")
        files = [str(self.clouds_yaml)] if self.clouds_yaml is not None else None
        try:
            with _quiet_sdk():
                config = OpenStackConfig(config_files=files, vendor_files=[], load_envvars=False)
                region = config.get_one(cloud=self.pool.cloud, region_name=self.pool.region,
                                        api_timeout=self.api_timeout)
        except os_exc.ConfigException as exc:
            raise CloudAuthError(f"cloud {self.pool.cloud!r} (region {self.pool.region}) is not usable from "
                                 f"{self._where}", detail=str(exc)) from exc
        self._auth_url = (region.config.get("auth") or {}).get("auth_url")
        return region

    def _connection(self) -> Any:
        """The administrator's connection (created once, under the lock)."""
        with self._lock:
            if self._conn is None:
                import openstack.connection

                region = self._region_config()
                with _quiet_sdk():
                    self._conn = openstack.connection.Connection(config=region)
            return self._conn

    def _project_connection(self, project_id: str) -> Any:
        """A connection scoped to a tenant project (the adapter's user holds a role there), cached per project."""
        conn = self._connection()
        with self._lock:
            scoped = self._project_conns.get(project_id)
        if scoped is not None:
            return scoped
        self._ensure_own_role(conn, project_id)
        scoped = conn.connect_as(project_id=project_id)
        with self._lock:
            self._project_conns.setdefault(project_id, scoped)
            return self._project_conns[project_id]

    def _forget_project(self, project_id: str) -> None:
        with self._lock:
            scoped = self._project_conns.pop(project_id, None)
        if scoped is not None:
            with contextlib.suppress(Exception), _quiet_sdk():
                scoped.close()

    def _ensure_own_role(self, conn: Any, project_id: str) -> None:
        role = conn.identity.find_role(OWN_ROLE, ignore_missing=False)
        conn.identity.assign_project_role_to_user(project_id, conn.current_user_id, role.id)

    def _catalog(self, conn: Any) -> dict[str, str]:
        """Service type -> endpoint URL of the pool's region and the connection's interface."""
        access = conn.session.auth.get_access(conn.session)
        interface = conn.config.get_interface() or "public"
        found: dict[str, str] = {}
        for stype, endpoints in access.service_catalog.get_endpoints(interface=interface).items():
            for endpoint in endpoints:
                region = endpoint.get("region_id") or endpoint.get("region")
                if region in (None, self.pool.region) and endpoint.get("url"):
                    found[stype] = endpoint["url"]
                    break
        self._endpoints = {url: stype for stype, url in found.items()}
        return found

    def close(self) -> None:
        with self._lock:
            conns = [self._conn, *self._project_conns.values()]
            self._conn = None
            self._project_conns = {}
        for conn in conns:
            if conn is not None:
                with contextlib.suppress(Exception), _quiet_sdk():
                    conn.close()

    # ------------------------------------------------------------------ errors

    def _service_of(self, url: str | None) -> str:
        if url:
            best = ""
            for endpoint in self._endpoints:
                if url.startswith(endpoint.rstrip("/")) and len(endpoint) > len(best):
                    best = endpoint
            if best:
                return self._endpoints[best]
            if self._auth_url and url.startswith(self._auth_url.rstrip("/").rsplit("/v", 1)[0]):
                return "identity"
            return f"the endpoint {url}"
        return "the cloud"

    def _translate(self, exc: BaseException, action: str) -> CloudError | None:
        """The CloudError for a library exception (None: not one of the cloud's; let it propagate)."""
        from keystoneauth1 import exceptions as ksa_exc
        from openstack import exceptions as os_exc
        from requests import exceptions as rq_exc

        cloud = self.pool.cloud
        if isinstance(exc, ksa_exc.Unauthorized) or (isinstance(exc, os_exc.HttpException) and exc.status_code == 401):
            return CloudAuthError(f"the credentials of cloud {cloud!r} were refused ({action})",
                                  detail=_detail(exc), http_status=401)
        status = _HTTP_STATUS.search(str(exc)) if isinstance(exc, ksa_exc.DiscoveryFailure) else None
        if status is not None:  # the identity endpoint answered, with an error
            return self._from_status(int(status.group(1)), self._auth_url, action, str(exc))
        if isinstance(exc, (ksa_exc.ConnectionError, ksa_exc.DiscoveryFailure, rq_exc.ConnectionError)):
            urls = _URL.findall(str(exc))
            url = urls[-1].rstrip(".:") if urls else (self._auth_url or "?")
            return CloudUnreachable(f"cloud {cloud!r} does not answer at {url} ({action})", detail=str(exc))
        if isinstance(exc, (ksa_exc.EndpointNotFound, os_exc.EndpointNotFound)):
            return CloudUnreachable(f"cloud {cloud!r} has no usable endpoint in region {self.pool.region} "
                                    f"({action})", detail=str(exc))
        if isinstance(exc, ksa_exc.HttpError):
            url = getattr(exc, "url", None)
            return self._from_status(exc.http_status, url if isinstance(url, str) else None, action, _detail(exc))
        if isinstance(exc, os_exc.HttpException):
            url = exc.url
            return self._from_status(exc.status_code, url if isinstance(url, str) else None, action, _detail(exc))
        if isinstance(exc, os_exc.ResourceTimeout):
            return CloudError(f"cloud {cloud!r}: timed out ({action})", detail=str(exc))
        if isinstance(exc, os_exc.SDKException):
            cause = exc.__cause__ or exc.__context__
            if cause is not None and cause is not exc:
                inner = self._translate(cause, action)
                if inner is not None:
                    return inner
            return CloudError(f"cloud {cloud!r}: {action} failed", detail=str(exc))
        if isinstance(exc, ksa_exc.ClientException):
            return CloudError(f"cloud {cloud!r}: {action} failed", detail=str(exc))
        return None

    def _from_status(self, status: int | None, url: str | None, action: str, detail: str) -> CloudError:
        service = self._service_of(url)
        text = detail.lower()
        if status in (403, 409, 413) and "quota" in text:
            return CloudQuotaExceeded(f"{service} refused {action} for quota", detail=detail, http_status=status)
        if status == 404:
            return CloudNotFound(f"{service}: not found ({action})", detail=detail, http_status=status)
        if status == 409:
            return CloudConflict(f"{service} refused {action}: conflict", detail=detail, http_status=status)
        if status is not None and status >= 500:
            return CloudError(f"{service} returned {status} ({action})", detail=detail, http_status=status)
        return CloudError(f"{service} refused {action} (HTTP {status})", detail=detail, http_status=status)

    # ------------------------------------------------------------------ check

    @_translated("check the connection")
    def check(self) -> dict[str, Any]:
        conn = self._connection()
        conn.authorize()
        endpoints = self._catalog(conn)
        access = conn.session.auth.get_access(conn.session)
        return {"project": access.project_name, "user": access.username, "region": self.pool.region,
                "endpoints": endpoints}

    def _volume_service(self, conn: Any) -> bool:
        catalog = self._catalog(conn)
        return any(stype in catalog for stype in _VOLUME_TYPES)

    # ------------------------------------------------------------------ projects and identity

    @staticmethod
    def _project_ref(project: Any) -> ProjectRef:
        return ProjectRef(id=project.id, name=project.name, description=project.description or "",
                          enabled=bool(project.is_enabled))

    def _find_project(self, conn: Any, name: str) -> Any:
        return _first(conn.identity.projects(name=name, domain_id=DOMAIN))

    @_translated("create the project")
    def ensure_project(self, name: str, description: str) -> ProjectRef:
        from openstack import exceptions as os_exc

        conn = self._connection()
        project = self._find_project(conn, name)
        if project is None:
            try:
                project = conn.identity.create_project(name=name, domain_id=DOMAIN, description=description,
                                                       is_enabled=True)
            except os_exc.ConflictException:  # made meanwhile by someone else
                project = self._find_project(conn, name)
                if project is None:
                    raise
        self._ensure_own_role(conn, project.id)
        return self._project_ref(project)

    @_translated("look up the project")
    def find_project(self, name: str) -> ProjectRef | None:
        project = self._find_project(self._connection(), name)
        return None if project is None else self._project_ref(project)

    @_translated("list the projects")
    def projects(self) -> list[ProjectRef]:
        return [self._project_ref(p) for p in self._connection().identity.projects(domain_id=DOMAIN)]

    @_translated("delete the project")
    def delete_project(self, project_id: str) -> None:
        self._forget_project(project_id)
        self._connection().identity.delete_project(project_id, ignore_missing=True)

    @_translated("assign roles on the project")
    def ensure_role_assignments(self, project_id: str, users: list[str], role: str = "member") -> list[str]:
        conn = self._connection()
        found_role = conn.identity.find_role(role)
        if found_role is None:
            raise CloudNotFound(f"cloud {self.pool.cloud!r} has no role {role!r}")
        ids: list[str] = []
        for name in users:  # every user is looked up before anything is assigned
            user = _first(conn.identity.users(name=name, domain_id=DOMAIN))
            if user is None:
                raise CloudNotFound(f"cloud {self.pool.cloud!r} has no user {name!r} (domain {DOMAIN})")
            ids.append(user.id)
        for user_id in ids:
            conn.identity.assign_project_role_to_user(project_id, user_id, found_role.id)
        return ids

    @_translated("read the role assignments")
    def role_assignments(self, project_id: str) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for a in self._connection().identity.role_assignments(scope_project_id=project_id, include_names=True):
            if not a.user:
                continue
            name = a.user.get("name") or a.user["id"]
            result.setdefault(name, []).append(a.role.get("name") or a.role["id"])
        return {name: sorted(roles) for name, roles in sorted(result.items())}

    @_translated("remove the role assignments")
    def remove_role_assignments(self, project_id: str) -> None:
        """Every user's and group's role on the project; the adapter's own role last (it boots servers)."""
        conn = self._connection()
        own = conn.current_user_id
        assignments = list(conn.identity.role_assignments(scope_project_id=project_id))
        assignments.sort(key=lambda a: bool(a.user) and a.user.get("id") == own)
        for a in assignments:
            if a.user:
                with contextlib.suppress(CloudNotFound):
                    self._unassign(conn.identity.unassign_project_role_from_user, project_id, a.user["id"],
                                   a.role["id"])
            elif a.group:
                with contextlib.suppress(CloudNotFound):
                    self._unassign(conn.identity.unassign_project_role_from_group, project_id, a.group["id"],
                                   a.role["id"])
        self._forget_project(project_id)

    @staticmethod
    def _unassign(fn: Callable[..., Any], project_id: str, who: str, role_id: str) -> None:
        from openstack import exceptions as os_exc

        with contextlib.suppress(os_exc.NotFoundException):
            fn(project_id, who, role_id)

    # ------------------------------------------------------------------ quotas

    @_translated("set the quotas")
    def set_quotas(self, project_id: str, quotas: Quotas) -> Quotas:
        conn = self._connection()
        compute = {_COMPUTE_ATTRS[k]: getattr(quotas, k) for k in Quotas.COMPUTE if getattr(quotas, k) is not None}
        if compute:
            conn.compute.update_quota_set(project_id, **compute)
        network = {_NETWORK_ATTRS[k]: getattr(quotas, k) for k in Quotas.NETWORK if getattr(quotas, k) is not None}
        if network:
            conn.network.update_quota(project_id, **network)
        has_volume = self._volume_service(conn)
        volume = {_VOLUME_ATTRS[k]: getattr(quotas, k) for k in Quotas.VOLUME if getattr(quotas, k) is not None}
        if volume and has_volume:
            conn.block_storage.update_quota_set(project_id, **volume)
        elif volume:
            log.info("cloud %s has no block-storage service: volume quotas of %s skipped", self.pool.cloud,
                     project_id)
        result = Quotas()
        qs = conn.compute.get_quota_set(project_id)
        for key, attr in _COMPUTE_ATTRS.items():
            setattr(result, key, getattr(qs, attr))
        nq = conn.network.get_quota(project_id)
        for key, attr in _NETWORK_ATTRS.items():
            setattr(result, key, getattr(nq, attr))
        if has_volume:
            vq = conn.block_storage.get_quota_set(project_id)
            for key, attr in _VOLUME_ATTRS.items():
                setattr(result, key, getattr(vq, attr))
        return result

    @_translated("read the quota usage")
    def quota_usage(self, project_id: str) -> dict[str, QuotaUsage]:
        conn = self._connection()
        qs = conn.compute.get_quota_set(project_id, usage=True)
        usage = qs.usage or {}
        reserved = qs.reservation or {}
        result: dict[str, QuotaUsage] = {}
        for key, attr in _COMPUTE_ATTRS.items():
            result[key] = QuotaUsage(limit=int(getattr(qs, attr)), in_use=int(usage.get(attr, 0) or 0),
                                     reserved=int(reserved.get(attr, 0) or 0))
        details = conn.network.get_quota(project_id, details=True)
        for key, attr in _NETWORK_ATTRS.items():
            item = getattr(details, attr, None)
            if isinstance(item, dict) and "limit" in item:
                result[key] = QuotaUsage(limit=int(item["limit"]), in_use=int(item.get("used", 0) or 0),
                                         reserved=int(item.get("reserved", 0) or 0))
        if self._volume_service(conn):
            vq = conn.block_storage.get_quota_set(project_id, usage=True)
            vusage, vreserved = vq.usage or {}, vq.reservation or {}
            for key in Quotas.VOLUME:
                limit = getattr(vq, key, None)
                if limit is not None:
                    result[key] = QuotaUsage(limit=int(limit), in_use=int(vusage.get(key, 0) or 0),
                                             reserved=int(vreserved.get(key, 0) or 0))
        return result

    # ------------------------------------------------------------------ networks

    def _external_network(self, conn: Any) -> Any:
        if self.pool.external_network:
            network = conn.network.find_network(self.pool.external_network)
            if network is None:
                raise CloudNotFound(f"cloud {self.pool.cloud!r} has no external network "
                                    f"{self.pool.external_network!r} (pool {self.pool.name})")
            return network
        return _first(conn.network.networks(is_router_external=True))

    @_translated("set up the network")
    def ensure_network(self, project_id: str, name: str, cidr: str) -> NetworkSetup:
        conn = self._connection()
        net_cidr = ipaddress.ip_network(cidr, strict=False)
        network = _first(conn.network.networks(name=name, project_id=project_id))
        if network is None:
            network = conn.network.create_network(name=name, project_id=project_id)
        subnet_name = f"{name}-subnet"
        subnet = _first(conn.network.subnets(name=subnet_name, network_id=network.id))
        if subnet is None:
            subnet = conn.network.create_subnet(name=subnet_name, network_id=network.id, project_id=project_id,
                                                ip_version=net_cidr.version, cidr=str(net_cidr))
        elif ipaddress.ip_network(subnet.cidr, strict=False) != net_cidr:
            raise CloudConflict(f"network {name!r} already has the subnet {subnet.cidr}, not {net_cidr}")
        if not self.pool.routers:
            return NetworkSetup(network_id=network.id, subnet_id=subnet.id, router_id=None)
        router_name = f"{name}-router"
        router = _first(conn.network.routers(name=router_name, project_id=project_id))
        if router is None:
            external = self._external_network(conn)
            attrs: dict[str, Any] = {"name": router_name, "project_id": project_id}
            if external is not None:
                attrs["external_gateway_info"] = {"network_id": external.id}
            router = conn.network.create_router(**attrs)
        if not self._router_has_subnet(conn, router.id, subnet.id):
            conn.network.add_interface_to_router(router, subnet=subnet.id)
        return NetworkSetup(network_id=network.id, subnet_id=subnet.id, router_id=router.id)

    @staticmethod
    def _router_has_subnet(conn: Any, router_id: str, subnet_id: str) -> bool:
        for port in conn.network.ports(device_id=router_id):
            if any(ip.get("subnet_id") == subnet_id for ip in port.fixed_ips or []):
                return True
        return False

    def _default_group(self, conn: Any, project_id: str) -> Any:
        # neutron makes a project's default group on the first look at its groups (filtered by the project)
        group = _first(conn.network.security_groups(project_id=project_id, name="default"))
        if group is None:
            raise CloudNotFound(f"cloud {self.pool.cloud!r}: project {project_id} has no default security group")
        return group

    @_translated("add the default security rules")
    def ensure_default_security_rules(self, project_id: str, rules: list[dict[str, Any]]) -> int:
        from openstack import exceptions as os_exc

        conn = self._connection()
        group = self._default_group(conn, project_id)
        existing = [_rule_key(r) for r in conn.network.security_group_rules(security_group_id=group.id)]
        added = 0
        for rule in rules:
            prefix = rule.get("remote_ip_prefix") or None
            ethertype = rule.get("ethertype") or (
                "IPv6" if prefix and ipaddress.ip_network(prefix, strict=False).version == 6 else "IPv4")
            wanted = {"direction": rule.get("direction", "ingress"), "ethertype": ethertype,
                      "protocol": rule.get("protocol"), "port_range_min": rule.get("port_min"),
                      "port_range_max": rule.get("port_max"), "remote_ip_prefix": prefix}
            key = _rule_key(wanted)
            if key in existing:
                continue
            try:
                conn.network.create_security_group_rule(security_group_id=group.id, project_id=project_id,
                                                        **{k: v for k, v in wanted.items() if v is not None})
            except os_exc.ConflictException:  # the same rule, added meanwhile
                continue
            existing.append(key)
            added += 1
        return added

    @_translated("delete the network")
    def delete_network(self, project_id: str, name: str) -> None:
        from openstack import exceptions as os_exc

        conn = self._connection()
        network = _first(conn.network.networks(name=name, project_id=project_id))
        subnet_ids = [s.id for s in conn.network.subnets(network_id=network.id)] if network is not None else []
        router = _first(conn.network.routers(name=f"{name}-router", project_id=project_id))
        if router is not None:
            for port in list(conn.network.ports(device_id=router.id, device_owner="network:router_interface")):
                for ip in port.fixed_ips or []:
                    if ip.get("subnet_id") in subnet_ids or network is None or port.network_id == network.id:
                        with contextlib.suppress(os_exc.NotFoundException):
                            conn.network.remove_interface_from_router(router, subnet=ip["subnet_id"])
            conn.network.delete_router(router, ignore_missing=True)
        for subnet_id in subnet_ids:
            conn.network.delete_subnet(subnet_id, ignore_missing=True)
        if network is not None:
            conn.network.delete_network(network, ignore_missing=True)

    @_translated("delete the security groups")
    def delete_security_groups(self, project_id: str) -> None:
        conn = self._connection()
        for group in list(conn.network.security_groups(project_id=project_id)):
            conn.network.delete_security_group(group, ignore_missing=True)

    @_translated("list the networks")
    def networks(self, project_id: str) -> list[dict[str, Any]]:
        conn = self._connection()
        result = []
        for network in conn.network.networks(project_id=project_id):
            subnets = [{"id": s.id, "name": s.name, "cidr": s.cidr, "gateway_ip": s.gateway_ip}
                       for s in conn.network.subnets(network_id=network.id)]
            result.append({"id": network.id, "name": network.name, "status": network.status,
                           "is_shared": bool(network.is_shared), "subnets": subnets})
        return sorted(result, key=lambda n: n["name"] or "")

    # ------------------------------------------------------------------ flavors, images

    @_translated("list the flavors")
    def flavors(self) -> list[Flavor]:
        return sorted((Flavor(id=f.id, name=f.name, vcpus=int(f.vcpus), ram_mb=int(f.ram), disk_gb=int(f.disk or 0),
                              is_public=bool(f.is_public) if f.is_public is not None else True)
                       for f in self._connection().compute.flavors(details=True)),
                      key=lambda f: (f.vcpus, f.ram_mb, f.name))

    @_translated("list the images")
    def images(self) -> list[Image]:
        return sorted((Image(id=i.id, name=i.name or i.id, status=i.status, min_disk_gb=int(i.min_disk or 0),
                             min_ram_mb=int(i.min_ram or 0), size=i.size)
                       for i in self._connection().image.images()
                       if i.status == "active" and i.visibility in ("public", "shared")),
                      key=lambda i: i.name)

    # ------------------------------------------------------------------ servers

    @staticmethod
    def _server(s: Any) -> Server:
        flavor = s.flavor
        flavor_name = ""
        if flavor is not None:
            flavor_name = getattr(flavor, "original_name", None) or getattr(flavor, "name", None) or \
                getattr(flavor, "id", None) or ""
        image = s.image
        image_id = getattr(image, "id", None) if image else None
        addresses = {net: [a["addr"] for a in addrs if a.get("addr")] for net, addrs in (s.addresses or {}).items()}
        fault = None
        if s.fault and s.status == "ERROR":
            fault = s.fault.get("message") or str(s.fault)
        return Server(id=s.id, name=s.name, project_id=s.project_id, status=s.status, flavor_name=flavor_name,
                      image_id=image_id or None, addresses=addresses, metadata=dict(s.metadata or {}),
                      availability_zone=s.availability_zone or None, host=s.compute_host or None, fault=fault,
                      task_state=s.task_state, created_at=s.created_at)

    @_translated("create the server")
    def create_server(self, project_id: str, request: ServerRequest) -> Server:
        conn = self._connection()
        scoped = self._project_connection(project_id)
        attrs: dict[str, Any] = {"name": request.name, "flavor_id": request.flavor_id, "image_id": request.image_id,
                                 "networks": [{"uuid": request.network_id}], "metadata": dict(request.metadata)}
        if self.pool.availability_zone:
            attrs["availability_zone"] = self.pool.availability_zone
        if request.key_name:
            attrs["key_name"] = request.key_name
        if request.admin_password:
            attrs["admin_password"] = request.admin_password
        if request.user_data:
            attrs["user_data"] = base64.b64encode(request.user_data.encode()).decode("ascii")
        created = scoped.compute.create_server(**attrs)
        return self._server(conn.compute.get_server(created.id))

    def _in_pool(self, s: Any) -> bool:
        return not self.pool.availability_zone or s.availability_zone == self.pool.availability_zone

    @_translated("list the servers")
    def servers(self, project_id: str | None = None) -> list[Server]:
        conn = self._connection()
        query: dict[str, Any] = {"details": True, "all_projects": True}
        if project_id is not None:
            query["project_id"] = project_id
        if self.pool.availability_zone:
            query["availability_zone"] = self.pool.availability_zone
        found = [self._server(s) for s in conn.compute.servers(**query)
                 if self._in_pool(s) and (project_id is None or s.project_id == project_id)]
        return sorted(found, key=lambda s: (s.created_at or "", s.name))

    @_translated("read the server")
    def get_server(self, project_id: str, server_id: str) -> Server | None:
        from openstack import exceptions as os_exc

        try:
            s = self._connection().compute.get_server(server_id)
        except os_exc.NotFoundException:
            return None
        if s.project_id != project_id:
            return None
        return self._server(s)

    @_translated("act on the server")
    def server_action(self, project_id: str, server_id: str, action: str, flavor_id: str | None = None) -> None:
        from openstack import exceptions as os_exc

        if action not in _ACTIONS:
            raise ValueError(f"unknown server action {action!r} (one of {', '.join(_ACTIONS)})")
        compute = self._connection().compute
        try:
            server = compute.get_server(server_id)
        except os_exc.NotFoundException:
            server = None
        if server is None or server.project_id != project_id:
            if action == "delete":
                return
            raise CloudNotFound(f"no server {server_id} in project {project_id}")
        if action == "start":
            compute.start_server(server)
        elif action == "stop":
            compute.stop_server(server)
        elif action == "reboot":
            compute.reboot_server(server, "SOFT")
        elif action == "resize":
            if not flavor_id:
                raise ValueError("resize needs a flavor_id")
            compute.resize_server(server, flavor_id)
        elif action == "confirm_resize":
            compute.confirm_server_resize(server)
        else:
            compute.delete_server(server, ignore_missing=True)

    # ------------------------------------------------------------------ capacity

    def _placement(self, conn: Any, path: str) -> dict[str, Any]:
        from openstack import exceptions as os_exc

        response = conn.placement.get(path, microversion=PLACEMENT_MICROVERSION)
        os_exc.raise_from_response(response)
        data: dict[str, Any] = response.json()
        return data

    def _pool_providers(self, conn: Any) -> list[str]:
        """uuids of the pool's resource providers: the compute nodes of the hosts in the aggregates of the
        pool's availability zone (every provider when the pool has no zone)."""
        providers = self._placement(conn, "/resource_providers")["resource_providers"]
        if not self.pool.availability_zone:
            return [rp["uuid"] for rp in providers if rp.get("parent_provider_uuid") is None]
        hosts: set[str] = set()
        for aggregate in conn.compute.aggregates():
            if aggregate.availability_zone == self.pool.availability_zone:
                hosts.update(aggregate.hosts or [])
        nodes = set(hosts)
        for hv in conn.compute.hypervisors(details=True):
            if (hv.service_details or {}).get("host") in hosts and hv.name:
                nodes.add(hv.name)
        return [rp["uuid"] for rp in providers if rp["name"] in nodes]

    @_translated("read the capacity")
    def capacity(self) -> Capacity:
        conn = self._connection()
        totals = {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0}
        used = dict(totals)
        uuids = self._pool_providers(conn)
        for rp in uuids:
            inventories = self._placement(conn, f"/resource_providers/{rp}/inventories")["inventories"]
            usages = self._placement(conn, f"/resource_providers/{rp}/usages")["usages"]
            for rc in totals:
                inv = inventories.get(rc)
                if inv:
                    totals[rc] += int((inv["total"] - inv.get("reserved", 0)) * inv.get("allocation_ratio", 1.0))
                used[rc] += int(usages.get(rc, 0))
        return Capacity(vcpus_total=totals["VCPU"], vcpus_used=used["VCPU"], ram_mb_total=totals["MEMORY_MB"],
                        ram_mb_used=used["MEMORY_MB"], disk_gb_total=totals["DISK_GB"], disk_gb_used=used["DISK_GB"],
                        providers=len(uuids))


def _detail(exc: BaseException) -> str:
    """The cloud's own message of an HTTP error (openstacksdk's ``details``, keystoneauth's ``details`` or
    ``message``), else the exception's text."""
    for attr in ("details", "message"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value.strip() and value != "Error":
            return value.strip()
    return str(exc)


def _rule_key(rule: Any) -> tuple[Any, ...]:
    """A security group rule's identity (neutron treats no prefix and 0.0.0.0/0 or ::/0 alike)."""
    get = rule.get if isinstance(rule, dict) else (lambda k: getattr(rule, k, None))
    ethertype = get("ethertype") or "IPv4"
    prefix = get("remote_ip_prefix")
    if prefix in (_ANY_V4 if ethertype == "IPv4" else _ANY_V6):
        prefix = None
    protocol = get("protocol")
    return (get("direction") or "ingress", ethertype, None if protocol in (None, "", "any") else str(protocol),
            get("port_range_min"), get("port_range_max"), prefix, get("remote_group_id"))
