"""Topics are only ever created by tokengov, right (issue 12, item 5).

A worker that finds a topic with another partition count than configured refuses to start,
saying which topic, what it found, what it expected and what to do. That a running worker
(Faust, aiokafka, librdkafka inside) leaves exactly the project's topics on the broker is
checked after the two worker runs of test_restart_seed.py (:func:`topics_with`).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient

from tests.conftest import TEST_EVENT_PARTITIONS
from tests.integration.streams.conftest import ROOT
from tests.integration.streams.events import POLICY
from tokengov.core.topics import NO_AUTO_CREATE, ensure_topics, topic_specs

pytestmark = pytest.mark.integration


def topics_with(bootstrap: str, prefix: str) -> dict[str, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap, **NO_AUTO_CREATE})
    return {
        name: len(meta.partitions)
        for name, meta in admin.list_topics(timeout=10).topics.items()
        if name.startswith(prefix)
    }


def test_worker_refuses_a_topic_with_another_partition_count(bootstrap, tmp_path) -> None:
    prefix = "wrongparts."
    # tokengov.events as a broker's auto-creation would leave it: not the configured count
    specs = topic_specs(prefix=prefix, event_partitions=TEST_EVENT_PARTITIONS + 1)
    ensure_topics(bootstrap, specs)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokengov.app.cli.main",
            "worker",
            "--role",
            "streams",
            "--policy",
            str(policy),
            "--data-dir",
            str(tmp_path / "data"),
            "--bootstrap",
            bootstrap,
            "--topic-prefix",
            prefix,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode != 0
    message = " ".join(done.stderr.split())  # rich wraps long lines
    assert (
        f"topic {prefix}tokengov.events on {bootstrap} has {TEST_EVENT_PARTITIONS + 1} "
        f"partitions, expected {TEST_EVENT_PARTITIONS}" in message
    ), done.stderr
    assert "TOKENGOV_EVENT_PARTITIONS" in message, done.stderr
    # nothing was created on the way: no streams state topics for a worker that never ran
    assert set(topics_with(bootstrap, prefix)) == {s.name for s in specs}
