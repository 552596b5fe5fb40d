"""Backup and restore: a consistent copy of every table plus the instance's key files, in one tar.gz.

The table dump is database-neutral JSON, so a SQLite backup restores into PostgreSQL and back."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, func, insert, select, text
from sqlalchemy.types import DateTime

from . import __version__
from .bootstrap import Container
from .errors import Conflict, ValidationFailed
from .migrate import current_revision

FORMAT = "ecocloud-backup/1"
#: Tables ``db upgrade`` fills in a fresh instance (policy defaults, the empty chain head, the working calendar).
SEEDED_TABLES = ("policies", "audit_head", "calendar_days", "calendar_years")
#: Instance files that belong to the data: keys that sign the audit chain and decrypt secrets.
INSTANCE_FILES = ("audit_ed25519.pem", "data.key", "secret_key")


def _metadata(container: Container) -> MetaData:
    md = MetaData()
    md.reflect(bind=container.engine)
    return md


def _ordered(md: MetaData) -> list[Table]:
    return [t for t in md.sorted_tables if t.name != "alembic_version"]


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value: Any, column: Any) -> Any:
    if isinstance(value, dict) and "$dt" in value:
        v = dt.datetime.fromisoformat(value["$dt"])
        if isinstance(column.type, DateTime) and not column.type.timezone and v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return v
    if isinstance(value, dict) and "$date" in value:
        return dt.date.fromisoformat(value["$date"])
    if isinstance(value, dict) and "$b64" in value:
        return base64.b64decode(value["$b64"])
    return value


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> str:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(dt.datetime.now().timestamp())
    tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(data).hexdigest()


def write_backup(container: Container, out: Path) -> dict[str, Any]:
    """Write the backup; returns its manifest (row counts and checksums)."""
    md = _metadata(container)
    counts: dict[str, int] = {}
    checksums: dict[str, str] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    engine = container.engine
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar, engine.begin() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        for table in _ordered(md):
            pk = list(table.primary_key.columns) or list(table.columns)
            rows = conn.execute(select(table).order_by(*pk)).mappings()
            lines = [json.dumps({k: _encode(v) for k, v in r.items()}, ensure_ascii=False, default=str)
                     for r in rows]
            counts[table.name] = len(lines)
            checksums[f"tables/{table.name}.jsonl"] = _add(tar, f"tables/{table.name}.jsonl",
                                                           ("\n".join(lines) + "\n").encode())
        for name in INSTANCE_FILES:
            p = container.settings.instance_dir / name
            if p.exists():
                checksums[f"instance/{name}"] = _add(tar, f"instance/{name}", p.read_bytes())
        files_dir = container.settings.files_dir
        if files_dir.exists():
            for p in sorted(files_dir.rglob("*")):
                if p.is_file():
                    rel = p.relative_to(files_dir).as_posix()
                    checksums[f"files/{rel}"] = _add(tar, f"files/{rel}", p.read_bytes())
        manifest = {"format": FORMAT, "version": __version__, "created_at": dt.datetime.now(dt.UTC).isoformat(),
                    "database": container.engine.dialect.name, "revision": revision, "rows": counts,
                    "checksums": checksums}
        _add(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
    tmp.replace(out)
    return manifest


def _read_archive(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    with tarfile.open(path, mode="r:gz") as tar:
        def read(name: str) -> bytes:
            member = tar.extractfile(name)
            if member is None:
                raise ValidationFailed(f"backup lacks {name}")
            return member.read()

        manifest = json.loads(read("manifest.json"))
        if manifest.get("format") != FORMAT:
            raise ValidationFailed(f"{path} is not an EcoCloud Ops backup")
        blobs = {}
        for name, digest in manifest["checksums"].items():
            data = read(name)
            if hashlib.sha256(data).hexdigest() != digest:
                raise ValidationFailed(f"backup member {name} is damaged (checksum mismatch)")
            blobs[name] = data
    return manifest, blobs


def restore_backup(container: Container, path: Path) -> dict[str, Any]:
    """Restore into an empty instance (schema at the backup's revision, no rows). Returns the manifest.

    Raises ValidationFailed for a damaged or foreign file, Conflict when the target holds data."""
    try:
        manifest, blobs = _read_archive(path)
    except (OSError, EOFError, tarfile.TarError, zlib.error, KeyError, json.JSONDecodeError) as exc:
        raise ValidationFailed(f"{path} is not a readable backup ({type(exc).__name__}: {exc})") from exc
    revision = current_revision(container)
    if revision != manifest["revision"]:
        raise Conflict(f"the target database is at revision {revision}, the backup at {manifest['revision']}: "
                       "run 'ecocloud-ops db upgrade' on a matching version first")
    md = _metadata(container)
    tables = _ordered(md)
    with container.engine.begin() as conn:
        for table in tables:
            if table.name in SEEDED_TABLES:
                continue  # written by db upgrade; replaced below
            if conn.execute(select(func.count()).select_from(table)).scalar():
                raise Conflict(f"the target database is not empty (table {table.name} has rows): "
                               "restore only into a fresh instance")
        for name in SEEDED_TABLES:
            conn.execute(md.tables[name].delete())
        for table in tables:
            raw = blobs.get(f"tables/{table.name}.jsonl", b"").decode()
            rows = []
            for line in raw.splitlines():
                if line.strip():
                    rec = json.loads(line)
                    rows.append({k: _decode(v, table.c[k]) for k, v in rec.items() if k in table.c})
            for i in range(0, len(rows), 500):
                conn.execute(insert(table), rows[i:i + 500])
        if conn.dialect.name == "postgresql":
            for table in tables:
                pk = list(table.primary_key.columns)
                if len(pk) == 1 and pk[0].autoincrement is not False and str(pk[0].type).upper() in (
                        "INTEGER", "BIGINT"):
                    conn.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                        f"COALESCE((SELECT MAX({pk[0].name}) FROM {table.name}), 0) + 1, false)"
                    ).execution_options(no_parameters=True))
    inst = container.settings.instance_dir
    for name, data in blobs.items():
        if name.startswith("instance/") or name.startswith("files/"):
            target = inst / name.split("/", 1)[1] if name.startswith("instance/") else \
                container.settings.files_dir / name.split("/", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            # Keys stay owner-only; files (attachments, archives) keep the mode they are written with.
            mode = 0o600 if name.startswith("instance/") else 0o640
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
    # Forget cached keys: the restored files are the instance's keys now.
    for attr in ("signer", "box", "secret_key"):
        container.__dict__.pop(attr, None)
    return dict(manifest)


__all__ = ["restore_backup", "write_backup"]
