"""Accounts, login with lockout and TOTP, console sessions and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

import pyotp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..crypto import SecretBox
from ..db import utcnow
from ..errors import AuthFailed, Conflict, NotFound, ValidationFailed
from ..policies.service import PolicyService, SecurityPolicy
from ..sites.models import Site
from .models import ApiToken, User, UserSession
from .passwords import hash_password, needs_rehash, password_problems, verify_password
from .permissions import Role
from .scope import Scope

USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{2,63}$")
TOKEN_PREFIX = "eco_"
TOTP_ISSUER = "EcoCloud Ops"


def user_scope(user: User) -> Scope:
    return Scope.for_user(user.role, user.site.path)


def user_summary(user: User) -> dict[str, Any]:
    """What the audit log and the API show of an account (never secrets)."""
    return {
        "id": user.id, "username": user.username, "display_name": user.display_name, "email": user.email,
        "role": user.role, "site": user.site.code if user.site else None, "is_active": user.is_active,
        "team": user.team, "language": user.language, "totp_enrolled": user.totp_secret_enc is not None,
        "locked_until": user.locked_until.isoformat() if user.locked_until else None,
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


@dataclass
class LoginResult:
    """Outcome of a password check. Failure is data: the caller commits the counters and audit entry."""

    ok: bool
    user: User | None = None
    reason: str = ""  # bad_credentials, locked, disabled
    needs_totp: bool = False
    needs_enrollment: bool = False
    locked_until: dt.datetime | None = None


class AuthService:
    def __init__(self, session: Session, audit: AuditLog, box: SecretBox, policies: PolicyService) -> None:
        self.session = session
        self.audit = audit
        self.box = box
        self.policies = policies

    # Accounts ------------------------------------------------------------------------------
    def _policy(self) -> SecurityPolicy:
        return self.policies.security()

    def check_password(self, password: str, username: str) -> None:
        problems = password_problems(password, username, self._policy())
        if problems:
            raise ValidationFailed("password " + "; ".join(problems),
                                   details=[{"field": "password", "message": p} for p in problems])

    def requires_totp(self, role: str) -> bool:
        return role in self._policy().totp_required_roles

    def create_user(self, actor: Actor, *, username: str, password: str, role: str, site_code: str,
                    display_name: str = "", email: str = "", team: str | None = None,
                    language: str | None = None) -> tuple[User, str | None]:
        """Create an account. Returns the user and, for roles that need 2FA, the new TOTP secret
        (shown once). Raises ValidationFailed for bad fields, Conflict for a taken username."""
        errors = []
        username = (username or "").strip().lower()
        if not USERNAME_RE.match(username):
            errors.append({"field": "username",
                           "message": "3-64 characters: lower-case letters, digits, '.', '_' or '-', "
                                      "starting with a letter"})
        try:
            Role(role)
        except ValueError:
            errors.append({"field": "role", "message": f"unknown role {role!r}"})
        if len(display_name) > 100:
            errors.append({"field": "display_name", "message": "at most 100 characters"})
        if len(email) > 200 or (email and "@" not in email):
            errors.append({"field": "email", "message": "not an e-mail address"})
        if language not in (None, "zh_CN", "en"):
            errors.append({"field": "language", "message": "zh_CN or en"})
        if role == Role.VENDOR_ENGINEER and not team:
            errors.append({"field": "team", "message": "a vendor engineer belongs to a vendor team"})
        site = self.session.execute(select(Site).where(Site.code == site_code)).scalar_one_or_none()
        if site is None or site.retired_at is not None:
            errors.append({"field": "site", "message": f"no active site with code {site_code!r}"})
        errors += [{"field": "password", "message": p}
                   for p in password_problems(password or "", username, self._policy())]
        if errors:
            raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors), details=errors)
        if self.session.execute(select(User.id).where(User.username == username)).first():
            raise Conflict(f"username {username!r} is already taken")
        assert site is not None
        user = User(username=username, display_name=display_name, email=email, role=role, site=site,
                    password_hash=hash_password(password), team=team, language=language)
        secret = None
        if self.requires_totp(role):
            secret = pyotp.random_base32()
            user.totp_secret_enc = self.box.encrypt(secret)
        self.session.add(user)
        self.session.flush()
        self.audit.record(actor, "user.create", target_type="user", target_id=user.username,
                          after=user_summary(user))
        return user, secret

    def get_user(self, user_id: int, scope: Scope) -> User:
        user = self.session.execute(
            select(User).join(User.site).where(User.id == user_id, scope.site_clause())
        ).scalar_one_or_none()
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    def by_username(self, username: str) -> User:
        user = self.session.execute(select(User).where(User.username == username.lower())).scalar_one_or_none()
        if user is None:
            raise NotFound(f"user {username!r} not found")
        return user

    def list_users(self, scope: Scope, *, role: str | None = None, query: str | None = None,
                   limit: int = 200, offset: int = 0) -> tuple[list[User], int]:
        q = select(User).join(User.site).where(scope.site_clause())
        if role:
            q = q.where(User.role == role)
        if query:
            q = q.where(User.username.contains(query.lower(), autoescape=True)
                        | User.display_name.contains(query, autoescape=True))
        total = self.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        rows = self.session.execute(q.order_by(User.username).limit(limit).offset(offset)).scalars()
        return list(rows), int(total)

    def set_password(self, actor: Actor, user: User, new_password: str, *,
                     current_password: str | None = None) -> None:
        """Change a password; with ``current_password`` (self-service) it must match."""
        if current_password is not None and not verify_password(user.password_hash, current_password):
            self.audit.record(actor, "user.password_change", target_type="user", target_id=user.username,
                              outcome="failure", detail="current password wrong")
            raise ValidationFailed("the current password is wrong",
                                   details=[{"field": "current_password", "message": "wrong"}])
        self.check_password(new_password, user.username)
        if verify_password(user.password_hash, new_password):
            raise ValidationFailed("the new password must differ from the current one",
                                   details=[{"field": "password", "message": "same as current"}])
        user.password_hash = hash_password(new_password)
        user.password_changed_at = utcnow()
        user.failed_logins = 0
        user.locked_until = None
        self.audit.record(actor, "user.password_set", target_type="user", target_id=user.username)

    def set_active(self, actor: Actor, user: User, active: bool) -> None:
        if actor.user_id == user.id and not active:
            raise Conflict("you cannot disable your own account")
        before = user_summary(user)
        user.is_active = active
        if not active:
            self.end_sessions(user, "account disabled")
            for t in self.session.execute(select(ApiToken).where(ApiToken.user_id == user.id,
                                                                 ApiToken.revoked_at.is_(None))).scalars():
                t.revoked_at = utcnow()
        self.audit.record(actor, "user.enable" if active else "user.disable", target_type="user",
                          target_id=user.username, before=before, after=user_summary(user))

    def update_user(self, actor: Actor, user: User, **changes: Any) -> None:
        """Change role, site, display name, e-mail, team or language."""
        before = user_summary(user)
        if "role" in changes:
            try:
                Role(changes["role"])
            except ValueError as exc:
                raise ValidationFailed(f"unknown role {changes['role']!r}",
                                       details=[{"field": "role", "message": "unknown"}]) from exc
        if "site" in changes:
            site = self.session.execute(select(Site).where(Site.code == changes.pop("site"))).scalar_one_or_none()
            if site is None:
                raise ValidationFailed("no such site", details=[{"field": "site", "message": "unknown"}])
            user.site = site
        for k in ("role", "display_name", "email", "team", "language"):
            if k in changes:
                setattr(user, k, changes[k])
        self.session.flush()
        self.audit.record(actor, "user.update", target_type="user", target_id=user.username, before=before,
                          after=user_summary(user))

    def unlock(self, actor: Actor, user: User) -> None:
        user.failed_logins = 0
        user.locked_until = None
        self.audit.record(actor, "user.unlock", target_type="user", target_id=user.username)

    def reset_totp(self, actor: Actor, user: User) -> None:
        """Forget the second factor; the user enrolls a new one at the next login."""
        user.totp_secret_enc = None
        user.totp_last_step = None
        self.end_sessions(user, "2FA reset")
        self.audit.record(actor, "user.totp_reset", target_type="user", target_id=user.username)

    # Login ---------------------------------------------------------------------------------
    def authenticate(self, username: str, password: str, actor: Actor) -> LoginResult:
        """Check a password with lockout. Records the attempt in the audit log either way."""
        now = utcnow()
        user = self.session.execute(
            select(User).where(User.username == (username or "").strip().lower())
        ).scalar_one_or_none()
        ok = verify_password(user.password_hash if user else None, password or "")
        who = Actor(username=(username or "?")[:64], role=user.role if user else "", channel=actor.channel,
                    ip=actor.ip, user_id=user.id if user else None)
        if user is None:
            self.audit.record(who, "auth.login", outcome="failure", detail="unknown user")
            return LoginResult(False, reason="bad_credentials")
        if user.locked_until and user.locked_until > now:
            self.audit.record(who, "auth.login", target_type="user", target_id=user.username,
                              outcome="failure", detail="account locked")
            return LoginResult(False, user=user, reason="locked", locked_until=user.locked_until)
        if not ok:
            locked = self._count_failure(user, who, "auth.login", "wrong password")
            if locked:
                return LoginResult(False, user=user, reason="locked", locked_until=user.locked_until)
            return LoginResult(False, user=user, reason="bad_credentials")
        if not user.is_active:
            self.audit.record(who, "auth.login", target_type="user", target_id=user.username,
                              outcome="failure", detail="account disabled")
            return LoginResult(False, user=user, reason="disabled")
        user.failed_logins = 0
        user.locked_until = None
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        needs_totp = self.requires_totp(user.role) or user.totp_secret_enc is not None
        if needs_totp:
            self.audit.record(who, "auth.password_ok", target_type="user", target_id=user.username,
                              detail="second factor pending")
        else:
            user.last_login_at = now
            self.audit.record(who, "auth.login", target_type="user", target_id=user.username,
                              detail="password")
        return LoginResult(True, user=user, needs_totp=needs_totp,
                           needs_enrollment=needs_totp and user.totp_secret_enc is None)

    def _count_failure(self, user: User, who: Actor, action: str, what: str) -> bool:
        """Count a failed factor and audit it; lock the account at the threshold. True when locked now."""
        policy = self._policy()
        user.failed_logins += 1
        detail = f"{what} ({user.failed_logins}/{policy.lockout_threshold})"
        locked = user.failed_logins >= policy.lockout_threshold
        if locked:
            user.locked_until = utcnow() + dt.timedelta(minutes=policy.lockout_minutes)
            user.failed_logins = 0
            detail += f"; locked for {policy.lockout_minutes} minutes"
        self.audit.record(who, action, target_type="user", target_id=user.username, outcome="failure",
                          detail=detail)
        return locked

    def verify_totp(self, user: User, code: str, actor: Actor, *, secret: str | None = None) -> bool:
        """Check a TOTP code (±1 step, no replay). With ``secret`` it confirms an enrollment."""
        now = utcnow()
        who = Actor(user.username, user.role, actor.channel, actor.ip, user.id)
        if user.locked_until and user.locked_until > now:
            self.audit.record(who, "auth.totp", target_type="user", target_id=user.username,
                              outcome="failure", detail="account locked")
            return False
        seed = secret or (self.box.decrypt(user.totp_secret_enc) if user.totp_secret_enc else None)
        code = (code or "").strip().replace(" ", "")
        matched_step = None
        if seed and code.isdigit() and len(code) == 6:
            totp = pyotp.TOTP(seed)
            step_now = int(now.timestamp()) // 30
            for step in (step_now - 1, step_now, step_now + 1):
                if secrets.compare_digest(totp.at(step * 30), code):
                    matched_step = step
        if matched_step is None or (user.totp_last_step is not None and matched_step <= user.totp_last_step):
            self._count_failure(user, who, "auth.totp", "wrong or reused code")
            return False
        user.totp_last_step = matched_step
        user.failed_logins = 0
        if secret:
            user.totp_secret_enc = self.box.encrypt(secret)
            self.audit.record(who, "user.totp_enroll", target_type="user", target_id=user.username)
        user.last_login_at = now
        self.audit.record(who, "auth.login", target_type="user", target_id=user.username,
                          detail="password + TOTP")
        return True

    @staticmethod
    def provisioning_uri(user: User, secret: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)

    # Console sessions ----------------------------------------------------------------------
    def start_session(self, user: User, actor: Actor, user_agent: str, *, fully: bool) -> UserSession:
        s = UserSession(id=secrets.token_urlsafe(32), user=user, ip=actor.ip[:64], user_agent=user_agent[:200],
                        fully_authenticated=fully)
        self.session.add(s)
        self.session.flush()
        return s

    def resume_session(self, session_id: str | None) -> UserSession | None:
        """The live session for a cookie, or None when unknown, ended, idle too long or user disabled.
        Touches ``last_seen_at``."""
        if not session_id:
            return None
        s = self.session.get(UserSession, session_id)
        if s is None or s.ended_at is not None:
            return None
        now = utcnow()
        idle = dt.timedelta(minutes=self._policy().session_idle_minutes)
        if now - s.last_seen_at > idle:
            s.ended_at = now
            s.end_reason = "idle timeout"
            return None
        if not s.user.is_active:
            s.ended_at = now
            s.end_reason = "account disabled"
            return None
        if (now - s.last_seen_at).total_seconds() > 15:
            s.last_seen_at = now
        return s

    def end_session(self, s: UserSession, reason: str, actor: Actor | None = None) -> None:
        if s.ended_at is None:
            s.ended_at = utcnow()
            s.end_reason = reason
            if actor is not None:
                action = "auth.logout" if reason == "logout" else "session.revoke"
                self.audit.record(actor, action, target_type="user", target_id=s.user.username,
                                  detail=reason)

    def end_sessions(self, user: User, reason: str) -> int:
        n = 0
        for s in self.session.execute(select(UserSession).where(UserSession.user_id == user.id,
                                                                UserSession.ended_at.is_(None))).scalars():
            s.ended_at = utcnow()
            s.end_reason = reason
            n += 1
        return n

    def active_sessions(self, scope: Scope) -> list[UserSession]:
        q = (select(UserSession).join(UserSession.user).join(User.site)
             .where(UserSession.ended_at.is_(None), scope.site_clause())
             .order_by(UserSession.last_seen_at.desc()))
        return list(self.session.execute(q).scalars())

    def get_session(self, session_id: str) -> UserSession:
        s = self.session.get(UserSession, session_id)
        if s is None:
            raise NotFound("session not found")
        return s

    # API tokens ----------------------------------------------------------------------------
    def create_token(self, actor: Actor, user: User, name: str, days: int | None = None) -> tuple[ApiToken, str]:
        """Create a personal access token; the plaintext is returned once and never stored."""
        name = (name or "").strip()
        if not 1 <= len(name) <= 64:
            raise ValidationFailed("token name: 1-64 characters", details=[{"field": "name", "message": "1-64"}])
        max_days = self._policy().token_max_days
        days = days or max_days
        if not 1 <= days <= max_days:
            raise ValidationFailed(f"token lifetime: 1-{max_days} days",
                                   details=[{"field": "days", "message": f"1-{max_days}"}])
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(user=user, name=name, prefix=plain[:10], token_hash=hashlib.sha256(plain.encode()).hexdigest(),
                         expires_at=utcnow() + dt.timedelta(days=days))
        self.session.add(token)
        self.session.flush()
        self.audit.record(actor, "token.create", target_type="api_token", target_id=token.id,
                          after={"user": user.username, "name": name, "prefix": token.prefix,
                                 "expires_at": token.expires_at.isoformat() if token.expires_at else None})
        return token, plain

    def tokens_of(self, user: User) -> list[ApiToken]:
        q = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
        return list(self.session.execute(q).scalars())

    def all_tokens(self, scope: Scope) -> list[ApiToken]:
        q = (select(ApiToken).join(ApiToken.user).join(User.site).where(scope.site_clause())
             .order_by(ApiToken.created_at.desc()))
        return list(self.session.execute(q).scalars())

    def get_token(self, token_id: int, *, owner: User | None, scope: Scope) -> ApiToken:
        q = select(ApiToken).join(ApiToken.user).join(User.site).where(ApiToken.id == token_id, scope.site_clause())
        if owner is not None:
            q = q.where(ApiToken.user_id == owner.id)
        token = self.session.execute(q).scalar_one_or_none()
        if token is None:
            raise NotFound(f"token {token_id} not found")
        return token

    def revoke_token(self, actor: Actor, token: ApiToken) -> None:
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            self.audit.record(actor, "token.revoke", target_type="api_token", target_id=token.id,
                              after={"user": token.user.username, "name": token.name})

    def authenticate_token(self, plain: str) -> User:
        """The active user behind a bearer token; raises AuthFailed otherwise."""
        digest = hashlib.sha256((plain or "").encode()).hexdigest()
        token = self.session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar_one_or_none()
        now = utcnow()
        if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at < now):
            raise AuthFailed("invalid, expired or revoked API token")
        if not token.user.is_active:
            raise AuthFailed("the token's account is disabled")
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            token.last_used_at = now
        return token.user

