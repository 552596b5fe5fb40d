"""Helpers the console's form pages share: a refused change flashed and audited, numbers typed in forms,
times shown in Beijing time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash

from ...errors import EcoCloudError
from ...network.connectivity import SHANGHAI
from ..errors import _audit_failure


def refused(exc: EcoCloudError, *, show: bool = True) -> None:
    """Undo what the refused call changed and audit the refusal (as the error handler would)."""
    _audit_failure(f"{exc.status} {exc.code}: {exc.message}")
    if show:
        flash(exc.message, "danger")


def form_int(value: str | None) -> Any:
    """A whole number typed in a form; anything else is passed on for the service to refuse by field."""
    text = (value or "").strip()
    try:
        return int(text)
    except ValueError:
        return text


def local_time(value: dt.datetime | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC time (or its ISO text) in Asia/Shanghai; "—" when there is none."""
    if not value:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(SHANGHAI).strftime(fmt)
