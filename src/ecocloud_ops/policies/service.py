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


class SlaTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_minutes: int = Field(ge=1, le=60 * 24 * 60)
    resolve_minutes: int = Field(ge=1, le=60 * 24 * 120)
    #: "business" (08:30-17:30 on the Chinese working calendar) or "24x7".
    mode: str = Field(pattern=r"^(business|24x7)$")


def _default_sla() -> dict[str, SlaTarget]:
    return {"P1": SlaTarget(response_minutes=15, resolve_minutes=4 * 60, mode="24x7"),
            "P2": SlaTarget(response_minutes=30, resolve_minutes=9 * 60, mode="business"),
            "P3": SlaTarget(response_minutes=4 * 60, resolve_minutes=3 * 9 * 60, mode="business"),
            "P4": SlaTarget(response_minutes=9 * 60, resolve_minutes=5 * 9 * 60, mode="business")}


class ServiceDeskPolicy(BaseModel):
    """Priority matrix, SLA targets per priority, categories always on 7x24, reopen window, warnings."""

    model_config = ConfigDict(extra="forbid")

    #: priority_matrix[impact - 1][urgency - 1]; impact and urgency run 1 (highest) .. 4.
    priority_matrix: list[list[str]] = Field(default_factory=lambda: [
        ["P1", "P1", "P2", "P3"], ["P1", "P2", "P3", "P3"], ["P2", "P3", "P3", "P4"], ["P3", "P3", "P4", "P4"]])
    sla: dict[str, SlaTarget] = Field(default_factory=_default_sla)
    #: Categories whose tickets run on 7x24 whatever their priority.
    categories_24x7: list[str] = Field(default_factory=lambda: ["network_fault"])
    reopen_days: int = Field(7, ge=0, le=365)
    warn_fraction: float = Field(0.75, gt=0, lt=1)

    def priority(self, impact: int, urgency: int) -> str:
        return self.priority_matrix[impact - 1][urgency - 1]


#: Policy key -> its model.
REGISTRY: dict[str, type[BaseModel]] = {"security": SecurityPolicy, "assessment": AssessmentPolicy,
                                        "servicedesk": ServiceDeskPolicy}


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

    def servicedesk(self) -> ServiceDeskPolicy:
        policy = self.get("servicedesk")
        assert isinstance(policy, ServiceDeskPolicy)
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
