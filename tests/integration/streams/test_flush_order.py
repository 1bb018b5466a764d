"""Stage 1's flush against the real broker: a message is acked (so its offset may be committed)
only once the state records holding its effects are on the broker. Faust's commit flushes only
its own producer, not the streams' :class:`~tokengov.streams.publisher.Publisher`, so the flush
itself must wait for them (before issue 18's seventh pass it did not)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tokengov.core.kafka import read_to_end
from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.core.worker_context import PolicyHolder, WorkerContext
from tokengov.streams.core import Suppressor, SystemClock
from tokengov.streams.partition_stage import Stage1
from tokengov.streams.policy_in_force import ViewHolder
from tokengov.streams.publisher import Publisher
from tokengov.streams.topics import ensure_streams_topics

from .events import POLICY, call


def _stage(
    bootstrap: str, topic_names: Topics, tmp_path: Path, publisher_config: dict[str, Any], **kw: Any
) -> tuple[Stage1, Publisher, str]:
    """Stage 1 on the real broker, partition 0 assigned; (stage, its publisher, state topic)."""
    ctx = WorkerContext(
        Settings(kafka_bootstrap=bootstrap, data_dir=tmp_path),
        PolicyHolder(parse_policy(POLICY), tmp_path / "policy.yaml"),
        topic_names,
    )
    names, _ = ensure_streams_topics(ctx.kafka, ctx.topics)
    publisher = Publisher(ctx.kafka, ctx.topics, config=publisher_config)
    stage = Stage1(ctx, names, ViewHolder(ctx.policy), publisher, Suppressor(), SystemClock(), **kw)
    return stage, publisher, names.state


def _event(topic_names: Topics, task: str) -> Any:
    """What stage 1 reads of a Faust event: its message, an envelope of two calls."""
    message = SimpleNamespace(
        topic=topic_names.events,
        partition=0,
        offset=0,
        key=task.encode(),
        value=orjson.dumps([call(task), call(task)]),
    )
    return SimpleNamespace(message=message)


@pytest.mark.asyncio
async def test_a_message_is_acked_only_once_its_state_is_on_the_broker(
    bootstrap: str, topic_names: Topics, tmp_path: Path
) -> None:
    # every record would wait 60 s in the producer's queue but for a delivered() barrier
    stage, publisher, state_topic = _stage(
        bootstrap,
        topic_names,
        tmp_path,
        {"linger.ms": 60_000},
        flush_interval_s=3600,  # the test flushes
        idle_flush_s=3600,
    )
    acked: list[tuple[int, list[bytes]]] = []

    class Stream:  # what stage 1 uses of Faust's stream: ack(event)
        async def ack(self, event: Any) -> None:
            on_broker = read_to_end(bootstrap, state_topic, [0])
            acked.append((event.message.offset, [r.key or b"" for r in on_broker]))

    try:
        await stage.on_assigned({0})
        await stage.handle(Stream(), _event(topic_names, "task-flush"))
        assert acked == []  # not flushed yet: nothing acked
        await stage._flush()
    finally:
        publisher.close()
    assert stage.stats["events"] == 2 and stage.stats["dead_lettered"] == 0
    assert len(acked) == 1
    offset, keys_on_broker = acked[0]
    assert offset == 0
    assert any(b"task-flush" in key for key in keys_on_broker), keys_on_broker


@pytest.mark.asyncio
async def test_a_quiet_stream_is_flushed_without_waiting_out_the_interval(
    bootstrap: str, topic_names: Topics, tmp_path: Path
) -> None:
    """The role's timer flushes (and so acks and commits) what a stream that caught up has
    handled once no message came for ``idle_flush``, not an hour later at ``flush_interval``:
    a quiet worker's offsets and state land within ~0.15 s of its last message."""
    idle_s = 0.3
    stage, publisher, _ = _stage(
        bootstrap, topic_names, tmp_path, {}, flush_interval_s=3600, idle_flush_s=idle_s
    )
    acked_after: list[float] = []

    class Stream:
        async def ack(self, event: Any) -> None:
            acked_after.append(time.monotonic() - handled)

    try:
        await stage.on_assigned({0})
        await stage.handle(Stream(), _event(topic_names, "task-quiet"))
        handled = time.monotonic()
        deadline = handled + 30
        while not acked_after and time.monotonic() < deadline:  # as the role's 0.1 s timer
            await stage.flush_if_due()
            await asyncio.sleep(0.02)
    finally:
        publisher.close()
    assert len(acked_after) == 1, "the quiet stream was not flushed"
    assert acked_after[0] >= idle_s  # not before the stream had been quiet that long
    assert stage.pending == []
