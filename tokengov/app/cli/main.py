"""The ``tokengov`` console script: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from tokengov import __version__
from tokengov.app.cli import (
    alerts,
    bench,
    broker,
    db,
    deadletter,
    debt,
    decisions,
    export,
    grafana,
    policy,
    prices,
    query,
    schema,
    worker,
)
from tokengov.app.cli.common import err_console
from tokengov.app.cli.demo import demo_command
from tokengov.app.cli.emit import emit_command
from tokengov.app.cli.fleet import fleet_command
from tokengov.app.cli.otlp import otlp_command
from tokengov.app.cli.tail import tail_command
from tokengov.app.cli.up import up_command
from tokengov.core.errors import KafkaConfigError

app = typer.Typer(
    name="tokengov",
    help="Real-time token governance for agentic AI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(broker.app, name="broker")
app.add_typer(policy.app, name="policy")
app.add_typer(prices.app, name="prices")
app.add_typer(bench.app, name="bench")
app.add_typer(debt.app, name="debt")
app.add_typer(grafana.app, name="grafana")
app.add_typer(schema.app, name="schema")
app.command("emit")(emit_command)
app.command("tail")(tail_command)
app.command("up")(up_command)
app.command("demo")(demo_command)
app.command("fleet")(fleet_command)
app.command("otlp")(otlp_command)
app.add_typer(alerts.app, name="alerts")
app.add_typer(db.app, name="db")
app.command("query")(query.query)
app.command("report")(query.report)
app.add_typer(export.app, name="export")
app.add_typer(worker.app, name="worker")
app.add_typer(decisions.app, name="decisions")
app.add_typer(deadletter.app, name="deadletter")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KafkaConfigError as exc:  # settings are read lazily, by the commands that use Kafka
        err_console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
