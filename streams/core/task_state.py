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

import orjson

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

    def to_bytes(self) -> bytes:
        """The state record (JSON); orjson serialises the dataclass directly."""
        return orjson.dumps(self, option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TaskState:
        state = cls(**doc)
        state.steps = {int(step): attempts for step, attempts in doc["steps"].items()}
        return state
