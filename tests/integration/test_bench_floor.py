"""The framework's floor of ``tokengov bench streams`` (:mod:`tokengov.app.bench.bare_faust`): a
real Faust worker process with the worker's settings that takes every message of the events
topic, decodes none of them, and commits them all, as the benchmark waits for it to."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from tests.conftest import TEST_EVENT_PARTITIONS
from tokengov.app.bench.bare_faust import bare_faust_command, bare_faust_group
from tokengov.app.bench.common import start_process, stop_process
from tokengov.app.bench.streams import _committed_end
from tokengov.app.bench.workload import Workload, envelopes, partition_of


def test_the_bare_agent_commits_every_message_it_is_given_without_decoding_any(
    bootstrap: str, topic_prefix: str, topics: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "bare.log"
    proc = start_process(bare_faust_command(bootstrap, topic_prefix, tmp_path / "bare"), log)
    try:
        producer = Producer({"bootstrap.servers": bootstrap})
        per_partition = Workload(7, TEST_EVENT_PARTITIONS).by_partition(200, datetime.now(UTC))
        sent = 0
        for partition, events in per_partition.items():
            for key, value in envelopes(events, size=50):
                assert partition_of(key.decode(), TEST_EVENT_PARTITIONS) == partition
                producer.produce(topics["tokengov.events"], key=key, value=value)
                sent += 1
        # what the worker would dead-letter, the floor takes like any other message
        producer.produce(topics["tokengov.events"], key=b"junk", value=b"\xff not json")
        assert producer.flush(30) == 0
        assert sent > TEST_EVENT_PARTITIONS  # several messages on every partition

        _committed_end(bootstrap, bare_faust_group(topic_prefix), topics["tokengov.events"], 60)
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop_process(proc)
    assert "Traceback" not in log.read_text()
