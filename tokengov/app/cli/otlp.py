"""``tokengov otlp``: the OTLP/HTTP receiver alone (the worker's ``otlp`` role runs the same)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from tokengov.app.cli.common import (
    BootstrapOpt,
    DataDirOpt,
    PolicyOpt,
    fail,
    load_settings,
    setup_logging,
)
from tokengov.core.errors import TokenGovError
from tokengov.core.policy import Policy, load_policy
from tokengov.core.topics import Topics, topic_specs, verify_topics


def otlp_command(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (env TOKENGOV_OTLP_HOST, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port to listen on (env TOKENGOV_OTLP_PORT, 4318)."),
    ] = None,
    policy: PolicyOpt = None,
    data_dir: DataDirOpt = None,
    bootstrap: BootstrapOpt = None,
    topic_prefix: Annotated[
        str, typer.Option("--topic-prefix", hidden=True, help="Prefix of every topic (tests).")
    ] = "",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Receive OpenTelemetry GenAI spans (OTLP/HTTP, POST /v1/traces) and publish their model
    calls as events. The policy's otlp: section says how spans are attributed
    (docs/otlp.md); the bearer token, when required, comes from TOKENGOV_OTLP_TOKEN."""
    from tokengov.ingest.otlp.runtime import build_receiver, serve

    setup_logging(verbose)
    settings = load_settings(data_dir=data_dir, policy=policy, bootstrap=bootstrap)
    overrides = {k: v for k, v in (("otlp_host", host), ("otlp_port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    try:
        rules = load_policy(settings.policy) if settings.policy else Policy(version=1)
        topics = Topics.with_prefix(topic_prefix) if topic_prefix else Topics()
        specs = topic_specs(prefix=topic_prefix, event_partitions=settings.event_partitions)
        verify_topics(
            settings.kafka, [s for s in specs if s.name in (topics.events, topics.deadletter)]
        )
        receiver = build_receiver(settings, rules, topics)
    except TokenGovError as exc:
        fail(str(exc))
    try:
        asyncio.run(serve(receiver, settings))
    except OSError as exc:
        fail(f"cannot listen on {settings.otlp_host}:{settings.otlp_port}: {exc}")
