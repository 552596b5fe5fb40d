"""The real ``ecocloud-ops`` console script, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select, text

from ecocloud_ops.bootstrap import Container
from tests.conftest import BACKEND, PASSWORD, drop_pg_database, fresh_database_url, make_container

EXE = str(Path(sys.executable).with_name("ecocloud-ops"))


def run(instance: Path, url: str, *args: str, stdin: str | None = None, ok: bool = True,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOCLOUD_")}
    env.update(ECOCLOUD_INSTANCE_DIR=str(instance), ECOCLOUD_DATABASE_URL=url, **(extra_env or {}))
    p = subprocess.run([EXE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)
    if ok:
        assert p.returncode == 0, f"{args}: {p.stderr}"
    return p


@pytest.fixture
def inst(container: Container, small_tree: None) -> tuple[Path, str]:
    return container.settings.instance_dir, container.settings.effective_database_url


def test_help_on_every_command() -> None:
    import click
    from click.testing import CliRunner

    from ecocloud_ops.cli import cli

    def walk(cmd: click.Command, path: list[str]) -> list[list[str]]:
        out = [path]
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                out += walk(sub, [*path, name])
        return out

    paths = walk(cli, [])
    assert len(paths) > 20
    runner = CliRunner()
    for path in paths:
        r = runner.invoke(cli, [*path, "--help"])
        assert r.exit_code == 0 and "Usage:" in r.output, path
    p = subprocess.run([EXE, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "sites" in p.stdout


def test_users_and_tokens(inst: tuple[Path, str]) -> None:
    instance, url = inst
    p = run(instance, url, "users", "create", "--username", "cli.admin", "--role", "admin", "--site", "000000",
            "--json", stdin=PASSWORD + "\n")
    out = json.loads(p.stdout)
    assert out["role"] == "admin" and out["totp_secret"] and out["totp_uri"].startswith("otpauth://")
    p = run(instance, url, "users", "create", "--username", "cli.admin", "--role", "auditor", "--site", "000000",
            "--password", PASSWORD, ok=False)
    assert p.returncode == 1 and p.stderr.strip() == "error: username 'cli.admin' is already taken"
    p = run(instance, url, "users", "create", "--username", "weak.one", "--role", "auditor", "--site", "000000",
            "--password", "password", ok=False)
    assert p.returncode == 1 and "password" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    listed = json.loads(run(instance, url, "users", "list", "--json").stdout)
    assert [u["username"] for u in listed] == ["cli.admin"]
    token = json.loads(run(instance, url, "tokens", "create", "--username", "cli.admin", "--name", "ci",
                           "--json").stdout)
    assert token["token"].startswith("eco_")
    run(instance, url, "tokens", "revoke", str(token["id"]))
    run(instance, url, "users", "disable", "cli.admin")
    run(instance, url, "users", "set-password", "cli.admin", "--password", "Another-Good-Pass-7")
    p = run(instance, url, "audit", "verify", "--json")
    assert json.loads(p.stdout)["ok"] is True
    p = run(instance, url, "sites", "list", "--parent", "130000", "--json")
    assert {s["code"] for s in json.loads(p.stdout)["items"]} == {"130100", "130200"}


def test_bad_setting_stops_with_its_name(inst: tuple[Path, str]) -> None:
    instance, url = inst
    p = run(instance, url, "users", "list", ok=False, extra_env={"ECOCLOUD_PORT": "not-a-port"})
    assert p.returncode == 2 and "'port'" in p.stderr and "ECOCLOUD_PORT" in p.stderr


def test_audit_export_and_tamper_detection(inst: tuple[Path, str], container: Container, tmp_path: Path) -> None:
    instance, url = inst
    run(instance, url, "users", "create", "--username", "a.user", "--role", "auditor", "--site", "000000",
        "--password", PASSWORD)
    export = tmp_path / "audit.jsonl"
    run(instance, url, "audit", "export", "--out", str(export))
    assert "OK" in run(instance, url, "audit", "verify", "--file", str(export)).stdout
    with container.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET detail = 'edited' WHERE seq = 1"))
    p = run(instance, url, "audit", "verify", ok=False)
    assert p.returncode == 1 and "BROKEN at entry 1" in p.stdout


def _dump(c: Container) -> dict[str, list[tuple]]:
    md = MetaData()
    md.reflect(bind=c.engine)
    out = {}
    with c.engine.connect() as conn:
        for t in md.sorted_tables:
            if t.name == "alembic_version":
                continue
            rows = conn.execute(select(t).order_by(*t.primary_key.columns)).all()
            out[t.name] = [tuple(str(v) if v is not None else None for v in r) for r in rows]
    return out


def test_backup_restores_into_an_empty_instance(inst: tuple[Path, str], container: Container,
                                                tmp_path: Path) -> None:
    instance, url = inst
    run(instance, url, "users", "create", "--username", "keep.me", "--role", "admin", "--site", "130000",
        "--password", PASSWORD)
    run(instance, url, "tokens", "create", "--username", "keep.me", "--name", "x")
    backup = tmp_path / "b.tar.gz"
    run(instance, url, "backup", "--out", str(backup))
    assert backup.stat().st_mode & 0o777 == 0o600
    before = _dump(container)

    url2 = fresh_database_url(tmp_path, f"ecocloud_restore_{os.getpid()}")
    inst2 = tmp_path / "restored"
    try:
        run(inst2, url2, "db", "upgrade")
        run(inst2, url2, "restore", str(backup))
        c2 = make_container(inst2, url2)
        after = _dump(c2)
        for table, rows in before.items():
            got = after[table]
            if table == "audit_entries":  # the restore itself appends one entry
                got = got[: len(rows)]
            if table == "audit_head":
                continue
            assert got == rows, table
        assert "OK" in run(inst2, url2, "audit", "verify").stdout, "restored chain verifies with restored key"
        with c2.unit_of_work() as svc:
            from ecocloud_ops.audit.service import Actor

            r = svc.auth.authenticate("keep.me", PASSWORD, Actor("x"))
            assert r.ok and r.needs_totp
            assert svc.auth.verify_totp(r.user, __import__("pyotp").TOTP(  # type: ignore[arg-type]
                c2.box.decrypt(r.user.totp_secret_enc)).now(), Actor("x"))  # type: ignore[union-attr]
        c2.dispose()
        p = run(inst2, url2, "restore", str(backup), ok=False)
        assert p.returncode == 1 and "not empty" in p.stderr
        damaged = tmp_path / "damaged.tar.gz"
        damaged.write_bytes(backup.read_bytes()[:200])
        p = run(inst2, url2, "restore", str(damaged), ok=False)
        assert p.returncode == 1 and "error:" in p.stderr
    finally:
        if BACKEND == "postgresql":
            drop_pg_database(url2)


def test_an_unmigrated_or_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    p = run(tmp_path / "i", empty, "users", "list", ok=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "db upgrade" in p.stderr
    p = run(tmp_path / "i", empty, "worker", ok=False)
    assert p.returncode == 2 and "run 'ecocloud-ops db upgrade'" in p.stderr
    p = run(tmp_path / "i", "postgresql+psycopg://nobody@127.0.0.1:9/none", "users", "list", ok=False)
    assert p.returncode == 1 and "Connection refused" in p.stderr and "Traceback" not in p.stderr
