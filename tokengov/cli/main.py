"""The ``tokengov`` console script: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from tokengov import __version__
from tokengov.cli import bench, broker, decisions, policy, worker

app = typer.Typer(
    name="tokengov",
    help="Real-time token governance for agentic AI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(broker.app, name="broker")
app.add_typer(policy.app, name="policy")
app.add_typer(bench.app, name="bench")
app.add_typer(worker.app, name="worker")
app.add_typer(decisions.app, name="decisions")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
