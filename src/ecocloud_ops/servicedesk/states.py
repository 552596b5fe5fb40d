"""The ticket state machine: which status may follow which, as data."""

from __future__ import annotations

import datetime as dt

from ..errors import InvalidTransition
from .models import TicketStatus as S

#: status -> the statuses it may move to. Reopening is resolved/closed -> in_progress.
TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.ASSIGNED, S.CANCELED}),
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.CANCELED}),
    S.IN_PROGRESS: frozenset({S.PENDING, S.RESOLVED, S.CANCELED}),
    S.PENDING: frozenset({S.IN_PROGRESS, S.RESOLVED, S.CANCELED}),
    S.RESOLVED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.CLOSED: frozenset({S.IN_PROGRESS}),
    S.CANCELED: frozenset(),
}


def check_transition(current: str, target: str, *, closed_at: dt.datetime | None = None,
                     now: dt.datetime | None = None, reopen_days: int = 7) -> None:
    """Raise InvalidTransition with a clear message unless ``current`` -> ``target`` is allowed."""
    try:
        cur, tgt = S(current), S(target)
    except ValueError as exc:
        raise InvalidTransition(f"unknown status {target!r}; statuses are {', '.join(s.value for s in S)}") from exc
    if tgt not in TRANSITIONS[cur]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[cur])) or "none (final)"
        raise InvalidTransition(f"a ticket that is {cur.value} cannot become {tgt.value}; allowed: {allowed}")
    if cur == S.CLOSED and closed_at is not None and now is not None and now - closed_at > dt.timedelta(
            days=reopen_days):
        raise InvalidTransition(f"a ticket closed more than {reopen_days} days ago cannot be reopened; "
                                "file a new one and link it")
