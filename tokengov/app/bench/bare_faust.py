"""The framework's floor in ``tokengov bench streams``: a Faust agent that does no work.

It consumes the events topic with the worker's own Faust settings
(:func:`tokengov.app.worker_app.app_settings`) and garbage-collector thresholds, and acks
each message as it comes; a timer commits the acked offsets every ``flush_interval_s``
seconds, as stage 1 does after each flush (:func:`tokengov.streams.partition_stage.commit_acked`).
Nothing is decoded. What this process spends per event is what Faust and aiokafka cost the
worker before any of tokengov's work: the part of a process's CPU that no change to the
stages can take back. Run by the benchmark as ``python -m tokengov.app.bench.bare_faust``.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

import faust
from faust.worker import Worker

from tokengov.app.faust_adjustments import adjust_faust, without_spinner
from tokengov.app.worker_app import app_settings
from tokengov.core.kafka import load_connection
from tokengov.core.process_tuning import raise_gc_thresholds
from tokengov.core.topics import Topics
from tokengov.streams.partition_stage import GC_THRESHOLDS, commit_acked

__all__ = ["bare_faust_command", "bare_faust_group", "build"]


def bare_faust_group(prefix: str) -> str:
    """The bare agent's consumer group (its app id) on the topics of ``prefix``."""
    return f"{prefix}tokengov-bench-bare-faust"


def bare_faust_command(bootstrap: str, prefix: str, data_dir: Path) -> list[str]:
    """The bare agent as a process of the benchmark, on the topics of ``prefix``."""
    return [
        sys.executable, "-m", "tokengov.app.bench.bare_faust", "--bootstrap", bootstrap,
        "--prefix", prefix, "--data-dir", str(data_dir),
    ]  # fmt: skip


def build(
    bootstrap: str, prefix: str, data_dir: Path, *, flush_interval_s: float = 0.5
) -> faust.App:
    adjust_faust()
    raise_gc_thresholds(*GC_THRESHOLDS)  # as the streams role does
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = load_connection(bootstrap=bootstrap)  # TOKENGOV_KAFKA_* for TLS/SASL
    app = faust.App(bare_faust_group(prefix), **app_settings(conn, data_dir))
    events = app.topic(
        Topics.with_prefix(prefix).events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(events, name="bare")
    async def bare(stream: Any) -> None:
        manual = stream.noack()
        async for event in manual.events():
            await manual.ack(event)

    app.timer(flush_interval_s, name="bare.commit")(partial(commit_acked, app))
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    args = parser.parse_args()
    app = build(args.bootstrap, args.prefix, args.data_dir)
    without_spinner(
        Worker(app, loglevel="WARNING", redirect_stdouts=False, quiet=True)
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
