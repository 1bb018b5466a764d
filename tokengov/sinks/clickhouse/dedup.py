"""Which of a flush's event ids a table already holds (SQL built here, tested twice).

The lookup reads the table (``token_events`` or ``task_outcomes``) only around
the flush's timestamps: the ids' timestamps are grouped into a few ranges (a new
range after a gap of more than ``gap_ms``), which the monthly partitions, the key
(``toStartOfHour(ts)`` of token_events) and its ``ts`` min/max index turn into a
read of a few granules. Timestamps are integer milliseconds since the epoch,
floored, exactly as the ``DateTime64(3)`` columns keep them, so a range bound is
never finer than the stored value it must match.

A writer also remembers the rows it stored itself in its recent flushes
(:class:`OwnRows`: ids, timestamps and each id's CRC-32). When the count, the
CRC-32 sum and the timestamp sum of what the table holds in the flush's ranges are
exactly those of its own rows there, the table holds nothing else there, and the lookup is settled in
memory — instead of sending every id of the flush to ClickHouse because its own
previous flushes fill the same hours (the usual case while reading a backlog).
Anything else in those ranges (another writer's rows, a previous run's, a row of
its own that is gone) changes the count or the sum, and the lookup goes to
ClickHouse as before.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from tokengov.sinks.clickhouse.store import ClickHouseStore

__all__ = [
    "OwnRows",
    "crc32",
    "existing_event_ids",
    "existing_ids_sql",
    "quote",
    "stored_in_ranges_sql",
    "stored_summary_sql",
    "ts_ranges",
]

CHUNK: Final = 100_000
MAX_RANGES: Final = 16
HOUR_MS: Final = 3_600_000
#: Up to this many stored rows in the ranges are fetched and compared here; more are
#: looked up by id in ClickHouse (which sends back only the matches).
SMALL: Final = 1_000
#: The most inserts :class:`OwnRows` keeps (each lookup visits every one of them).
MAX_INSERTS: Final = 64


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ts_literal(ms: int) -> str:
    """A ``DateTime64(3)`` constant: ``ms`` milliseconds since the epoch, exactly."""
    return f"fromUnixTimestamp64Milli(toInt64({int(ms)}), 'UTC')"


#: Consecutive timestamps :func:`_gaps` skips at once when they span no gap.
_SPAN: Final = 64


def _gaps(ordered: Sequence[int], gap_ms: int) -> list[int]:
    """Every ``i`` with ``ordered[i + 1] - ordered[i] > gap_ms`` (``ordered`` ascending), in
    order: a stretch of :data:`_SPAN` steps spanning ``gap_ms`` or less holds none, so only
    the stretches that span more are read step by step (a flush's 50,000 timestamps: ~800
    comparisons instead of 50,000)."""
    last = len(ordered) - 1
    found: list[int] = []
    for start in range(0, last, _SPAN):
        end = min(start + _SPAN, last)
        if ordered[end] - ordered[start] > gap_ms:
            found += [i for i in range(start, end) if ordered[i + 1] - ordered[i] > gap_ms]
    return found


def ts_ranges(
    stamps_ms: Sequence[int], *, gap_ms: int = HOUR_MS, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]]:
    """Cover ``stamps_ms`` (ms since the epoch) with at most ``max_ranges`` closed ranges, split
    at the widest gaps larger than ``gap_ms``."""
    if not stamps_ms:
        return []
    ordered = sorted(stamps_ms)
    gaps = sorted(((ordered[i + 1] - ordered[i], i) for i in _gaps(ordered, gap_ms)), reverse=True)[
        : max_ranges - 1
    ]
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


def stored_summary_sql(table: str, ranges: Sequence[tuple[int, int]]) -> str:
    """How many rows ``table`` holds in ``ranges``, the sum of their ids' CRC-32 and the sum
    of their timestamps (ms)."""
    return (
        "SELECT count(), sum(CRC32(event_id)), sum(toInt128(toUnixTimestamp64Milli(ts))) "
        f"FROM {table} WHERE {_where_ts(ranges)}"
    )


def crc32(event_id: str) -> int:
    """The CRC-32 of an id's UTF-8 bytes: what ClickHouse's ``CRC32(event_id)`` returns."""
    return zlib.crc32(event_id.encode())


@dataclass(frozen=True, slots=True)
class _Stored:
    """The rows of one insert, by ascending timestamp; ``crc_sums[i]`` and ``ms_sums[i]``: the
    sums of the first ``i`` rows' CRC-32 and timestamps."""

    stamps: list[int]
    crc_sums: list[int]
    ms_sums: list[int]
    ids: dict[str, int]  # id → its timestamp (ms)

    def count(self, lo: int, hi: int) -> int:
        return bisect_right(self.stamps, hi) - bisect_left(self.stamps, lo)

    def summary(self, lo: int, hi: int) -> tuple[int, int, int]:
        start, end = bisect_left(self.stamps, lo), bisect_right(self.stamps, hi)
        crc = self.crc_sums[end] - self.crc_sums[start]
        return end - start, crc, self.ms_sums[end] - self.ms_sums[start]


class OwnRows:
    """The rows of one table this writer stored in its recent inserts (up to ``max_rows``
    rows and :data:`MAX_INSERTS` inserts, the oldest forgotten first): what lets a lookup skip ClickHouse (see the
    module's docstring). Only rows known to be stored belong here: add an insert's rows
    once ClickHouse acknowledged it."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._inserts: deque[_Stored] = deque()
        self._rows = 0
        self.settled = 0  # lookups settled in memory

    @property
    def rows(self) -> int:
        return self._rows

    def add(self, ids: Sequence[str], stamps_ms: Sequence[int]) -> None:
        if not ids or len(ids) > self.max_rows:
            return
        crcs = list(map(zlib.crc32, map(str.encode, ids)))  # crc32() of each, in C
        order = sorted(range(len(ids)), key=stamps_ms.__getitem__)
        stamps = list(map(stamps_ms.__getitem__, order))
        crc_sums = [0, *accumulate(map(crcs.__getitem__, order))]
        ms_sums = [0, *accumulate(stamps)]
        ids_ms = dict(zip(ids, stamps_ms, strict=True))
        self._inserts.append(_Stored(stamps, crc_sums, ms_sums, ids_ms))
        self._rows += len(ids)
        while self._rows > self.max_rows or len(self._inserts) > MAX_INSERTS:
            self._rows -= len(self._inserts.popleft().stamps)

    def summary(self, ranges: Sequence[tuple[int, int]]) -> tuple[int, int, int]:
        """(rows, sum of their ids' CRC-32, sum of their timestamps) of these rows in
        ``ranges`` (disjoint)."""
        count = crc = ms = 0
        for stored in self._inserts:
            for lo, hi in ranges:
                n, c, m = stored.summary(lo, hi)
                count += n
                crc += c
                ms += m
        return count, crc, ms

    def found(self, ids: Sequence[str], ranges: Sequence[tuple[int, int]]) -> set[str]:
        """The ids among ``ids`` that are among these rows with a timestamp in ``ranges``."""
        out: set[str] = set()
        wanted: set[str] | None = None
        for stored in self._inserts:
            if not any(stored.count(lo, hi) for lo, hi in ranges):
                continue  # none of this insert's rows in the ranges: nothing to compare
            if wanted is None:
                wanted = set(ids)
            for event_id in wanted & stored.ids.keys():
                stamp = stored.ids[event_id]
                if any(lo <= stamp <= hi for lo, hi in ranges):
                    out.add(event_id)
        return out


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
    own: OwnRows | None = None,
) -> set[str]:
    """The ids among ``ids`` (with their timestamps, ms since the epoch as the writer stores
    them: :func:`tokengov.sinks.clickhouse.encode.epoch_ms`) that ``table`` already holds.

    First counts what the table holds in the flush's time ranges: nothing there (the
    common case for fresh events) settles it; a few rows there (a late event) are fetched
    and compared here; more (a replay, or partitions read at different paces) are looked
    up by id in ClickHouse. With ``own`` (the rows this writer stored itself) the first
    query also sums the stored ids' CRC-32: exactly its own rows there settle it in memory.
    """
    if not ids:
        return set()
    ranges = ts_ranges(stamps_ms)
    if own is not None and own.rows:
        row = store.fetch(stored_summary_sql(table, ranges)).rows[0]
        stored = int(row[0] or 0)
        if stored and (stored, int(row[1] or 0), int(row[2] or 0)) == own.summary(ranges):
            own.settled += 1
            return own.found(ids, ranges)
    else:
        stored = int(store.fetch(stored_in_ranges_sql(table, ranges, count=True)).scalar() or 0)
    if stored == 0:
        return set()
    if stored <= SMALL:
        rows = store.fetch(stored_in_ranges_sql(table, ranges, count=False)).rows
        return set(ids) & {str(r[0]) for r in rows}
    found: set[str] = set()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        sql = existing_ids_sql(table, part, ts_ranges(stamps_ms[start : start + chunk]))
        found.update(store.fetch_lines(sql, settings={"max_query_size": len(sql) + 1024}))
    return found
