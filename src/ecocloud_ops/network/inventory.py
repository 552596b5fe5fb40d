"""Ansible YAML / CSV inventories of devices: parse and validate (all errors at once), and write back.

Host variables are the names Ansible users already know: ``ansible_host``, ``ansible_user``,
``ansible_password``, ``ansible_ssh_private_key_file``, ``ansible_port``, plus ``site_code``,
``platform``, ``role``, ``uplink_interface``, ``enabled`` and the ``snmp_*`` variables."""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ValidationFailed
from .models import DeviceRole

SECRET_VARS = ("snmp_community", "snmp_auth_key", "snmp_priv_key", "ansible_password")
KNOWN_VARS = {
    "ansible_host", "site_code", "platform", "role", "uplink_interface", "enabled", "snmp_version", "snmp_port",
    "snmp_community", "snmp_user", "snmp_auth_protocol", "snmp_auth_key", "snmp_priv_protocol", "snmp_priv_key",
    "ansible_user", "ansible_password", "ansible_ssh_private_key_file", "ansible_port",
}
CSV_COLUMNS = ["hostname", "groups", *sorted(KNOWN_VARS - {"ansible_host"})]
CSV_COLUMNS.insert(2, "ansible_host")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PLATFORM_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


@dataclass
class DeviceSpec:
    """One host of an inventory file, validated. Secrets are None when the file has none."""

    hostname: str
    address: str
    site_code: str
    platform: str = "linux"
    role: str = DeviceRole.UPLINK.value
    uplink_interface: str | None = None
    enabled: bool = True
    groups: list[str] = field(default_factory=list)
    snmp_version: str = "2c"
    snmp_port: int = 161
    snmp_community: str | None = None
    snmp_user: str | None = None
    snmp_auth_protocol: str | None = None
    snmp_auth_key: str | None = None
    snmp_priv_protocol: str | None = None
    snmp_priv_key: str | None = None
    ssh_user: str | None = None
    ssh_password: str | None = None
    ssh_key_file: str | None = None
    ssh_port: int = 22
    #: Where it came from, for error messages: "host hb-core-01" or "row 7".
    origin: str = ""

    def snmp_secret(self) -> dict[str, str] | None:
        if self.snmp_version == "2c":
            return {"community": self.snmp_community} if self.snmp_community else None
        if self.snmp_auth_key or self.snmp_priv_key:
            return {"auth_key": self.snmp_auth_key or "", "priv_key": self.snmp_priv_key or ""}
        return None


@dataclass
class InventoryError:
    origin: str  # "host X" or "row N"
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.field}: {self.message}"


class InventoryInvalid(ValidationFailed):
    """The file has problems; nothing was written. ``errors`` names every host/row and field."""

    def __init__(self, errors: list[InventoryError]) -> None:
        more = f" (+{len(errors) - 20} more)" if len(errors) > 20 else ""
        super().__init__("inventory rejected, nothing written: " + "; ".join(map(str, errors[:20])) + more,
                         details=[{"field": f"{e.origin}: {e.field}", "message": e.message} for e in errors])
        self.errors = errors


def _str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v).strip() or None


def _int(v: Any, name: str, origin: str, errors: list[InventoryError], default: int, lo: int, hi: int) -> int:
    if v is None or v == "":
        return default
    try:
        n = int(str(v).strip())
    except ValueError:
        errors.append(InventoryError(origin, name, f"not a whole number: {v!r}"))
        return default
    if not lo <= n <= hi:
        errors.append(InventoryError(origin, name, f"must be between {lo} and {hi}"))
    return n


def _bool(v: Any, origin: str, errors: list[InventoryError]) -> bool:
    if v is None or v == "":
        return True
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "yes", "1", "on"):
        return True
    if s in ("false", "no", "0", "off"):
        return False
    errors.append(InventoryError(origin, "enabled", f"not true/false: {v!r}"))
    return True


def validate_host(hostname: Any, vars_: dict[str, Any], groups: list[str], origin: str,
                  errors: list[InventoryError], *, has_stored_secret: bool = False) -> DeviceSpec | None:
    """Validate one host's variables; append every problem to ``errors``."""
    n_before = len(errors)
    name = _str(hostname) or ""
    if not HOSTNAME_RE.match(name):
        errors.append(InventoryError(origin, "hostname", "1-128 characters: letters, digits, '.', '_', '-'"))
    for key in vars_:
        if key not in KNOWN_VARS and (key.startswith("snmp_") or key in ("site", "sitecode", "site_id")):
            errors.append(InventoryError(origin, key, "unknown variable (a typo?)"))
    address = _str(vars_.get("ansible_host")) or ""
    if not address:
        errors.append(InventoryError(origin, "ansible_host", "missing"))
    else:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            if not re.match(r"^[A-Za-z0-9.-]{1,64}$", address):
                errors.append(InventoryError(origin, "ansible_host", f"not an address or host name: {address!r}"))
    site = _str(vars_.get("site_code")) or ""
    if not re.match(r"^\d{6}$", site):
        errors.append(InventoryError(origin, "site_code", f"six digits expected, got {site!r}"))
    platform = _str(vars_.get("platform")) or "linux"
    if not PLATFORM_RE.match(platform):
        errors.append(InventoryError(origin, "platform", f"not a netmiko device type: {platform!r}"))
    role = _str(vars_.get("role")) or DeviceRole.UPLINK.value
    if role not in {r.value for r in DeviceRole}:
        errors.append(InventoryError(origin, "role", f"one of {', '.join(r.value for r in DeviceRole)}"))
    uplink = _str(vars_.get("uplink_interface"))
    if uplink and len(uplink) > 64:
        errors.append(InventoryError(origin, "uplink_interface", "at most 64 characters"))
    version = (_str(vars_.get("snmp_version")) or "2c").lower()
    if version in ("2", "v2c"):
        version = "2c"
    if version == "v3":
        version = "3"
    if version not in ("2c", "3"):
        errors.append(InventoryError(origin, "snmp_version", f"'2c' or '3', got {version!r}"))
    spec = DeviceSpec(
        hostname=name, address=address, site_code=site, platform=platform, role=role, uplink_interface=uplink,
        enabled=_bool(vars_.get("enabled"), origin, errors), groups=groups, snmp_version=version,
        snmp_port=_int(vars_.get("snmp_port"), "snmp_port", origin, errors, 161, 1, 65535),
        snmp_community=_str(vars_.get("snmp_community")), snmp_user=_str(vars_.get("snmp_user")),
        snmp_auth_protocol=(_str(vars_.get("snmp_auth_protocol")) or "").upper() or None,
        snmp_auth_key=_str(vars_.get("snmp_auth_key")),
        snmp_priv_protocol=(_str(vars_.get("snmp_priv_protocol")) or "").upper() or None,
        snmp_priv_key=_str(vars_.get("snmp_priv_key")), ssh_user=_str(vars_.get("ansible_user")),
        ssh_password=_str(vars_.get("ansible_password")),
        ssh_key_file=_str(vars_.get("ansible_ssh_private_key_file")),
        ssh_port=_int(vars_.get("ansible_port"), "ansible_port", origin, errors, 22, 1, 65535), origin=origin,
    )
    if version == "2c":
        if not spec.snmp_community and not has_stored_secret:
            errors.append(InventoryError(origin, "snmp_community", "required for SNMP v2c"))
    elif version == "3":
        if not spec.snmp_user:
            errors.append(InventoryError(origin, "snmp_user", "required for SNMP v3"))
        if spec.snmp_auth_protocol not in ("SHA", "SHA256"):
            errors.append(InventoryError(origin, "snmp_auth_protocol", "SHA or SHA256"))
        if spec.snmp_priv_protocol not in ("AES", "AES256"):
            errors.append(InventoryError(origin, "snmp_priv_protocol", "AES (AES-128) or AES256"))
        for key in ("snmp_auth_key", "snmp_priv_key"):
            value = getattr(spec, key)
            if value is None and not has_stored_secret:
                errors.append(InventoryError(origin, key, "required for SNMP v3 authPriv"))
            elif value is not None and len(value) < 8:
                errors.append(InventoryError(origin, key, "at least 8 characters"))
    return spec if len(errors) == n_before else None


def _walk_group(name: str, group: Any, inherited: dict[str, Any], path: list[str],
                hosts: dict[str, tuple[dict[str, Any], list[str]]], errors: list[InventoryError]) -> None:
    if group is None:
        return
    if not isinstance(group, dict):
        errors.append(InventoryError(f"group {name}", "group", "must be a mapping with hosts/children/vars"))
        return
    unknown = set(group) - {"hosts", "children", "vars"}
    if unknown:
        errors.append(InventoryError(f"group {name}", ",".join(sorted(unknown)), "unknown group key"))
    gvars = group.get("vars") or {}
    if not isinstance(gvars, dict):
        errors.append(InventoryError(f"group {name}", "vars", "must be a mapping"))
        gvars = {}
    merged = {**inherited, **gvars}
    groups = [*path, name] if name != "all" else path
    for host, hvars in (group.get("hosts") or {}).items():
        if hvars is not None and not isinstance(hvars, dict):
            errors.append(InventoryError(f"host {host}", "variables", "must be a mapping"))
            continue
        prev_vars, prev_groups = hosts.get(str(host), ({}, []))
        hosts[str(host)] = ({**prev_vars, **merged, **(hvars or {})},
                            sorted(set(prev_groups) | ({groups[-1]} if groups else set())))
    children = group.get("children") or {}
    if not isinstance(children, dict):
        errors.append(InventoryError(f"group {name}", "children", "must be a mapping"))
        return
    for child, body in children.items():
        _walk_group(str(child), body, merged, groups, hosts, errors)


def parse_yaml(text: str, stored_secret: set[str] | None = None) -> list[DeviceSpec]:
    """Parse an Ansible YAML inventory; raises InventoryInvalid listing every bad host and field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "file"
        raise InventoryInvalid([InventoryError(where, "yaml", f"not valid YAML: {getattr(exc, 'problem', exc)}")]
                               ) from exc
    if not isinstance(data, dict) or not data:
        raise InventoryInvalid([InventoryError("file", "yaml", "expected a mapping with an 'all' group")])
    errors: list[InventoryError] = []
    hosts: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for name, group in data.items():
        _walk_group(str(name), group, {}, [], hosts, errors)
    specs = []
    for host, (vars_, groups) in hosts.items():
        spec = validate_host(host, vars_, groups, f"host {host}", errors,
                             has_stored_secret=host in (stored_secret or set()))
        if spec:
            specs.append(spec)
    if errors:
        raise InventoryInvalid(errors)
    return specs


def parse_csv(text: str, stored_secret: set[str] | None = None) -> list[DeviceSpec]:
    """Parse a CSV inventory (a header row with ``hostname`` and the host variable names)."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "hostname" not in reader.fieldnames:
        raise InventoryInvalid([InventoryError("row 1", "header", "a 'hostname' column is required")])
    unknown = set(reader.fieldnames) - set(CSV_COLUMNS)
    if unknown:
        raise InventoryInvalid([InventoryError("row 1", ",".join(sorted(unknown)), "unknown column")])
    errors: list[InventoryError] = []
    specs, seen = [], set()
    for i, row in enumerate(reader, start=2):
        host = (row.get("hostname") or "").strip()
        if host in seen:
            errors.append(InventoryError(f"row {i}", "hostname", f"{host!r} appears twice"))
        seen.add(host)
        groups = [g for g in (row.get("groups") or "").split(";") if g.strip()]
        vars_ = {k: v for k, v in row.items() if k not in ("hostname", "groups") and v not in (None, "")}
        spec = validate_host(host, vars_, groups, f"row {i}", errors,
                             has_stored_secret=host in (stored_secret or set()))
        if spec:
            specs.append(spec)
    if errors:
        raise InventoryInvalid(errors)
    return specs


def parse(text: str, fmt: str, stored_secret: set[str] | None = None) -> list[DeviceSpec]:
    if fmt == "csv":
        return parse_csv(text, stored_secret)
    return parse_yaml(text, stored_secret)


def host_vars(spec: DeviceSpec) -> dict[str, Any]:
    """The host variables of a device for export (no secrets)."""
    out: dict[str, Any] = {"ansible_host": spec.address, "site_code": spec.site_code, "platform": spec.platform,
                           "role": spec.role}
    if spec.uplink_interface:
        out["uplink_interface"] = spec.uplink_interface
    if not spec.enabled:
        out["enabled"] = False
    out["snmp_version"] = spec.snmp_version
    if spec.snmp_port != 161:
        out["snmp_port"] = spec.snmp_port
    if spec.snmp_version == "3":
        out.update(snmp_user=spec.snmp_user, snmp_auth_protocol=spec.snmp_auth_protocol,
                   snmp_priv_protocol=spec.snmp_priv_protocol)
    if spec.ssh_user:
        out["ansible_user"] = spec.ssh_user
    if spec.ssh_key_file:
        out["ansible_ssh_private_key_file"] = spec.ssh_key_file
    if spec.ssh_port != 22:
        out["ansible_port"] = spec.ssh_port
    return out


def to_yaml(specs: list[DeviceSpec]) -> str:
    """An Ansible YAML inventory: hosts under their groups (or directly under ``all``)."""
    children: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for spec in sorted(specs, key=lambda s: s.hostname):
        hv = host_vars(spec)
        if spec.groups:
            first, *rest = spec.groups
            children.setdefault(first, {"hosts": {}})["hosts"][spec.hostname] = hv
            for g in rest:
                children.setdefault(g, {"hosts": {}})["hosts"][spec.hostname] = None
        else:
            top[spec.hostname] = hv
    body: dict[str, Any] = {}
    if top:
        body["hosts"] = top
    if children:
        body["children"] = dict(sorted(children.items()))
    header = "# EcoCloud Ops device inventory (secrets are never exported)\n"
    return header + yaml.safe_dump({"all": body}, allow_unicode=True, sort_keys=False)


def to_csv(specs: list[DeviceSpec]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for spec in sorted(specs, key=lambda s: s.hostname):
        row = {k: v for k, v in host_vars(spec).items()}
        row.update(hostname=spec.hostname, groups=";".join(spec.groups))
        w.writerow({k: ("false" if row.get(k) is False else row.get(k, "")) for k in CSV_COLUMNS})
    return buf.getvalue()
