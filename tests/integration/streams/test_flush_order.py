"""Stage 1's flush against the real broker: a message is acked (so its offset may be committed)
only once the state records holding its effects are on the broker. Faust's commit flushes only
its own producer, not the streams' :class:`~tokengov.streams.publisher.Publisher`, so the flush
itself must wait for them (before issue 18's seventh pass it did not)."""

from __future__ import annotations

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


@pytest.mark.asyncio
async def test_a_message_is_acked_only_once_its_state_is_on_the_broker(
    bootstrap: str, topic_names: Topics, tmp_path: Path
) -> None:
    ctx = WorkerContext(
        Settings(kafka_bootstrap=bootstrap, data_dir=tmp_path),
        PolicyHolder(parse_policy(POLICY), tmp_path / "policy.yaml"),
        topic_names,
    )
    names, _ = ensure_streams_topics(ctx.kafka, ctx.topics)
    # every record would wait 60 s in the producer's queue but for a delivered() barrier
    publisher = Publisher(ctx.kafka, ctx.topics, config={"linger.ms": 60_000})
    stage = Stage1(
        ctx,
        names,
        ViewHolder(ctx.policy),
        publisher,
        Suppressor(),
        SystemClock(),
        flush_interval_s=3600,  # the test flushes
    )
    acked: list[tuple[int, list[bytes]]] = []

    class Stream:  # what stage 1 uses of Faust's stream: ack(event)
        async def ack(self, event: Any) -> None:
            on_broker = read_to_end(bootstrap, names.state, [0])
            acked.append((event.message.offset, [r.key or b"" for r in on_broker]))

    try:
        await stage.on_assigned({0})
        message = SimpleNamespace(
            topic=topic_names.events,
            partition=0,
            offset=0,
            key=b"task-flush",
            value=orjson.dumps([call("task-flush"), call("task-flush")]),
        )
        event: Any = SimpleNamespace(message=message)  # what stage 1 reads of a Faust event
        await stage.handle(Stream(), event)
        assert acked == []  # not flushed yet: nothing acked
        await stage._flush()
    finally:
        publisher.close()
    assert stage.stats["events"] == 2 and stage.stats["dead_lettered"] == 0
    assert len(acked) == 1
    offset, keys_on_broker = acked[0]
    assert offset == 0
    assert any(b"task-flush" in key for key in keys_on_broker), keys_on_broker
