"""The writer never stops on one message (issue 12): a poison corpus interleaved with good
events, through the real writer, the real broker and the real engine (chdb) — every good
event stored exactly once (rollups included), every bad one dead-lettered by the sink or
skipped as invalid (the streams dead-letter those) with a reason naming what is wrong, and
the writer still consuming afterwards. Also: a row ClickHouse keeps failing on (not a plain
rejection) is skipped after a few attempts, and a decoder process killed mid-stream is
replaced without losing or doubling anything."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.policy import Policy
from tokengov.core.topics import Topics

from .conftest import Ends, assert_exact, make_events, merge, produce, read_all, wait_until
from .test_writer import DECODERS, running_writer, wait_committed

pytestmark = pytest.mark.integration

MiB = 1_048_576


def _nest(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _with_raw_field(doc: dict[str, Any], name: str, raw: bytes) -> bytes:
    """``doc`` as JSON with one more field whose value is ``raw`` exactly as given."""
    return orjson.dumps(doc)[:-1] + b',"' + name.encode() + b'":' + raw + b"}"


def _with_tokens(doc: dict[str, Any], count: int) -> bytes:
    """``doc`` with tokens.input = ``count`` written as JSON text (orjson cannot carry
    integers above 64 bits)."""
    return orjson.dumps(doc).replace(
        b'"input":' + str(doc["tokens"]["input"]).encode(), b'"input":' + str(count).encode(), 1
    )


def corpus(
    template: dict[str, Any],
) -> tuple[list[tuple[str, bytes, str | None]], list[dict[str, Any]]]:
    """[(name, message, what the reason must name — None: a good message, stored)], and the
    events of the corpus that must be stored."""

    def call(name: str, **kw: Any) -> dict[str, Any]:
        return template | {"event_id": f"poison-{name}", "task_id": f"poison-{name}"} | kw

    bad_team = orjson.dumps(call("utf8-team")).replace(
        b'"team":"search"', b'"team":"se\xff\xfearch"'
    )
    good_in_envelope = call("good-beside-utf8")
    envelope_utf8 = (
        b"["
        + orjson.dumps(good_in_envelope)
        + b","
        + _with_raw_field(call("utf8-unknown"), "note", b'"a\xc3\x28b"')
        + b"]"
    )
    good_beside_deep = call("good-beside-deep")
    envelope_deep = (
        b"["
        + orjson.dumps(good_beside_deep)
        + b","
        + _with_raw_field(call("deep-item"), "x", _nest(300))
        + b"]"
    )
    big_unknown = call("big-unknown", step=2**40, note="b" * 1_000_000)
    step40 = call("step40", step=2**40)
    cases: list[tuple[str, bytes, str | None]] = [
        ("deep-300-unknown", _with_raw_field(call("deep-300"), "x", _nest(300)), "nested"),
        ("deep-2000", _with_raw_field(call("deep-2000"), "x", _nest(2000)), "nested"),
        (
            "deep-300-in-invalid",
            _with_raw_field(call("deep-inv", tokens={"input": -1}), "x", _nest(300)),
            "nested",
        ),
        ("over-1-MiB", orjson.dumps(call("huge", note="a" * (MiB + 10))), "1 MiB"),
        # Valid under the contract (≤ 1 MiB, step ≤ 2**63-1): stored.
        ("1MB-unknown-big-step", orjson.dumps(big_unknown), None),
        ("step-2**40", orjson.dumps(step40), None),
        ("utf8-team", bad_team, "UTF-8"),
        ("envelope-utf8", envelope_utf8, "UTF-8"),
        ("envelope-deep", envelope_deep, "nested"),
        ("tokens-2**64-1", _with_tokens(call("tok64"), 2**64 - 1), "tokens.input"),
        ("tokens-2**63", _with_tokens(call("tok63"), 2**63), "tokens.input"),
        ("tokens-2**70", _with_tokens(call("tok70"), 2**70), "tokens.input"),
        ("ts-9999", orjson.dumps(call("ts9999", ts="9999-12-31T23:59:59Z")), "ts"),
        ("ts-0001", orjson.dumps(call("ts0001", ts="0001-01-01T00:00:00Z")), "ts"),
        ("ts-2150", orjson.dumps(call("ts2150", ts="2150-06-01T00:00:00Z")), "ts"),
        ("refused", orjson.dumps(call("refused", task_id="refused-task")), "test_refuses"),
        ("stuck", orjson.dumps(call("stuck", task_id="stuck-task")), "every attempt"),
        ("not-json", b"\x00\x01 not json {", "not valid JSON"),
        ("empty", b"", "not valid JSON"),
    ]
    return cases, [big_unknown, step40, good_in_envelope, good_beside_deep]


def _produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> list[tuple[int, int]]:
    """Produce each value (key: its index); returns its (partition, offset)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "message.max.bytes": 4 * MiB,
        }
    )
    where: dict[int, tuple[int, int]] = {}
    errors: list[str] = []

    def delivered(err: Any, msg: Any, index: int) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            where[index] = (msg.partition(), msg.offset())

    for index, value in enumerate(values):
        producer.produce(
            topic,
            value,
            key=f"poison-{index}".encode(),
            on_delivery=lambda err, msg, i=index: delivered(err, msg, i),
        )
    assert producer.flush(30) == 0 and not errors, errors
    return [where[i] for i in range(len(values))]


def _ends(topic: str, where: list[tuple[int, int]]) -> Ends:
    ends: Ends = {}
    for partition, offset in where:
        ends[(topic, partition)] = max(ends.get((topic, partition), 0), offset + 1)
    return ends


def _store_traps(store: Any) -> None:
    """A value ClickHouse refuses (a rejection: found by bisection), and one on which it
    fails with an error that is not a rejection, every time (the writer must give up on it)."""
    store.command(
        "ALTER TABLE token_events ADD CONSTRAINT test_refuses CHECK task_id != 'refused-task'"
    )
    store.command(
        "ALTER TABLE token_events ADD CONSTRAINT test_stuck "
        "CHECK throwIf(task_id = 'stuck-task', 'this row cannot be stored') = 0"
    )


@DECODERS
def test_poison_corpus_interleaved_with_good_events(
    bootstrap: str, topic_names: Topics, store: Any, policy: Policy, decoders: int
) -> None:
    good = make_events(60, seed=41)
    template = next(e for e in good if e["kind"] == "call" and e["model"] == "gpt-4.1-mini")
    template = template | {"team": "search", "workflow": "triage"}
    cases, stored_poison = corpus(template)
    _store_traps(store)
    half = len(good) // 2
    ends = produce(bootstrap, topic_names.events, good[:half])
    where = _produce_raw(bootstrap, topic_names.events, [v for _, v, _ in cases])
    ends = merge(ends, _ends(topic_names.events, where))
    ends = merge(ends, produce(bootstrap, topic_names.events, good[half:], envelope=4))

    group = f"sink-{uuid.uuid4().hex[:8]}"
    config = {"stuck_attempts": 3, "backoff_max_s": 0.2, "decoders": decoders}
    with running_writer(bootstrap, topic_names, store, policy, group, **config) as writer:
        wait_committed(bootstrap, group, ends, writer)
        invalid = list(writer.counters.recent_invalid)
        counters = writer.counters
        assert counters.stuck_rows == 1
        dead = counters.dead_lettered

        # Every good event stored once, rollups included.
        assert_exact(store, [*good, *stored_poison], policy)

        # Every bad message has a reason that names what is wrong: a dead letter of the
        # sink, or an invalid event the writer skipped (the streams dead-letter it).
        letters = read_all(bootstrap, topic_names.deadletter, expect=dead)
        assert len(letters) == dead
        reasons: dict[tuple[int, int], list[str]] = {}
        for message in letters:
            record = DeadLetterRecord.model_validate_json(message.value())
            assert record.stage == "sink" and record.source_topic == topic_names.events
            assert record.source_partition is not None and record.source_offset is not None
            key = (record.source_partition, record.source_offset)
            reasons.setdefault(key, []).append(record.reason)
            assert len(record.raw()) <= 65_536 and len(message.value()) <= 100_000
        for _topic, partition, offset, reason in invalid:
            reasons.setdefault((partition, offset), []).append(reason)
        for (name, _value, why), key in zip(cases, where, strict=True):
            found = reasons.pop(key, [])
            if why is None:
                assert found == [], (name, found)
            else:
                assert len(found) == 1 and why in found[0], (name, found)
        assert reasons == {}, reasons  # nothing else was refused

        # The writer is still running and consuming.
        later = make_events(10, seed=42)
        ends = merge(ends, produce(bootstrap, topic_names.events, later))
        wait_committed(bootstrap, group, ends, writer)
        assert writer.alive and writer.error is None
    assert_exact(store, [*good, *stored_poison, *later], policy)


def test_a_killed_decoder_process_is_replaced_and_nothing_is_lost(
    bootstrap: str, topic_names: Topics, store: Any, policy: Policy
) -> None:
    first = make_events(80, seed=43)
    second = make_events(40, seed=44)
    ends = produce(bootstrap, topic_names.events, first)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    # Small runs, many of them in flight while the backlog is read: the kill fails some.
    config = {"decoders": 2, "run_messages": 5, "max_rows": 100_000, "max_delay_s": 5.0}
    with running_writer(bootstrap, topic_names, store, policy, group, **config) as writer:
        wait_until(lambda: writer.counters.messages > 0, 60, "the writer to read the backlog")
        pool = writer._pool
        assert pool is not None
        os.kill(pool.pids[0], signal.SIGKILL)
        ends = merge(ends, produce(bootstrap, topic_names.events, second, envelope=3))
        wait_committed(bootstrap, group, ends, writer)
        assert writer.counters.decoder_restarts >= 1 and writer.alive
        assert writer.counters.dead_lettered == 0
        isolated = writer.counters.isolated_runs
    assert_exact(store, first + second, policy)
    print(f"runs decoded again one message at a time: {isolated}")


def test_a_table_that_fails_every_row_is_waited_for_not_dead_lettered(
    bootstrap: str, topic_names: Topics, store: Any, policy: Policy
) -> None:
    """The negative of the stuck row: when no row of a table goes in, the table is failing,
    not a row — the writer backs off with consumption paused and drops nothing (while the
    outcomes of the same flush, another table, do go in)."""
    from .conftest import committed

    events = make_events(30, seed=45)
    store.command(
        "ALTER TABLE token_events ADD CONSTRAINT test_down "
        "CHECK throwIf(event_id != '', 'the table is down') = 0"
    )
    ends = produce(bootstrap, topic_names.events, events)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    # The row-by-row attempts (up to 64 single-row inserts each) do not poll the consumer:
    # under load one outlasts running_writer's 3 s max.poll.interval.ms, the group drops the
    # writer and the flush starts over — give this test the poll interval of production and more.
    consumer = {"session.timeout.ms": 1000, "heartbeat.interval.ms": 200}
    config = {
        "stuck_attempts": 2,
        "backoff_max_s": 0.2,
        "consumer": consumer | {"max.poll.interval.ms": 60_000},
    }
    with running_writer(bootstrap, topic_names, store, policy, group, **config) as writer:
        wait_until(
            lambda: writer.paused and writer.counters.retries >= 6,
            60,
            "the writer to retry the failing table well past stuck_attempts",
        )
        assert writer.counters.dead_lettered == 0 and writer.counters.stuck_rows == 0
        assert not committed(bootstrap, group, ends)
        outcomes = sum(1 for e in events if e["kind"] == "outcome")
        assert store.query("SELECT count() FROM task_outcomes").scalar() == outcomes > 0
        store.command("ALTER TABLE token_events DROP CONSTRAINT test_down")
        wait_committed(bootstrap, group, ends, writer)
        assert writer.counters.dead_lettered == 0 and not writer.paused
    assert_exact(store, events, policy)
