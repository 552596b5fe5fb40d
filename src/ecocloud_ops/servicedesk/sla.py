"""SLA clock arithmetic on a :class:`~ecocloud_ops.servicedesk.calendar.BusinessCalendar` (pure functions).

Model
-----
An SLA clock starts at ``start`` and accumulates *counted time*:

* ``mode="business"``: only working time counts -- on working days (see
  :meth:`BusinessCalendar.is_workday`), between opening and closing (08:30--17:30 Asia/Shanghai);
* ``mode="24x7"``: all wall-clock time counts; the calendar is ignored.

Pauses (intervals in which the ticket was "pending") stop the clock in both modes: counted time
inside any pause is not counted.  Pauses may overlap each other or the time before ``start``
(they are merged and clipped).  A pause whose end is ``None`` is still open: the clock has been
stopped since it began.

Semantics
---------
* ``elapsed_business_seconds(start, t)`` is the counted time in ``[start, t)``; it is continuous
  and non-decreasing in ``t``.
* ``add_business_time(start, s).due`` is the **earliest** instant ``t >= start`` at which the
  counted time reaches ``s`` (canonical form).  Consequences:

  - an amount that is used up exactly at closing time returns the closing instant (Friday
    17:30), never the next opening (Monday 08:30);
  - a start outside working hours (night, weekend, holiday) effectively begins at the next
    opening for any ``s > 0``; ``s == 0`` returns ``start`` itself;
  - ``elapsed(start, add(start, s).due) == s`` exactly, and adding ``a`` then ``b`` equals adding
    ``a + b`` (without pauses), with no exceptions at closing time.

* Open pause: if the clock stopped (the open pause began) before ``s`` was reached, the deadline
  cannot be known yet and ``due`` is ``None``.  If ``s`` was reached before the open pause began
  (e.g. a ticket paused after it breached), ``due`` is that instant.
* ``estimated``: in business mode, True when the computation passed through a local date whose
  year is not in ``cal.known_years`` -- any year from ``start``'s to ``due``'s (or, for an open
  pause, to the instant the clock stopped).  Such years use only the overrides present (normally
  none), i.e. weekends-only.  Always False in 24x7 mode.

Amounts are in seconds and are rounded to the nearest microsecond (datetime resolution); all
arithmetic is exact integer microseconds.  All datetimes must be timezone-aware (``ValueError``
otherwise); returned datetimes are in the calendar's time zone.  The cost is one step per
calendar day crossed (plus one per pause), not per minute.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal

from ecocloud_ops.servicedesk.calendar import BusinessCalendar

__all__ = ["MAX_SECONDS", "Deadline", "Mode", "Pause", "add_business_time", "elapsed_business_seconds", "fraction_used"]

Mode = Literal["business", "24x7"]
#: ``(paused_at, resumed_at)``; ``resumed_at`` is None while the ticket is still pending.
Pause = tuple[datetime, datetime | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_US_PER_S = 1_000_000
_ONE_DAY = timedelta(days=1)
#: Largest accepted amount (ten years of counted time); more is certainly a data error.
MAX_SECONDS = 10 * 366 * 86_400
#: "Never": the last representable instant, used for open pauses and 24x7 segments.
_FOREVER = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _US


@dataclass(frozen=True, slots=True)
class Deadline:
    """Result of :func:`add_business_time`.

    ``due`` is the deadline instant (in the calendar's time zone), or None while an open pause
    holds the clock before the amount was used up.  ``estimated`` is True when the computation
    relied on a year whose official holiday schedule is unknown (weekends-only assumption).
    """

    due: datetime | None
    estimated: bool


def _to_us(dt: datetime, what: str) -> int:
    if not isinstance(dt, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {dt.isoformat()}")
    return (dt - _EPOCH) // _US


def _from_us(us: int, tz: tzinfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(tz)


def _amount_to_us(seconds: float, what: str) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{what} must be a number of seconds, got {type(seconds).__name__}")
    if isinstance(seconds, int):
        us = seconds * _US_PER_S
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"{what} must be finite, got {seconds}")
        us = round(seconds * _US_PER_S)
    if us < 0:
        raise ValueError(f"{what} must not be negative, got {seconds}")
    if us > MAX_SECONDS * _US_PER_S:
        raise ValueError(f"{what} is out of range (more than {MAX_SECONDS} s): {seconds}")
    return us


def _check_mode(mode: str) -> None:
    if mode not in ("business", "24x7"):
        raise ValueError(f"mode must be 'business' or '24x7', got {mode!r}")


def _merge_pauses(pauses: Sequence[Pause], start_us: int) -> tuple[list[tuple[int, int]], int]:
    """Pauses clipped to ``[start, ...)``, merged, sorted; plus the horizon where an open pause stops the clock."""
    ivs: list[tuple[int, int]] = []
    for paused_at, resumed_at in pauses:
        a = _to_us(paused_at, "pause start")
        b = _FOREVER if resumed_at is None else _to_us(resumed_at, "pause end")
        if b < a:
            raise ValueError(f"pause ends before it starts: {paused_at.isoformat()} > {resumed_at}")
        a = max(a, start_us)
        if b > a:
            ivs.append((a, b))
    ivs.sort()
    merged: list[tuple[int, int]] = []
    for a, b in ivs:
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    horizon = _FOREVER
    if merged and merged[-1][1] >= _FOREVER:
        horizon = merged.pop()[0]
    return merged, horizon


def _working_segments(cal: BusinessCalendar, start_us: int, limit_us: int, mode: Mode) -> Iterator[tuple[int, int]]:
    """Counting intervals ``[a, b)`` (before pauses) within ``[start, limit)``, in order, each non-empty."""
    if start_us >= limit_us:
        return
    if mode == "24x7":
        yield start_us, limit_us
        return
    tz = cal.tz
    opening, closing = cal.opening, cal.closing
    d = _from_us(start_us, tz).date()
    last = date.max if limit_us >= _FOREVER else _from_us(limit_us, tz).date()
    while d <= last:
        if cal.is_workday(d):
            o = _to_us(datetime.combine(d, opening, tzinfo=tz), "opening")
            if o >= limit_us:
                return
            c = min(_to_us(datetime.combine(d, closing, tzinfo=tz), "closing"), limit_us)
            a = max(o, start_us)
            if a < c:
                yield a, c
        d += _ONE_DAY


def _counting_segments(
    cal: BusinessCalendar, start_us: int, limit_us: int, mode: Mode, paused: list[tuple[int, int]]
) -> Iterator[tuple[int, int]]:
    """Working segments with the (merged, closed) pauses cut out."""
    i, n = 0, len(paused)
    for a, b in _working_segments(cal, start_us, limit_us, mode):
        cur = a
        while i < n and paused[i][1] <= cur:
            i += 1
        while i < n and paused[i][0] < b:
            p_start, p_end = paused[i]
            if p_start > cur:
                yield cur, p_start
            if p_end >= b:
                cur = b
                break
            cur = p_end
            i += 1
        if cur < b:
            yield cur, b


def _estimated(cal: BusinessCalendar, mode: Mode, start_us: int, end_us: int) -> bool:
    if mode != "business":
        return False
    first = _from_us(start_us, cal.tz).year
    last = _from_us(end_us, cal.tz).year
    return any(not cal.year_known(y) for y in range(first, last + 1))


def _elapsed_us(cal: BusinessCalendar, start: datetime, end: datetime, mode: Mode, pauses: Sequence[Pause]) -> int:
    _check_mode(mode)
    start_us = _to_us(start, "start")
    end_us = _to_us(end, "end")
    if end_us <= start_us:
        return 0
    paused, horizon = _merge_pauses(pauses, start_us)
    return sum(b - a for a, b in _counting_segments(cal, start_us, min(end_us, horizon), mode, paused))


def add_business_time(
    cal: BusinessCalendar,
    start: datetime,
    seconds: float,
    *,
    mode: Mode = "business",
    pauses: Sequence[Pause] = (),
) -> Deadline:
    """Deadline ``seconds`` of counted time after ``start`` (see the module docstring).

    ``due`` is the earliest instant at which the counted time since ``start`` (business hours in
    business mode, wall time in 24x7 mode, minus pauses) reaches ``seconds``; so ``seconds == 0``
    gives ``start`` and an amount ending exactly at closing gives the closing instant.  It is
    None if an open pause stopped the clock before that.  Raises ValueError on naive datetimes,
    a negative, non-finite or absurd (> :data:`MAX_SECONDS`) amount, an unknown mode, or a pause
    ending before it starts.
    """
    _check_mode(mode)
    start_us = _to_us(start, "start")
    need = _amount_to_us(seconds, "seconds")
    paused, horizon = _merge_pauses(pauses, start_us)
    due_us: int | None = None
    if need == 0:
        due_us = start_us
    else:
        remaining = need
        try:
            for a, b in _counting_segments(cal, start_us, horizon, mode, paused):
                if b - a >= remaining:
                    due_us = a + remaining
                    break
                remaining -= b - a
        except OverflowError as exc:
            raise ValueError(f"deadline of {seconds} s after {start.isoformat()} is out of range") from exc
        if due_us is None and horizon >= _FOREVER:
            raise ValueError(f"deadline of {seconds} s after {start.isoformat()} is out of range")
    if due_us is None:
        return Deadline(due=None, estimated=_estimated(cal, mode, start_us, max(horizon, start_us)))
    return Deadline(due=_from_us(due_us, cal.tz), estimated=_estimated(cal, mode, start_us, due_us))


def elapsed_business_seconds(
    cal: BusinessCalendar,
    start: datetime,
    end: datetime,
    *,
    mode: Mode = "business",
    pauses: Sequence[Pause] = (),
) -> float:
    """Counted time in ``[start, end)`` in seconds: business (or wall) time minus pauses.

    An open pause counts as lasting past ``end``.  ``end <= start`` gives 0.0 (clock skew safe).
    Inverse of :func:`add_business_time`: if ``add_business_time(cal, start, s, ...).due == d``
    then ``elapsed_business_seconds(cal, start, d, ...) == s`` (``s`` in whole microseconds).
    """
    return _elapsed_us(cal, start, end, mode, pauses) / _US_PER_S


def fraction_used(
    cal: BusinessCalendar,
    start: datetime,
    now: datetime,
    target_seconds: float,
    *,
    mode: Mode = "business",
    pauses: Sequence[Pause] = (),
) -> float:
    """Share of the SLA target consumed at ``now``: ``elapsed / target_seconds``.

    0.0 at or before ``start``, 1.0 from the deadline on, growing past 1.0 (not clamped) as counted
    time keeps running.  Because the deadline is the *first* instant the target is reached,
    ``fraction_used(...) >= 1.0`` holds exactly when ``now >= add_business_time(...).due`` (the SLA
    time is used up).  The fraction stays at exactly 1.0 through non-working time after a deadline
    at closing time, so test "used up" with ``>= 1.0`` (or compare with ``due``), never ``> 1.0``;
    ``>= 0.75`` is the 75% warning.  Raises ValueError if ``target_seconds`` is not positive and finite.
    """
    target_us = _amount_to_us(target_seconds, "target_seconds")
    if target_us == 0:
        raise ValueError("target_seconds must be positive")
    return _elapsed_us(cal, start, now, mode, pauses) / target_us
