"""The debt role on the worker's Faust app: events in, findings and alerts out on a timer.

Its own agent reads ``ctx.topics.events`` as raw bytes (single events and batch
envelopes, through the one decoder, :func:`tokengov.core.decoding.decode_events`) and feeds a
:class:`~tokengov.streams.debt.engine.DebtEngine` (duplicates by ``event_id`` count once).
A timer flushes the engine every ``debt.flush_interval`` and publishes each
finding as its JSON (key = workflow) on ``ctx.topics.findings`` and each alert
(key = team) on ``ctx.topics.alerts``. Undecodable messages are the streams
role's to dead-letter; here they are counted and logged, never judged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import StreamT

from tokengov.core.calls import from_model
from tokengov.core.decoding import decode_events
from tokengov.core.worker_context import WorkerContext
from tokengov.streams.debt.engine import DebtEngine, FlushResult

__all__ = ["DebtRole", "register"]

log = logging.getLogger(__name__)


@dataclass
class DebtRole:
    """What :func:`register` wired, for the worker and for tests."""

    engine: DebtEngine
    undecodable: int = 0
    failed: int = 0
    findings_sent: int = 0
    alerts_sent: int = 0


def register(app: faust.App, ctx: WorkerContext, *, engine: DebtEngine | None = None) -> DebtRole:
    role = DebtRole(engine or DebtEngine(ctx.policy))
    if ctx.debt_history:
        # the horizon's history from the store; each event_id counts once, so reading the
        # same events from the topic again changes nothing
        taken = sum(role.engine.observe(from_model(event)) for event in ctx.debt_history)
        log.info(
            "debt: %d of %d stored events of the horizon replayed", taken, len(ctx.debt_history)
        )
    events = app.topic(
        ctx.topics.events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    findings = app.topic(ctx.topics.findings, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(ctx.topics.alerts, key_serializer="raw", value_serializer="raw")

    async def consume(stream: StreamT[Any]) -> None:
        async for raw in stream:
            decoded = decode_events(raw)
            if decoded.failures:
                role.undecodable += len(decoded.failures)
                log.debug(
                    "debt: %d undecodable item(s) skipped (dead-lettered by the streams role)",
                    len(decoded.failures),
                )
            for _, event in decoded.events:
                try:
                    role.engine.observe(event)
                except Exception:  # a bug must not stop the worker (the streams role governs)
                    role.failed += 1
                    log.exception("debt: event %s could not be observed", event.event_id)

    app.agent(events, name="tokengov-debt")(consume)

    async def publish() -> None:
        await publish_result(role, role.engine.flush(), findings, alerts)

    interval = ctx.policy.current.debt.flush_interval.total_seconds()
    app.timer(interval=interval, name="tokengov-debt-flush")(publish)
    return role


async def publish_result(
    role: DebtRole, result: FlushResult, findings: faust.TopicT, alerts: faust.TopicT
) -> None:
    for finding in result.findings:
        await findings.send(key=finding.workflow.encode(), value=finding.model_dump_json().encode())
        role.findings_sent += 1
    for alert in result.alerts:
        await alerts.send(key=alert.team.encode(), value=alert.model_dump_json().encode())
        role.alerts_sent += 1
    if result.findings or result.alerts:
        log.info(
            "debt: published %d finding(s), %d alert(s)", len(result.findings), len(result.alerts)
        )
