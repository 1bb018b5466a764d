"""A Faust app running only the router: the router's tests and ``tokengov bench alerts``.

The worker builds one app for every role it runs (:mod:`tokengov.app.worker_app`) and calls
:func:`tokengov.sinks.router.role.register` on it; this is the same registration on an app
of its own. Apps with one ``app_id`` are one consumer group: they share the partitions of
``tokengov.alerts`` and take each other's over (:mod:`tokengov.sinks.router.ownership`).
"""

from __future__ import annotations

import faust

from tokengov.app.faust_adjustments import adjust_faust
from tokengov.app.faust_broker import faust_broker_options
from tokengov.core.worker_context import WorkerContext
from tokengov.sinks.router.notification_log import NotificationLog
from tokengov.sinks.router.role import RouterRuntime
from tokengov.sinks.router.role import register as register_router

__all__ = ["router_app"]


def router_app(
    ctx: WorkerContext,
    *,
    app_id: str = "tokengov-router",
    notification_log: NotificationLog | None = None,
) -> tuple[faust.App, RouterRuntime]:
    """The app and the router's runtime. Timeouts tuned per DESIGN.md; Faust adjusted as
    for the worker (:func:`tokengov.app.faust_adjustments.adjust_faust`: a 1.5 s fetch wait
    was the router's whole delay beyond group_wait)."""
    adjust_faust()
    datadir = ctx.data_dir / "faust" / app_id  # Faust's default is ./<app id>-data
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        **faust_broker_options(ctx.kafka),
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_session_timeout=6,
        broker_rebalance_timeout=6,
        broker_heartbeat_interval=1,
    )
    return app, register_router(app, ctx, notification_log=notification_log)
