"""``sink_batches``: the offsets of each flush, written before its rows.

After a restart, a partition whose committed offset has not passed the end of
its last plan had a flush in flight: the writer then reconciles the rollups of
the rows it reads again in that range (see reconcile.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from tokengov.sinks.clickhouse.batch import Plan

if TYPE_CHECKING:
    from tokengov.sinks.clickhouse.store import ClickHouseStore

__all__ = ["PLAN_COLUMNS", "load_plans", "plans_sql", "write_plans"]

PLAN_COLUMNS: Final = (
    "consumer_group",
    "topic",
    "partition",
    "start_offset",
    "end_offset",
    "version",
)


def write_plans(store: ClickHouseStore, group: str, plans: Iterable[Plan]) -> None:
    version = time.time_ns()
    rows = [(group, p.topic, p.partition, p.start_offset, p.end_offset, version) for p in plans]
    store.insert("sink_batches", rows, columns=PLAN_COLUMNS)


def plans_sql() -> str:
    return (
        "SELECT topic, partition, argMax(start_offset, version), argMax(end_offset, version) "
        "FROM sink_batches "
        "WHERE consumer_group = {group:String} AND topic IN {topics:Array(String)} "
        "GROUP BY topic, partition"
    )


def load_plans(store: ClickHouseStore, group: str, keys: Iterable[tuple[str, int]]) -> list[Plan]:
    """The latest plan of each of the partitions ``keys``."""
    wanted = set(keys)
    if not wanted:
        return []
    result = store.fetch(plans_sql(), {"group": group, "topics": sorted({t for t, _ in wanted})})
    return [
        Plan(str(topic), int(partition), int(start), int(end))
        for topic, partition, start, end in result.rows
        if (topic, int(partition)) in wanted
    ]
