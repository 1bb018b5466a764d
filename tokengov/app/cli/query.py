"""``tokengov query SQL`` and ``tokengov report NAME``: analysts' access to the history.

With the embedded store, the running worker answers (its read-only endpoint);
when no worker runs, the store is opened directly, read-only. ClickHouse's
refusals come back as its own message.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from tokengov.app.cli.common import (
    DataDirOpt,
    PolicyOpt,
    console,
    fail,
    load_settings,
    open_history,
)
from tokengov.core.errors import PolicyError, QueryError
from tokengov.core.policy import load_policy, parse_duration
from tokengov.sinks.clickhouse.endpoint import jsonable
from tokengov.sinks.clickhouse.reports import REPORTS, ReportWindow, run_report
from tokengov.sinks.clickhouse.store import QueryResult

__all__ = ["parse_when", "query", "render", "report"]


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table, csv or json.")]
_RELATIVE = re.compile(r"^\d+(\.\d+)?(ms|s|m|h|d)$")


def parse_when(value: str, now: datetime) -> datetime:
    """``2026-11-29``, ``2026-11-29T05:00:00Z`` (UTC when no offset) or ``7d``/``12h`` ago."""
    text = value.strip()
    if _RELATIVE.match(text):
        return now - parse_duration(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: use a date (2026-11-29), a time (2026-11-29T05:00:00Z) or an age (7d, 12h)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(jsonable(value)) if not isinstance(value, str) else value


def render(result: QueryResult, fmt: Format) -> None:
    if fmt is Format.json:
        rows = [dict(zip(result.columns, jsonable(list(r)), strict=True)) for r in result.rows]
        console.out(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode(), highlight=False)
    elif fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_cell(v) for v in row] for row in result.rows)
        console.out(buffer.getvalue(), end="", highlight=False)
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*(_cell(v) for v in row))
        console.print(table)
        console.print(f"{len(result.rows)} row(s)", style="dim")


def query(
    sql: Annotated[
        str, typer.Argument(help="One SELECT / WITH / SHOW / DESCRIBE / EXPLAIN / EXISTS.")
    ],
    fmt: FormatOpt = Format.table,
    data_dir: DataDirOpt = None,
) -> None:
    """Run a read-only query against the history."""
    settings = load_settings(data_dir=data_dir)
    reader = open_history(settings, events_required=False)
    try:
        result = reader.query(sql)
    except QueryError as exc:
        fail(str(exc))
    finally:
        reader.close()
    render(result, fmt)


def report(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(REPORTS)}.")],
    since: Annotated[
        str | None,
        typer.Option(help="Start (date, time or age like 7d). Default: 7 days before --until."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="End, exclusive. Default: now.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    limit: Annotated[int, typer.Option(help="Rows of top-tasks.")] = 20,
    fmt: FormatOpt = Format.table,
    policy: PolicyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """A ready-made report: spend, top-tasks, unit-economics, budgets, alerts, coverage."""
    if name not in REPORTS:
        fail(f"no report {name!r}; choose one of {', '.join(REPORTS)}")
    settings = load_settings(data_dir=data_dir, policy=policy)
    now = datetime.now(UTC)
    end = parse_when(until, now) if until else now
    start = parse_when(since, end) if since else end - timedelta(days=7)
    loaded = None
    if settings.policy is not None:
        try:
            loaded = load_policy(settings.policy)
        except PolicyError as exc:
            fail(str(exc))
    if REPORTS[name].needs_policy and loaded is None:
        fail(f"the {name} report needs the policy: --policy FILE or TOKENGOV_POLICY")
    try:
        window = ReportWindow(start, end, team, limit, loaded)
    except ValueError as exc:
        fail(str(exc))
    reader = open_history(settings)
    try:
        result = run_report(name, reader, window)
    except (QueryError, ValueError) as exc:
        fail(str(exc))
    finally:
        reader.close()
    if fmt is Format.table:
        console.print(
            f"[bold]{name}[/] {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"
            + (f", team {team}" if team else "")
        )
    render(result, fmt)
