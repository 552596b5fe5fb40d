"""Who is asking: console sessions and API tokens, and the permission every route declares."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, g, redirect, request, session, url_for
from flask_babel import gettext as _

from ..audit.service import Actor
from ..auth.models import User
from ..auth.permissions import AUTHENTICATED, PUBLIC, has_permission
from ..auth.service import user_scope
from ..bootstrap import Container, Services
from ..errors import AuthFailed, PermissionDenied

F = TypeVar("F", bound=Callable[..., Any])
#: Permission of the second-factor pages: a password-only session may reach them, nothing else.
SECOND_FACTOR = "second_factor"


def services() -> Services:
    if "services" not in g:
        g.services = g.container.services(g.db)
    return g.services


def client_ip() -> str:
    return request.remote_addr or ""


def requires(permission: str) -> Callable[[F], F]:
    """Declare and enforce the permission of a route (see ``auth/permissions.py``)."""

    def deco(f: F) -> F:
        @wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            is_api = request.path.startswith("/api/")
            if permission != PUBLIC:
                user: User | None = g.user
                if permission == SECOND_FACTOR:
                    if g.user_session is None:
                        return redirect(url_for("auth.login"))
                elif user is None:
                    if is_api:
                        raise AuthFailed("authentication required: send 'Authorization: Bearer <token>'")
                    return redirect(url_for("auth.login", next=request.full_path))
                elif not has_permission(user.role, permission):
                    raise PermissionDenied(_("Your role (%(role)s) does not have the permission %(perm)s.",
                                             role=user.role, perm=permission))
            return f(*args, **kwargs)

        wrapper._permission = permission  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


def init_app(app: Flask, container: Container) -> None:
    @app.before_request
    def _load_identity() -> None:
        g.container = container
        g.db = container.session_factory()
        g.user = None
        g.user_session = None
        g.scope = None
        is_api = request.path.startswith("/api/")
        channel = "api" if is_api else "console"
        g.actor = Actor("anonymous", channel=channel, ip=client_ip())
        if request.endpoint == "static":
            return
        svc = services()
        if is_api:
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                user = svc.auth.authenticate_token(header[7:].strip())
                g.user = user
        else:
            s = svc.auth.resume_session(session.get("sid"))
            if s is None and session.get("sid"):
                session.pop("sid", None)
            if s is not None:
                g.user_session = s
                if s.fully_authenticated:
                    g.user = s.user
        if g.user is not None:
            g.scope = user_scope(g.user)
            g.actor = Actor(g.user.username, g.user.role, channel, client_ip(), g.user.id)

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is None:
            return
        try:
            if exc is None:
                db.commit()
            else:
                db.rollback()
        finally:
            db.close()

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
        if g.get("user") is not None and not request.path.startswith("/static/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp


__all__ = ["AUTHENTICATED", "PUBLIC", "SECOND_FACTOR", "requires", "services"]
