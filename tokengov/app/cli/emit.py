"""``tokengov emit FILE|-``: validate JSONL events and produce the valid ones."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from confluent_kafka import KafkaError, KafkaException, Producer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TransferSpeedColumn

from tokengov.app.cli.common import BootstrapOpt, console, err_console, fail, load_settings
from tokengov.core.decoding import decode_events
from tokengov.core.topics import EVENTS, NO_AUTO_CREATE


def emit_command(
    file: Annotated[str, typer.Argument(help="A JSONL file of events, or - for stdin.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only validate.")] = False,
    bootstrap: BootstrapOpt = None,
    topic: Annotated[str, typer.Option(help="Topic to produce to.")] = EVENTS,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Validate every line; produce the valid ones; report each invalid line with its number.

    Exits 1 when any line was invalid or any event was not delivered.
    """
    settings = load_settings(bootstrap=bootstrap)
    if file == "-":
        stream: IO[bytes] = sys.stdin.buffer
        total = None
    else:
        path = Path(file)
        if not path.is_file():
            fail(f"{file}: no such file")
        stream = path.open("rb")
        total = path.stat().st_size
    producer: Producer | None = None
    delivery_errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            delivery_errors.append(err.str())

    if not dry_run:
        producer = Producer(
            {
                **settings.kafka.librdkafka_config(),
                **NO_AUTO_CREATE,
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
                "linger.ms": 20,
                "message.timeout.ms": 30_000,
            }
        )
        try:
            producer.list_topics(topic, timeout=5)
        except KafkaException as exc:
            fail(f"cannot reach the broker at {settings.kafka_bootstrap}: {exc}")
    valid = invalid = blank = 0
    show_progress = not quiet and total is not None and total > 1_000_000
    progress = Progress(
        TextColumn("[bold]emit[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TransferSpeedColumn(),
        console=err_console,
        disable=not show_progress,
        transient=True,
    )
    with progress, stream:
        bar = progress.add_task("emit", total=total)
        for number, line in enumerate(stream, 1):
            progress.advance(bar, len(line))
            if not line.strip():
                blank += 1
                continue
            decoded = decode_events(line.strip())
            if decoded.envelope:
                invalid += 1
                err_console.print(f"line {number}: expected a JSON object, got list", markup=False)
                continue
            if decoded.failures:
                invalid += 1
                err_console.print(f"line {number}: {decoded.failures[0][0].reason}", markup=False)
                continue
            ((_, event),) = decoded.events
            valid += 1
            if producer is not None:
                key = event.task_id
                while True:
                    try:
                        producer.produce(
                            topic, value=line.strip(), key=key.encode(), on_delivery=on_delivery
                        )
                        break
                    except BufferError:
                        producer.poll(0.1)
                producer.poll(0)
    if producer is not None:
        remaining = producer.flush(60)
        if remaining:
            delivery_errors.append(f"{remaining} event(s) still in flight after 60 s")
    verb = "valid (dry run, nothing sent)" if dry_run else f"produced to {topic}"
    console.print(f"{valid} {verb}, {invalid} invalid" + (f", {blank} blank" if blank else ""))
    if delivery_errors:
        err_console.print(f"[red]{len(delivery_errors)} delivery error(s)[/]: {delivery_errors[0]}")
    if invalid or delivery_errors:
        raise typer.Exit(1)
