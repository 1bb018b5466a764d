"""A local copy of what a router wrote to ``tokengov.router-state``, and of the silences
it has seen: ``<data dir>/router/snapshot.sqlite``.

It is not the router's state of record — the compacted topic is. It exists for the embedded
broker (``tokengov up``), which keeps topics in memory: after a restart the topics come back
empty, and a router that finds the whole router-state topic empty re-seeds the partitions it
is assigned from this copy (:mod:`tokengov.sinks.router.state_topic`), as the silence
follower republishes silences missing from ``tokengov.silences``. With a durable cluster the
topic is never empty once written, so the copy is never read; turn it off with
``TOKENGOV_ROUTER_SNAPSHOT=false``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from tokengov.sinks.router.silences import Silence

__all__ = ["LocalSnapshot"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    partition INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (partition, key));
CREATE TABLE IF NOT EXISTS silences (silence_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
"""


def _blob(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"unexpected column value {type(value).__name__} in the router snapshot")


class LocalSnapshot:
    """The latest router-state record of each (partition, key), and the silences, in SQLite
    (every change committed at once; WAL)."""

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
    def in_data_dir(cls, data_dir: Path) -> LocalSnapshot:
        return cls(data_dir / "router" / "snapshot.sqlite")

    def _run(self, sql: str, args: Iterable[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        if value is None:
            self._run("DELETE FROM records WHERE partition = ? AND key = ?", (partition, key))
        else:
            self._run(
                "INSERT OR REPLACE INTO records (partition, key, value) VALUES (?, ?, ?)",
                (partition, key, value),
            )

    def records(self, partition: int) -> dict[bytes, bytes]:
        rows = self._run("SELECT key, value FROM records WHERE partition = ?", (partition,))
        return {_blob(k): _blob(v) for k, v in rows}

    def partitions(self) -> list[int]:
        """The partitions the copy holds records of."""
        rows = self._run("SELECT DISTINCT partition FROM records ORDER BY partition")
        return [int(str(row[0])) for row in rows]

    def replace(self, partition: int, records: dict[bytes, bytes]) -> None:
        """Make the copy of ``partition`` what the topic holds (after a takeover)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM records WHERE partition = ?", (partition,))
                self._db.executemany(
                    "INSERT INTO records (partition, key, value) VALUES (?, ?, ?)",
                    [(partition, k, v) for k, v in records.items()],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def save_silence(self, silence: Silence) -> None:
        self._run(
            "INSERT OR REPLACE INTO silences (silence_id, doc) VALUES (?, ?)",
            (silence.silence_id, silence.to_json()),
        )

    def load_silences(self) -> list[Silence]:
        """The silences the copy holds; one that can no longer be read (e.g. an old silence on
        a label name today's matchers refuse) is logged and skipped, never stops the router."""
        found: list[Silence] = []
        for silence_id, doc in self._run("SELECT silence_id, doc FROM silences"):
            try:
                found.append(Silence.from_json(_blob(doc)))
            except ValueError as exc:
                log.error("router snapshot: silence %s unreadable, skipped: %s", silence_id, exc)
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()
