"""``create_app(ctx, roles)``: one Faust app carrying the requested roles.

Each role's ``register(app, ctx)`` is imported by name in :data:`ROLE_LOADERS` (and only
when that role is asked for: the sink alone need not import the streams, nor the streams
chdb). Timeouts are tuned so that a group joins in ~5 s (DESIGN.md).
SIGHUP reloads the policy (``ctx.policy.reload()``): a broken file is
refused and the old policy kept; state is never lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faust

from tokengov.app.faust_adjustments import LeanMonitor, adjust_faust
from tokengov.app.faust_broker import faust_broker_options
from tokengov.core.errors import TokenGovError
from tokengov.core.kafka import KafkaConnection
from tokengov.core.worker_context import ROLES, WorkerContext
from tokengov.streams.topics import topic_prefix

__all__ = ["ROLE_LOADERS", "Register", "app_id", "app_settings", "create_app", "expand_roles"]

log = logging.getLogger(__name__)

#: What a role module offers: ``register(app, ctx)`` adds its agents and services.
Register = Callable[[faust.App, WorkerContext], object]


def _governance() -> list[Register]:
    from tokengov.streams import role

    return [role.register]


def _debt() -> list[Register]:
    from tokengov.streams.debt import role

    return [role.register]


def _sink() -> list[Register]:
    from tokengov.sinks.clickhouse import role

    return [role.register]


def _router() -> list[Register]:
    from tokengov.sinks.router import role

    return [role.register]


def _otlp() -> list[Register]:
    from tokengov.ingest.otlp import role

    return [role.register]


def _streams() -> list[Register]:
    """Governance and token debt in one process, on one decode: the debt role's stage 1 takes
    the events the streams role's stage 1 decoded (no second agent on the events topic)."""
    from tokengov.streams import role as governance
    from tokengov.streams.debt import role as debt

    registered: list[governance.StreamsRole] = []

    def register_governance(app: faust.App, ctx: WorkerContext) -> object:
        registered.append(governance.register(app, ctx))
        return registered[-1]

    def register_debt(app: faust.App, ctx: WorkerContext) -> object:
        return debt.register(app, ctx, stage1=registered[-1].stage1)

    return [register_governance, register_debt]


#: Each role and what registers it (the streams role includes token debt).
ROLE_LOADERS: dict[str, Callable[[], list[Register]]] = {
    "streams": _streams,
    "sink": _sink,
    "router": _router,
    "otlp": _otlp,
    # the two halves of ``streams``, to run as separate services (each its own group);
    # ``tokengov bench streams`` measures each and ``streams``. Not part of ``all``.
    "governance": _governance,
    "debt": _debt,
}


def expand_roles(roles: Sequence[str]) -> list[str]:
    out: list[str] = []
    for role in roles:
        names = list(ROLES) if role == "all" else [role]
        for name in names:
            if name not in ROLE_LOADERS:
                raise TokenGovError(
                    f"unknown role {name!r}; choose from all, {', '.join(ROLE_LOADERS)}"
                )
            if name not in out:
                out.append(name)
    return out


def app_id(ctx: WorkerContext, roles: Sequence[str]) -> str:
    """The Faust app id, which is also the consumer group. Every role reads whole topics, so
    processes that run different roles must not share a group (Kafka would split the
    partitions of ``tokengov.events`` between, say, a streams and a sink service):
    ``tokengov-worker`` for all roles in one process, ``tokengov-worker-<roles>`` otherwise."""
    prefix = topic_prefix(ctx.topics)
    if set(roles) == set(ROLES):
        return f"{prefix}tokengov-worker"
    return f"{prefix}tokengov-worker-{'-'.join(roles)}"


def _load_role(role: str) -> list[Register]:
    try:
        return ROLE_LOADERS[role]()
    except ModuleNotFoundError as exc:
        raise TokenGovError(
            f"role {role!r} needs the module {exc.name}, which is not installed; install "
            "the server extra (pip install 'tokengov[server]') or run the other roles with --role"
        ) from exc


def app_settings(conn: KafkaConnection, state_dir: Path) -> dict[str, Any]:
    """The worker's Faust settings, ``faust.App(app_id, **app_settings(...))``: also those of
    the bare Faust agent ``tokengov bench streams`` measures the framework's floor with
    (:mod:`tokengov.app.bench.bare_faust`), so that floor is this app's."""
    return {
        **faust_broker_options(conn),
        "store": "memory://",
        "datadir": str(state_dir / "faust"),
        "web_enabled": False,
        "autodiscover": False,
        "topic_replication_factor": 1,
        # Faust creates nothing: the roles use no tables (no changelogs) and no leader; every
        # topic is created by tokengov with its configured partitions (tokengov/core/topics.py).
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": 6,
        "broker_rebalance_timeout": 6,
        "broker_heartbeat_interval": 1,
        "broker_commit_interval": 1.0,
        "producer_max_request_size": 4_000_000,
        "stream_buffer_maxsize": 4096,
        # Acks wait for the flush that persists their state (tokengov/streams/partition_stage.py); at
        # shutdown the flush timer is gone, so do not wait for acks: what was not flushed is
        # replayed, exactly.
        "stream_wait_empty": False,
        # Faust's Monitor counts and times every message for its web views (off here):
        # this one keeps only what Faust's livelock check reads (faust_adjustments)
        "Monitor": LeanMonitor,
    }


def create_app(ctx: WorkerContext, roles: Sequence[str]) -> faust.App:
    wanted = expand_roles(roles)
    registrars = {role: _load_role(role) for role in wanted}  # fail before connecting anywhere
    adjust_faust()
    state_dir = ctx.settings.worker_state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(app_id(ctx, wanted), **app_settings(ctx.kafka, state_dir))
    registered: dict[str, list[object]] = {}
    for role, role_registrars in registrars.items():
        registered[role] = [register(app, ctx) for register in role_registrars]
        log.info("role %s registered", role)
    if not app.agents:
        # e.g. --role sink (the writer consumes with its own client) or --role otlp alone: no
        # Faust agent, so no Faust consumer (one subscribed to no topic crashes the worker:
        # "provide either topics or pattern").
        app.producer_only = True
    from tokengov.app.metrics import observe  # prometheus-client: the server extra

    server = observe(app, ctx, app.conf.id, registered)  # TOKENGOV_METRICS_PORT unset: off

    async def announce_ready() -> None:
        await _announce_ready(ctx, wanted, metrics_port=server.port if server else None)

    async def install_sighup() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, _reload, ctx)

    app.task(announce_ready)
    app.task(install_sighup)

    return app


READY_FILE = "ready.json"


async def _announce_ready(
    ctx: WorkerContext,
    roles: list[str],
    timeout_s: float = 120.0,
    *,
    metrics_port: int | None = None,
) -> None:
    """Write ``<worker state dir>/ready.json`` once this process serves what it should:
    with the sink role, its query endpoint (the embedded stack waits for this file);
    ``metrics_port``: where /healthz, /readyz and /metrics are served (None: off)."""
    if "sink" in roles and ctx.settings.embedded_clickhouse:
        from tokengov.sinks.clickhouse.reader import endpoint_address

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while endpoint_address(ctx.data_dir) is None:
            if loop.time() > deadline:
                log.error("the query endpoint did not come up within %.0fs", timeout_s)
                return
            await asyncio.sleep(0.1)
    state = ctx.settings.worker_state_dir / READY_FILE
    tmp = state.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "roles": roles,
                "ready_at": time.time(),
                "metrics_port": metrics_port,
            }
        )
    )
    tmp.replace(state)
    log.info("worker ready: roles %s", ", ".join(roles))


def _reload(ctx: WorkerContext) -> None:
    log.warning("SIGHUP: reloading the policy from %s", ctx.policy.path)
    ctx.policy.reload()
