"""One typed settings object, read by entrypoints only (prefix ``TOKENGOV_``).

Library classes take explicit arguments; only the CLI and the worker build a
:class:`Settings` and hand its values down.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokengov.core.kafka import KafkaConnection, load_connection

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENGOV_", extra="ignore")

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    event_partitions: int = Field(
        default=8,
        ge=1,
        description="Partitions of tokengov.events: tokengov creates the topic with this many, "
        "and a worker refuses to start when the topic has another count.",
    )
    policy: Path | None = Field(default=None, description="Path of the policy YAML file.")
    data_dir: Path = Field(
        default=Path(".tokengov"),
        description="Embedded broker state, worker state, and the embedded ClickHouse store.",
    )
    clickhouse_url: str | None = Field(
        default=None,
        description="clickhouse-connect DSN: chdb:///path or http(s)://user:pass@host:8123/db. "
        "Default: the embedded store at <data dir>/clickhouse.",
    )
    clickhouse_ttl_days: int | None = Field(
        default=None,
        ge=1,
        description="Retention of the raw ClickHouse tables (token_events, task_outcomes, "
        "notifications) in days; rollups are kept. Default: keep everything.",
    )
    sink_decoders: int | None = Field(
        default=None,
        ge=0,
        description="Decoder processes of the ClickHouse writer (0: decode in the writer's "
        "thread). Default: one per CPU, at most four.",
    )
    router_snapshot: bool = Field(
        default=True,
        description="The alert router keeps a local copy of its state topic "
        "(<data dir>/router/snapshot.sqlite) and re-seeds tokengov.router-state from it when "
        "the broker comes back without the topic (the embedded broker keeps topics in memory). "
        "Turn off on a cluster whose topics are durable.",
    )
    grafana_url: str | None = None
    grafana_token: SecretStr | None = None
    query_endpoint: str = Field(
        default="127.0.0.1:8124",
        description="host:port of the local read-only query endpoint served in embedded mode.",
    )
    # Limits of one analyst's query (the endpoint, `tokengov query`/`report`, every reader).
    query_timeout_s: float = Field(
        default=60.0, gt=0, description="ClickHouse max_execution_time of a read query, seconds."
    )
    query_max_memory_bytes: int = Field(
        default=1_000_000_000, ge=1, description="ClickHouse max_memory_usage of a read query."
    )
    query_max_result_rows: int = Field(
        default=100_000, ge=1, description="ClickHouse max_result_rows of a read query."
    )
    query_max_threads: int = Field(
        default=2, ge=1, description="ClickHouse max_threads of a read query."
    )
    # The OTLP receiver (`tokengov otlp`, worker role otlp; docs/otlp.md).
    otlp_host: str = Field(
        default="127.0.0.1",
        description="Address the OTLP/HTTP receiver listens on (0.0.0.0: every interface).",
    )
    otlp_port: int = Field(
        default=4318, ge=0, lt=65536, description="Port of the OTLP/HTTP receiver (0: any free)."
    )
    otlp_max_body_bytes: int = Field(
        default=8_388_608,
        ge=1,
        description="Largest OTLP request body, compressed or not, in bytes (larger: 413).",
    )
    otlp_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the OTLP receiver requires (Authorization: Bearer <token>); "
        "unset: no authentication.",
    )
    otlp_delivery_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long the OTLP receiver waits for Kafka to acknowledge a request's "
        "events before answering 503.",
    )
    otlp_queue_max_messages: int = Field(
        default=100_000,
        ge=1,
        description="Messages the OTLP receiver's producer holds not yet acknowledged by Kafka "
        "(librdkafka queue.buffering.max.messages); when full, a request is answered 503 at "
        "once.",
    )

    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of /healthz, /readyz and Prometheus /metrics of a long-running "
        "process (worker, `tokengov up`): unset = off, 0 = a free port (logged). Give each "
        "process on one host its own port (docker-compose: 9400).",
    )
    metrics_host: str = Field(
        default="0.0.0.0",  # noqa: S104  # Prometheus scrapes from another host or container
        description="Address the health and metrics server binds to.",
    )

    @cached_property
    def kafka(self) -> KafkaConnection:
        """The Kafka connection: every ``TOKENGOV_KAFKA_*`` variable, with
        :attr:`kafka_bootstrap` (``--bootstrap`` included) as the bootstrap servers.
        Raises :class:`~tokengov.core.errors.KafkaConfigError` naming the variable to fix."""
        return load_connection(bootstrap=self.kafka_bootstrap)

    @property
    def clickhouse_dsn(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb:")

    @property
    def broker_state_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def worker_state_dir(self) -> Path:
        return self.data_dir / "worker"
