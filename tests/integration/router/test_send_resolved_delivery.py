"""``send_resolved: false`` through the running router to a real HTTP server: the receiver
hears of the firing alert only, while a default webhook hears of the resolution too."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from rich.console import Console

from tests.integration.router.conftest import eventually
from tokengov.core.contracts import Alert
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.notification_log import MemoryNotificationLog
from tokengov.sinks.router.receivers import build_receivers
from tokengov.sinks.router.router import Router
from tokengov.sinks.router.state import MemoryState
from tokengov.sinks.router.tree import RouteTree

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POLICY = """
version: 1
teams:
  search: {{owner: s@example.com}}
receivers:
  console: {{type: log}}
  hook: {{type: webhook, url: "{url}/hook"}}
  quiet: {{type: webhook, url: "{url}/quiet", send_resolved: false}}
routes:
  receiver: console
  group_by: [team]
  group_wait: 50ms
  group_interval: 200ms
  repeat_interval: 1h
  routes:
    - {{match: {{team: search}}, receiver: hook, continue: true}}
    - {{match: {{team: search}}, receiver: quiet}}
"""


async def test_receiver_without_send_resolved_gets_no_resolution(http_capture):
    policy = parse_policy(POLICY.format(url=http_capture.url))
    async with httpx.AsyncClient() as client:
        router = Router(
            Dispatcher(RouteTree.from_policy(policy), MemoryState()),
            build_receivers(policy, client=client, env={}, console=Console(file=io.StringIO())),
            notification_log=MemoryNotificationLog(),
            log_flush_interval_s=0.1,
        )
        await router.start()
        try:
            firing = Alert(
                fingerprint="runaway|search|t-1",
                kind="runaway",
                severity="warning",
                team="search",
                task_id="t-1",
                summary="t-1 ran away",
                evidence={},
                starts_at=datetime.now(UTC),
            )
            router.ingest(firing)
            await http_capture.wait_for(1, path="/hook")
            await http_capture.wait_for(1, path="/quiet")
            router.ingest(
                firing.model_copy(update={"status": "resolved", "ends_at": datetime.now(UTC)})
            )
            hook = await http_capture.wait_for(2, path="/hook")
            assert orjson.loads(hook[1].body)["reason"] == "all alerts resolved"
            # both groups are done with (quiet's was recorded as notified without a POST)
            await eventually(lambda: not router.dispatcher.groups, what="the groups to be gone")
            assert len(http_capture.on("/quiet")) == 1
            assert orjson.loads(http_capture.on("/quiet")[0].body)["status"] == "firing"
            assert router.dispatcher.counters["alerts_resolved_not_sent"] == 1
        finally:
            await router.stop()
