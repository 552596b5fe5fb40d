"""The ticket state machine: every allowed and every refused transition."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from ecocloud_ops.errors import InvalidTransition
from ecocloud_ops.servicedesk.models import TicketStatus as S
from ecocloud_ops.servicedesk.states import TRANSITIONS, check_transition

ALLOWED = {
    (S.NEW, S.ASSIGNED), (S.NEW, S.CANCELED),
    (S.ASSIGNED, S.IN_PROGRESS), (S.ASSIGNED, S.CANCELED),
    (S.IN_PROGRESS, S.PENDING), (S.IN_PROGRESS, S.RESOLVED), (S.IN_PROGRESS, S.CANCELED),
    (S.PENDING, S.IN_PROGRESS), (S.PENDING, S.RESOLVED), (S.PENDING, S.CANCELED),
    (S.RESOLVED, S.CLOSED), (S.RESOLVED, S.IN_PROGRESS),
    (S.CLOSED, S.IN_PROGRESS),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair(current: S, target: S) -> None:
    if (current, target) in ALLOWED:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition, match=f"cannot become {target.value}"):
            check_transition(current, target)


def test_the_table_is_the_documented_one() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert TRANSITIONS[S.CANCELED] == frozenset()


def test_reopen_from_closed_only_within_the_window() -> None:
    closed = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    check_transition(S.CLOSED, S.IN_PROGRESS, closed_at=closed, now=closed + dt.timedelta(days=7), reopen_days=7)
    with pytest.raises(InvalidTransition, match="more than 7 days"):
        check_transition(S.CLOSED, S.IN_PROGRESS, closed_at=closed, now=closed + dt.timedelta(days=7, seconds=1),
                         reopen_days=7)


def test_unknown_status_is_named() -> None:
    with pytest.raises(InvalidTransition, match="unknown status 'done'"):
        check_transition(S.NEW, "done")
