"""Accounts (admin), security policy and sessions (security admin), the audit log (auditor)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from ...audit.service import AuditFilter
from ...auth.permissions import Role
from ...auth.service import user_summary
from ...errors import ValidationFailed
from ..security import requires, services

bp = Blueprint("admin", __name__)


# Users -------------------------------------------------------------------------------------
@bp.route("/users")
@requires("users.read")
def users() -> Any:
    role = request.args.get("role") or None
    q = (request.args.get("q") or "").strip()[:64] or None
    rows, total = services().auth.list_users(g.scope, role=role, query=q)
    return render_template("users.html", users=rows, total=total, roles=list(Role), role=role, q=q or "")


@bp.route("/users/new", methods=["GET", "POST"])
@requires("users.manage")
def new_user() -> Any:
    if request.method == "POST":
        f = request.form
        user, secret = services().auth.create_user(
            g.actor, username=f.get("username", ""), password=f.get("password", ""), role=f.get("role", ""),
            site_code=f.get("site", "").strip(), display_name=f.get("display_name", ""),
            email=f.get("email", ""), team=f.get("team") or None)
        session["new_user_totp"] = secret
        flash(_("Account %(name)s created.", name=user.username), "success")
        return redirect(url_for("admin.user", user_id=user.id))
    return render_template("user_new.html", roles=list(Role))


@bp.route("/users/<int:user_id>")
@requires("users.read")
def user(user_id: int) -> Any:
    svc = services()
    u = svc.auth.get_user(user_id, g.scope)
    secret = session.pop("new_user_totp", None)
    uri = svc.auth.provisioning_uri(u, secret) if secret else None
    return render_template("user.html", user=u, roles=list(Role), totp_secret=secret, totp_uri=uri)


@bp.route("/users/<int:user_id>/edit", methods=["POST"])
@requires("users.manage")
def edit_user(user_id: int) -> Any:
    svc = services()
    u = svc.auth.get_user(user_id, g.scope)
    f = request.form
    changes = {k: f[k] for k in ("role", "display_name", "email", "team") if k in f}
    if f.get("site"):
        changes["site"] = f["site"].strip()
    svc.auth.update_user(g.actor, u, **changes)
    flash(_("Saved."), "success")
    return redirect(url_for("admin.user", user_id=u.id))


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@requires("users.manage")
def set_user_password(user_id: int) -> Any:
    svc = services()
    u = svc.auth.get_user(user_id, g.scope)
    svc.auth.set_password(g.actor, u, request.form.get("password", ""))
    flash(_("Password set."), "success")
    return redirect(url_for("admin.user", user_id=u.id))


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
@requires("users.manage")
def disable_user(user_id: int) -> Any:
    svc = services()
    svc.auth.set_active(g.actor, svc.auth.get_user(user_id, g.scope), False)
    return redirect(url_for("admin.user", user_id=user_id))


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
@requires("users.manage")
def enable_user(user_id: int) -> Any:
    svc = services()
    svc.auth.set_active(g.actor, svc.auth.get_user(user_id, g.scope), True)
    return redirect(url_for("admin.user", user_id=user_id))


# Security ----------------------------------------------------------------------------------
@bp.route("/security")
@requires("security.manage")
def security() -> Any:
    svc = services()
    locked, _n = svc.auth.list_users(g.scope)
    now = dt.datetime.now(dt.UTC)
    return render_template("security.html", policy=svc.policies.security(),
                           locked=[u for u in locked if u.locked_until and u.locked_until > now],
                           users=locked, sessions=svc.auth.active_sessions(g.scope),
                           tokens=svc.auth.all_tokens(g.scope))


@bp.route("/security/policy", methods=["POST"])
@requires("security.manage")
def update_policy() -> Any:
    f = request.form
    changes: dict[str, Any] = {}
    for key in ("password_min_length", "password_min_classes", "lockout_threshold", "lockout_minutes",
                "session_idle_minutes", "token_max_days"):
        if f.get(key):
            if not f[key].strip().isdigit():
                raise ValidationFailed(_("%(field)s must be a whole number.", field=key),
                                       details=[{"field": key, "message": "not a number"}])
            changes[key] = int(f[key])
    if "totp_required_roles" in f:
        changes["totp_required_roles"] = f.getlist("totp_required_roles")
    services().policies.update(g.actor, "security", changes)
    flash(_("Security policy saved."), "success")
    return redirect(url_for("admin.security"))


@bp.route("/security/users/<int:user_id>/unlock", methods=["POST"])
@requires("security.manage")
def unlock_user(user_id: int) -> Any:
    svc = services()
    svc.auth.unlock(g.actor, svc.auth.get_user(user_id, g.scope))
    flash(_("Account unlocked."), "success")
    return redirect(url_for("admin.security"))


@bp.route("/security/users/<int:user_id>/reset-2fa", methods=["POST"])
@requires("security.manage")
def reset_2fa(user_id: int) -> Any:
    svc = services()
    svc.auth.reset_totp(g.actor, svc.auth.get_user(user_id, g.scope))
    flash(_("Second factor reset: the user enrolls a new one at the next login."), "success")
    return redirect(url_for("admin.security"))


@bp.route("/security/sessions/<sid>/revoke", methods=["POST"])
@requires("security.manage")
def revoke_session(sid: str) -> Any:
    svc = services()
    s = svc.auth.get_session(sid)
    if not g.scope.contains_path(s.user.site.path):
        from ...errors import NotFound

        raise NotFound("session not found")
    svc.auth.end_session(s, "revoked by security admin", g.actor)
    flash(_("Session ended."), "success")
    return redirect(url_for("admin.security"))


@bp.route("/security/tokens/<int:token_id>/revoke", methods=["POST"])
@requires("security.manage")
def revoke_any_token(token_id: int) -> Any:
    svc = services()
    svc.auth.revoke_token(g.actor, svc.auth.get_token(token_id, owner=None, scope=g.scope))
    flash(_("Token revoked."), "success")
    return redirect(url_for("admin.security"))


# Audit -------------------------------------------------------------------------------------
def _audit_filter() -> AuditFilter:
    a = request.args

    def day(name: str) -> dt.datetime | None:
        v = a.get(name)
        if not v:
            return None
        try:
            return dt.datetime.fromisoformat(v).replace(tzinfo=dt.UTC)
        except ValueError as exc:
            raise ValidationFailed(f"{name}: expected YYYY-MM-DD",
                                   details=[{"field": name, "message": "expected YYYY-MM-DD"}]) from exc

    return AuditFilter(actor=a.get("actor") or None, action=a.get("action") or None,
                       target_type=a.get("target_type") or None, outcome=a.get("outcome") or None,
                       since=day("since"), until=day("until"))


@bp.route("/audit")
@requires("audit.read")
def audit() -> Any:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    entries = services().audit.search(_audit_filter(), limit=100, offset=(page - 1) * 100)
    return render_template("audit.html", entries=entries, page=page, args=request.args)


@bp.route("/audit/verify")
@requires("audit.read")
def audit_verify() -> Any:
    result = services().audit.verify()
    return render_template("audit_verify.html", result=result)


@bp.route("/audit/export")
@requires("audit.export")
def audit_export() -> Any:
    f = _audit_filter()
    svc = services()
    svc.audit.record(g.actor, "audit.export", detail=f"since={f.since} until={f.until}")
    body = "\n".join(svc.audit.export_lines(f.since, f.until)) + "\n"
    g.db.commit()
    name = f"audit-{dt.date.today().isoformat()}.jsonl"
    return Response(body, mimetype="application/x-ndjson",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


__all__ = ["bp", "user_summary"]
