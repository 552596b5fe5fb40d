"""The playbook catalog: ``playbooks/<name>.yml`` with its variable schema ``playbooks/<name>.vars.yml``.

Only a playbook that has a schema can be run; the schema declares every variable a user may pass
(type ``str``, ``int``, ``bool`` or ``choice``; ``required``, ``default``, ``pattern``, ``max_length``,
``choices``, ``min``, ``max``, ``description``) and the run's default ``timeout`` in seconds. Extra
variables are checked against it before anything runs: unknown names, wrong types and values out of
range are refused with one detail per variable. See ``playbooks/README.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import NotFound, ValidationFailed

#: A playbook or named inventory: lower-case letters, digits, ``_`` and ``-`` (no dots, no slashes).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: A variable name Ansible accepts, never one of Ansible's own connection variables (``ansible_*``).
VAR_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
#: ``--limit``: host and group names, patterns (``*``, ``!``, ``&``, ``:``, ``,``, ``~regex``, ranges).
#: No ``@file`` (reads a file on the server), no braces (templates) and no leading ``-`` (an option).
LIMIT_RE = re.compile(r"^[A-Za-z0-9_.*!&:,\[\]~^$()|+?-]{1,500}$")
VarType = Literal["str", "int", "bool", "choice"]
DEFAULT_TIMEOUT = 3600
MAX_TIMEOUT = 86400
DEFAULT_MAX_LENGTH = 1000
TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0"}


def default_playbooks_dir() -> Path:
    """``playbooks/`` at the root of the source tree (``src/ecocloud_ops/automation/`` is three levels down)."""
    return Path(__file__).resolve().parents[3] / "playbooks"


@dataclass(frozen=True)
class VarSpec:
    name: str
    type: VarType
    required: bool = False
    default: Any = None
    description: str = ""
    pattern: str | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    choices: tuple[Any, ...] = ()
    min: int | None = None
    max: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "required": self.required, "default": self.default,
                               "description": self.description}
        if self.type == "str":
            out |= {"pattern": self.pattern, "max_length": self.max_length}
        if self.type == "choice":
            out["choices"] = list(self.choices)
        if self.type == "int":
            out |= {"min": self.min, "max": self.max}
        return out

    def check(self, value: Any, *, from_text: bool = False) -> tuple[Any, str | None]:
        """The value converted to the declared type, or the reason it is refused.

        ``from_text``: the value comes from a command line (``-e k=v``), so ``"5"`` may be an int and
        ``"yes"`` a bool; from JSON the type must already be right."""
        if self.type == "int":
            if from_text and isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
                value = int(value.strip())
            if isinstance(value, bool) or not isinstance(value, int):
                return None, "must be a whole number"
            if self.min is not None and value < self.min:
                return None, f"must be at least {self.min}"
            if self.max is not None and value > self.max:
                return None, f"must be at most {self.max}"
            return value, None
        if self.type == "bool":
            if from_text and isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
                value = value.strip().lower() in TRUE_WORDS
            if not isinstance(value, bool):
                return None, "must be true or false"
            return value, None
        if self.type == "choice":
            if from_text and isinstance(value, str):
                for c in self.choices:
                    if str(c) == value:
                        value = c
                        break
            if isinstance(value, bool) or value not in self.choices:
                return None, f"must be one of {', '.join(map(str, self.choices))}"
            return value, None
        if not isinstance(value, str):
            return None, "must be a string"
        if len(value) > self.max_length:
            return None, f"must be at most {self.max_length} characters"
        if "\x00" in value:
            return None, "must not contain NUL characters"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return None, f"must match {self.pattern}"
        return value, None


@dataclass(frozen=True)
class PlaybookSpec:
    name: str
    path: Path
    description: str
    description_en: str
    timeout: int
    variables: dict[str, VarSpec] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "description_en": self.description_en,
                "timeout": self.timeout, "variables": {k: v.as_dict() for k, v in self.variables.items()}}

    def validate(self, values: dict[str, Any] | None, *, from_text: bool = False) -> dict[str, Any]:
        """The extra variables with defaults filled in; ValidationFailed lists every bad one."""
        values = dict(values or {})
        details: list[dict[str, str]] = []
        out: dict[str, Any] = {}
        for key in sorted(set(values) - set(self.variables)):
            details.append({"field": f"extra_vars.{key}",
                            "message": f"unknown variable; {self.name} accepts: {', '.join(self.variables) or 'none'}"})
        for name, spec in self.variables.items():
            if name not in values:
                if spec.required:
                    details.append({"field": f"extra_vars.{name}", "message": "required"})
                elif spec.default is not None:
                    out[name] = spec.default
                continue
            value, problem = spec.check(values[name], from_text=from_text)
            if problem:
                details.append({"field": f"extra_vars.{name}", "message": problem})
            else:
                out[name] = value
        if details:
            raise ValidationFailed(f"invalid extra variables for {self.name}: "
                                   + "; ".join(f"{d['field'].removeprefix('extra_vars.')}: {d['message']}"
                                               for d in details), details=details)
        return out


def _load_var(playbook: str, name: str, raw: Any) -> VarSpec:
    where = f"playbook {playbook}: variable {name!r}"
    if not isinstance(name, str) or not VAR_NAME_RE.match(name) or name.startswith("ansible_"):
        raise ValueError(f"{where}: names are lower-case identifiers, never ansible_*")
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: a mapping expected")
    unknown = set(raw) - {"type", "required", "default", "description", "pattern", "max_length", "choices",
                          "min", "max"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    vtype = raw.get("type")
    if vtype not in ("str", "int", "bool", "choice"):
        raise ValueError(f"{where}: type must be str, int, bool or choice")
    choices = tuple(raw.get("choices") or ())
    if vtype == "choice" and not choices:
        raise ValueError(f"{where}: a choice needs choices")
    pattern = raw.get("pattern")
    if pattern is not None:
        re.compile(pattern)
    spec = VarSpec(name=name, type=vtype, required=bool(raw.get("required", False)), default=raw.get("default"),
                   description=str(raw.get("description", "")), pattern=pattern,
                   max_length=int(raw.get("max_length", DEFAULT_MAX_LENGTH)), choices=choices,
                   min=raw.get("min"), max=raw.get("max"))
    if spec.default is not None and spec.check(spec.default)[1]:
        raise ValueError(f"{where}: the default {spec.default!r} {spec.check(spec.default)[1]}")
    return spec


def load_spec(directory: Path, name: str) -> PlaybookSpec:
    schema_path = directory / f"{name}.vars.yml"
    raw = yaml.safe_load(schema_path.read_text("utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{schema_path}: a mapping expected")
    variables = raw.get("variables") or {}
    if not isinstance(variables, dict):
        raise ValueError(f"{schema_path}: variables must be a mapping")
    timeout = int(raw.get("timeout", DEFAULT_TIMEOUT))
    if not 1 <= timeout <= MAX_TIMEOUT:
        raise ValueError(f"{schema_path}: timeout must be 1..{MAX_TIMEOUT} seconds")
    return PlaybookSpec(name=name, path=directory / f"{name}.yml", description=str(raw.get("description", "")),
                        description_en=str(raw.get("description_en", "")), timeout=timeout,
                        variables={k: _load_var(name, k, v) for k, v in variables.items()})


class Catalog:
    """The runnable playbooks of a directory (read on each call: editing a schema needs no restart)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or default_playbooks_dir()).resolve()

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name[: -len(".vars.yml")] for p in self.directory.glob("*.vars.yml")
                      if NAME_RE.match(p.name[: -len(".vars.yml")])
                      and (self.directory / (p.name[: -len(".vars.yml")] + ".yml")).is_file())

    def all(self) -> list[PlaybookSpec]:
        return [load_spec(self.directory, n) for n in self.names()]

    def get(self, name: Any) -> PlaybookSpec:
        """The playbook called ``name``: 422 for a malformed name (paths, dots), 404 for an unknown one."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValidationFailed(f"invalid playbook name {str(name)[:100]!r}",
                                   details=[{"field": "playbook", "message": "letters, digits, _ and - only"}])
        if name not in self.names():
            raise NotFound(f"no playbook named {name!r}")
        spec = load_spec(self.directory, name)
        # A symlink pointing out of the directory is not a playbook of this catalog.
        if spec.path.resolve().parent != self.directory:
            raise NotFound(f"no playbook named {name!r}")
        return spec

    def inventory(self, name: str) -> str:
        """The text of a named inventory ``playbooks/inventories/<name>.ini|.yml``."""
        if not NAME_RE.match(name):
            raise ValidationFailed(f"invalid inventory name {name[:100]!r}",
                                   details=[{"field": "inventory", "message": "letters, digits, _ and - only"}])
        base = self.directory / "inventories"
        for ext in (".ini", ".yml", ".yaml"):
            p = base / f"{name}{ext}"
            if p.is_file() and p.resolve().parent == base.resolve():
                return p.read_text("utf-8")
        raise NotFound(f"no inventory named {name!r}")


def check_limit(limit: str | None) -> str | None:
    """A ``--limit`` host pattern, or None; refuses ``@file`` and option-like values."""
    if limit is None or limit.strip() == "":
        return None
    limit = limit.strip()
    if not LIMIT_RE.match(limit) or limit.startswith("-"):
        raise ValidationFailed("invalid host limit", details=[{
            "field": "limit", "message": "host or group names and patterns (letters, digits, . _ - * ! & : , ~)"}])
    return limit
