"""``register(app, ctx)``: the streams role on a Faust app (DESIGN.md's stream processors).

Two agents and a timer: stage 1 consumes ``tokengov.events`` (one
:class:`~tokengov.streams.core.PartitionProcessor` per assigned partition), stage 2
consumes the partials (one partition: one worker aggregates at a time), and
the timer flushes idle batches and ticks the aggregator.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import faust

from tokengov.core.process_tuning import raise_gc_thresholds
from tokengov.core.worker_context import WorkerContext
from tokengov.streams.aggregation_stage import Stage2
from tokengov.streams.core import Suppressor, SystemClock
from tokengov.streams.core.clock import Clock
from tokengov.streams.partition_stage import GC_THRESHOLDS, Stage1, commit_acked
from tokengov.streams.policy_in_force import ViewHolder
from tokengov.streams.publisher import Publisher
from tokengov.streams.topics import StreamsTopics, ensure_streams_topics

__all__ = ["StreamsRole", "register"]

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 30.0


@dataclass
class StreamsRole:
    names: StreamsTopics
    event_partitions: int
    stage1: Stage1
    stage2: Stage2
    views: ViewHolder
    publisher: Publisher
    handles: tuple[Any, ...] = ()  # the agents and timers, for introspection


def _raw_topic(app: faust.App, name: str) -> Any:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def register(app: faust.App, ctx: WorkerContext, *, clock: Clock | None = None) -> StreamsRole:
    clock = clock or SystemClock()
    raise_gc_thresholds(*GC_THRESHOLDS)  # the process's; see partition_stage.GC_THRESHOLDS
    names, partitions = ensure_streams_topics(ctx.kafka, ctx.topics)
    views = ViewHolder(ctx.policy)
    publisher = Publisher(ctx.kafka, ctx.topics)
    suppressor = Suppressor()
    stage1 = Stage1(ctx, names, views, publisher, suppressor, clock)
    stage2 = Stage2(ctx, names, views, publisher, suppressor, clock)
    role = StreamsRole(names, partitions, stage1, stage2, views, publisher)
    events_topic = _raw_topic(app, ctx.topics.events)
    partials_topic = _raw_topic(app, names.partials)

    async def run(stage: Stage1 | Stage2, stream: Any) -> None:
        manual = stream.noack()
        try:
            async for event in manual.events():
                await stage.handle(manual, event)
        except Exception as exc:
            # The broker failed us mid-flush (or a bug outside per-event handling): stop the
            # worker instead of acking around the hole; the restart replays exactly.
            log.critical("streams: %s failed, stopping the worker: %r", type(stage).__name__, exc)
            await app.crash(exc)
            raise

    @app.agent(events_topic, name="tokengov.streams.stage1")
    async def stage1_agent(stream: Any) -> None:
        await run(stage1, stream)

    @app.agent(partials_topic, name="tokengov.streams.stage2")
    async def stage2_agent(stream: Any) -> None:
        await run(stage2, stream)

    async def flush_timer() -> None:
        await stage1.flush_if_due()

    async def tick_timer() -> None:
        await stage2.tick()

    stage1.commit = partial(commit_acked, app)  # right after each flush, not at the next timer
    app.timer(0.1, name="tokengov.streams.flush")(flush_timer)
    app.timer(1.0, name="tokengov.streams.tick")(tick_timer)

    started = time.monotonic()

    async def stats_timer() -> None:
        s = stage1.stats
        elapsed = max(time.monotonic() - started, 1e-9)
        procs = stage1.processors.values()
        log.info(
            "streams: %d events in %d messages (%.0f/s since start), %d dead-lettered %s, "
            "%d failed, %d retried, %d skipped, %d state errors; clock skew: %d ahead, "
            "%d behind; %d alerts, %d decisions, %d metrics published; partitions %s",
            s["events"],
            s["messages"],
            s["events"] / elapsed,
            s["dead_lettered"],
            dict(stage1.drops),
            s["failed"],
            s["retried"],
            s["skipped"],
            s["state_errors"],
            sum(p.agg.clock_ahead_events for p in procs),
            sum(p.agg.clock_behind_events for p in procs),
            publisher.sent["alerts"],
            publisher.sent["decisions"],
            publisher.sent["metrics"],
            sorted(stage1.processors),
        )

    app.timer(STATS_INTERVAL_S, name="tokengov.streams.stats")(stats_timer)

    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        tps = (args[0] if args else kwargs.get("assigned")) or set()
        await stage1.on_assigned({tp.partition for tp in tps if tp.topic == ctx.topics.events})
        await stage2.on_assigned(any(tp.topic == names.partials for tp in tps))

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]  # mode's stub

    log.info(
        "streams role: %s (%d partitions) → alerts %s, decisions %s, metrics %s",
        ctx.topics.events,
        partitions,
        ctx.topics.alerts,
        ctx.topics.decisions,
        ctx.topics.metrics,
    )
    role.handles = (stage1_agent, stage2_agent, flush_timer, tick_timer, stats_timer, on_assigned)
    return role
