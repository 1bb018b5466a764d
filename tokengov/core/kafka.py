"""How every tokengov process connects to Kafka: one typed, validated settings object.

:class:`KafkaConnection` reads ``TOKENGOV_KAFKA_*`` (pydantic-settings) and renders itself
once for librdkafka (confluent-kafka: the SDK, the CLI, the sinks) with
:meth:`~KafkaConnection.librdkafka_config`, and once for aiokafka/Faust (the worker) with
:meth:`~KafkaConnection.aiokafka_config` and :meth:`~KafkaConnection.ssl_context` (Faust's
broker options are built from them in :mod:`tokengov.app.faust_broker`).

============================== ==========================================================
``TOKENGOV_KAFKA_BOOTSTRAP``   ``host:port[,host:port]`` (default ``127.0.0.1:9092``)
``..._SECURITY_PROTOCOL``      ``PLAINTEXT`` · ``SSL`` · ``SASL_PLAINTEXT`` · ``SASL_SSL``
``..._SSL_CA_FILE``            PEM CA bundle that signed the brokers' certificates
                               (unset: the system's CAs)
``..._SSL_CERT_FILE``/``_KEY`` client certificate and key, PEM (mutual TLS; both or none)
``..._SASL_MECHANISM``         ``PLAIN`` · ``SCRAM-SHA-256`` · ``SCRAM-SHA-512``
``..._SASL_USERNAME``          SASL user
``..._SASL_PASSWORD``          SASL password (a secret: never in repr, str or logs)
``..._CLIENT_ID``              client id the brokers see (default ``tokengov``)
============================== ==========================================================

The shared client helpers live here too: :class:`CheckedProducer` (a producer whose every
delivery is checked), :func:`read_to_end`/:func:`end_offsets` (a topic read to its end
without a consumer group), :func:`latest_by_key` (what a compacted topic means) and
:func:`follow_compacted` (read a compacted topic whole, then follow it).

The core imports nothing of Faust or aiokafka (the SDK works without the server's
dependencies; an import-linter contract keeps it so).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Self

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokengov.core.errors import BrokerError, KafkaConfigError

__all__ = [
    "ENV_PREFIX",
    "RESTART_CHECK_INTERVAL_S",
    "CheckedProducer",
    "DeliveryReport",
    "KafkaConnection",
    "Record",
    "SaslMechanism",
    "SecurityProtocol",
    "check_connection",
    "connection",
    "end_offsets",
    "explain_refusal",
    "follow_compacted",
    "latest_by_key",
    "load_connection",
    "read_to_end",
]

log = logging.getLogger(__name__)

ENV_PREFIX: Final = "TOKENGOV_KAFKA_"
#: librdkafka's own log (syslog levels): connection retries are routine, callers report
#: what failed; keep only critical messages out of the terminal.
_LIBRDKAFKA_LOG_LEVEL: Final = 2


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


def _env(field: str) -> str:
    return ENV_PREFIX + field.upper()


class KafkaConnection(BaseSettings):
    """Where the brokers are and how to authenticate to them (env prefix ``TOKENGOV_KAFKA_``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, case_sensitive=False
    )

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        min_length=1,
        description="Kafka bootstrap servers, host:port[,host:port].",
    )
    security_protocol: SecurityProtocol = Field(
        default=SecurityProtocol.PLAINTEXT,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates "
        "(SSL/SASL_SSL; unset: the system's CAs).",
    )
    ssl_cert_file: Path | None = Field(
        default=None, description="Client certificate, PEM (mutual TLS; with the key file)."
    )
    ssl_key_file: Path | None = Field(
        default=None, description="Client private key, PEM, unencrypted (mutual TLS)."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_PLAINTEXT/SASL_SSL).",
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret).")
    client_id: str = Field(
        default="tokengov", min_length=1, description="Client id the brokers see."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        proto = self.security_protocol
        tls_fields = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file")
        for name in tls_fields:
            path = getattr(self, name)
            if path is None:
                continue
            if not proto.tls:
                problems.append(
                    f"{_env(name)} is set but {_env('security_protocol')}={proto.value} does "
                    "not use TLS: set it to SSL or SASL_SSL, or unset the file"
                )
            elif not Path(path).is_file():
                problems.append(f"{_env(name)}={path}: no such file")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            problems.append(
                f"mutual TLS needs both {_env('ssl_cert_file')} and {_env('ssl_key_file')}"
            )
        sasl_fields = ("sasl_mechanism", "sasl_username", "sasl_password")
        if proto.sasl:
            for name in sasl_fields:
                value = getattr(self, name)
                if value is None or (isinstance(value, str) and not value):
                    problems.append(f"{_env('security_protocol')}={proto.value} needs {_env(name)}")
        else:
            for name in sasl_fields:
                if getattr(self, name) is not None:
                    problems.append(
                        f"{_env(name)} is set but {_env('security_protocol')}={proto.value} "
                        "does not use SASL: set it to SASL_PLAINTEXT or SASL_SSL"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- librdkafka (confluent-kafka) ------------------------------------------------------

    def librdkafka_config(self) -> dict[str, Any]:
        """The connection part of a confluent-kafka client's config (merge client options in).

        Topics are never auto-created by a metadata request (``allow.auto.create.topics``):
        tokengov creates them with explicit settings (:func:`tokengov.core.topics.ensure_topics`).
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol.value.lower(),
            "allow.auto.create.topics": False,
        }
        if self.ssl_ca_file is not None:
            conf["ssl.ca.location"] = str(self.ssl_ca_file)
        if self.ssl_cert_file is not None and self.ssl_key_file is not None:
            conf["ssl.certificate.location"] = str(self.ssl_cert_file)
            conf["ssl.key.location"] = str(self.ssl_key_file)
        if self.security_protocol.sasl:
            assert self.sasl_mechanism is not None
            assert self.sasl_password is not None
            conf["sasl.mechanism"] = self.sasl_mechanism.value
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        return conf

    # -- aiokafka / Faust ------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for aiokafka (what ``aiokafka.helpers.create_ssl_context`` builds)."""
        if not self.security_protocol.tls:
            return None
        ctx = ssl.create_default_context(
            purpose=ssl.Purpose.SERVER_AUTH,
            cafile=str(self.ssl_ca_file) if self.ssl_ca_file is not None else None,
        )
        if self.ssl_cert_file is not None and self.ssl_key_file is not None:
            ctx.load_cert_chain(str(self.ssl_cert_file), str(self.ssl_key_file))
        return ctx

    def aiokafka_config(self) -> dict[str, Any]:
        """Keyword arguments of an aiokafka client (``AIOKafkaProducer(**conf)``)."""
        conf: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol.value,
        }
        context = self.ssl_context()
        if context is not None:
            conf["ssl_context"] = context
        if self.security_protocol.sasl:
            assert self.sasl_mechanism is not None
            assert self.sasl_password is not None
            conf["sasl_mechanism"] = self.sasl_mechanism.value
            conf["sasl_plain_username"] = self.sasl_username
            conf["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return conf

    def __str__(self) -> str:
        """The bootstrap servers: what error messages say ("cannot reach ... on {conn}")."""
        return self.bootstrap

    def describe(self) -> str:
        """One line for logs and error messages; never a secret."""
        return f"{self.bootstrap} ({self.security_protocol.value})"


def load_connection(**overrides: Any) -> KafkaConnection:
    """The environment's connection, with ``overrides`` over it; errors name the variables."""
    try:
        return KafkaConnection(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{_env(loc)}: {msg}" if loc else msg)
        raise KafkaConfigError("Kafka connection settings: " + "; ".join(lines)) from None


def connection(value: KafkaConnection | str) -> KafkaConnection:
    """Accept a connection or a bare bootstrap string (plaintext, as before)."""
    if isinstance(value, KafkaConnection):
        return value
    return KafkaConnection.model_construct(bootstrap=value)


def explain_refusal(conn: KafkaConnection, errors: list[str]) -> KafkaConfigError | None:
    """A :class:`KafkaConfigError` saying which setting to fix, when librdkafka's ``errors``
    (from ``error_cb`` or the log) show the brokers refused the connection settings."""
    unique = list(dict.fromkeys(errors))
    lowered = " ".join(unique).lower()
    text = " | ".join(unique[:3]) + (f" (and {len(unique) - 3} more)" if len(unique) > 3 else "")
    where = conn.bootstrap
    if "certificate verify failed" in lowered or "could not be verified" in lowered:
        ca = (
            f"{ENV_PREFIX}SSL_CA_FILE={conn.ssl_ca_file} did not sign it"
            if conn.ssl_ca_file is not None
            else f"{ENV_PREFIX}SSL_CA_FILE is not set and the system's CAs did not sign it"
        )
        return KafkaConfigError(
            f"TLS: the certificate of the broker at {where} is not trusted: {ca}. "
            f"Set {ENV_PREFIX}SSL_CA_FILE to the PEM file of the CA that signed the brokers' "
            f"certificates. (librdkafka: {text})"
        )
    if conn.security_protocol.sasl and (
        "authentication" in lowered  # not "sasl" alone: every line of a SASL client names it
        or "sasl mechanism" in lowered
        or "mechanism handshake" in lowered
    ):
        return KafkaConfigError(
            f"SASL: the broker at {where} refused the credentials or the mechanism: check "
            f"{ENV_PREFIX}SASL_MECHANISM, {ENV_PREFIX}SASL_USERNAME and "
            f"{ENV_PREFIX}SASL_PASSWORD. (librdkafka: {text})"
        )
    if (
        conn.security_protocol.tls
        and "ssl" in lowered
        and ("alert" in lowered or "ssl handshake" in lowered or "closed by peer" in lowered)
    ):
        mtls = (
            f"; if the brokers require mutual TLS, set {ENV_PREFIX}SSL_CERT_FILE and "
            f"{ENV_PREFIX}SSL_KEY_FILE to a client certificate they trust"
        )
        return KafkaConfigError(
            f"TLS: the handshake with the broker at {where} failed{mtls}; check "
            f"{ENV_PREFIX}SSL_CA_FILE. (librdkafka: {text})"
        )
    if not conn.security_protocol.tls and (
        "disconnected" in lowered or "wrong protocol" in lowered or "ssl" in lowered
    ):
        return KafkaConfigError(
            f"the broker at {where} closed a {conn.security_protocol.value} connection: if it "
            f"serves TLS, set {ENV_PREFIX}SECURITY_PROTOCOL=SSL (or SASL_SSL) and "
            f"{ENV_PREFIX}SSL_CA_FILE. (librdkafka: {text})"
        )
    return None


def check_connection(conn: KafkaConnection, timeout_s: float = 10.0) -> None:
    """Ask the brokers for metadata; raise :class:`KafkaConfigError` (which setting to fix)
    when they refuse the settings, :class:`BrokerError` when they cannot be reached."""
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record.getMessage())

    # librdkafka says why a connection failed (TLS verification, SASL) in its log and in
    # error_cb; both are collected here, never printed: the raised error carries them.
    probe_log = logging.Logger("tokengov.librdkafka.probe")  # unregistered: no parent, no leak
    probe_log.addHandler(_Collect())

    def on_error(err: KafkaError) -> None:
        errors.append(err.str())

    config: dict[str, Any] = {
        **conn.librdkafka_config(),
        "logger": probe_log,
        "log.connection.close": True,  # a TLS peer that hangs up (mutual TLS) says so here
        "error_cb": on_error,
        "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # serves error_cb
        refusal = explain_refusal(conn, [*errors, str(exc)])
        if refusal is not None:
            raise refusal from exc
        raise BrokerError(f"cannot reach the Kafka brokers at {conn.bootstrap}: {exc}") from exc
    if not metadata.brokers:  # pragma: no cover - a broker that answers lists itself
        raise BrokerError(f"the Kafka brokers at {conn.bootstrap} list no broker")


# -- producing with delivery checks ------------------------------------------------------

#: Told of one message's delivery: None when the brokers acknowledged it, else the error.
DeliveryReport = Callable[[str | None], None]


class CheckedProducer:
    """A confluent-kafka producer that checks every delivery.

    Failed deliveries are counted (:attr:`failed`) and kept (:attr:`errors`, the first
    100) and logged with topic and key; :meth:`deliver` waits for every outstanding message
    and raises :class:`~tokengov.core.errors.BrokerError` unless the brokers acknowledged them
    all. ``options`` are merged over the connection and the defaults (``acks=all``,
    ``murmur2_random`` like the Java client, so a key's partition agrees across clients)."""

    def __init__(
        self,
        kafka: KafkaConnection | str,
        *,
        client_id: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.kafka = connection(kafka)
        self.bootstrap = self.kafka.bootstrap
        config: dict[str, Any] = {
            **self.kafka.librdkafka_config(),  # never auto-creates a topic
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "log_level": _LIBRDKAFKA_LOG_LEVEL,
            **(options or {}),
        }
        if client_id is not None:
            config["client.id"] = client_id
        self._producer = Producer(config)
        self.failed = 0
        self.errors: list[str] = []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed += 1
            if len(self.errors) < 100:
                self.errors.append(str(err))
            log.error("could not publish to %s (key %r): %s", msg.topic(), msg.key(), err)

    def _reporting(self, report: DeliveryReport) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, msg: Any) -> None:
            self._on_delivery(err, msg)
            report(None if err is None else str(err))

        return on_delivery

    def publish(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Mapping[str, str | bytes] | None = None,
        partition: int | None = None,
        on_delivery: DeliveryReport | None = None,
        wait: bool = True,
    ) -> None:
        """Queue one message (waiting for room when the client's queue is full, up to ~10 s;
        ``wait=False``: raise :class:`~tokengov.core.errors.BrokerError` at once instead, for
        callers that must not block, such as a server's event loop).
        ``on_delivery`` also hears of its delivery (None: acknowledged, else the error), on
        the thread that serves delivery reports (:meth:`poll`, :meth:`flush`)."""
        kwargs: dict[str, Any] = {
            "value": value,
            "key": key,
            "headers": list((headers or {}).items()),
            "on_delivery": self._on_delivery
            if on_delivery is None
            else self._reporting(on_delivery),
        }
        if partition is not None:
            kwargs["partition"] = partition
        try:
            for _ in range(100):
                try:
                    self._producer.produce(topic, **kwargs)
                    break
                except BufferError as exc:  # the local queue is full: serve delivery reports
                    if not wait:
                        raise BrokerError(
                            f"cannot publish to {topic} on {self.bootstrap}: the producer's "
                            f"queue is full ({len(self._producer)} message(s) not yet "
                            "acknowledged: Kafka is slow or unavailable)"
                        ) from exc
                    self._producer.poll(0.1)
            else:
                raise BrokerError(
                    f"cannot publish to {topic} on {self.bootstrap}: the producer's queue stays "
                    "full"
                )
        except KafkaException as exc:
            raise BrokerError(f"cannot publish to {topic} on {self.bootstrap}: {exc}") from exc
        self._producer.poll(0)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports (waiting up to ``timeout_s`` for one); returns how many."""
        return int(self._producer.poll(timeout_s))

    def __len__(self) -> int:
        """Messages queued and not yet acknowledged or failed."""
        return len(self._producer)

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait for outstanding messages; returns how many are still undelivered."""
        return int(self._producer.flush(timeout_s))

    def deliver(self, timeout_s: float = 15.0, *, what: str = "messages") -> None:
        """Wait for every outstanding message; raise :class:`BrokerError` unless every message
        published since the last :meth:`deliver` was acknowledged (then start counting anew)."""
        left = self.flush(timeout_s)
        failed, errors = self.failed, self.errors
        self.failed, self.errors = 0, []
        if left or failed:
            raise BrokerError(
                f"{what} not acknowledged by {self.bootstrap}: {left} still pending after "
                f"{timeout_s:g}s, {failed} failed (errors: {'; '.join(errors[:3]) or 'none'})"
            )


# -- reading a topic to its end, without a consumer group ---------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    #: The record's Kafka timestamp (ms since the epoch), when the broker gave one.
    timestamp_ms: int | None = None


def _record(msg: Any) -> Record:
    headers: dict[str, bytes] = {}
    for header in msg.headers() or []:
        name, raw = header[0], header[1]
        headers[name] = raw.encode() if isinstance(raw, str) else (raw or b"")
    kind, stamp = msg.timestamp()
    return Record(
        int(msg.partition() or 0),
        int(msg.offset() or 0),
        msg.key(),
        msg.value(),
        headers,
        stamp if kind != TIMESTAMP_NOT_AVAILABLE else None,
    )


def _reader(bootstrap: KafkaConnection | str) -> Consumer:
    return Consumer(
        {
            **connection(bootstrap).librdkafka_config(),
            "group.id": f"tokengov-reader-{uuid.uuid4().hex}",  # never joined: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
            "socket.connection.setup.timeout.ms": 5000,
        }
    )


def _partitions(
    consumer: Consumer, topic: str, bootstrap: KafkaConnection | str, timeout_s: float
) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    meta = metadata.topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise BrokerError(f"cannot read {topic} on {bootstrap}: no such topic")
    return sorted(meta.partitions)


def read_to_end(
    bootstrap: KafkaConnection | str,
    topic: str,
    partitions: Sequence[int] | None = None,
    *,
    since_ms: int | None = None,
    timeout_s: float = 60.0,
) -> Iterator[Record]:
    """Every record of ``topic`` (or of ``partitions``) from the beginning — or from the first
    record at or after ``since_ms`` — up to the end of each partition.

    The end is where a fetch reports end-of-partition: Tansu answers ListOffsets(latest)
    with the base offset of the last batch rather than the next offset, so the watermark
    it returns cannot be trusted as the end."""
    consumer = _reader(bootstrap)
    try:
        if partitions is None:
            partitions = _partitions(consumer, topic, bootstrap, timeout_s)
        starts = {p: OFFSET_BEGINNING for p in partitions}
        if since_ms is not None:
            wanted = [TopicPartition(topic, p, since_ms) for p in partitions]
            try:
                for tp in consumer.offsets_for_times(wanted, timeout=timeout_s):
                    if tp.offset >= 0:
                        starts[tp.partition] = tp.offset
            except KafkaException as exc:  # a broker without time index: read it all
                log.debug("offsets_for_times on %s failed (%s); reading from the start", topic, exc)
        remaining = set(partitions)
        if not remaining:
            return
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in remaining])
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"reading {topic} partitions {sorted(remaining)} on {bootstrap} did not reach "
                    f"the end within {timeout_s:.0f}s"
                )
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                        continue
                    raise BrokerError(f"reading {topic} on {bootstrap}: {err}")
                yield _record(msg)
    except KafkaException as exc:
        raise BrokerError(f"reading {topic} on {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def end_offsets(
    bootstrap: KafkaConnection | str, topic: str, timeout_s: float = 30.0
) -> dict[int, int]:
    """The next offset of every partition, as a fetch reports it (see :func:`read_to_end`)."""
    consumer = _reader(bootstrap)
    try:
        partitions = _partitions(consumer, topic, bootstrap, timeout_s)
        starts = {}
        for p in partitions:  # a lower bound from ListOffsets: little left to read from there
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            starts[p] = max(high, 0)
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        ends: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(partitions):
            if time.monotonic() > deadline:
                raise BrokerError(f"no end-of-partition from {topic} on {bootstrap}")
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    ends[int(msg.partition() or 0)] = int(msg.offset() or 0)
                elif err is not None:
                    raise BrokerError(f"reading {topic} on {bootstrap}: {err}")
        return ends
    except KafkaException as exc:
        raise BrokerError(f"reading {topic} on {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def latest_by_key(records: Iterator[Record]) -> dict[str, bytes]:
    """What a compacted topic means: the last value of each key; a null value deletes it."""
    latest: dict[str, bytes] = {}
    for record in records:
        if record.key is None:
            continue
        key = record.key.decode("utf-8", "replace")
        if record.value is None:
            latest.pop(key, None)
        else:
            latest[key] = record.value
    return latest


#: How often (seconds of quiet) :func:`follow_compacted` checks for a broker restarted empty.
RESTART_CHECK_INTERVAL_S: Final = 1.0


def follow_compacted(
    kafka: KafkaConnection | str,
    topic: str,
    on_record: Callable[[Record], None],
    stop: threading.Event,
    *,
    on_caught_up: Callable[[], None] | None = None,
    client_id: str = "tokengov-follower",
    poll_timeout_s: float = 0.2,
    timeout_s: float = 10.0,
    wait_for_topic: bool = False,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Every record of a compacted ``topic`` from its start, then every new one, until
    ``stop`` is set (no consumer group: every partition assigned; a tombstone arrives as a
    :class:`Record` whose value is None). ``on_caught_up`` is called once, when every
    partition was read to the end it had when following began (at once for an empty topic).

    A missing topic (or a broker that does not answer) raises
    :class:`~tokengov.core.errors.BrokerError` before anything is read — unless
    ``wait_for_topic``, which retries every second until ``stop`` (the SDK's guard: the
    agent starts before the broker). Errors while following are logged, never raised. A
    broker that restarted empty (the embedded one keeps topics in memory) numbers the new
    topic's offsets from 0: when a partition's end falls below the position, the topic is
    read again from its start. ``options`` are merged over the consumer's config."""
    conn = connection(kafka)
    consumer = Consumer(
        {
            **conn.librdkafka_config(),
            "group.id": f"{client_id}-{uuid.uuid4().hex}",  # never joined: assign() only
            "client.id": client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # a position past a restarted topic's end
            "enable.partition.eof": True,
            "log_level": _LIBRDKAFKA_LOG_LEVEL,
            **(options or {}),
        }
    )
    throttle = _LogThrottle()
    try:
        behind = _assign_from_start(consumer, conn, topic, timeout_s, stop, wait_for_topic)
        if behind is None:
            return  # stopped while waiting for the topic
        if not behind and on_caught_up is not None:
            on_caught_up()
        checked = time.monotonic()
        while not stop.is_set():
            msg = consumer.poll(poll_timeout_s)
            if msg is None:
                if time.monotonic() - checked >= RESTART_CHECK_INTERVAL_S:
                    checked = time.monotonic()
                    if _restarted(consumer, topic, throttle):
                        _assign_from_start(consumer, conn, topic, timeout_s, stop, True)
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    if behind:
                        behind.discard(int(msg.partition() or 0))
                        if not behind and on_caught_up is not None:
                            on_caught_up()
                elif throttle.ready():
                    log.warning("following %s on %s: %s", topic, conn.bootstrap, err)
                continue
            on_record(_record(msg))
    finally:
        try:
            consumer.close()
        except (KafkaException, RuntimeError):
            log.debug("closing the follower of %s failed", topic, exc_info=True)


class _LogThrottle:
    """At most one log line per ``interval_s``: broker trouble is logged, not spammed."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._last = -interval_s

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        return True


def _assign_from_start(
    consumer: Consumer,
    conn: KafkaConnection,
    topic: str,
    timeout_s: float,
    stop: threading.Event,
    wait: bool,
) -> set[int] | None:
    """Assign every partition of ``topic`` from its start; the partitions (None: stopped)."""
    throttle = _LogThrottle()
    while True:
        try:
            partitions = _partitions(
                consumer, topic, conn, min(timeout_s, 2.0) if wait else timeout_s
            )
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            return set(partitions)
        except (KafkaException, BrokerError) as exc:
            if not wait:
                if isinstance(exc, BrokerError):
                    raise
                raise BrokerError(f"cannot reach {conn.bootstrap}: {exc}") from exc
            if throttle.ready():
                log.warning("cannot follow %s on %s yet: %s", topic, conn.bootstrap, exc)
            if stop.wait(1.0):
                return None


def _restarted(consumer: Consumer, topic: str, throttle: _LogThrottle) -> bool:
    """True when a partition's end went below our position: a broker that restarted empty
    numbers the new topic's offsets from 0, and a fetch at our old position finds nothing.
    The end is what the broker's fetch responses reported (``cached``), which is exact."""
    try:
        for tp in consumer.position(consumer.assignment()):
            _, end = consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and 0 <= end < tp.offset:
                log.warning(
                    "%s[%d] ends at offset %d, before our position %d: the broker restarted "
                    "with a new topic; reading it again from its start",
                    topic,
                    tp.partition,
                    end,
                    tp.offset,
                )
                return True
    except KafkaException as exc:  # the broker is away: the next check tries again
        if throttle.ready():
            log.debug("cannot compare %s's end with our position: %s", topic, exc)
    return False
