"""LiteLLM offline: its model-cost map from the copy in the package (no fetch, see
docs/litellm.md), calls answered by LiteLLM's own ``mock_response``. litellm is imported by
the fixtures, not at collection, so only the worker that runs these tests pays its import."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import Producer

from tokengov.core.contracts import Decision
from tokengov.core.topics import NO_AUTO_CREATE, Topics

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

#: Every list LiteLLM copies a registered callback into.
_CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "service_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


@pytest.fixture(scope="session")
def litellm() -> ModuleType:
    import litellm

    return litellm


def publish(bootstrap: str, topics: Topics, *decisions: Decision) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, **NO_AUTO_CREATE})
    for decision in decisions:
        producer.produce(
            topics.decisions,
            key=decision.topic_key.encode(),
            value=decision.model_dump_json().encode(),
        )
    assert producer.flush(10) == 0


class Waits:
    """The callback's sleeps, recorded (and really slept)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def sleep(self, seconds: float) -> None:
        import asyncio

        self.seconds.append(seconds)
        await asyncio.sleep(seconds)

    def sync_sleep(self, seconds: float) -> None:
        import time

        self.seconds.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def make_callback(
    litellm: ModuleType, bootstrap: str, topic_names: Topics, tmp_path: Path, waits: Waits
) -> Iterator[Any]:
    """Builds the test's TokengovCallback (after the test published its decisions), registers
    it with LiteLLM, and unregisters and closes it afterwards."""
    from tokengov.integrations.litellm import TokengovCallback

    made: list[TokengovCallback] = []

    def make(**options: Any) -> TokengovCallback:
        callback = TokengovCallback(
            bootstrap,
            topics=topic_names,
            spool_dir=tmp_path / "spool",
            sleep=waits.sleep,
            sync_sleep=waits.sync_sleep,
            **options,
        )
        made.append(callback)
        if callback.guard is not None:
            assert callback.guard.wait_caught_up(20), "the guard did not read the decisions"
        litellm.callbacks = [callback]
        return callback

    yield make
    for callback in made:
        unregister(litellm, callback)
        callback.close()


def unregister(litellm: ModuleType, callback: object) -> None:
    """Take ``callback`` out of every list LiteLLM copied it into."""
    for name in _CALLBACK_LISTS:
        registered = getattr(litellm, name, None)
        if isinstance(registered, list):
            registered[:] = [c for c in registered if c is not callback]
