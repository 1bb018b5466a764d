"""What the worker reads from the store when its state topics are gone (real chdb): the month's
spend, this month's alert fingerprints, the decisions still in force, the debt horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tokengov.app.cli.worker_recovery import read_debt_history, read_seed
from tokengov.core.contracts import CallEvent, Outcome
from tokengov.core.recovery import SpendRow
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.store import ClickHouseStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def ts(delta: timedelta) -> str:
    return (NOW + delta).strftime("'%Y-%m-%d %H:%M:%S.%f'")[:-4] + "'"


def decision(key: str, action: str, issued: timedelta, expires: timedelta | None) -> str:
    expiry = "NULL" if expires is None else ts(expires)
    return (
        "INSERT INTO decisions (scope, key, action, reason, issued_at, expires_at) VALUES "
        f"('task', '{key}', '{action}', 'why', {ts(issued)}, {expiry})"
    )


def call_row(event_id: str, delta: timedelta, team: str, usd: str, tokens: int) -> str:
    return (
        "INSERT INTO token_events (event_id, ts, team, workflow, task_id, agent, provider, model,"
        " input_tokens, output_tokens, attempt, status, cost_usd, schema_version) VALUES "
        f"('{event_id}', {ts(delta)}, '{team}', 'wf', 't-{event_id}', 'planner', 'p', 'm', "
        f"{tokens}, 10, 1, 'ok', {usd}, 1)"
    )


def test_read_seed_and_debt_history(tmp_path: Path) -> None:
    with ClickHouseStore(f"chdb://{tmp_path / 'ch'}") as store:
        migrate(store)
        hour = timedelta(hours=1)
        for sql in (
            call_row("a", -hour, "search", "1.5", 1000),
            call_row("b", -2 * hour, "search", "2.25", 2000),
            call_row("c", -40 * 24 * hour, "search", "99", 1),  # last month: not this month's
            # paused, still in force
            decision("paused", "pause", -hour, 9 * hour),
            # paused, then lifted by a human
            decision("lifted", "pause", -2 * hour, 9 * hour),
            decision("lifted", "proceed", -hour, None),
            # expired
            decision("expired", "throttle", -3 * hour, -hour),
            # no expiry at all: in force
            decision("forever", "fallback", -hour, None),
            "INSERT INTO alerts (alert_id, fingerprint, kind, severity, status, team, summary,"
            f" evidence, starts_at) VALUES ('1', 'fp-now', 'runaway', 'warning', 'firing', "
            f"'search', 's', '{{}}', {ts(-hour)}), ('2', 'fp-old', 'runaway', 'warning', "
            f"'firing', 'search', 's', '{{}}', {ts(-40 * 24 * hour)})",
            "INSERT INTO task_outcomes (event_id, ts, team, workflow, task_id, status, "
            f"schema_version) VALUES ('o', {ts(-hour)}, 'search', 'wf', 't-a', 'success', 1)",
        ):
            store.command(sql)

        seed = read_seed(store, NOW)
        assert seed.spend == (SpendRow(NOW.date(), "search", "wf", 2, 3000 + 20, Decimal("3.75")),)
        assert seed.fired == frozenset({"fp-now"})
        assert sorted((d.key, d.action) for d in seed.decisions) == [
            ("forever", "fallback"),
            ("paused", "pause"),
        ]
        paused = next(d for d in seed.decisions if d.key == "paused")
        assert paused.expires_at == NOW + 9 * hour and paused.topic_key == "task:paused"

        history = read_debt_history(store, NOW - 90 * timedelta(minutes=1))
        assert [(type(e), e.event_id) for e in history] == [
            (CallEvent, "a"),
            (Outcome, "o"),
        ]
        first = history[0]
        assert isinstance(first, CallEvent)
        assert first.tokens.input == 1000 and first.cost_usd == Decimal("1.5")
