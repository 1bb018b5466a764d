"""The alert router: Alertmanager-style routing, grouping, inhibition and silences,
and delivery to the teams' receivers (docs/alerting.md).

The pure core (tree, dispatcher, dedup, inhibition, silences) does no I/O and
takes a clock; receivers, Kafka (the state topic), SQLite (a local snapshot) and ClickHouse
are thin adapters.
``tokengov.sinks.router.role.register(app, ctx)`` puts it on a Faust worker.
"""

from __future__ import annotations

from tokengov.sinks.router.dedup import NflogEntry, needs_update
from tokengov.sinks.router.delivery import ReceiverQueue, RetryPolicy
from tokengov.sinks.router.dispatcher import Clock, Dispatcher, MuteStatus
from tokengov.sinks.router.group import AggrGroup, group_key, is_resolved
from tokengov.sinks.router.inhibit import (
    BUILTIN_RULES,
    Inhibition,
    Inhibitor,
    Rule,
    RuleCheck,
    RuleSources,
    rules_from_policy,
)
from tokengov.sinks.router.labels import routing_labels
from tokengov.sinks.router.notification import Notification, NotificationAttempt
from tokengov.sinks.router.notification_log import (
    NOTIFICATION_COLUMNS,
    ClickHouseNotificationLog,
    MemoryNotificationLog,
    NotificationLog,
)
from tokengov.sinks.router.ownership import PartitionedDispatcher, partition_of
from tokengov.sinks.router.redact import REDACTED, Redactor
from tokengov.sinks.router.router import AlertSink, DeadLetterSink, Router, receiver_failing_alert
from tokengov.sinks.router.silences import Silence, SilenceStore, new_silence
from tokengov.sinks.router.snapshot import LocalSnapshot
from tokengov.sinks.router.state import MemoryState, PartitionState, RouterState, StateWriter
from tokengov.sinks.router.state_topic import RouterStateTopic
from tokengov.sinks.router.timemute import TimeMute, time_mute
from tokengov.sinks.router.tree import RouteMatch, RouteNode, RouteTree, TraceStep

__all__ = [
    "BUILTIN_RULES",
    "NOTIFICATION_COLUMNS",
    "REDACTED",
    "AggrGroup",
    "AlertSink",
    "ClickHouseNotificationLog",
    "Clock",
    "DeadLetterSink",
    "Dispatcher",
    "Inhibition",
    "Inhibitor",
    "LocalSnapshot",
    "MemoryNotificationLog",
    "MemoryState",
    "MuteStatus",
    "NflogEntry",
    "Notification",
    "NotificationAttempt",
    "NotificationLog",
    "PartitionState",
    "PartitionedDispatcher",
    "ReceiverQueue",
    "Redactor",
    "RetryPolicy",
    "RouteMatch",
    "RouteNode",
    "RouteTree",
    "Router",
    "RouterState",
    "RouterStateTopic",
    "Rule",
    "RuleCheck",
    "RuleSources",
    "Silence",
    "SilenceStore",
    "StateWriter",
    "TimeMute",
    "TraceStep",
    "group_key",
    "is_resolved",
    "needs_update",
    "new_silence",
    "partition_of",
    "receiver_failing_alert",
    "routing_labels",
    "rules_from_policy",
    "time_mute",
]
