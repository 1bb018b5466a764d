"""Where the router keeps what must survive a restart: aggregation groups, the
notification log (what each receiver was told, when), the outbox of
notifications not yet delivered, and the silences it has seen.

:class:`SqliteState` keeps them in ``<data dir>/router/state.sqlite``. Why a local
SQLite file rather than a compacted topic: the state is private to one router
and written on every alert and every delivery; SQLite commits each change
durably in microseconds with no broker round trip, and survives a broker restart
(the embedded broker keeps topics in memory). Silences are shared through
``tokengov.silences``; this copy lets a router republish them if the topic lost them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Protocol

import orjson

from tokengov.sinks.router.dedup import NflogEntry
from tokengov.sinks.router.group import AggrGroup
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.silences import Silence

__all__ = ["MemoryState", "RouterState", "SqliteState"]


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
    def save_silence(self, silence: Silence) -> None: ...
    def load_silences(self) -> list[Silence]: ...
    def close(self) -> None: ...


def _blob(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"unexpected column value {type(value).__name__} in router state")


class MemoryState:
    """The same, in memory: for unit tests and for ``test-route``."""

    def __init__(self) -> None:
        self.groups: dict[str, bytes] = {}
        self.nflog: dict[tuple[str, str], NflogEntry] = {}
        self.outbox: dict[str, Notification] = {}
        self.silences: dict[str, Silence] = {}

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

    def save_silence(self, silence: Silence) -> None:
        self.silences[silence.silence_id] = silence

    def load_silences(self) -> list[Silence]:
        return list(self.silences.values())

    def close(self) -> None:
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (group_key TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nflog (
    group_key TEXT NOT NULL, receiver TEXT NOT NULL,
    firing TEXT NOT NULL, resolved TEXT NOT NULL, ts TEXT NOT NULL,
    PRIMARY KEY (group_key, receiver));
CREATE TABLE IF NOT EXISTS outbox (notification_id TEXT PRIMARY KEY, created_at TEXT, doc BLOB);
CREATE TABLE IF NOT EXISTS silences (silence_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
"""


class SqliteState:
    """Durable router state in one SQLite file; every change is committed at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # One connection shared by the event loop and the silence follower thread.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SqliteState:
        return cls(data_dir / "router" / "state.sqlite")

    def _run(self, sql: str, args: Iterable[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def load_groups(self) -> list[AggrGroup]:
        return [AggrGroup.from_json(_blob(row[0])) for row in self._run("SELECT doc FROM groups")]

    def save_group(self, group: AggrGroup) -> None:
        self._run(
            "INSERT OR REPLACE INTO groups (group_key, doc) VALUES (?, ?)",
            (group.key, group.to_json()),
        )

    def delete_group(self, key: str) -> None:
        self._run("DELETE FROM groups WHERE group_key = ?", (key,))

    def nflog_get(self, group_key: str, receiver: str) -> NflogEntry | None:
        rows = self._run(
            "SELECT firing, resolved, ts FROM nflog WHERE group_key = ? AND receiver = ?",
            (group_key, receiver),
        )
        if not rows:
            return None
        firing, resolved, ts = rows[0]
        return NflogEntry(
            group_key,
            receiver,
            frozenset(orjson.loads(str(firing))),
            frozenset(orjson.loads(str(resolved))),
            datetime.fromisoformat(str(ts)),
        )

    def nflog_set(self, entry: NflogEntry) -> None:
        self._run(
            "INSERT OR REPLACE INTO nflog (group_key, receiver, firing, resolved, ts) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                entry.group_key,
                entry.receiver,
                orjson.dumps(sorted(entry.firing)).decode(),
                orjson.dumps(sorted(entry.resolved)).decode(),
                entry.ts.isoformat(timespec="microseconds"),
            ),
        )

    def nflog_gc(self, before: datetime) -> int:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM nflog WHERE ts < ?", (before.isoformat(timespec="microseconds"),)
            )
            return cursor.rowcount

    def outbox_add(self, notification: Notification) -> None:
        self._run(
            "INSERT OR REPLACE INTO outbox (notification_id, created_at, doc) VALUES (?, ?, ?)",
            (
                notification.notification_id,
                notification.created_at.isoformat(),
                notification.model_dump_json().encode(),
            ),
        )

    def outbox_remove(self, notification_id: str) -> None:
        self._run("DELETE FROM outbox WHERE notification_id = ?", (notification_id,))

    def outbox_all(self) -> list[Notification]:
        rows = self._run("SELECT doc FROM outbox ORDER BY created_at")
        return [Notification.model_validate_json(_blob(row[0])) for row in rows]

    def save_silence(self, silence: Silence) -> None:
        self._run(
            "INSERT OR REPLACE INTO silences (silence_id, doc) VALUES (?, ?)",
            (silence.silence_id, silence.to_json()),
        )

    def load_silences(self) -> list[Silence]:
        return [Silence.from_json(_blob(row[0])) for row in self._run("SELECT doc FROM silences")]

    def close(self) -> None:
        with self._lock:
            self._db.close()
