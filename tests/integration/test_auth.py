import datetime as dt

import pyotp
import pytest

from ecocloud_ops.audit.service import Actor
from ecocloud_ops.auth.models import User, UserSession
from ecocloud_ops.bootstrap import Container
from ecocloud_ops.errors import AuthFailed, Conflict, ValidationFailed
from tests.conftest import PASSWORD, TEST_ACTOR, Account

WEB = Actor("anonymous", channel="console", ip="127.0.0.1")


def test_create_user_validates_every_field(container: Container, small_tree: None) -> None:
    with container.unit_of_work() as svc, pytest.raises(ValidationFailed) as exc:
        svc.auth.create_user(TEST_ACTOR, username="X", password="short", role="wizard", site_code="999999")
    fields = {d["field"] for d in exc.value.details}
    assert {"username", "password", "role", "site"} <= fields


def test_duplicate_username_is_a_conflict(container: Container, make_user: object) -> None:
    make_user("zhang.san", "network_ops")  # type: ignore[operator]
    with container.unit_of_work() as svc, pytest.raises(Conflict, match="already taken"):
        svc.auth.create_user(TEST_ACTOR, username="Zhang.San", password=PASSWORD, role="auditor",
                             site_code="000000")


def test_lockout_after_five_failures_for_fifteen_minutes(container: Container, make_user: object) -> None:
    acc: Account = make_user("li.si", "network_ops")  # type: ignore[operator]
    for i in range(4):
        with container.unit_of_work() as svc:
            assert svc.auth.authenticate("li.si", "wrong", WEB).reason == "bad_credentials", i
    with container.unit_of_work() as svc:
        r = svc.auth.authenticate("li.si", "wrong", WEB)
        assert r.reason == "locked"
        until = r.locked_until
    assert until is not None and dt.timedelta(minutes=14) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(
        minutes=15)
    with container.unit_of_work() as svc:  # the right password does not open a locked account
        assert svc.auth.authenticate("li.si", acc.password, WEB).reason == "locked"
    with container.unit_of_work() as svc:
        u = svc.auth.by_username("li.si")
        u.locked_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with container.unit_of_work() as svc:
        assert svc.auth.authenticate("li.si", acc.password, WEB).ok


def test_admin_needs_totp_and_codes_are_single_use(container: Container, make_user: object) -> None:
    acc: Account = make_user("root.admin", "admin")  # type: ignore[operator]
    assert acc.totp
    with container.unit_of_work() as svc:
        r = svc.auth.authenticate("root.admin", acc.password, WEB)
        assert r.ok and r.needs_totp and not r.needs_enrollment
        user = r.user
        assert user is not None
        assert not svc.auth.verify_totp(user, "000000" if pyotp.TOTP(acc.totp).now() != "000000" else "111111",
                                        WEB)
        code = pyotp.TOTP(acc.totp).now()
        assert svc.auth.verify_totp(user, code, WEB)
        assert not svc.auth.verify_totp(user, code, WEB), "a code is accepted once"
    with container.unit_of_work() as svc:
        stored = svc.session.get(User, acc.id)
        assert stored is not None and acc.totp not in (stored.totp_secret_enc or "")


def test_enrollment_when_no_second_factor_yet(container: Container, make_user: object) -> None:
    acc: Account = make_user("sec.admin", "security_admin")  # type: ignore[operator]
    with container.unit_of_work() as svc:
        user = svc.auth.by_username("sec.admin")
        svc.auth.reset_totp(TEST_ACTOR, user)
    with container.unit_of_work() as svc:
        r = svc.auth.authenticate("sec.admin", acc.password, WEB)
        assert r.needs_enrollment
        secret = pyotp.random_base32()
        assert svc.auth.verify_totp(r.user, pyotp.TOTP(secret).now(), WEB, secret=secret)  # type: ignore[arg-type]
    with container.unit_of_work() as svc:
        assert svc.auth.by_username("sec.admin").totp_secret_enc is not None


def test_sessions_expire_after_idle_minutes(container: Container, make_user: object) -> None:
    make_user("wang.wu", "desk_agent")  # type: ignore[operator]
    with container.unit_of_work() as svc:
        s = svc.auth.start_session(svc.auth.by_username("wang.wu"), WEB, "test", fully=True)
        sid = s.id
    with container.unit_of_work() as svc:
        assert svc.auth.resume_session(sid) is not None
        svc.session.get(UserSession, sid).last_seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31)  # type: ignore[union-attr]
    with container.unit_of_work() as svc:
        assert svc.auth.resume_session(sid) is None
    with container.unit_of_work() as svc:
        assert svc.session.get(UserSession, sid).end_reason == "idle timeout"  # type: ignore[union-attr]


def test_tokens_are_hashed_revocable_and_expire(container: Container, make_user: object) -> None:
    make_user("api.user", "network_ops")  # type: ignore[operator]
    with container.unit_of_work() as svc:
        token, plain = svc.auth.create_token(TEST_ACTOR, svc.auth.by_username("api.user"), "ci", days=1)
        assert plain.startswith("eco_") and token.token_hash != plain and plain not in token.token_hash
    with container.unit_of_work() as svc:
        assert svc.auth.authenticate_token(plain).username == "api.user"
        token = svc.auth.tokens_of(svc.auth.by_username("api.user"))[0]
        token.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with container.unit_of_work() as svc, pytest.raises(AuthFailed):
        svc.auth.authenticate_token(plain)
    with container.unit_of_work() as svc:
        t2, plain2 = svc.auth.create_token(TEST_ACTOR, svc.auth.by_username("api.user"), "ci2")
        svc.auth.revoke_token(TEST_ACTOR, t2)
    with container.unit_of_work() as svc, pytest.raises(AuthFailed):
        svc.auth.authenticate_token(plain2)


def test_disabling_ends_sessions_and_tokens(container: Container, make_user: object) -> None:
    make_user("zhao.liu", "cloud_ops")  # type: ignore[operator]
    with container.unit_of_work() as svc:
        u = svc.auth.by_username("zhao.liu")
        s = svc.auth.start_session(u, WEB, "t", fully=True)
        _t, plain = svc.auth.create_token(TEST_ACTOR, u, "x")
        svc.auth.set_active(TEST_ACTOR, u, False)
        sid = s.id
    with container.unit_of_work() as svc:
        assert svc.auth.resume_session(sid) is None
        with pytest.raises(AuthFailed):
            svc.auth.authenticate_token(plain)
        assert svc.auth.authenticate("zhao.liu", PASSWORD, WEB).reason == "disabled"
