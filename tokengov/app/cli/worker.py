"""``tokengov worker [--role all|streams|sink|router|otlp]``: the Faust worker."""

from __future__ import annotations

import logging
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
from tokengov.core.kafka import SecurityProtocol, check_connection
from tokengov.core.topics import Topics, ensure_topics, topic_specs, verify_topics
from tokengov.core.worker_context import PolicyHolder, WorkerContext

log = logging.getLogger(__name__)

app = typer.Typer(help="Run the Faust worker.", invoke_without_command=True)

RoleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        help="all (embedded mode), streams, sink, router or otlp (streams = governance + "
        "debt, to run as separate services; otlp = the OTLP/HTTP receiver); repeat to "
        "combine. Default: all.",
    ),
]


@app.callback(invoke_without_command=True)
def worker(
    role: RoleOpt = None,
    policy: PolicyOpt = None,
    data_dir: DataDirOpt = None,
    bootstrap: BootstrapOpt = None,
    topic_prefix: Annotated[
        str, typer.Option("--topic-prefix", hidden=True, help="Prefix of every topic (tests).")
    ] = "",
    create_topics: Annotated[
        bool,
        typer.Option(
            "--create-topics/--no-create-topics",
            help="Create the project's topics when missing (TOKENGOV_EVENT_PARTITIONS event "
            "partitions, default 8). Either way, a topic with another partition count than "
            "configured stops the worker before it starts.",
        ),
    ] = True,
    recover_mode: Annotated[
        str,
        typer.Option(
            "--recover",
            help="When the streams' state topics are empty, rebuild budgets, alerts already "
            "sent and decisions in force from the store: auto (only when stage 1 will not "
            "read again events the store may hold), always (the embedded stack: its "
            "memory-only broker starts empty), never.",
        ),
    ] = "auto",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve /healthz, /readyz and /metrics on this port (0: a free one, logged). "
            "Default: TOKENGOV_METRICS_PORT; unset = off.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Consume tokengov.events and govern spend as it happens (SIGHUP reloads the policy)."""
    setup_logging(verbose)
    settings = load_settings(data_dir=data_dir, policy=policy, bootstrap=bootstrap)
    if metrics_port is not None:
        settings.metrics_port = metrics_port
    if settings.policy is None:
        fail("no policy: pass --policy FILE or set TOKENGOV_POLICY")
    try:
        holder = PolicyHolder.from_file(settings.policy)
    except TokenGovError as exc:
        fail(str(exc))
    topics = Topics.with_prefix(topic_prefix) if topic_prefix else Topics()
    ctx = WorkerContext(settings=settings, policy=holder, topics=topics)
    from faust.worker import Worker

    from tokengov.app.cli.worker_recovery import recover
    from tokengov.app.faust_adjustments import without_spinner
    from tokengov.app.worker_app import app_id, create_app, expand_roles

    specs = topic_specs(prefix=topic_prefix, event_partitions=settings.event_partitions)
    try:
        if settings.kafka.security_protocol is not SecurityProtocol.PLAINTEXT:
            # TLS/SASL refusals come back as "which TOKENGOV_KAFKA_* to fix", not a timeout.
            check_connection(settings.kafka)
        if create_topics:
            ensure_topics(settings.kafka, specs)
        verify_topics(settings.kafka, specs)
        # before this worker's own ClickHouse writer stores anything new (see worker_recovery)
        debt = holder.current.debt
        if recover_mode not in ("auto", "always", "never"):
            fail(f"--recover: {recover_mode!r} is not one of auto, always, never")
        ctx.seed, ctx.debt_history = recover(
            settings,
            topics,
            role or ["all"],
            debt_horizon=debt.horizon + debt.task_idle,
            mode=recover_mode,
            group=app_id(ctx, expand_roles(role or ["all"])),
        )
        faust_app = create_app(ctx, role or ["all"])
    except TokenGovError as exc:
        fail(str(exc))
    log.info(
        "worker starting: roles %s, broker %s", ", ".join(role or ["all"]), ctx.kafka.describe()
    )
    without_spinner(  # its root logger at DEBUG cost every debug call (faust_adjustments)
        Worker(
            faust_app,
            loglevel="DEBUG" if verbose else "WARNING",
            redirect_stdouts=False,
            quiet=True,
        )
    ).execute_from_commandline()
