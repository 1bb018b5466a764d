"""``tokengov export focus``: the history's model spend as FOCUS rows for FinOps tools."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from tokengov.app.cli.common import DataDirOpt, console, fail, load_settings, open_history
from tokengov.app.cli.query import parse_when
from tokengov.core.errors import QueryError
from tokengov.sinks.clickhouse.focus import (
    FOCUS_VERSION,
    FileFormat,
    FocusWindow,
    Granularity,
    focus_rows,
    write_focus,
)

app = typer.Typer(help="Export the history for other tools.", no_args_is_help=True)


@app.command("focus")
def focus(
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write (.csv or .parquet).")],
    since: Annotated[
        str, typer.Option(help="Start (date, time or age like 30d), rounded down to a period.")
    ] = "30d",
    until: Annotated[
        str | None,
        typer.Option(help="End, exclusive, rounded down to a period. Default: now."),
    ] = None,
    granularity: Annotated[
        Granularity, typer.Option(help="The charge period: hour or day (UTC).")
    ] = Granularity.hour,
    fmt: Annotated[
        FileFormat | None,
        typer.Option("--format", "-f", help="csv or parquet (default: from the suffix of --out)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """FOCUS 1.0 rows: one per team × workflow × agent × model × provider × hour (or day)."""
    try:
        file_format = FileFormat.of(out, fmt)
    except ValueError as exc:
        fail(str(exc))
    now = datetime.now(UTC)
    end = parse_when(until, now) if until else now
    start = parse_when(since, end)
    try:
        window = FocusWindow.covering(start, end, granularity)
    except ValueError as exc:
        fail(str(exc))
    settings = load_settings(data_dir=data_dir)
    reader = open_history(settings, events_required=False)  # empty: a header-only file
    try:
        rows = focus_rows(reader, window)
    except QueryError as exc:
        fail(str(exc))
    finally:
        reader.close()
    try:
        write_focus(rows, out, file_format)
    except OSError as exc:
        fail(f"--out {out}: {exc.strerror or exc}")
    periods = f"{window.since:%Y-%m-%d %H:%M} → {window.until:%Y-%m-%d %H:%M} UTC"
    what = f"{len(rows)} row(s)" if rows else "no spend in the window: header only"
    console.print(
        f"FOCUS {FOCUS_VERSION} {file_format.value} → {out}: {what} ({periods}, "
        f"by {granularity.value})",
        soft_wrap=True,
    )
