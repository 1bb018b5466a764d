"""Make the rollups equal the raw aggregation for some keys, by difference.

ClickHouse's materialized views add every inserted block to the rollups. A
flush whose insert may have been applied in part (the writer died or the
store failed mid-insert: the raw part committed, a view's part not — or the
reverse) is re-read and its missing rows inserted; this then recomputes, for
every (bucket, team, workflow, model) the flush touched, the raw totals
(``token_events FINAL``) and the rollup totals, and inserts the difference
into the rollup. Running it again is harmless: the difference is then zero. The
per-task aggregate ``task_spend_hourly`` is corrected the same way for every (hour, team,
workflow) the flush touched (:func:`tokengov.sinks.clickhouse.schema.repair_task_rollup`),
and the per-task totals ``task_totals`` for every task with a call in those or an outcome in
the flush (:func:`tokengov.sinks.clickhouse.schema.repair_task_totals`: its calls and its
outcome).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from tokengov.sinks.clickhouse.dedup import quote
from tokengov.sinks.clickhouse.schema import (
    TOKEN_KINDS,
    repair_task_rollup,
    repair_task_totals,
    task_rollup_differences,
    task_totals_differences,
)

if TYPE_CHECKING:
    from tokengov.sinks.clickhouse.store import ClickHouseStore

__all__ = ["MEASURES", "RollupKey", "reconcile", "rollup_deltas", "rollup_sql"]

log = logging.getLogger(__name__)

#: (hour, team, workflow, model) of a call.
RollupKey = tuple[datetime, str, str, str]

MEASURES: Final = (
    "calls",
    *(f"{k}_tokens" for k in TOKEN_KINDS),
    "cost_usd",
    "retries",
    "errors",
    "unpriced_calls",
    "missing_usage_calls",
)
# Summed in the rollups' own types: a sum of UInt64 wraps at 2**64, of Decimal(38, 12) at
# ~1.7·10**26, silently.
_RAW_MEASURES: Final = (
    "count()",
    *(f"sum(toInt256({k}_tokens))" for k in TOKEN_KINDS),
    "sum(toDecimal256(cost_usd, 12))",
    "countIf(attempt > 1)",
    "countIf(status != 'ok')",
    "countIf(cost_source = 'unpriced')",
    "countIf(usage_missing)",
)
_ROLLUPS: Final = (
    ("spend_hourly", "hour", "toStartOfHour(toDateTime(ts, 'UTC'))"),
    ("spend_daily", "day", "toDate(ts, 'UTC')"),
)


def _bucket(hour: datetime, bucket: str) -> datetime | date:
    return hour if bucket == "hour" else hour.date()


def _literal(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return f"toDateTime('{value:%Y-%m-%d %H:%M:%S}', 'UTC')"
    return f"toDate('{value:%Y-%m-%d}')"


def rollup_sql(
    source: str, bucket: str, bucket_expr: str, keys: Sequence[tuple[Any, str, str, str]]
) -> str:
    """Totals per key, from the raw table (``source`` = token_events) or a rollup."""
    tuples = ", ".join(
        f"({_literal(b)}, {quote(t)}, {quote(w)}, {quote(m)})" for b, t, w, m in keys
    )
    teams = ", ".join(sorted({quote(k[1]) for k in keys}))
    if source == "token_events":
        measures = ", ".join(_RAW_MEASURES)
        lo = min(k[0] for k in keys)
        hi = max(k[0] for k in keys)
        span = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
        start = lo if isinstance(lo, datetime) else datetime(lo.year, lo.month, lo.day, tzinfo=UTC)
        end = (
            hi if isinstance(hi, datetime) else datetime(hi.year, hi.month, hi.day, tzinfo=UTC)
        ) + span
        where = (
            f"team IN ({teams}) AND ts >= toDateTime64('{start:%Y-%m-%d %H:%M:%S}', 3, 'UTC') "
            f"AND ts < toDateTime64('{end:%Y-%m-%d %H:%M:%S}', 3, 'UTC')"
        )
        frm = "token_events FINAL"
        expr = bucket_expr
    else:
        measures = ", ".join(f"sum({m})" for m in MEASURES)
        where = f"team IN ({teams})"
        frm = source
        expr = bucket
    return (
        f"SELECT {expr} AS b, team, workflow, model, {measures} FROM {frm} "
        f"WHERE {where} AND ({expr}, team, workflow, model) IN ({tuples}) "
        f"GROUP BY b, team, workflow, model"
    )


def rollup_deltas(
    raw: Iterable[Sequence[Any]], rollup: Iterable[Sequence[Any]]
) -> list[tuple[Any, ...]]:
    """Rows (key…, raw − rollup per measure) for every key where they differ."""
    zero: list[Any] = [0] * len(MEASURES)
    zero[MEASURES.index("cost_usd")] = Decimal(0)
    totals: dict[tuple[Any, ...], list[Any]] = {}
    for sign, rows in ((1, raw), (-1, rollup)):
        for row in rows:
            key = tuple(row[:4])
            acc = totals.setdefault(key, list(zero))
            for i, value in enumerate(row[4:]):
                acc[i] += sign * (value if value is not None else 0)
    return [
        (*key, *values)
        for key, values in sorted(totals.items(), key=lambda kv: kv[0])
        if any(values)
    ]


def reconcile(
    store: ClickHouseStore,
    keys: Iterable[RollupKey],
    *,
    outcome_tasks: Iterable[str] = (),
    ttl_days: int | None = None,
    chunk: int = 500,
) -> int:
    """Correct ``spend_hourly``, ``spend_daily``, ``task_spend_hourly`` and ``task_totals``
    for ``keys`` (and ``task_totals`` for ``outcome_tasks``: the tasks whose outcomes the
    flush carried, which may have no call among ``keys``); returns the rows added.

    Keys older than the raw table's retention are left alone (their raw rows may be gone).
    """
    wanted = set(keys)
    if ttl_days is not None and wanted:
        horizon = max(k[0] for k in wanted) - timedelta(days=ttl_days - 1)
        wanted = {k for k in wanted if k[0] >= horizon}
    corrected = 0
    for table, bucket, expr in _ROLLUPS:
        bucketed = sorted({(_bucket(h, bucket), t, w, m) for h, t, w, m in wanted})
        for start in range(0, len(bucketed), chunk):
            part = bucketed[start : start + chunk]
            raw = store.fetch(rollup_sql("token_events", bucket, expr, part)).rows
            current = store.fetch(rollup_sql(table, bucket, expr, part)).rows
            deltas = rollup_deltas(raw, current)
            if deltas:
                store.insert(
                    table, deltas, columns=(bucket, "team", "workflow", "model", *MEASURES)
                )
                corrected += len(deltas)
    hours = sorted({(h, t, w) for h, t, w, _m in wanted})
    for start in range(0, len(hours), chunk):
        hours_part = hours[start : start + chunk]
        literals = ", ".join(f"({_literal(h)}, {quote(t)}, {quote(w)})" for h, t, w in hours_part)
        lo, hi = hours_part[0][0], hours_part[-1][0] + timedelta(hours=1)
        diff = task_rollup_differences(ttl_days, literals)
        differs = int(store.fetch(f"SELECT count() FROM ({diff})").scalar() or 0)
        if differs:
            store.command(repair_task_rollup(ttl_days, literals))
            corrected += differs
        tasks = (
            "SELECT DISTINCT task_id FROM token_events "
            f"WHERE ts >= toDateTime64('{lo:%Y-%m-%d %H:%M:%S}', 3, 'UTC') "
            f"AND ts < toDateTime64('{hi:%Y-%m-%d %H:%M:%S}', 3, 'UTC') "
            f"AND (toStartOfHour(toDateTime(ts, 'UTC')), team, workflow) IN ({literals})"
        )
        diff = task_totals_differences(ttl_days, tasks)
        differs = int(store.fetch(f"SELECT count() FROM ({diff})").scalar() or 0)
        if differs:
            store.command(repair_task_totals(ttl_days, tasks))
            corrected += differs
    outcomes = sorted(set(outcome_tasks))
    for start in range(0, len(outcomes), chunk):
        listed = ", ".join(quote(t) for t in outcomes[start : start + chunk])
        diff = task_totals_differences(ttl_days, listed)
        differs = int(store.fetch(f"SELECT count() FROM ({diff})").scalar() or 0)
        if differs:
            store.command(repair_task_totals(ttl_days, listed))
            corrected += differs
    if corrected:
        log.warning(
            "reconciled %d rollup row(s) with the raw events after a partial insert", corrected
        )
    return corrected
