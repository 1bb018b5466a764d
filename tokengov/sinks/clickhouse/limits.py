"""The session analysts' queries run in: ClickHouse's ``readonly = 1`` and per-query limits.

The settings are applied to the reader's own session (chdb: its own connection handle,
``SET``; a server: with every request) in order, ``readonly = 1`` last, so that nothing
sent afterwards — a ``SETTINGS`` clause, ``SET readonly = 0`` — can change them: with
``readonly = 1`` ClickHouse refuses to change any setting ("Cannot modify 'readonly'
setting in readonly mode"), refuses writes and DDL, and refuses table functions that
need ``CREATE TEMPORARY TABLE`` (``file``, ``url``, ``remote``, ``mysql``, ``s3``,
``executable`` …). See https://clickhouse.com/docs/operations/settings/permissions-for-queries.

A query beyond a limit fails with ClickHouse's message plus the limit and the tokengov
setting that raises it (:meth:`QueryLimits.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tokengov.core.settings import Settings

__all__ = ["LIMIT_CODES", "QueryLimits"]

#: ClickHouse error code → (what, the Settings field whose TOKENGOV_ variable sets it).
LIMIT_CODES: Final = {
    159: ("max_execution_time", "query_timeout_s"),  # TIMEOUT_EXCEEDED
    241: ("max_memory_usage", "query_max_memory_bytes"),  # MEMORY_LIMIT_EXCEEDED
    396: ("max_result_rows", "query_max_result_rows"),  # TOO_MANY_ROWS_OR_BYTES
}


@dataclass(frozen=True)
class QueryLimits:
    """What one analyst's query may use. Defaults equal :class:`tokengov.core.settings.Settings`'."""

    timeout_s: float = 60.0
    max_memory_bytes: int = 1_000_000_000
    max_result_rows: int = 100_000
    max_threads: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryLimits:
        return cls(
            timeout_s=settings.query_timeout_s,
            max_memory_bytes=settings.query_max_memory_bytes,
            max_result_rows=settings.query_max_result_rows,
            max_threads=settings.query_max_threads,
        )

    def session_settings(self) -> dict[str, Any]:
        """ClickHouse settings in the order to apply them: ``readonly`` last."""
        return {
            "max_execution_time": self.timeout_s,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_bytes,
            "max_result_rows": self.max_result_rows,
            "result_overflow_mode": "throw",
            "max_threads": self.max_threads,
            "allow_ddl": 0,
            # top-tasks and unit-economics read task_totals more than once in a statement and
            # must see the same parts each time (tokengov.sinks.clickhouse.reports.ONE_SNAPSHOT,
            # which their statements also carry: under readonly = 1 a SETTINGS clause may only
            # repeat the session's value). ClickHouse ≥ 25.6; the default from 25.12.
            "enable_shared_storage_snapshot_in_query": 1,
            "readonly": 1,
        }

    def explain(self, code: int | None) -> str | None:
        """For a ClickHouse error ``code`` that means "beyond a limit": which one, and how
        to raise it."""
        if code not in LIMIT_CODES:
            return None
        name, field = LIMIT_CODES[code]
        value = {
            "query_timeout_s": f"{self.timeout_s:g} s",
            "query_max_memory_bytes": f"{self.max_memory_bytes} bytes",
            "query_max_result_rows": f"{self.max_result_rows} rows",
        }[field]
        return (
            f"the query went beyond the limit {name} = {value} "
            f"(setting TOKENGOV_{field.upper()}); narrow the query (a shorter range, "
            "LIMIT, an aggregate) or raise the setting for the process that runs it"
        )
