"""Flask app factory: the console, the REST API and the health check over one Container."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask, g, request, session
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from ..bootstrap import Container
from ..config import Settings
from ..db import utcnow
from ..network.connectivity import SHANGHAI

csrf = CSRFProtect()
SUPPORTED_LANGUAGES = {"zh_CN": "中文", "en": "English"}


def select_locale() -> str:
    user = getattr(g, "user", None)
    if user is not None and user.language in SUPPORTED_LANGUAGES:
        return str(user.language)
    lang = session.get("lang")
    if lang in SUPPORTED_LANGUAGES:
        return str(lang)
    return str(g.container.settings.language) if hasattr(g, "container") else "zh_CN"


def create_app(settings: Settings | None = None, container: Container | None = None,
               **config: Any) -> Flask:
    """Build the web application. Nothing is read from the environment unless ``settings`` is None."""
    container = container or Container(settings)
    container.cloud.check_config()  # a clouds.yaml other users can read: refuse to start
    app = Flask(__name__, template_folder="console/templates", static_folder="static")
    app.config.update(
        SECRET_KEY=container.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=container.settings.secure_cookies,
        SESSION_COOKIE_NAME="ecocloud_session",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        BABEL_DEFAULT_LOCALE=container.settings.language,
        BABEL_TRANSLATION_DIRECTORIES="translations",
        JSON_AS_ASCII=False,
    )
    app.config.update(config)
    app.extensions["ecocloud"] = container
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    Babel(app, locale_selector=select_locale)

    from . import errors, security
    from .api import api_bp
    from .console import register_console

    # Identity first, so a request refused by the CSRF check is audited with its user.
    security.init_app(app, container)
    csrf.init_app(app)
    errors.init_app(app)
    register_console(app)
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)

    @app.context_processor
    def _inject() -> dict[str, Any]:
        from ..auth.permissions import has_permission
        from .labels import (
            CAUSE_LABELS,
            DEVICE_STATUS_LABELS,
            LINK_TIER_LABELS,
            ROLE_LABELS,
            STATE_LABELS,
            TICKET_CATEGORY_LABELS,
            TICKET_STATUS_LABELS,
            TICKET_TYPE_LABELS,
            TIER_LABELS,
        )

        user = getattr(g, "user", None)
        return {
            "current_user": user,
            "can": (lambda perm: user is not None and has_permission(user.role, perm)),
            "languages": SUPPORTED_LANGUAGES,
            "current_language": select_locale(),
            "now": utcnow(),
            "request": request,
            "role_labels": ROLE_LABELS,
            "tier_labels": TIER_LABELS,
            "state_labels": STATE_LABELS,
            "status_labels": DEVICE_STATUS_LABELS,
            "cause_labels": CAUSE_LABELS,
            "link_tier_labels": LINK_TIER_LABELS,
            "ticket_type_labels": TICKET_TYPE_LABELS,
            "ticket_status_labels": TICKET_STATUS_LABELS,
            "ticket_category_labels": TICKET_CATEGORY_LABELS,
            "shanghai": SHANGHAI,
        }

    return app
