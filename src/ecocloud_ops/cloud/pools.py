"""Pools are configuration: parsed from the settings, checked once, connected on demand.

Credentials stay in clouds.yaml (the path in settings, or openstacksdk's standard lookup). The platform
refuses to start when that file can be read by other users: it holds cloud administrator passwords.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NotFound
from .adapter import CloudAdapter, PoolInfo

if TYPE_CHECKING:
    from ..config import Settings

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_KNOWN = {"name", "zone", "cloud", "region", "availability_zone", "routers", "external_network"}

#: openstacksdk's own search order (openstack.config.loader): the first existing file wins.
STANDARD_LOCATIONS = (Path.cwd() / "clouds.yaml", Path.home() / ".config/openstack/clouds.yaml",
                      Path("/etc/openstack/clouds.yaml"))


def parse_pools(raw: list[dict[str, Any]]) -> list[PoolInfo]:
    """Validate the ``cloud_pools`` setting; a ConfigError names the pool and the field."""
    pools: list[PoolInfo] = []
    for i, entry in enumerate(raw):
        where = f"cloud_pools[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table with name, zone, cloud, region")
        unknown = set(entry) - _KNOWN
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        for key in ("name", "zone", "cloud", "region"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(f"{where}: {key} is required (text)")
        name = entry["name"].strip()
        if not _NAME.match(name):
            raise ConfigError(f"{where}: name {name!r} must be lower-case letters, digits and '-' (max 32)")
        routers = entry.get("routers", True)
        if not isinstance(routers, bool):
            raise ConfigError(f"{where}: routers must be true or false")
        pools.append(PoolInfo(name=name, zone=entry["zone"].strip(), cloud=entry["cloud"].strip(),
                              region=entry["region"].strip(), availability_zone=entry.get("availability_zone") or None,
                              routers=routers, external_network=entry.get("external_network") or None))
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise ConfigError("cloud_pools: pool names must be unique")
    targets = [(p.cloud, p.region, p.availability_zone) for p in pools]
    if len(set(targets)) != len(targets):
        raise ConfigError("cloud_pools: two pools point at the same cloud, region and availability zone")
    return pools


def clouds_yaml_path(settings: Settings) -> Path | None:
    if settings.clouds_yaml is not None:
        return Path(settings.clouds_yaml)
    env = os.environ.get("OS_CLIENT_CONFIG_FILE")
    if env:
        return Path(env)
    for candidate in STANDARD_LOCATIONS:
        if candidate.exists():
            return candidate
    return None


def check_clouds_yaml(settings: Settings) -> Path | None:
    """Raise ConfigError when pools are configured and their clouds.yaml is missing or readable by others."""
    if not settings.cloud_pools:
        return None
    parse_pools(settings.cloud_pools)
    path = clouds_yaml_path(settings)
    if path is None:
        raise ConfigError("cloud pools are configured but no clouds.yaml was found (set clouds_yaml, "
                          "or put one in ~/.config/openstack/ or /etc/openstack/)")
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"clouds.yaml {path} cannot be read: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"clouds.yaml {path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
                          f"it holds cloud passwords: chmod 600 {path}")
    return path


AdapterFactory = Callable[[PoolInfo, "Path | None"], CloudAdapter]


def _openstack_factory(pool: PoolInfo, clouds_yaml: Path | None) -> CloudAdapter:
    from .openstack_adapter import OpenStackAdapter

    return OpenStackAdapter(pool, clouds_yaml)


class Connector:
    """The pools of this instance and a cached adapter per pool (adapters are thread-safe enough to share:
    openstacksdk sessions are; each adapter is used by one job or request at a time)."""

    def __init__(self, settings: Settings, factory: AdapterFactory | None = None) -> None:
        self.settings = settings
        self.pools = parse_pools(settings.cloud_pools)
        self.factory = factory or _openstack_factory
        self._adapters: dict[str, CloudAdapter] = {}
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.pools)

    def check_config(self) -> None:
        """At start-up (server, worker): the clouds.yaml of real pools exists and only its owner reads it."""
        if self.factory is _openstack_factory:
            check_clouds_yaml(self.settings)

    def pool(self, name: str) -> PoolInfo:
        for p in self.pools:
            if p.name == name:
                return p
        raise NotFound(f"no resource pool {name!r} (configured: {', '.join(p.name for p in self.pools) or 'none'})")

    def adapter(self, name: str) -> CloudAdapter:
        pool = self.pool(name)
        with self._lock:
            if name not in self._adapters:
                path = (check_clouds_yaml(self.settings) if self.factory is _openstack_factory
                        else clouds_yaml_path(self.settings))
                self._adapters[name] = self.factory(pool, path)
            return self._adapters[name]

    def forget(self, name: str) -> None:
        """Drop a cached adapter (after an authentication error, so fixed credentials are read again)."""
        with self._lock:
            adapter = self._adapters.pop(name, None)
        if adapter is not None:
            adapter.close()

    def close(self) -> None:
        with self._lock:
            adapters, self._adapters = list(self._adapters.values()), {}
        for a in adapters:
            a.close()
