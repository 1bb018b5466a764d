"""Reading topics in tests: assign() every partition from the start, poll until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from tokengov.core.calls import Call, Done
from tokengov.core.decoding import decode_events


def read_messages(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[tuple[bytes | None, bytes]]], bool],
    timeout_s: float = 30.0,
) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) on ``topic`` from the beginning, until ``until(messages)`` or timeout."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "tests-reader", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(messages):
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            messages.append((msg.key(), msg.value()))
        return messages
    finally:
        consumer.close()


def read_events(
    bootstrap: str, topic: str, *, expected: int, timeout_s: float = 30.0
) -> list[tuple[str, Call | Done]]:
    """(key, event) pairs, envelopes unpacked, until at least ``expected`` events arrived."""

    def count(messages: list[tuple[bytes | None, bytes]]) -> int:
        return sum(len(decode_events(v).events) for _, v in messages)

    state = {"n": 0, "seen": 0}

    def enough(messages: list[tuple[bytes | None, bytes]]) -> bool:
        new = messages[state["seen"] :]
        state["n"] += count(new)
        state["seen"] = len(messages)
        return state["n"] >= expected

    messages = read_messages(bootstrap, topic, until=enough, timeout_s=timeout_s)
    out: list[tuple[str, Call | Done]] = []
    for key, value in messages:
        for _, event in decode_events(value).events:
            out.append(((key or b"").decode(), event))
    return out
