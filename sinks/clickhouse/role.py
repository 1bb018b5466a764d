"""``tokengov worker --role sink``: the ClickHouse writer (and, for an embedded store, the
read-only query endpoint) as a service of the worker's Faust app.

The writer uses its own confluent-kafka consumer (group ``tokengov-sink``) in a
thread: it needs manual commits after ClickHouse acknowledges, and pause/resume
for backpressure, which it controls there directly. The service starts it with
the app, stops it (flushing what is buffered) with the app, and crashes the
worker if the writer dies.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from mode import Service

from sinks.clickhouse.decode import MessageDecoder
from sinks.clickhouse.endpoint import QueryEndpoint
from sinks.clickhouse.schema import SchemaOptions
from sinks.clickhouse.store import ClickHouseStore
from sinks.clickhouse.writer import SinkConfig, SinkWriter
from tokengov.runtime import WorkerContext

__all__ = ["SinkRole", "register"]

log = logging.getLogger(__name__)


class SinkRole:
    """The writer and the endpoint of one worker process, built from its context."""

    def __init__(self, ctx: WorkerContext, config: SinkConfig | None = None) -> None:
        settings = ctx.settings
        self.store = ClickHouseStore(settings.clickhouse_dsn)
        self.writer = SinkWriter(
            bootstrap=ctx.bootstrap,
            topics=ctx.topics,
            store=self.store,
            decoder=MessageDecoder(lambda: ctx.policy.current.catalog),
            config=config
            or SinkConfig(schema=SchemaOptions(ttl_days=settings.clickhouse_ttl_days)),
        )
        self.endpoint: QueryEndpoint | None = None
        if settings.embedded_clickhouse:
            self.endpoint = QueryEndpoint(
                settings.clickhouse_dsn, settings.query_endpoint, settings.data_dir
            )

    def start(self) -> None:
        self.writer.start()
        if self.endpoint is not None:
            try:
                self.endpoint.start()
            except OSError as exc:
                log.warning(
                    "query endpoint %s unavailable (%s); serving on a free port",
                    self.endpoint.address,
                    exc,
                )
                self.endpoint.port = 0
                self.endpoint.start()

    def stop(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
        self.writer.stop()
        self.store.close()


def register(app: faust.App, ctx: WorkerContext) -> None:
    """Add the ClickHouse sink to ``app``: it starts and stops with the worker."""
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
