"""Every Faust app tokengov builds — the worker's (``tokengov worker --role router|all``) and
the router's own (:func:`tokengov.app.router_app.router_app`) — makes its consumer ask the
broker to hold a fetch at most ``FETCH_MAX_WAIT_MS`` and never to create a topic (issue 15:
Faust's hard-coded 1500 ms fetch wait was the router's whole delay beyond ``group_wait``).

The adjustments patch Faust and aiokafka once per process, so each app is built in a fresh
interpreter: built in this one, an app would pass because another test's app adjusted Faust.
The consumer is made the way Faust makes it when the worker starts, without connecting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tokengov.app.faust_adjustments import FETCH_MAX_WAIT_MS

BUILD_AND_INSPECT = """
import asyncio, sys, tempfile
from pathlib import Path

import aiokafka.client

from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.core.worker_context import PolicyHolder, WorkerContext


async def main(which: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = WorkerContext(
            settings=Settings(data_dir=Path(tmp), kafka_bootstrap="127.0.0.1:1"),
            policy=PolicyHolder(parse_policy("version: 1\\n")),
            topics=Topics.with_prefix("fetchwait."),
        )
        if which == "router_app":
            from tokengov.app.router_app import router_app

            app, _ = router_app(ctx)
        else:
            from tokengov.app.worker_app import create_app

            app = create_app(ctx, [which])
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            no_auto_create = getattr(aiokafka.client.MetadataRequest, "tokengov_no_auto_create", False)
            print(consumer._fetch_max_wait_ms, no_auto_create)
        finally:
            await consumer.stop()


asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("which", ["router_app", "router"])
def test_the_router_consumer_holds_fetches_briefly_and_creates_no_topics(which: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BUILD_AND_INSPECT, which],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(FETCH_MAX_WAIT_MS), "True"]
