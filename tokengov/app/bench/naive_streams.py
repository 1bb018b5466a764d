"""The baseline of ``tokengov bench streams``: a naive one-event-at-a-time Faust agent.

It does the same work as the real worker's stage 1 — validate with the pydantic
models, price, per-task state, runaway/retry/loop detection, the partials —
the way a first Faust app would: one event per message, one ``async for``
iteration per event, the task's state written to a changelog topic per event
(what a Faust table write does; a Faust table itself cannot recover against
Tansu, see docs/streams.md), alerts sent as they happen. Run by the
benchmark as ``python -m tokengov.app.bench.naive_streams``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import faust
import orjson
from faust.worker import Worker

from tokengov.app.faust_adjustments import without_spinner
from tokengov.app.faust_broker import faust_broker_options
from tokengov.core.calls import from_model
from tokengov.core.decoding import parse_event
from tokengov.core.errors import ContractError
from tokengov.core.kafka import load_connection
from tokengov.core.policy import load_policy
from tokengov.core.topics import Topics
from tokengov.streams.core import Output, PartitionProcessor, PolicyView, SystemClock, position

log = logging.getLogger(__name__)


def build(
    bootstrap: str, prefix: str, policy_path: str, datadir: str, partitions: int
) -> faust.App:
    conn = load_connection(bootstrap=bootstrap)  # TOKENGOV_KAFKA_* for TLS/SASL
    topics = Topics.with_prefix(prefix)
    view = PolicyView(load_policy(policy_path))
    app = faust.App(
        f"{prefix}naive-worker",
        **faust_broker_options(conn),
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        autodiscover=False,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6,
        broker_rebalance_timeout=6,
        broker_heartbeat_interval=1,
    )
    events = app.topic(
        topics.events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    alerts = app.topic(
        topics.alerts,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    state = app.topic(
        f"{prefix}naive-task-state",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=True,
        compacting=True,
    )
    processors: dict[int, PartitionProcessor] = {}
    out = Output()

    @app.agent(events, name="naive")
    async def naive(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            proc = processors.get(message.partition)
            if proc is None:
                proc = processors[message.partition] = PartitionProcessor(
                    message.partition, view.settings, SystemClock()
                )
            try:
                item = from_model(parse_event(orjson.loads(message.value)))
            except (ContractError, orjson.JSONDecodeError):
                continue
            proc.begin()
            proc.process(item, position(message.offset, 0), view, out)
            task = proc.tasks.get(item.task_id)
            if task is not None:
                await state.send(key=item.task_id.encode(), value=task.to_bytes())
            for alert in out.alerts:
                await alerts.send(key=alert.team.encode(), value=alert.model_dump_json().encode())
            out.clear()

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    args = parser.parse_args()
    app = build(args.bootstrap, args.prefix, args.policy, args.data_dir, args.partitions)
    # without the spinner, as ``tokengov worker`` runs: the baseline pays no debug records
    without_spinner(
        Worker(app, loglevel="WARNING", redirect_stdouts=False, quiet=True)
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
