"""Deduplication and crash recovery: every event counts once, every alert fires once.

A crash is simulated the way it happens to the worker: records persisted since
the last commit may be any subset of what the processor wrote (a partial
flush), outputs published before the state was written are known (read back
from the alerts topic), and the messages after the committed offset are
processed again.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.streams.builders import T0, call, outcome, policy
from tokengov.core.calls import from_model
from tokengov.core.contracts import CallEvent, Outcome
from tokengov.streams.core import (
    ManualClock,
    Output,
    PartitionProcessor,
    PolicyView,
    Suppressor,
    position,
)

VIEW = PolicyView(policy())


def persist(store: dict[str, bytes], records: list[tuple[str, bytes | None]]) -> None:
    for key, raw in records:
        if raw is None:
            store.pop(key, None)
        else:
            store[key] = raw


def run(
    messages: list[list[CallEvent | Outcome]],
    proc: PartitionProcessor,
    out: Output,
    start: int = 0,
) -> None:
    proc.begin()
    for offset in range(start, len(messages)):
        for index, event in enumerate(messages[offset]):
            proc.process(from_model(event), position(offset, index), VIEW, out)


def snapshot(proc: PartitionProcessor) -> dict[str, Any]:
    agg = proc.agg
    return {
        "tasks": {
            t: (
                s.calls,
                s.tool_calls,
                s.retries,
                s.tokens,
                s.cost_femto,
                sorted(s.fired),
                s.outcome,
            )
            for t, s in sorted(proc.tasks.items())
        },
        "windows": {k: list(v) for k, v in agg.windows.items()},
        "budgets": {k: list(v) for k, v in agg.budgets.items()},
        "units": {k: (u.ints, u.floats, u.cost_femto) for k, u in agg.units.items()},
        "duplicates": agg.duplicates,
    }


def scenario() -> list[list[CallEvent | Outcome]]:
    """Messages (single events and envelopes) with duplicates and limit crossings."""
    msgs: list[list[CallEvent | Outcome]] = []
    for i in range(14):
        msgs.append([call(task="a", step=i, tool_calls=1, at=i)])
    env = [call(task="b", step=i, input=9000, output=1000, at=20 + i) for i in range(7)]
    msgs.append(env)
    msgs.append([env[2], env[3]])  # a producer retry of part of the envelope
    msgs.append([env[4], call(task="c", tool="grep", step=1, at=30), env[4]])
    msgs.append([call(task="c", tool="grep", step=1, at=31 + i) for i in range(7)])
    msgs.append([outcome(task="a", at=50), outcome(task="b", at=51)])
    return msgs


def reference(messages) -> tuple[dict[str, Any], list[str]]:
    proc = PartitionProcessor(0, VIEW.settings, ManualClock(T0))
    out = Output()
    run(messages, proc, out)
    return snapshot(proc), [a.fingerprint for a in out.alerts]


def test_duplicates_count_once() -> None:
    messages = scenario()
    snap, alerts = reference(messages)
    assert snap["tasks"]["b"][0] == 7  # seven distinct calls despite the retries
    assert snap["duplicates"] == 4
    assert len(alerts) == len(set(alerts))
    assert {a.split("|")[-1] for a in alerts} == {"max_tool_calls", "max_tokens_per_task", "grep"}


def test_replay_of_the_same_message_is_not_a_duplicate() -> None:
    messages = scenario()
    proc = PartitionProcessor(0, VIEW.settings, ManualClock(T0))
    out = Output()
    run(messages, proc, out)
    before = snapshot(proc)
    run(messages, proc, out)  # the same positions again: nothing changes
    assert snapshot(proc) == before


@settings(max_examples=60, deadline=None)
@given(
    commit=st.integers(min_value=0, max_value=19),
    crash=st.integers(min_value=0, max_value=19),
    keep=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_crash_anywhere_neither_loses_nor_repeats(
    commit: int, crash: int, keep: list[bool]
) -> None:
    messages = scenario()
    commit, crash = min(commit, crash), max(commit, crash)
    expected_state, expected_alerts = reference(messages)

    clock = ManualClock(T0)
    store: dict[str, bytes] = {}
    published: list[str] = []
    proc = PartitionProcessor(0, VIEW.settings, clock)
    out = Output()
    # everything before the committed offset was persisted and published
    run(messages[:commit], proc, out)
    persist(store, proc.take_records())
    published += [a.fingerprint for a in out.alerts]
    # then more is processed; its alerts are published, and only some of its records land
    out = Output(suppressor=out.suppressor)
    run(messages[:crash], proc, out, start=commit)
    published += [a.fingerprint for a in out.alerts]
    records = proc.take_records()
    persist(store, [r for r, k in zip(records, keep, strict=False) if k])

    # restart: state from the store, fingerprints read back, replay from the commit
    recovered = PartitionProcessor.load(0, store.items(), VIEW.settings, clock)
    out = Output(suppressor=Suppressor(set(published)))
    run(messages, recovered, out, start=commit)
    published += [a.fingerprint for a in out.alerts]

    assert snapshot(recovered) == expected_state
    assert sorted(published) == sorted(expected_alerts)


def test_idle_tasks_are_dropped_and_their_ids_still_deduplicate() -> None:
    clock = ManualClock(T0)
    proc = PartitionProcessor(0, VIEW.settings, clock)
    out = Output()
    first = call(task="old", step=1)
    proc.begin()
    proc.process(from_model(first), position(0, 0), VIEW, out)
    clock.advance(3601)
    assert proc.sweep(VIEW.settings) == 1
    assert "old" not in proc.tasks
    records = proc.take_records()
    assert ("t|old", None) in records
    assert any(k.startswith("seen|") and v for k, v in records)
    proc.process(from_model(first), position(1, 0), VIEW, out)  # a late producer retry
    assert "old" not in proc.tasks
    assert proc.agg.duplicates == 1
    # ids are forgotten after the dedup horizon
    clock.advance(3601 + 600)
    proc.sweep(VIEW.settings)
    assert len(proc.global_seen) == 0


#: A task's state record as the worker wrote it before issue 18's fourth pass: the bytes
#: ``TaskState.to_bytes`` of main f0d7ae3 gives for this task (an object, orjson of the
#: dataclass; a sum beyond 64 bits as decimal text, int keys as strings)
OBJECT_RECORD = (
    b'{"task_id":"t1","team":"search","workflow":"support-triage","applied_pos":1048577,'
    b'"first_ts_ms":1764392400000,"last_ts_ms":1764392401000,"touched_s":1764392460.5,'
    b'"calls":2,"tool_calls":1,"retries":1,"tokens":3300,"first_attempt_tokens":1100,'
    b'"retry_tokens":2200,"cost_femto":"150000000000000000000","largest_context":2000,'
    b'"hops":["planner>writer"],"hop_count":1,"max_step":3,"loop_tool":"grep","loop_run":1,'
    b'"first_ts":{"3":1764392400000},"steps":{"3":[[1,1764392400000],[2,1764392401000]]},'
    b'"fired":[],"outcome":null,"outcome_pos":-1,"outcome_tokens":0,"outcome_cost_femto":0,'
    b'"seen":{"e1":1048576,"e2":1048577}}'
)


def test_task_records_of_both_formats_read_back_exactly() -> None:
    clock = ManualClock(T0)
    old = PartitionProcessor.load(0, [("t|t1", OBJECT_RECORD)], VIEW.settings, clock)
    assert old.record_errors == 0
    task = old.tasks["t1"]
    assert task.cost_femto == 150 * 10**18 and task.tokens == 3300
    assert task.first_ts == {3: 1764392400000}
    assert task.steps == {3: [[1, 1764392400000], [2, 1764392401000]]}
    assert task.seen == {"e1": 1048576, "e2": 1048577} and task.hops == ["planner>writer"]
    # the array record written now, with a sum beyond 64 bits, reads back equal
    task.tokens = 2**70 + 1
    raw = task.to_bytes()
    # the whole record, field by field in TaskState's declaration order (the format is
    # positional: a field moved or inserted would read old records wrongly)
    assert raw == (
        b'["t1","search","support-triage",1048577,1764392400000,1764392401000,1764392460.5,'
        b"2,1,1,1180591620717411303425,1100,2200,150000000000000000000,2000,"
        b'["planner>writer"],1,3,"grep",1,{"3":1764392400000},'
        b'{"3":[[1,1764392400000],[2,1764392401000]]},[],null,-1,0,0,'
        b'{"e1":1048576,"e2":1048577}]'
    )
    again = PartitionProcessor.load(0, [("t|t1", raw)], VIEW.settings, clock)
    assert again.record_errors == 0 and again.tasks["t1"] == task
    assert again.tasks["t1"].tokens == 2**70 + 1
