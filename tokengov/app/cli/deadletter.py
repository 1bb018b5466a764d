"""``tokengov deadletter list|show|replay``: what was refused, why, where from, and sending
it back once fixed.

A record is named by its place on the dead-letter topic, ``partition:offset``. Every
shape ever written there is read (tokengov.deadletter's v1 record and the three shapes
before it, docs/streams.md "Dead letters").
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, get_args

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from tokengov.app.cli.common import BootstrapOpt, console, fail, load_settings
from tokengov.core.contracts import utcnow
from tokengov.core.deadletter import DeadLetterRecord, Shape, Stage, read_dead_letter
from tokengov.core.errors import BrokerError, TokenGovError
from tokengov.core.kafka import CheckedProducer, KafkaConnection, end_offsets, read_to_end
from tokengov.core.policy import parse_duration
from tokengov.core.topics import Topics

app = typer.Typer(
    help="Dead letters on tokengov.deadletter: list, show, replay.", no_args_is_help=True
)

PrefixOpt = Annotated[
    str, typer.Option("--topic-prefix", hidden=True, help="Topic prefix (tests).")
]


@dataclass(frozen=True, slots=True)
class Stored:
    """A record read from the dead-letter topic, with its place there and its shape."""

    partition: int
    offset: int
    record: DeadLetterRecord
    shape: Shape

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"id": self.id, "shape": self.shape, **self.record.model_dump(mode="json")}
        )


def _topics(prefix: str) -> Topics:
    return Topics.with_prefix(prefix) if prefix else Topics()


def read_dead_letters(
    bootstrap: KafkaConnection | str,
    topic: str,
    *,
    partitions: list[int] | None = None,
    since: datetime | None = None,
) -> list[Stored]:
    """Every record on the dead-letter topic (from ``since``), oldest first per partition."""

    since_ms = None if since is None else int(since.timestamp() * 1000)
    out = []
    for r in read_to_end(bootstrap, topic, partitions, since_ms=since_ms, timeout_s=30):
        record, shape = read_dead_letter(
            r.value, key=r.key, headers=r.headers, timestamp_ms=r.timestamp_ms
        )
        if since is not None and record.dead_lettered_at < since:
            continue
        out.append(Stored(r.partition, r.offset, record, shape))
    return out


def _parse_id(value: str) -> tuple[int, int]:
    partition, sep, offset = value.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise typer.BadParameter(f"expected partition:offset (e.g. 0:12), got {value!r}")
    return int(partition), int(offset)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return utcnow() - parse_duration(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"not a duration (10m, 4h, 1d) or an ISO time (2026-12-01T00:00Z): {value!r}"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _find(bootstrap: KafkaConnection | str, topic: str, ids: list[str]) -> list[Stored]:

    wanted = [_parse_id(i) for i in ids]
    try:
        ends = end_offsets(bootstrap, topic)
        partitions = sorted({p for p, _ in wanted if p in ends})
        found = read_dead_letters(bootstrap, topic, partitions=partitions) if partitions else []
    except TokenGovError as exc:
        fail(str(exc))
    by_place = {(s.partition, s.offset): s for s in found}
    missing = [f"{p}:{o}" for p, o in wanted if (p, o) not in by_place]
    if missing:
        fail(f"no dead letter {', '.join(missing)} on {topic} (see tokengov deadletter list)")
    return [by_place[w] for w in wanted]


def _text(data: bytes, limit: int = 4096) -> str:
    """Bytes for a terminal: UTF-8 text as it is, anything else with escapes."""
    shown = data[:limit]
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        text = repr(shown)[2:-1]
    if len(data) > limit:
        text += f"… ({len(data)} bytes; --raw for all of them)"
    return text


@app.command("list")
def list_(
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage", help="Only this stage: decode, process, skip, sink, router, ingest."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only records from then on: a duration (4h) or ISO time."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N records.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = "",
) -> None:
    """The dead letters: id (partition:offset), when, stage, where from, reason."""
    if stage is not None and stage not in get_args(Stage):
        raise typer.BadParameter(
            f"{stage!r} is not a stage: use one of {', '.join(get_args(Stage))}",
            param_hint="--stage",
        )
    settings = load_settings(bootstrap=bootstrap)
    topic = _topics(topic_prefix).deadletter
    when = _since(since)
    try:
        stored = read_dead_letters(settings.kafka, topic, since=when)
    except TokenGovError as exc:
        fail(str(exc))
    if stage is not None:
        stored = [s for s in stored if s.record.stage == stage and s.shape != "unknown"]
    stored.sort(key=lambda s: (s.record.dead_lettered_at, s.partition, s.offset))
    stored = stored[-limit:]
    if as_json:
        for s in stored:
            typer.echo(s.to_json().decode())
        return
    if not stored:
        console.print(f"no dead letters on {topic}")
        return
    table = Table(
        "id", "when", "stage", "source", "event_id", "bytes", "reason", title="Dead letters"
    )
    for s in stored:
        r = s.record
        table.add_row(
            s.id,
            r.dead_lettered_at.isoformat(timespec="seconds"),
            r.stage if s.shape != "unknown" else "?",
            escape(r.source() + (f" #{r.index}" if r.index is not None else "")),
            escape(r.event_id or ""),
            f"{r.raw_bytes}{' (cut)' if r.raw_truncated else ''}",
            escape(r.reason if len(r.reason) <= 120 else r.reason[:120] + "…"),
        )
    console.print(table)


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="partition:offset.")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Write only the original bytes, exactly, to stdout.")
    ] = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = "",
) -> None:
    """One dead letter: the reason, where it came from, and the original bytes."""
    settings = load_settings(bootstrap=bootstrap)
    [s] = _find(settings.kafka, _topics(topic_prefix).deadletter, [record_id])
    r = s.record
    if raw:
        sys.stdout.buffer.write(r.raw())
        sys.stdout.buffer.flush()
        return
    key = r.key()
    rows = [
        ("id", s.id),
        ("shape", s.shape if s.shape == "v1" else f"{s.shape} (written before the v1 record)"),
        ("dead-lettered at", r.dead_lettered_at.isoformat(timespec="milliseconds")),
        ("stage", r.stage if s.shape != "unknown" else "?"),
        ("reason", r.reason),
        ("source", r.source()),
        ("index", "" if r.index is None else str(r.index)),
        ("event_id", r.event_id or ""),
        ("key", "(none)" if key is None else _text(key, 256)),
        ("raw is", r.raw_is),
        (
            "raw bytes",
            f"{r.raw_bytes}"
            + (f", cut at the first 64 KiB (sha256 {r.raw_sha256})" if r.raw_truncated else ""),
        ),
        *((f"details.{k}", v) for k, v in sorted(r.details.items())),
    ]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, escape(value))
    console.print(table)
    console.print("[bold]original bytes[/]")
    console.print(escape(_text(r.raw())), soft_wrap=True)


@app.command()
def replay(
    record_ids: Annotated[list[str], typer.Argument(metavar="ID...", help="partition:offset.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = "",
) -> None:
    """Send the records' original bytes back to their source topic.

    With the original key (a record without one goes to its source partition). A
    truncated record is refused: its bytes are not whole."""
    settings = load_settings(bootstrap=bootstrap)
    chosen = _find(settings.kafka, _topics(topic_prefix).deadletter, record_ids)
    refused = [(s, why) for s in chosen if (why := s.record.replay_refusal()) is not None]
    if refused:
        fail(
            "; ".join(f"cannot replay {s.id}: {why}" for s, why in refused) + " — nothing was sent"
        )
    for s in chosen:
        console.print(
            f"{s.id}: {s.record.raw_bytes} bytes → {escape(s.record.source())} ({s.record.stage})"
        )
    if not yes and not typer.confirm(f"send {len(chosen)} record(s) back?"):
        fail("nothing was sent", code=1)
    try:
        producer = CheckedProducer(settings.kafka, options={"message.timeout.ms": 10000})
        for s in chosen:
            r = s.record
            assert r.source_topic is not None  # replay_refusal says so
            key = r.key()
            if key is None and r.source_partition is not None:
                producer.publish(r.source_topic, r.raw(), partition=r.source_partition)
            else:
                producer.publish(r.source_topic, r.raw(), key=key)
        producer.deliver(15, what=f"{len(chosen)} replayed record(s)")
    except BrokerError as exc:
        fail(f"cannot replay: {exc}")
    console.print(f"[green]✓[/] replayed {len(chosen)} record(s)")
