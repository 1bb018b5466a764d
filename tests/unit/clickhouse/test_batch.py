from __future__ import annotations

from datetime import UTC, datetime

from sinks.clickhouse.batch import Batcher, Consumed, Flush, content_token
from sinks.clickhouse.decode import Decoded, Item, Reject

TS = datetime(2026, 11, 29, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def msg(partition: int, offset: int, *ids: str, table: str = "token_events") -> Consumed:
    items = [Item(table, (i,), event_id=i, ts=TS) for i in ids]
    return Consumed("events", partition, offset, Decoded(items=items))


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
    assert [e for e, _ in flush.keyed_event_ids("token_events")] == ["a", "b", "a", "c"]


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
    rejected = Consumed("events", 3, 9, Decoded(rejects=[Reject("bad", b"{}")]))
    flush = Flush.of([*_slices()])
    flush.slices[0].messages.append(rejected)
    assert [(m.offset, r.reason) for m, r in flush.rejects()] == [(9, "bad")]
    assert flush.without({("events", 0)}).slices == []
