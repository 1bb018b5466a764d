"""What the router keeps about one partition of ``tokengov.alerts``: its aggregation groups,
the notification log (what each receiver was told, when) and the outbox of notifications
not yet delivered.

:class:`PartitionState` holds them in memory and writes every change through a
:class:`StateWriter` as a record of the compacted topic ``tokengov.router-state``: partition p
of that topic holds the state of alerts partition p (the topics are co-partitioned), one key
per group, notification-log entry and outbox item, a tombstone when one is deleted. A router
taking a partition over builds a :class:`PartitionState` from the partition's latest records
(:func:`decode_records`); :mod:`tokengov.sinks.router.state_topic` does the Kafka side.

Record keys are JSON arrays (unambiguous whatever a group key contains):
``["group", <group key>]`` → :meth:`AggrGroup.to_json`; ``["nflog", <group key>, <receiver>]``
→ the entry; ``["outbox", <notification id>]`` → the notification.

:class:`MemoryState` is the same without a topic: unit tests, ``test-route``, one-off routers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

import orjson

from tokengov.sinks.router.dedup import NflogEntry
from tokengov.sinks.router.group import AggrGroup
from tokengov.sinks.router.notification import Notification

__all__ = [
    "MemoryState",
    "PartitionState",
    "RouterState",
    "StateWriter",
    "group_record_key",
    "nflog_record_key",
    "outbox_record_key",
]

log = logging.getLogger(__name__)


class RouterState(Protocol):
    def load_groups(self) -> list[AggrGroup]: ...
    def save_group(self, group: AggrGroup) -> None: ...
    def delete_group(self, key: str) -> None: ...
    def nflog_get(self, group_key: str, receiver: str) -> NflogEntry | None: ...
    def nflog_set(self, entry: NflogEntry) -> None: ...
    def nflog_gc(self, before: datetime) -> int: ...
    def outbox_add(self, notification: Notification) -> None: ...
    def outbox_remove(self, notification_id: str) -> None: ...
    def outbox_all(self) -> list[Notification]: ...
    def close(self) -> None: ...


class StateWriter(Protocol):
    """Where a :class:`PartitionState` writes its changes (None: a tombstone)."""

    def write(self, partition: int, key: bytes, value: bytes | None) -> None: ...


def group_record_key(group_key: str) -> bytes:
    return orjson.dumps(["group", group_key])


def nflog_record_key(group_key: str, receiver: str) -> bytes:
    return orjson.dumps(["nflog", group_key, receiver])


def outbox_record_key(notification_id: str) -> bytes:
    return orjson.dumps(["outbox", notification_id])


def _nflog_json(entry: NflogEntry) -> bytes:
    return orjson.dumps(
        {
            "group_key": entry.group_key,
            "receiver": entry.receiver,
            "firing": sorted(entry.firing),
            "resolved": sorted(entry.resolved),
            "ts": entry.ts.isoformat(timespec="microseconds"),
        }
    )


def _nflog_from_json(raw: bytes) -> NflogEntry:
    doc = orjson.loads(raw)
    ts = datetime.fromisoformat(doc["ts"])
    if ts.tzinfo is None:
        raise ValueError("ts: no time zone")
    return NflogEntry(
        str(doc["group_key"]),
        str(doc["receiver"]),
        frozenset(map(str, doc["firing"])),
        frozenset(map(str, doc["resolved"])),
        ts,
    )


class MemoryState:
    """Router state in memory only."""

    def __init__(self) -> None:
        self.groups: dict[str, bytes] = {}
        self.nflog: dict[tuple[str, str], NflogEntry] = {}
        self.outbox: dict[str, Notification] = {}

    def load_groups(self) -> list[AggrGroup]:
        return [AggrGroup.from_json(raw) for raw in self.groups.values()]

    def save_group(self, group: AggrGroup) -> None:
        self.groups[group.key] = group.to_json()

    def delete_group(self, key: str) -> None:
        self.groups.pop(key, None)

    def nflog_get(self, group_key: str, receiver: str) -> NflogEntry | None:
        return self.nflog.get((group_key, receiver))

    def nflog_set(self, entry: NflogEntry) -> None:
        self.nflog[(entry.group_key, entry.receiver)] = entry

    def nflog_gc(self, before: datetime) -> int:
        old = [k for k, e in self.nflog.items() if e.ts < before]
        for k in old:
            del self.nflog[k]
        return len(old)

    def outbox_add(self, notification: Notification) -> None:
        self.outbox[notification.notification_id] = notification

    def outbox_remove(self, notification_id: str) -> None:
        self.outbox.pop(notification_id, None)

    def outbox_all(self) -> list[Notification]:
        return sorted(self.outbox.values(), key=lambda n: n.created_at)

    def close(self) -> None:
        return None


class PartitionState(MemoryState):
    """The state of one alerts partition: kept in memory, every change written through
    ``writer`` to the same partition of the router-state topic."""

    def __init__(self, partition: int, writer: StateWriter) -> None:
        super().__init__()
        self.partition = partition
        self.writer = writer
        #: Records of the topic that could not be read back (logged, skipped).
        self.invalid_records = 0

    @classmethod
    def from_records(
        cls, partition: int, writer: StateWriter, records: Mapping[bytes, bytes]
    ) -> PartitionState:
        """The state described by the latest record of each key of a partition."""
        state = cls(partition, writer)
        for key, value in records.items():
            try:
                state._load(key, value)
            except (ValueError, KeyError, TypeError) as exc:
                state.invalid_records += 1
                log.error(
                    "router state partition %d: record %r unreadable, skipped: %s",
                    partition,
                    key[:200],
                    exc,
                )
        return state

    def _load(self, key: bytes, value: bytes) -> None:
        kind = orjson.loads(key)[0]
        if kind == "group":
            group = AggrGroup.from_json(value)
            self.groups[group.key] = value
        elif kind == "nflog":
            entry = _nflog_from_json(value)
            self.nflog[(entry.group_key, entry.receiver)] = entry
        elif kind == "outbox":
            notification = Notification.model_validate_json(value)
            self.outbox[notification.notification_id] = notification
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    def rewrite(self) -> int:
        """Write every record of the state again (after writes the broker did not
        acknowledge); returns how many."""
        for raw_group in self.groups.values():
            self._write(group_record_key(AggrGroup.from_json(raw_group).key), raw_group)
        for entry in self.nflog.values():
            self._write(nflog_record_key(entry.group_key, entry.receiver), _nflog_json(entry))
        for notification in self.outbox.values():
            self._write(
                outbox_record_key(notification.notification_id),
                notification.model_dump_json().encode(),
            )
        return len(self.groups) + len(self.nflog) + len(self.outbox)

    def _write(self, key: bytes, value: bytes | None) -> None:
        self.writer.write(self.partition, key, value)

    def save_group(self, group: AggrGroup) -> None:
        raw = group.to_json()
        self.groups[group.key] = raw
        self._write(group_record_key(group.key), raw)

    def delete_group(self, key: str) -> None:
        if self.groups.pop(key, None) is not None:
            self._write(group_record_key(key), None)

    def nflog_set(self, entry: NflogEntry) -> None:
        super().nflog_set(entry)
        self._write(nflog_record_key(entry.group_key, entry.receiver), _nflog_json(entry))

    def nflog_gc(self, before: datetime) -> int:
        old = [k for k, e in self.nflog.items() if e.ts < before]
        for group_key, receiver in old:
            del self.nflog[(group_key, receiver)]
            self._write(nflog_record_key(group_key, receiver), None)
        return len(old)

    def outbox_add(self, notification: Notification) -> None:
        super().outbox_add(notification)
        self._write(
            outbox_record_key(notification.notification_id),
            notification.model_dump_json().encode(),
        )

    def outbox_remove(self, notification_id: str) -> None:
        if self.outbox.pop(notification_id, None) is not None:
            self._write(outbox_record_key(notification_id), None)
