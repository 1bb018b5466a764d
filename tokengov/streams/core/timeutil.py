"""Event-time arithmetic in integer milliseconds since the epoch (UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final, Literal

__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "day_key",
    "from_ms",
    "iso_ms",
    "period_bounds",
    "period_key",
    "to_ms",
]

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000


def to_ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_ms(ms: int) -> str:
    """``2026-11-29T05:00:00.123Z``."""
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def day_key(ms: int) -> str:
    """The UTC day of an instant: ``2026-11-29``."""
    return _day_key(ms - ms % DAY_MS)


@lru_cache(maxsize=1024)
def _day_key(day_start_ms: int) -> str:
    return from_ms(day_start_ms).date().isoformat()


def period_key(ms: int, period: Literal["day", "month"]) -> str:
    """``2026-11-29`` for a day, ``2026-11`` for a month (UTC)."""
    day = day_key(ms)
    return day if period == "day" else day[:7]


@lru_cache(maxsize=4096)
def period_bounds(key: str) -> tuple[int, int]:
    """Start and end (exclusive) of the period named by ``key``, in ms."""
    if len(key) == 10:
        start = date.fromisoformat(key)
        end = start + timedelta(days=1)
    else:
        year, month = int(key[:4]), int(key[5:7])
        start = date(year, month, 1)
        end = date(year + (month == 12), month % 12 + 1, 1)
    as_ms = [to_ms(datetime(d.year, d.month, d.day, tzinfo=UTC)) for d in (start, end)]
    return as_ms[0], as_ms[1]
