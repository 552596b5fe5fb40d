"""The platform's exception hierarchy; library exceptions are translated into these at the edges."""

from __future__ import annotations


class EcoCloudError(Exception):
    """Base of every error the platform raises on purpose. ``status`` is the HTTP status it maps to."""

    status = 500
    code = "error"

    def __init__(self, message: str, *, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ConfigError(EcoCloudError):
    code = "config_error"


class ValidationFailed(EcoCloudError):
    status = 422
    code = "validation_failed"


class NotFound(EcoCloudError):
    status = 404
    code = "not_found"


class Conflict(EcoCloudError):
    status = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class PermissionDenied(EcoCloudError):
    status = 403
    code = "permission_denied"


class AuthFailed(EcoCloudError):
    status = 401
    code = "auth_failed"


class AccountLocked(AuthFailed):
    status = 423
    code = "account_locked"


class AdapterError(EcoCloudError):
    status = 502
    code = "adapter_error"


class Unreachable(AdapterError):
    code = "unreachable"


class Timeout(AdapterError):
    code = "timeout"
