"""``tokengov decisions list|lift``: the decisions agents obey, and a human lifting one."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.table import Table

from tokengov.app.cli.common import BootstrapOpt, console, fail, load_settings
from tokengov.core.contracts import Decision, utcnow
from tokengov.core.errors import BrokerError, TokenGovError
from tokengov.core.kafka import CheckedProducer, KafkaConnection
from tokengov.core.topics import Topics

app = typer.Typer(
    help="Decisions on tokengov.decisions (what the SDK's guard obeys).", no_args_is_help=True
)

PrefixOpt = Annotated[
    str, typer.Option("--topic-prefix", hidden=True, help="Topic prefix (tests).")
]


def _topics(prefix: str) -> Topics:
    return Topics.with_prefix(prefix) if prefix else Topics()


def read_decisions(bootstrap: KafkaConnection | str, topics: Topics) -> dict[str, Decision]:
    """The latest decision per ``scope:key`` on the compacted topic."""
    from tokengov.core.kafka import latest_by_key, read_to_end

    latest = latest_by_key(read_to_end(bootstrap, topics.decisions, timeout_s=15))
    out: dict[str, Decision] = {}
    for key, raw in latest.items():
        try:
            out[key] = Decision.model_validate_json(raw)
        except ValueError:
            continue
    return out


@app.command("list")
def list_(
    show_all: Annotated[bool, typer.Option("--all", help="Include expired decisions.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = "",
) -> None:
    """The decision in force for every scope:key (active ones; --all for expired too)."""
    settings = load_settings(bootstrap=bootstrap)
    try:
        decisions = read_decisions(settings.kafka, _topics(topic_prefix))
    except TokenGovError as exc:
        fail(str(exc))
    now = utcnow()
    table = Table(
        "key",
        "action",
        "state",
        "reason",
        "issued",
        "expires",
        title="Decisions",
        title_justify="left",
    )
    shown = 0
    for key, d in sorted(decisions.items()):
        active = d.active(now)
        if not (active or show_all):
            continue
        shown += 1
        if as_json:
            typer.echo(d.model_dump_json())
            continue
        detail = d.fallback_model or (f"{d.throttle_ms} ms" if d.throttle_ms else "")
        table.add_row(
            key,
            f"{d.action} {detail}".strip(),
            "active" if active else "expired",
            d.reason,
            d.issued_at.isoformat(timespec="seconds"),
            d.expires_at.isoformat(timespec="seconds") if d.expires_at else "never",
        )
    if as_json:
        return
    if shown:
        console.print(table)
    else:
        console.print("no active decisions" if not show_all else "no decisions")


@app.command()
def lift(
    key: Annotated[str, typer.Argument(help="scope:key, e.g. task:t-8812 or team:search.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the decision).")] = "",
    bootstrap: BootstrapOpt = None,
    topic_prefix: PrefixOpt = "",
) -> None:
    """Lift a pause (or throttle, fallback): publish a proceed decision for KEY."""
    scope, sep, name = key.partition(":")
    if not sep or not name or scope not in ("task", "workflow", "team"):
        fail(f"expected scope:key with scope task, workflow or team, got {key!r}")
    settings = load_settings(bootstrap=bootstrap)
    who = getpass.getuser()
    decision = Decision(
        scope=scope,  # type: ignore[arg-type]
        key=name,
        action="proceed",
        reason=f"lifted by {who}" + (f": {reason}" if reason else ""),
        issued_at=utcnow(),
    )
    topics = _topics(topic_prefix)
    try:
        producer = CheckedProducer(settings.kafka, options={"message.timeout.ms": 10000})
        producer.publish(
            topics.decisions,
            key=decision.topic_key.encode(),
            value=decision.model_dump_json().encode(),
        )
        producer.deliver(15, what=f"the decision on {topics.decisions}")
    except BrokerError as exc:
        fail(str(exc))
    console.print(f"[green]✓[/] {decision.topic_key}: proceed ({decision.reason})")
