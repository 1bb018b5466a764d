"""``tokengov debt report``: the token-debt report from ClickHouse, as HTML and as text."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from tokengov.app.cli.common import (
    DataDirOpt,
    PolicyOpt,
    console,
    err_console,
    fail,
    load_settings,
    open_history,
)
from tokengov.core.contracts import utcnow
from tokengov.core.errors import PolicyError, QueryError
from tokengov.core.policy import Policy, load_policy, parse_duration

app = typer.Typer(
    help="Token debt: wasteful patterns, what they cost, maturity.", no_args_is_help=True
)


def parse_since(value: str, now: datetime) -> date:
    """``7d``, ``36h`` (back from now) or an ISO date ``2026-11-01``."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return (now - parse_duration(value)).date()
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (7d, 36h) nor a date (YYYY-MM-DD)"
        ) from None


@app.command()
def report(
    since: Annotated[
        str,
        typer.Option(help="Period start: a duration back from now (7d) or a date (YYYY-MM-DD)."),
    ] = "14d",
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the self-contained HTML report here.")
    ] = None,
    clickhouse_url: Annotated[
        str | None,
        typer.Option(
            "--clickhouse-url",
            help="clickhouse-connect DSN of the store (env TOKENGOV_CLICKHOUSE_URL; default "
            "the embedded store in the data dir, read through the running worker if any).",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Spend and trend, findings ranked by estimated waste, unit metrics, maturity.

    With the embedded store it reads through the running worker's query endpoint
    when there is one, else the store itself."""
    from tokengov.app.report import build_report, render_html, render_text

    settings = load_settings(data_dir=data_dir, policy=policy)
    if clickhouse_url:
        settings = settings.model_copy(update={"clickhouse_url": clickhouse_url})
    now = utcnow()
    start = parse_since(since, now)
    if settings.policy is not None:
        try:
            loaded = load_policy(settings.policy)
        except PolicyError as exc:
            fail(str(exc))
    else:
        loaded = Policy(version=1)
    reader = open_history(settings)  # no history: one line, before anything else is said
    if settings.policy is None:
        err_console.print(
            "[yellow]no policy given (--policy or TOKENGOV_POLICY): quality bars, "
            "budgets, cost profiles and routes count as unset[/]"
        )
    try:
        data = build_report(reader, loaded, since=start, team=team, now=now)
    except QueryError as exc:
        fail(str(exc))
    finally:
        reader.close()
    render_text(data, console)
    if out is not None:
        out.write_text(render_html(data), encoding="utf-8")
        console.print(f"[green]✓[/] wrote {out}")
