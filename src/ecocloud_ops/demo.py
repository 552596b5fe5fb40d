"""The embedded demo: SQLite, the national site tree, an admin and a few accounts of other roles."""

from __future__ import annotations

from collections.abc import Callable

from .audit.service import Actor
from .auth.passwords import generate_password
from .bootstrap import Container
from .migrate import upgrade
from .servicedesk.demo import prepare_servicedesk_demo

#: (username, role, site code, display name, team)
DEMO_USERS = [
    ("hebei.staff", "provincial_staff", "130000", "河北省厅 值班员", None),
    ("guangdong.staff", "provincial_staff", "440000", "广东省厅 值班员", None),
    ("desk.zhang", "desk_agent", "000000", "服务台 张敏", "desk"),
    ("vendor.li", "vendor_engineer", "000000", "电信驻场 李工", "vendor-telecom"),
    ("officer", "assessment_officer", "000000", "考核专员 赵评", None),
    ("net.ops", "network_ops", "000000", "网络运维 张工", None),
    ("auditor", "auditor", "000000", "审计员 李审", None),
    ("dr.coord", "dr_coordinator", "000000", "灾备协调员 陈工", None),
    ("cloud.ops", "cloud_ops", "000000", "云平台运维 刘工", None),
    ("secadmin", "security_admin", "000000", "安全管理员 王安", None),
]


def prepare_demo(container: Container, actor: Actor, say: Callable[[str], None]) -> None:
    """Migrate, load the national tree, create the demo accounts once and print their credentials."""
    upgrade(container)
    with container.unit_of_work() as svc:
        report = svc.sites.seed_national(actor)
    say(f"site tree: {report.by_tier} ({report.added} added)")
    with container.unit_of_work() as svc:
        from sqlalchemy import select

        from .auth.models import User

        if svc.session.execute(select(User.id).where(User.username == "admin")).first():
            say("demo accounts already exist (passwords were printed at the first run; "
                "'ecocloud-ops users set-password admin' sets a new one)")
            prepare_servicedesk_demo(container, say)
            return
        password = generate_password()
        _admin, secret = svc.auth.create_user(actor, username="admin", password=password, role="admin",
                                              site_code="000000", display_name="系统管理员")
        others = []
        for username, role, site, name, team in DEMO_USERS:
            pw = generate_password()
            _u, s = svc.auth.create_user(actor, username=username, password=pw, role=role, site_code=site,
                                         display_name=name, team=team)
            others.append((username, role, site, pw, s))
    say("=" * 72)
    say("Demo accounts (shown once):")
    say(f"  admin / {password}")
    say(f"    second factor (TOTP) key: {secret}")
    say("    add it to any authenticator app, or print the current code with:")
    say(f"    .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('{secret}').now())\"")
    for username, role, site, pw, s in others:
        say(f"  {username} / {pw}   ({role}, site {site}{', TOTP key ' + s if s else ''})")
    say("=" * 72)
    prepare_servicedesk_demo(container, say)
