"""Publishing through the Faust app's producer; every send is tracked until delivered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import faust
import orjson

from streams.ledger import CAUSE_HEADER
from tokengov.contracts import Alert, Decision
from tokengov.topics import Topics

__all__ = ["Publisher"]

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, app: faust.App, topics: Topics) -> None:
        self.app = app
        self.topics = topics
        self._pending: list[Awaitable[Any]] = []
        self.sent = {"alerts": 0, "decisions": 0, "metrics": 0, "deadletter": 0}

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        future = await self.app.producer.send(topic, key, value, partition, None, headers)
        self._pending.append(future)

    async def alert(self, alert: Alert) -> None:
        await self.send(self.topics.alerts, alert.team.encode(), alert.model_dump_json().encode())
        self.sent["alerts"] += 1
        log.info("alert %s: %s", alert.fingerprint, alert.summary)

    async def decision(self, decision: Decision, cause: str) -> None:
        await self.send(
            self.topics.decisions,
            decision.topic_key.encode(),
            decision.model_dump_json().encode(),
            headers=[(CAUSE_HEADER, cause.encode())],
        )
        self.sent["decisions"] += 1
        log.warning("decision %s %s: %s", decision.action, decision.topic_key, decision.reason)

    async def metric(self, key: str, doc: dict[str, Any]) -> None:
        await self.send(self.topics.metrics, key.encode(), orjson.dumps(doc))
        self.sent["metrics"] += 1

    async def dead_letter(self, key: bytes | None, record: bytes) -> None:
        await self.send(self.topics.deadletter, key, record)
        self.sent["deadletter"] += 1

    async def outputs(self, out: Any) -> None:
        """Publish everything an :class:`streams.core.Output` holds (decisions before their
        alerts: an alert on the topic implies its decision is there too) and clear it."""
        for decision, cause in out.decisions:
            await self.decision(decision, cause)
        for alert in out.alerts:
            await self.alert(alert)
        for key, doc in out.metrics:
            await self.metric(key, doc)
        out.clear()

    async def delivered(self) -> None:
        """Wait until everything sent so far is on the broker; raises if a send failed."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
