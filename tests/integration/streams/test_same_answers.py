"""The same answers on one worker or many (issue 16): one scripted event stream — runaways,
retry storms, a loop, budgets crossing every threshold, token-debt patterns, duplicates, a
late event, a message that is not JSON — through 1 worker and, side by side, through 3
workers of the role set ``streams`` in one consumer group, a 4th joining and one leaving
mid-stream (each run with its own topic prefix, group and store). The alerts (by
fingerprint), decisions, findings, dead letters, the metrics' final values and the store's
totals are the same; the findings are also those of one in-process
:class:`~tokengov.streams.debt.engine.DebtEngine` that saw every event once (the point both
runs must converge to). The same stream through ``--role governance`` and ``--role debt`` run
as two services (what docs/streams.md, "Scaling", advises above what one ``streams`` process
handles) gives the answers of ``--role streams`` too. Every wait is on a condition: offsets
committed, every event stored, every call in the metrics, the findings converged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import TEST_EVENT_PARTITIONS
from tests.integration.streams.conftest import Cluster
from tests.integration.streams.events import POLICY, call, now, outcome
from tests.waiting import wait_for
from tokengov.app.local.broker import free_port
from tokengov.core.decoding import decode_events
from tokengov.core.errors import QueryError, TokenGovError
from tokengov.core.policy import parse_policy
from tokengov.core.topics import Topics, ensure_topics, topic_specs
from tokengov.sinks.clickhouse.endpoint import read_token
from tokengov.sinks.clickhouse.reader import EndpointReader, endpoint_address
from tokengov.streams.debt.engine import DebtEngine

pytestmark = pytest.mark.integration

SAME_POLICY = POLICY + (
    "debt: {flush_interval: 1s, reemit_interval: 1s, min_calls: 5,\n"
    "       min_waste_tokens_per_day: 0, alert_usd_per_day: 0.01}\n"
)
Message = tuple[bytes, bytes]
#: The process that fills the store (the sink alone has no Faust agent to subscribe with; the
#: router brings one): once per run, so one writer per store.
STORE_ROLES = ("sink", "router")


def _scenario() -> list[list[Message]]:
    """Three parts of the stream, as the exact bytes each run is sent (event time fixed)."""
    t0 = now() - timedelta(minutes=10)
    clock = iter(range(10_000))

    def at() -> Any:
        return t0 + timedelta(seconds=next(clock))

    def single(*events: dict[str, Any]) -> list[Message]:
        return [(e["task_id"].encode(), orjson.dumps(e)) for e in events]

    def storm(task: str, step: int) -> list[dict[str, Any]]:  # 3 failed retries, no backoff
        start = at()
        return [
            call(
                task,
                step=step,
                attempt=i + 1,
                status="ok" if i == 4 else "error",
                latency_ms=100,
                at=start + timedelta(milliseconds=200 * i),
            )
            for i in range(5)
        ]

    run = [call("t-run", tool_calls=1, at=at()) for _ in range(6)]
    doc = [call("t-doc", workflow="doc-qa", tool_calls=1, at=at()) for _ in range(4)]
    storms = [storm(f"t-storm{i}", 1000 + i) for i in range(8)]
    part1 = [
        *single(*run),
        *single(run[0], run[3]),  # a producer's retries: counted once
        (b"t-doc", orjson.dumps(doc)),  # a batch envelope
        *[m for s in storms[:4] for m in single(*s)],
    ]
    no_usage = call("t-no-usage", workflow="doc-qa", tokens={}, at=at()) | {"usage_missing": True}
    spend = [
        call(f"t-spend{i}", team="research", tokens={"input": 1_500_000, "output": 0}, at=at())
        for i in range(2)
    ]  # $0.60 each of a $1/day budget: 50 % then 100 %
    part2 = [
        *single(*[call("t-loop", step=7, tool_name="grep", at=at()) for _ in range(5)]),
        *single(call("t-new", workflow="brand-new", team="research", at=at())),
        *single(call("t-unpriced", workflow="brand-new", team="research", model="gpt-9", at=at())),
        *single(no_usage, no_usage | {"event_id": no_usage["event_id"] + "-2"}),
        *single(*spend),
        *[m for s in storms[4:] for m in single(*s)],
    ]
    late = call("t-run", tool_calls=0, at=t0 - timedelta(days=2))
    part3 = [
        *single(outcome("t-run"), outcome("t-storm0", status="failure")),
        *single(late),
        (b"t-bad", b"{not json"),
        *single(*storms[5], spend[0]),  # redelivered: counted once
    ]
    return [part1, part2, part3]


def _cluster(bootstrap: str, tmp: Path, name: str) -> Cluster:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(bootstrap, topic_specs(prefix=prefix, event_partitions=TEST_EVENT_PARTITIONS))
    (tmp / name).mkdir()
    policy = tmp / name / "policy.yaml"
    policy.write_text(SAME_POLICY)
    return Cluster(bootstrap, prefix, Topics.with_prefix(prefix), tmp / name, policy)


def _findings(c: Cluster) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The latest finding of each (team, workflow, agent, detector), without its clock stamp."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in c.read(c.topics.findings):
        f = orjson.loads(record.value)
        latest[(f["team"], f["workflow"], f["agent"], f["detector"])] = {
            k: v for k, v in f.items() if k != "ts"
        }
    return latest


_CLOCK_FIELDS = ("revision", "emitted_at", "ts")


def _metrics(c: Cluster) -> dict[str, dict[str, Any]]:
    """The latest of each metric (usage and attribution coverage per window, unit metrics per
    workflow and day), without when or how often it was published."""
    latest: dict[str, dict[str, Any]] = {}
    for record in c.read(c.topics.metrics):
        doc = orjson.loads(record.value)
        latest[record.key.decode()] = {k: v for k, v in doc.items() if k not in _CLOCK_FIELDS}
    return latest


def _metrics_final(c: Cluster, calls: int) -> bool:
    """Every call is in the 1-minute and 1-hour usage windows and in the unit metrics, and the
    two finished tasks are counted."""
    m = _metrics(c).values()
    usage = {
        w: sum(d["calls"] for d in m if d["metric"] == "usage" and d["window"] == w)
        for w in ("1m", "1h")
    }
    units = [d for d in m if d["metric"] == "unit"]
    return (
        usage == {"1m": calls, "1h": calls}
        and sum(d["calls"] for d in units) == calls
        and sum(d["tasks_finished"] for d in units) == 2
    )


def _distinct(parts: list[list[Message]], on_time_calls: bool) -> int:
    """Distinct events of the stream (or only the calls of the last day)."""
    ids = {
        e.event_id
        for part in parts
        for _, value in part
        for _, e in decode_events(value).events
        if not on_time_calls or (e.kind == "call" and e.ts > now() - timedelta(days=1))
    }
    return len(ids)


_TOTALS = {
    "calls": "SELECT team, workflow, count(), sum(input_tokens), sum(output_tokens), "
    "toString(sum(cost_usd)) FROM token_events FINAL GROUP BY team, workflow "
    "ORDER BY team, workflow",
    "outcomes": "SELECT status, count() FROM task_outcomes FINAL GROUP BY status ORDER BY status",
    "alerts": "SELECT count(DISTINCT fingerprint) FROM alerts",
}


def _totals(c: Cluster) -> dict[str, list[Any]]:
    """What the store holds (the sink role's ClickHouse, through its query endpoint)."""
    address = endpoint_address(c.data_dir)
    if address is None:  # never the store in this process: only through the sink's endpoint
        raise QueryError(f"no query endpoint under {c.data_dir} yet")
    reader = EndpointReader(*address, read_token(c.data_dir))
    try:
        return {name: [list(r) for r in reader.query(sql).rows] for name, sql in _TOTALS.items()}
    finally:
        reader.close()


def _stored(c: Cluster, events: int) -> bool:
    try:
        totals = _totals(c)
    except (QueryError, TokenGovError):  # the endpoint or the store is not there yet
        return False
    calls = sum(int(row[2]) for row in totals["calls"])
    outcomes = sum(int(row[1]) for row in totals["outcomes"])
    return calls + outcomes == events


def _expected_findings(parts: list[list[Message]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    engine = DebtEngine(parse_policy(SAME_POLICY))
    for _, value in (m for part in parts for m in part):
        for _, event in decode_events(value).events:
            engine.observe(event)
    return {
        f.key: {k: v for k, v in orjson.loads(f.model_dump_json()).items() if k != "ts"}
        for f in engine.flush().findings
    }


def _answers(
    c: Cluster, expected: dict[tuple[Any, ...], dict[str, Any]], calls: int, events: int
) -> dict[str, Any]:
    c.wait_processed(60)
    wait_for(lambda: _stored(c, events), 60, "every event in the store", c.tail)
    wait_for(lambda: _metrics_final(c, calls), 30, "every call in the metrics", c.tail)
    wait_for(
        lambda: _findings(c) == expected,
        30,
        "the findings to converge",
        lambda: f"findings {_findings(c)}\nexpected {expected}\n{c.tail()}",
    )
    decisions = {
        key: (d["action"], d.get("fallback_model"), d["reason"]) for key, d in c.decisions()
    }
    dead = sorted((d["reason"], d["index"]) for d in c.dead_letters())
    return {
        "alerts": sorted(set(c.fingerprints())),
        "decisions": decisions,
        "findings": _findings(c),
        "dead_letters": dead,
        "metrics": _metrics(c),
        "store": _totals(c),
    }


@contextmanager
def _side_by_side(bootstrap: str, tmp: Path, *names: str) -> Iterator[list[Cluster]]:
    """Runs side by side, each with its own topics, groups and store; every worker stopped
    at the end."""
    clusters = [_cluster(bootstrap, tmp, name) for name in names]
    try:
        yield clusters
    finally:
        for c in clusters:
            c.close()


def _start_store(c: Cluster) -> None:
    """The process that fills the cluster's store, with its query endpoint (:func:`_totals`)."""
    c.start_worker(STORE_ROLES, {"TOKENGOV_QUERY_ENDPOINT": f"127.0.0.1:{free_port()}"})


def _send(c: Cluster, messages: list[Message]) -> None:
    for key, value in messages:
        c.send_raw(key, value)


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for what in a:
        assert a[what] == b[what], (what, a[what], b[what])


Scenario = tuple[list[list[Message]], dict[tuple[Any, ...], dict[str, Any]], int, int]


@pytest.fixture
def scenario() -> Scenario:
    """The stream's parts, the findings one engine gives for it, its on-time calls and its
    distinct events."""
    parts = _scenario()
    return parts, _expected_findings(parts), _distinct(parts, True), _distinct(parts, False)


def test_one_worker_and_three_with_a_rebalance_give_the_same_answers(
    bootstrap: str, tmp_path: Path, scenario: Scenario
) -> None:
    parts, expected, calls, events = scenario
    assert {k[3] for k in expected} == {"retry_without_backoff"}, expected

    with _side_by_side(bootstrap, tmp_path, "one", "many") as (one, many):
        one.start_worker()
        _start_store(one)
        workers = [many.start_worker() for _ in range(3)]
        _start_store(many)
        for part in parts:
            _send(one, part)

        _send(many, parts[0])
        many.wait_processed(60)
        many.start_worker()  # a 4th joins mid-stream
        _send(many, parts[1])
        workers[0].stop()  # and one leaves (SIGTERM: it hands its partitions over)
        _send(many, parts[2])

        single = _answers(one, expected, calls, events)
        spread = _answers(many, expected, calls, events)
    _assert_same(single, spread)
    assert any(fp.startswith("debt_finding|") for fp in single["alerts"])
    assert {fp.split("|")[0] for fp in single["alerts"]} >= {
        "runaway",
        "retry_storm",
        "loop",
        "missing_cost_profile",
        "unpriced_model",
        "missing_usage",
        "budget_threshold",
        "debt_finding",
    }
    assert set(single["decisions"]) == {"task:t-doc", "task:t-run"} | {
        f"task:t-storm{i}" for i in range(8)
    }  # t-doc's fallback, t-run's pause, and each storm's pause (max_retries)


def test_governance_and_debt_as_two_services_give_the_answers_of_streams(
    bootstrap: str, tmp_path: Path, scenario: Scenario
) -> None:
    parts, expected, calls, events = scenario

    with _side_by_side(bootstrap, tmp_path, "streams", "halves") as (whole, halves):
        # each half is its own consumer group and reads what it needs: governance the events
        # and its partials (stage 2), token debt the events and its tallies (its judges)
        halves.groups = {
            "governance": (halves.topics.events, halves.internal.partials),
            "debt": (halves.topics.events, halves.internal.debt_tallies),
        }
        whole.start_worker()
        _start_store(whole)
        halves.start_worker(("governance",))
        halves.start_worker(("debt",))
        _start_store(halves)
        for part in parts:
            _send(whole, part)
            _send(halves, part)

        one = _answers(whole, expected, calls, events)
        two = _answers(halves, expected, calls, events)
    _assert_same(one, two)
    # what each half owns is there: governance's alerts and decisions, token debt's findings
    # and their alerts, one dead letter for the message that is not JSON (governance's: token
    # debt counts it and goes on)
    kinds = {fp.split("|")[0] for fp in two["alerts"]}
    assert {"runaway", "retry_storm", "budget_threshold", "debt_finding"} <= kinds, kinds
    assert two["decisions"] and two["findings"] == expected
    assert len(two["dead_letters"]) == 1, two["dead_letters"]
