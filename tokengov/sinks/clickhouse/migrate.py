"""Apply the schema's migrations idempotently and record them in ``schema_migrations``.

A second run is a no-op; an upgrade runs only the versions the store lacks,
each statement of which keeps existing rows. The retention (TTL) of the raw
tables is desired state, not a version: it is compared and changed on every run.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from tokengov.core.contracts import utcnow
from tokengov.core.errors import SinkError
from tokengov.sinks.clickhouse.schema import MIGRATIONS, TTL_TABLES, Migration, SchemaOptions

if TYPE_CHECKING:
    from tokengov.sinks.clickhouse.store import ClickHouseStore

__all__ = ["MigrationReport", "SchemaTooNew", "current_version", "migrate", "ttl_statements"]

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_MIGRATIONS_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY version"""
_DDL_SETTINGS: Final = {"mutations_sync": 2, "alter_sync": 2, "materialize_ttl_after_modify": 0}
_TTL_RE: Final = re.compile(r"\bTTL (.+?)(?: SETTINGS |$)")


class SchemaTooNew(SinkError):
    """The store was migrated by a newer tokengov than this one."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the ClickHouse schema is at version {found}, newer than this tokengov knows "
            f"({known}); upgrade tokengov",
            retryable=False,
        )


@dataclass(frozen=True)
class MigrationReport:
    previous: int
    version: int
    applied: list[int] = field(default_factory=list)
    ttl_changes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.ttl_changes)


def checksum(migration: Migration, options: SchemaOptions) -> str:
    text = "\n;\n".join(migration.steps(options))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_version(store: ClickHouseStore) -> int:
    """The highest version recorded; 0 for an empty store."""
    store.command(_MIGRATIONS_TABLE)
    version = store.fetch("SELECT max(version) FROM schema_migrations").scalar()
    return int(version or 0)


def ttl_statements(store: ClickHouseStore, options: SchemaOptions) -> list[str]:
    """The ALTERs that bring each raw table's TTL to ``options.ttl_days`` (none when it is)."""
    result = store.fetch(
        "SELECT name, engine_full FROM system.tables "
        "WHERE database = currentDatabase() AND name IN {names:Array(String)}",
        {"names": list(TTL_TABLES)},
    )
    engines = {str(name): str(engine) for name, engine in result.rows}
    statements: list[str] = []
    for table, column in TTL_TABLES.items():
        if table not in engines:
            continue
        match = _TTL_RE.search(engines[table])
        current = match.group(1).strip() if match else None
        if options.ttl_days is None:
            if current is not None:
                statements.append(f"ALTER TABLE {table} REMOVE TTL")
            continue
        wanted = f"toDateTime({column}) + toIntervalDay({options.ttl_days})"
        if current != wanted:
            statements.append(f"ALTER TABLE {table} MODIFY TTL {wanted}")
    return statements


def migrate(
    store: ClickHouseStore,
    options: SchemaOptions | None = None,
    *,
    target: int | None = None,
) -> MigrationReport:
    """Bring the store to ``target`` (default: the latest version) and the configured TTL."""
    options = options or SchemaOptions()
    known = MIGRATIONS[-1].version
    target = known if target is None else target
    if not 0 < target <= known:
        raise ValueError(f"target version must be between 1 and {known}, got {target}")
    with _LOCK:
        previous = current_version(store)
        if previous > known:
            raise SchemaTooNew(previous, known)
        applied: list[int] = []
        for migration in MIGRATIONS:
            if migration.version <= previous or migration.version > target:
                continue
            log.info(
                "ClickHouse schema: applying version %d (%s)", migration.version, migration.name
            )
            for statement in migration.steps(options):
                store.command(statement, settings=_DDL_SETTINGS)
            store.insert(
                "schema_migrations",
                [(migration.version, migration.name, checksum(migration, options), utcnow())],
                columns=("version", "name", "checksum", "applied_at"),
            )
            applied.append(migration.version)
        ttl_changes = ttl_statements(store, options)
        for statement in ttl_changes:
            log.info("ClickHouse schema: %s", statement)
            store.command(statement, settings=_DDL_SETTINGS)
    version = max([previous, *applied])
    return MigrationReport(previous, version, applied, ttl_changes)
