"""The dispatcher: the pure core of the router (no I/O, an injectable clock).

It follows Alertmanager's pipeline:

1. **Route** (:mod:`tokengov.sinks.router.tree`): every route an alert matches puts it into
   the aggregation group of that route and its ``group_by`` label values.
2. **Group timers** (``dispatch/dispatch.go``, ``aggrGroup.run``): a new group is
   flushed ``group_wait`` after it was created (at once when its first alert is
   already older than that), then every ``group_interval``.
3. At each flush, a group whose route is outside its ``active_time_intervals`` or
   inside one of its ``mute_time_intervals`` sends nothing (:mod:`tokengov.sinks.router.timemute`);
   otherwise **inhibited and silenced** alerts are removed; if nothing is left, nothing
   is sent.
4. **Dedup** (:func:`tokengov.sinks.router.dedup.needs_update`) against the notification
   log decides whether the receiver must hear about the group now: new alerts,
   resolutions, or ``repeat_interval`` elapsed.
5. A notification goes into the outbox; the runtime delivers it and reports back
   with :meth:`Dispatcher.delivered` (the notification log records it) or
   :meth:`Dispatcher.abandoned` (dead-lettered; the next flush tries again).
   Resolved alerts leave their group once a notification about them was delivered.
   A receiver with ``send_resolved: false`` is not told about resolutions: they are
   left out of its notifications, and a group whose only news is resolutions is
   recorded as notified without sending (Alertmanager's ``RetryStage``).

All state goes through a :class:`~tokengov.sinks.router.state.RouterState`, so a restart
resumes the same groups and does not page again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tokengov.core.contracts import Alert, utcnow
from tokengov.sinks.router.dedup import NflogEntry, NotifyReason, needs_update
from tokengov.sinks.router.group import AggrGroup, group_key, is_resolved
from tokengov.sinks.router.inhibit import Inhibition, Inhibitor
from tokengov.sinks.router.labels import routing_labels
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.silences import Silence, SilenceStore
from tokengov.sinks.router.state import RouterState
from tokengov.sinks.router.timemute import TimeMute, time_mute
from tokengov.sinks.router.tree import RouteMatch, RouteTree

__all__ = ["Clock", "Dispatcher", "MuteStatus"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Alertmanager keeps its notification log 120 hours.
NFLOG_RETENTION = timedelta(hours=120)


@dataclass(frozen=True)
class MuteStatus:
    silences: tuple[Silence, ...] = ()
    inhibition: Inhibition | None = None

    @property
    def muted(self) -> bool:
        return bool(self.silences) or self.inhibition is not None


class Dispatcher:
    """Sorts alerts into groups and decides which notifications are due."""

    def __init__(
        self,
        tree: RouteTree,
        state: RouterState,
        *,
        inhibitor: Inhibitor | None = None,
        silences: SilenceStore | None = None,
        clock: Clock = utcnow,
        max_alert_age: timedelta = timedelta(hours=24),
    ) -> None:
        self.tree = tree
        self.state = state
        self.inhibitor = inhibitor or Inhibitor()
        self.silences = silences or SilenceStore()
        self.clock = clock
        self.max_alert_age = max_alert_age
        self.counters: Counter[str] = Counter()
        #: notifications finished, by (receiver, delivered | abandoned)
        self.results: Counter[tuple[str, str]] = Counter()
        self.groups: dict[str, AggrGroup] = {g.key: g for g in state.load_groups()}
        self._in_flight: dict[str, str] = {}  # group key -> notification id
        for notification in state.outbox_all():
            self._in_flight[notification.group_key] = notification.notification_id
        now = self.clock()
        latest: dict[str, Alert] = {}
        for group in self.groups.values():
            latest.update(group.alerts)
        for fingerprint, alert in latest.items():
            self.inhibitor.observe(
                fingerprint,
                routing_labels(alert),
                firing=not is_resolved(alert, now),
                ends_at=alert.ends_at,
            )
        if self.groups:
            log.info(
                "restored %d alert group(s) and %d pending notification(s)",
                len(self.groups),
                len(self._in_flight),
            )

    # ------------------------------------------------------------ configuration

    def set_tree(self, tree: RouteTree, inhibitor: Inhibitor | None = None) -> None:
        """A new policy: new alerts route by the new tree; existing groups keep their timers."""
        self.tree = tree
        if inhibitor is not None:
            now = self.clock()
            for group in self.groups.values():
                for fingerprint, alert in group.alerts.items():
                    inhibitor.observe(
                        fingerprint,
                        routing_labels(alert),
                        firing=not is_resolved(alert, now),
                        ends_at=alert.ends_at,
                    )
            self.inhibitor = inhibitor

    # ------------------------------------------------------------------ ingest

    def ingest(self, alert: Alert) -> list[str]:
        """Put an alert (new, repeated, or resolved) into every group it routes to.
        Returns the keys of those groups."""
        now = self.clock()
        if alert.status == "resolved" and alert.ends_at is None:
            alert = alert.model_copy(update={"ends_at": now})
        labels = routing_labels(alert)
        self.inhibitor.observe(
            alert.fingerprint, labels, firing=not is_resolved(alert, now), ends_at=alert.ends_at
        )
        self.counters["alerts_ingested"] += 1
        keys: list[str] = []
        for match in self.tree.match(labels):
            group = self._group_for(match, labels, now)
            known = group.alerts.get(alert.fingerprint)
            group.alerts[alert.fingerprint] = _merge(known, alert, now)
            # Alertmanager: flush at once when the alert is already older than group_wait.
            if not group.has_flushed and alert.starts_at + group.group_wait < now:
                group.next_flush = min(group.next_flush, now)
            self.state.save_group(group)
            keys.append(group.key)
        return keys

    def _group_for(self, match: RouteMatch, labels: dict[str, str], now: datetime) -> AggrGroup:
        opts = match.node.opts
        if opts.group_by_all:
            group_labels = dict(labels)
        else:
            group_labels = {k: v for k, v in labels.items() if k in opts.group_by}
        key = group_key(match.node.path, match.receiver, group_labels)
        group = self.groups.get(key)
        if group is None:
            group = AggrGroup(
                key=key,
                route=match.node.path,
                receiver=match.receiver,
                labels=group_labels,
                group_wait=opts.group_wait,
                group_interval=opts.group_interval,
                repeat_interval=opts.repeat_interval,
                next_flush=now + opts.group_wait,
            )
            self.groups[key] = group
            self.counters["groups_created"] += 1
        return group

    # ------------------------------------------------------------------- flush

    def next_deadline(self) -> datetime | None:
        """When the next group is due (None when there is no group)."""
        return min((g.next_flush for g in self.groups.values()), default=None)

    def flush_due(self) -> list[Notification]:
        """Flush every group whose timer has fired; return the notifications to deliver."""
        now = self.clock()
        out: list[Notification] = []
        for group in [g for g in self.groups.values() if g.next_flush <= now]:
            notification = self._flush(group, now)
            if notification is not None:
                out.append(notification)
        return out

    def mute_status(self, fingerprint: str, labels: dict[str, str], now: datetime) -> MuteStatus:
        return MuteStatus(
            tuple(self.silences.muting(labels, now)),
            self.inhibitor.muted_by(fingerprint, labels, now),
        )

    def _flush(self, group: AggrGroup, now: datetime) -> Notification | None:
        group.next_flush = now + group.group_interval
        group.has_flushed = True
        if group.key in self._in_flight:
            # The previous notification of this group is still being delivered: decide
            # again at the next interval, with what the receiver has been told by then.
            self.counters["flush_deferred_in_flight"] += 1
            self.state.save_group(group)
            return None
        self._expire_stale(group, now)
        muted_by_time = self.time_mute(group.route, now)
        if muted_by_time is not None:
            # Alertmanager's TimeActiveStage/TimeMuteStage: nothing sent, nothing marked
            # notified; the flush counts as done, so resolved alerts are dropped.
            self.counters["flushes_time_muted"] += 1
            log.debug("group %s not notified: %s", group.key, muted_by_time.describe())
            self._drop_resolved(group, now, None)
            self._save_or_delete(group)
            return None
        snapshot: list[Alert] = []
        for fingerprint in sorted(group.alerts, key=lambda f: (group.alerts[f].starts_at, f)):
            alert = group.alerts[fingerprint]
            if is_resolved(alert, now):
                shown = alert.model_copy(
                    update={"status": "resolved", "ends_at": alert.ends_at or now}
                )
            else:
                shown = alert.model_copy(update={"status": "firing", "ends_at": None})
            mute = self.mute_status(fingerprint, routing_labels(alert), now)
            if mute.silences:
                self.counters["alerts_silenced"] += 1
                continue
            if mute.inhibition is not None:
                self.counters["alerts_inhibited"] += 1
                continue
            snapshot.append(shown)
        reason: NotifyReason | None = None
        if snapshot:
            firing = {a.fingerprint for a in snapshot if a.status == "firing"}
            resolved = {a.fingerprint for a in snapshot if a.status == "resolved"}
            entry = self.state.nflog_get(group.key, group.receiver)
            send_resolved = self.tree.send_resolved(group.receiver)
            reason = needs_update(
                entry, firing, resolved, group.repeat_interval, now, send_resolved=send_resolved
            )
            if reason is not None and not send_resolved and resolved:
                snapshot = self._withhold_resolved(group, snapshot, now)
                if not snapshot:
                    return None
        if reason is None:
            # Nothing to tell: resolved alerts are done with.
            self._drop_resolved(group, now, None)
            self._save_or_delete(group)
            return None
        notification = Notification(
            receiver=group.receiver,
            route=group.route,
            group_key=group.key,
            group_labels=group.labels,
            reason=reason,
            created_at=now,
            alerts=snapshot,
        )
        self.state.outbox_add(notification)
        self._in_flight[group.key] = notification.notification_id
        self.state.save_group(group)
        self.counters["notifications"] += 1
        return notification

    def time_mute(self, route: str, now: datetime) -> TimeMute | None:
        """Why the groups of the route at ``route`` (a policy path) send nothing now."""
        node = self.tree.node_at(route)
        return None if node is None else time_mute(node, self.tree.intervals, now)

    def _withhold_resolved(
        self, group: AggrGroup, snapshot: list[Alert], now: datetime
    ) -> list[Alert]:
        """``send_resolved: false``: the receiver is not told about resolved alerts, so they
        leave the group now. When nothing fires, the notification log records the group as
        notified without a notification (Alertmanager reports such a flush as sent)."""
        firing = [a for a in snapshot if a.status == "firing"]
        withheld = [a for a in snapshot if a.status == "resolved"]
        for alert in withheld:
            group.alerts.pop(alert.fingerprint, None)
        self.counters["alerts_resolved_not_sent"] += len(withheld)
        if not firing:
            self.state.nflog_set(
                NflogEntry(
                    group.key,
                    group.receiver,
                    frozenset(),
                    frozenset(a.fingerprint for a in withheld),
                    now,
                )
            )
            self._save_or_delete(group)
        return firing

    def _expire_stale(self, group: AggrGroup, now: datetime) -> None:
        for fingerprint, alert in list(group.alerts.items()):
            if (
                alert.status == "firing"
                and alert.ends_at is None
                and alert.starts_at < now - self.max_alert_age
            ):
                log.warning(
                    "alert %s (%s) fired %s ago without an end: expired from group %s",
                    fingerprint,
                    alert.kind,
                    now - alert.starts_at,
                    group.key,
                )
                del group.alerts[fingerprint]
                self.inhibitor.forget(fingerprint)
                self.counters["alerts_expired_stale"] += 1

    def _drop_resolved(self, group: AggrGroup, now: datetime, sent: Notification | None) -> None:
        """Remove resolved alerts — only those the notification carried, and only if they
        did not fire again meanwhile (Alertmanager's ``DeleteIfNotModified``)."""
        if sent is None:
            for fingerprint, alert in list(group.alerts.items()):
                if is_resolved(alert, now):
                    del group.alerts[fingerprint]
            return
        for alert in sent.resolved:
            current = group.alerts.get(alert.fingerprint)
            if (
                current is not None
                and is_resolved(current, now)
                and current.alert_id == alert.alert_id
            ):
                del group.alerts[alert.fingerprint]

    def _save_or_delete(self, group: AggrGroup) -> None:
        if group.alerts or group.key in self._in_flight:
            self.state.save_group(group)
        else:
            del self.groups[group.key]
            self.state.delete_group(group.key)

    # --------------------------------------------------------------- outcomes

    def pending(self) -> list[Notification]:
        """Notifications in the outbox (after a restart: those not delivered yet)."""
        return self.state.outbox_all()

    def delivered(self, notification: Notification) -> None:
        now = self.clock()
        self.state.nflog_set(
            NflogEntry(
                notification.group_key,
                notification.receiver,
                frozenset(a.fingerprint for a in notification.firing),
                frozenset(a.fingerprint for a in notification.resolved),
                now,
            )
        )
        self._finish(notification, delivered=True)

    def abandoned(self, notification: Notification) -> None:
        """Delivery gave up (dead-lettered): the notification log is unchanged, so the
        next flush of the group decides again."""
        self._finish(notification, delivered=False)

    def _finish(self, notification: Notification, *, delivered: bool) -> None:
        result = "delivered" if delivered else "abandoned"
        self.results[(notification.receiver, result)] += 1  # /metrics
        self.state.outbox_remove(notification.notification_id)
        if self._in_flight.get(notification.group_key) == notification.notification_id:
            del self._in_flight[notification.group_key]
        group = self.groups.get(notification.group_key)
        if group is None:
            return
        if delivered:
            self._drop_resolved(group, self.clock(), notification)
        self._save_or_delete(group)

    def maintenance(self) -> int:
        """Forget notification-log entries older than Alertmanager's retention."""
        return self.state.nflog_gc(self.clock() - NFLOG_RETENTION)

    # -------------------------------------------------------------- inspection

    def route(self, alert: Alert) -> list[RouteMatch]:
        return self.tree.match(routing_labels(alert))


def _merge(known: Alert | None, incoming: Alert, now: datetime) -> Alert:
    """The latest version of an alert wins, but a still-firing alert keeps its first start."""
    if known is None or is_resolved(known, now) or is_resolved(incoming, now):
        return incoming
    if known.starts_at < incoming.starts_at:
        return incoming.model_copy(update={"starts_at": known.starts_at})
    return incoming
