"""Reading topics in tests: assign() every partition from the start, poll until a condition holds."""

from __future__ import annotations

import socket
import threading
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


class DeadPort:
    """Keeps a stopped broker's port for the test while the broker is down: xdist runs other
    tests' brokers alongside, and the kernel may hand the freed port to one of them, which
    the stopped broker's clients would then reach. It listens on the port and closes every
    connection at once, as a host whose broker process is down does (librdkafka: "connection
    closed by peer"). ``close()`` frees it for the broker's restart."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        self._sock.bind((host, port))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refuse, name="dead-port", daemon=True)
        self._thread.start()

    def _refuse(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
