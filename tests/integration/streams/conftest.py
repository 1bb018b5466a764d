"""Fixtures for the streams integration tests: the real worker as a subprocess, real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.waiting import wait_for
from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.kafka import end_offsets, read_to_end
from tokengov.core.topics import Topics
from tokengov.streams.topics import StreamsTopics

ROOT = Path(__file__).resolve().parents[3]


class WorkerProcess:
    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        env = {**os.environ, "COLUMNS": "400", **(env or {})}  # one log record per line
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout_s: float = 20) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def tail(self, chars: int = 6000) -> str:
        return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")


class Cluster:
    """One test's view of the broker: its topics, a producer, readers, and its workers."""

    def __init__(
        self, bootstrap: str, prefix: str, topics: Topics, tmp: Path, policy: Path
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.topics = topics
        self.internal = StreamsTopics.for_topics(topics)
        self.tmp = tmp
        self.policy = policy
        self.data_dir = tmp / "data"
        self.workers: list[WorkerProcess] = []
        #: the role set of each worker group and the topics it reads (:meth:`processed`): one
        #: ``streams`` group, or ``governance`` and ``debt`` run as two services
        self.groups: dict[str, tuple[str, ...]] = {
            "streams": (topics.events, self.internal.partials, self.internal.debt_tallies)
        }
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
        )

    def start_worker(
        self, roles: tuple[str, ...] = ("streams",), env: dict[str, str] | None = None
    ) -> WorkerProcess:
        cmd = [
            sys.executable,
            "-m",
            "tokengov.app.cli.main",
            "worker",
            *(arg for role in roles for arg in ("--role", role)),
            "--policy",
            str(self.policy),
            "--data-dir",
            str(self.data_dir),
            "--bootstrap",
            self.bootstrap,
            "--topic-prefix",
            self.prefix,
            "--no-create-topics",
        ]
        worker = WorkerProcess(cmd, self.tmp / f"worker{len(self.workers)}.log", env)
        self.workers.append(worker)
        return worker

    def tail(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.tail()}" for w in self.workers)

    def send(self, *events: dict[str, Any], envelope: bool = False, key: str | None = None) -> None:
        if envelope:
            k = key or events[0].get("task_id")
            self.producer.produce(
                self.topics.events, key=k.encode(), value=orjson.dumps(list(events))
            )
        else:
            for event in events:
                k = key or event.get("task_id") or event["event_id"]
                self.producer.produce(self.topics.events, key=k.encode(), value=orjson.dumps(event))
        self.producer.flush(10)

    def send_raw(self, key: bytes, value: bytes) -> None:
        self.producer.produce(self.topics.events, key=key, value=value)
        self.producer.flush(10)

    def read(self, topic: str) -> list[Any]:
        return list(read_to_end(self.bootstrap, topic, timeout_s=20))

    def alerts(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.read(self.topics.alerts)]

    def fingerprints(self) -> list[str]:
        return sorted(a["fingerprint"] for a in self.alerts())

    def decisions(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r.key.decode(), orjson.loads(r.value)) for r in self.read(self.topics.decisions)]

    def metrics(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.read(self.topics.metrics)]

    def dead_letters(self) -> list[dict[str, Any]]:
        letters = []
        for r in self.read(self.topics.deadletter):
            DeadLetterRecord.model_validate_json(r.value)  # every one is the contract's record
            letters.append(orjson.loads(r.value))
        return letters

    def processed(self) -> bool:
        """Every message of the topics each worker group reads (:attr:`groups`: the events,
        partials and debt tallies for ``streams``) is committed by that group."""
        return all(self._committed(roles, topics) for roles, topics in self.groups.items())

    def _committed(self, roles: str, topics: tuple[str, ...]) -> bool:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.prefix}tokengov-worker-{roles}",
                "enable.auto.commit": False,
            }
        )
        try:
            for topic in topics:
                ends = end_offsets(self.bootstrap, topic)
                tps = [TopicPartition(topic, p) for p in ends]
                committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=5)}
                if any(high > 0 and committed.get(p, -1) < high for p, high in ends.items()):
                    return False
            return True
        finally:
            consumer.close()

    def wait_processed(self, timeout_s: float = 30) -> None:
        wait_for(self.processed, timeout_s, "the worker to commit every message", self.tail)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.producer.flush(5)


@pytest.fixture
def cluster_factory(
    bootstrap: str, topic_prefix: str, topic_names: Topics, tmp_path: Path
) -> Iterator[Callable[[str], Cluster]]:
    made: list[Cluster] = []

    def make(policy_text: str) -> Cluster:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text)
        cluster = Cluster(bootstrap, topic_prefix, topic_names, tmp_path, policy)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()
    assert not any(w.alive() for c in made for w in c.workers), "a worker outlived its test"
    os.environ.pop("TOKENGOV_POLICY", None)
