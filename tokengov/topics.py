"""The project's Kafka topics (DESIGN.md) and their creation with explicit settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tokengov.errors import BrokerError
from tokengov.kafka_logging import client_logging

__all__ = [
    "ALERTS",
    "ALL_TOPICS",
    "DEADLETTER",
    "DECISIONS",
    "EVENTS",
    "FINDINGS",
    "METRICS",
    "SILENCES",
    "TopicSpec",
    "Topics",
    "ensure_topics",
    "topic_specs",
]

log = logging.getLogger(__name__)

EVENTS: Final = "tokengov.events"
ALERTS: Final = "tokengov.alerts"
DECISIONS: Final = "tokengov.decisions"
METRICS: Final = "tokengov.metrics"
FINDINGS: Final = "tokengov.findings"
DEADLETTER: Final = "tokengov.deadletter"
#: Alert silences (compacted; key = silence id), written by ``tokengov alerts silence``,
#: followed by every alert router. A contract addition to DESIGN.md's list.
SILENCES: Final = "tokengov.silences"
ALL_TOPICS: Final = (EVENTS, ALERTS, DECISIONS, METRICS, FINDINGS, DEADLETTER, SILENCES)


@dataclass(frozen=True)
class Topics:
    """The real topic names a component uses. Tests give each run its own prefix."""

    events: str = EVENTS
    alerts: str = ALERTS
    decisions: str = DECISIONS
    metrics: str = METRICS
    findings: str = FINDINGS
    deadletter: str = DEADLETTER
    silences: str = SILENCES

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(*(prefix + name for name in ALL_TOPICS))


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(*, prefix: str = "", event_partitions: int = 8) -> list[TopicSpec]:
    """The topics with explicit partition counts; the decisions and silences topics are compacted.

    ``prefix`` lets tests give each run its own topics (``<prefix>tokengov.events``).
    """
    return [
        TopicSpec(prefix + EVENTS, event_partitions),
        TopicSpec(prefix + ALERTS, 4),
        TopicSpec(
            prefix + DECISIONS,
            1,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
        TopicSpec(prefix + METRICS, 4),
        TopicSpec(prefix + FINDINGS, 2),
        TopicSpec(prefix + DEADLETTER, 2),
        TopicSpec(
            prefix + SILENCES,
            1,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
    ]


def ensure_topics(bootstrap: str, specs: list[TopicSpec], *, timeout_s: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **client_logging()})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics on {bootstrap}: {exc}") from exc
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, 1, config=dict(s.config)) for s in missing],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"cannot create topic {name} on {bootstrap}: {exc}") from exc
    log.info("created topics %s on %s", ", ".join(created), bootstrap)
    return created
