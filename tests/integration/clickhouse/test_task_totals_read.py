"""``task_totals`` read between merges (:func:`tokengov.sinks.clickhouse.reports.task_totals_read`)
must give exactly the rows ``FINAL`` gives — ClickHouse's own fold of a SummingMergeTree's
rows, the reference here — for any state of its parts: a merged part or none, fresh parts
(merges stopped) of the same tasks, duplicates, tasks of several teams and workflows, later
outcomes alone in a fresh part, and any name bound as the merged part (the real one, a
fresh part, one merged away, none). The reports' statements read that way equal the same
statements read with ``FINAL``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokengov.app.bench.reports import RAW_UNIT_ECONOMICS
from tokengov.core.policy import Policy
from tokengov.sinks.clickhouse.limits import QueryLimits
from tokengov.sinks.clickhouse.reader import StoreReader
from tokengov.sinks.clickhouse.reports import (
    ONE_SNAPSHOT,
    ReportWindow,
    partial_tasks_condition,
    partial_tasks_sql,
    run_report,
    task_statement,
    task_totals_parts,
    task_totals_read,
    top_tasks_sql,
    unit_economics_sql,
    whole_hours,
)
from tokengov.sinks.clickhouse.schema import TASK_TOTALS_MERGE
from tokengov.sinks.clickhouse.store import ClickHouseStore

from .conftest import make_events
from .test_task_rollup import _insert

pytestmark = pytest.mark.integration

_COLUMNS = tuple(c for c, _, _ in TASK_TOTALS_MERGE)
_T0 = datetime(2026, 10, 30, 12, tzinfo=UTC)  # make_events' start
_WINDOWS = (
    ReportWindow(_T0 - timedelta(days=1), _T0 + timedelta(days=3)),
    ReportWindow(_T0 + timedelta(hours=5, minutes=7), _T0 + timedelta(hours=29, minutes=41)),
    ReportWindow(_T0, _T0 + timedelta(days=2), team="search", limit=3),
)


def _pool() -> list[dict[str, Any]]:
    """Calls and outcomes of a few tasks, and calls of some of them under another team and
    workflow (a task of several), and a second outcome of some (the later one counts)."""
    events = make_events(8, seed=41)
    rng = random.Random(41)
    calls = [e for e in events if e["kind"] == "call"]
    for i, base in enumerate(rng.sample(calls, 4)):
        events.append(
            base
            | {
                "event_id": str(uuid.uuid4()),
                "team": "research",
                "workflow": "deep-research",
                "step": 70 + i,
            }
        )
    for base in [e for e in events if e["kind"] != "call"][:3]:
        later = datetime.fromisoformat(base["ts"]) + timedelta(minutes=5)
        events.append(base | {"event_id": str(uuid.uuid4()), "ts": later.isoformat()})
    return events


_POOL = _pool()


def _final(
    store: ClickHouseStore, where: str, columns: tuple[str, ...] = _COLUMNS
) -> list[tuple[Any, ...]]:
    sql = f"SELECT task_id, {', '.join(columns)} FROM task_totals FINAL WHERE {where}"
    return sorted(tuple(r) for r in store.query(sql + " ORDER BY task_id").rows)


def _read(
    store: ClickHouseStore,
    where: str,
    merged_part: str,
    at_rest: bool = False,
    columns: tuple[str, ...] = _COLUMNS,
    needs_calls: bool = False,
) -> list[tuple[Any, ...]]:
    read = task_totals_read(where, columns, at_rest=at_rest, needs_calls=needs_calls)
    sql = f"SELECT * FROM {read} ORDER BY task_id {ONE_SNAPSHOT}"
    return sorted(tuple(r) for r in store.query(sql, {"merged_part": merged_part}).rows)


def _late_outcomes() -> list[dict[str, Any]]:
    """Each outcome of the pool again, reported an hour later: alone in a part, it changes
    only the tasks' ``outcome``."""
    return [
        base
        | {
            "event_id": str(uuid.uuid4()),
            "ts": (datetime.fromisoformat(base["ts"]) + timedelta(hours=1)).isoformat(),
        }
        for base in _POOL
        if base["kind"] != "call"
    ]


_LATE_OUTCOMES = _late_outcomes()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batches=st.lists(
        st.lists(st.integers(0, len(_POOL) - 1), min_size=1, max_size=25),
        min_size=1,
        max_size=5,
    ),
    merged_batches=st.integers(0, 5),
    late_outcomes=st.lists(st.integers(0, len(_LATE_OUTCOMES) - 1), max_size=6),
)
def test_the_folded_read_equals_final(
    store: ClickHouseStore,
    policy: Policy,
    batches: list[list[int]],
    merged_batches: int,
    late_outcomes: list[int],
) -> None:
    for table in ("token_events", "task_outcomes", "task_totals"):
        store.command(f"TRUNCATE TABLE {table}")
    store.command("SYSTEM START MERGES task_totals")
    for i, batch in enumerate(batches):
        if i == merged_batches:  # the batches before: one merged part; those after: fresh
            if i:
                store.command("OPTIMIZE TABLE task_totals FINAL")
            store.command("SYSTEM STOP MERGES task_totals")
        _insert(store, policy, [_POOL[j] for j in batch])  # duplicates included
    if merged_batches >= len(batches):
        store.command("SYSTEM STOP MERGES task_totals")
    if late_outcomes:  # a part of outcomes alone (changing only outcome), after the rest
        _insert(store, policy, [_LATE_OUTCOMES[j] for j in late_outcomes])
    reader = StoreReader(store.dsn)
    parts = task_totals_parts(reader)
    # the names and levels as system.parts has them (the reader cannot read it on a server)
    assert sorted((n, m) for n, m in parts) == sorted(
        (str(n), bool(m))
        for n, m in store.query(
            "SELECT name, level > 0 FROM system.parts WHERE database = currentDatabase() "
            "AND table = 'task_totals' AND active"
        ).rows
    )
    names = [n for n, merged in parts if merged]
    # (all but "outcome != 0" leave outcome alone: a later outcome is joined in, not folded;
    # "calls >= 0" keeps the rows of tasks with no calls, outcomes alone, too, and so does
    # the last, a condition with OR at its top, whose first term alone needs calls)
    for where, needs_calls in (
        ("calls != 0", False),
        ("calls > 0 AND team_min != team_max", True),
        ("calls > 0 AND workflow_min = workflow_max", True),
        ("outcome != 0", False),
        ("calls >= 0", False),
        ("calls > 0 AND cost_usd > 100 OR tokens >= 0", False),
    ):
        # the columns in the table's order, and reversed (outcome first: the join must
        # keep the caller's order, as UNION ALL matches columns by position)
        for columns in (_COLUMNS, _COLUMNS[::-1]):
            expected = _final(store, where, columns)
            # the largest merged part, another, one merged away, none
            for merged_part in {*names[:2], "all_1_1_0", ""}:
                got = _read(store, where, merged_part, columns=columns, needs_calls=needs_calls)
                assert got == expected, (where, columns, merged_part, parts)
            # as read when the lookup found the merged part alone (every fresh task folded)
            main = names[0] if names else ""
            assert _read(store, where, main, at_rest=True, columns=columns) == expected
    # the partial-task lookup's own condition, as the reports bind it, against FINAL
    merged_part = names[0] if names else ""
    for window in _WINDOWS:
        params = window.parameters() | whole_hours(window) | {"merged_part": merged_part}
        for one_workflow in (False, True):
            condition = partial_tasks_condition(one_workflow)
            expected_tasks = sorted(
                str(r[0])
                for r in store.query(
                    f"SELECT task_id FROM task_totals FINAL WHERE {condition}", params
                ).rows
            )
            for at_rest in (False, True):
                ((found,),) = store.query(
                    partial_tasks_sql(one_workflow, at_rest=at_rest), params | {"listed": 10_000}
                ).rows
                assert sorted(map(str, found)) == expected_tasks, (window, one_workflow, parts)
    try:
        for window in _WINDOWS:
            for name, build in (
                ("top-tasks", top_tasks_sql),
                ("unit-economics", unit_economics_sql),
            ):
                _, params = task_statement(name, reader, window)
                listed, partial = "partial" in params, bool(params.get("partial", True))
                rows = [
                    reader.query(build(listed=listed, partial=partial, folded=f), params).rows
                    for f in (False, True)
                ]
                # and the partial tasks selected by the statement itself (a folded subquery)
                rows.append(reader.query(build(listed=False, folded=True), params).rows)
                assert rows[0] == rows[1] == rows[2], (name, window, parts)
    finally:
        reader.close()
        store.command("SYSTEM START MERGES task_totals")


class _ServerBefore2512(QueryLimits):
    """The reader's session on a server before ClickHouse 25.12, where
    ``enable_shared_storage_snapshot_in_query`` is 0 until the session sets it (chdb's engine
    defaults to 1): that value first, then the reader's own settings, ``readonly`` last."""

    def session_settings(self) -> dict[str, Any]:
        ours = super().session_settings()

        class ServerDefaultFirst(dict[str, Any]):
            def items(self) -> Any:
                return [("enable_shared_storage_snapshot_in_query", 0), *ours.items()]

        return ServerDefaultFirst(ours)


def test_the_reports_on_an_empty_table_and_a_server_before_25_12(
    store: ClickHouseStore, policy: Policy
) -> None:
    """No part at all (nothing merged: every row folded, none there), then a merged part and a
    fresh one, each read in a read-only session that had the snapshot setting off (a
    ``SETTINGS`` clause that changed it would be refused there)."""
    for table in ("token_events", "task_outcomes", "task_totals"):
        store.command(f"TRUNCATE TABLE {table}")
    reader = StoreReader(store.dsn, limits=_ServerBefore2512())
    try:
        assert task_totals_parts(reader) == []
        for name in ("top-tasks", "unit-economics"):
            assert run_report(name, reader, _WINDOWS[0]).rows == []
        _insert(store, policy, _POOL[: len(_POOL) // 2])
        store.command("OPTIMIZE TABLE task_totals FINAL")
        store.command("SYSTEM STOP MERGES task_totals")
        _insert(store, policy, _POOL[len(_POOL) // 2 :])
        parts = task_totals_parts(reader)
        assert len(parts) >= 2 and parts[0][1], parts
        for name, build in (("top-tasks", top_tasks_sql), ("unit-economics", unit_economics_sql)):
            statement, params = task_statement(name, reader, _WINDOWS[0])
            assert params["merged_part"] == parts[0][0]
            folded = reader.query(statement, params).rows
            assert folded, name
            final = reader.query(build(listed="partial" in params, folded=False), params).rows
            assert folded == final, name
    finally:
        reader.close()
        store.command("SYSTEM START MERGES task_totals")


_BOUNDS_CALLS = [e for e in make_events(120, seed=43) if e["kind"] == "call"]


def _outcomes_at_the_bounds(since: datetime) -> list[dict[str, Any]]:
    """An outcome for every task of ``_BOUNDS_CALLS``, each a case at the edges of what unit-economics
    counts: its ``ts`` a millisecond before ``since``, at it, a millisecond after; a success
    without quality, at its workflow's bar exactly, just below it (the next float down), at
    0 and 1; a failure of high quality; an abandoned task — in every workflow (with a bar, 0.8
    or 0.5, or none)."""
    tasks = sorted(
        {(e["task_id"], e.get("team"), e.get("workflow")) for e in _BOUNDS_CALLS}, key=str
    )
    cases = [
        ("success", None),
        ("success", 0.8),
        ("success", 0.5),
        ("success", 0.7999999999999999),
        ("success", 0.49999999999999994),
        ("success", 1.0),
        ("success", 0.0),
        ("failure", 0.9),
        ("abandoned", None),
    ]
    offsets = (timedelta(milliseconds=-1), timedelta(0), timedelta(milliseconds=1))
    seen: dict[str | None, int] = {}
    outcomes = []
    for task, team, workflow in tasks:
        j = seen[workflow] = seen.get(workflow, -1) + 1  # every case in every workflow
        status, quality = cases[j % len(cases)]
        outcomes.append(
            {
                "kind": "outcome",
                "schema_version": 1,
                "event_id": str(uuid.uuid4()),
                "ts": (since + offsets[j // len(cases) % 3]).isoformat(),
                **({"team": team} if team else {}),
                **({"workflow": workflow} if workflow else {}),
                "task_id": task,
                "status": status,
                "quality": quality,
            }
        )
    return outcomes


def test_unit_economics_counts_outcomes_from_since_and_bars_as_the_raw_scan(
    store: ClickHouseStore, policy: Policy
) -> None:
    """Which outcomes count (``ts`` ≥ ``since``, to the millisecond ``since`` is bound to) and
    which are successes (quality at or above the workflow's bar; none: below any bar), at
    rest and with the outcomes in a fresh part, with the policy's bars and with none: equal
    to the raw scan of schema version 5 (tokengov.app.bench.reports.RAW_UNIT_ECONOMICS, the
    statement the report ran before the per-task totals; no duplicate in these rows)."""
    for table in ("token_events", "task_outcomes", "task_totals"):
        store.command(f"TRUNCATE TABLE {table}")
    since = _T0 + timedelta(hours=3, minutes=11, seconds=5, milliseconds=250)
    _insert(store, policy, _BOUNDS_CALLS)
    store.command("OPTIMIZE TABLE task_totals FINAL")
    store.command("SYSTEM STOP MERGES task_totals")
    _insert(store, policy, _outcomes_at_the_bounds(since))
    windows = [
        ReportWindow(since, _T0 + timedelta(days=3)),
        # bound to the millisecond: the same outcomes count as from `since`
        ReportWindow(since + timedelta(microseconds=999), _T0 + timedelta(days=3)),
        ReportWindow(_T0 - timedelta(days=1), _T0 + timedelta(days=3), team="search"),
    ]
    reader = StoreReader(store.dsn)
    try:
        for at_rest in (False, True):
            if at_rest:
                store.command("SYSTEM START MERGES task_totals")
                store.command("OPTIMIZE TABLE task_totals FINAL")
            assert (len(task_totals_parts(reader)) == 1) is at_rest
            for window in windows:
                for bars in (policy, None):
                    w = replace(window, policy=bars)
                    params = w.parameters() | _bar_parameters(bars)
                    expected = [tuple(r) for r in store.query(RAW_UNIT_ECONOMICS, params).rows]
                    got = run_report("unit-economics", reader, w).rows
                    assert got == expected, (w, at_rest)
                    assert any(r[3] for r in got), got  # successes among the cases
    finally:
        reader.close()
        store.command("SYSTEM START MERGES task_totals")


def _bar_parameters(policy: Policy | None) -> dict[str, Any]:
    bars = {
        n: p.quality_bar
        for n, p in (policy.cost_profiles.items() if policy else ())
        if p.quality_bar is not None
    }
    return {"bar_workflows": list(bars), "bar_values": list(bars.values())}
