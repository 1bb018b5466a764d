"""The pure core of the stream processors: no I/O, an injectable clock.

Stage 1 (:class:`PartitionProcessor`, one per partition of ``tokengov.events``)
deduplicates, prices, keeps per-task state and detects runaways, retry storms
and loops; it also keeps cumulative partials that stage 2
(:class:`Aggregator`) sums across partitions into budgets, windows and unit
metrics.
"""

from tokengov.streams.core.aggregator import Aggregator
from tokengov.streams.core.alerts import fingerprint, make_alert
from tokengov.streams.core.budgets import BudgetAgg, evaluate_budget
from tokengov.streams.core.clock import Clock, ManualClock, SystemClock
from tokengov.streams.core.dedup import GlobalSeen
from tokengov.streams.core.output import Output, Suppressor
from tokengov.streams.core.partition_totals import PartitionAggregates
from tokengov.streams.core.policy_index import PolicyView
from tokengov.streams.core.processor import PartitionProcessor, position
from tokengov.streams.core.task_state import TaskState

__all__ = [
    "Aggregator",
    "BudgetAgg",
    "Clock",
    "GlobalSeen",
    "ManualClock",
    "Output",
    "PartitionAggregates",
    "PartitionProcessor",
    "PolicyView",
    "Suppressor",
    "SystemClock",
    "TaskState",
    "evaluate_budget",
    "fingerprint",
    "make_alert",
    "position",
]
