"""Partition ownership and a partition's state records, on a fake clock (no broker: the
records go to an in-memory writer; tests/integration/router covers the topic)."""

from __future__ import annotations

import orjson
import pytest

from tokengov.core.policy import parse_policy
from tokengov.sinks.router.inhibit import Inhibitor
from tokengov.sinks.router.ownership import PartitionedDispatcher, partition_of
from tokengov.sinks.router.state import MemoryState, PartitionState
from tokengov.sinks.router.tree import RouteTree

BY_KIND = """
version: 1
receivers:
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
routes:
  receiver: hook
  group_by: [kind]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
"""


class Records:
    """A StateWriter keeping the latest record of each (partition, key), as compaction does."""

    def __init__(self) -> None:
        self.latest: dict[int, dict[bytes, bytes]] = {}
        self.writes = 0

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.writes += 1
        records = self.latest.setdefault(partition, {})
        if value is None:
            records.pop(key, None)
        else:
            records[key] = value


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
def make(clock):
    def make(partitions: int = 4) -> PartitionedDispatcher:
        return PartitionedDispatcher(
            RouteTree.from_policy(parse_policy(BY_KIND)),
            partitions=partitions,
            inhibitor_factory=Inhibitor,
            clock=clock,
        )

    return make


def test_a_group_is_scoped_to_its_partition(make, make_alert, clock):
    d = make()
    d.add(0, MemoryState())
    d.add(1, MemoryState())
    d.ingest(make_alert(team="search"), 0)
    d.ingest(make_alert(team="growth"), 1)
    d.ingest(make_alert(team="ads", task="t-2"), 1)
    # group_by [kind]: one group per partition holding that kind, not one in all
    key = 'routes>hook:{kind="runaway"}'
    assert sorted(d.groups) == [(0, key), (1, key)]
    clock.advance(10)
    notes = d.flush_due()
    assert sorted(len(n.alerts) for n in notes) == [1, 2]
    for n in notes:
        d.delivered(n)
    clock.advance(60)
    assert d.flush_due() == []  # each partition's notification log knows its group


def test_an_alert_of_a_partition_not_owned_is_refused(make, make_alert):
    d = make()
    d.add(2, MemoryState())
    with pytest.raises(LookupError, match="partition 3 is not owned"):
        d.ingest(make_alert(), 3)


def test_own_alerts_go_to_their_key_partition_only_when_owned(make, make_alert):
    d = make()
    team = "tokengov"
    home = partition_of(team.encode(), 4)
    d.add((home + 1) % 4, MemoryState())
    assert d.ingest(make_alert("receiver_failing", team=team)) == []  # left to the owner
    assert d.counters["own_alerts_left_to_owner"] == 1
    d.add(home, MemoryState())
    assert d.ingest(make_alert("receiver_failing", team=team)) != []
    assert [p for p, _ in d.groups] == [home]


def test_partition_of_is_the_java_clients_murmur2():
    # Kafka's own test vectors (clients/src/test/java/org/apache/kafka/common/utils/
    # UtilsTest.java, testMurmur2): murmur2 of these keys, then & 0x7fffffff % partitions
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, hashed in vectors.items():
        assert partition_of(key, 7) == (hashed & 0x7FFFFFFF) % 7, key


def test_revoked_partitions_stop_flushing_and_unkept_ones_are_forgotten(make, make_alert, clock):
    d = make()
    d.add(0, MemoryState())
    d.add(1, MemoryState())
    d.ingest(make_alert(team="a"), 0)
    d.ingest(make_alert(team="b"), 1)
    d.suspend({0, 1})
    clock.advance(10)
    assert d.flush_due() == [] and d.next_deadline() is None
    assert d.keep_only({1, 2}) == {2}  # 0 forgotten, 1 kept (resumes), 2 to read back
    assert [p for p, _ in d.groups] == [1]
    [note] = d.flush_due()
    d.keep_only({2})  # 1 given up while its notification is being delivered
    d.delivered(note)
    assert d.counters["outcomes_after_revocation_delivered"] == 1


def test_partition_state_round_trips_through_its_records(make, make_alert, clock, records):
    d = make()
    d.add(3, PartitionState(3, records))
    d.ingest(make_alert(task="t-1"), 3)
    d.ingest(make_alert(task="t-2"), 3)
    clock.advance(10)
    [first] = d.flush_due()
    d.delivered(first)
    d.ingest(make_alert(task="t-3"), 3)
    clock.advance(60)
    [pending] = d.flush_due()  # decided, not delivered: in the outbox
    assert set(records.latest) == {3}
    kinds = sorted(orjson.loads(k)[0] for k in records.latest[3])
    assert kinds == ["group", "nflog", "outbox"]

    # another router takes partition 3 over from its records
    other = make()
    resumed = other.add(3, PartitionState.from_records(3, records, records.latest[3]))
    assert [n.notification_id for n in resumed] == [pending.notification_id]
    assert [g.alerts.keys() for g in other.groups.values()] == [
        {a.fingerprint for a in pending.alerts}
    ]
    other.delivered(resumed[0])
    assert not any(orjson.loads(k)[0] == "outbox" for k in records.latest[3])  # a tombstone
    clock.advance(60)
    assert other.flush_due() == []  # nothing new: the new owner does not page again


def test_an_unreadable_record_is_skipped_and_counted(records, caplog):
    raw = {b'["group", "g"]': b"not json", b'["mystery"]': b"{}"}
    state = PartitionState.from_records(0, records, raw)
    assert state.invalid_records == 2 and state.load_groups() == []
    assert "router state partition 0: record" in caplog.text


def test_rewrite_puts_back_records_the_broker_lost(make, make_alert, clock, records):
    d = make()
    state = PartitionState(2, records)
    d.add(2, state)
    d.ingest(make_alert(task="t-1"), 2)
    clock.advance(10)
    [note] = d.flush_due()
    d.delivered(note)
    d.ingest(make_alert(task="t-2"), 2)
    clock.advance(60)
    d.flush_due()
    written = dict(records.latest[2])
    records.latest[2].clear()  # unacknowledged, then given up by the producer
    assert state.rewrite() == len(written) == 3
    assert records.latest[2] == written


def test_in_flight_counts_notifications_until_their_outcome(make, make_alert, clock):
    d = make()
    d.add(0, MemoryState())
    d.add(1, MemoryState())
    d.ingest(make_alert(team="a"), 0)
    d.ingest(make_alert(team="b"), 1)
    clock.advance(10)
    first, second = d.flush_due()
    assert d.in_flight({0}) == d.in_flight({1}) == 1 and d.in_flight({0, 1}) == 2
    assert not d.outcome.is_set()
    d.delivered(first)
    d.abandoned(second)
    assert d.in_flight({0, 1}) == 0 and d.outcome.is_set()


def test_an_unreadable_silence_in_the_snapshot_is_skipped_not_fatal(tmp_path, caplog):
    """A silence stored before matchers became Alertmanager's (a label name with '-', no
    longer valid) must not stop a router from starting: logged and skipped."""
    import sqlite3
    from datetime import timedelta

    import orjson

    from tokengov.core.contracts import utcnow
    from tokengov.sinks.router.silences import new_silence
    from tokengov.sinks.router.snapshot import LocalSnapshot

    snapshot = LocalSnapshot(tmp_path / "snapshot.sqlite")
    good = new_silence(
        ["team=search"],
        created_by="oncall",
        reason="maintenance",
        ends_at=utcnow() + timedelta(hours=1),
    )
    snapshot.save_silence(good)
    snapshot.close()
    old = good.model_dump(mode="json") | {"silence_id": "old-1", "matchers": ["team-name=x"]}
    old.pop("matcher_syntax", None)

    db = sqlite3.connect(tmp_path / "snapshot.sqlite")
    db.execute("INSERT INTO silences (silence_id, doc) VALUES (?, ?)", ("old-1", orjson.dumps(old)))
    db.commit()
    db.close()
    snapshot = LocalSnapshot(tmp_path / "snapshot.sqlite")
    with caplog.at_level("ERROR"):
        loaded = snapshot.load_silences()
    snapshot.close()
    assert [s.silence_id for s in loaded] == [good.silence_id]
    assert "silence old-1 unreadable, skipped" in caplog.text
