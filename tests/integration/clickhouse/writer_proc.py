"""A ClickHouse writer in its own process, for the crash tests.

It SIGKILLs itself when flush number ``--kill-at`` reaches ``--kill-stage``
("planned": plan recorded, nothing inserted; "inserted": rows in ClickHouse,
offsets not committed; "reconciled": rollups repaired after an earlier crash,
offsets not committed; "committed"). On SIGTERM it stops cleanly and prints its
counters as JSON on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from tokengov.core.policy import load_policy
from tokengov.core.topics import Topics
from tokengov.sinks.clickhouse.batch import Flush
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import SinkConfig, SinkWriter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--kill-stage", default=None)
    parser.add_argument("--kill-at", type=int, default=1)
    parser.add_argument("--max-rows", type=int, default=100)
    parser.add_argument("--decoders", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )

    seen = {"planned": 0, "inserted": 0, "reconciled": 0, "committed": 0}

    def on_stage(stage: str, _flush: Flush) -> None:
        seen[stage] += 1
        if stage == args.kill_stage and seen[stage] == args.kill_at:
            logging.getLogger("writer_proc").warning(
                "SIGKILL at %s of flush %d", stage, args.kill_at
            )
            os.kill(os.getpid(), signal.SIGKILL)

    policy = load_policy(args.policy)
    writer = SinkWriter(
        bootstrap=args.bootstrap,
        topics=Topics.with_prefix(args.prefix),
        store=ClickHouseStore(args.dsn),
        decoder=MessageDecoder(lambda: policy.catalog),
        config=SinkConfig(
            group_id=args.group,
            max_rows=args.max_rows,
            decoders=args.decoders,
            max_delay_s=0.2,
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            # Short group timeouts so that a restart is not kept waiting for the killed
            # member's session to expire (the flushes here take milliseconds).
            consumer={
                "session.timeout.ms": 1000,
                "heartbeat.interval.ms": 200,
                "max.poll.interval.ms": 1500,
            },
        ),
        on_stage=on_stage,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    writer.start()
    stop.wait()
    writer.stop()
    counters = dataclasses.asdict(writer.counters)
    counters["flush_latency"] = counters["flush_latency"].snapshot()  # (buckets, sum of seconds)
    print(
        json.dumps(
            {"counters": counters, "error": repr(writer.error) if writer.error else None},
            default=list,  # recent_invalid (a deque)
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
