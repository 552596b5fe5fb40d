"""Health checks of a protected service: an HTTP URL, a TCP port or a SQL query (PostgreSQL)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ValidationFailed
from .models import HealthKind

#: One attempt never takes longer than this (connect and answer).
ATTEMPT_TIMEOUT = 2.0


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    detail: str


def check_target(kind: str, target: str, query: str | None) -> None:
    """Refuse a health check that could never work, naming the field."""
    def fail(field: str, message: str) -> ValidationFailed:
        return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])

    if kind not in {k.value for k in HealthKind}:
        raise fail("health_kind", "one of http, tcp, sql")
    target = (target or "").strip()
    if not target or len(target) > 1000:
        raise fail("health_target", "required, at most 1,000 characters")
    if kind == HealthKind.HTTP:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise fail("health_target", "an http:// or https:// URL")
    elif kind == HealthKind.TCP:
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise fail("health_target", "host:port")
    elif kind == HealthKind.SQL:
        import psycopg.conninfo

        try:
            psycopg.conninfo.conninfo_to_dict(target)
        except psycopg.ProgrammingError as exc:
            raise fail("health_target", f"not a PostgreSQL connection string: {exc}") from exc
        if not (query or "").strip():
            raise fail("health_query", "a SQL query whose first column is true when the service is healthy")


def probe(kind: str, target: str, query: str | None = None, timeout: float = ATTEMPT_TIMEOUT) -> HealthResult:
    """One attempt; never raises for an unhealthy service (the reason is in ``detail``)."""
    try:
        if kind == HealthKind.HTTP:
            req = urllib.request.Request(target, headers={"User-Agent": "ecocloud-ops-dr-health"})
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(req, timeout=timeout) as resp:
                return HealthResult(200 <= resp.status < 400, f"HTTP {resp.status}")
        if kind == HealthKind.TCP:
            host, _, port = target.rpartition(":")
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return HealthResult(True, f"TCP {target} accepted")
        if kind == HealthKind.SQL:
            import psycopg

            with psycopg.connect(target, connect_timeout=max(int(timeout), 1), autocommit=True) as conn:
                conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
                row = conn.execute(query or "select 1").fetchone()
                ok = bool(row and row[0])
                return HealthResult(ok, "query answered " + (repr(row[0]) if row else "no row"))
        return HealthResult(False, f"unknown health check kind {kind!r}")
    except urllib.error.HTTPError as exc:
        return HealthResult(False, f"HTTP {exc.code}")
    except Exception as exc:  # unreachable, refused, timed out, authentication, bad SQL: all "not healthy"
        text = str(exc).strip().splitlines()
        return HealthResult(False, f"{type(exc).__name__}: {text[0] if text else ''}"[:300])
