"""Policies officers change at run time. ``db upgrade`` seeds defaults and never overwrites edits."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from ..audit.service import Actor, AuditLog
from ..db import utcnow
from ..errors import NotFound, ValidationFailed
from .models import Policy


class SecurityPolicy(BaseModel):
    """Password, lockout, session and second-factor rules (MLPS level 3)."""

    model_config = ConfigDict(extra="forbid")

    password_min_length: int = Field(12, ge=8, le=128)
    password_min_classes: int = Field(3, ge=1, le=4)
    lockout_threshold: int = Field(5, ge=1, le=100)
    lockout_minutes: int = Field(15, ge=1, le=1440)
    session_idle_minutes: int = Field(30, ge=1, le=1440)
    totp_required_roles: list[str] = Field(default_factory=lambda: ["admin", "security_admin"])
    token_max_days: int = Field(365, ge=1, le=3650)


class AssessmentPolicy(BaseModel):
    """Connectivity targets of the monthly assessment, per link tier (a rate meets its target when ≥)."""

    model_config = ConfigDict(extra="forbid")

    ministry_province: float = Field(0.99, gt=0, le=1)
    province_city: float = Field(0.98, gt=0, le=1)
    city_county: float = Field(0.95, gt=0, le=1)

    def targets(self) -> dict[str, float]:
        return self.model_dump()


#: Policy key -> its model. Later issues register theirs (SLA policies...).
REGISTRY: dict[str, type[BaseModel]] = {"security": SecurityPolicy, "assessment": AssessmentPolicy}


def seed_defaults(session: Session) -> list[str]:
    """Insert the default of every policy that is missing; return the keys inserted."""
    added = []
    for key, model in REGISTRY.items():
        if session.get(Policy, key) is None:
            session.add(Policy(key=key, value=model().model_dump(mode="json"), updated_by="system"))
            added.append(key)
    session.flush()
    return added


class PolicyService:
    def __init__(self, session: Session, audit: AuditLog) -> None:
        self.session = session
        self.audit = audit

    def get(self, key: str) -> Any:
        """Return the policy as its model; fields missing in the stored value take their defaults."""
        model = REGISTRY.get(key)
        if model is None:
            raise NotFound(f"no policy {key!r}")
        row = self.session.get(Policy, key)
        stored = dict(row.value) if row else {}
        known = {k: v for k, v in stored.items() if k in model.model_fields}
        return model(**known)

    def security(self) -> SecurityPolicy:
        policy = self.get("security")
        assert isinstance(policy, SecurityPolicy)
        return policy

    def assessment(self) -> AssessmentPolicy:
        policy = self.get("assessment")
        assert isinstance(policy, AssessmentPolicy)
        return policy

    def update(self, actor: Actor, key: str, changes: dict[str, Any]) -> BaseModel:
        """Validate and store a change; the audit entry keeps the old and new values."""
        current = self.get(key)
        before = current.model_dump(mode="json")
        try:
            new = type(current)(**{**before, **changes})
        except ValidationError as exc:
            raise ValidationFailed(
                f"invalid policy {key}: " + "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
                details=[{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()],
            ) from exc
        row = self.session.get(Policy, key) or Policy(key=key, value={})
        row.value = new.model_dump(mode="json")
        row.updated_at = utcnow()
        row.updated_by = actor.username
        self.session.add(row)
        self.audit.record(actor, "policy.update", target_type="policy", target_id=key,
                          before=before, after=row.value)
        return new
