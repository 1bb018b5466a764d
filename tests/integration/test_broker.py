from __future__ import annotations

import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from tokengov.app.local.broker import EmbeddedBroker, _pid_alive, broker_answers, free_port
from tokengov.core.errors import BrokerError

pytestmark = pytest.mark.integration


def test_topics_created_with_explicit_partitions_and_compaction(bootstrap, topics):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=5)
    assert len(metadata.topics[topics["tokengov.events"]].partitions) == 4
    assert len(metadata.topics[topics["tokengov.alerts"]].partitions) == 4
    resource = ConfigResource("topic", topics["tokengov.decisions"])
    config = admin.describe_configs([resource])[resource].result()
    assert config["cleanup.policy"].value == "compact"


def test_start_status_stop_leaves_no_process(tmp_path):
    broker = EmbeddedBroker(tmp_path, port=free_port())
    info = broker.start()
    assert broker.status() is not None
    assert (tmp_path / "broker.json").exists()
    assert broker.stop() is True
    assert not _pid_alive(info.pid)
    assert broker.status() is None
    assert not broker_answers(broker.bootstrap, timeout_s=0.5)


def test_port_in_use_is_named(tmp_path, broker):
    other = EmbeddedBroker(tmp_path, port=broker.port)
    with pytest.raises(BrokerError, match=str(broker.port)):
        other.start()


def test_cli_broker_lifecycle(tmp_path):
    port = str(free_port())
    cli = [sys.executable, "-m", "tokengov.app.cli.main", "broker"]
    env_args = ["--data-dir", str(tmp_path)]
    start = subprocess.run(
        [*cli, "start", "--port", port, *env_args], capture_output=True, text=True, timeout=60
    )
    assert start.returncode == 0, start.stderr
    status = subprocess.run([*cli, "status", *env_args], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    stop = subprocess.run([*cli, "stop", *env_args], capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    status = subprocess.run([*cli, "status", *env_args], capture_output=True, text=True, timeout=60)
    assert status.returncode != 0
