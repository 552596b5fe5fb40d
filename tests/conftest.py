"""Shared fixtures. ECOCLOUD_TEST_DATABASE_URL selects PostgreSQL; empty means SQLite files."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ecocloud_ops.audit.service import Actor, ensure_head
from ecocloud_ops.bootstrap import Container, Services
from ecocloud_ops.config import load_settings
from ecocloud_ops.lab.cloud_demo import POOLS as DEMO_POOLS
from ecocloud_ops.migrate import upgrade
from ecocloud_ops.models import Base
from ecocloud_ops.policies.service import seed_defaults
from ecocloud_ops.servicedesk.sla_store import seed_calendar
from ecocloud_ops.sites.service import build_divisions

PG_URL = os.environ.get("ECOCLOUD_TEST_DATABASE_URL", "")
BACKEND = "postgresql" if PG_URL.startswith("postgresql") else "sqlite"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TEST_ACTOR = Actor("tester", channel="system")
PASSWORD = "Correct-Horse-9-Battery"

#: A small tree for fast tests: two provinces (Hebei with a city and counties, Guangdong),
#: and Beijing with districts directly under it.
SMALL_TREE = {
    "110000": "北京市", "110101": "东城区", "110102": "西城区",
    "130000": "河北省", "130100": "石家庄市", "130102": "长安区", "130104": "桥西区",
    "130200": "唐山市", "130202": "路南区",
    "440000": "广东省", "440100": "广州市", "440103": "荔湾区",
}


def pytest_report_header(config: pytest.Config) -> str:
    return f"ecocloud database backend: {BACKEND} ({PG_URL or 'temporary SQLite files'})"


def recreate_pg_database(url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``url``; return the URL pointing at it."""
    import psycopg

    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return u.set(database=name).render_as_string(hide_password=False)


def fresh_database_url(tmp: Path, name: str) -> str:
    if BACKEND == "postgresql":
        return recreate_pg_database(PG_URL, name)
    return f"sqlite:///{tmp / (name + '.db')}"


def make_container(instance: Path, url: str) -> Container:
    return Container(load_settings(environ={}, instance_dir=instance, database_url=url))


def drop_pg_database(url: str) -> None:
    import psycopg

    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("db")
    url = fresh_database_url(tmp, f"ecocloud_test_{os.getpid()}")
    c = make_container(tmp / "instance", url)
    upgrade(c)
    c.dispose()
    yield url
    if BACKEND == "postgresql":
        drop_pg_database(url)


#: Reference data ``db upgrade`` seeds and no test changes: kept between tests (seeded once).
KEEP = {"calendar_days", "calendar_years"}


def _wipe(c: Container) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in KEEP] + ["apscheduler_jobs"]
    with c.engine.begin() as conn:
        if c.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                conn.execute(text(f"DELETE FROM {t}"))
    with c.unit_of_work() as svc:
        ensure_head(svc.session)
        seed_defaults(svc.session)
        seed_calendar(svc.session)


@pytest.fixture
def container(db_url: str, tmp_path: Path) -> Iterator[Container]:
    c = make_container(tmp_path / "instance", db_url)
    _wipe(c)
    yield c
    c.dispose()


@pytest.fixture
def small_tree(container: Container) -> None:
    with container.unit_of_work() as svc:
        svc.sites.sync(TEST_ACTOR, build_divisions(SMALL_TREE))


@dataclass
class Account:
    id: int
    username: str
    password: str
    role: str
    site: str
    totp: str | None


@pytest.fixture
def make_user(container: Container, small_tree: None) -> Callable[..., Account]:
    def make(username: str, role: str, site: str = "000000", team: str | None = None) -> Account:
        with container.unit_of_work() as svc:
            user, secret = svc.auth.create_user(TEST_ACTOR, username=username, password=PASSWORD, role=role,
                                                site_code=site, team=team)
            return Account(user.id, user.username, PASSWORD, role, site, secret)

    return make


@pytest.fixture
def svc(container: Container) -> Iterator[Services]:
    with container.unit_of_work() as s:
        yield s


@pytest.fixture
def app(container: Container) -> Flask:
    from ecocloud_ops.web import create_app

    return create_app(container=container, TESTING=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(client: FlaskClient, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    m = CSRF_RE.search(html)
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def next_totp(secret: str, user_id: int, container: Container) -> str:
    """A code for a time step the account has not used yet (codes are single-use)."""
    import datetime as dt

    from ecocloud_ops.auth.models import User

    with container.unit_of_work() as svc:
        last = svc.session.get(User, user_id).totp_last_step  # type: ignore[union-attr]
    step = int(dt.datetime.now(dt.UTC).timestamp()) // 30
    for s in (step, step + 1):
        if last is None or s > last:
            return pyotp.TOTP(secret).at(s * 30)
    raise AssertionError("no unused TOTP step")


def login(client: FlaskClient, account: Account, container: Container) -> Any:
    token = csrf_from(client)
    r = client.post("/login", data={"username": account.username, "password": account.password,
                                    "csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    if "/login/totp" in r.location:
        assert account.totp
        token = csrf_from(client, "/login/totp")
        r = client.post("/login/totp", data={"code": next_totp(account.totp, account.id, container),
                                             "csrf_token": token})
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return r


def api_token(container: Container, account: Account) -> str:
    with container.unit_of_work() as svc:
        _t, plain = svc.auth.create_token(TEST_ACTOR, svc.auth.by_username(account.username), "test")
    return plain


def audit_count(container: Container) -> int:
    from sqlalchemy import func, select

    from ecocloud_ops.audit.models import AuditEntry

    with container.unit_of_work() as svc:
        return int(svc.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


#: The three pools of the tests: the demo's (three availability zones of one cloud, as in the OpenStack lab).
CLOUD_POOLS = DEMO_POOLS


@pytest.fixture
def fake_cloud(container: Container) -> Any:
    """The three pools on FakeCloud adapters (console, API and CLI tests; the real adapter's tests are in
    tests/lab). Returns the factory: ``fake_cloud.clouds[pool]`` is a pool's FakeCloud."""
    from ecocloud_ops.cloud.fake import fake_factory
    from ecocloud_ops.cloud.pools import Connector

    factory = fake_factory()
    settings = container.settings.model_copy(update={"cloud_pools": CLOUD_POOLS})
    connector = Connector(settings, factory=factory)
    for pool in connector.pools:
        connector.adapter(pool.name)  # so that factory.clouds holds every pool from the start
    container.__dict__["cloud"] = connector
    return factory
