"""The pure core of the stream processors: no I/O, an injectable clock.

Stage 1 (:class:`PartitionProcessor`, one per partition of ``tokengov.events``)
deduplicates, prices, keeps per-task state and detects runaways, retry storms
and loops; it also keeps cumulative partials that stage 2
(:class:`Aggregator`) sums across partitions into budgets, windows and unit
metrics.
"""

from streams.core.aggregator import Aggregator
from streams.core.alerts import fingerprint, make_alert
from streams.core.budgets import BudgetAgg, evaluate_budget
from streams.core.clock import Clock, ManualClock, SystemClock
from streams.core.dedup import GlobalSeen
from streams.core.output import Output, Suppressor
from streams.core.partials import PartitionAggregates
from streams.core.processor import PartitionProcessor, position
from streams.core.task_state import TaskState
from streams.core.view import PolicyView

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
