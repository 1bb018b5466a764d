"""``tokengov db migrate|status``: create, upgrade and inspect the ClickHouse schema."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tokengov.app.cli.common import DataDirOpt, console, fail, load_settings, setup_logging
from tokengov.core.settings import Settings
from tokengov.sinks.clickhouse.migrate import SchemaTooNew, current_version, migrate
from tokengov.sinks.clickhouse.reader import endpoint_address
from tokengov.sinks.clickhouse.schema import MIGRATIONS, SchemaOptions
from tokengov.sinks.clickhouse.store import ClickHouseStore, StoreError

app = typer.Typer(help="The ClickHouse schema.", no_args_is_help=True)


def _open(settings: Settings) -> ClickHouseStore:
    if settings.embedded_clickhouse and endpoint_address(settings.data_dir) is not None:
        fail(
            f"the embedded store {settings.clickhouse_dsn} is owned by a running worker, "
            "which migrates it when it starts; stop the worker to run this command"
        )
    return ClickHouseStore(settings.clickhouse_dsn)


@app.command("migrate")
def migrate_command(
    data_dir: DataDirOpt = None,
    target: Annotated[
        int | None, typer.Option("--target", help="Stop at this schema version (default: latest).")
    ] = None,
) -> None:
    """Create or upgrade the schema; a second run changes nothing."""
    setup_logging()
    settings = load_settings(data_dir=data_dir)
    with _open(settings) as store:
        try:
            report = migrate(
                store, SchemaOptions(ttl_days=settings.clickhouse_ttl_days), target=target
            )
        except (StoreError, SchemaTooNew, ValueError) as exc:
            fail(str(exc))
    if not report.changed:
        console.print(f"schema at version {report.version}: nothing to do")
        return
    for version in report.applied:
        name = next(m.name for m in MIGRATIONS if m.version == version)
        console.print(f"[green]applied[/] version {version}: {name}")
    for statement in report.ttl_changes:
        console.print(f"[green]retention[/] {statement}")
    console.print(f"schema at version {report.version} (was {report.previous})")


@app.command()
def status(data_dir: DataDirOpt = None) -> None:
    """The schema version and the rows of each table."""
    settings = load_settings(data_dir=data_dir)
    with _open(settings) as store:
        try:
            version = current_version(store)
            tables = store.query(
                "SELECT name, engine, total_rows FROM system.tables "
                "WHERE database = currentDatabase() ORDER BY name"
            )
        except StoreError as exc:
            fail(str(exc))
    console.print(
        f"{store.redacted_dsn}: schema version {version} "
        f"(this tokengov knows {MIGRATIONS[-1].version})"
    )
    table = Table("table", "engine", "rows", title_justify="left")
    for name, engine, rows in tables.rows:
        table.add_row(str(name), str(engine), "" if rows is None else f"{rows:,}")
    console.print(table)
