"""What was already published: alert fingerprints and the causes of decisions.

A worker that takes partitions over re-processes the messages after the last
committed offset. Their alerts may have been published by the previous owner
just before it died (outputs go out *before* state is persisted, so nothing
is lost); reading the recent alerts and every decision back lets the new
owner recognise them and not publish them again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import orjson

from tokengov.core.contracts import utcnow
from tokengov.core.kafka import KafkaConnection, read_to_end
from tokengov.core.topics import Topics

__all__ = ["CAUSE_HEADER", "read_published"]

log = logging.getLogger(__name__)

CAUSE_HEADER = "tokengov-cause"


def read_published(
    bootstrap: KafkaConnection | str, topics: Topics, lookback: timedelta
) -> set[str]:
    since_ms = int((utcnow() - lookback).timestamp() * 1000)
    found: set[str] = set()
    alerts = 0
    for record in read_to_end(bootstrap, topics.alerts, since_ms=since_ms):
        if record.value is None:
            continue
        try:
            fp = orjson.loads(record.value).get("fingerprint")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(fp, str):
            found.add(fp)
            alerts += 1
    decisions = 0
    for record in read_to_end(bootstrap, topics.decisions):
        cause = record.headers.get(CAUSE_HEADER)
        if cause:
            found.add(cause.decode("utf-8", "replace"))
            decisions += 1
    log.info("read back %d recent alerts and %d decisions already published", alerts, decisions)
    return found
