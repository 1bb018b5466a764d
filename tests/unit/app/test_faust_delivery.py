"""Faust's fetch loop hands each message to the streams with
``consumer.wait_first(callback(message), consumer.suspend_flow.wait())``;
:func:`tokengov.app.faust_adjustments.deliver_inline` runs that delivery in the loop's own
task instead of in four new ones. The reference is mode's own ``Service.wait_first`` (what
the consumer ran before), called on the same consumer with the same deliveries: the winners,
the results, what the delivery did and when, and what a suspended flow cancels must be the
same. The consumer is Faust's (the aiokafka transport's), built without connecting."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
import pytest
import pytest_asyncio
from mode.services import Service

from tokengov.app.faust_adjustments import deliver_inline

pytestmark = pytest.mark.asyncio

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


async def test_with_the_flow_suspended_mode_decides_as_before(consumer: Any) -> None:
    outcomes = []
    for way in WAYS:
        consumer.suspend_flow.set()
        outcomes.append(await run(way(consumer), consumer, returns_at_once))
    consumer.suspend_flow.clear()
    assert outcomes[0] == outcomes[1]


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
