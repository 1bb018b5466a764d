from __future__ import annotations

import collections
import time

import pytest
from confluent_kafka.admin import AdminClient

from tests.kafka_helpers import DeadPort, read_events
from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.core.calls import Call, Done
from tokengov.core.decoding import decode_events
from tokengov.core.kafka import read_to_end
from tokengov.core.topics import NO_AUTO_CREATE, ensure_topics, topic_specs
from tokengov.producers.emitter import TokenEmitter

pytestmark = pytest.mark.integration


def test_events_arrive_exactly_once_with_task_keys(bootstrap, topic_names, tmp_path):
    n_tasks, calls_per_task = 40, 25
    with TokenEmitter(bootstrap, topic=topic_names.events, spool_dir=tmp_path / "spool") as emitter:
        for t in range(n_tasks):
            with emitter.task(
                team="search", workflow="support-triage", task_id=f"t-{t}", agent="planner"
            ) as task:
                for i in range(calls_per_task):
                    task.record(
                        {"prompt_tokens": 100 + i, "completion_tokens": 10},
                        model="gpt-4.1-mini",
                        provider="openai",
                        components={"system": 50},
                        tool_calls=1,
                        tool_name="search",
                    )
    assert emitter.stats.invalid == 0 and emitter.stats.overflow == 0 and emitter.stats.spooled == 0
    expected = n_tasks * (calls_per_task + 1)
    events = read_events(bootstrap, topic_names.events, expected=expected)
    ids = [e.event_id for _, e in events]
    assert len(ids) == expected and len(set(ids)) == expected
    for key, event in events:
        assert key == event.task_id  # partitioned by task
    by_task = collections.defaultdict(list)
    for _, event in events:
        by_task[event.task_id].append(event)
    for task_events in by_task.values():
        calls = [e for e in task_events if isinstance(e, Call)]
        assert [c.step for c in calls] == list(range(1, calls_per_task + 1))
        assert isinstance(task_events[-1], Done) and task_events[-1].status == "success"


def test_task_context_stamps_retries_handoffs_and_failure(bootstrap, topic_names, tmp_path):
    emitter = TokenEmitter(bootstrap, topic=topic_names.events, spool_dir=tmp_path / "spool")
    with (
        emitter,
        pytest.raises(RuntimeError),
        emitter.task(team="search", workflow="wf", task_id="t-x", agent="planner") as task,
    ):
        task.record({"input": 10, "output": 1}, model="m")
        task.record({"input": 10, "output": 1}, model="m", retry=True, status="error")
        researcher = task.handoff("researcher")
        researcher.record({"input": 30, "output": 2}, model="m", components={"handoff": 20})
        raise RuntimeError("the agent crashed")
    events = read_events(bootstrap, topic_names.events, expected=4)
    calls = [e for _, e in events if isinstance(e, Call)]
    assert [(c.step, c.attempt, c.agent, c.parent_agent) for c in calls] == [
        (1, 1, "planner", None),
        (1, 2, "planner", None),
        (2, 1, "researcher", "planner"),
    ]
    outcome = [e for _, e in events if isinstance(e, Done)]
    assert [o.status for o in outcome] == ["failure"]


def test_invalid_values_are_counted_not_raised(bootstrap, topic_names, tmp_path):
    emitter = TokenEmitter(bootstrap, topic=topic_names.events, spool_dir=tmp_path / "spool")
    with emitter, emitter.task(team="search", workflow="wf", task_id="t-bad") as task:
        task.record({"input": 10, "output": 1, "cached_input": 50}, model="m")  # impossible
        task.record("garbage", model="m", components="also garbage")  # type: ignore[arg-type]
        task.record({"input": 10, "output": 1}, model="m")
    assert emitter.stats.invalid == 2
    events = read_events(bootstrap, topic_names.events, expected=2)
    assert len(events) == 2  # the good call and the outcome: the sender survived the garbage


def test_broker_down_spools_and_replays_in_order(tmp_path):
    """Broker stopped mid-stream → events spooled → broker back → every event delivered,
    in order per task. Tansu keeps topics in memory, so the restarted broker starts empty:
    what it holds at the end is exactly what was spooled and replayed; what was delivered
    before the stop was read before the stop."""
    port = free_port()
    broker = EmbeddedBroker(tmp_path / "broker", port=port)
    specs = topic_specs(event_partitions=4)
    broker.start(detach=False)
    try:
        ensure_topics(broker.bootstrap, specs)
        emitter = TokenEmitter(
            broker.bootstrap,
            spool_dir=tmp_path / "spool",
            delivery_timeout_ms=3000,
            probe_interval_s=0.3,
        )
        tasks = [emitter.task(team="search", workflow="wf", task_id=f"t-{i}") for i in range(5)]
        for round_ in range(10):
            for task in tasks:
                task.record({"input": 100 + round_, "output": 5}, model="m")
        assert emitter.flush(20)
        before = read_events(broker.bootstrap, "tokengov.events", expected=50)
        assert len(before) == 50 and emitter.stats.spooled == 0

        broker.stop()
        down = DeadPort(port)  # no other test's broker takes the port meanwhile
        for round_ in range(10, 30):
            for task in tasks:
                task.record({"input": 100 + round_, "output": 5}, model="m")
        # the delivery reports count the spooled events; the sender thread then notices the
        # failures and switches to spooling: wait for both
        deadline = time.monotonic() + 30
        while not (emitter.stats.spooled >= 100 and emitter.spooling):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert emitter.spooling and emitter.stats.spooled == 100
        assert emitter.spooled_pending > 0

        down.close()
        broker.start(detach=False)
        ensure_topics(broker.bootstrap, specs)
        deadline = time.monotonic() + 30
        while emitter.spooling and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not emitter.spooling, "the spool was not replayed"
        for task in tasks:
            task.record({"input": 999, "output": 5}, model="m")  # direct again
        emitter.close()
        after = read_events(broker.bootstrap, "tokengov.events", expected=105)
    finally:
        broker.stop()
    assert emitter.stats.replayed >= 1
    all_events = [e for _, e in before] + [e for _, e in after]
    ids = [e.event_id for e in all_events]
    assert len(ids) == 155 == len(set(ids)), "every event exactly once"
    for i in range(5):
        steps = [e.step for e in all_events if e.task_id == f"t-{i}"]
        assert steps == list(range(1, 32)), f"task t-{i} out of order: {steps}"
    assert not list((tmp_path / "spool").glob("spool-*.log"))


def test_close_without_broker_spools_and_next_emitter_replays(bootstrap, topic_names, tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    emitter = TokenEmitter(
        dead, topic=topic_names.events, spool_dir=tmp_path / "spool", delivery_timeout_ms=1500
    )
    with emitter.task(team="search", workflow="wf", task_id="t-1") as task:
        for _ in range(7):
            task.record({"input": 10, "output": 1}, model="m")
    started = time.monotonic()
    emitter.close(timeout_s=5)
    assert time.monotonic() - started < 15
    assert emitter.stats.spooled == 8  # 7 calls + the outcome, safely on disk
    assert emitter.spooled_pending >= 1  # messages (envelopes) on disk

    replayer = TokenEmitter(
        bootstrap, topic=topic_names.events, spool_dir=tmp_path / "spool", probe_interval_s=0.2
    )
    deadline = time.monotonic() + 20
    while replayer.spooling and time.monotonic() < deadline:
        time.sleep(0.05)
    replayer.close()
    events = read_events(bootstrap, topic_names.events, expected=8)
    assert [e.step for _, e in events if isinstance(e, Call)] == list(range(1, 8))
    assert isinstance(events[-1][1], Done)


def _by_partition(bootstrap: str, topic: str) -> dict[str, set[int]]:
    """Each task's partitions on ``topic`` (read to its end)."""
    seen: dict[str, set[int]] = collections.defaultdict(set)
    for record in read_to_end(bootstrap, topic, timeout_s=20):
        for _, event in decode_events(record.value or b"").events:
            seen[event.task_id].add(record.partition)
    return dict(seen)


def _partition_count(bootstrap: str, topic: str) -> int | None:
    """A metadata request that names no topic (so cannot create one)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **NO_AUTO_CREATE})
    meta = admin.list_topics(timeout=10).topics.get(topic)
    return None if meta is None else len(meta.partitions)


def test_broker_restarted_empty_gets_its_topic_from_tokengov_not_from_the_emitter(tmp_path):
    """Issue 12: the emitter spooling while the embedded broker restarted (empty: Tansu keeps
    topics in memory) made the new broker auto-create tokengov.events with its default 4
    partitions instead of the configured 8 — every task on another partition from then on.
    Now its probes find no topic and it keeps spooling until tokengov creates the topic with
    its configuration; then it replays everything, once, each task on its old partition."""
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port())
    specs = topic_specs(event_partitions=8)
    broker.start(detach=False)
    try:
        ensure_topics(broker.bootstrap, specs)
        emitter = TokenEmitter(
            broker.bootstrap,
            spool_dir=tmp_path / "spool",
            delivery_timeout_ms=2000,
            probe_interval_s=0.2,
        )
        tasks = [emitter.task(team="search", workflow="wf", task_id=f"t-{i}") for i in range(8)]
        for task in tasks:
            task.record({"input": 100, "output": 5}, model="m")
        assert emitter.flush(20)
        partitions_before = _by_partition(broker.bootstrap, "tokengov.events")
        assert sorted(partitions_before) == [f"t-{i}" for i in range(8)]

        broker.stop()
        down = DeadPort(broker.port)  # no other test's broker takes the port meanwhile
        for task in tasks:
            task.record({"input": 200, "output": 5}, model="m")
        deadline = time.monotonic() + 30
        while not (emitter.spooling and emitter.stats.spooled >= 8):
            assert time.monotonic() < deadline, "the emitter did not spool"
            time.sleep(0.05)
        assert emitter.stats.spooled == 8

        down.close()
        broker.start(detach=False)  # empty: no topic at all
        probes = emitter.stats.probes
        deadline = time.monotonic() + 30
        while emitter.spooling and emitter.stats.probes < probes + 5:
            assert time.monotonic() < deadline, "the emitter did not probe the new broker"
            time.sleep(0.05)
        found = _partition_count(broker.bootstrap, "tokengov.events")
        assert found is None, f"the emitter's requests created tokengov.events ({found} partitions)"
        assert emitter.spooling

        ensure_topics(broker.bootstrap, specs)  # what `tokengov up` / `broker start` do
        deadline = time.monotonic() + 30
        while emitter.spooling and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not emitter.spooling, "the spool was not replayed"
        emitter.close()
        assert _partition_count(broker.bootstrap, "tokengov.events") == 8
        after = read_events(broker.bootstrap, "tokengov.events", expected=8)
        partitions_after = _by_partition(broker.bootstrap, "tokengov.events")
    finally:
        broker.stop()
    assert len(after) == 8 == len({e.event_id for _, e in after}), "every spooled call, once"
    assert partitions_after == partitions_before, "a task moved to another partition"


def test_record_takes_provider_responses_and_never_makes_a_missing_usage_free(
    bootstrap, topic_names, tmp_path
):
    from anthropic.types import Message
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from tests.unit.producers.test_sdk_payloads import CHAT, CHUNK, MESSAGE
    from tokengov.producers.adapters import from_otel_span

    with TokenEmitter(bootstrap, topic=topic_names.events, spool_dir=tmp_path / "spool") as emitter:
        with emitter.task(team="search", workflow="wf", task_id="t-sdk", agent="planner") as task:
            task.record(
                ChatCompletion.model_validate(CHAT), model="gpt-4.1-mini", provider="openai"
            )
            task.record(
                Message.model_validate(MESSAGE), model="claude-sonnet-4", provider="anthropic"
            )
            # a stream without include_usage, and no response at all
            task.record(ChatCompletionChunk.model_validate(CHUNK), model="gpt-4.1-mini")
            task.record(None, model="gpt-4.1-mini", service_tier="batch")
        span = from_otel_span(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4",
                "gen_ai.conversation.id": "t-span",
                "gen_ai.usage.input_tokens": "700",
                "gen_ai.usage.cache_read.input_tokens": "600",
                "gen_ai.usage.output_tokens": "9",
            }
        ).call_fields()
        assert span is not None
        emitter.emit_call(team="search", workflow="wf", **span)
    assert emitter.stats.invalid == 0
    events = read_events(bootstrap, topic_names.events, expected=6)
    calls = sorted((e for _, e in events if isinstance(e, Call)), key=lambda c: (c.task_id, c.step))
    got = [
        (
            c.input,
            c.cached_input,
            c.cache_write,
            c.cache_write_1h,
            c.reasoning,
            c.service_tier,
            c.usage_missing,
        )
        for c in calls
    ]
    assert got == [
        (1117, 512, 256, 0, 20, "flex", False),
        (3521, 2000, 1500, 500, 300, "priority", False),
        (0, 0, 0, 0, 0, "default", True),
        (0, 0, 0, 0, 0, "batch", True),
        (700, 600, 0, 0, 0, None, False),
    ]
    assert calls[-1].task_id == "t-span" and calls[-1].provider == "anthropic"


def test_an_invalid_call_is_refused_with_the_models_message_and_its_envelope_delivered(
    bootstrap, topic_names, tmp_path, caplog
):
    """The sender validates a task's envelope with the contract's fast path; one bad call in
    it sends the envelope through the models, which refuse that call with their own message
    naming the field, and the valid calls around it reach the broker in the same message."""
    import logging

    from tests.kafka_helpers import read_messages
    from tokengov.core.contracts import CallEvent, describe_validation_error

    emitter = TokenEmitter(
        bootstrap, topic=topic_names.events, spool_dir=tmp_path / "spool", start=False
    )
    with emitter.task(team="search", workflow="wf", task_id="t-mixed") as task:
        task.record({"prompt_tokens": 10, "completion_tokens": 1}, model="m", provider="openai")
        task.record({"prompt_tokens": 10, "completion_tokens": 1}, model="m", latency_ms=-5)
        task.record({"prompt_tokens": 12, "completion_tokens": 2}, model="m", provider="openai")
    with emitter.task(team="search", workflow="wf", task_id="t-clean") as task:
        task.record({"prompt_tokens": 20, "completion_tokens": 3}, model="m", provider="openai")
    with caplog.at_level(logging.WARNING, logger="tokengov.producers.emitter"):
        emitter.close()  # never started: the queue is sent from here, in one drain
    assert emitter.stats.invalid == 1 and emitter.stats.delivered == 5
    with pytest.raises(ValueError) as refused:  # the models' own message for these values
        CallEvent.model_validate(
            {"event_id": "e", "ts": "2026-12-06T00:00:00Z", "model": "m", "latency_ms": -5}
        )
    expected = describe_validation_error(refused.value)  # type: ignore[arg-type]
    assert expected.startswith("latency_ms: ")
    assert f"it breaks the contract: {expected}" in caplog.text
    messages = read_messages(
        bootstrap, topic_names.events, until=lambda m: len(m) >= 2, timeout_s=30
    )
    by_key = {key: decode_events(value) for key, value in messages}
    assert set(by_key) == {b"t-mixed", b"t-clean"}
    mixed = by_key[b"t-mixed"]
    assert mixed.envelope and not mixed.failures
    calls = [event for _, event in mixed.events if isinstance(event, Call)]
    assert [(c.step, c.input) for c in calls] == [(1, 10), (3, 12)]
    assert isinstance(mixed.events[-1][1], Done)
