"""Muting by time, as Alertmanager's ``TimeActiveStage`` then ``TimeMuteStage``
(``notify/mute.go``): applied to a whole group when it is flushed.

- A route with ``active_time_intervals`` notifies only while one of them contains now.
- A route with ``mute_time_intervals`` does not notify while one of them contains now.

A muted group sends nothing and its alerts are not marked notified, so the receiver hears
of them at the first flush after the mute ends (resolved alerts are dropped at a muted
flush, as Alertmanager does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tokengov.core.timeintervals import Intervener
from tokengov.sinks.router.tree import RouteNode

__all__ = ["TimeMute", "time_mute"]


@dataclass(frozen=True)
class TimeMute:
    """Why a route is muted now: outside all its active intervals, or inside a mute one."""

    key: Literal["active_time_intervals", "mute_time_intervals"]
    intervals: tuple[str, ...]

    def describe(self) -> str:
        names = ", ".join(self.intervals)
        if self.key == "active_time_intervals":
            return f"outside all of its active_time_intervals ({names})"
        return f"inside its mute_time_intervals {names}"


def time_mute(node: RouteNode, intervals: Intervener, now: datetime) -> TimeMute | None:
    """The reason ``node``'s groups send nothing at ``now``, or None."""
    if node.active_time_intervals and not intervals.containing(node.active_time_intervals, now):
        return TimeMute("active_time_intervals", node.active_time_intervals)
    if node.mute_time_intervals:
        muting = intervals.containing(node.mute_time_intervals, now)
        if muting:
            return TimeMute("mute_time_intervals", tuple(muting))
    return None
