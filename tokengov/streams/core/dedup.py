"""Deduplication by ``event_id`` with bounded memory.

Two layers: each live task keeps the ids of its own events (``TaskState.seen``:
id → position where it first appeared); when a task's state is dropped (idle
longer than ``task_idle_timeout``) its ids move to a :class:`GlobalSeen`, a
set of time buckets (processing time) forgotten after ``dedup_horizon``. An
id is a duplicate at position ``pos`` when it first appeared at an earlier
position — so re-processing the same message after a crash is *not* a
duplicate, while a producer retry is.
"""

from __future__ import annotations

from typing import Final

from tokengov.streams.core.task_state import TaskState

__all__ = ["MAX_SEEN_PER_TASK", "GlobalSeen", "first_seen", "trim_task_seen"]

MAX_SEEN_PER_TASK: Final = 10_000
BUCKETS_PER_HORIZON: Final = 6


class GlobalSeen:
    """Event ids of dropped tasks, bucketed by when they were dropped."""

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = max(horizon_s, 1.0)
        self.bucket_s = self.horizon_s / BUCKETS_PER_HORIZON
        self.buckets: dict[int, dict[str, int]] = {}
        self.dirty: set[int] = set()

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets.values())

    def bucket_of(self, now_s: float) -> int:
        return int(now_s // self.bucket_s)

    def add(self, ids: dict[str, int], now_s: float) -> None:
        if not ids:
            return
        bucket = self.bucket_of(now_s)
        self.buckets.setdefault(bucket, {}).update(ids)
        self.dirty.add(bucket)

    def get(self, event_id: str) -> int | None:
        for ids in self.buckets.values():
            pos = ids.get(event_id)
            if pos is not None:
                return pos
        return None

    def expire(self, now_s: float) -> list[int]:
        """Forget buckets older than the horizon; returns the buckets dropped."""
        oldest = self.bucket_of(now_s - self.horizon_s)
        gone = [b for b in self.buckets if b < oldest]
        for b in gone:
            del self.buckets[b]
            self.dirty.discard(b)
        return gone

    def load(self, bucket: int, ids: dict[str, int]) -> None:
        self.buckets[bucket] = dict(ids)


def first_seen(task: TaskState, event_id: str, global_seen: GlobalSeen) -> int | None:
    pos = task.seen.get(event_id)
    if pos is None and global_seen.buckets:
        pos = global_seen.get(event_id)
    return pos


def trim_task_seen(task: TaskState, global_seen: GlobalSeen, now_s: float) -> None:
    """Keep a long task's own id set bounded: its oldest half moves to the global set."""
    if len(task.seen) <= MAX_SEEN_PER_TASK:
        return
    items = list(task.seen.items())
    half = len(items) // 2
    global_seen.add(dict(items[:half]), now_s)
    task.seen = dict(items[half:])
