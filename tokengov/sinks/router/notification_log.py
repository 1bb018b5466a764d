"""Every delivery attempt, recorded: ClickHouse ``notifications`` (who was told what,
when, with what result).

:class:`NotificationLog` is the interface the router depends on. ``record`` is
called on the event loop and must not block: :class:`ClickHouseNotificationLog`
buffers rows and the router calls ``flush`` from a worker thread about once a
second and at shutdown. A failed insert keeps the rows for the next flush (bounded;
the overflow is logged and counted, never silently dropped).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final, Protocol

from tokengov.core.errors import SinkError
from tokengov.sinks.router.notification import NotificationAttempt

__all__ = [
    "NOTIFICATION_COLUMNS",
    "ClickHouseNotificationLog",
    "MemoryNotificationLog",
    "NotificationLog",
    "notification_row",
]

log = logging.getLogger(__name__)

#: The columns of ``notifications`` this writer fills (DESIGN.md, issue 4).
NOTIFICATION_COLUMNS: Final = (
    "alert_id",
    "fingerprint",
    "receiver",
    "attempt",
    "result",
    "error",
    "latency_ms",
    "ts",
)


class NotificationLog(Protocol):
    def record(self, attempt: NotificationAttempt) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class MemoryNotificationLog:
    """Keeps attempts in a list: for unit tests and runs without ClickHouse."""

    def __init__(self) -> None:
        self.attempts: list[NotificationAttempt] = []
        self._lock = threading.Lock()

    def record(self, attempt: NotificationAttempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def for_alert(self, alert_id: str) -> list[NotificationAttempt]:
        with self._lock:
            return [a for a in self.attempts if a.alert_id == alert_id]


def notification_row(attempt: NotificationAttempt) -> list[Any]:
    return [
        attempt.alert_id,
        attempt.fingerprint,
        attempt.receiver,
        attempt.attempt,
        attempt.result,
        attempt.error,
        max(0, attempt.latency_ms),
        attempt.ts,
    ]


class ClickHouseNotificationLog:
    """Inserts attempts into ``notifications`` through clickhouse-connect."""

    def __init__(
        self, client: Any, *, table: str = "notifications", max_buffered_rows: int = 100_000
    ) -> None:
        self.client = client
        self.table = table
        self.max_buffered_rows = max_buffered_rows
        self.dropped_rows = 0
        self._rows: list[list[Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    @classmethod
    def from_dsn(cls, dsn: str, **kwargs: Any) -> ClickHouseNotificationLog:
        import clickhouse_connect

        return cls(clickhouse_connect.get_client(dsn=dsn), **kwargs)

    def record(self, attempt: NotificationAttempt) -> None:
        with self._lock:
            self._rows.append(notification_row(attempt))
            overflow = len(self._rows) - self.max_buffered_rows
            if overflow > 0:
                del self._rows[:overflow]
                self.dropped_rows += overflow
                log.error(
                    "notifications buffer full (ClickHouse unreachable?): dropped the %d oldest "
                    "attempt row(s), %d in all",
                    overflow,
                    self.dropped_rows,
                )

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return
            try:
                self.client.insert(self.table, rows, column_names=list(NOTIFICATION_COLUMNS))
            except Exception as exc:
                with self._lock:
                    self._rows[:0] = rows
                raise SinkError(
                    f"insert of {len(rows)} row(s) into {self.table} failed: {exc}", retryable=True
                ) from exc

    def close(self) -> None:
        self.client.close()

    @property
    def buffered(self) -> int:
        with self._lock:
            return len(self._rows)
