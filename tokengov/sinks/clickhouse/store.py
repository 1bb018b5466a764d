"""The ClickHouse store: one code path through clickhouse-connect for both DSNs.

``chdb:///path`` runs the real ClickHouse engine in this process (one process
per data directory); ``http(s)://user:pass@host:8123/db`` talks to a server.
:class:`ClickHouseStore` connects lazily, turns the client's exceptions into
tokengov's (:class:`StoreError` for writes — retryable or a rejection of the
data — and :class:`tokengov.core.errors.QueryError` for queries, carrying
ClickHouse's own message), and is safe to share between threads.

Other roles in the same process use it directly::

    store = ClickHouseStore(settings.clickhouse_dsn)
    migrate(store)  # tokengov.sinks.clickhouse.migrate: create or upgrade the schema (idempotent)
    store.record_notification(alert_id=..., fingerprint=..., receiver="search-pager",
                              attempt=1, result="delivered", error=None, latency_ms=42)
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError
from clickhouse_connect.driver.exceptions import (
    DataError,
    OperationalError,
)
from clickhouse_connect.driver.exceptions import Error as DriverBaseError

from tokengov.core.contracts import utcnow
from tokengov.core.errors import QueryError, SinkError
from tokengov.sinks.clickhouse.limits import QueryLimits

__all__ = [
    "NOTIFICATION_COLUMNS",
    "REJECTION_CODES",
    "ClickHouseStore",
    "NotificationResult",
    "QueryResult",
    "StoreError",
    "clickhouse_message",
]

log = logging.getLogger(__name__)

#: ClickHouse error codes that mean "this data is wrong", not "try again later":
#: the writer dead-letters the rows (with the server's message) instead of retrying.
REJECTION_CODES: Final = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
    }
)

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

NotificationResult = Literal["delivered", "failed", "retrying", "suppressed"]


class StoreError(SinkError):
    """A write ClickHouse did not acknowledge. ``retryable`` False: the data was rejected
    (``code`` is ClickHouse's error code when there is one) and retrying cannot help."""

    def __init__(self, message: str, *, retryable: bool, code: int | None = None) -> None:
        self.code = code
        super().__init__(message, retryable=retryable)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows and self.rows[0] else None


#: The statement ClickHouse's analyzer quotes in its messages (``… In scope SELECT ….
#: (UNKNOWN_TABLE)``): up to the error's name, or the end.
_IN_SCOPE = re.compile(r"[\s:.]*\bIn scope .*?(?=\. \([A-Z0-9_]+\)$|$)")


def clickhouse_message(exc: BaseException) -> str:
    """ClickHouse's own message (``Code: 47. DB::Exception: …``) on one line, without the
    driver's wrapping and without the statement the analyzer quotes (``In scope …``)."""
    text = str(exc)
    index = text.find("Code: ")
    if index > 0:
        text = text[index:]
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return _IN_SCOPE.sub("", line)


def _classify(exc: DriverError, action: str) -> StoreError:
    code = exc.code if isinstance(exc, DriverBaseError) else None
    message = f"{action}: {clickhouse_message(exc)}"
    if isinstance(exc, DataError) and code is None:
        # Raised by the client while serializing a value the column cannot hold.
        return StoreError(message, retryable=False, code=None)
    if isinstance(exc, OperationalError):
        return StoreError(message, retryable=True, code=code)
    if code is not None and code in REJECTION_CODES:
        return StoreError(message, retryable=False, code=code)
    return StoreError(message, retryable=True, code=code)


def _token_settings(token: str | None) -> dict[str, Any]:
    """An insert with ``token`` is idempotent, for its table and the rollups its views feed."""
    if token is None:
        return {}
    return {
        "insert_deduplication_token": token,
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }


def _is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


class ClickHouseStore:
    """A lazily connected clickhouse-connect client for ``dsn``.

    ``readonly`` opens the analysts' session: ``limits`` (default :class:`QueryLimits`'),
    then ClickHouse's ``readonly = 1`` — reads only, no setting can change after it,
    enforced by the engine itself (:mod:`tokengov.sinks.clickhouse.limits`).
    """

    def __init__(
        self,
        dsn: str,
        *,
        readonly: bool = False,
        limits: QueryLimits | None = None,
        connect_timeout_s: float = 5.0,
        send_receive_timeout_s: float = 60.0,
    ) -> None:
        self.dsn = dsn
        self.readonly = readonly
        self.limits = limits or QueryLimits()
        self._connect_timeout_s = connect_timeout_s
        self._send_receive_timeout_s = send_receive_timeout_s
        self._client: Client | None = None
        self._lock = threading.RLock()
        #: Errors by ClickHouse error code ("none": no code, e.g. the connection; /metrics)
        self.errors: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"ClickHouseStore({self.redacted_dsn!r}, readonly={self.readonly})"

    @property
    def embedded(self) -> bool:
        return _is_embedded(self.dsn)

    @property
    def redacted_dsn(self) -> str:
        """The DSN without its password, for logs."""
        if "@" not in self.dsn or "://" not in self.dsn:
            return self.dsn
        scheme, rest = self.dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"

    # -- connection ---------------------------------------------------------------

    def client(self) -> Client:
        """The connected client; raises a retryable :class:`StoreError` when unreachable."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Client:
        kwargs: dict[str, Any] = {"tz_mode": "aware"}
        if not self.embedded:
            kwargs.update(
                connect_timeout=self._connect_timeout_s,
                send_receive_timeout=self._send_receive_timeout_s,
                query_retries=0,
                autogenerate_session_id=False,
                # Query parameters (the writer's id lookups) go in the body, not the URL.
                form_encode_query_params=True,
            )
        try:
            client = clickhouse_connect.get_client(dsn=self.dsn, **kwargs)
            if self.readonly:
                self._read_only_session(client)
        except DriverError as exc:
            self.errors["none"] += 1
            raise StoreError(
                f"cannot open ClickHouse at {self.redacted_dsn}: {clickhouse_message(exc)}",
                retryable=True,
            ) from exc
        log.debug(
            "connected to ClickHouse %s (server %s)", self.redacted_dsn, client.server_version
        )
        return client

    def _read_only_session(self, client: Client) -> None:
        """Limits, then ``readonly = 1``, on this client's session (one at a time, in order:
        after ``readonly`` nothing can be changed). A server user whose profile is already
        read-only keeps the profile's limits: it may change none of them."""
        profile = client.server_settings.get("readonly")
        if not self.embedded and profile is not None and str(profile.value) != "0":
            log.debug("%s: read-only profile (readonly=%s)", self.redacted_dsn, profile.value)
            return
        for name, value in self.limits.session_settings().items():
            client.set_client_setting(name, value)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                finally:
                    self._client = None

    def _reset_after(self, exc: StoreError) -> None:
        """Drop a client whose connection failed so that the next call reconnects."""
        if exc.retryable and not self.embedded:
            self.close()

    @contextmanager
    def _failing(self, action: str, *, only: type[DriverError] = DriverError) -> Iterator[None]:
        """The client's ``only`` errors as :class:`StoreError` (ClickHouse's own message,
        retryable or not), dropping a client whose connection failed."""
        try:
            yield
        except only as exc:
            error = _classify(exc, action)
            self.errors["none" if error.code is None else str(error.code)] += 1
            self._reset_after(error)
            raise error from exc

    def __enter__(self) -> ClickHouseStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        *,
        columns: Sequence[str],
        token: str | None = None,
    ) -> int:
        """Insert ``rows`` (one tuple per row, in ``columns`` order). With ``token``, the
        insert is idempotent: the same token again is a no-op, for ``table`` and for the
        rollups its materialized views feed. Returns the number of rows sent."""
        if not rows:
            return 0
        # Column-oriented: clickhouse-connect serializes whole columns at a time (~1.5x faster).
        data = list(zip(*rows, strict=True))
        try:
            with self._failing(f"insert into {table}"):
                self.client().insert(
                    table,
                    data,
                    column_names=list(columns),
                    settings=_token_settings(token),
                    column_oriented=True,
                )
        except (ValueError, TypeError, OverflowError) as exc:
            raise StoreError(f"insert into {table}: {exc}", retryable=False) from exc
        return len(rows)

    def insert_native(
        self, table: str, body: bytes, *, columns: Sequence[str], token: str | None = None
    ) -> None:
        """Insert rows already serialized in ClickHouse's Native format for ``columns``
        (:func:`tokengov.sinks.clickhouse.encode.native_block`); ``token`` as for :meth:`insert`."""
        if not body:
            return
        with self._failing(f"insert into {table}"):
            self.client().raw_insert(
                table,
                list(columns),
                insert_block=body,
                settings=_token_settings(token),
                fmt="Native",
            )

    def command(self, sql: str, *, settings: Mapping[str, Any] | None = None) -> None:
        """Run a statement (DDL); failures raise :class:`StoreError` (retryable unless the
        server rejected the statement itself)."""
        with self._failing("statement"):
            self.client().command(sql, settings=dict(settings or {}))

    def record_notification(
        self,
        *,
        alert_id: str,
        fingerprint: str,
        receiver: str,
        attempt: int,
        result: NotificationResult,
        error: str | None,
        latency_ms: int,
        ts: datetime | None = None,
    ) -> None:
        """Who was told what, when, with what result: one row in ``notifications``."""
        row = (alert_id, fingerprint, receiver, attempt, result, error, latency_ms, ts or utcnow())
        self.insert("notifications", [row], columns=NOTIFICATION_COLUMNS)

    # -- reads --------------------------------------------------------------------

    def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """An analyst's query. ClickHouse's refusal comes back as :class:`QueryError` with
        its own message; an unreachable store as a retryable :class:`StoreError`."""
        try:
            with self._failing("query", only=OperationalError):
                result = self._run(sql, parameters, settings)
        except DriverError as exc:
            message = clickhouse_message(exc)
            code = exc.code if isinstance(exc, DriverBaseError) else None
            beyond = self.limits.explain(code) if self.readonly else None
            raise QueryError(f"{message} — {beyond}" if beyond else message) from exc
        if not result.columns and self.embedded:
            return self._describe_empty(sql, parameters)
        return result

    def fetch(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """tokengov's own query (the writer's lookups, migrations): any failure is a
        :class:`StoreError`, retryable unless ClickHouse rejected the data."""
        with self._failing("query"):
            return self._run(sql, parameters, settings)

    def fetch_lines(self, sql: str, *, settings: Mapping[str, Any] | None = None) -> list[str]:
        """The rows of a one-column query as text lines (``TSVRaw``: the values as stored, no
        escaping — for values without control characters, such as event ids). Skips the
        client's parsing of the statement and the result: for the writer's id lookups, whose
        statements carry tens of thousands of ids."""
        with self._failing("query"):
            raw = self.client().raw_query(sql, settings=dict(settings or {}), fmt="TSVRaw")
        # Only "\n" ends a line (str.splitlines would also split at U+2028 and the like).
        return raw.decode().removesuffix("\n").split("\n") if raw else []

    def _run(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None,
        settings: Mapping[str, Any] | None,
    ) -> QueryResult:
        result = self.client().query(
            sql, parameters=dict(parameters) if parameters else None, settings=dict(settings or {})
        )
        types = [t.name for t in result.column_types]
        return QueryResult(list(result.column_names), types, [tuple(r) for r in result.result_rows])

    def _describe_empty(self, sql: str, parameters: Mapping[str, Any] | None) -> QueryResult:
        """chdb returns no column names with an empty result; ask for them."""
        head = sql.lstrip().lstrip("(").split(None, 1)[0].upper() if sql.strip() else ""
        if head not in ("SELECT", "WITH"):
            return QueryResult([], [], [])
        try:
            described = self.client().query(
                f"DESCRIBE TABLE ({sql.strip().rstrip(';')})",
                parameters=dict(parameters) if parameters else None,
            )
        except DriverError:
            return QueryResult([], [], [])
        rows = described.result_rows
        return QueryResult([str(r[0]) for r in rows], [str(r[1]) for r in rows], [])
