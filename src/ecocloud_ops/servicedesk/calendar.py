"""Chinese business calendar for service-desk SLAs (pure data, no database).

A :class:`BusinessCalendar` answers one question -- *is this local date a working day?* -- from
a table of per-date overrides published by the State Council each year:

* a **holiday** (法定节假日/放假, e.g. 国庆节) is *not* a working day, whatever weekday it falls on;
* a **make-up working day** (调休上班) is a weekend date that *is* a working day.

Every date without an override is a working day iff it is Monday--Friday.  ``known_years`` lists
the years whose official schedule has been entered; for any other year the calendar is only an
estimate (weekends-only), and :mod:`ecocloud_ops.servicedesk.sla` flags deadlines that depend on it.

Working hours are one interval per working day, ``opening``--``closing`` (default 08:30--17:30)
local time in ``tz`` (default Asia/Shanghai, which has no DST).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

__all__ = ["SHANGHAI", "BusinessCalendar", "DayKind", "DayOverride", "chinese_calendar_days"]

#: The agency's (and the calendar's) time zone.
SHANGHAI = ZoneInfo("Asia/Shanghai")


class DayKind(StrEnum):
    """What an override says about its date (the string value is what gets stored)."""

    HOLIDAY = "holiday"
    """Official holiday: not a working day, even on a Monday--Friday."""
    MAKEUP_WORKDAY = "makeup_workday"
    """调休上班: a weekend date that is a working day."""


@dataclass(frozen=True, slots=True)
class DayOverride:
    """An exception to the Monday--Friday rule for one date.

    ``name`` is the festival the date belongs to, in Chinese (e.g. ``"国庆节"``); for a make-up
    working day it is the festival whose holidays it pays for (the kind says it is 调休上班).
    """

    kind: DayKind
    name: str = ""

    @classmethod
    def holiday(cls, name: str) -> DayOverride:
        """A holiday override (not a working day)."""
        return cls(DayKind.HOLIDAY, name)

    @classmethod
    def makeup_workday(cls, name: str) -> DayOverride:
        """A make-up working day override (调休上班: a working day)."""
        return cls(DayKind.MAKEUP_WORKDAY, name)

    @property
    def is_workday(self) -> bool:
        """True for a make-up working day, False for a holiday."""
        return self.kind is DayKind.MAKEUP_WORKDAY


@dataclass(frozen=True)
class BusinessCalendar:
    """Immutable working-day calendar plus daily working hours.

    ``days`` maps local dates to overrides (copied into a read-only mapping); ``known_years`` are
    the years whose official schedule is complete in ``days``.  Working time on a working day is
    ``[opening, closing)`` local time in ``tz``; non-working days have none.
    """

    days: Mapping[date, DayOverride] = field(default_factory=dict)
    known_years: frozenset[int] = frozenset()
    opening: time = time(8, 30)
    closing: time = time(17, 30)
    tz: tzinfo = SHANGHAI

    def __post_init__(self) -> None:
        days = dict(self.days)
        for d, override in days.items():
            if isinstance(d, datetime) or not isinstance(d, date):
                raise TypeError(f"calendar keys must be datetime.date, got {d!r}")
            if not isinstance(override, DayOverride):
                raise TypeError(f"calendar values must be DayOverride, got {override!r}")
        object.__setattr__(self, "days", MappingProxyType(days))
        object.__setattr__(self, "known_years", frozenset(self.known_years))
        if self.opening.tzinfo is not None or self.closing.tzinfo is not None:
            raise ValueError("opening/closing are local wall-clock times and must be naive")
        if not self.opening < self.closing:
            raise ValueError(f"opening {self.opening} must be before closing {self.closing}")

    def __hash__(self) -> int:
        return hash((frozenset(self.days.items()), self.known_years, self.opening, self.closing, self.tz))

    def is_workday(self, d: date) -> bool:
        """Whether local date ``d`` is a working day: its override if it has one, else Monday--Friday."""
        override = self.days.get(d)
        if override is not None:
            return override.is_workday
        return d.weekday() < 5

    def year_known(self, year: int) -> bool:
        """Whether the official holiday schedule of ``year`` is in the calendar."""
        return year in self.known_years

    def override(self, d: date) -> DayOverride | None:
        """The override for local date ``d``, if any (e.g. to show the holiday's name)."""
        return self.days.get(d)


def chinese_calendar_days() -> tuple[dict[date, DayOverride], frozenset[int]]:
    """Seed data from the ``chinese-calendar`` package: ``(overrides, years it covers)``.

    Every holiday the package lists is returned -- including those falling on a weekend, so the
    stored table is the complete official schedule -- and every make-up working day.  Names are the
    festivals' Chinese names (国庆节, 春节, ...).  The covered years are those the package has a
    holiday for (chinese-calendar 1.11: 2004--2026).
    """
    from chinese_calendar import constants

    def chinese(english: str) -> str:
        try:
            return str(constants.Holiday(english).chinese)
        except ValueError:  # a name newer than this code's knowledge: keep the package's text
            return english

    days: dict[date, DayOverride] = {}
    for d, english in constants.holidays.items():
        days[d] = DayOverride.holiday(chinese(english))
    for d, english in constants.workdays.items():
        if d in days:
            raise ValueError(f"chinese-calendar lists {d} as both a holiday and a make-up working day")
        days[d] = DayOverride.makeup_workday(chinese(english))
    years = frozenset(d.year for d in constants.holidays)
    return days, years
