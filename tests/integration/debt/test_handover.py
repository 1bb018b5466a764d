"""Token debt's stage 1 changing hands, against the real (Tansu) broker: a worker that gives
its events partitions up hands their state over, the next owner restores it and reads the
events again as duplicates; the findings are those of one engine that saw every event once.
And the horizon's stored history (``WorkerContext.debt_history``) goes to the partition of
each event's task, where reading the same events again from the topic changes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import faust
import pytest
from confluent_kafka import Producer

from tokengov.app.debt_fleet import fleet_policy_yaml, scripted_fleet
from tokengov.core.calls import from_model
from tokengov.core.contracts import encode_events
from tokengov.core.kafka import read_to_end
from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.core.worker_context import PolicyHolder, WorkerContext
from tokengov.streams.debt.engine import DebtEngine, DebtJudge
from tokengov.streams.debt.role import DebtRole, register

pytestmark = pytest.mark.integration


def _role(bootstrap: str, topics: Topics, tmp_path: Path, history: tuple = ()) -> DebtRole:
    policy = parse_policy(fleet_policy_yaml())
    ctx = WorkerContext(
        Settings(kafka_bootstrap=bootstrap, data_dir=tmp_path),
        PolicyHolder(policy),
        topics,
        debt_history=history,
    )
    # register() declares the agents and the timer; nothing here starts the app
    app = faust.App(f"debt-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}")
    return register(app, ctx)


def _judged(role: DebtRole, at) -> list:
    judge = DebtJudge(role.ctx.policy)
    for p, tallies in role.tallies.items():
        for share in tallies.take():
            judge.apply(p, share)
    return judge.flush(at).findings


@pytest.mark.asyncio
async def test_a_handed_over_partition_gives_the_findings_of_one_engine(
    bootstrap: str, topic_names: Topics, tmp_path: Path
) -> None:
    run = scripted_fleet(tasks_per_pattern=6, prompt_days=0)
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for event in run.events:
        producer.produce(
            topic_names.events, key=event.task_id.encode(), value=encode_events([event])
        )
    assert producer.flush(15) == 0
    records = list(read_to_end(bootstrap, topic_names.events))
    assert len(records) == len(run.events)

    first = _role(bootstrap, topic_names, tmp_path)
    everything = set(range(first.partitions))
    await first.on_assigned(everything, everything)
    for record in records:
        await first.handle_event(record)
    assert first.stats.observed_calls == sum(1 for e in run.events if e.kind == "call")
    await first.on_revoked(everything)  # shares, then each partition's handover

    second = _role(bootstrap, topic_names, tmp_path)
    await second.on_assigned(everything, everything)
    for record in records:  # resumed at the start: everything is read again
        await second.handle_event(record)
    assert second.handovers_restored == len({r.partition for r in records})
    assert second.stats.duplicates == len(records)

    at = max(e.ts for e in run.events) + timedelta(minutes=1)
    one = DebtEngine(parse_policy(fleet_policy_yaml()))
    for event in run.events:
        one.observe(from_model(event))
    expected = one.flush(at).findings
    assert expected, "the scripted fleet has wasteful patterns"
    assert _judged(second, at) == expected
    first.publisher.close()
    second.publisher.close()


@pytest.mark.asyncio
async def test_history_goes_to_its_partition_and_the_topic_replay_changes_nothing(
    bootstrap: str, topic_names: Topics, tmp_path: Path
) -> None:
    run = scripted_fleet(tasks_per_pattern=3, prompt_days=0)
    role = _role(bootstrap, topic_names, tmp_path, history=tuple(run.events))
    everything = set(range(role.partitions))
    await role.on_assigned(everything, everything)
    for p in everything:
        await role.partition(p, 0)
    calls = sum(1 for e in run.events if e.kind == "call")
    assert (role.stats.observed_calls, role.stats.duplicates) == (calls, 0)

    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for event in run.events:
        producer.produce(
            topic_names.events, key=event.task_id.encode(), value=encode_events([event])
        )
    assert producer.flush(15) == 0
    for record in read_to_end(bootstrap, topic_names.events):
        await role.handle_event(record)
    assert (role.stats.observed_calls, role.stats.duplicates) == (calls, len(run.events))
    role.publisher.close()
