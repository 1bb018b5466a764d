"""Fixtures of the ClickHouse sink tests: a fresh chdb store per test, a policy, synthetic
events with everything the contract allows, a producer, and the expected totals computed
independently in Python."""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tokengov.core.contracts import CallEvent
from tokengov.core.decoding import parse_event
from tokengov.core.policy import Policy, parse_policy
from tokengov.core.pricing import price_call
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.store import ClickHouseStore

POLICY = """
version: 1
teams:
  search: {owner: search@example.com, receiver: console}
  support: {owner: support@example.com, receiver: console}
receivers:
  console: {type: log}
prices:
  gpt-4.1-mini: {input: 0.40, output: 1.60, cached_input: 0.10}
  claude-sonnet-4: {input: 3.00, output: 15.00, cached_input: 0.30, cache_write: 3.75}
  o4-mini: {input: 1.10, output: 4.40, cached_input: 0.275}
cost_profiles:
  triage: {team: search, quality_bar: 0.8, expected_tokens_per_outcome: 12000}
  summary: {team: support, quality_bar: 0.5}
budgets:
  - {scope: team, name: search, period: day, limit_usd: 0.05, thresholds: [0.5, 0.8, 1.0]}
  - {scope: workflow, name: summary, period: month, limit_tokens: 100000000}
routes:
  receiver: console
"""

TEAMS = ("search", "support", None)  # None: no team → unattributed
WORKFLOWS = {"search": ("triage", "doc-qa"), "support": ("summary",), None: ("triage", None)}
#: The token_events columns schema version 5 added (rows of older versions lack them).
V5_EVENT_COLUMNS = ("service_tier", "cache_write_1h_tokens", "price_version", "usage_missing")
MODELS = ("gpt-4.1-mini", "claude-sonnet-4", "o4-mini", "mystery-model")  # the last is unpriced


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY, source="test-policy")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickHouseStore]:
    """A migrated chdb store in this test's own directory."""
    with ClickHouseStore(f"chdb://{tmp_path / 'ch'}") as s:
        migrate(s)
        yield s


def make_events(n_tasks: int, *, seed: int, start: datetime | None = None) -> list[dict[str, Any]]:
    """Call events and outcomes of ``n_tasks`` tasks spread over ~40 hours that cross a month
    boundary; retries, errors, cache and reasoning tokens, components, reported costs, an
    unpriced model, missing attribution, handoffs, context windows, 1-hour cache writes,
    service tiers, calls without usage."""
    rng = random.Random(seed)
    start = start or datetime(2026, 10, 30, 12, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    for t in range(n_tasks):
        team = rng.choice(TEAMS)
        workflow = rng.choice(WORKFLOWS[team])
        task_id = f"task-{seed}-{t}"
        ts = start + timedelta(minutes=rng.randrange(0, 40 * 60))
        for step in range(rng.randint(1, 6)):
            for attempt in range(1, (3 if rng.random() < 0.15 else 2)):
                inp = rng.randint(100, 20_000)
                cached = rng.randint(0, inp // 2)
                write = rng.randint(0, (inp - cached) // 4)
                out = rng.randint(10, 3000)
                event: dict[str, Any] = {
                    "kind": "call",
                    "schema_version": 1,
                    "event_id": str(uuid.uuid4()),
                    "ts": (ts + timedelta(seconds=17 * step + attempt)).isoformat(),
                    "task_id": task_id,
                    "agent": rng.choice(("planner", "coder")),
                    "parent_agent": "planner" if rng.random() < 0.2 else None,
                    "step": step,
                    "provider": "test",
                    "model": rng.choice(MODELS),
                    "tokens": {
                        "input": inp,
                        "output": out,
                        "cached_input": cached,
                        "cache_write": write,
                        "reasoning": rng.randint(0, out // 3),
                    },
                    "components": {
                        "system": inp // 10,
                        "history": inp // 5,
                        "tool_responses": inp // 20,
                    },
                    "attempt": attempt,
                    "tool_calls": rng.randint(0, 3),
                    "tool_name": rng.choice((None, "search_docs", "run_sql")),
                    "latency_ms": rng.randint(50, 5000),
                    "status": rng.choices(("ok", "error", "timeout"), (90, 7, 3))[0],
                    "cost_usd": str(Decimal(rng.randint(1, 10**6)) / 10**8)
                    if rng.random() < 0.1
                    else None,
                    "context_window": rng.choice((None, 128_000, 200_000)),
                }
                if team is not None:
                    event["team"] = team
                if workflow is not None:
                    event["workflow"] = workflow
                event["tokens"]["cache_write_1h"] = write // 3
                event["service_tier"] = rng.choice((None, "default", "flex", "priority"))
                if rng.random() < 0.05:  # a response without usage: counts 0
                    event["usage_missing"] = True
                    event["tokens"] = {}
                    event["components"] = {}
                events.append(event)
        if rng.random() < 0.85:
            events.append(
                {
                    "kind": "outcome",
                    "schema_version": 1,
                    "event_id": str(uuid.uuid4()),
                    "ts": (ts + timedelta(minutes=5)).isoformat(),
                    "team": team,
                    "workflow": workflow,
                    "task_id": task_id,
                    "status": rng.choices(("success", "failure", "abandoned"), (70, 20, 10))[0],
                    "quality": round(rng.random(), 3),
                }
            )
    return events


Ends = dict[tuple[str, int], int]


class _Delivery:
    """Where each produced message landed: (topic, partition) → next offset. (Tansu's
    ListOffsets reports the last *batch*'s base offset + 1, so tests do not use watermarks.)"""

    def __init__(self) -> None:
        self.ends: Ends = {}
        self.errors: list[str] = []

    def __call__(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
            return
        key = (msg.topic(), msg.partition())
        self.ends[key] = max(self.ends.get(key, 0), msg.offset() + 1)


def produce(
    bootstrap: str,
    topic: str,
    events: list[dict[str, Any]],
    *,
    envelope: int = 1,
    extra: list[bytes] | None = None,
) -> Ends:
    """Produce ``events`` keyed by task id: one per message, or batch envelopes of up to
    ``envelope`` events of one task (one partition). ``extra`` raw values are sent too."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    delivery = _Delivery()
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_task[event["task_id"]].append(event)
    for task_id, items in by_task.items():
        for i in range(0, len(items), envelope):
            chunk = items[i : i + envelope]
            value = orjson.dumps(chunk if envelope > 1 else chunk[0])
            producer.produce(topic, value, key=task_id.encode(), on_delivery=delivery)
        producer.poll(0)
    for value in extra or []:
        producer.produce(topic, value, key=b"junk", on_delivery=delivery)
    assert producer.flush(30) == 0
    assert not delivery.errors, delivery.errors
    return delivery.ends


def produce_json(bootstrap: str, topic: str, docs: list[dict[str, Any]], key: str) -> Ends:
    producer = Producer({"bootstrap.servers": bootstrap})
    delivery = _Delivery()
    for doc in docs:
        producer.produce(
            topic, orjson.dumps(doc), key=str(doc.get(key, "k")).encode(), on_delivery=delivery
        )
    assert producer.flush(30) == 0
    assert not delivery.errors, delivery.errors
    return delivery.ends


def merge(*ends: Ends) -> Ends:
    out: Ends = {}
    for e in ends:
        for key, offset in e.items():
            out[key] = max(out.get(key, 0), offset)
    return out


def expected_rollup(
    events: list[dict[str, Any]], policy: Policy
) -> dict[tuple[Any, ...], list[Any]]:
    """(hour, team, workflow, model) → [calls, input, output, cached, write, reasoning, cost,
    retries, errors, unpriced, missing usage], computed in Python from the unique call events
    (a call without usage and without a reported cost: 0, cost_source missing_usage)."""
    seen: set[str] = set()
    totals: dict[tuple[Any, ...], list[Any]] = {}
    for doc in events:
        if doc["kind"] != "call" or doc["event_id"] in seen:
            continue
        seen.add(doc["event_id"])
        event = parse_event(doc)
        assert isinstance(event, CallEvent)
        priced = price_call(event, policy.catalog)
        cost, unpriced = priced.cost_usd, priced.unpriced
        if event.usage_missing and event.cost_usd is None:
            cost, unpriced = Decimal(0), False
        hour = event.ts.replace(minute=0, second=0, microsecond=0)
        key = (hour, event.team, event.workflow, event.model)
        row = totals.setdefault(key, [0, 0, 0, 0, 0, 0, Decimal(0), 0, 0, 0, 0])
        t = event.tokens
        for i, v in enumerate((1, t.input, t.output, t.cached_input, t.cache_write, t.reasoning)):
            row[i] += v
        row[6] += cost
        row[7] += event.attempt > 1
        row[8] += event.status != "ok"
        row[9] += unpriced
        row[10] += event.usage_missing
    return totals


_ROLLUP_MEASURES = (
    "sum(calls), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), "
    "sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_usd), sum(retries), sum(errors), "
    "sum(unpriced_calls), sum(missing_usage_calls)"
)


def rollup_totals(
    store: ClickHouseStore, table: str = "spend_hourly", bucket: str = "hour"
) -> dict[tuple[Any, ...], list[Any]]:
    result = store.query(
        f"SELECT {bucket}, team, workflow, model, {_ROLLUP_MEASURES} FROM {table} "
        f"GROUP BY {bucket}, team, workflow, model"
    )
    return {tuple(r[:4]): [*r[4:]] for r in result.rows}


def raw_totals(store: ClickHouseStore) -> dict[tuple[Any, ...], list[Any]]:
    """The same aggregation straight from token_events (deduplicated with FINAL)."""
    result = store.query(
        "SELECT toStartOfHour(ts) AS hour, team, workflow, model, count(), sum(input_tokens), "
        "sum(output_tokens), sum(cached_input_tokens), sum(cache_write_tokens), "
        "sum(reasoning_tokens), sum(cost_usd), countIf(attempt > 1), countIf(status != 'ok'), "
        "countIf(cost_source = 'unpriced'), countIf(usage_missing) FROM token_events FINAL "
        "GROUP BY hour, team, workflow, model"
    )
    return {tuple(r[:4]): [*r[4:]] for r in result.rows}


def daily(totals: dict[tuple[Any, ...], list[Any]]) -> dict[tuple[Any, ...], list[Any]]:
    out: dict[tuple[Any, ...], list[Any]] = {}
    for (hour, *rest), values in totals.items():
        key = (hour.date(), *rest)
        acc = out.setdefault(key, [0] * 6 + [Decimal(0)] + [0] * 4)
        for i, v in enumerate(values):
            acc[i] += v
    return out


def assert_exact(store: ClickHouseStore, events: list[dict[str, Any]], policy: Policy) -> None:
    """Raw rows, hourly and daily rollups all equal the Python aggregation of the unique events."""
    expected = expected_rollup(events, policy)
    assert raw_totals(store) == expected
    assert rollup_totals(store) == expected
    assert rollup_totals(store, "spend_daily", "day") == daily(expected)
    raw_rows = store.query("SELECT count(), uniqExact(event_id) FROM token_events").rows[0]
    assert raw_rows[0] == raw_rows[1] == sum(v[0] for v in expected.values())


def committed(bootstrap: str, group: str, ends: Ends) -> bool:
    """True when ``group`` has committed each partition of ``ends`` up to its end."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        offsets = consumer.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
        return all(tp.offset == ends[(tp.topic, tp.partition)] for tp in offsets)
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0) -> list[Any]:
    """Every message of ``topic`` (assign, no group), waiting for at least ``expect``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(messages) < expect:
            for message in consumer.consume(100, 0.2):
                if message.error() is None:
                    messages.append(message)
        return messages
    finally:
        consumer.close()
