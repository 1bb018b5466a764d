"""The router's delivery against real HTTP servers and the real broker: retries,
dead letters, receiver_failing, isolation of slow receivers, resolve."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import httpx
import orjson
import pytest
import pytest_asyncio
from rich.console import Console

from tests.integration.router.conftest import eventually, read_topic
from tokengov.core.contracts import Alert
from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.errors import BrokerError
from tokengov.core.kafka import CheckedProducer
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.delivery import RetryPolicy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.inhibit import Inhibitor
from tokengov.sinks.router.kafka import KafkaAlertSink, KafkaDeadLetters
from tokengov.sinks.router.notification_log import MemoryNotificationLog
from tokengov.sinks.router.receivers import build_receivers
from tokengov.sinks.router.receivers.webhook import NOTIFICATION_ID_HEADER
from tokengov.sinks.router.router import Router
from tokengov.sinks.router.state import MemoryState
from tokengov.sinks.router.tree import RouteTree

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POLICY = """
version: 1
teams:
  search: {{owner: s@example.com}}
receivers:
  default-hook: {{type: webhook, url: "{url}/default"}}
  search-hook: {{type: webhook, url: "{url}/search"}}
  slow-hook: {{type: webhook, url: "{url}/slow", timeout: 30s}}
routes:
  receiver: default-hook
  group_by: [team, kind]
  group_wait: 50ms
  group_interval: 300ms
  repeat_interval: 1h
  routes:
    - {{match: {{team: search, severity: critical}}, receiver: slow-hook, continue: true}}
    - {{match: {{team: search}}, receiver: search-hook}}
"""

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


def alert(task: str = "t-1", severity: str = "warning", status: str = "firing") -> Alert:
    return Alert(
        fingerprint=f"runaway|search|wf|{task}|max_calls",
        kind="runaway",
        severity=severity,
        status=status,
        team="search",
        workflow="wf",
        task_id=task,
        summary=f"{task} ran away",
        evidence={"observed": 9, "limit": 8},
        starts_at=datetime.now(UTC),
    )


@pytest_asyncio.fixture
async def client():
    async with httpx.AsyncClient() as c:
        yield c


@pytest_asyncio.fixture
async def make_router(http_capture, client):
    routers: list[Router] = []

    async def make(**kwargs) -> Router:
        policy = parse_policy(POLICY.format(url=http_capture.url))
        dispatcher = Dispatcher(
            RouteTree.from_policy(policy), kwargs.pop("state", MemoryState()), inhibitor=Inhibitor()
        )
        receivers = build_receivers(
            policy, client=client, env={}, console=Console(file=io.StringIO())
        )
        router = Router(
            dispatcher,
            receivers,
            notification_log=MemoryNotificationLog(),
            retry=kwargs.pop("retry", FAST_RETRY),
            log_flush_interval_s=0.1,
            **kwargs,
        )
        await router.start()
        routers.append(router)
        return router

    yield make
    for router in routers:
        await router.stop()


async def test_retries_with_backoff_then_delivers(make_router, http_capture):
    http_capture.statuses = [503, 500]  # two failures, then 200
    router = await make_router()
    router.ingest(alert())
    await http_capture.wait_for(3, path="/search")
    log = router.notification_log
    await eventually(lambda: len(log.attempts) == 3, what="three attempts recorded")
    assert [(a.attempt, a.result) for a in log.attempts] == [
        (1, "failed"),
        (2, "failed"),
        (3, "delivered"),
    ]
    assert "HTTP 503" in log.attempts[0].error and log.attempts[2].error == ""
    assert router.dead_lettered == 0


async def test_failing_receiver_dead_letters_and_raises_receiver_failing(
    make_router, http_capture, bootstrap, topic_names
):
    http_capture.statuses = [500, 500, 500]  # /search fails three times: all its attempts
    publisher = CheckedProducer(bootstrap)
    router = await make_router(
        dead_letters=KafkaDeadLetters(publisher, topic_names.deadletter),
        alert_sink=KafkaAlertSink(publisher, topic_names.alerts),
    )
    router.ingest(alert())
    # The default route hears that search-hook is failing.
    [failing_note] = await http_capture.wait_for(1, path="/default")
    body = orjson.loads(failing_note.body)
    assert [a["kind"] for a in body["alerts"]] == ["receiver_failing"]
    assert body["alerts"][0]["labels"] == {"receiver": "search-hook"}
    assert "HTTP 500" in body["alerts"][0]["evidence"]["last_error"]
    assert [a.result for a in router.notification_log.attempts if a.receiver == "search-hook"][
        :3
    ] == ["failed", "failed", "dead_letter"]
    publisher.flush()
    [dead] = read_topic(bootstrap, topic_names.deadletter, 1)
    record = DeadLetterRecord.model_validate_json(dead.value())
    assert record.stage == "router" and record.raw_is == "notification"
    assert record.details["receiver"] == "search-hook" and record.source_topic is None
    assert record.reason.startswith("undeliverable: receiver 'search-hook': POST")
    assert orjson.loads(record.raw())["alerts"][0]["task_id"] == "t-1"
    [published] = read_topic(bootstrap, topic_names.alerts, 1)
    assert Alert.model_validate_json(published.value()).kind == "receiver_failing"
    # The receiver recovers: the next group_interval delivers, receiver_failing resolves.
    await http_capture.wait_for(4, path="/search")
    notes = await http_capture.wait_for(2, path="/default", timeout_s=10)
    resolved = orjson.loads(notes[1].body)
    assert resolved["status"] == "resolved" and resolved["alerts"][0]["kind"] == "receiver_failing"


async def test_slow_receiver_does_not_delay_the_others(make_router, http_capture):
    http_capture.hold = asyncio.Event()  # every request waits until released
    router = await make_router()
    router.ingest(alert(severity="critical"))  # → slow-hook (continue) and search-hook
    await http_capture.wait_for(1, path="/slow")
    # search-hook's request arrives while slow-hook's is still unanswered
    await http_capture.wait_for(1, path="/search")
    assert router.queues["slow-hook"].busy == 1
    http_capture.hold.set()
    log = router.notification_log
    await eventually(
        lambda: (
            {a.receiver for a in log.attempts if a.result == "delivered"}
            == {"slow-hook", "search-hook"}
        ),
        what="both delivered",
    )


async def test_resolved_alert_is_notified(make_router, http_capture):
    router = await make_router()
    firing = alert()
    router.ingest(firing)
    await http_capture.wait_for(1, path="/search")
    router.ingest(firing.model_copy(update={"status": "resolved", "ends_at": datetime.now(UTC)}))
    notes = await http_capture.wait_for(2, path="/search")
    body = orjson.loads(notes[1].body)
    assert body["status"] == "resolved" and body["reason"] == "all alerts resolved"
    await eventually(lambda: not router.dispatcher.groups, what="the group to be gone")


async def test_a_notification_goes_out_only_once_its_outbox_record_is_stored(
    make_router, http_capture
):
    """A router that dies while delivering leaves the notification in the outbox its
    partition's next owner reads (same id): it stores the outbox before sending."""
    state = MemoryState()
    stored = asyncio.Event()
    asked: list[tuple[list[str], int]] = []  # (the outbox, requests received) at each barrier

    async def persist() -> None:
        asked.append(([n.notification_id for n in state.outbox_all()], len(http_capture.received)))
        await stored.wait()

    router = await make_router(state=state, persist=persist)
    router.ingest(alert())
    await eventually(lambda: asked, what="the flush to ask for its outbox to be stored")
    [(outbox, received)] = asked
    assert len(outbox) == 1 and received == 0  # in the outbox, not sent yet
    stored.set()
    [request] = await http_capture.wait_for(1, path="/search")
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers[NOTIFICATION_ID_HEADER.lower()] == outbox[0]


async def test_a_notification_goes_out_when_its_outbox_cannot_be_stored(make_router, http_capture):
    """Paging late or not at all is worse than telling a change twice: past the wait (here
    at once, the store failing) the notification is sent anyway."""

    async def persist() -> None:
        raise BrokerError("the state topic is unreachable")

    router = await make_router(persist=persist)
    router.ingest(alert())
    await http_capture.wait_for(1, path="/search")
    assert router.dead_lettered == 0
