"""One error handler: JSON for the API, HTML for the console. Failed changes are audited."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..audit.service import Actor
from ..errors import EcoCloudError

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz" or (
        request.accept_mimetypes.best == "application/json")


def error_body(status: int, code: str, message: str, details: list[dict] | None = None) -> dict[str, Any]:
    """The one shape of every API error."""
    return {"error": {"status": status, "code": code, "message": message, "details": details or []}}


def _audit_failure(message: str) -> None:
    """A refused change writes nothing but its audit entry."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    db = getattr(g, "db", None)
    container = getattr(g, "container", None)
    if db is None or container is None:
        return
    try:
        db.rollback()
        actor = getattr(g, "actor", None) or Actor("anonymous", channel="api" if wants_json() else "console",
                                                  ip=request.remote_addr or "")
        container.services(db).audit.record(actor, f"http.{request.method.lower()}", target_type="route",
                                            target_id=(request.endpoint or request.path)[:64],
                                            outcome="failure", detail=message[:500])
        db.commit()
    except Exception:  # never hide the original error behind an audit failure
        log.exception("could not audit a refused request")
        db.rollback()


def respond(status: int, code: str, message: str, details: list[dict] | None = None) -> Any:
    _audit_failure(f"{status} {code}: {message}")
    if wants_json():
        return jsonify(error_body(status, code, message, details)), status
    return render_template("error.html", status=status, code=code, message=message, details=details or []), status


def init_app(app: Flask) -> None:
    @app.errorhandler(EcoCloudError)
    def _domain(exc: EcoCloudError) -> Any:
        return respond(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        return respond(400, "csrf_failed", _("The form has expired or lacks its security token. "
                                             "Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        return respond(exc.code or 500, code, exc.description or exc.name or "error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return respond(500, "internal_error", _("An internal error occurred; it has been logged."))
