"""The debt role on a real Faust app against the real (Tansu) broker: events in as single
messages and batch envelopes (with duplicates), findings and alerts out on their topics, and
the offsets it has read committed without Faust's commit timer."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import faust
import orjson
import pytest
from confluent_kafka import Producer

from tokengov.app.debt_fleet import fleet_policy_yaml, scripted_fleet
from tokengov.core.contracts import Alert, encode_events
from tokengov.core.kafka import end_offsets, read_to_end
from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.core.worker_context import PolicyHolder, WorkerContext
from tokengov.streams.debt.findings import Finding
from tokengov.streams.debt.role import register

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, run_events: list) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    by_task: dict[str, list] = {}
    for event in run_events:
        by_task.setdefault(event.task_id, []).append(event)
    messages = 0
    for i, (task, events) in enumerate(sorted(by_task.items())):
        if i % 2:  # half the tasks as one batch envelope, half as single events
            producer.produce(topic, key=task.encode(), value=encode_events(events))
            messages += 1
        else:
            for event in events:
                producer.produce(topic, key=task.encode(), value=encode_events([event]))
                messages += 1
        if i % 5 == 0:  # redelivery: the same events again count once
            producer.produce(topic, key=task.encode(), value=encode_events(events))
            messages += 1
        producer.poll(0)
    producer.produce(topic, key=b"junk", value=b"{not json")
    assert producer.flush(15) == 0
    return messages


def _read_all(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    return [r.value for r in read_to_end(bootstrap, topic, range(partitions)) if r.value]


@pytest.mark.asyncio
async def test_role_publishes_findings_and_alerts(
    bootstrap: str, topic_names: Topics, tmp_path: Path
) -> None:
    policy_text = fleet_policy_yaml() + "debt: {flush_interval: 1s, alert_usd_per_day: 3}\n"
    (tmp_path / "policy.yaml").write_text(policy_text)
    ctx = WorkerContext(
        Settings(kafka_bootstrap=bootstrap, data_dir=tmp_path),
        PolicyHolder(parse_policy(policy_text), tmp_path / "policy.yaml"),
        topic_names,
    )
    run = scripted_fleet(tasks_per_pattern=25, prompt_days=0)
    _produce(bootstrap, topic_names.events, run.events)

    app = faust.App(
        f"debt-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        broker_session_timeout=6,
        broker_rebalance_timeout=6,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        datadir=str(tmp_path / "faust"),
        # Faust's own commit timer never fires in this test: the role commits what it acked
        broker_commit_interval=3600,
    )
    role = register(app, ctx)
    wasteful = {p.wasteful for p in run.patterns if p.detector != "system_prompt_growth"}
    calls = sum(1 for e in run.events if e.kind == "call")
    ends = await asyncio.to_thread(end_offsets, bootstrap, topic_names.events)
    committed: dict[int, int] = {}
    await app.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # counted when sent: wait for them on the topic too
            if committed != ends:
                committed = await asyncio.to_thread(role._committed, sorted(ends))
            if (
                committed == ends
                and role.stats.observed_calls >= calls
                and role.findings_sent >= len(wasteful)
            ):
                on_topic = await asyncio.to_thread(_read_all, bootstrap, topic_names.findings, 2)
                alerts_on_topic = await asyncio.to_thread(
                    _read_all, bootstrap, topic_names.alerts, 4
                )
                if {
                    Finding.model_validate_json(raw).workflow for raw in on_topic
                } >= wasteful and len(alerts_on_topic) >= role.alerts_sent:
                    break
            await asyncio.sleep(0.2)
    finally:
        await app.stop()

    assert committed == ends  # every message read and committed while the worker runs
    assert role.stats.observed_calls == calls  # duplicates counted once
    assert role.stats.duplicates > 0
    assert role.undecodable == 1
    findings = [
        Finding.model_validate_json(raw) for raw in _read_all(bootstrap, topic_names.findings, 2)
    ]
    assert {f.workflow for f in findings} == wasteful
    alerts = [
        Alert.model_validate(orjson.loads(raw))
        for raw in _read_all(bootstrap, topic_names.alerts, 4)
    ]
    assert alerts and all(a.kind == "debt_finding" for a in alerts)
    assert {a.workflow for a in alerts} <= wasteful
