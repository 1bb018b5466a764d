from datetime import UTC, datetime
from decimal import Decimal

from tokengov.sinks.clickhouse.reconcile import MEASURES, rollup_deltas, rollup_sql

H = datetime(2026, 11, 29, 5, tzinfo=UTC)


def _row(key, calls, cost):
    values = [0] * len(MEASURES)
    values[0] = calls
    values[MEASURES.index("cost_usd")] = Decimal(cost)
    return (*key, *values)


def test_deltas_are_raw_minus_rollup_where_they_differ():
    a, b, c = (H, "t", "w", "m1"), (H, "t", "w", "m2"), (H, "t", "w", "m3")
    raw = [_row(a, 5, "1.5"), _row(b, 2, "0.2")]
    rollup = [_row(a, 5, "1.5"), _row(b, 3, "0.3"), _row(c, 1, "0.1")]
    deltas = rollup_deltas(raw, rollup)
    assert deltas == [_row(b, -1, "-0.1"), _row(c, -1, "-0.1")]
    assert rollup_deltas(raw, raw) == []


def test_sql_reads_raw_deduplicated_and_rollups_summed():
    keys = [(H, "team'x", "w", "m")]
    raw = rollup_sql("token_events", "hour", "toStartOfHour(toDateTime(ts, 'UTC'))", keys)
    assert "FROM token_events FINAL" in raw and "team IN ('team\\'x')" in raw
    assert "toDateTime('2026-11-29 05:00:00', 'UTC')" in raw
    assert "ts < toDateTime64('2026-11-29 06:00:00', 3, 'UTC')" in raw
    rollup = rollup_sql("spend_daily", "day", "toDate(ts, 'UTC')", [(H.date(), "t", "w", "m")])
    assert "sum(calls)" in rollup and "FROM spend_daily" in rollup
    assert "toDate('2026-11-29')" in rollup
