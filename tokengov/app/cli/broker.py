"""``tokengov broker start|stop|status``: the embedded Kafka-compatible broker."""

from __future__ import annotations

from typing import Annotated

import typer

from tokengov.app.cli.common import DataDirOpt, console, err_console, fail, load_settings
from tokengov.app.local.broker import EmbeddedBroker
from tokengov.core.errors import BrokerError
from tokengov.core.topics import ensure_topics, topic_specs

app = typer.Typer(help="The embedded Kafka-compatible broker (Tansu).", no_args_is_help=True)

PortOpt = Annotated[
    int | None,
    typer.Option("--port", help="Loopback port (default: from TOKENGOV_KAFKA_BOOTSTRAP, 9092)."),
]


def _broker(data_dir: DataDirOpt, port: int | None) -> EmbeddedBroker:
    settings = load_settings(data_dir=data_dir)
    default_port = int(settings.kafka_bootstrap.rsplit(":", 1)[-1])
    return EmbeddedBroker(settings.broker_state_dir, port=port or default_port)


@app.command()
def start(
    port: PortOpt = None,
    data_dir: DataDirOpt = None,
    partitions: Annotated[
        int | None,
        typer.Option(help="Partitions of tokengov.events (default TOKENGOV_EVENT_PARTITIONS, 8)."),
    ] = None,
) -> None:
    """Start the broker in the background and create the project's topics."""
    broker = _broker(data_dir, port)
    count = partitions or load_settings(data_dir=data_dir).event_partitions
    try:
        info = broker.start(detach=True)
        created = ensure_topics(info.bootstrap, topic_specs(event_partitions=count))
    except BrokerError as exc:
        fail(str(exc))
    console.print(
        f"broker up on [bold]{info.bootstrap}[/] (pid {info.pid}); state in {broker.state_dir}"
    )
    if created:
        console.print(f"created topics: {', '.join(created)}")


@app.command()
def status(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Exit 0 only while the broker answers."""
    broker = _broker(data_dir, port)
    info = broker.status()
    if info is None:
        err_console.print("broker: not running")
        raise typer.Exit(1)
    console.print(f"broker: running on {info.bootstrap} (pid {info.pid})")


@app.command()
def stop(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop the broker; no process is left behind."""
    broker = _broker(data_dir, port)
    try:
        stopped = broker.stop()
    except BrokerError as exc:
        fail(str(exc))
    console.print("broker stopped" if stopped else "broker: was not running")
