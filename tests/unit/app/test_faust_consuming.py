"""How the worker's Faust consumer hands messages to the streams, and what it records of each.

Faust's fetch loop hands each message to the streams with
``consumer.wait_first(callback(message), consumer.suspend_flow.wait())``;
:func:`tokengov.app.faust_adjustments.deliver_inline` runs that delivery in the loop's own
task instead of in four new ones. The reference is mode's own ``Service.wait_first`` (what
the consumer ran before), called on the same consumer with the same deliveries: the winners,
the results, what the delivery did and when, and what a suspended flow cancels must be the
same. The consumer is Faust's (the aiokafka transport's), built without connecting.

Per message the worker's app keeps, of Faust's Monitor, only what Faust's livelock check
reads (:class:`tokengov.app.faust_adjustments.LeanMonitor`)."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
import pytest
import pytest_asyncio
from mode.services import Service

from tokengov.app.faust_adjustments import LeanMonitor, deliver_inline

Delivery = Callable[[list[str]], Awaitable[Any]]


@pytest_asyncio.fixture
async def consumer() -> AsyncIterator[Any]:
    deliver_inline()
    app = faust.App("deliver-inline", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer = app.consumer
    assert type(consumer).__module__ == "faust.transport.drivers.aiokafka"
    yield consumer


def adjusted(consumer: Any) -> Callable[..., Awaitable[Any]]:
    return consumer.wait_first  # type: ignore[no-any-return]


def reference(consumer: Any) -> Callable[..., Awaitable[Any]]:
    return lambda *coros, timeout=None: Service.wait_first(consumer, *coros, timeout=timeout)


WAYS = [adjusted, reference]
#: whether each delivery of ``run`` started in the fetch loop's task
INLINE: list[bool] = []


async def run(
    wait_first: Callable[..., Awaitable[Any]], consumer: Any, delivery: Delivery
) -> tuple[list[str], list[str], list[Any], bool]:
    """What the fetch loop sees: which of (delivery, suspension) won, their results, whether
    the service stopped; and the log of what happened, with an agent woken by the delivery
    (as the conductor's put on a stream's queue wakes the stream)."""
    log: list[str] = []
    tasks: list[asyncio.Task[Any] | None] = []
    queue: asyncio.Queue[str] = asyncio.Queue()

    async def agent() -> None:
        log.append(f"agent got {await queue.get()}")

    async def deliver() -> Any:
        tasks.append(asyncio.current_task())
        result = await delivery(log)
        queue.put_nowait("message")
        log.append("delivered")
        return result

    agent_task = asyncio.create_task(agent())
    await asyncio.sleep(0)  # the agent waits on its queue
    coro = deliver()
    suspended = consumer.suspend_flow.wait()
    results = await wait_first(coro, suspended)
    log.append("fetch loop goes on")
    names = {id(coro): "delivery", id(suspended): "suspended"}
    agent_task.cancel()
    INLINE.append(tasks == [asyncio.current_task()])
    return log, [names[id(w)] for w in results.done], list(results.results), results.stopped


async def returns_at_once(log: list[str]) -> str:
    log.append("decoded")
    return "value"


async def suspends_then_returns(log: list[str]) -> str:
    log.append("waits for room")
    await asyncio.sleep(0.01)
    log.append("has room")
    return "value"


@pytest.mark.asyncio
@pytest.mark.parametrize("delivery", [returns_at_once, suspends_then_returns])
async def test_a_delivery_runs_and_wakes_the_agent_before_the_fetch_loop_goes_on(
    consumer: Any, delivery: Delivery
) -> None:
    INLINE.clear()
    outcomes = [await run(way(consumer), consumer, delivery) for way in WAYS]
    assert outcomes[0] == outcomes[1]
    # the adjustment is in force: the delivery started in the fetch loop's task
    assert INLINE == [True, False]
    log, done, results, stopped = outcomes[0]
    assert log[-3:] == ["delivered", "agent got message", "fetch loop goes on"]
    assert (done, results, stopped) == (["delivery"], ["value"], False)


@pytest.mark.asyncio
async def test_a_delivery_waiting_when_the_flow_stops_is_cancelled_as_before(
    consumer: Any,
) -> None:
    async def blocked(log: list[str]) -> None:
        log.append("waits for the flow")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    outcomes = []
    for way in WAYS:
        consumer.suspend_flow.clear()
        asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)
        outcome = await run(way(consumer), consumer, blocked)
        await asyncio.sleep(0.01)  # the cancelled delivery unwinds
        outcomes.append(outcome)
    consumer.suspend_flow.clear()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] == (
        ["waits for the flow", "fetch loop goes on", "cancelled"],
        ["suspended"],
        [True],
        False,
    )


@pytest.mark.asyncio
async def test_with_the_flow_suspended_mode_decides_as_before(consumer: Any) -> None:
    outcomes = []
    for way in WAYS:
        consumer.suspend_flow.set()
        outcomes.append(await run(way(consumer), consumer, returns_at_once))
    consumer.suspend_flow.clear()
    assert outcomes[0] == outcomes[1]


@pytest.mark.asyncio
async def test_a_delivery_that_raises_raises_and_leaves_no_coroutine_unawaited(
    consumer: Any,
) -> None:
    class Broken(Exception):
        pass

    async def raises(log: list[str]) -> None:
        raise Broken("a bug in the conductor")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for way in WAYS:
            with pytest.raises(Broken):
                await run(way(consumer), consumer, raises)
        gc.collect()
    assert [w for w in caught if "never awaited" in str(w.message)] == []


WORKER_APP_MONITOR = """
import asyncio, sys, tempfile
from pathlib import Path

from tokengov.app.worker_app import create_app
from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.core.worker_context import PolicyHolder, WorkerContext


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = WorkerContext(
            settings=Settings(data_dir=Path(tmp), kafka_bootstrap="127.0.0.1:1"),
            policy=PolicyHolder(parse_policy("version: 1\\n")),
            topics=Topics.with_prefix("monitor."),
        )
        app = create_app(ctx, ["router"])
        print(type(app.monitor).__module__, type(app.monitor).__name__, app.monitor in set(app.sensors) or "later")


asyncio.run(main())
"""


def test_the_worker_app_uses_the_lean_monitor() -> None:
    """Built in a fresh interpreter, as ``tokengov worker`` builds it (the app's settings)."""
    result = subprocess.run(
        [sys.executable, "-c", WORKER_APP_MONITOR], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[:2] == ["tokengov.app.faust_adjustments", "LeanMonitor"]


@pytest.mark.asyncio
async def test_the_lean_monitor_keeps_what_the_livelock_check_reads() -> None:
    from faust.types import TP

    monitor = LeanMonitor()
    tp = TP("tokengov.events", 3)
    message = object()
    monitor.on_message_in(tp, 7, message)
    state = monitor.on_stream_event_in(tp, 7, object(), object())
    monitor.on_stream_event_out(tp, 7, object(), object(), state)
    monitor.on_message_out(tp, 7, message)
    # what Faust's livelock check (its aiokafka driver's verify_event_path) reads
    assert set(monitor.stream_inbound_time) == {tp}
    # and nothing per message beyond it
    assert (monitor.messages_received_total, monitor.events_total) == (0, 0)
    assert monitor.tp_read_offsets == {} and len(monitor.events_runtime) == 0
