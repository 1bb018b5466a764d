"""``tokengov demo``: ``up`` plus a synthetic fleet with scripted incidents, then a summary."""

from __future__ import annotations

import shlex
import shutil
import signal
import threading
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from tokengov.app.cli.common import DataDirOpt, PolicyOpt, console, fail, load_settings
from tokengov.app.cli.history import NoHistory, demo_data_dir, locate_history, shown
from tokengov.app.cli.up import resolve_policy
from tokengov.app.fleet import Incident
from tokengov.app.local.stack import DataDirLock
from tokengov.core.contracts import Decision
from tokengov.core.errors import TokenGovError

ANALYST_QUERIES = (
    (
        "Cost per successful task, by workflow, with the success rate",
        "SELECT o.workflow, count() AS tasks, round(countIf(o.status = 'success') / count(), 3) AS success_rate, "
        "round(sum(c.cost_usd) / nullIf(countIf(o.status = 'success'), 0), 4) AS cost_per_success_usd "
        "FROM (SELECT task_id, any(workflow) AS workflow, any(status) AS status FROM task_outcomes FINAL GROUP BY task_id) AS o "
        "JOIN (SELECT task_id, sum(cost_usd) AS cost_usd FROM token_events FINAL GROUP BY task_id) AS c USING task_id "
        "GROUP BY o.workflow ORDER BY cost_per_success_usd DESC",
    ),
    (
        "The ten most expensive tasks",
        "SELECT task_id, any(team) AS team, any(workflow) AS workflow, count() AS calls, "
        "sum(input_tokens + output_tokens) AS tokens, sum(cost_usd) AS cost_usd "
        "FROM token_events FINAL GROUP BY task_id ORDER BY cost_usd DESC LIMIT 10",
    ),
    (
        "Retry token ratio by workflow (tokens spent on retries / first attempts)",
        "SELECT workflow, round(sumIf(input_tokens + output_tokens, attempt > 1) / "
        "nullIf(sumIf(input_tokens + output_tokens, attempt = 1), 0), 4) AS retry_token_ratio "
        "FROM token_events FINAL GROUP BY workflow ORDER BY retry_token_ratio DESC",
    ),
)


def _money(value: Any) -> str:
    return f"${Decimal(value or 0):,.4f}"


def demo_command(
    duration: Annotated[float, typer.Option(help="Seconds the fleet runs.")] = 60.0,
    rate: Annotated[float, typer.Option(help="Model calls per second, about.")] = 40.0,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet.")] = 7,
    data_dir: DataDirOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Run the embedded stack with a synthetic fleet and scripted incidents; print a summary."""
    from tokengov.app.local.demo import run_demo

    settings = load_settings(data_dir=data_dir, policy=policy)
    policy_path = resolve_policy(settings)
    demo_dir = demo_data_dir(Path(settings.data_dir))  # its own store: never up's history
    if (demo_dir / "tokengov.lock").exists():
        DataDirLock(
            demo_dir
        ).acquire_or_fail_fast()  # another demo is running: say so, touch nothing
    shutil.rmtree(demo_dir, ignore_errors=True)  # every demo starts from a clean store
    demo_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"data_dir": demo_dir})
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    console.print(
        Panel(
            f"A synthetic fleet of agents (4 teams, 5 workflows) runs for {duration:.0f} s at ~{rate:.0f} calls/s "
            "through the real SDK, with scripted incidents: a runaway loop, a retry storm, chatty handoffs, "
            "a conversation resending its history, a team burning its daily budget, a workflow with no cost "
            "profile and a model with no price. Alerts routed to the console receiver appear below as they "
            f"happen.\nstate: {shown(demo_dir)} (each demo starts from a clean store there; "
            "`tokengov up`'s history is never touched)",
            title="tokengov demo",
        )
    )
    worker_log = (demo_dir / "worker.log").open("ab")
    try:
        result = run_demo(
            settings,
            policy_path,
            duration_s=duration,
            rate=rate,
            seed=seed,
            say=lambda line: console.print(line),
            worker_stderr=worker_log,
            should_stop=stop.is_set,
        )
    except TokenGovError as exc:
        fail(f"{exc} (worker log: {demo_dir / 'worker.log'})")
    finally:
        worker_log.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _print_summary(result, reader_flags(demo_dir))


def reader_flags(demo_dir: Path) -> str:
    """What the next commands need to read this demo's store: nothing when a reader without
    flags finds it (:mod:`tokengov.app.cli.history`), else ``--data-dir DIR``."""
    readers = load_settings()
    if readers.clickhouse_url:  # readers read that store whatever --data-dir says
        return ""
    try:
        found = locate_history(readers)
    except NoHistory:
        found = None
    if (
        found is not None
        and found.embedded
        and Path(found.settings.data_dir).resolve() == demo_dir.resolve()
    ):
        return ""
    return f" --data-dir {shlex.quote(shown(demo_dir))}"


def _concerns(decision: Decision, incident: Incident) -> bool:
    if decision.scope == "task":
        return bool(incident.task_id) and decision.key == incident.task_id
    if decision.scope == "team":
        return decision.key == incident.team and incident.name == "budget_burn"
    return decision.key == incident.workflow


def _print_summary(result: Any, flags: str) -> None:
    fleet = result.fleet
    console.rule("[bold]tokengov demo — summary")
    teams = Table(
        "team",
        "calls",
        "tokens",
        "cost (USD)",
        title="Spend by team (ClickHouse)",
        title_justify="left",
    )
    for team, calls, tokens, cost in result.summary_rows.get("by_team", []):
        teams.add_row(str(team), f"{int(calls):,}", f"{int(tokens):,}", _money(cost))
    console.print(teams)
    flows = Table(
        "team", "workflow", "calls", "cost (USD)", title="Spend by workflow", title_justify="left"
    )
    for team, workflow, calls, cost in result.summary_rows.get("by_workflow", []):
        flows.add_row(str(team), str(workflow), f"{int(calls):,}", _money(cost))
    console.print(flows)
    unit = Table(
        "workflow",
        "tasks",
        "success rate",
        "tokens / successful outcome",
        "cost / successful task",
        "retry token ratio",
        title="Unit economics",
        title_justify="left",
    )
    for row in result.summary_rows.get("unit", []):
        success_rate = row.get("success_rate")
        unit.add_row(
            str(row["workflow"]),
            f"{int(row['tasks']):,}",
            f"{float(success_rate):.0%}" if success_rate is not None else "—",
            f"{float(row['tokens_per_outcome'] or 0):,.0f}",
            _money(row["cost_per_successful_task"])
            if row["cost_per_successful_task"] is not None
            else "—",
            f"{float(row['retry_token_ratio'] or 0):.3f}",
        )
    console.print(unit)
    incidents = Table(
        "incident",
        "caught by",
        "first alert after",
        "what happened",
        title="Incidents",
        title_justify="left",
    )
    for name, catch in result.catches.items():
        kinds = sorted({a.kind for a in catch.alerts})
        seconds = catch.seconds_to_alert
        note = catch.incident.description
        if result.fleet.paused_tasks and name == "runaway_loop" and catch.incident.notes:
            note = catch.incident.notes[0].split(":")[0]  # "agent paused by tokengov after N calls"
        actions = sorted({d.action for d in result.decisions if _concerns(d, catch.incident)})
        if actions:
            note += f" · decision: {', '.join(actions)}"
        incidents.add_row(
            name,
            ", ".join(kinds) if kinds else "[red]not caught[/]",
            f"{seconds:.1f} s" if seconds is not None else "—",
            note,
        )
    console.print(incidents)
    match = "✓" if result.stored_calls == fleet.calls else "✗"
    console.print(
        f"{match} the fleet emitted {fleet.calls:,} calls costing {_money(fleet.cost_usd)}; ClickHouse holds "
        f"{result.stored_calls:,} calls costing {_money(result.stored_cost_usd)} (deduplicated by event_id)"
    )
    console.print(
        f"{len(result.alerts)} alerts, {len(result.decisions)} decisions, paused tasks: "
        f"{', '.join(fleet.paused_tasks) or 'none'}"
    )
    for receiver, count in sorted(result.webhooks_received.items()):
        rejected = result.webhooks_rejected.get(receiver, 0)
        console.print(
            f"webhook receiver {receiver}: {count} signed notification(s) delivered to a loopback "
            "endpoint, every signature verified" + (f"; {rejected} REJECTED" if rejected else "")
        )
    console.rule("[bold]Try next")
    for title, command in next_commands(flags):
        console.print(f"[bold]{title}[/]")
        console.print(f"  {command}", soft_wrap=True, markup=False)


def next_commands(flags: str = "") -> list[tuple[str, str]]:
    """The commands the summary (and the README) shows next, each with its title, with
    ``flags`` when a reader without flags would not find the demo's store."""
    return [
        ("Spend by team, workflow and model, last 7 days", f"tokengov report spend{flags}"),
        *((title, f'tokengov query{flags} "{sql}"') for title, sql in ANALYST_QUERIES),
        ("The alerts, newest first", f"tokengov alerts list{flags}"),
        ("The token-debt report", f"tokengov debt report{flags} --out debt.html"),
    ]
