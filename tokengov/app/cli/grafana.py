"""``tokengov grafana build|sync``: dashboards as code, pushed to a running Grafana."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr

from tokengov.app.cli.common import (
    DataDirOpt,
    console,
    err_console,
    fail,
    load_settings,
    setup_logging,
)
from tokengov.app.cli.history import NoHistory, open_located
from tokengov.core.contracts import utcnow
from tokengov.core.errors import QueryError, TokenGovError
from tokengov.core.policy import parse_duration
from tokengov.core.settings import Settings

if TYPE_CHECKING:
    from tokengov.sinks.grafana.alert_marks import AlertMark

app = typer.Typer(help="Grafana dashboards: generate them, push them.", no_args_is_help=True)

OutOpt = Annotated[
    Path, typer.Option("--out", help="The grafana/ directory docker-compose mounts.")
]


@app.command()
def build(
    out: OutOpt = Path("grafana"),
    check: Annotated[
        bool, typer.Option("--check", help="Only report drift; exit 1 if any file differs.")
    ] = False,
) -> None:
    """Render the dashboards and provisioning files from code into OUT."""
    from tokengov.sinks.grafana.render import check as check_files
    from tokengov.sinks.grafana.render import write

    if check:
        problems = check_files(out)
        for line in problems:
            err_console.print(f"  {line}", markup=False)
        if problems:
            fail(f"{len(problems)} generated file(s) out of date: run `tokengov grafana build`")
        console.print(f"[green]✓[/] {out} matches the code")
        return
    written = write(out)
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"[green]✓[/] {out} up to date ({len(written)} file(s) changed)")


def _since(value: str) -> datetime:
    try:
        return utcnow() - parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _alert_marks(settings: Settings, since: datetime) -> list[AlertMark] | NoHistory:
    """The alerts to annotate: through the running worker's query endpoint when it owns
    the embedded store, else from the store (or ClickHouse server) itself; :class:`NoHistory`
    (returned) on a new installation: nothing to annotate, and no store is created."""
    from tokengov.sinks.grafana.alert_marks import read_alert_marks

    try:
        reader = open_located(
            settings,
            note=lambda line: err_console.print(line, style="dim", markup=False, soft_wrap=True),
        )
    except NoHistory as exc:
        return exc
    except QueryError as exc:  # names the store it could not read
        raise QueryError(f"reading alerts from {exc}") from exc
    try:
        return read_alert_marks(lambda sql, params: reader.query(sql, params).dicts(), since)
    except QueryError as exc:
        raise QueryError(f"reading alerts from {reader.description}: {exc}") from exc
    finally:
        reader.close()


@app.command()
def sync(
    url: Annotated[
        str | None, typer.Option("--url", help="Grafana URL (env TOKENGOV_GRAFANA_URL).")
    ] = None,
    since: Annotated[
        str, typer.Option("--since", help="Annotate alerts that started within this long.")
    ] = "7d",
    datasource_url: Annotated[
        str | None,
        typer.Option(
            "--datasource-url",
            envvar="TOKENGOV_GRAFANA_DATASOURCE_URL",
            help="The ClickHouse server Grafana reads, as a read-only user: "
            "clickhouse://user:pass@host:9000/db or http(s)://…:8123/db. Without it the data "
            "source is left as provisioned.",
        ),
    ] = None,
    annotations: Annotated[
        bool, typer.Option("--annotations/--no-annotations", help="Post alert annotations.")
    ] = True,
    data_dir: DataDirOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Create or update the folder, data source and dashboards; annotate alerts."""
    from tokengov.sinks.grafana.client import GrafanaAPI
    from tokengov.sinks.grafana.datasource import ClickHouseDatasource
    from tokengov.sinks.grafana.sync import sync as run_sync

    setup_logging(verbose)
    settings = load_settings(data_dir=data_dir)
    start = _since(since)
    try:
        datasource = ClickHouseDatasource.from_url(datasource_url) if datasource_url else None
        marks = _alert_marks(settings, start) if annotations else []
        token: SecretStr | None = settings.grafana_token
        with GrafanaAPI(url or settings.grafana_url or "", token) as api:
            alerts = [] if isinstance(marks, NoHistory) else marks
            report = run_sync(api, alerts=alerts, now=utcnow(), datasource=datasource)
    except TokenGovError as exc:
        fail(str(exc))
    console.print(f"Grafana {report.grafana_version} at {url or settings.grafana_url}")
    console.print(f"  folder tokengov: {report.folder}")
    if report.datasource is not None:
        console.print(f"  data source: {report.datasource}")
    elif not report.datasource_present:
        err_console.print(
            "  [yellow]data source tokengov-clickhouse is missing[/]: pass --datasource-url"
        )
    console.print(f"  dashboards: {', '.join(report.dashboards)}")
    if isinstance(marks, NoHistory):
        console.print(f"  alert annotations: nothing to annotate yet ({marks})", markup=False)
    elif annotations:
        console.print(
            f"  alert annotations since {start:%Y-%m-%d %H:%M} UTC: "
            f"{report.annotations_posted} posted, {report.annotations_already_there} already there"
        )
