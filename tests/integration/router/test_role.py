"""The router role on a real Faust worker, a real broker, real chdb and a real webhook
server: delivery, dead letters, silences, and no second page after a restart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import clickhouse_connect
import orjson
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from tests.integration.router.conftest import check_signature, eventually, read_topic
from tokengov.app.cli.main import app as cli_app
from tokengov.app.router_app import router_app
from tokengov.core.contracts import Alert
from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.worker_context import PolicyHolder, WorkerContext
from tokengov.sinks.router.kafka import SilenceTopic
from tokengov.sinks.router.silences import new_silence

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POLICY = """
version: 1
teams:
  search: {{owner: s@example.com, receiver: search-hook}}
receivers:
  console: {{type: log}}
  search-hook: {{type: webhook, url: "{url}/search", secret_env: ROUTER_TEST_SECRET}}
routes:
  receiver: console
  group_by: [team, kind, task_id]
  group_wait: 100ms
  group_interval: 500ms
  repeat_interval: 1h
"""


T0 = datetime.now(UTC) - timedelta(minutes=1)


def alert(task: str, status: str = "firing") -> Alert:
    return Alert(
        alert_id=f"a-{task}-{status}",
        fingerprint=f"runaway|search|wf|{task}|max_calls",
        kind="runaway",
        severity="critical",
        status=status,
        team="search",
        workflow="wf",
        task_id=task,
        summary=f"{task} ran away",
        evidence={"observed": 9, "limit": 8},
        starts_at=T0,
        ends_at=T0 + timedelta(seconds=30) if status == "resolved" else None,
    )


def produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value, key=b"search")
    assert producer.flush(10) == 0


async def test_router_role_end_to_end(
    bootstrap, topic_names, data_dir, http_capture, chdb_dsn, monkeypatch
):
    monkeypatch.setenv("ROUTER_TEST_SECRET", "role-secret")
    settings = Settings(kafka_bootstrap=bootstrap, data_dir=data_dir, clickhouse_url=chdb_dsn)
    ctx = WorkerContext(
        settings, PolicyHolder(parse_policy(POLICY.format(url=http_capture.url))), topic_names
    )

    # --- first worker
    app, runtime = router_app(ctx, app_id=f"router-{uuid.uuid4().hex[:8]}")
    await app.start()
    try:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        silence = new_silence(
            ["task_id=t-2"],
            created_by="alice",
            reason="known incident",
            ends_at=datetime.now(UTC) + timedelta(hours=1),
        )
        SilenceTopic(bootstrap, topic_names.silences).publish(silence)
        await eventually(
            lambda: runtime.router.dispatcher.silences.get(silence.silence_id) is not None,
            what="the router to follow the silence",
        )
        produce(
            bootstrap,
            topic_names.alerts,
            alert("t-1").model_dump_json().encode(),
            b'{"kind": "runaway", "summary": "no fingerprint"}',
            alert("t-2").model_dump_json().encode(),
            alert("t-3").model_dump_json().encode(),
        )
        received = await http_capture.wait_for(2, path="/search", timeout_s=30)
        tasks = sorted(orjson.loads(r.body)["alerts"][0]["task_id"] for r in received)
        assert tasks == ["t-1", "t-3"]  # t-2 is silenced; t-1, t-3 reach the team's receiver
        for r in received:
            check_signature(r.body, r.headers["X-Tokengov-Signature"], "role-secret")
        await eventually(
            lambda: all(g.has_flushed for g in runtime.router.dispatcher.groups.values()),
            what="every group flushed",
        )
        assert runtime.router.dispatcher.counters["alerts_silenced"] >= 1
        [dead] = read_topic(bootstrap, topic_names.deadletter, 1)
        record = DeadLetterRecord.model_validate_json(dead.value())
        assert record.stage == "router" and record.raw_is == "message"
        assert record.reason.startswith("invalid alert: fingerprint: required")
        assert record.source_topic == topic_names.alerts and record.source_offset is not None
        assert record.raw() == b'{"kind": "runaway", "summary": "no fingerprint"}'
        assert record.key() == dead.key()
    finally:
        await app.stop()

    # the CLI lists the router's dead letter and shows its original bytes
    prefix = topic_names.alerts.removesuffix("tokengov.alerts")
    where = ["--bootstrap", bootstrap, "--topic-prefix", prefix]
    listed = CliRunner().invoke(cli_app, ["deadletter", "list", "--json", *where])
    assert listed.exit_code == 0, listed.output
    (doc,) = map(orjson.loads, listed.stdout.splitlines())
    assert doc["stage"] == "router" and doc["reason"] == record.reason
    shown = CliRunner().invoke(cli_app, ["deadletter", "show", doc["id"], "--raw", *where])
    assert shown.exit_code == 0 and shown.stdout_bytes == record.raw()

    # --- a second worker on the same data dir, in a new consumer group: it reads every
    # alert again from the start, and pages nobody twice.
    before = len(http_capture.received)
    app, runtime = router_app(ctx, app_id=f"router-{uuid.uuid4().hex[:8]}")
    await app.start()
    try:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        dispatcher = runtime.router.dispatcher
        await eventually(
            lambda: dispatcher.counters["alerts_ingested"] >= 3,
            timeout_s=30,
            what="the alerts to be read again",
        )
        flushed_at = datetime.now(UTC) + timedelta(milliseconds=600)
        await eventually(
            lambda: (
                datetime.now(UTC) > flushed_at
                and all(g.has_flushed for g in dispatcher.groups.values())
            ),
            what="a group interval",
        )
        assert len(http_capture.received) == before  # no re-page, t-2 still silenced
        produce(bootstrap, topic_names.alerts, alert("t-1", "resolved").model_dump_json().encode())
        [*_, last] = await http_capture.wait_for(before + 1, path="/search", timeout_s=30)
        resolved = orjson.loads(last.body)
        assert resolved["status"] == "resolved" and resolved["alerts"][0]["task_id"] == "t-1"
    finally:
        await app.stop()

    # --- every attempt is in ClickHouse
    client = clickhouse_connect.get_client(dsn=chdb_dsn)
    try:
        rows = client.query(
            "SELECT alert_id, receiver, attempt, result FROM notifications ORDER BY ts"
        ).result_rows
    finally:
        client.close()
    assert ("a-t-1-firing", "search-hook", 1, "delivered") in rows
    assert ("a-t-1-resolved", "search-hook", 1, "delivered") in rows
    assert not any(r[0] == "a-t-2-firing" for r in rows)
