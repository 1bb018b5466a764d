"""Loops: the same tool called again and again while the task makes no step progress.

A run counts consecutive first attempts (``attempt == 1``) that use the same
``tool_name`` while the task's highest ``step`` does not advance; a call that
reaches a new step starts a new run. Retries neither extend nor break a run.
The run may reach the profile's ``max_same_tool_calls`` (or the policy's
``streams.default_max_same_tool_calls``); one more is a loop, alerted once per
task and tool. A call's step progress and run are kept by stage 1's task update
(``PartitionProcessor._apply_to_task``, inlined there: once per call).
"""

from __future__ import annotations

from datetime import datetime

from tokengov.core.contracts import Alert
from tokengov.streams.core.alerts import fingerprint, make_alert
from tokengov.streams.core.task_state import TaskState

__all__ = ["check_loop"]


def check_loop(
    task: TaskState, limit: int, *, team: str, event_ts: datetime, event_id: str
) -> Alert | None:
    tool = task.loop_tool
    if tool is None or task.loop_run <= limit:
        return None
    key = f"loop:{tool}"
    if task.has_fired(key):
        return None
    task.mark_fired(key)
    return make_alert(
        kind="loop",
        fingerprint=fingerprint("loop", team, task.workflow, task.task_id, tool),
        severity="warning",
        team=team,
        workflow=task.workflow,
        task_id=task.task_id,
        labels={"tool_name": tool},
        summary=(
            f"task {task.task_id} called {tool} {task.loop_run} times in a row without step "
            f"progress (stuck at step {task.max_step}); allowed {limit}"
        ),
        evidence={
            "tool_name": tool,
            "observed": task.loop_run,
            "limit": limit,
            "step": task.max_step,
            "event_id": event_id,
        },
        starts_at=event_ts,
    )
