"""The ``otlp`` role of ``tokengov worker`` (part of ``all``): the OTLP/HTTP receiver as a
service of the Faust app, on its event loop. The policy's ``otlp:`` section is swapped in on
every reload (SIGHUP).

A port already taken does not stop the worker's other roles: the receiver logs an ERROR
naming ``TOKENGOV_OTLP_PORT`` and the worker governs on without it.
"""

from __future__ import annotations

import logging

import faust
from mode import Service

from tokengov.core.policy import Policy
from tokengov.core.worker_context import WorkerContext
from tokengov.ingest.otlp.runtime import build_receiver, write_address
from tokengov.ingest.otlp.server import OtlpReceiver

__all__ = ["OtlpRuntime", "register"]

log = logging.getLogger(__name__)


class OtlpRuntime:
    """Starts the receiver with the worker and stops it with it."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.receiver: OtlpReceiver | None = None

    def _reload(self, policy: Policy) -> None:
        if self.receiver is not None:
            self.receiver.converter.use(policy.otlp, policy.owner_team)

    async def start(self) -> None:
        settings = self.ctx.settings
        receiver = build_receiver(settings, self.ctx.policy.current, self.ctx.topics)
        try:
            address = await receiver.start(settings.otlp_host, settings.otlp_port)
        except OSError as exc:
            receiver.tracker.close(0)
            log.error(
                "the OTLP receiver cannot listen on %s:%d (%s): set TOKENGOV_OTLP_PORT to a "
                "free port; the worker's other roles run on without it",
                settings.otlp_host,
                settings.otlp_port,
                exc,
            )
            return
        self.receiver = receiver
        self.ctx.policy.subscribe(self._reload)
        write_address(settings.worker_state_dir, address)

    async def stop(self) -> None:
        if self.receiver is not None:
            await self.receiver.stop()
            self.receiver = None


def register(app: faust.App, ctx: WorkerContext) -> OtlpRuntime:
    runtime = OtlpRuntime(ctx)

    class OtlpService(Service):
        async def on_start(self) -> None:
            await runtime.start()

        async def on_stop(self) -> None:
            await runtime.stop()

    app.service(OtlpService)
    return runtime
