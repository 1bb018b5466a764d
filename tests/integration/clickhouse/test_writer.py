"""The writer against the real broker and the real ClickHouse engine (chdb)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.core.contracts import CallEvent
from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.decoding import parse_event
from tokengov.core.policy import Policy
from tokengov.core.pricing import PricedCall, price_call
from tokengov.core.topics import Topics
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import SinkConfig, SinkWriter

from .conftest import (
    Ends,
    assert_exact,
    committed,
    make_events,
    merge,
    produce,
    produce_json,
    read_all,
    wait_until,
)

pytestmark = pytest.mark.integration


@contextmanager
def running_writer(
    bootstrap: str,
    topics: Topics,
    store: ClickHouseStore,
    policy: Policy,
    group: str,
    **config: Any,
) -> Iterator[SinkWriter]:
    settings = {
        "max_rows": 300,
        "max_delay_s": 0.3,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 0.5,
        # A fast group join (DESIGN.md's values are the defaults; these are shorter still).
        "consumer": {
            "session.timeout.ms": 1000,
            "heartbeat.interval.ms": 200,
            "max.poll.interval.ms": 3000,
        },
    } | config
    writer = SinkWriter(
        bootstrap=bootstrap,
        topics=topics,
        store=store,
        decoder=MessageDecoder(lambda: policy.catalog),
        config=SinkConfig(group_id=group, **settings),
    )
    writer.start()
    try:
        yield writer
    finally:
        writer.stop()
    assert writer.error is None, writer.error


def wait_committed(bootstrap: str, group: str, ends: Ends, writer: SinkWriter) -> None:
    wait_until(
        lambda: writer.error is not None or committed(bootstrap, group, ends),
        60,
        "the writer to commit every partition",
    )
    assert writer.error is None, writer.error


def _alert(alert_id: str, status: str, team: str) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "fingerprint": f"runaway|{team}|triage|t1|max_tool_calls",
        "kind": "runaway",
        "severity": "critical",
        "status": status,
        "team": team,
        "workflow": "triage",
        "task_id": "t1",
        "labels": {"limit": "max_tool_calls"},
        "summary": "task t1 made 13 tool calls; its cost profile allows 12",
        "evidence": {"observed": 13, "limit": 12},
        "starts_at": "2026-10-30T12:00:00Z",
        "ends_at": "2026-10-30T13:00:00Z" if status == "resolved" else None,
    }


#: The writer decoding in its own thread, and with decoder processes (the worker's default).
DECODERS = pytest.mark.parametrize("decoders", [0, 2], ids=["in-thread", "2-decoders"])


@DECODERS
def test_rows_match_what_was_produced(bootstrap, topic_names, store, policy, decoders):
    events = make_events(120, seed=1)
    calls = [e for e in events if e["kind"] == "call"]
    duplicates = calls[:25]
    bad_envelope = orjson.dumps(
        [
            calls[0] | {"event_id": str(uuid.uuid4()), "task_id": "x"},
            {
                "kind": "call",
                "event_id": "neg",
                "ts": "2026-10-30T12:00:00Z",
                "model": "m",
                "tokens": {"input": -1},
            },
        ]
    )
    junk = [b"not json at all", orjson.dumps({"kind": "call", "event_id": "no-ts"}), bad_envelope]
    ends = merge(
        produce(bootstrap, topic_names.events, events[: len(events) // 2]),
        produce(bootstrap, topic_names.events, events[len(events) // 2 :], envelope=5),
        produce(bootstrap, topic_names.events, duplicates, extra=junk),
    )
    alerts = [
        _alert("a-1", "firing", "search"),
        _alert("a-1", "resolved", "search"),
        _alert("a-2", "firing", "support"),
    ]
    ends = merge(ends, produce_json(bootstrap, topic_names.alerts, alerts, "team"))
    decisions = [
        {
            "scope": "task",
            "key": "t1",
            "action": "pause",
            "reason": "runaway",
            "issued_at": "2026-10-30T12:00:00Z",
            "expires_at": "2026-10-30T13:00:00Z",
        },
        {
            "scope": "team",
            "key": "search",
            "action": "throttle",
            "reason": "budget",
            "throttle_ms": 250,
            "issued_at": "2026-10-30T12:05:00Z",
        },
    ]
    ends = merge(ends, produce_json(bootstrap, topic_names.decisions, decisions, "key"))
    # The token-debt engine's own model, as it publishes it, and a minimal legacy shape.
    from tokengov.streams.debt.findings import Finding as DebtFinding

    debt = DebtFinding(
        finding_id="f-1",
        ts=datetime(2026, 10, 30, 12, tzinfo=UTC),
        area="memory",
        team="search",
        workflow="triage",
        agent="planner",
        evidence={"turns": 12, "growth": 1.4},
        estimated_waste_tokens_per_day=120000,
        estimated_waste_usd_per_day=Decimal("0.480000"),
        confidence=0.8,
        better_pattern="summarise history",
        detector="memory_replay",
    )
    findings = [
        orjson.loads(debt.model_dump_json()),
        {
            "area": "unbounded_retries",
            "workflow": "summary",
            "evidence": '{"retries": 9}',
            "confidence": 0.6,
            "ts": "2026-10-30T12:00:00Z",
        },
    ]
    ends = merge(ends, produce_json(bootstrap, topic_names.findings, findings, "team"))

    group = f"sink-{uuid.uuid4().hex[:8]}"
    with running_writer(bootstrap, topic_names, store, policy, group, decoders=decoders) as writer:
        wait_committed(bootstrap, group, ends, writer)
        counters = writer.counters

    extra_call = parse_event(orjson.loads(bad_envelope)[0])
    all_calls = [*events, orjson.loads(bad_envelope)[0]]
    assert_exact(store, all_calls, policy)
    assert counters.invalid_events == 3  # not JSON, no ts, negative tokens (in an envelope)
    assert counters.duplicates_skipped == len(duplicates)

    # Every call event, field by field, as produced.
    columns = (
        "event_id, ts, team, workflow, task_id, agent, parent_agent, step, provider, "
        "model, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, "
        "reasoning_tokens, system_tokens, history_tokens, tool_responses_tokens, "
        "retrieved_tokens, attempt, tool_calls, tool_name, latency_ms, status, cost_usd, "
        "cost_source, context_window, schema_version, service_tier, cache_write_1h_tokens, "
        "usage_missing"
    )
    stored = {r[0]: r for r in store.query(f"SELECT {columns} FROM token_events").rows}
    assert len(stored) == len(calls) + 1
    for doc in calls:
        event = parse_event(doc)
        assert isinstance(event, CallEvent)
        row = stored[doc["event_id"]]
        priced = price_call(event, policy.catalog)
        t = {"input": 0, "output": 0, "cached_input": 0, "cache_write": 0, "reasoning": 0}
        t |= doc["tokens"]
        c = {"system": 0, "history": 0, "tool_responses": 0} | doc["components"]
        missing = doc.get("usage_missing", False) and doc["cost_usd"] is None
        if missing:  # no usage, no reported cost: 0, whatever the pricer says
            priced = PricedCall(Decimal(0), priced.source)
        assert row == (
            doc["event_id"],
            datetime.fromisoformat(doc["ts"]).astimezone(UTC),
            doc.get("team", "unattributed"),
            doc.get("workflow", "unattributed"),
            doc["task_id"],
            doc["agent"],
            doc["parent_agent"],
            doc["step"],
            "test",
            doc["model"],
            t["input"],
            t["output"],
            t["cached_input"],
            t["cache_write"],
            t["reasoning"],
            c["system"],
            c["history"],
            c["tool_responses"],
            0,
            doc["attempt"],
            doc["tool_calls"],
            doc["tool_name"],
            doc["latency_ms"],
            doc["status"],
            Decimal(doc["cost_usd"]) if doc["cost_usd"] is not None else priced.cost_usd,
            "reported"
            if doc["cost_usd"] is not None
            else "missing_usage"
            if missing
            else ("unpriced" if doc["model"] == "mystery-model" else "policy"),
            doc["context_window"],
            1,
            doc["service_tier"],
            t.get("cache_write_1h", 0),
            doc.get("usage_missing", False),
        )
    assert stored[extra_call.event_id][4] == "x"

    outcomes = [e for e in events if e["kind"] == "outcome"]
    got = {
        r[0]: r[1:]
        for r in store.query(
            "SELECT event_id, task_id, team, status, quality FROM task_outcomes"
        ).rows
    }
    assert got == {
        o["event_id"]: (o["task_id"], o["team"] or "unattributed", o["status"], o["quality"])
        for o in outcomes
    }

    alert_rows = store.query(
        "SELECT alert_id, status, team, labels, evidence, ends_at "
        "FROM alerts ORDER BY alert_id, status"
    ).rows
    assert [(r[0], r[1], r[2]) for r in alert_rows] == [
        ("a-1", "firing", "search"),
        ("a-1", "resolved", "search"),
        ("a-2", "firing", "support"),
    ]
    assert alert_rows[0][3] == {"limit": "max_tool_calls"}
    assert orjson.loads(alert_rows[0][4]) == {"observed": 13, "limit": 12}
    assert alert_rows[1][5] == datetime(2026, 10, 30, 13, tzinfo=UTC)

    assert store.query(
        "SELECT scope, key, action, throttle_ms FROM decisions ORDER BY key"
    ).rows == [("team", "search", "throttle", 250), ("task", "t1", "pause", None)]
    finding_rows = store.query(
        "SELECT area, team, workflow, detector, evidence, estimated_waste_usd_per_day, "
        "confidence FROM findings ORDER BY area"
    ).rows
    assert finding_rows == [
        (
            "memory",
            "search",
            "triage",
            "memory_replay",
            '{"growth":1.4,"turns":12}',
            Decimal("0.48"),
            0.8,
        ),
        ("unbounded_retries", "unattributed", "summary", "", '{"retries": 9}', Decimal(0), 0.6),
    ]


@DECODERS
def test_replay_and_redelivery_change_no_total(bootstrap, topic_names, store, policy, decoders):
    events = make_events(80, seed=2)
    ends = produce(bootstrap, topic_names.events, events, envelope=3)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    with running_writer(bootstrap, topic_names, store, policy, group, decoders=decoders) as writer:
        wait_committed(bootstrap, group, ends, writer)
        assert writer.counters.row_path_flushes == 0  # fresh events: Native blocks only
    assert_exact(store, events, policy)
    rows_before = store.query("SELECT count() FROM token_events").scalar()

    # The same events produced again (a producer's retry, a replayed file) …
    ends = merge(ends, produce(bootstrap, topic_names.events, events))
    # … and the group rewound to the beginning (a redelivery of everything).
    from confluent_kafka import Consumer, TopicPartition

    rewind = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    partitions = rewind.list_topics(timeout=10).topics[topic_names.events].partitions
    rewind.commit(
        offsets=[TopicPartition(topic_names.events, p, 0) for p in partitions], asynchronous=False
    )
    rewind.close()

    with running_writer(bootstrap, topic_names, store, policy, group, decoders=decoders) as writer:
        wait_committed(bootstrap, group, ends, writer)
        skipped = writer.counters.duplicates_skipped
        assert writer.counters.row_path_flushes > 0  # stored ids left out: the row path
    assert_exact(store, events, policy)
    assert store.query("SELECT count() FROM token_events").scalar() == rows_before
    # Every call and outcome was read twice more (rewound, and produced again): counted once.
    assert skipped == 2 * len(events)
    outcomes = sum(1 for e in events if e["kind"] == "outcome")
    assert store.query("SELECT count() FROM task_outcomes").scalar() == outcomes


def test_own_rows_redelivered_to_the_same_writer_are_found_in_memory(
    bootstrap, topic_names, store, policy
):
    """A writer that stored some events and reads them again settles its lookup with the rows
    it remembers (nothing else is in those hours): skipped, counted once."""
    events = make_events(40, seed=5)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    with running_writer(bootstrap, topic_names, store, policy, group, decoders=0) as writer:
        ends = produce(bootstrap, topic_names.events, events, envelope=3)
        wait_committed(bootstrap, group, ends, writer)
        assert writer.counters.duplicates_skipped == 0
        ends = merge(ends, produce(bootstrap, topic_names.events, events))
        wait_committed(bootstrap, group, ends, writer)
        assert writer.counters.lookups_in_memory >= 1
        assert writer.counters.duplicates_skipped == len(events)
    assert_exact(store, events, policy)


@DECODERS
def test_rejected_rows_are_dead_lettered_with_the_reason(
    bootstrap, topic_names, store, policy, decoders
):
    events = make_events(20, seed=3)
    calls = [e for e in events if e["kind"] == "call"]
    far_future = calls[0] | {"event_id": "from-2250", "ts": "2250-01-01T00:00:00Z"}
    huge_step = calls[1] | {"event_id": "huge-step", "step": 2**40}  # the contract allows it
    refused = calls[2] | {"event_id": "refused", "task_id": "refused-task"}
    # A value ClickHouse itself refuses (a constraint of this store; the writer knows nothing
    # of it): found by bisecting the insert, dead-lettered with the server's message.
    store.command(
        "ALTER TABLE token_events ADD CONSTRAINT test_refuses CHECK task_id != 'refused-task'"
    )
    ends = produce(bootstrap, topic_names.events, [*events, far_future, huge_step, refused])
    group = f"sink-{uuid.uuid4().hex[:8]}"
    with running_writer(bootstrap, topic_names, store, policy, group, decoders=decoders) as writer:
        wait_committed(bootstrap, group, ends, writer)
        # ClickHouse refused the Native blocks holding "refused": the row path found it
        assert writer.counters.row_path_flushes >= 1
        invalid = {r[3] for r in writer.counters.recent_invalid}
        dead = writer.counters.dead_lettered
    assert_exact(store, [*events, huge_step], policy)

    # 2250 is outside the contract: the writer's row check names ts (or, with a decoder that
    # enforces the range, the contract refuses it and the streams dead-letter it).
    expected = {"refused"} | ({"from-2250"} if not invalid else set())
    assert dead == len(expected)
    letters = read_all(bootstrap, topic_names.deadletter, expect=dead)
    records = [DeadLetterRecord.model_validate_json(m.value()) for m in letters]
    by_id = {r.event_id: r for r in records}
    assert set(by_id) == expected
    reason = by_id["refused"].reason
    assert "VIOLATED_CONSTRAINT" in reason and "test_refuses" in reason  # ClickHouse's message
    if "from-2250" in by_id:
        why = by_id["from-2250"].reason
        assert why.startswith("ts: 2250-01-01T00:00:00+00:00 is outside")
    else:
        assert any("ts" in r for r in invalid), invalid
    refused = by_id["refused"]
    assert orjson.loads(refused.raw())["event_id"] == "refused"
    assert refused.source_topic == topic_names.events and refused.stage == "sink"
    assert refused.details == {"table": "token_events"} and refused.raw_is == "item"

    # the CLI lists it and shows the reason and the original bytes
    prefix = topic_names.events.removesuffix("tokengov.events")
    where = ["--bootstrap", bootstrap, "--topic-prefix", prefix]
    listed = CliRunner().invoke(app, ["deadletter", "list", "--json", "--stage", "sink", *where])
    assert listed.exit_code == 0, listed.output
    ids = {doc["event_id"]: doc["id"] for doc in map(orjson.loads, listed.stdout.splitlines())}
    assert set(ids) == expected
    shown = CliRunner().invoke(app, ["deadletter", "show", ids["refused"], "--raw", *where])
    assert shown.exit_code == 0 and shown.stdout_bytes == refused.raw()


def test_store_failing_mid_run_pauses_and_loses_nothing(bootstrap, topic_names, store, policy):
    first = make_events(40, seed=4)
    second = make_events(40, seed=5)
    ends = produce(bootstrap, topic_names.events, first)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    with running_writer(bootstrap, topic_names, store, policy, group) as writer:
        wait_committed(bootstrap, group, ends, writer)
        # A real failure of the store: a table the writer needs disappears.
        store.command("DETACH TABLE sink_batches")
        ends = merge(ends, produce(bootstrap, topic_names.events, second))
        wait_until(
            lambda: writer.paused and writer.counters.retries >= 3,
            30,
            "the writer to pause and retry",
        )
        assert not committed(bootstrap, group, ends)
        store.command("ATTACH TABLE sink_batches")
        wait_committed(bootstrap, group, ends, writer)
        assert not writer.paused
    assert_exact(store, first + second, policy)


def test_store_unavailable_at_start_then_everything_arrives(
    bootstrap, topic_names, tmp_path, policy
):
    """Another process holds the embedded store (chdb allows one per directory): the writer
    consumes nothing and retries until it is released, then loses nothing."""
    import subprocess
    import sys

    dsn = f"chdb://{tmp_path / 'ch'}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, clickhouse_connect\n"
            "client = clickhouse_connect.get_client(dsn=sys.argv[1])\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
            dsn,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        events = make_events(30, seed=7)
        ends = produce(bootstrap, topic_names.events, events)
        group = f"sink-{uuid.uuid4().hex[:8]}"
        store = ClickHouseStore(dsn)
        with running_writer(bootstrap, topic_names, store, policy, group) as writer:
            wait_until(lambda: writer.counters.retries >= 3, 30, "the writer to retry")
            assert not writer.ready.is_set() and writer.counters.messages == 0
            assert not committed(bootstrap, group, ends)
            holder.communicate("", timeout=30)  # the other process lets go
            wait_committed(bootstrap, group, ends, writer)
        assert_exact(store, events, policy)
        store.close()
    finally:
        holder.kill()
        holder.wait()
