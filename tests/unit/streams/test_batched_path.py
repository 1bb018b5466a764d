"""The batched path of stage 1 (``PartitionProcessor.process_batch``, what the worker runs per
message) gives exactly what the per-event path (``process`` of each event) gives.

Messages are generated from the contract's models (``CallEvent``, ``Outcome``) around the
edges the batched path must respect: minute, hour and day boundaries, events late for a
window or a day, clocks ahead and behind, duplicates (within a message, across messages
and after their task was dropped), calls without usage, reported costs, unpriced models,
workflows without a profile, retries, hand-offs and tool loops crossing the profile's
limits, budgets crossing their thresholds — and messages processed again after a crash.
Both paths run side by side; after every message their alerts, decisions, partials, state
records and in-memory state must be equal, and so must what stage 2 makes of the partials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.streams.builders import POLICY, T0, call, outcome, policy
from tokengov.core.calls import Call, Done, from_model
from tokengov.core.contracts import CallEvent, Outcome
from tokengov.streams.core import (
    Aggregator,
    ManualClock,
    Output,
    PartitionProcessor,
    PolicyView,
    codec,
    position,
)

#: the builders' policy with a budget small enough to cross its thresholds here
VIEW = PolicyView(
    policy(
        POLICY.replace(
            "budgets:\n",
            "budgets:\n  - {scope: workflow, name: deep-research, period: day, limit_usd: 0.05}\n",
        )
    )
)

#: seconds after T0 (05:00 UTC): minute, hour and day (19 h later) boundaries, the day
#: before (late once the watermark has passed it by the grace)
ANCHORS = (0.0, 59.0, 61.0, 3_590.0, 3_610.0, 68_390.0, 68_410.0, -86_000.0)
ATTRIBUTION = (
    ("search", "support-triage"),
    ("research", "deep-research"),
    ("search", "no-profile"),
    (None, None),
)
DUPLICATE_IDS = ("dup-1", "dup-2", "dup-3")


@st.composite
def a_call(draw: st.DrawFn) -> CallEvent:
    team, workflow = draw(st.sampled_from(ATTRIBUTION))
    usage_missing = draw(st.integers(0, 9)) == 0
    input_tokens = 0 if usage_missing else draw(st.integers(0, 20_000))
    output_tokens = 0 if usage_missing else draw(st.integers(0, 3_000))
    return call(
        task=draw(st.sampled_from(("t1", "t2", "t3", "t4"))),
        at=draw(st.sampled_from(ANCHORS)) + draw(st.integers(0, 40)) / 4,
        team=team,
        workflow=workflow,
        agent=draw(st.sampled_from(("planner", "writer", "researcher"))),
        parent=draw(st.sampled_from((None, None, "planner", "writer"))),
        step=draw(st.integers(0, 4)),
        attempt=draw(st.sampled_from((1, 1, 1, 2, 3))),
        model=draw(st.sampled_from(("gpt-4.1-mini", "claude-sonnet-4", "acme-unpriced-9"))),
        input=input_tokens,
        output=output_tokens,
        cached=0 if usage_missing else draw(st.integers(0, input_tokens)),
        reasoning=draw(st.integers(0, min(output_tokens, 50))),
        tool_calls=draw(st.integers(0, 3)),
        tool=draw(st.sampled_from((None, "grep", "grep", "search"))),
        status=draw(st.sampled_from(("ok", "ok", "ok", "error"))),
        cost=draw(st.sampled_from((None, None, None, "0.0123"))),
        context_window=draw(st.sampled_from((None, 32_000, 200_000))),
        event_id=draw(st.sampled_from((None, None, None, *DUPLICATE_IDS))),
        usage_missing=usage_missing,
    )


@st.composite
def an_outcome(draw: st.DrawFn) -> Outcome:
    team, workflow = draw(st.sampled_from(ATTRIBUTION[:3]))
    return outcome(
        task=draw(st.sampled_from(("t1", "t2", "t3", "t4"))),
        at=draw(st.sampled_from(ANCHORS)) + draw(st.integers(0, 40)) / 4,
        status=draw(st.sampled_from(("success", "failure"))),
        quality=draw(st.sampled_from((None, 0.5, 0.95))),
        team=team,
        workflow=workflow,
        event_id=draw(st.sampled_from((None, None, *DUPLICATE_IDS))),
    )


@st.composite
def a_message(draw: st.DrawFn) -> tuple[list[CallEvent | Outcome], float, bool]:
    """The events of one message, the processing clock's distance from its latest event
    (negative: the producer's clock runs ahead), and whether idle tasks are dropped first."""
    events = draw(
        st.lists(st.one_of(a_call(), a_call(), a_call(), an_outcome()), min_size=1, max_size=30)
    )
    lag = draw(st.sampled_from((0.0, 0.0, 0.0, 5.0, -3_600.0, 3 * 86_400.0)))
    return events, lag, draw(st.integers(0, 7)) == 0


@dataclass
class Side:
    """One way of running stage 1 (and stage 2 over its partials), and what came out."""

    batched: bool
    clock: ManualClock = field(default_factory=lambda: ManualClock(T0))
    seen: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proc = PartitionProcessor(0, VIEW.settings, self.clock)
        self.aggregator = Aggregator(self.clock)
        self.out = Output()

    def message(self, offset: int, events: list[Call | Done], lag: float, sweep: bool) -> None:
        self.clock.set(max(e.ts for e in events) + timedelta(seconds=lag))
        if sweep:
            self.clock.advance(timedelta(hours=2))
            self.seen.append(("swept", self.proc.sweep(VIEW.settings)))
        proc = self.proc
        proc.begin()
        if self.batched:
            proc.process_batch(list(enumerate(events)), offset, VIEW, self.out)
        else:
            for index, event in enumerate(events):
                proc.process(event, position(offset, index), VIEW, self.out)
        partial = proc.agg.take_partial()
        self.seen.append(("partial", partial))
        if partial is not None:  # through JSON, as on the partials topic
            self.aggregator.apply(orjson.loads(codec.dumps(partial)), VIEW, self.out)
        proc.agg.expire()
        self.aggregator.tick(VIEW, self.out)
        self.seen.append(("records", proc.take_records()))
        self.seen.append(("stage 2 records", self.aggregator.take_records()))
        self.seen.append(("alerts", [a.model_dump(mode="json") for a in self.out.alerts]))
        self.seen.append(
            ("decisions", [(d.model_dump(mode="json"), c) for d, c in self.out.decisions])
        )
        self.seen.append(("metrics", list(self.out.metrics)))
        self.out.clear()
        self.seen.append(("state", self.state()))

    def state(self) -> Any:
        proc = self.proc
        return (
            proc.agg.to_doc(),
            sorted(proc.agg.dirty_windows),
            proc.agg.changed,
            [(t, s.to_bytes()) for t, s in proc.tasks.items()],
            sorted(proc.dirty_tasks),
            {b: dict(ids) for b, ids in proc.global_seen.buckets.items()},
            proc.events_applied,
        )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(a_message(), min_size=1, max_size=8),
    replay_from=st.integers(0, 8),
)
def test_batched_path_equals_event_by_event(
    messages: list[tuple[list[CallEvent | Outcome], float, bool]], replay_from: int
) -> None:
    one_by_one, batched = Side(batched=False), Side(batched=True)
    decoded = [([from_model(e) for e in events], lag, sweep) for events, lag, sweep in messages]
    # then the messages from ``replay_from`` once more at the same offsets (after a crash:
    # nothing applied twice), then once more at new offsets (a producer sending them again)
    offsets = [
        *range(len(decoded)),
        *range(min(replay_from, len(decoded)), len(decoded)),
        *range(len(decoded), 2 * len(decoded)),
    ]
    for step, offset in enumerate(offsets):
        events, lag, sweep = decoded[offset % len(decoded)]
        for side in (one_by_one, batched):
            side.message(offset, events, lag, sweep and step < len(decoded))
        assert batched.seen == one_by_one.seen, f"message {step} (offset {offset})"


def test_a_crossing_inside_a_message_names_its_event() -> None:
    """The thirteenth tool call of a message crosses max_tool_calls (12): the batched path
    alerts on it, with its event id and the observed value, as event by event does."""
    events = [
        call(task="t9", step=i, tool_calls=1, tool=f"tool-{i}", at=i, event_id=f"c-{i}")
        for i in range(20)
    ]
    sides = [Side(batched=False), Side(batched=True)]
    for side in sides:
        side.message(0, [from_model(e) for e in events], 0.0, False)
    assert sides[0].seen == sides[1].seen
    alerts = next(v for k, v in sides[1].seen if k == "alerts")
    runaway = [a for a in alerts if a["kind"] == "runaway"]
    assert [(a["labels"]["limit"], a["evidence"]["event_id"]) for a in runaway] == [
        ("max_tool_calls", "c-12")
    ]
    assert runaway[0]["evidence"]["observed"] == 13
