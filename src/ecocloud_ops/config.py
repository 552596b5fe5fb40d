"""One validated settings object: defaults < TOML file < ECOCLOUD_* environment < explicit arguments.

Run-time policies (password rules, targets, SLA policies...) are not settings: they live in the
database (see :mod:`ecocloud_ops.policies`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

ENV_PREFIX = "ECOCLOUD_"
CONFIG_ENV = "ECOCLOUD_CONFIG"


class Settings(BaseModel):
    """Process-wide configuration. Every field can come from the TOML file or ``ECOCLOUD_<FIELD>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Folder for the SQLite database, keys and files the instance owns (created on first use).
    instance_dir: Path = Path("instance")
    #: SQLAlchemy URL; empty means SQLite at ``<instance_dir>/ecocloud.db``.
    database_url: str = ""
    #: Flask secret key (session cookies, CSRF); empty means generated once into the instance folder.
    secret_key: str = ""
    #: Fernet key that encrypts secrets at rest; empty means generated into ``<instance_dir>/data.key``.
    data_key: str = ""
    #: Ed25519 private key (PEM) that signs the audit chain; kept outside the database.
    audit_key_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: Default console language for users who have not chosen one.
    language: Literal["zh_CN", "en"] = "zh_CN"
    #: WSGI worker threads of ``ecocloud-ops serve``.
    threads: int = Field(default=8, ge=1, le=256)
    #: Seconds between worker heartbeats; the console calls a worker dead after 3 missed beats.
    worker_heartbeat_seconds: int = Field(default=10, ge=1, le=3600)
    #: Seconds the worker sleeps between looks for queued jobs.
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    #: Concurrent background jobs in one worker.
    worker_max_jobs: int = Field(default=2, ge=1, le=64)
    #: Seconds between network poll cycles run by the worker.
    poll_interval_seconds: int = Field(default=60, ge=5, le=3600)
    #: Per-device timeout (seconds) of one ICMP echo or SNMP request, and SNMP retries.
    poll_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    poll_retries: int = Field(default=1, ge=0, le=5)
    #: SNMP requests in flight at once.
    poll_concurrency: int = Field(default=256, ge=1, le=4096)
    #: SNMP client of the poll engine's hot path: gufo (fast, Rust core) or pysnmp.
    snmp_client: Literal["gufo", "pysnmp"] = "gufo"
    #: A device that goes down again within this many minutes of coming back is flapping: the new
    #: down period joins the previous outage record (flap_count + 1) instead of opening a new one.
    flap_window_minutes: int = Field(default=15, ge=0, le=1440)
    #: An outage record that grouped at least this many re-downs is shown as a flapping link.
    flap_threshold: int = Field(default=3, ge=1, le=1000)
    #: SSH (netmiko): per-device timeout and devices at once (checks hourly, backups daily at 02:00).
    ssh_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    ssh_concurrency: int = Field(default=8, ge=1, le=128)
    #: Retention: hourly rollups (device charts), daily rollups and outage intervals (reports).
    retention_hourly_days: int = Field(default=35, ge=2, le=3650)
    retention_daily_days: int = Field(default=400, ge=396, le=3650)
    #: The console's address as users reach it, for links in e-mails (e.g. https://ops.example.gov.cn).
    public_url: str = "http://127.0.0.1:8080"
    #: Outgoing mail (notifications). Empty host: notifications are kept in the outbox, not sent.
    smtp_host: str = ""
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_sender: str = "ecocloud-ops@localhost"
    #: Incoming mail: ``ecocloud-ops mail-gateway`` listens here and accepts mail for these domains or
    #: addresses; mail from addresses no user has is rejected or queued for an agent.
    mail_gateway_host: str = "127.0.0.1"
    mail_gateway_port: int = Field(default=2525, ge=0, le=65535)
    mail_accepted_recipients: list[str] = Field(default_factory=lambda: ["servicedesk.local"])
    mail_unknown_senders: Literal["reject", "queue"] = "reject"
    mail_max_message_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    #: An outage whose link stays down this long opens an incident (minutes).
    auto_incident_minutes: int = Field(default=5, ge=0, le=1440)
    #: Cloud resource pools (see docs/cloud.md): each a table with name, zone, cloud (its clouds.yaml entry),
    #: region and optionally availability_zone, routers, external_network. From the environment: JSON.
    cloud_pools: list[dict[str, Any]] = Field(default_factory=list)
    #: The clouds.yaml that holds the pools' credentials; empty: openstacksdk's standard lookup
    #: (./clouds.yaml, ~/.config/openstack/, /etc/openstack/). Refused when other users can read it.
    clouds_yaml: Path | None = None
    #: Minutes between inventory syncs of every pool (servers, flavors, images, quotas, capacity).
    cloud_sync_minutes: int = Field(default=10, ge=1, le=1440)
    #: How the post-boot playbook reaches a new VM: its user, the private key of the request's key pair, and
    #: how long to wait for its SSH port after ACTIVE.
    cloud_guest_user: str = "root"
    cloud_ssh_key_path: Path | None = None
    cloud_ssh_wait_seconds: int = Field(default=300, ge=1, le=3600)
    #: Extra inventory variables of every new VM for the post-boot playbook (e.g. ansible_python_interpreter);
    #: values may use Ansible templating ({{ inventory_hostname }}). From the environment: a JSON object.
    cloud_guest_vars: dict[str, Any] = Field(default_factory=dict)
    #: Send session cookies only over HTTPS (set true behind TLS).
    secure_cookies: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if v and not (v.startswith("sqlite") or v.startswith("postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        if v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v[len("postgresql://"):]
        return v

    @field_validator("mail_accepted_recipients", mode="before")
    @classmethod
    def _split_list(cls, v: Any) -> Any:
        """From the environment: comma-separated."""
        return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v

    @field_validator("cloud_pools", "cloud_guest_vars", mode="before")
    @classmethod
    def _from_json(cls, v: Any, info: Any) -> Any:
        """From the environment: JSON (a list of pools; an object of variables)."""
        if isinstance(v, str):
            import json

            empty: Any = [] if info.field_name == "cloud_pools" else {}
            try:
                return json.loads(v) if v.strip() else empty
            except ValueError as exc:
                raise ValueError(f"not valid JSON: {exc}") from exc
        return v

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, v: str) -> str:
        if v and len(v) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    # Derived paths ---------------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.instance_dir / 'ecocloud.db').resolve()}"

    @property
    def effective_audit_key_path(self) -> Path:
        return self.audit_key_path or self.instance_dir / "audit_ed25519.pem"

    @property
    def files_dir(self) -> Path:
        """Instance files (attachments, report archives, backups of configs) live here."""
        return self.instance_dir / "files"


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    fields = set(Settings.model_fields)
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in fields:
            raise ConfigError(f"unknown setting {key} in the environment")
        out[name] = value
    return out


def load_settings(
    config_file: str | Path | None = None,
    environ: dict[str, str] | None = None,
    **explicit: Any,
) -> Settings:
    """Build the settings; raises :class:`ConfigError` naming the bad setting and where it came from."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    source = "defaults"
    path = config_file or environ.get(CONFIG_ENV)
    if path:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                file_values = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {p} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        values.update(file_values)
        source = str(p)
    env_values = _env_overrides(environ)
    values.update(env_values)
    values.update({k: v for k, v in explicit.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "?"
        origin = (
            "explicit argument" if name in explicit
            else f"environment {ENV_PREFIX}{name.upper()}" if name in env_values
            else source
        )
        raise ConfigError(f"invalid setting {name!r} (from {origin}): {err['msg']}") from exc
