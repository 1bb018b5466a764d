"""Per-task state: what one task (all its agents, every call with its ``task_id``) has done.

Positions: every event has a position ``pos`` in its partition, ``offset << 20 |
index in the envelope``; ``applied_pos`` is the last position applied to the
task and ``seen`` maps each event id to the position where it first appeared.
Together they make re-processing after a crash exact: an event at or before
``applied_pos`` is already in the counters; an id first seen at an earlier
position is a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_ATTEMPTS_PER_STEP", "MAX_STEPS_TRACKED", "TaskState"]

MAX_STEPS_TRACKED = 16
MAX_ATTEMPTS_PER_STEP = 32


@dataclass(slots=True)
class TaskState:
    task_id: str
    team: str
    workflow: str
    applied_pos: int = -1
    first_ts_ms: int = 0
    last_ts_ms: int = 0
    touched_s: float = 0.0  # processing time of the last applied event (eviction)
    calls: int = 0
    tool_calls: int = 0
    retries: int = 0
    tokens: int = 0
    first_attempt_tokens: int = 0
    retry_tokens: int = 0
    cost_femto: int = 0  # femto-USD (see streams.core.events)
    largest_context: int = 0
    hops: list[str] = field(default_factory=list)  # distinct parent>agent handoffs
    max_step: int = -1
    loop_tool: str | None = None
    loop_run: int = 0
    steps: dict[int, list[list[int]]] = field(default_factory=dict)  # step -> [[attempt, ts_ms]]
    fired: list[str] = field(default_factory=list)
    outcome: str | None = None
    outcome_pos: int = -1
    outcome_tokens: int = 0
    outcome_cost_femto: int = 0
    seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    def new(cls, task_id: str, team: str, workflow: str) -> TaskState:
        return cls(task_id=task_id, team=team, workflow=workflow)

    def has_fired(self, name: str) -> bool:
        return name in self.fired

    def mark_fired(self, name: str) -> None:
        self.fired.append(name)

    def record_attempt(self, step: int, attempt: int, ts_ms: int) -> list[list[int]]:
        """Remember when each attempt of a step happened (bounded); returns the step's attempts."""
        attempts = self.steps.get(step)
        if attempts is None:
            attempts = self.steps[step] = []
            if len(self.steps) > MAX_STEPS_TRACKED:
                del self.steps[min(self.steps)]
        attempts.append([attempt, ts_ms])
        if len(attempts) > MAX_ATTEMPTS_PER_STEP:
            del attempts[0]
        return attempts

    def to_doc(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "team": self.team,
            "workflow": self.workflow,
            "applied_pos": self.applied_pos,
            "first_ts_ms": self.first_ts_ms,
            "last_ts_ms": self.last_ts_ms,
            "touched_s": self.touched_s,
            "calls": self.calls,
            "tool_calls": self.tool_calls,
            "retries": self.retries,
            "tokens": self.tokens,
            "first_attempt_tokens": self.first_attempt_tokens,
            "retry_tokens": self.retry_tokens,
            "cost_femto": self.cost_femto,
            "largest_context": self.largest_context,
            "hops": self.hops,
            "max_step": self.max_step,
            "loop_tool": self.loop_tool,
            "loop_run": self.loop_run,
            "steps": [[step, attempts] for step, attempts in self.steps.items()],
            "fired": self.fired,
            "outcome": self.outcome,
            "outcome_pos": self.outcome_pos,
            "outcome_tokens": self.outcome_tokens,
            "outcome_cost_femto": self.outcome_cost_femto,
            "seen": self.seen,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TaskState:
        state = cls(
            task_id=doc["task_id"],
            team=doc["team"],
            workflow=doc["workflow"],
        )
        for name in (
            "applied_pos",
            "first_ts_ms",
            "last_ts_ms",
            "touched_s",
            "calls",
            "tool_calls",
            "retries",
            "tokens",
            "first_attempt_tokens",
            "retry_tokens",
            "largest_context",
            "hops",
            "max_step",
            "loop_tool",
            "loop_run",
            "fired",
            "outcome",
            "outcome_pos",
            "outcome_tokens",
            "seen",
            "cost_femto",
            "outcome_cost_femto",
        ):
            setattr(state, name, doc[name])
        state.steps = {int(step): attempts for step, attempts in doc["steps"]}
        return state
