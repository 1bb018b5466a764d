"""A real Faust worker running only the sink role (what ``tokengov worker --role sink`` does),
for the role test."""

from __future__ import annotations

import sys
from pathlib import Path

import faust
from faust.worker import Worker

from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.core.worker_context import PolicyHolder, WorkerContext
from tokengov.sinks.clickhouse.role import register


def main() -> None:
    bootstrap, prefix, data_dir, policy, endpoint = sys.argv[1:6]
    settings = Settings(
        kafka_bootstrap=bootstrap,
        data_dir=Path(data_dir),
        policy=Path(policy),
        query_endpoint=endpoint,
    )
    ctx = WorkerContext(settings, PolicyHolder.from_file(Path(policy)), Topics.with_prefix(prefix))
    app = faust.App(
        f"{prefix}tokengov-test",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        datadir=str(Path(data_dir) / "faust"),
        broker_session_timeout=6,
        broker_rebalance_timeout=6,
        broker_heartbeat_interval=1,
        topic_disable_leader=True,
    )
    register(app, ctx)
    # Only the sink role: no agent, so nothing for Faust's own consumer to subscribe to.
    app.producer_only = True
    Worker(app, loglevel="INFO", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
