"""Time intervals, with Prometheus Alertmanager's syntax and semantics
(``timeinterval/timeinterval.go``, ``config/config.go``).

The policy's ``time_intervals:`` names lists of intervals; routes refer to them by name
in ``mute_time_intervals`` (no notification while *any* of them contains the time) and
``active_time_intervals`` (notifications only while *one* of them contains it)::

    time_intervals:
      - name: offhours
        time_intervals:
          - times: [{start_time: "00:00", end_time: "09:00"}, {start_time: "17:00", end_time: "24:00"}]
            weekdays: ["monday:friday"]
            location: Europe/Berlin
          - weekdays: [saturday, sunday]

Within one interval every field that is set must contain the time (``times`` is
``[start, end)`` in minutes of the day; ``weekdays``, ``days_of_month``, ``months`` and
``years`` are inclusive ranges ``a:b`` or single values; negative days of month count
from the month's end, ``-1`` being its last day). A field left out matches always. The
time is taken in ``location`` (an IANA zone, default UTC).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DAYS_OF_WEEK",
    "MONTHS",
    "Intervener",
    "NamedTimeInterval",
    "TimeInterval",
    "TimeRange",
    "parse_time",
]

DAYS_OF_WEEK = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
}
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTH_NAMES = {i: name for name, i in MONTHS.items()}
_VALID_TIME = re.compile(r"^((([01][0-9])|(2[0-3])):[0-5][0-9])$|(^24:00$)")


def parse_time(text: str) -> int:
    """``"09:30"`` → 570 minutes; ``"24:00"`` is the end of the day."""
    if not _VALID_TIME.match(text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text} is not a number") from None


def _weekday(text: str) -> int:
    if text not in DAYS_OF_WEEK:
        raise ValueError(f"{text} is not a valid weekday")
    return DAYS_OF_WEEK[text]


def _month(text: str) -> int:
    if text in MONTHS:
        return MONTHS[text]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text} is not a valid month") from None


def _range(value: Any, member: Callable[[str], int]) -> tuple[int, int]:
    """``"monday:friday"`` or ``"monday"`` (case-insensitive) → (begin, end)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{value!r} is not a range (use e.g. 'a:b' or a single value)")
    text = str(value).lower()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"couldn't parse range {text}, invalid format")
        return member(parts[0]), member(parts[1])
    single = member(text)
    return single, single


def _weekday_range(value: Any) -> tuple[int, int]:
    begin, end = _range(value, _weekday)
    if begin > end:
        raise ValueError("start day cannot be before end day")
    return begin, end


def _day_of_month_range(value: Any) -> tuple[int, int]:
    begin, end = _range(value, _integer)
    if begin == 0 or begin < -31 or begin > 31:
        raise ValueError(f"{begin} is not a valid day of the month: out of range")
    if end == 0 or end < -31 or end > 31:
        raise ValueError(f"{end} is not a valid day of the month: out of range")
    if begin < 0 and end > 0:
        raise ValueError("end day must be negative if start day is negative")
    check_begin = 28 + begin if begin < 0 else begin
    check_end = 28 + end if end < 0 else end
    if check_begin > check_end:
        raise ValueError(f"end day {end} is always before start day {begin}")
    return begin, end


def _month_range(value: Any) -> tuple[int, int]:
    begin, end = _range(value, _month)
    for month in (begin, end):
        if not 1 <= month <= 12:  # tokengov: Alertmanager accepts any number here
            raise ValueError(f"{month} is not a valid month: out of range")
    if begin > end:
        raise ValueError(
            f"end month {_MONTH_NAMES[end]} is before start month {_MONTH_NAMES[begin]}"
        )
    return begin, end


def _year_range(value: Any) -> tuple[int, int]:
    begin, end = _range(value, _integer)
    if begin > end:
        raise ValueError(f"end year {end} is before start year {begin}")
    return begin, end


WeekdayRange = Annotated[tuple[int, int], BeforeValidator(_weekday_range)]
DayOfMonthRange = Annotated[tuple[int, int], BeforeValidator(_day_of_month_range)]
MonthRange = Annotated[tuple[int, int], BeforeValidator(_month_range)]
YearRange = Annotated[tuple[int, int], BeforeValidator(_year_range)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeRange(_Strict):
    """``{start_time: "09:00", end_time: "17:00"}``: the minutes ``[start, end)`` of a day."""

    start_time: str = ""
    end_time: str = ""

    @model_validator(mode="after")
    def _valid(self) -> TimeRange:
        if not self.start_time or not self.end_time:
            raise ValueError("both start and end times must be provided")
        if parse_time(self.start_time) >= parse_time(self.end_time):
            raise ValueError("start time cannot be equal or greater than end time")
        return self

    @property
    def start_minute(self) -> int:
        return parse_time(self.start_time)

    @property
    def end_minute(self) -> int:
        return parse_time(self.end_time)


def _clamp(n: int, low: int, high: int) -> int:
    return max(low, min(n, high))


class TimeInterval(_Strict):
    """One interval (Alertmanager's ``timeinterval.TimeInterval``). Unset fields match always."""

    times: list[TimeRange] | None = None
    weekdays: list[WeekdayRange] | None = None
    days_of_month: list[DayOfMonthRange] | None = None
    months: list[MonthRange] | None = None
    years: list[YearRange] | None = None
    location: str | None = Field(default=None, description="An IANA time zone (default UTC).")

    @field_validator("location")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value}") from None
        return value

    def contains(self, t: datetime) -> bool:
        """Alertmanager's ``ContainsTime``: is ``t`` (timezone-aware) inside this interval?"""
        if t.tzinfo is None:
            raise ValueError("a time interval needs a timezone-aware time")
        if self.location is not None:
            t = t.astimezone(ZoneInfo(self.location))
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(r.start_minute <= minute < r.end_minute for r in self.times):
                return False
        if self.days_of_month is not None:
            days = calendar.monthrange(t.year, t.month)[1]
            inside = False
            for b, e in self.days_of_month:
                begin = days + b + 1 if b < 0 else b
                end = days + e + 1 if e < 0 else e
                if begin > days:
                    continue  # e.g. 30:31 in February
                begin, end = _clamp(begin, -days, days), _clamp(end, -days, days)
                if begin <= t.day <= end:
                    inside = True
                    break
            if not inside:
                return False
        if self.months is not None and not any(b <= t.month <= e for b, e in self.months):
            return False
        weekday = (t.weekday() + 1) % 7  # Go's time.Weekday: Sunday is 0
        if self.weekdays is not None and not any(b <= weekday <= e for b, e in self.weekdays):
            return False
        return self.years is None or any(b <= t.year <= e for b, e in self.years)


class NamedTimeInterval(_Strict):
    """An entry of the policy's ``time_intervals:`` (Alertmanager's ``config.TimeInterval``)."""

    name: str = Field(default="", validate_default=True)
    time_intervals: list[TimeInterval] = Field(default_factory=list)

    @field_validator("name", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        if value is None or value == "":
            raise ValueError("missing name in time interval")
        return value


class Intervener:
    """Which named time intervals contain a time (Alertmanager's ``timeinterval.Intervener``)."""

    def __init__(self, intervals: Iterable[NamedTimeInterval] = ()) -> None:
        self._intervals = {i.name: tuple(i.time_intervals) for i in intervals}

    def __contains__(self, name: object) -> bool:
        return name in self._intervals

    def containing(self, names: Sequence[str], now: datetime) -> list[str]:
        """The names among ``names`` with an interval that contains ``now``, in order.
        Raises KeyError for a name not defined (``tokengov policy check`` refuses those)."""
        found: list[str] = []
        now = now.astimezone(UTC)
        for name in names:
            if name not in self._intervals:
                raise KeyError(f"time interval {name} doesn't exist in config")
            if any(ti.contains(now) for ti in self._intervals[name]):
                found.append(name)
        return found
