"""The console through Flask's test client with CSRF on: login, second factor, language, bad input."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import func, select

from ecocloud_ops.auth.models import User
from ecocloud_ops.bootstrap import Container
from tests.conftest import Account, audit_count, csrf_from, login, next_totp


def user_count(container: Container) -> int:
    with container.unit_of_work() as svc:
        return int(svc.session.execute(select(func.count()).select_from(User)).scalar_one())


def test_login_page_is_chinese_by_default(client: FlaskClient, small_tree: None) -> None:
    html = client.get("/login").get_data(as_text=True)
    assert 'lang="zh-CN"' in html and "登录" in html and "/static/vendor/bootstrap/bootstrap.min.css" in html
    assert client.get("/static/vendor/bootstrap/bootstrap.min.css").status_code == 200


def test_admin_logs_in_with_totp_and_sees_the_home_counts(client: FlaskClient, container: Container,
                                                         make_user: Callable[..., Account]) -> None:
    admin = make_user("admin.one", "admin")
    token = csrf_from(client)
    r = client.post("/login", data={"username": "admin.one", "password": admin.password, "csrf_token": token})
    assert r.status_code == 302 and r.location.endswith("/login/totp")
    assert client.get("/").status_code == 302, "no page before the second factor"
    token = csrf_from(client, "/login/totp")
    r = client.post("/login/totp", data={"code": "12345", "csrf_token": token})
    assert r.status_code == 401 and "验证码" in r.get_data(as_text=True)
    r = client.post("/login/totp", data={"code": next_totp(admin.totp or "", admin.id, container),
                                         "csrf_token": token})
    assert r.status_code == 302
    html = client.get("/").get_data(as_text=True)
    assert 'id="count-province">3<' in html and 'id="count-county">6<' in html
    assert "后台工作进程" in html, "the worker warning shows while no worker runs"


def test_language_switch_is_kept_per_user(client: FlaskClient, container: Container,
                                          make_user: Callable[..., Account]) -> None:
    acc = make_user("net.eng", "network_ops")
    login(client, acc, container)
    assert "退出" in client.get("/").get_data(as_text=True)
    token = csrf_from(client, "/")
    r = client.post("/language", data={"language": "en", "csrf_token": token, "next": "/"})
    assert r.status_code == 302
    assert "Log out" in client.get("/").get_data(as_text=True)
    with container.unit_of_work() as svc:
        assert svc.auth.by_username("net.eng").language == "en"


def test_wrong_password_and_lockout_messages(client: FlaskClient, container: Container,
                                             make_user: Callable[..., Account]) -> None:
    make_user("wu.qi", "desk_agent")
    before = audit_count(container)
    for _ in range(4):
        r = client.post("/login", data={"username": "wu.qi", "password": "nope", "csrf_token": csrf_from(client)})
        assert r.status_code == 401 and "用户名或密码错误" in r.get_data(as_text=True)
    r = client.post("/login", data={"username": "wu.qi", "password": "nope", "csrf_token": csrf_from(client)})
    assert r.status_code == 423 and "锁定" in r.get_data(as_text=True)
    assert audit_count(container) == before + 5


def test_missing_csrf_token_is_refused_and_writes_only_the_audit_entry(
        client: FlaskClient, container: Container, make_user: Callable[..., Account]) -> None:
    admin = make_user("admin.two", "admin")
    login(client, admin, container)
    users, entries = user_count(container), audit_count(container)
    r = client.post("/users/new", data={"username": "new.person", "password": "Green-River-2026",
                                        "role": "auditor", "site": "000000"})
    assert r.status_code == 400 and "安全令牌" in r.get_data(as_text=True)
    assert user_count(container) == users
    assert audit_count(container) == entries + 1


def test_form_bad_input_and_double_submit(client: FlaskClient, container: Container,
                                          make_user: Callable[..., Account]) -> None:
    admin = make_user("admin.three", "admin")
    login(client, admin, container)
    token = csrf_from(client, "/users/new")
    form = {"username": "chen.ba", "password": "Green-River-2026", "role": "auditor", "site": "000000",
            "csrf_token": token}
    r = client.post("/users/new", data=form)
    assert r.status_code == 302
    users, entries = user_count(container), audit_count(container)
    r = client.post("/users/new", data=form)  # the same submit again
    assert r.status_code == 409 and "chen.ba" in r.get_data(as_text=True)
    r = client.post("/users/new", data=form | {"username": "x" * 300})
    assert r.status_code == 422
    r = client.post("/users/new", data=form | {"username": "weak.pw", "password": "password123"})
    assert r.status_code == 422
    assert user_count(container) == users
    assert audit_count(container) == entries + 3, "each refusal leaves one audit entry and nothing else"


def test_provincial_staff_home_counts_only_their_subtree(client: FlaskClient, container: Container,
                                                         make_user: Callable[..., Account]) -> None:
    acc = make_user("hebei.user", "provincial_staff", "130000")
    login(client, acc, container)
    html = client.get("/").get_data(as_text=True)
    assert 'id="count-province">1<' in html and 'id="count-city">2<' in html and 'id="count-county">3<' in html
    assert "广州" not in client.get("/sites?q=广").get_data(as_text=True)


def test_logout_ends_the_session(client: FlaskClient, container: Container,
                                 make_user: Callable[..., Account]) -> None:
    acc = make_user("zhou.jiu", "auditor")
    login(client, acc, container)
    r = client.post("/logout", data={"csrf_token": csrf_from(client, "/")})
    assert r.status_code == 302
    assert client.get("/").status_code == 302
