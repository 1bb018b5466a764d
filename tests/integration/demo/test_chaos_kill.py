"""Chaos: the embedded worker (every role) SIGKILLed at 10 %, 50 % and 90 % of a stream in which
every event is sent twice; afterwards the raw table, both rollups and the budget are exact,
and each budget threshold alerted once (issue 12, item 9).

The sink's own crash points (inside a flush) are tests/integration/clickhouse/test_crash.py;
the streams role's alone, tests/integration/streams/test_restart.py. This one kills the whole
worker process — streams, ClickHouse writer and router together — with the real broker and
chdb, and reuses the clickhouse tests' generator and exact checks. The negative control runs
the same check on the same store after one row was inserted a second time behind the
writer's back: it must fail, so the check can.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.clickhouse.conftest import (
    POLICY,
    assert_exact,
    expected_rollup,
    make_events,
    produce,
)
from tokengov.app.local.broker import free_port
from tokengov.app.local.stack import LocalStack
from tokengov.core.contracts import CallEvent
from tokengov.core.decoding import parse_event
from tokengov.core.kafka import latest_by_key, read_to_end
from tokengov.core.policy import parse_policy
from tokengov.core.pricing import price_call
from tokengov.core.settings import Settings
from tokengov.sinks.clickhouse.reader import open_reader
from tokengov.sinks.clickhouse.store import ClickHouseStore

pytestmark = pytest.mark.integration

FEMTO = 10**15
KILL_AT = (0.1, 0.5, 0.9)


def stream_now(n_tasks: int) -> list[dict[str, Any]]:
    """The clickhouse tests' events (every kind of call, outcomes, unpriced, unattributed),
    re-stamped to the last minute in order so that none is late for the budgets."""
    events = make_events(n_tasks, seed=12)
    now = datetime.now(UTC)
    base = max(now - timedelta(seconds=60), now.replace(hour=0, minute=0, second=0, microsecond=0))
    for i, event in enumerate(events):
        event["ts"] = (base + timedelta(milliseconds=50 * i)).isoformat()
    return events


def search_budget(events: list[dict[str, Any]], policy_text: str) -> dict[str, int]:
    """team:search:day computed here from the unique calls: femto-USD, tokens, calls."""
    policy = parse_policy(policy_text, source="chaos")
    out = {"femto": 0, "tokens": 0, "calls": 0}
    seen: set[str] = set()
    for doc in events:
        if doc["kind"] != "call" or doc.get("team") != "search" or doc["event_id"] in seen:
            continue
        seen.add(doc["event_id"])
        event = parse_event(doc)
        assert isinstance(event, CallEvent)
        cost = price_call(event, policy.catalog).cost_usd
        out["femto"] += int(cost * FEMTO)
        out["tokens"] += event.tokens.input + event.tokens.output
        out["calls"] += 1
    return out


def budget_state(bootstrap: str) -> dict[str, int]:
    """What stage 2 holds for team:search:day (summed over its days and partitions)."""
    state = latest_by_key(read_to_end(bootstrap, "tokengov.streams.aggregate-state"))
    out = {"femto": 0, "tokens": 0, "calls": 0}
    for key, raw in state.items():
        if key.startswith("b|team:search:day|"):
            for _p, _v, tokens, femto, calls in orjson.loads(raw)["parts"]:
                out["femto"] += int(femto)
                out["tokens"] += int(tokens)
                out["calls"] += int(calls)
    return out


def stored_events(settings: Settings) -> int:
    reader = open_reader(settings.clickhouse_dsn, settings.data_dir)
    try:
        return int(reader.query("SELECT count() FROM token_events").rows[0][0])
    finally:
        reader.close()


def wait(predicate: Any, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.1)


def test_worker_killed_at_10_50_90_percent_with_every_event_twice(tmp_path: Path) -> None:
    events = stream_now(60)
    calls = [e for e in events if e["kind"] == "call"]
    expected_budget = search_budget(events, POLICY)
    # the budget's limit sits below the search team's total: 50 %, 80 % and 100 % all fire
    limit = (Decimal(expected_budget["femto"]) / FEMTO * Decimal("0.9")).quantize(Decimal("1e-9"))
    policy_text = POLICY.replace("limit_usd: 0.05", f"limit_usd: {limit}")
    assert policy_text != POLICY
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy_text)
    settings = Settings(
        data_dir=tmp_path / "data", query_endpoint=f"127.0.0.1:{free_port()}", policy=policy_file
    )
    log = tmp_path / "worker.log"
    doubled = [e for e in events for _ in range(2)]  # every event twice, in separate messages
    cuts = [0, *(round(len(doubled) * f) for f in KILL_AT), len(doubled)]

    with log.open("ab") as worker_log:
        stack = LocalStack(
            settings,
            policy_file,
            port=free_port(),
            worker_stderr=worker_log,
            worker_stdout=worker_log,
            env={"TOKENGOV_SINK_DECODERS": "0"},
        )
        stack.start()
        try:
            bootstrap = stack.bootstrap
            for kill, (start, end) in enumerate(itertools.pairwise(cuts)):
                stack.wait_ready(timeout_s=90)
                before = stored_events(settings)
                produce(bootstrap, "tokengov.events", doubled[start:end])
                if kill == len(KILL_AT):
                    break
                # SIGKILL as soon as the worker is at it: part of the chunk stored, part not
                wait(lambda b=before: stored_events(settings) > b, 60, "the first rows", log)
                assert stack.worker is not None
                stack.worker.kill()
                stack.worker.wait(10)
                stack.start_worker()
            unique_calls = len({e["event_id"] for e in calls})
            wait(lambda: stored_events(settings) == unique_calls, 90, "every call stored", log)
            wait(
                lambda: budget_state(bootstrap) == expected_budget,
                60,
                "the budget to count every search call once",
                log,
            )
            days = {datetime.fromisoformat(e["ts"]).date().isoformat() for e in calls}
            assert len(days) == 1
            thresholds = [
                f"budget_threshold|search|team:search:day|{d}|usd|{t}"
                for d in days
                for t in (0.5, 0.8, 1.0)
            ]
            alerts = Counter(
                orjson.loads(r.value)["fingerprint"]
                for r in read_to_end(bootstrap, "tokengov.alerts")
                if r.value
            )
            assert {fp: alerts[fp] for fp in thresholds} == dict.fromkeys(thresholds, 1), alerts
            throttles = [
                r for r in read_to_end(bootstrap, "tokengov.decisions") if r.key == b"team:search"
            ]
            assert len(throttles) <= 1, "the breach decision was published twice"
        finally:
            stack.stop()

    with ClickHouseStore(settings.clickhouse_dsn) as store:
        policy = parse_policy(policy_text, source="chaos")
        assert_exact(store, events, policy)
        assert expected_rollup(events, policy)  # not vacuous
        # negative control: one call stored twice behind the writer's back must be caught
        store.command(
            "INSERT INTO token_events SELECT * FROM token_events WHERE event_id = "
            f"'{calls[0]['event_id']}' LIMIT 1"
        )
        with pytest.raises(AssertionError):
            assert_exact(store, events, policy)
