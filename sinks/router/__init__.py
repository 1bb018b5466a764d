"""The alert router: Alertmanager-style routing, grouping, inhibition and silences,
and delivery to the teams' receivers (docs/alerting.md).

The pure core (tree, dispatcher, dedup, inhibition, silences) does no I/O and
takes a clock; receivers, Kafka, SQLite and ClickHouse are thin adapters.
``sinks.router.role.register(app, ctx)`` puts it on a Faust worker.
"""

from __future__ import annotations

from sinks.router.dedup import NflogEntry, needs_update
from sinks.router.delivery import ReceiverQueue, RetryPolicy
from sinks.router.dispatcher import Clock, Dispatcher, MuteStatus
from sinks.router.group import AggrGroup, group_key, is_resolved
from sinks.router.inhibit import BUILTIN_RULES, Inhibition, Inhibitor, Rule, rules_from_policy
from sinks.router.labels import routing_labels
from sinks.router.matchers import Matcher, parse_matcher, parse_matchers
from sinks.router.notification import Notification, NotificationAttempt
from sinks.router.notification_log import (
    NOTIFICATION_COLUMNS,
    ClickHouseNotificationLog,
    MemoryNotificationLog,
    NotificationLog,
)
from sinks.router.redact import REDACTED, Redactor
from sinks.router.runtime import AlertSink, DeadLetterSink, Router, receiver_failing_alert
from sinks.router.silences import Silence, SilenceStore, new_silence
from sinks.router.state import MemoryState, RouterState, SqliteState
from sinks.router.tree import RouteMatch, RouteNode, RouteTree, TraceStep

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
    "Matcher",
    "MemoryNotificationLog",
    "MemoryState",
    "MuteStatus",
    "NflogEntry",
    "Notification",
    "NotificationAttempt",
    "NotificationLog",
    "ReceiverQueue",
    "Redactor",
    "RetryPolicy",
    "RouteMatch",
    "RouteNode",
    "RouteTree",
    "Router",
    "RouterState",
    "Rule",
    "Silence",
    "SilenceStore",
    "SqliteState",
    "TraceStep",
    "group_key",
    "is_resolved",
    "needs_update",
    "new_silence",
    "parse_matcher",
    "parse_matchers",
    "receiver_failing_alert",
    "routing_labels",
    "rules_from_policy",
]
