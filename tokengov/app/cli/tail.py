"""``tokengov tail [--topic T]``: what arrives on a topic, readable to a person."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
import typer
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition
from rich.markup import escape

from tokengov.app.cli.common import BootstrapOpt, console, fail, load_settings
from tokengov.core.calls import Call, Done, usd_str
from tokengov.core.decoding import decode_events
from tokengov.core.kafka_logging import client_logging
from tokengov.core.topics import ALERTS, ALL_TOPICS, DECISIONS, EVENTS

_SEVERITY = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _event_line(event: Call | Done) -> str:
    ts = event.ts.strftime("%H:%M:%S.%f")[:-3]
    who = f"{escape(event.team)}/{escape(event.workflow)}"
    if isinstance(event, Done):
        quality = f" quality={event.quality:.2f}" if event.quality is not None else ""
        return f"{ts} [magenta]outcome[/] {who} task={escape(event.task_id)} [bold]{event.status}[/]{quality}"
    parts = [f"in={event.input:,}", f"out={event.output:,}"]
    if event.usage_missing:
        parts = ["[yellow]usage missing[/]"]
    if event.cached_input:
        parts.append(f"cached={event.cached_input:,}")
    if event.cache_write:
        parts.append(f"cache_write={event.cache_write:,}")
    if event.cache_write_1h:
        parts.append(f"of_which_1h={event.cache_write_1h:,}")
    if event.reasoning:
        parts.append(f"reasoning={event.reasoning:,}")
    extra = f" attempt={event.attempt}" if event.attempt > 1 else ""
    if event.parent_agent:
        extra += f" from={escape(event.parent_agent)}"
    if event.tool_name:
        extra += f" tool={escape(event.tool_name)}"
    if event.service_tier:
        extra += f" tier={escape(event.service_tier)}"
    cost = f" ${usd_str(event.cost_femto)}" if event.cost_femto is not None else ""
    status = "" if event.status == "ok" else f" [red]{event.status}[/]"
    return (
        f"{ts} [green]call[/] {who} task={escape(event.task_id)} step={event.step}{extra} "
        f"{escape(event.agent)} {escape(event.model)} {' '.join(parts)}{cost}{status}"
    )


def _render(topic: str, key: bytes | None, value: bytes, canonical: str) -> list[str]:
    if canonical == EVENTS:
        result = decode_events(value)
        lines = [_event_line(e) for _, e in result.events]
        lines += [f"[red]invalid[/] {escape(f.reason)}" for f, _ in result.failures]
        return lines
    try:
        doc: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return [f"{escape(topic)} key={key!r} {len(value)} bytes (not JSON)"]
    if canonical == ALERTS and isinstance(doc, dict):
        style = _SEVERITY.get(str(doc.get("severity")), "white")
        return [
            f"[{style}]{doc.get('severity', '?').upper()}[/] {doc.get('status', '')} "
            f"{escape(str(doc.get('kind')))} team={escape(str(doc.get('team')))} — {escape(str(doc.get('summary')))}"
        ]
    if canonical == DECISIONS and isinstance(doc, dict):
        model = f" → {doc['fallback_model']}" if doc.get("fallback_model") else ""
        return [
            f"[bold]{escape(str(doc.get('action')))}[/]{model} {doc.get('scope')}:{escape(str(doc.get('key')))} "
            f"— {escape(str(doc.get('reason')))} (until {doc.get('expires_at')})"
        ]
    text = orjson.dumps(doc).decode()
    return [escape(text if len(text) < 400 else text[:400] + "…")]


def tail_command(
    topic: Annotated[str, typer.Option(help="Topic to show.")] = EVENTS,
    bootstrap: BootstrapOpt = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest message.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without a message.")
    ] = None,
) -> None:
    """Follow a topic (all partitions, no consumer group) and print each message."""
    settings = load_settings(bootstrap=bootstrap)
    real = topic
    # A prefixed topic (tests, multi-tenant clusters) renders like the canonical one.
    canonical = next((name for name in ALL_TOPICS if real.endswith(name)), real)
    consumer = Consumer(
        {
            **settings.kafka.librdkafka_config(),
            "group.id": "tokengov-tail",
            "enable.auto.commit": False,
            **client_logging(),
        }
    )
    try:
        metadata = consumer.list_topics(real, timeout=5)
    except KafkaException as exc:
        fail(f"cannot reach the broker at {settings.kafka_bootstrap}: {exc}")
    meta = metadata.topics.get(real)
    if meta is None or meta.error is not None or not meta.partitions:
        fail(f"topic {real} does not exist on {settings.kafka_bootstrap}")
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(real, p, start) for p in meta.partitions])
    shown = 0
    last = time.monotonic()
    try:
        while limit is None or shown < limit:
            msg = consumer.poll(0.2)
            if msg is None:
                if idle_exit is not None and time.monotonic() - last > idle_exit:
                    break
                continue
            if msg.error():
                continue
            last = time.monotonic()
            for line in _render(real, msg.key(), msg.value() or b"", canonical):
                console.print(line, soft_wrap=True)
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
