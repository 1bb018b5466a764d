"""``tokengov policy check FILE``: validate a policy; every error with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tokengov.app.cli.common import console, err_console
from tokengov.core.errors import PolicyError
from tokengov.core.policy import Policy, load_policy

app = typer.Typer(help="The policy file.", no_args_is_help=True)


def _summary(policy: Policy, path: Path) -> None:
    console.print(f"[green]✓[/] {path}: valid (version {policy.version})")
    teams = Table("team", "owner", "receiver", title="Teams", title_justify="left")
    for name, team in sorted(policy.teams.items()):
        teams.add_row(name, team.owner, team.receiver or "—")
    console.print(teams)
    profiles = Table(
        "workflow",
        "team",
        "max tokens/task",
        "max tool calls",
        "on runaway",
        title="Workflows with a cost profile",
        title_justify="left",
    )
    for name, p in sorted(policy.cost_profiles.items()):
        profiles.add_row(
            name,
            p.team,
            str(p.max_tokens_per_task or "—"),
            str(p.max_tool_calls or "—"),
            p.on_runaway,
        )
    console.print(profiles)
    budgets = Table(
        "scope", "name", "period", "limit", "thresholds", title="Budgets", title_justify="left"
    )
    for b in policy.budgets:
        limit = f"${b.limit_usd}" if b.limit_usd is not None else f"{b.limit_tokens:,} tokens"
        budgets.add_row(
            b.scope, b.name, b.period, limit, ", ".join(f"{t:.0%}" for t in b.thresholds)
        )
    console.print(budgets)
    console.print(
        f"{len(policy.receivers)} receivers, {len(policy.catalog.models())} priced models "
        f"(over the catalog), {len(policy.discounts)} discounts, "
        f"default route → {policy.routes.receiver}"
    )


@app.command()
def check(file: Annotated[Path, typer.Argument(help="The policy YAML file.")]) -> None:
    """Validate FILE. Exit 0 prints a summary; otherwise every problem with its path."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        err_console.print(f"[bold red]{exc.source}[/]: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            err_console.print(f"  {problem}", markup=False)
        raise typer.Exit(1) from None
    _summary(policy, file)
