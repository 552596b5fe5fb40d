"""Login (password, then TOTP), enrollment of a second factor, logout, language, own profile."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from ...auth.permissions import AUTHENTICATED, PUBLIC
from ...errors import ValidationFailed
from ..security import SECOND_FACTOR, requires, services

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not target.startswith("/login"):
        return target
    return url_for("main.home")


@bp.route("/login", methods=["GET", "POST"])
@requires(PUBLIC)
def login() -> Any:
    if g.user is not None:
        return redirect(url_for("main.home"))
    error = None
    if request.method == "POST":
        username = request.form.get("username", "")[:64]
        password = request.form.get("password", "")[:256]
        svc = services()
        result = svc.auth.authenticate(username, password, g.actor)
        if result.ok and result.user is not None:
            session.clear()
            s = svc.auth.start_session(result.user, g.actor, request.user_agent.string,
                                       fully=not result.needs_totp)
            session["sid"] = s.id
            session["next"] = _safe_next(request.args.get("next"))
            g.db.commit()
            if result.needs_enrollment:
                return redirect(url_for("auth.enroll"))
            if result.needs_totp:
                return redirect(url_for("auth.totp"))
            return redirect(session.pop("next"))
        g.db.commit()  # keep the failure counter and the audit entry
        if result.reason == "locked":
            error = _("This account is locked after repeated failures. Try again after %(when)s (UTC) "
                      "or ask a security administrator to unlock it.",
                      when=result.locked_until.strftime("%H:%M") if result.locked_until else "?")
            status = 423
        elif result.reason == "disabled":
            error = _("This account is disabled.")
            status = 403
        else:
            error = _("Wrong username or password.")
            status = 401
        return render_template("login.html", error=error, username=username), status
    return render_template("login.html", error=error, username="")


@bp.route("/login/totp", methods=["GET", "POST"])
@requires(SECOND_FACTOR)
def totp() -> Any:
    s = g.user_session
    if s.fully_authenticated:
        return redirect(url_for("main.home"))
    if s.user.totp_secret_enc is None:
        return redirect(url_for("auth.enroll"))
    error = None
    if request.method == "POST":
        ok = services().auth.verify_totp(s.user, request.form.get("code", "")[:16], g.actor)
        if ok:
            s.fully_authenticated = True
            g.db.commit()
            return redirect(session.pop("next", url_for("main.home")))
        g.db.commit()
        if s.user.locked_until is not None:
            services().auth.end_session(s, "locked")
            g.db.commit()
            session.clear()
            return render_template("login.html", error=_("Too many wrong codes: the account is locked."),
                                   username=s.user.username), 423
        error = _("Wrong or already used code. Enter the current 6-digit code from your authenticator app.")
        return render_template("totp.html", error=error), 401
    return render_template("totp.html", error=error)


@bp.route("/login/enroll", methods=["GET", "POST"])
@requires(SECOND_FACTOR)
def enroll() -> Any:
    import pyotp

    s = g.user_session
    if s.fully_authenticated or s.user.totp_secret_enc is not None:
        return redirect(url_for("main.home"))
    secret = session.get("pending_totp") or pyotp.random_base32()
    session["pending_totp"] = secret
    error = None
    if request.method == "POST":
        if services().auth.verify_totp(s.user, request.form.get("code", "")[:16], g.actor, secret=secret):
            s.fully_authenticated = True
            session.pop("pending_totp", None)
            g.db.commit()
            return redirect(session.pop("next", url_for("main.home")))
        g.db.commit()
        error = _("The code does not match. Check the clock of your device and try again.")
    uri = services().auth.provisioning_uri(s.user, secret)
    return render_template("enroll.html", secret=secret, uri=uri, error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
@requires(SECOND_FACTOR)
def logout() -> Any:
    if g.user_session is not None:
        services().auth.end_session(g.user_session, "logout", g.actor if g.user else None)
    session.clear()
    flash(_("You have been logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
@requires(PUBLIC)
def language() -> Any:
    lang = request.form.get("language", "")
    from .. import SUPPORTED_LANGUAGES

    if lang not in SUPPORTED_LANGUAGES:
        raise ValidationFailed(_("Unknown language."), details=[{"field": "language", "message": "zh_CN or en"}])
    session["lang"] = lang
    if g.user is not None and g.user.language != lang:
        services().auth.update_user(g.actor, g.user, language=lang)
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/profile")
@requires(AUTHENTICATED)
def profile() -> Any:
    tokens = services().auth.tokens_of(g.user)
    return render_template("profile.html", tokens=tokens, new_token=session.pop("new_token", None))


@bp.route("/profile/password", methods=["POST"])
@requires(AUTHENTICATED)
def change_password() -> Any:
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        raise ValidationFailed(_("The two new passwords differ."),
                               details=[{"field": "confirm_password", "message": "differs"}])
    svc = services()
    try:
        svc.auth.set_password(g.actor, g.user, new, current_password=request.form.get("current_password", ""))
    except ValidationFailed:
        g.db.commit()  # the failed attempt stays in the audit log
        raise
    flash(_("Password changed."), "success")
    return redirect(url_for("auth.profile"))


@bp.route("/profile/tokens", methods=["POST"])
@requires("tokens.own")
def create_token() -> Any:
    days = request.form.get("days", "")
    token, plain = services().auth.create_token(g.actor, g.user, request.form.get("name", ""),
                                                int(days) if days.isdigit() else None)
    session["new_token"] = plain
    return redirect(url_for("auth.profile"))


@bp.route("/profile/tokens/<int:token_id>/revoke", methods=["POST"])
@requires("tokens.own")
def revoke_token(token_id: int) -> Any:
    svc = services()
    svc.auth.revoke_token(g.actor, svc.auth.get_token(token_id, owner=g.user, scope=g.scope))
    flash(_("Token revoked."), "success")
    return redirect(url_for("auth.profile"))
