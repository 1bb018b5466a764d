"""Chaos: the poison corpus through the whole embedded worker (every role in one process:
stream processors, ClickHouse writer, alert router), each case after a good call. The worker
stays up; ClickHouse holds every good call exactly once and nothing else (the rollups agree
with the raw table); what the contract refuses is dead-lettered with its reason; and the
worker still stores what comes after the corpus (issue 12, items 1 and 9).

tests/integration/streams/test_poison.py checks every dead letter's reason against the
streams role alone; tests/integration/clickhouse/test_poison.py the writer alone. This one
checks that together, in one process, nothing stops the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.demo.test_chaos_kill import wait
from tests.integration.streams.events import POLICY
from tests.integration.streams.poison import TEAM, corpus, good_call
from tokengov.app.local.broker import free_port
from tokengov.app.local.stack import LocalStack
from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.kafka import read_to_end
from tokengov.core.settings import Settings
from tokengov.sinks.clickhouse.reader import open_reader

pytestmark = pytest.mark.integration


def query(settings: Settings, sql: str) -> list[Any]:
    reader = open_reader(settings.clickhouse_dsn, settings.data_dir)
    try:
        return list(reader.query(sql).rows[0])
    finally:
        reader.close()


def stored(settings: Settings) -> int:
    return int(query(settings, f"SELECT count() FROM token_events WHERE team = '{TEAM}'")[0])


def test_poison_corpus_through_the_whole_worker(tmp_path: Path) -> None:
    cases = corpus()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    settings = Settings(
        data_dir=tmp_path / "data", query_endpoint=f"127.0.0.1:{free_port()}", policy=policy_file
    )
    log = tmp_path / "worker.log"
    # the good separators, and the good (or late, but kept) calls inside the cases
    expected = len(cases) + sum(c.governed + c.late for c in cases)
    bad = sum(1 for c in cases if c.dead)
    assert bad >= 20 and expected > len(cases)  # the corpus is not vacuous

    with log.open("ab") as worker_log:
        stack = LocalStack(
            settings,
            policy_file,
            port=free_port(),
            worker_stderr=worker_log,
            worker_stdout=worker_log,
            env={"TOKENGOV_SINK_DECODERS": "1"},
        )
        stack.start()
        try:
            stack.wait_ready(timeout_s=90)
            producer = Producer(
                {
                    "bootstrap.servers": stack.bootstrap,
                    "message.max.bytes": 4_000_000,
                    "allow.auto.create.topics": False,
                }
            )
            for i, case in enumerate(cases):
                key = f"k{i % 16}".encode()
                producer.produce("tokengov.events", orjson.dumps(good_call()), key=key)
                producer.produce("tokengov.events", case.value, key=key)
            assert producer.flush(30) == 0

            wait(lambda: stored(settings) >= expected, 120, f"{expected} good calls stored", log)
            assert stack.worker is not None and stack.worker.poll() is None, "the worker stopped"

            # what the contract refuses is dead-lettered once, by the streams, with a reason
            # (the writer skips it, counted; its own dead letters are rows ClickHouse refuses)
            letters = [r for r in read_to_end(stack.bootstrap, "tokengov.deadletter") if r.value]
            records = [DeadLetterRecord.model_validate_json(r.value) for r in letters]
            streams = [d for d in records if d.stage != "sink"]
            assert len({(d.source_partition, d.source_offset) for d in streams}) == bad
            assert all(d.reason and d.stage in ("decode", "skip") for d in streams)

            # the pipeline goes on after the corpus
            after = [good_call() for _ in range(10)]
            for doc in after:
                producer.produce("tokengov.events", orjson.dumps(doc), key=b"after")
            assert producer.flush(30) == 0
            wait(lambda: stored(settings) >= expected + 10, 60, "the calls after the corpus", log)
            assert stack.worker.poll() is None
        finally:
            stack.stop()

    assert stored(settings) == expected + 10  # every good call once, nothing bad stored
    calls, tokens = query(
        settings,
        f"SELECT count(), sum(input_tokens) FROM token_events FINAL WHERE team = '{TEAM}'",
    )
    rolled_calls, rolled_tokens = query(
        settings,
        f"SELECT sum(calls), sum(input_tokens) FROM spend_daily WHERE team = '{TEAM}'",
    )
    assert (int(rolled_calls), int(rolled_tokens)) == (int(calls), int(tokens))
