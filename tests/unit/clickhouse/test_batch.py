from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokengov.sinks.clickhouse.batch import Batcher, Consumed, Flush, content_token
from tokengov.sinks.clickhouse.decode import Decoded, Item, Reject
from tokengov.sinks.clickhouse.encode import Encoded, epoch_ms, summarize

TS = datetime(2026, 11, 29, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def msg(partition: int, offset: int, *ids: str, table: str = "token_events") -> Consumed:
    items = [Item(table, (i,), event_id=i, ts=TS) for i in ids]
    return Consumed.of_decoded("events", partition, offset, Decoded(items=items))


def test_due_by_rows_or_by_age():
    clock = Clock()
    batcher = Batcher(max_rows=3, max_delay_s=1.0, clock=clock)
    assert not batcher.due()
    batcher.add(msg(0, 0, "a"))
    assert not batcher.due()
    clock.now += 1.0
    assert batcher.due()
    flush = batcher.take()
    assert flush is not None and flush.rows == 1 and not batcher.due() and batcher.rows == 0
    batcher.add(msg(0, 1, "b", "c", "d"))
    assert batcher.due()


def test_take_orders_partitions_and_commits_past_the_end():
    batcher = Batcher(max_rows=10, max_delay_s=1.0, clock=Clock())
    for p, o in ((2, 5), (0, 7), (2, 6), (0, 8)):
        batcher.add(msg(p, o, f"{p}-{o}"))
    flush = batcher.take()
    assert flush is not None
    assert [(s.partition, s.start, s.end) for s in flush.slices] == [(0, 7, 8), (2, 5, 6)]
    assert flush.commit_offsets() == [("events", 0, 9), ("events", 2, 7)]
    assert [(p.partition, p.start_offset, p.end_offset) for p in flush.plans()] == [
        (0, 7, 8),
        (2, 5, 6),
    ]
    assert batcher.take() is None


def test_revoke_forgets_a_partition():
    batcher = Batcher(max_rows=10, max_delay_s=1.0, clock=Clock())
    batcher.add(msg(0, 0, "a"))
    batcher.add(msg(1, 0, "b", "c"))
    batcher.revoke([("events", 1)])
    assert batcher.rows == 1 and batcher.messages == 1
    flush = batcher.take()
    assert flush is not None and [s.partition for s in flush.slices] == [0]


def test_stored_and_repeated_ids_are_left_out():
    flush = Flush.of([*_slices()])
    flush.skipped_event_ids = frozenset({"b"})
    rows = [item.event_id for _, item in flush.rows_by_table()["token_events"]]
    assert rows == ["a", "c"]  # b is stored; the second a repeats the first
    ids, stamps = flush.keyed_event_ids("token_events")
    assert ids == ["a", "b", "a", "c"] and stamps == [epoch_ms(TS)] * 4
    assert [origin for origin, _ in flush.rows_by_table()["token_events"]] == [
        ("events", 0, 0),
        ("events", 0, 1),
    ]


def test_a_run_of_messages_counts_each_message_and_keeps_their_offsets():
    decoded = [
        Decoded(items=[Item("token_events", ("a",), "a", TS)]),
        Decoded(rejects=[Reject("bad", b"{}")], invalid_events=2),
        Decoded(items=[Item("alerts", ("x",)), Item("token_events", ("b",), "b", TS)]),
    ]
    encoded, _rows = summarize(decoded)
    run = Consumed("events", 0, [4, 7, 9], [b"1", b"2", b"3"], encoded)
    batcher = Batcher(max_rows=10, max_delay_s=1.0, clock=Clock())
    batcher.add(run)
    assert (batcher.rows, batcher.messages) == (3, 3)
    flush = batcher.take()
    assert flush is not None and (flush.slices[0].start, flush.slices[0].end) == (4, 9)
    assert flush.commit_offsets() == [("events", 0, 10)]
    assert [(origin, r.reason) for origin, r in flush.rejects()] == [(("events", 0, 7), "bad")]
    assert flush.tables() == ["alerts", "token_events"]
    assert flush.rows_of("token_events") == 2 and flush.native("token_events") is None
    assert not flush.decoded
    with pytest.raises(RuntimeError, match="not decoded"):
        flush.rows_by_table()
    flush.decode(lambda _topic, values: decoded if values == [b"1", b"2", b"3"] else [])
    assert [i.event_id for _, i in flush.rows_by_table()["token_events"]] == ["a", "b"]
    assert [origin for origin, _ in flush.rows_by_table()["token_events"]] == [
        ("events", 0, 4),
        ("events", 0, 9),
    ]


def test_native_body_joins_the_runs_blocks_in_order():
    def run(offset: int, block: bytes) -> Consumed:
        encoded = Encoded(rows={"token_events": 1}, blocks={"token_events": block})
        return Consumed("events", 0, [offset], [b"v"], encoded)

    batcher = Batcher(max_rows=10, max_delay_s=1.0, clock=Clock())
    batcher.add(run(0, b"AA"))
    batcher.add(run(1, b"BB"))
    flush = batcher.take()
    assert flush is not None and flush.native("token_events") == b"AABB"


def _slices():
    batcher = Batcher(max_rows=10, max_delay_s=1.0, clock=Clock())
    batcher.add(msg(0, 0, "a", "b"))
    batcher.add(msg(0, 1, "a", "c"))
    flush = batcher.take()
    assert flush is not None
    return flush.slices


def test_content_token_follows_ranges_and_exclusions():
    flush = Flush.of([*_slices()])
    same = Flush.of([*_slices()])
    assert content_token("token_events", flush) == content_token("token_events", same)
    assert content_token("token_events", flush) != content_token("task_outcomes", flush)
    same.skipped_event_ids = frozenset({"b"})
    assert content_token("token_events", flush) != content_token("token_events", same)
    shorter = Flush.of([*_slices()])
    shorter.slices[0].messages.pop()
    assert content_token("token_events", flush) != content_token("token_events", shorter)


def test_rejects_and_without():
    rejected = Consumed.of_decoded("events", 3, 9, Decoded(rejects=[Reject("bad", b"{}")]))
    flush = Flush.of([*_slices()])
    flush.slices[0].messages.append(rejected)
    assert [(origin[2], r.reason) for origin, r in flush.rejects()] == [(9, "bad")]
    assert flush.without({("events", 0)}).slices == []
