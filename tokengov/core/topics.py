"""The project's Kafka topics (DESIGN.md) and their creation with explicit settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tokengov.core.errors import BrokerError
from tokengov.core.kafka import KafkaConnection, connection
from tokengov.core.kafka_logging import client_logging

__all__ = [
    "ALERTS",
    "ALERT_PARTITIONS",
    "ALL_TOPICS",
    "DEADLETTER",
    "DECISIONS",
    "DEFAULT_EVENT_PARTITIONS",
    "EVENTS",
    "FINDINGS",
    "METRICS",
    "NO_AUTO_CREATE",
    "ROUTER_STATE",
    "SILENCES",
    "TopicSpec",
    "Topics",
    "ensure_topics",
    "partition_count",
    "topic_specs",
    "verify_topics",
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
#: The alert routers' state (compacted; co-partitioned with ``tokengov.alerts``: the groups,
#: notification log and outbox of alerts partition p live in partition p). Issue 15, a contract
#: addition to DESIGN.md's list.
ROUTER_STATE: Final = "tokengov.router-state"
ALL_TOPICS: Final = (
    EVENTS,
    ALERTS,
    DECISIONS,
    METRICS,
    FINDINGS,
    DEADLETTER,
    SILENCES,
    ROUTER_STATE,
)
#: Partitions of ``tokengov.alerts`` (keyed by team) and of ``tokengov.router-state``.
ALERT_PARTITIONS: Final = 4
DEFAULT_EVENT_PARTITIONS: Final = 8

#: Merged into the configuration of every librdkafka client of the project (producers and
#: admin clients default to ``true``): a metadata request for a missing topic must not make a
#: broker that allows it (Tansu, Kafka with ``auto.create.topics.enable``) create the topic
#: with its own default partition count. Topics are created by :func:`ensure_topics` only.
NO_AUTO_CREATE: Final[dict[str, bool]] = {"allow.auto.create.topics": False}


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
    router_state: str = ROUTER_STATE

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(*(prefix + name for name in ALL_TOPICS))


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(
    *, prefix: str = "", event_partitions: int = DEFAULT_EVENT_PARTITIONS
) -> list[TopicSpec]:
    """The topics with explicit partition counts; the decisions, silences and router-state
    topics are compacted.

    ``prefix`` lets tests give each run its own topics (``<prefix>tokengov.events``).
    """
    return [
        TopicSpec(prefix + EVENTS, event_partitions),
        TopicSpec(prefix + ALERTS, ALERT_PARTITIONS),
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
        TopicSpec(
            prefix + ROUTER_STATE,
            ALERT_PARTITIONS,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
    ]


def _admin(bootstrap: KafkaConnection | str) -> AdminClient:
    return AdminClient(
        {**connection(bootstrap).librdkafka_config(), **NO_AUTO_CREATE, **client_logging()}
    )


def _partition_counts(
    admin: AdminClient, bootstrap: KafkaConnection | str, timeout_s: float
) -> dict[str, int]:
    """Every topic on the broker and its partition count (one metadata request for all topics:
    it names none, so it can create none)."""
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics on {bootstrap}: {exc}") from exc
    return {
        name: len(meta.partitions)
        for name, meta in metadata.topics.items()
        if meta.error is None or meta.partitions
    }


def partition_count(
    bootstrap: KafkaConnection | str, topic: str, *, timeout_s: float = 15.0
) -> int:
    """How many partitions ``topic`` has; :class:`BrokerError` naming it when it does not exist."""
    found = _partition_counts(_admin(bootstrap), bootstrap, timeout_s).get(topic)
    if not found:
        raise BrokerError(
            f"topic {topic} does not exist on {bootstrap}; create the project's topics first "
            "(`tokengov broker start` does, or the worker with --create-topics)"
        )
    return found


def verify_topics(
    bootstrap: KafkaConnection | str,
    specs: list[TopicSpec],
    *,
    require: bool = True,
    timeout_s: float = 15.0,
) -> None:
    """Raise :class:`BrokerError` when a topic of ``specs`` has another partition count than
    configured (or, with ``require``, does not exist), naming the topic, what was found, what
    was expected and what to do. A worker calls this before it starts consuming: a topic
    created by something else (a broker's auto-creation) would map tasks to other partitions."""
    counts = _partition_counts(_admin(bootstrap), bootstrap, timeout_s)
    problems: list[str] = []
    for spec in specs:
        found = counts.get(spec.name)
        if found is None:
            if require:
                problems.append(
                    f"topic {spec.name} does not exist on {bootstrap} (expected "
                    f"{spec.partitions} partitions); create the project's topics first: "
                    "`tokengov broker start`, or `tokengov worker --create-topics`"
                )
        elif found != spec.partitions:
            problems.append(
                f"topic {spec.name} on {bootstrap} has {found} partitions, expected "
                f"{spec.partitions}; it was not created by tokengov with its configuration "
                "(or TOKENGOV_EVENT_PARTITIONS differs from the setting it was created with). "
                "Set TOKENGOV_EVENT_PARTITIONS to the count in use, or delete the topic and let "
                "tokengov create it (on the embedded broker: restart `tokengov up`)"
            )
    if problems:
        raise BrokerError("refusing to start: " + "; ".join(problems))


def ensure_topics(
    bootstrap: KafkaConnection | str, specs: list[TopicSpec], *, timeout_s: float = 15.0
) -> list[str]:
    """Create the topics that do not exist yet, with their configured partitions and settings;
    return the names created."""
    admin = _admin(bootstrap)
    existing = set(_partition_counts(admin, bootstrap, timeout_s))
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
