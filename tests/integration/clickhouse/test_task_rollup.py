"""The per-task aggregate ``task_spend_hourly`` (schema version 6), the per-task totals
``task_totals`` (version 7) and the reports that read them.

``top-tasks`` and ``unit-economics`` must answer exactly what a scan of the raw rows answers:
the expected rows here are computed by this test's own SQL over ``token_events FINAL`` (the
statements the reports ran before version 6, deduplicated), never by the code under test.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tokengov.core.policy import Policy
from tokengov.sinks.clickhouse.batch import Consumed, Flush, PartitionSlice
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.reader import StoreReader
from tokengov.sinks.clickhouse.reconcile import reconcile
from tokengov.sinks.clickhouse.reports import (
    ReportWindow,
    partial_tasks_sql,
    run_report,
    task_statement,
    top_tasks_sql,
    unit_economics_sql,
)
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import COLUMNS

from .conftest import make_events, merge, produce
from .test_writer import running_writer, wait_committed

pytestmark = pytest.mark.integration

# The raw scans, written here (schema version 5's statements, over the deduplicated rows).
_WINDOW = (
    "ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')} "
    "AND ({team:String} = '' OR team = {team:String})"
)
RAW_TOP_TASKS = f"""SELECT task_id, any(team), any(workflow), count(),
    sum(toUInt256(input_tokens) + output_tokens), sum(toDecimal256(cost_usd, 12)),
    countIf(attempt > 1), sum(toUInt256(tool_calls)), min(ts), max(ts),
    uniqExact(team, workflow) > 1
FROM token_events FINAL WHERE {_WINDOW}
GROUP BY task_id ORDER BY sum(toDecimal256(cost_usd, 12)) DESC, task_id LIMIT 100000"""
RAW_TASKS = f"""SELECT workflow, task_id, sum(toUInt256(input_tokens) + output_tokens) AS tokens,
    sumIf(toUInt256(input_tokens) + output_tokens, attempt > 1) AS retry_tokens,
    sum(toDecimal256(cost_usd, 12)) AS cost_usd
FROM token_events FINAL WHERE {_WINDOW} GROUP BY workflow, task_id"""
RAW_OUTCOMES = """SELECT task_id, argMax(status, ts), argMax(quality, ts)
FROM task_outcomes WHERE ts >= {since:DateTime64(3, 'UTC')} GROUP BY task_id"""


def _raw(store: ClickHouseStore, sql: str, window: ReportWindow) -> list[tuple[Any, ...]]:
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    params = {
        "since": window.since.astimezone(UTC).strftime(fmt)[:-3],
        "until": window.until.astimezone(UTC).strftime(fmt)[:-3],
        "team": window.team or "",
    }
    return [tuple(r) for r in store.query(sql, params).rows]


def _expected_unit_economics(
    store: ClickHouseStore, window: ReportWindow, bars: dict[str, float]
) -> dict[str, tuple[Any, ...]]:
    """unit-economics recomputed here from the raw tasks and outcomes (counts and sums
    exact; the ratios as the report rounds them)."""
    outcomes = {t: (s, q) for t, s, q in _raw(store, RAW_OUTCOMES, window)}
    per: dict[str, list[Any]] = {}
    for workflow, task, tokens, retry_tokens, cost in _raw(store, RAW_TASKS, window):
        status, quality = outcomes.get(task, (None, None))
        bar = bars.get(workflow)
        success = status == "success" and (
            bar is None or (quality if quality is not None else -1) >= bar
        )
        acc = per.setdefault(workflow, [0, 0, 0, 0, 0, 0, 0])
        acc[0] += 1
        acc[1] += status is not None
        acc[2] += success
        acc[3] += tokens if status is not None else 0
        acc[4] += cost
        acc[5] += retry_tokens
        acc[6] += tokens
    return {w: tuple(acc) for w, acc in per.items()}


def _windows() -> list[ReportWindow]:
    t0 = datetime(2026, 10, 30, 12, tzinfo=UTC)  # make_events' start; ~40 hours, two months
    return [
        ReportWindow(t0 - timedelta(days=1), t0 + timedelta(days=3), limit=100_000),
        # ends inside hours, across the month boundary
        ReportWindow(
            t0 + timedelta(hours=3, minutes=7, seconds=3, microseconds=250_000),
            t0 + timedelta(hours=30, minutes=41),
            limit=100_000,
        ),
        ReportWindow(t0 + timedelta(hours=5), t0 + timedelta(hours=29), limit=100_000),
        # inside one hour; and less than one hour across an hour's start
        ReportWindow(t0 + timedelta(hours=6, minutes=5), t0 + timedelta(hours=6, minutes=50)),
        ReportWindow(t0 + timedelta(hours=7, minutes=30), t0 + timedelta(hours=8, minutes=20)),
        ReportWindow(t0, t0 + timedelta(days=2), team="search", limit=7),
    ]


def _assert_reports_equal_raw(store: ClickHouseStore, policy: Policy) -> int:
    """Both reports over every window equal the raw scans; returns how many windows had
    tasks read call by call (crossed by an end of the window, or of several teams or
    workflows) — the path of the reports besides ``task_totals``."""
    bars = {n: p.quality_bar for n, p in policy.cost_profiles.items() if p.quality_bar is not None}
    reader = StoreReader(store.dsn)
    crossed = 0
    try:
        for window in _windows():
            # The partial tasks bound as a list (what the reports do) and selected by the
            # statement itself (beyond MAX_LISTED_PARTIAL_TASKS): the same rows.
            for name, unlisted in (
                ("top-tasks", top_tasks_sql(listed=False)),
                ("unit-economics", unit_economics_sql(listed=False)),
            ):
                sql, params = task_statement(name, reader, replace(window, policy=policy))
                assert reader.query(sql, params).rows == reader.query(unlisted, params).rows
            params = task_statement("unit-economics", reader, window)[1]
            ((partial,),) = reader.query(partial_tasks_sql(True), params | {"listed": 100}).rows
            crossed += bool(partial)
            top = run_report("top-tasks", reader, window)
            raw = _raw(store, RAW_TOP_TASKS, window)[: window.limit]
            # A task of several workflows: its team and workflow are any one of them (any()).
            assert [
                (r[0], *r[3:-1]) if mixed else tuple(r[:-1])
                for r, (*_, mixed) in zip(top.rows, raw, strict=True)
            ] == [(r[0], *r[3:-1]) if r[-1] else tuple(r[:-1]) for r in raw], window
            assert len(top.rows) == len(raw)
            unit = run_report("unit-economics", reader, replace(window, policy=policy)).dicts()
            expected = _expected_unit_economics(store, window, bars)
            assert {r["workflow"] for r in unit} == set(expected), window
            for r in unit:
                tasks, with_outcome, successes, outcome_tokens, cost, retry, total = expected[
                    r["workflow"]
                ]
                assert (r["tasks"], r["tasks_with_outcome"], r["successes"]) == (
                    tasks,
                    with_outcome,
                    successes,
                ), window
                assert r["cost_usd"] == cost, window
                # the ratios as the report rounds them (to 0.1 and 0.0001)
                if with_outcome:
                    per_outcome = outcome_tokens / with_outcome
                    assert r["tokens_per_outcome"] == pytest.approx(per_outcome, abs=0.051)
                if total:
                    assert r["retry_token_ratio"] == pytest.approx(retry / total, abs=0.000051)
    finally:
        reader.close()
    return crossed


def _late(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Calls stamped hours before the rest arrived, of known tasks and of a new one."""
    calls = [e for e in events if e["kind"] == "call"]
    late = []
    for i, base in enumerate(rng.sample(calls, 15)):
        ts = datetime.fromisoformat(base["ts"]) - timedelta(hours=rng.randint(1, 20), minutes=i)
        late.append(base | {"event_id": str(uuid.uuid4()), "ts": ts.isoformat(), "step": 50 + i})
    late.append(calls[0] | {"event_id": str(uuid.uuid4()), "task_id": "late-task", "step": 0})
    # a task whose calls name two workflows: unit-economics counts it in each
    other = "doc-qa" if calls[1].get("workflow") != "doc-qa" else "triage"
    late.append(calls[1] | {"event_id": str(uuid.uuid4()), "workflow": other, "step": 99})
    return late


def test_reports_equal_the_raw_scan_with_duplicates_and_late_events(
    bootstrap, topic_names, store, policy
):
    rng = random.Random(18)
    events = make_events(70, seed=18)
    ends = produce(bootstrap, topic_names.events, events, envelope=3)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    with running_writer(bootstrap, topic_names, store, policy, group) as writer:
        wait_committed(bootstrap, group, ends, writer)
        # Duplicates (a producer's retry: the same events again, one by one) and late events.
        late = _late(events, rng)
        again = rng.sample(events, 60) + late[:5]
        ends = merge(
            ends,
            produce(bootstrap, topic_names.events, late),
            produce(bootstrap, topic_names.events, again),
        )
        wait_committed(bootstrap, group, ends, writer)
        assert writer.counters.duplicates_skipped >= len(again)
    # The aggregates equal the raw rows key by key, and the reports the raw scans.
    assert _aggregate(store) == _raw_per_task(store)
    assert _totals(store) == _raw_totals(store)
    # late calls hours before their task's others: some windows' ends cross tasks
    assert _assert_reports_equal_raw(store, policy) >= 2


_SUMS = "calls, tokens, retry_tokens, cost_usd, retries, tool_calls"


def _aggregate(store: ClickHouseStore) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = store.query(
        "SELECT hour, team, workflow, task_id, sum(calls), sum(tokens), sum(retry_tokens), "
        "sum(cost_usd), sum(retries), sum(tool_calls), min(first_call), max(last_call) "
        "FROM task_spend_hourly GROUP BY hour, team, workflow, task_id "
        "HAVING sum(calls) != 0"
    ).rows
    return {tuple(r[:4]): tuple(r[4:]) for r in rows}


def _raw_per_task(store: ClickHouseStore) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = store.query(
        "SELECT toStartOfHour(ts) AS h, team, workflow, task_id, count(), "
        "sum(toUInt256(input_tokens) + output_tokens), "
        "sumIf(toUInt256(input_tokens) + output_tokens, attempt > 1), "
        "sum(toDecimal256(cost_usd, 12)), countIf(attempt > 1), sum(toUInt256(tool_calls)), "
        "min(ts), max(ts) FROM token_events FINAL GROUP BY h, team, workflow, task_id"
    ).rows
    return {tuple(r[:4]): tuple(r[4:]) for r in rows}


_TS_UNIT = "toUInt128('147573952589676412928')"  # 2**67
_STATUS_UNIT = "toUInt128('36893488147419103232')"  # 2**65
_QUALITY_FLAG = "toUInt128('18446744073709551616')"  # 2**64


def _totals(store: ClickHouseStore) -> dict[str, tuple[Any, ...]]:
    """``task_totals`` as the reports read it (FINAL), its outcome unpacked (ts in ms ×
    2**67 + status 1–3 × 2**65 + quality present × 2**64 + the quality's bits)."""
    rows = store.query(
        "SELECT task_id, calls, tokens, retry_tokens, cost_usd, retries, tool_calls, "
        "team_min, team_max, workflow_min, workflow_max, first_call, last_call, "
        f"if(outcome = 0, NULL, fromUnixTimestamp64Milli(toInt64(intDiv(outcome, {_TS_UNIT})), "
        "'UTC')), "
        f"if(outcome = 0, NULL, ['success', 'failure', 'abandoned'][toUInt8(intDiv(outcome, "
        f"{_STATUS_UNIT}) % 4)]), "
        f"if(intDiv(outcome, {_QUALITY_FLAG}) % 2 = 1, "
        f"reinterpretAsFloat64(toUInt64(outcome % {_QUALITY_FLAG})), NULL) "
        "FROM task_totals FINAL WHERE calls != 0 OR outcome != 0"
    ).rows
    return {r[0]: tuple(r[1:]) for r in rows}


def _raw_totals(store: ClickHouseStore) -> dict[str, tuple[Any, ...]]:
    """The same, written here over the raw rows: each task's calls over its whole life and
    its latest outcome."""
    rows = store.query(
        "SELECT task_id, c.calls, c.tokens, c.retry_tokens, c.cost_usd, c.retries, "
        "c.tool_calls, c.tmin, c.tmax, c.wmin, c.wmax, c.first_call, c.last_call, o.at, "
        "o.status, o.quality FROM ("
        "  SELECT task_id, count() AS calls, sum(toUInt256(input_tokens) + output_tokens) "
        "  AS tokens, sumIf(toUInt256(input_tokens) + output_tokens, attempt > 1) "
        "  AS retry_tokens, sum(toDecimal256(cost_usd, 12)) AS cost_usd, "
        "  countIf(attempt > 1) AS retries, sum(toUInt256(tool_calls)) AS tool_calls, "
        "  min(toString(team)) AS tmin, max(toString(team)) AS tmax, "
        "  min(toString(workflow)) AS wmin, max(toString(workflow)) AS wmax, "
        "  min(ts) AS first_call, max(ts) AS last_call FROM token_events FINAL GROUP BY task_id"
        ") AS c FULL OUTER JOIN ("
        "  SELECT task_id, max(ts) AS at, argMax(toString(status), ts) AS status, "
        "  argMax(quality, ts) AS quality FROM task_outcomes FINAL GROUP BY task_id"
        ") AS o USING task_id SETTINGS join_use_nulls = 1"
    ).rows
    return {r[0]: tuple(r[1:]) for r in rows}


def _insert(store: ClickHouseStore, policy: Policy, docs: list[dict[str, Any]]) -> None:
    """Rows as the writer builds them, inserted directly (the views fill the rollups)."""
    import orjson

    decoder = MessageDecoder(lambda: policy.catalog)
    piece = PartitionSlice("events", 0)
    for offset, doc in enumerate(docs):
        piece.messages.append(
            Consumed.of_decoded("events", 0, offset, decoder.decode("events", orjson.dumps(doc)))
        )
    for table, pairs in Flush.of([piece]).rows_by_table().items():
        store.insert(table, [i.row for _, i in pairs], columns=COLUMNS[table])


def test_migration_backfills_and_reconcile_repairs(tmp_path, policy):
    with ClickHouseStore(f"chdb://{tmp_path / 'ch'}") as store:
        migrate(store, target=5)
        _insert(store, policy, make_events(40, seed=6))
        report = migrate(store)
        assert report.applied == [6, 7]
        assert _aggregate(store) and _aggregate(store) == _raw_per_task(store)
        assert _totals(store) and _totals(store) == _raw_totals(store)
        _assert_reports_equal_raw(store, policy)
        assert migrate(store).applied == []

        # A view's part of an insert lost (the raw rows landed, the aggregate missed some)
        # and one doubled: the writer's reconciliation of those hours puts it right.
        docs = make_events(10, seed=7)
        _insert(store, policy, docs)
        store.command(
            "INSERT INTO task_spend_hourly SELECT hour, team, workflow, task_id, -calls, -tokens, "
            "-retry_tokens, -cost_usd, -retries, -tool_calls, first_call, last_call "
            "FROM task_spend_hourly WHERE task_id = 'task-7-0'"
        )
        store.command(
            "INSERT INTO task_spend_hourly SELECT * FROM task_spend_hourly "
            "WHERE task_id = 'task-7-1' LIMIT 1"
        )
        # task_totals: a task's calls lost, another's doubled, an outcome lost
        store.command(
            "INSERT INTO task_totals SELECT task_id, -calls, -tokens, -retry_tokens, -cost_usd, "
            "-retries, -tool_calls, team_min, team_max, workflow_min, workflow_max, first_call, "
            "last_call, outcome FROM task_totals FINAL WHERE task_id = 'task-7-2'"
        )
        store.command(
            "INSERT INTO task_totals SELECT * FROM task_totals FINAL WHERE task_id = 'task-7-3'"
        )
        store.command("OPTIMIZE TABLE task_totals FINAL")
        store.command(
            "ALTER TABLE task_totals UPDATE outcome = 0 "
            "WHERE task_id = 'task-7-4' SETTINGS mutations_sync = 2"
        )
        assert _aggregate(store) != _raw_per_task(store)
        assert _totals(store) != _raw_totals(store)
        keys = store.query(
            "SELECT DISTINCT toStartOfHour(ts), team, workflow, model FROM token_events "
            "WHERE task_id LIKE 'task-7-%'"
        ).rows
        assert reconcile(store, [tuple(k) for k in keys]) > 0
        assert _aggregate(store) == _raw_per_task(store)
        assert _totals(store) == _raw_totals(store)
        assert reconcile(store, [tuple(k) for k in keys]) == 0  # nothing left to correct

        # A flush of outcomes alone (no call of their tasks in it) whose view part was lost:
        # the writer names those tasks, and their totals are repaired too.
        store.command(
            "ALTER TABLE task_totals UPDATE outcome = 0 "
            "WHERE task_id = 'task-7-5' SETTINGS mutations_sync = 2"
        )
        assert _totals(store) != _raw_totals(store)
        assert reconcile(store, [], outcome_tasks=["task-7-5"]) == 1
        assert _totals(store) == _raw_totals(store)
        assert reconcile(store, [], outcome_tasks=["task-7-5"]) == 0
        _assert_reports_equal_raw(store, policy)
