"""Clock skew (stage 1): event time far from the worker's clock governs nobody else.

An event stamped more than ``streams.max_clock_ahead`` ahead of the processing
clock is kept (stored, priced, counted into its task) but governed at
processing time: its windows, budget period, unit-metric day and the
partition's watermark use the time it was processed, so one agent with a
clock a day (or a century) ahead cannot close today's windows and budgets for
everyone. An event more than ``streams.max_clock_behind`` behind is late:
counted into its task, not into windows, budgets or unit metrics. Both are
counted, and each raises one ``clock_skew`` alert per team, agent and UTC day
(processing time)::

    clock_skew|search|planner|2026-11-29
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from tokengov.core.calls import Call, Done
from tokengov.core.contracts import Alert
from tokengov.streams.core.alerts import fingerprint, make_alert
from tokengov.streams.core.timeutil import iso_ms

__all__ = ["clock_skew_alert", "clock_skew_fingerprint"]

Direction = Literal["ahead", "behind"]


def _agent(event: Call | Done) -> str:
    return event.agent if type(event) is Call else "-"


def clock_skew_fingerprint(event: Call | Done, day: str) -> str:
    return fingerprint("clock_skew", event.team, _agent(event), day)


def clock_skew_alert(
    event: Call | Done, skew_ms: int, limit_ms: int, day: str, now: datetime
) -> Alert:
    """The alert for the first skewed event of a team and agent on a day."""
    direction: Direction = "ahead" if skew_ms > 0 else "behind"
    agent = _agent(event)
    seconds = abs(skew_ms) / 1000
    if direction == "ahead":
        handling = "governed at processing time (budgets, windows and watermarks ignore its time)"
    else:
        handling = "counted late (not into windows, budgets or unit metrics)"
    who = f"agent {agent}" if agent != "-" else "outcomes"
    return make_alert(
        kind="clock_skew",
        fingerprint=clock_skew_fingerprint(event, day),
        severity="warning",
        team=event.team,
        workflow=event.workflow,
        task_id=event.task_id,
        labels={"agent": agent, "day": day, "direction": direction},
        summary=(
            f"{who} of team {event.team} (workflow {event.workflow}) sends event times "
            f"{seconds:,.0f} s {direction} of the worker's clock (limit {limit_ms / 1000:,.0f} s); "
            f"such events are kept and {handling} — check that host's clock"
        ),
        evidence={
            "direction": direction,
            "skew_seconds": round(skew_ms / 1000, 3),
            "limit_seconds": limit_ms / 1000,
            "event_id": event.event_id,
            "event_ts": iso_ms(event.ts_ms),
            "processed_at": iso_ms(int(now.timestamp() * 1000)),
            "agent": agent,
            "workflow": event.workflow,
            "team": event.team,
            "day": day,
        },
        starts_at=now,
    )
