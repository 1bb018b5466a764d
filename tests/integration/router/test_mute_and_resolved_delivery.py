"""Through the running router to a real HTTP server: ``send_resolved: false`` (the receiver
hears of the firing alert only, a default webhook of the resolution too), and a route
inside a mute time interval (its receiver hears nothing, its sibling is notified)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
import pytest_asyncio
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
  growth: {{owner: g@example.com}}
receivers:
  console: {{type: log}}
  hook: {{type: webhook, url: "{url}/hook"}}
  quiet: {{type: webhook, url: "{url}/quiet", send_resolved: false}}
  muted: {{type: webhook, url: "{url}/muted"}}
time_intervals:
  - name: always
    time_intervals: [{{times: [{{start_time: "00:00", end_time: "24:00"}}]}}]
routes:
  receiver: console
  group_by: [team]
  group_wait: 50ms
  group_interval: 200ms
  repeat_interval: 1h
  routes:
    - {{match: {{team: search}}, receiver: hook, continue: true}}
    - {{match: {{team: search}}, receiver: quiet}}
    - {{match: {{team: growth}}, receiver: muted, mute_time_intervals: [always], continue: true}}
    - {{match: {{team: growth}}, receiver: hook}}
"""


def runaway(team: str) -> Alert:
    return Alert(
        fingerprint=f"runaway|{team}|t-1",
        kind="runaway",
        severity="warning",
        team=team,
        task_id="t-1",
        summary="t-1 ran away",
        evidence={},
        starts_at=datetime.now(UTC),
    )


@pytest_asyncio.fixture
async def router(http_capture) -> AsyncIterator[Router]:
    policy = parse_policy(POLICY.format(url=http_capture.url))
    async with httpx.AsyncClient() as client:
        running = Router(
            Dispatcher(RouteTree.from_policy(policy), MemoryState()),
            build_receivers(policy, client=client, env={}, console=Console(file=io.StringIO())),
            notification_log=MemoryNotificationLog(),
            log_flush_interval_s=0.1,
        )
        await running.start()
        try:
            yield running
        finally:
            await running.stop()


async def test_route_inside_a_mute_interval_sends_nothing(router, http_capture):
    router.ingest(runaway("growth"))
    await http_capture.wait_for(1, path="/hook")
    await eventually(
        lambda: router.dispatcher.counters["flushes_time_muted"] >= 1, what="a muted flush"
    )
    assert http_capture.on("/muted") == []
    [group] = [g for g in router.dispatcher.groups.values() if g.receiver == "muted"]
    assert router.dispatcher.state.nflog_get(group.key, "muted") is None


async def test_receiver_without_send_resolved_gets_no_resolution(router, http_capture):
    firing = runaway("search")
    router.ingest(firing)
    await http_capture.wait_for(1, path="/hook")
    await http_capture.wait_for(1, path="/quiet")
    router.ingest(firing.model_copy(update={"status": "resolved", "ends_at": datetime.now(UTC)}))
    hook = await http_capture.wait_for(2, path="/hook")
    assert orjson.loads(hook[1].body)["reason"] == "all alerts resolved"
    # both groups are done with (quiet's was recorded as notified without a POST)
    await eventually(lambda: not router.dispatcher.groups, what="the groups to be gone")
    assert len(http_capture.on("/quiet")) == 1
    assert orjson.loads(http_capture.on("/quiet")[0].body)["status"] == "firing"
    assert router.dispatcher.counters["alerts_resolved_not_sent"] == 1
