"""``tokengov bench …``: benchmarks that run a baseline and the real thing and print the ratio."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tokengov.cli.common import BootstrapOpt, console

app = typer.Typer(
    help="Benchmarks: a baseline and the real thing in one run, with the ratio.",
    no_args_is_help=True,
)


@app.command()
def streams(
    tasks: Annotated[
        int, typer.Option(help="Tasks in the throughput mix (~8 events each).")
    ] = 40_000,
    naive_tasks: Annotated[int, typer.Option(help="Tasks for the naive baseline.")] = 3_000,
    partitions: Annotated[int, typer.Option(help="Partitions of tokengov.events.")] = 8,
    rate: Annotated[int, typer.Option(help="Offered events/s during the latency run.")] = 50_000,
    latency_seconds: Annotated[float, typer.Option(help="Length of the latency run.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the event mix.")] = 7,
    bootstrap: BootstrapOpt = None,
) -> None:
    """The streams worker (envelopes, fast path) against a naive one-event-at-a-time Faust agent.

    Starts its own embedded broker unless --bootstrap is given."""
    from bench.streams import run

    console.print("running: real worker (throughput, then latency), then the naive baseline …")
    r = run(
        bootstrap=bootstrap,
        tasks=tasks,
        naive_tasks=naive_tasks,
        partitions=partitions,
        rate=rate,
        latency_seconds=latency_seconds,
        seed=seed,
    )
    table = Table(
        "", "events", "seconds", "events/s", title="tokengov bench streams", title_justify="left"
    )
    table.add_row(
        "worker (batch envelopes)", f"{r.events:,}", f"{r.seconds:.2f}", f"{r.events_per_s:,.0f}"
    )
    table.add_row(
        "naive Faust agent",
        f"{r.naive_events:,}",
        f"{r.naive_seconds:.2f}",
        f"{r.naive_per_s:,.0f}",
    )
    console.print(table)
    ratio = r.events_per_s / r.naive_per_s if r.naive_per_s else float("nan")
    console.print(
        f"ratio: [bold]{ratio:.1f}×[/] the naive agent (end to end: events in → alerts out)"
    )
    console.print(
        f"detection latency at {r.offered_rate:,} events/s offered "
        f"({r.latency_events:,} events, {len(r.latencies_ms)} limit crossings): "
        f"p50 {r.percentile(0.5):.0f} ms, p99 {r.percentile(0.99):.0f} ms, "
        f"max {max(r.latencies_ms, default=float('nan')):.0f} ms"
        + (f"; {r.lost_probes} crossings without an alert" if r.lost_probes else "")
    )
