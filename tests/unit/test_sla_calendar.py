"""SLA deadlines on the Chinese business calendar: worked examples plus hypothesis properties.

Working hours are 08:30-17:30 Asia/Shanghai (9 h a day).  Holiday data comes from the
chinese-calendar package (2004-2026); 2027 is deliberately treated as unknown.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecocloud_ops.servicedesk.calendar import (
    SHANGHAI,
    BusinessCalendar,
    DayKind,
    DayOverride,
    chinese_calendar_days,
)
from ecocloud_ops.servicedesk.sla import (
    Deadline,
    Pause,
    add_business_time,
    elapsed_business_seconds,
    fraction_used,
)

H = 3600
DAY = 9 * H  # one business day
US = timedelta(microseconds=1)

_DAYS, _YEARS = chinese_calendar_days()
# Pin "2027 is unknown" even if a later chinese-calendar release ships 2027 data.
CAL = BusinessCalendar(
    days={d: o for d, o in _DAYS.items() if d.year <= 2026},
    known_years=frozenset(y for y in _YEARS if y <= 2026),
)


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=SHANGHAI)


def due(start: datetime, seconds: float, **kw: object) -> datetime | None:
    return add_business_time(CAL, start, seconds, **kw).due  # type: ignore[arg-type]


# --------------------------------------------------------------------------- calendar data


def test_chinese_calendar_coverage_and_names() -> None:
    assert set(range(2004, 2027)) <= _YEARS
    assert _YEARS == frozenset(range(min(_YEARS), max(_YEARS) + 1))  # contiguous
    assert CAL.year_known(2025) and CAL.year_known(2026) and not CAL.year_known(2027)
    assert _DAYS[date(2025, 10, 1)] == DayOverride(DayKind.HOLIDAY, "国庆节")
    assert _DAYS[date(2025, 1, 29)].name == "春节"
    # weekend holidays are stored too (2025-10-04 is a Saturday)
    assert date(2025, 10, 4).weekday() == 5 and _DAYS[date(2025, 10, 4)].kind is DayKind.HOLIDAY
    assert all(isinstance(d, date) and not isinstance(d, datetime) for d in _DAYS)


def test_golden_week_2025_data() -> None:
    # Checked against chinese-calendar 1.11 before writing the examples below.
    for day in range(1, 9):
        assert not CAL.is_workday(date(2025, 10, day)), day
    assert date(2025, 9, 28).weekday() == 6  # Sunday
    assert date(2025, 10, 11).weekday() == 5  # Saturday
    for d in (date(2025, 9, 28), date(2025, 10, 11)):
        assert _DAYS[d] == DayOverride(DayKind.MAKEUP_WORKDAY, "国庆节")
        assert CAL.is_workday(d)
    assert not CAL.is_workday(date(2025, 10, 12))  # the Sunday after is a normal weekend


def test_makeup_sunday_is_workday_and_holiday_monday_is_not() -> None:
    assert CAL.is_workday(date(2025, 9, 28))  # Sunday, 调休上班
    assert date(2025, 5, 5).weekday() == 0 and not CAL.is_workday(date(2025, 5, 5))  # Monday, 劳动节
    # Plain weekdays/weekends without overrides, including an unknown year.
    assert CAL.is_workday(date(2025, 3, 17)) and not CAL.is_workday(date(2025, 3, 16))
    assert CAL.is_workday(date(2027, 1, 1))  # unknown year: weekends-only


def test_calendar_is_immutable_and_validated() -> None:
    src = {date(2025, 1, 1): DayOverride.holiday("元旦")}
    cal = BusinessCalendar(days=src, known_years=frozenset({2025}))
    src[date(2025, 1, 2)] = DayOverride.holiday("x")
    assert date(2025, 1, 2) not in cal.days
    with pytest.raises(TypeError):
        cal.days[date(2025, 1, 3)] = DayOverride.holiday("x")  # type: ignore[index]
    with pytest.raises(AttributeError):
        cal.known_years = frozenset()  # type: ignore[misc]
    assert hash(cal) == hash(BusinessCalendar(days=dict(cal.days), known_years=frozenset({2025})))
    with pytest.raises(ValueError):
        BusinessCalendar(opening=time(18), closing=time(9))
    with pytest.raises(TypeError):
        BusinessCalendar(days={datetime(2025, 1, 1): DayOverride.holiday("元旦")})


# --------------------------------------------------------------------------- worked examples


def test_normal_week_friday_afternoon() -> None:
    # Fri 2025-03-14 16:00 + 4 h: Fri 16:00-17:30 = 1.5 h, Sat/Sun off, Mon 08:30 + 2.5 h = 11:00.
    assert date(2025, 3, 14).weekday() == 4
    assert add_business_time(CAL, sh(2025, 3, 14, 16), 4 * H) == Deadline(sh(2025, 3, 17, 11), estimated=False)


def test_ending_exactly_at_closing_is_closing_time() -> None:
    # Fri 16:00 + 1.5 h is used up at 17:30 sharp: canonical form is Fri 17:30, not Mon 08:30.
    assert due(sh(2025, 3, 14, 16), 1.5 * H) == sh(2025, 3, 14, 17, 30)
    # A whole business day from opening ends at that day's closing.
    assert due(sh(2025, 3, 17, 8, 30), DAY) == sh(2025, 3, 17, 17, 30)
    # One more microsecond spills into the next opening.
    assert due(sh(2025, 3, 14, 16), 1.5 * H + 1e-6) == sh(2025, 3, 17, 8, 30) + US


def test_national_day_golden_week_2025() -> None:
    # Tue 09-30 15:00 + 4 h: Tue 15:00-17:30 = 2.5 h; 10-01..10-08 holidays; Thu 10-09 08:30 + 1.5 h = 10:00.
    assert due(sh(2025, 9, 30, 15), 4 * H) == sh(2025, 10, 9, 10)
    # Sat 09-27 10:00 + 12 h: Sat off; Sun 09-28 is 调休上班: 08:30-17:30 = 9 h; Mon 09-29 08:30 + 3 h = 11:30.
    assert due(sh(2025, 9, 27, 10), 12 * H) == sh(2025, 9, 29, 11, 30)
    # Thu 10-09 09:00 + 3 business days (27 h): Thu 8.5 h (18.5 left), Fri 10-10 9 h (9.5 left),
    # Sat 10-11 调休上班 9 h (0.5 left), Sun 10-12 off, Mon 10-13 08:30 + 0.5 h = 09:00.
    assert due(sh(2025, 10, 9, 9), 3 * DAY) == sh(2025, 10, 13, 9)
    # Straight across: Tue 09-30 17:00 + 1 h -> 0.5 h Tue, then Thu 10-09 09:00.
    assert add_business_time(CAL, sh(2025, 9, 30, 17), H) == Deadline(sh(2025, 10, 9, 9), estimated=False)
    # Elapsed agrees: the whole golden week contributes nothing.
    assert elapsed_business_seconds(CAL, sh(2025, 9, 30, 17), sh(2025, 10, 9, 9), mode="business") == H


def test_makeup_sunday_counts_and_holiday_monday_does_not() -> None:
    # Sat 2025-09-27 12:00 + 1 h: Sunday 09-28 is a workday -> 09:30 that Sunday.
    assert due(sh(2025, 9, 27, 12), H) == sh(2025, 9, 28, 9, 30)
    # Fri 2025-05-30 17:00 + 1 h: 0.5 h Fri; Sat 05-31..Mon 06-02 端午 off (Monday is a holiday);
    # Tue 06-03 08:30 + 0.5 h = 09:00.
    assert date(2025, 6, 2).weekday() == 0 and not CAL.is_workday(date(2025, 6, 2))
    assert due(sh(2025, 5, 30, 17), H) == sh(2025, 6, 3, 9)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (sh(2025, 3, 18, 7), sh(2025, 3, 18, 9, 30)),  # before opening -> 08:30 + 1 h
        (sh(2025, 3, 18, 18), sh(2025, 3, 19, 9, 30)),  # after closing -> next day 08:30 + 1 h
        (sh(2025, 3, 18, 17, 30), sh(2025, 3, 19, 9, 30)),  # exactly at closing -> next opening
        (sh(2025, 3, 19), sh(2025, 3, 19, 9, 30)),  # midnight Wednesday -> 08:30 + 1 h
        (sh(2025, 10, 2, 10), sh(2025, 10, 9, 9, 30)),  # holiday Thursday -> Thu 10-09 08:30 + 1 h
        (sh(2025, 3, 15, 12), sh(2025, 3, 17, 9, 30)),  # Saturday -> Monday 08:30 + 1 h
    ],
)
def test_start_outside_hours_begins_at_next_opening(start: datetime, expected: datetime) -> None:
    assert due(start, H) == expected


def test_zero_amount_is_start_itself() -> None:
    # Canonical form: the earliest instant with 0 s consumed is the start, even at night.
    assert due(sh(2025, 3, 15, 12), 0) == sh(2025, 3, 15, 12)


def test_pause_spanning_holiday_and_midnight() -> None:
    start = sh(2025, 9, 30, 9)
    # Without pause: Tue 09:00-17:30 = 8.5 h, 0.5 h left -> Thu 10-09 09:00.
    assert due(start, DAY) == sh(2025, 10, 9, 9)
    # Pending from Tue 16:00 to Thu 10-09 10:00 (across midnights and the golden week).
    # Business time overlapped: Tue 16:00-17:30 (1.5 h) + Thu 08:30-10:00 (1.5 h) = 3 h.
    # Clock: Tue 09:00-16:00 = 7 h, 2 h left from Thu 10:00 -> 12:00 (= 09:00 + 3 business hours).
    pauses: list[Pause] = [(sh(2025, 9, 30, 16), sh(2025, 10, 9, 10))]
    d = add_business_time(CAL, start, DAY, mode="business", pauses=pauses)
    assert d == Deadline(sh(2025, 10, 9, 12), estimated=False)
    assert elapsed_business_seconds(CAL, start, sh(2025, 10, 9, 12), mode="business", pauses=pauses) == DAY
    # A simple overnight pause: Tue 03-18 17:00 -> Wed 09:00 overlaps 0.5 h + 0.5 h = 1 h.
    # Tue 15:00 + 3 h: 2 h counted to 17:00, paused, resume Wed 09:00 + 1 h = 10:00.
    assert due(sh(2025, 3, 18, 15), 3 * H, pauses=[(sh(2025, 3, 18, 17), sh(2025, 3, 19, 9))]) == sh(2025, 3, 19, 10)


def test_overlapping_and_pre_start_pauses_are_merged_and_clipped() -> None:
    start = sh(2025, 3, 17, 9)  # Monday
    pauses: list[Pause] = [
        (sh(2025, 3, 17, 8), sh(2025, 3, 17, 9, 30)),  # began before start: only 09:00-09:30 counts
        (sh(2025, 3, 17, 10), sh(2025, 3, 17, 11)),
        (sh(2025, 3, 17, 10, 30), sh(2025, 3, 17, 11, 30)),  # overlaps the previous one
    ]
    # Paused business time: 0.5 h + (10:00-11:30) 1.5 h = 2 h; 3 h from 09:00 -> 12:00 + 2 h = 14:00.
    assert due(start, 3 * H, pauses=pauses) == sh(2025, 3, 17, 14)


def test_open_pause() -> None:
    start = sh(2025, 3, 17, 9)
    # Paused at 09:30 and still pending: 2 h cannot be reached yet -> due None (clock stopped).
    d = add_business_time(CAL, start, 2 * H, pauses=[(sh(2025, 3, 17, 9, 30), None)])
    assert d == Deadline(None, estimated=False)
    # Elapsed stops at the pause: 0.5 h, however late "now" is.
    assert (
        elapsed_business_seconds(
            CAL, start, sh(2025, 3, 20, 12), mode="business", pauses=[(sh(2025, 3, 17, 9, 30), None)]
        )
        == 0.5 * H
    )
    # Paused only after the 2 h were used up (11:00): the deadline is known.
    assert due(start, 2 * H, pauses=[(sh(2025, 3, 17, 12), None)]) == sh(2025, 3, 17, 11)
    # An open pause in 24x7 mode as well.
    assert due(start, 2 * H, mode="24x7", pauses=[(sh(2025, 3, 17, 10), None)]) is None


def test_24x7_ignores_calendar_but_honours_pauses() -> None:
    # Sat 2025-10-04 22:00 (a holiday, at night) + 3 h wall time -> Sun 01:00.
    start = sh(2025, 10, 4, 22)
    assert add_business_time(CAL, start, 3 * H, mode="24x7") == Deadline(sh(2025, 10, 5, 1), estimated=False)
    # Pending 23:00-23:30 pushes it 30 min.
    assert due(start, 3 * H, mode="24x7", pauses=[(sh(2025, 10, 4, 23), sh(2025, 10, 4, 23, 30))]) == sh(
        2025, 10, 5, 1, 30
    )
    assert elapsed_business_seconds(CAL, start, sh(2025, 10, 5, 1), mode="24x7") == 3 * H
    # 24x7 never depends on the holiday schedule -> never estimated.
    assert add_business_time(CAL, sh(2026, 12, 31, 23), 5 * H, mode="24x7").estimated is False


def test_unknown_year_is_weekends_only_and_estimated() -> None:
    # Thu 2026-12-31 16:00 + 3 business days (27 h), 2027 unknown (weekends-only):
    # Thu 1.5 h (25.5 left), Fri 2027-01-01 counted as a workday 9 h (16.5 left), Sat/Sun off,
    # Mon 01-04 9 h (7.5 left), Tue 01-05 08:30 + 7.5 h = 16:00.
    assert date(2026, 12, 31).weekday() == 3
    assert add_business_time(CAL, sh(2026, 12, 31, 16), 3 * DAY) == Deadline(sh(2027, 1, 5, 16), estimated=True)
    # Ends within 2026 -> not estimated.
    assert add_business_time(CAL, sh(2026, 12, 31, 16), H) == Deadline(sh(2026, 12, 31, 17), estimated=False)
    # Crossing into 2027 even by one hour -> estimated (Fri 2027-01-01 09:00 on weekends-only rules).
    assert add_business_time(CAL, sh(2026, 12, 31, 17), H) == Deadline(sh(2027, 1, 1, 9), estimated=True)
    # Inside a known year -> not estimated.
    assert add_business_time(CAL, sh(2025, 10, 9, 9), 3 * DAY).estimated is False


def test_month_boundary() -> None:
    # Fri 2025-02-28 17:00 + 1 h: 0.5 h Fri, weekend 03-01/02, Mon 2025-03-03 08:30 + 0.5 h = 09:00.
    assert date(2025, 2, 28).weekday() == 4
    assert due(sh(2025, 2, 28, 17), H) == sh(2025, 3, 3, 9)
    assert elapsed_business_seconds(CAL, sh(2025, 2, 28, 17), sh(2025, 3, 3, 9), mode="business") == H


def test_shanghai_midnight_is_utc_1600() -> None:
    # 2025-03-18 15:59 UTC = Tue 23:59 Shanghai (after hours) -> Wed 08:30 CST (00:30 UTC) + 1 h.
    d = due(datetime(2025, 3, 18, 15, 59, tzinfo=UTC), H)
    assert d == datetime(2025, 3, 19, 1, 30, tzinfo=UTC)
    assert d is not None and d.tzinfo is SHANGHAI and (d.hour, d.minute) == (9, 30)
    # 2025-09-30 15:59:59 UTC is still Tue 09-30 in Shanghai; one second later it is 10-01 (holiday).
    # Both start at the next opening, Thu 10-09 08:30 CST = 00:30 UTC.
    for start in (datetime(2025, 9, 30, 15, 59, 59, tzinfo=UTC), datetime(2025, 9, 30, 16, tzinfo=UTC)):
        assert due(start, 60) == datetime(2025, 10, 9, 0, 31, tzinfo=UTC)
    # Elapsed between UTC instants: Tue 09:00 UTC (17:00 CST) -> Wed 01:00 UTC (09:00 CST) = 0.5 h + 0.5 h.
    assert (
        elapsed_business_seconds(
            CAL, datetime(2025, 3, 18, 9, tzinfo=UTC), datetime(2025, 3, 19, 1, tzinfo=UTC), mode="business"
        )
        == H
    )


def test_fraction_used() -> None:
    start = sh(2025, 3, 14, 16)  # Fri; 4 h target is due Mon 11:00
    assert fraction_used(CAL, start, sh(2025, 3, 14, 17), 4 * H, mode="business") == 0.25
    assert fraction_used(CAL, start, sh(2025, 3, 17, 10), 4 * H, mode="business") == 0.75  # Fri 1.5 + Mon 1.5 h
    assert fraction_used(CAL, start, sh(2025, 3, 17, 11), 4 * H, mode="business") == 1.0
    assert fraction_used(CAL, start, sh(2025, 3, 17, 12), 4 * H, mode="business") == 1.25  # breached
    assert fraction_used(CAL, start, sh(2025, 3, 14, 15), 4 * H, mode="business") == 0.0  # before start
    with pytest.raises(ValueError):
        fraction_used(CAL, start, sh(2025, 3, 17), 0, mode="business")


def test_validation() -> None:
    naive = datetime(2025, 3, 17, 9)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(CAL, naive, H)
    with pytest.raises(ValueError, match="timezone-aware"):
        elapsed_business_seconds(CAL, sh(2025, 3, 17), naive, mode="business")
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(CAL, sh(2025, 3, 17), H, pauses=[(naive, None)])
    with pytest.raises(ValueError):
        add_business_time(CAL, sh(2025, 3, 17), -1)
    with pytest.raises(ValueError):
        add_business_time(CAL, sh(2025, 3, 17), float("nan"))
    with pytest.raises(ValueError):
        add_business_time(CAL, sh(2025, 3, 17), H, mode="weekdays")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pause ends before"):
        add_business_time(CAL, sh(2025, 3, 17), H, pauses=[(sh(2025, 3, 17, 12), sh(2025, 3, 17, 11))])
    with pytest.raises(ValueError, match="out of range"):
        add_business_time(CAL, sh(2025, 3, 17), 1e15)


# --------------------------------------------------------------------------- properties

_interesting_times = st.sampled_from(
    [time(0), time(8, 30), time(17, 30), time(8, 29, 59, 999999), time(17, 29, 59, 999999), time(12), time(23, 59)]
)
starts = st.builds(
    lambda d, t, utc: datetime.combine(d, t, tzinfo=SHANGHAI).astimezone(UTC if utc else SHANGHAI),
    st.dates(date(2024, 1, 1), date(2027, 12, 31)),
    st.one_of(_interesting_times, st.times()),
    st.booleans(),
)
# Amounts in whole microseconds up to 30 business days; half-hour multiples hit closing time exactly.
amounts_us = st.one_of(
    st.integers(0, 30 * DAY * 10**6),
    st.integers(0, 30 * 18).map(lambda n: n * 1800 * 10**6),
)
modes = st.sampled_from(["business", "24x7"])


@st.composite
def pause_lists(draw: st.DrawFn, start: datetime, allow_open: bool = True) -> list[Pause]:
    out: list[Pause] = []
    for _ in range(draw(st.integers(0, 3))):
        begin = start + timedelta(minutes=draw(st.integers(-2 * 24 * 60, 40 * 24 * 60)))
        if allow_open and draw(st.integers(0, 5)) == 0:
            out.append((begin, None))
        else:
            out.append((begin, begin + timedelta(minutes=draw(st.integers(0, 5 * 24 * 60)))))
    return out


@settings(deadline=None)
@given(st.data(), starts, amounts_us, modes)
def test_elapsed_inverts_add(data: st.DataObject, start: datetime, us: int, mode: str) -> None:
    pauses = data.draw(pause_lists(start))
    s = us / 10**6
    d = add_business_time(CAL, start, s, mode=mode, pauses=pauses)  # type: ignore[arg-type]
    if d.due is None:
        # Clock stopped by an open pause: nothing later ever reaches s.
        assert any(end is None for _, end in pauses)
        far = start + timedelta(days=400)
        assert elapsed_business_seconds(CAL, start, far, mode=mode, pauses=pauses) < s  # type: ignore[arg-type]
        return
    assert d.due >= start
    assert elapsed_business_seconds(CAL, start, d.due, mode=mode, pauses=pauses) == s  # type: ignore[arg-type]
    # Earliest such instant: one microsecond earlier is short (so 17:30, never the next 08:30).
    if us > 0:
        assert elapsed_business_seconds(CAL, start, d.due - US, mode=mode, pauses=pauses) < s  # type: ignore[arg-type]
        assert fraction_used(CAL, start, d.due - US, s, mode=mode, pauses=pauses) < 1.0  # type: ignore[arg-type]
    if us > 0:
        assert fraction_used(CAL, start, d.due, s, mode=mode, pauses=pauses) == 1.0  # type: ignore[arg-type]
    # Estimated exactly when a year outside 2004-2026 was passed through (business mode only).
    years = range(start.astimezone(SHANGHAI).year, d.due.astimezone(SHANGHAI).year + 1)
    assert d.estimated == (mode == "business" and any(y > 2026 for y in years))


@settings(deadline=None)
@given(starts, amounts_us, amounts_us)
def test_two_steps_equal_one(start: datetime, a_us: int, b_us: int) -> None:
    a, b = a_us / 10**6, b_us / 10**6
    first = due(start, a)
    assert first is not None
    assert due(first, b) == due(start, (a_us + b_us) / 10**6)


@settings(deadline=None)
@given(st.data(), starts, amounts_us, amounts_us, modes)
def test_monotonic(data: st.DataObject, start: datetime, a_us: int, b_us: int, mode: str) -> None:
    pauses = data.draw(pause_lists(start))
    lo, hi = sorted((a_us, b_us))
    d_lo = due(start, lo / 10**6, mode=mode, pauses=pauses)
    d_hi = due(start, hi / 10**6, mode=mode, pauses=pauses)
    if d_lo is None:
        assert d_hi is None
    elif d_hi is not None:
        assert d_lo <= d_hi


@settings(deadline=None)
@given(st.data(), starts, amounts_us, modes)
def test_pauses_never_make_deadline_earlier(data: st.DataObject, start: datetime, us: int, mode: str) -> None:
    pauses = data.draw(pause_lists(start, allow_open=False))
    plain = due(start, us / 10**6, mode=mode)
    paused = due(start, us / 10**6, mode=mode, pauses=pauses)
    assert plain is not None and paused is not None
    assert paused >= plain
    if mode == "24x7" and not pauses:
        assert plain == start + timedelta(microseconds=us)


def _brute_force_minutes(start: datetime, minutes: int, mode: str, pauses: list[Pause]) -> int:
    """Counted whole minutes in [start, start + minutes), one minute at a time (independent oracle)."""
    count = 0
    for i in range(minutes):
        t = start + timedelta(minutes=i)
        if any(p <= t and (e is None or t < e) for p, e in pauses):
            continue
        local = t.astimezone(SHANGHAI)
        if mode == "24x7" or (CAL.is_workday(local.date()) and time(8, 30) <= local.time() < time(17, 30)):
            count += 1
    return count


@settings(deadline=None, max_examples=60)
@given(
    st.data(),
    st.builds(
        lambda d, m: datetime.combine(d, time(), tzinfo=SHANGHAI) + timedelta(minutes=m),
        st.dates(date(2025, 9, 20), date(2027, 1, 10)),
        st.integers(0, 24 * 60 - 1),
    ),
    st.integers(0, 4 * 24 * 60),
    modes,
)
def test_elapsed_matches_brute_force(data: st.DataObject, start: datetime, minutes: int, mode: str) -> None:
    pauses = [
        (start + timedelta(minutes=a), None if b is None else start + timedelta(minutes=a + b))
        for a, b in data.draw(
            st.lists(st.tuples(st.integers(-600, 6000), st.one_of(st.none(), st.integers(0, 3000))), max_size=3)
        )
    ]
    end = start + timedelta(minutes=minutes)
    expected = _brute_force_minutes(start, minutes, mode, pauses) * 60
    assert elapsed_business_seconds(CAL, start, end, mode=mode, pauses=pauses) == expected  # type: ignore[arg-type]
