from datetime import UTC, datetime, timedelta

from sinks.clickhouse.dedup import existing_ids_sql, quote, stored_in_ranges_sql, ts_ranges

T0 = datetime(2026, 11, 29, tzinfo=UTC)


def test_quote_escapes_quotes_and_backslashes():
    assert quote("it's") == "'it\\'s'"
    assert quote("a\\b") == "'a\\\\b'"


def test_ranges_split_at_gaps_wider_than_an_hour():
    stamps = [T0, T0 + timedelta(minutes=30), T0 + timedelta(hours=5), T0 + timedelta(days=40)]
    assert ts_ranges(stamps) == [
        (stamps[0], stamps[1]),
        (stamps[2], stamps[2]),
        (stamps[3], stamps[3]),
    ]
    assert ts_ranges([]) == []


def test_ranges_are_capped_by_merging_the_narrowest_gaps():
    stamps = [T0 + timedelta(hours=3 * i) for i in range(10)]
    ranges = ts_ranges(stamps, max_ranges=3)
    assert len(ranges) == 3 and ranges[0][0] == stamps[0] and ranges[-1][1] == stamps[-1]
    covered = [s for s in stamps if any(lo <= s <= hi for lo, hi in ranges)]
    assert covered == stamps


def test_lookup_sql_sends_ids_as_one_block_and_bounds_the_time():
    sql = existing_ids_sql("token_events", ["a", "b'c"], [(T0, T0 + timedelta(seconds=1))])
    assert sql.startswith("SELECT DISTINCT event_id FROM token_events WHERE (ts BETWEEN")
    assert "toDateTime64('2026-11-29 00:00:01.000000', 6, 'UTC')" in sql
    assert sql.endswith("AND event_id IN (SELECT id FROM format(TSVRaw, 'id String', $$a\nb'c$$))")


def test_ids_that_would_end_the_block_are_quoted_instead():
    sql = existing_ids_sql("task_outcomes", ["a$$b", "c"], [(T0, T0)])
    assert sql.endswith("AND event_id IN ('a$$b', 'c')")


def test_range_probe_sql():
    sql = stored_in_ranges_sql("token_events", [(T0, T0)], count=True)
    assert sql.startswith("SELECT count() FROM token_events WHERE ts BETWEEN")
    assert "DISTINCT event_id" in stored_in_ranges_sql("token_events", [(T0, T0)], count=False)
