"""Kafka over TLS for real: a throwaway CA, the embedded Tansu broker behind a loopback TLS
listener that requires a client certificate (mutual TLS), and clients configured only
through :class:`tokengov.core.kafka.KafkaConnection` (TOKENGOV_KAFKA_*).

Tansu 0.6.0 cannot serve TLS itself (its CLI refuses ``--cert`` with ``--key``) nor SASL on
its listener: see tokengov/app/local/tls.py. SASL is covered by the rendering tests
(tests/unit/core/test_kafka_connection.py: librdkafka and aiokafka accept every rendering)
and here by a SASL_SSL client with a wrong password, refused after TLS by a broker whose
SASL handshake fails: the error names the SASL settings, never the password.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.app.local.certs import TlsFiles, make_tls_files
from tokengov.app.local.stack import LocalStack
from tokengov.app.local.tls import TlsTerminator
from tokengov.app.local.webhook_sink import WebhookSink
from tokengov.core.decoding import decode_events
from tokengov.core.errors import KafkaConfigError
from tokengov.core.kafka import (
    KafkaConnection,
    check_connection,
    latest_by_key,
    load_connection,
    read_to_end,
)
from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import ensure_topics, topic_specs
from tokengov.producers.emitter import TokenEmitter
from tokengov.sinks.clickhouse.reader import open_reader

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TlsBroker:
    bootstrap: str
    files: TlsFiles

    def connection(self, **overrides: object) -> KafkaConnection:
        values: dict[str, object] = {
            "bootstrap": self.bootstrap,
            "security_protocol": "SSL",
            "ssl_ca_file": self.files.ca_cert,
            "ssl_cert_file": self.files.client_cert,
            "ssl_key_file": self.files.client_key,
        }
        values.update(overrides)
        return load_connection(**{k: v for k, v in values.items() if v is not None})


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    root = tmp_path_factory.mktemp("tls-broker")
    files = make_tls_files(root / "certs")
    internal, public = free_port(), free_port()
    broker = EmbeddedBroker(root / "broker", port=internal, advertised_port=public)
    broker.start(detach=False)
    terminator = TlsTerminator(
        host="127.0.0.1",
        port=public,
        upstream=("127.0.0.1", internal),
        cert_file=files.server_cert,
        key_file=files.server_key,
        client_ca_file=files.ca_cert,
    )
    try:
        terminator.start()
        yield TlsBroker(f"127.0.0.1:{public}", files)
    finally:
        terminator.stop()
        broker.stop()


def test_sdk_and_readers_work_over_mutual_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    conn = tls_broker.connection()
    check_connection(conn)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    specs = topic_specs(prefix=prefix, event_partitions=2)
    ensure_topics(conn, specs)
    events = prefix + "tokengov.events"
    emitter = TokenEmitter(conn, topic=events, spool_dir=tmp_path / "spool")
    with emitter, emitter.task(team="search", workflow="wf", task_id="t-tls", agent="a") as task:
        task.record({"input": 100, "output": 10}, model="gpt-4.1-mini")
    assert emitter.stats.spooled == 0
    decoded = [e for r in read_to_end(conn, events) for _, e in decode_events(r.value).events]
    assert [e.task_id for e in decoded] == ["t-tls", "t-tls"]  # the call and the outcome

    # The aiokafka rendering (Faust's client) connects through the same listener.
    async def produce() -> None:
        producer = AIOKafkaProducer(**conn.aiokafka_config())
        await producer.start()
        try:
            await producer.send_and_wait(prefix + "tokengov.metrics", b"{}", key=b"k")
        finally:
            await producer.stop()

    asyncio.run(produce())
    assert [r.value for r in read_to_end(conn, prefix + "tokengov.metrics")] == [b"{}"]


def test_a_client_without_the_ca_is_refused_naming_the_setting(tls_broker: TlsBroker) -> None:
    # Unset: the system's CAs, which did not sign the throwaway CA.
    with pytest.raises(KafkaConfigError, match="TOKENGOV_KAFKA_SSL_CA_FILE is not set") as info:
        check_connection(tls_broker.connection(ssl_ca_file=None), timeout_s=5)
    assert "not trusted" in str(info.value)
    other = tls_broker.files.other_ca_cert
    with pytest.raises(KafkaConfigError, match=f"TOKENGOV_KAFKA_SSL_CA_FILE={other} did not"):
        check_connection(tls_broker.connection(ssl_ca_file=other), timeout_s=5)


def test_a_client_without_a_certificate_is_refused_by_mutual_tls(tls_broker: TlsBroker) -> None:
    conn = tls_broker.connection(ssl_cert_file=None, ssl_key_file=None)
    with pytest.raises(KafkaConfigError, match="TOKENGOV_KAFKA_SSL_CERT_FILE"):
        check_connection(conn, timeout_s=5)


def test_a_plaintext_client_is_told_to_use_tls(tls_broker: TlsBroker) -> None:
    conn = load_connection(bootstrap=tls_broker.bootstrap)
    with pytest.raises(KafkaConfigError, match="TOKENGOV_KAFKA_SECURITY_PROTOCOL=SSL"):
        check_connection(conn, timeout_s=5)


PIPELINE_POLICY = """
version: 1
teams:
  search: {owner: search@example.com, receiver: hook}
receivers:
  hook: {type: webhook, url_env: TLS_TEST_HOOK_URL, secret_env: TLS_TEST_HOOK_SECRET}
prices:
  gpt-4.1-mini: {input: 0.40, output: 1.60}
cost_profiles:
  triage: {team: search, max_tool_calls: 3, on_runaway: pause}
routes:
  receiver: hook
  group_by: [team, kind]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
"""


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.2)


def test_the_whole_pipeline_over_mutual_tls(tmp_path: Path) -> None:
    """SDK → worker (every role) → ClickHouse, a runaway alert to a loopback webhook and a
    pause decision back: every Kafka client of the stack on the TLS listener only."""
    files = make_tls_files(tmp_path / "certs")
    tls = files.material()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(PIPELINE_POLICY)
    hooks = WebhookSink(parse_policy(PIPELINE_POLICY, source="tls-test"))
    hooks.start()
    settings = Settings(
        data_dir=tmp_path / "data", query_endpoint=f"127.0.0.1:{free_port()}", policy=policy_file
    )
    log = tmp_path / "worker.log"
    with log.open("ab") as worker_log:
        stack = LocalStack(
            settings,
            policy_file,
            port=free_port(),
            worker_stdout=worker_log,
            worker_stderr=worker_log,
            env={**hooks.environment(), "TOKENGOV_SINK_DECODERS": "0"},
            tls=tls,
        )
        try:
            stack.start()
            stack.wait_ready(timeout_s=120)
            kafka = stack.kafka
            # The broker itself is not reachable in plaintext on the stack's port.
            with pytest.raises(KafkaConfigError):
                check_connection(load_connection(bootstrap=stack.bootstrap), timeout_s=5)
            emitter = TokenEmitter(kafka, topic=stack.topics.events, spool_dir=tmp_path / "spool")
            with (
                emitter,
                emitter.task(team="search", workflow="triage", task_id="t-tls", agent="a") as task,
            ):
                for _ in range(6):
                    task.record({"input": 100, "output": 10}, model="gpt-4.1-mini", tool_calls=1)
            assert emitter.stats.spooled == 0

            def stored() -> int:
                reader = open_reader(settings.clickhouse_dsn, settings.data_dir)
                try:
                    return int(reader.query("SELECT count() FROM token_events").rows[0][0])
                finally:
                    reader.close()

            _wait(lambda: stored() == 6, 90, "6 calls in ClickHouse", log)
            _wait(lambda: hooks.received["hook"] >= 1, 60, "the runaway alert at the webhook", log)
            assert hooks.bad_signatures["hook"] == 0
            decisions = latest_by_key(read_to_end(kafka, stack.topics.decisions))
            assert any(
                key.endswith("t-tls") and b'"pause"' in (raw or b"")
                for key, raw in decisions.items()
            ), decisions
            assert stack.worker_alive()
        finally:
            stack.stop()
            hooks.stop()


def test_a_sasl_client_against_a_listener_without_sasl_fails_naming_the_settings(
    tls_broker: TlsBroker,
) -> None:
    """The embedded broker has no SASL (Tansu 0.6.0): a SASL_SSL client with a wrong
    password still gets through TLS, then its SASL handshake is refused; the error names
    the SASL settings and never the password."""
    password = "wrong-" + uuid.uuid4().hex
    conn = tls_broker.connection(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="tokengov",
        sasl_password=password,
    )
    with pytest.raises(KafkaConfigError) as info:
        check_connection(conn, timeout_s=5)
    message = str(info.value)
    assert message.startswith("SASL: the broker at")
    assert "TOKENGOV_KAFKA_SASL_MECHANISM" in message and "SASL_PASSWORD" in message
    assert password not in message
