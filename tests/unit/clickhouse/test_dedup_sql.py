import calendar
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from tokengov.sinks.clickhouse.dedup import existing_ids_sql, quote, stored_in_ranges_sql, ts_ranges
from tokengov.sinks.clickhouse.encode import epoch_ms

T0 = datetime(2026, 11, 29, tzinfo=UTC)
MS = epoch_ms(T0)
HOUR = 3_600_000


def test_quote_escapes_quotes_and_backslashes():
    assert quote("it's") == "'it\\'s'"
    assert quote("a\\b") == "'a\\\\b'"


def test_epoch_ms_floors_to_the_stored_millisecond():
    assert epoch_ms(T0) == calendar.timegm(T0.timetuple()) * 1000
    assert epoch_ms(T0 + timedelta(microseconds=1999)) == MS + 1
    assert epoch_ms(T0 - timedelta(microseconds=1)) == MS - 1  # floored, not truncated
    # exact where float arithmetic is not: every whole millisecond of a second
    assert [epoch_ms(T0 + timedelta(milliseconds=i)) - MS for i in range(1000)] == list(range(1000))


def test_ranges_split_at_gaps_wider_than_an_hour():
    stamps = [MS, MS + HOUR // 2, MS + 5 * HOUR, MS + 40 * 24 * HOUR]
    assert ts_ranges(stamps) == [
        (stamps[0], stamps[1]),
        (stamps[2], stamps[2]),
        (stamps[3], stamps[3]),
    ]
    assert ts_ranges([]) == []


def test_ranges_are_capped_by_merging_the_narrowest_gaps():
    stamps = [MS + 3 * HOUR * i for i in range(10)]
    ranges = ts_ranges(stamps, max_ranges=3)
    assert len(ranges) == 3 and ranges[0][0] == stamps[0] and ranges[-1][1] == stamps[-1]
    covered = [s for s in stamps if any(lo <= s <= hi for lo, hi in ranges)]
    assert covered == stamps


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(-(10**13), 10**13) | st.integers(0, 3 * HOUR), max_size=400)
    | st.lists(st.integers(0, 3), max_size=400)
    | st.lists(st.integers(0, 200), min_size=60, max_size=400).map(
        lambda steps: [MS + sum(steps[:i]) * 60_000 for i in range(len(steps))]
    ),
    st.sampled_from([0, 1, 2, HOUR // 2, HOUR, 3 * HOUR]),
    st.integers(1, 20),
)
def test_ranges_are_those_of_every_gap_read_one_by_one(
    stamps: list[int], gap: int, max_ranges: int
) -> None:
    """The ranges of the definition: every gap between consecutive sorted timestamps wider
    than ``gap_ms``, the ``max_ranges - 1`` widest of them (ties: the later) cut."""
    if not stamps:
        assert ts_ranges(stamps, gap_ms=gap, max_ranges=max_ranges) == []
        return
    ordered = sorted(stamps)
    widest = sorted(
        ((b - a, i) for i, (a, b) in enumerate(pairwise(ordered)) if b - a > gap),
        reverse=True,
    )[: max_ranges - 1]
    bounds = [-1, *sorted(i for _, i in widest), len(ordered) - 1]
    expected = [(ordered[lo + 1], ordered[hi]) for lo, hi in pairwise(bounds)]
    assert ts_ranges(stamps, gap_ms=gap, max_ranges=max_ranges) == expected


def test_lookup_sql_sends_ids_as_one_block_and_bounds_the_time():
    sql = existing_ids_sql("token_events", ["a", "b'c", "d\\e"], [(MS, MS + 1000)])
    assert sql.startswith("SELECT DISTINCT event_id FROM token_events WHERE (ts BETWEEN")
    assert f"fromUnixTimestamp64Milli(toInt64({MS + 1000}), 'UTC')" in sql
    assert sql.endswith(
        "AND event_id IN (SELECT id FROM format(TSVRaw, 'id String', 'a\nb\\'c\nd\\\\e'))"
    )


def test_range_probe_sql():
    sql = stored_in_ranges_sql("token_events", [(MS, MS)], count=True)
    assert sql.startswith("SELECT count() FROM token_events WHERE ts BETWEEN")
    assert "DISTINCT event_id" in stored_in_ranges_sql("token_events", [(MS, MS)], count=False)


def test_own_rows_found_only_in_the_ranges_over_many_inserts():
    """OwnRows.found visits only inserts with rows in the ranges; the answer is the ids of
    any insert whose timestamp is within them."""
    from tokengov.sinks.clickhouse.dedup import OwnRows

    own = OwnRows(max_rows=1_000)
    for n in range(5):  # inserts an hour apart, ten rows each
        ids = [f"{n}-{i}" for i in range(10)]
        own.add(ids, [n * 3_600_000 + i for i in range(10)])
    asked = ["0-1", "2-3", "2-9", "4-0", "new"]
    assert own.found(asked, [(2 * 3_600_000, 2 * 3_600_000 + 5)]) == {"2-3"}
    assert own.found(asked, [(0, 1), (4 * 3_600_000, 4 * 3_600_000)]) == {"0-1", "4-0"}
    assert own.found(asked, [(10, 3_600_000 - 1)]) == set()
