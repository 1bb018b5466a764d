"""Which of a flush's event ids a table already holds (SQL built here, tested twice).

The lookup reads the table (``token_events`` or ``task_outcomes``) only around
the flush's timestamps: the ids' timestamps are grouped into a few ranges (a new
range after a gap of more than ``gap_ms``), which the monthly partitions, the key
(``toStartOfHour(ts)`` of token_events) and its ``ts`` min/max index turn into a
read of a few granules. Timestamps are integer milliseconds since the epoch,
floored, exactly as the ``DateTime64(3)`` columns keep them, so a range bound is
never finer than the stored value it must match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from tokengov.sinks.clickhouse.store import ClickHouseStore

__all__ = [
    "existing_event_ids",
    "existing_ids_sql",
    "quote",
    "stored_in_ranges_sql",
    "ts_ranges",
]

CHUNK: Final = 100_000
MAX_RANGES: Final = 16
HOUR_MS: Final = 3_600_000
#: Up to this many stored rows in the ranges are fetched and compared here; more are
#: looked up by id in ClickHouse (which sends back only the matches).
SMALL: Final = 1_000


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ts_literal(ms: int) -> str:
    """A ``DateTime64(3)`` constant: ``ms`` milliseconds since the epoch, exactly."""
    return f"fromUnixTimestamp64Milli(toInt64({int(ms)}), 'UTC')"


def ts_ranges(
    stamps_ms: Sequence[int], *, gap_ms: int = HOUR_MS, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]]:
    """Cover ``stamps_ms`` (ms since the epoch) with at most ``max_ranges`` closed ranges, split
    at the widest gaps larger than ``gap_ms``."""
    if not stamps_ms:
        return []
    ordered = sorted(stamps_ms)
    gaps = sorted(
        (
            (ordered[i + 1] - ordered[i], i)
            for i in range(len(ordered) - 1)
            if ordered[i + 1] - ordered[i] > gap_ms
        ),
        reverse=True,
    )[: max_ranges - 1]
    cuts = sorted(i for _, i in gaps)
    ranges: list[tuple[int, int]] = []
    start = 0
    for cut in cuts:
        ranges.append((ordered[start], ordered[cut]))
        start = cut + 1
    ranges.append((ordered[start], ordered[-1]))
    return ranges


def _where_ts(ranges: Sequence[tuple[int, int]]) -> str:
    return " OR ".join(f"ts BETWEEN {_ts_literal(lo)} AND {_ts_literal(hi)}" for lo, hi in ranges)


def stored_in_ranges_sql(table: str, ranges: Sequence[tuple[int, int]], *, count: bool) -> str:
    what = "count()" if count else "DISTINCT event_id"
    return f"SELECT {what} FROM {table} WHERE {_where_ts(ranges)}"


def existing_ids_sql(table: str, ids: Sequence[str], ranges: Sequence[tuple[int, int]]) -> str:
    """The ids travel as one TSV block in a string literal, read by ``format()`` — parsed by
    ClickHouse's TSV reader, several times cheaper than an IN list of literals or an array
    parameter. Event ids hold no control characters (the contract refuses them), so a
    newline separates them."""
    block = quote("\n".join(ids))
    return (
        f"SELECT DISTINCT event_id FROM {table} WHERE ({_where_ts(ranges)}) "
        f"AND event_id IN (SELECT id FROM format(TSVRaw, 'id String', {block}))"
    )


def existing_event_ids(
    store: ClickHouseStore,
    table: str,
    ids: Sequence[str],
    stamps_ms: Sequence[int],
    *,
    chunk: int = CHUNK,
) -> set[str]:
    """The ids among ``ids`` (with their timestamps, ms since the epoch as the writer stores
    them: :func:`tokengov.sinks.clickhouse.encode.epoch_ms`) that ``table`` already holds.

    First counts what the table holds in the flush's time ranges: nothing there (the
    common case for fresh events) settles it; a few rows there (a late event) are fetched
    and compared here; more (a replay, or partitions read at different paces) are looked
    up by id in ClickHouse.
    """
    if not ids:
        return set()
    wanted = set(ids)
    ranges = ts_ranges(stamps_ms)
    stored = int(store.fetch(stored_in_ranges_sql(table, ranges, count=True)).scalar() or 0)
    if stored == 0:
        return set()
    if stored <= SMALL:
        rows = store.fetch(stored_in_ranges_sql(table, ranges, count=False)).rows
        return wanted & {str(r[0]) for r in rows}
    found: set[str] = set()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        sql = existing_ids_sql(table, part, ts_ranges(stamps_ms[start : start + chunk]))
        found.update(store.fetch_lines(sql, settings={"max_query_size": len(sql) + 1024}))
    return found
