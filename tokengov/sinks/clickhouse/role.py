"""``tokengov worker --role sink``: the ClickHouse writer (and, for an embedded store, the
read-only query endpoint) as a service of the worker's Faust app.

The writer uses its own confluent-kafka consumer in a thread: it needs manual
commits after ClickHouse acknowledges, and pause/resume for backpressure,
which it controls there directly. The service starts it with the app, stops it
(flushing what is buffered) with the app, and crashes the worker if the writer
dies. Its consumer group is ``tokengov-sink`` (``<prefix>tokengov-sink`` when
the topics carry a prefix).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import faust
from mode import Service

from tokengov.core.topics import EVENTS
from tokengov.core.worker_context import WorkerContext
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.encode import default_decoders
from tokengov.sinks.clickhouse.endpoint import QueryEndpoint
from tokengov.sinks.clickhouse.limits import QueryLimits
from tokengov.sinks.clickhouse.process_tuning import GC_GEN0_THRESHOLD, tune_gc
from tokengov.sinks.clickhouse.schema import SchemaOptions
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import SinkConfig, SinkWriter

__all__ = ["GC_GEN0_THRESHOLD", "SinkRole", "register", "tune_gc"]

log = logging.getLogger(__name__)


class SinkRole:
    """The writer and the endpoint of one worker process, built from its context."""

    def __init__(self, ctx: WorkerContext, config: SinkConfig | None = None) -> None:
        settings = ctx.settings
        # Topics with a prefix (a test, a second deployment) get a consumer group to match.
        prefix = ctx.topics.events.removesuffix(EVENTS)
        if config is None:
            decoders = settings.sink_decoders
            config = SinkConfig(
                group_id=f"{prefix}tokengov-sink",
                schema=SchemaOptions(ttl_days=settings.clickhouse_ttl_days),
                decoders=default_decoders() if decoders is None else decoders,
            )
        self.store = ClickHouseStore(settings.clickhouse_dsn)
        self.writer = SinkWriter(
            bootstrap=ctx.kafka,
            topics=ctx.topics,
            store=self.store,
            decoder=MessageDecoder(lambda: ctx.policy.current.catalog),
            config=config,
        )
        self.endpoint: QueryEndpoint | None = None
        if settings.embedded_clickhouse:
            self.endpoint = QueryEndpoint(
                settings.clickhouse_dsn,
                settings.query_endpoint,
                settings.data_dir,
                limits=QueryLimits.from_settings(settings),
            )
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._serving = False

    def start(self) -> None:
        self.writer.start()
        if self.endpoint is not None:
            threading.Thread(
                target=self._serve_when_ready, name="clickhouse-endpoint-start", daemon=True
            ).start()

    def _serve_when_ready(self) -> None:
        """Serve queries once the schema is in place (the writer migrates it first)."""
        while not self.writer.ready.wait(0.5):
            if self._stopping.is_set() or not self.writer.alive:
                return
        endpoint = self.endpoint
        assert endpoint is not None
        with self._lock:
            if self._stopping.is_set():
                return
            try:
                endpoint.start()
            except OSError as exc:
                log.warning(
                    "query endpoint %s unavailable (%s); serving on a free port",
                    endpoint.address,
                    exc,
                )
                endpoint.port = 0
                endpoint.start()
            self._serving = True

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            if self.endpoint is not None and self._serving:
                self.endpoint.stop()
        self.writer.stop()
        self.store.close()


def register(app: faust.App, ctx: WorkerContext) -> SinkRole:
    """Add the ClickHouse sink to ``app``: it starts and stops with the worker."""
    tune_gc()
    role = SinkRole(ctx)

    class ClickHouseSink(Service):
        async def on_start(self) -> None:
            role.start()

        async def on_stop(self) -> None:
            await asyncio.get_running_loop().run_in_executor(None, role.stop)

        @Service.task
        async def _watch_writer(self) -> None:
            while not self.should_stop:
                if role.writer.error is not None:
                    await self.crash(role.writer.error)
                    return
                await self.sleep(1.0)

    app.service(ClickHouseSink)
    return role
