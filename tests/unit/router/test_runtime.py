"""Every message on the alerts topic gets an ending: ingested, or dead-lettered with why."""

from __future__ import annotations

from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.notification_log import MemoryNotificationLog
from tokengov.sinks.router.router import Router
from tokengov.sinks.router.state import MemoryState
from tokengov.sinks.router.tree import RouteTree


class DeadLetters:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, str, dict[str, str]]] = []

    def publish(self, value, *, reason, where=None, key=None, details=None):
        self.items.append((value, reason, {**(where or {}), **(details or {})}))


class BrokenState(MemoryState):
    def save_group(self, group):
        raise OSError("disk full")


def router(policy, state, clock):
    dead = DeadLetters()
    dispatcher = Dispatcher(RouteTree.from_policy(policy), state, clock=clock)
    return Router(dispatcher, {}, notification_log=MemoryNotificationLog(), dead_letters=dead), dead


def test_messages_end_ingested_or_dead_lettered(policy, clock, make_alert):
    r, dead = router(policy, MemoryState(), clock)
    where = {"topic": "tokengov.alerts", "partition": "1", "offset": "42"}
    assert r.ingest_raw(make_alert().model_dump_json().encode(), where=where)
    assert r.dispatcher.counters["alerts_ingested"] == 1
    assert not r.ingest_raw(b'{"kind": "runaway"', where=where)
    assert not r.ingest_raw(
        b'{"kind": "nope", "fingerprint": "f", "severity": "info", "summary": "s"}'
    )
    assert [d[1].split(":")[0] for d in dead.items] == ["invalid alert", "invalid alert"]
    assert dead.items[0][2] == where and dead.items[0][0] == b'{"kind": "runaway"'
    assert "kind" in dead.items[1][1]


def test_an_alert_the_router_cannot_store_is_dead_lettered(policy, clock, make_alert):
    r, dead = router(policy, BrokenState(), clock)
    assert not r.ingest_raw(make_alert().model_dump_json().encode())
    [(_, reason, _)] = dead.items
    assert reason == "router could not take the alert: OSError: disk full"
