"""ClickHouse history: schema, idempotent writer, store, query endpoint, reports.

Modules, following the data:

* ``schema`` / ``migrate`` — the versioned DDL and its idempotent application
* ``store`` — :class:`ClickHouseStore`, the one clickhouse-connect path (chdb or server)
* ``decode`` / ``rows`` — Kafka message → rows (pure)
* ``batch`` / ``dedup`` / ``plans`` / ``reconcile`` / ``backoff`` / ``deadletter`` — the
  writer's parts; ``writer`` — :class:`SinkWriter`
* ``role`` — ``register(app, ctx)`` for ``tokengov worker --role sink`` (imports Faust, so it
  is loaded on first use of ``register`` / ``SinkRole``)
* ``endpoint`` / ``wire`` (its JSON values and parameters by ClickHouse type) / ``reader`` /
  ``reports`` — analysts' access; ``statement`` (the lexer and the checks of what a query may
  do) and ``limits`` (the read-only session and its limits) — what contains it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokengov.sinks.clickhouse.endpoint import QueryEndpoint
from tokengov.sinks.clickhouse.migrate import MigrationReport, SchemaTooNew, migrate
from tokengov.sinks.clickhouse.reader import EndpointReader, Reader, StoreReader, open_reader
from tokengov.sinks.clickhouse.reports import REPORTS, ReportWindow, run_report
from tokengov.sinks.clickhouse.rows import Finding
from tokengov.sinks.clickhouse.schema import MIGRATIONS, SchemaOptions, latest_version
from tokengov.sinks.clickhouse.store import ClickHouseStore, QueryResult, StoreError
from tokengov.sinks.clickhouse.writer import SinkConfig, SinkCounters, SinkWriter

if TYPE_CHECKING:
    from tokengov.sinks.clickhouse.role import SinkRole, register

__all__ = [
    "MIGRATIONS",
    "REPORTS",
    "ClickHouseStore",
    "EndpointReader",
    "Finding",
    "MigrationReport",
    "QueryEndpoint",
    "QueryResult",
    "Reader",
    "ReportWindow",
    "SchemaOptions",
    "SchemaTooNew",
    "SinkConfig",
    "SinkCounters",
    "SinkRole",
    "SinkWriter",
    "StoreError",
    "StoreReader",
    "latest_version",
    "migrate",
    "open_reader",
    "register",
    "run_report",
]


def __getattr__(name: str) -> Any:
    if name in ("register", "SinkRole"):
        from tokengov.sinks.clickhouse import role

        return getattr(role, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
