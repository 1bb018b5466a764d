"""``tokengov bench …``: benchmarks that run a baseline and the real thing and print the ratio."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Benchmarks: a baseline and the real thing in one run, with the ratio.",
    no_args_is_help=True,
)


@app.command("sdk")
def sdk_bench(
    events: int = typer.Option(200_000, help="Events per side."),
    bootstrap: str | None = typer.Option(None, help="Use this broker instead of an embedded one."),
) -> None:
    """The SDK's per-event cost at the call site vs a bare confluent-kafka produce."""
    from bench.sdk import report, run

    report(run(events, bootstrap))
