"""The SDK's guard across a broker that restarts empty (the embedded broker keeps topics in
memory): what tokengov publishes on the new topic — the pause it re-published, the lift a
human made — reaches the agent, although the new topic's offsets start again from 0."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from confluent_kafka import Producer

from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.core.contracts import Decision, utcnow
from tokengov.core.topics import DECISIONS, NO_AUTO_CREATE, ensure_topics, topic_specs
from tokengov.producers.guard import Guard, TaskPaused

pytestmark = pytest.mark.integration


def publish(bootstrap: str, *decisions: Decision) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, **NO_AUTO_CREATE})
    for decision in decisions:
        producer.produce(
            DECISIONS, key=decision.topic_key.encode(), value=decision.model_dump_json().encode()
        )
    assert producer.flush(10) == 0


def pause(task: str) -> Decision:
    return Decision(
        scope="task",
        key=task,
        action="pause",
        reason="runaway",
        expires_at=utcnow() + timedelta(hours=1),
    )


def lift(task: str) -> Decision:
    return Decision(scope="task", key=task, action="proceed", reason="lifted by a human")


def paused(guard: Guard, task: str) -> bool:
    try:
        guard.before_call(task)
    except TaskPaused:
        return True
    return False


def wait(predicate, what: str, timeout_s: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_guard_follows_the_decisions_topic_of_a_restarted_broker(tmp_path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port())
    broker.start(detach=False)
    try:
        ensure_topics(broker.bootstrap, topic_specs())
        # before the restart: three pauses (the guard's position on the old topic is 3)
        publish(broker.bootstrap, pause("a"), pause("b"), pause("c"))
        with Guard(broker.bootstrap) as guard:
            assert guard.wait_caught_up(20)
            assert all(paused(guard, task) for task in "abc")

            broker.stop()
            broker.start(detach=False)  # empty
            ensure_topics(broker.bootstrap, topic_specs())
            # what tokengov publishes after the restart: the pause still in force, and a
            # human lifts another one — two messages, offsets 0 and 1, below the old position
            publish(broker.bootstrap, pause("a"), lift("b"))
            wait(lambda: not paused(guard, "b"), "the lift on the new topic reached the guard")
            assert paused(guard, "a")
    finally:
        broker.stop()
