"""The REST API: tokens, one error shape, bad input that writes nothing but its audit entry."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from ecocloud_ops.bootstrap import Container
from tests.conftest import Account, api_token, audit_count
from tests.integration.test_console import user_count


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(r: object, status: int, code: str) -> dict:
    body = r.json  # type: ignore[attr-defined]
    assert r.status_code == status, body  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"status", "code", "message", "details"}
    assert body["error"]["status"] == status and body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]


def test_token_auth_and_me(client: FlaskClient, container: Container,
                           make_user: Callable[..., Account]) -> None:
    acc = make_user("api.ops", "network_ops")
    assert_error(client.get("/api/v1/me"), 401, "auth_failed")
    assert_error(client.get("/api/v1/me", headers=auth("eco_nonsense")), 401, "auth_failed")
    r = client.get("/api/v1/me", headers=auth(api_token(container, acc)))
    assert r.status_code == 200 and r.json["username"] == "api.ops" and "sites.manage" in r.json["permissions"]


def test_bad_input_gets_a_clear_4xx_and_writes_only_an_audit_entry(
        client: FlaskClient, container: Container, make_user: Callable[..., Account]) -> None:
    admin = make_user("api.admin", "admin")
    make_user("taken.name", "auditor")
    h = auth(api_token(container, admin)) | {"Content-Type": "application/json"}
    good = {"username": "new.user", "password": "Green-River-2026", "role": "auditor", "site": "000000"}
    cases = [
        ("{not json", 422, "validation_failed", "malformed"),
        ('["a list"]', 422, "validation_failed", "list"),
        ('{"username": "a.b", "password": "Green-River-2026", "role": "auditor", "site": "000000", "colour": 1}',
         422, "validation_failed", "colour"),
        ('{"username": "' + "x" * 500 + '", "password": "Green-River-2026", "role": "auditor", "site": "000000"}',
         422, "validation_failed", "username"),
        ('{"username": "taken.name", "password": "Green-River-2026", "role": "auditor", "site": "000000"}',
         409, "conflict", "already taken"),
        ('{"username": "new.user", "password": "Green-River-2026", "role": "emperor", "site": "000000"}',
         422, "validation_failed", "role"),
        ('{"username": "new.user", "password": "weakpass", "role": "auditor", "site": "000000"}',
         422, "validation_failed", "password"),
    ]
    for body, status, code, mention in cases:
        users, entries = user_count(container), audit_count(container)
        err = assert_error(client.post("/api/v1/users", data=body, headers=h), status, code)
        assert mention in (err["message"] + str(err["details"])), (body[:60], err)
        assert user_count(container) == users
        assert audit_count(container) == entries + 1, body[:60]
    r = client.post("/api/v1/users", json=good, headers=auth(api_token(container, admin)))
    assert r.status_code == 201 and r.json["username"] == "new.user" and "password" not in r.json


def test_provincial_scope_over_the_api(client: FlaskClient, container: Container,
                                       make_user: Callable[..., Account]) -> None:
    acc = make_user("hb.staff", "provincial_staff", "130000")
    gd = make_user("gd.staff", "provincial_staff", "440000")
    h = auth(api_token(container, acc))
    r = client.get("/api/v1/sites?limit=1000", headers=h)
    assert r.status_code == 200 and {s["code"][:2] for s in r.json["items"]} == {"13"}
    assert_error(client.get("/api/v1/sites/440000", headers=h), 404, "not_found")
    err = assert_error(client.get(f"/api/v1/users/{gd.id}", headers=h), 404, "not_found")
    assert "gd.staff" not in str(err)
    r = client.get("/api/v1/users", headers=h)
    assert {u["username"] for u in r.json["items"]} == {"hb.staff"}
    assert client.get("/api/v1/sites/counts", headers=h).json == {
        "ministry": 0, "province": 1, "city": 2, "county": 3, "total": 6}


def test_openapi_documents_every_api_route(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    import re

    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} is not in the OpenAPI document"
            assert doc["paths"][path][method.lower()]["x-permission"]
    assert "UserCreate" in doc["components"]["schemas"]
