"""The live status line of ``tokengov up``: events/s, lag, alerts firing, spend today.

Kafka answers the first two (the events topic's high watermarks and the streams
consumer group's committed offsets); ClickHouse, through whatever reader the
caller hands in, answers the last two.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from tokengov.core.kafka import KafkaConnection, connection
from tokengov.core.kafka_logging import client_logging
from tokengov.core.topics import NO_AUTO_CREATE

__all__ = ["KafkaProbe", "Status"]

log = logging.getLogger(__name__)


@dataclass
class Status:
    messages_per_s: float = 0.0
    lag_messages: int | None = None
    alerts_firing: int | None = None
    spend_today_usd: Decimal | None = None  # the endpoint sends decimals as strings: convert
    events_total: int | None = None

    def line(self) -> str:
        lag = "?" if self.lag_messages is None else f"{self.lag_messages:,}"
        alerts = "?" if self.alerts_firing is None else str(self.alerts_firing)
        spend = "?" if self.spend_today_usd is None else f"${self.spend_today_usd:,.2f}"
        total = "" if self.events_total is None else f" · {self.events_total:,} events stored"
        return (
            f"{self.messages_per_s:,.0f} msg/s in · lag {lag} · alerts firing {alerts} · "
            f"spend today {spend}{total}"
        )


class KafkaProbe:
    """Rates and lag from the broker alone."""

    def __init__(self, bootstrap: KafkaConnection | str, events_topic: str, group: str) -> None:
        self.events_topic = events_topic
        self.group = group
        self._consumer = Consumer(
            {
                **connection(bootstrap).librdkafka_config(),
                "group.id": f"{group}-status",
                "enable.auto.commit": False,
                **client_logging(),
            }
        )
        self._admin = AdminClient(
            {**connection(bootstrap).librdkafka_config(), **NO_AUTO_CREATE, **client_logging()}
        )
        self._last: tuple[float, int] | None = None

    def _high_watermarks(self) -> dict[int, int]:
        metadata = self._consumer.list_topics(self.events_topic, timeout=2)
        partitions = metadata.topics[self.events_topic].partitions
        out = {}
        for p in partitions:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.events_topic, p), timeout=2, cached=False
            )
            out[p] = high
        return out

    def _committed(self, partitions: list[int]) -> dict[int, int]:
        request = ConsumerGroupTopicPartitions(
            self.group, [TopicPartition(self.events_topic, p) for p in partitions]
        )
        futures = self._admin.list_consumer_group_offsets([request], request_timeout=2)
        result = futures[self.group].result(timeout=3)
        return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}

    def sample(self, status: Status, clock: Callable[[], float] = time.monotonic) -> Status:
        try:
            highs = self._high_watermarks()
        except (KafkaException, KeyError) as exc:
            log.debug("status: no watermarks: %s", exc)
            return status
        total = sum(highs.values())
        now = clock()
        if self._last is not None and now > self._last[0]:
            status.messages_per_s = max(0.0, (total - self._last[1]) / (now - self._last[0]))
        self._last = (now, total)
        try:
            committed = self._committed(list(highs))
            status.lag_messages = sum(
                max(0, high - committed.get(p, 0)) for p, high in highs.items()
            )
        except KafkaException as exc:
            log.debug("status: no committed offsets for %s: %s", self.group, exc)
        return status

    def close(self) -> None:
        self._consumer.close()
