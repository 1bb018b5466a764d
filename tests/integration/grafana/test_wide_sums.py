"""Panels that sum the raw table hold the exact totals at the contract's largest counts.

A file of its own: chdb opens one store path per process at a time, and
test_panels_sql.py keeps its populated store open for the whole module."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.grafana.test_panels_sql import (
    REPO,
    UNPRICED,
    Facts,
    Populated,
    _all,
    _panel_sql,
    _run,
    migrate_module,
    rows,
    store_module,
)
from tokengov.core.contracts import CallEvent, Outcome, TokenCounts, utcnow
from tokengov.core.policy import load_policy
from tokengov.core.pricing import price_call

pytestmark = pytest.mark.integration


def test_raw_table_sums_do_not_wrap(tmp_path: Path) -> None:
    """Two calls of one task at the contract's largest counts: the panels that sum the raw
    table (top tasks, unpriced models) hold the exact total, which a UInt64
    sum would wrap to a small number."""
    now = utcnow().replace(second=0, microsecond=0)
    big = 2**63 - 1
    store = store_module.ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    try:
        migrate_module.migrate(store)
        events = [
            CallEvent(
                event_id=f"huge-{i}",
                ts=now - timedelta(minutes=10 - i),
                team="search",
                workflow="support-triage",
                task_id="t-huge",
                agent="planner",
                step=i,
                provider="acme",
                model=UNPRICED,
                tokens=TokenCounts(input=big, output=big),
            )
            for i in range(2)
        ]
        store.insert(
            "token_events",
            [
                rows.event_row(
                    e, price_call(e, load_policy(REPO / "examples" / "policy.yaml").catalog)
                )
                for e in events
            ],
            columns=rows.TOKEN_EVENT_COLUMNS,
        )
        store.insert(
            "task_outcomes",
            [
                rows.outcome_row(
                    Outcome(
                        event_id="o-huge",
                        ts=now,
                        team="search",
                        workflow="support-triage",
                        task_id="t-huge",
                        status="success",
                    )
                )
            ],
            columns=rows.OUTCOME_COLUMNS,
        )
        populated = Populated(store, "", Facts(start=now - timedelta(hours=1), end=now))
        exact = 36_893_488_147_419_103_228  # 4 × (2**63 − 1), written out by hand
        top = _run(populated, _panel_sql("tokengov-finops", "Top tasks by cost"), _all()).dicts()
        assert [(r["task_id"], int(r["tokens"])) for r in top] == [("t-huge", exact)]
        models = _run(populated, _panel_sql("tokengov-finops", "Unpriced models"), _all()).dicts()
        assert [int(m["tokens"]) for m in models] == [exact]
    finally:
        store.close()
