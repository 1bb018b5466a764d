"""``tokengov fleet``: the synthetic agent fleet against any Kafka (the compose demo profile)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from tokengov.app.cli.common import BootstrapOpt, DataDirOpt, PolicyOpt, console, load_settings
from tokengov.app.cli.up import resolve_policy
from tokengov.core.policy import load_policy
from tokengov.core.topics import Topics


def fleet_command(
    bootstrap: BootstrapOpt = None,
    policy: PolicyOpt = None,
    data_dir: DataDirOpt = None,
    duration: Annotated[float, typer.Option(help="Seconds to run.")] = 90.0,
    rate: Annotated[float, typer.Option(help="Model calls per second, about.")] = 40.0,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet.")] = 7,
    guard: Annotated[
        bool, typer.Option(help="Obey governance decisions (pause, throttle, fallback).")
    ] = True,
) -> None:
    """Run the synthetic fleet (with its scripted incidents) through the real SDK."""
    from tokengov.app.fleet import Fleet
    from tokengov.producers.emitter import TokenEmitter

    settings = load_settings(bootstrap=bootstrap, policy=policy, data_dir=data_dir)
    policy_path = resolve_policy(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    topics = Topics()
    emitter = TokenEmitter(
        settings.kafka, topic=topics.events, spool_dir=Path(settings.data_dir) / "spool"
    )
    fleet = Fleet(
        emitter,
        load_policy(policy_path),
        seed=seed,
        rate=rate,
        duration_s=duration,
        on_incident=lambda incident, what: console.print(
            f"[cyan]fleet[/] {incident.name}: {incident.description} — {what}"
        ),
    )
    follower = None
    if guard:
        from tokengov.producers.guard import Guard

        # A throttled agent waits in its own script, not by stalling the fleet's one thread.
        follower = Guard(settings.kafka, topics, sleep=fleet.defer)
        follower.start()
        emitter.guard = follower
    try:
        report = fleet.run(should_stop=stop.is_set)
    finally:
        emitter.close()
        if follower is not None:
            follower.close()
    table = Table("team", "calls", "input tokens", "output tokens", "cost (USD)", title="Emitted")
    for team, row in sorted(report.by_team.items()):
        table.add_row(
            team,
            f"{row['calls']:,}",
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            f"{row['cost_usd']:.4f}",
        )
    console.print(table)
    console.print(
        f"{report.calls:,} calls, {report.outcomes:,} outcomes, {emitter.stats.as_dict()}"
    )
