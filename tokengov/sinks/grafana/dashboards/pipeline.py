"""tokengov pipeline: the health of tokengov itself, from Prometheus (the processes'
``/metrics``, docs/operations.md) — throughput, consumer lag, latency, dead letters,
delivery failures.

Unlike the four ClickHouse dashboards it reads the provisioned Prometheus data source
(uid :data:`PROMETHEUS_UID`, docker-compose's ``prometheus`` service), so it is provisioned
from files only: ``tokengov grafana sync`` pushes the ClickHouse dashboards, not this one.
:data:`EXPRESSIONS` lists every PromQL expression it draws (the tests check each metric
against a real scrape).
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from tokengov.sinks.grafana.dashboards.base import DASHBOARD_TAG, DashboardSpec

__all__ = ["EXPRESSIONS", "PROMETHEUS_REF", "PROMETHEUS_UID", "SPEC"]

UID = "tokengov-pipeline"
TITLE = "tokengov pipeline"
PROMETHEUS_UID: Final = "tokengov-prometheus"
PROMETHEUS_REF: Final = model.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)

#: (panel title, description, unit, [(expr, legend)])
PANELS: Final[tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...]] = (
    (
        "Throughput: events per second",
        "Events through stage 1 by outcome, and rows the ClickHouse writer stores.",
        "ops",
        (
            ("sum by (outcome) (rate(tokengov_stream_events_total[5m]))", "streams {{outcome}}"),
            ("sum by (table) (rate(tokengov_sink_rows_inserted_total[5m]))", "stored {{table}}"),
        ),
    ),
    (
        "Consumer lag",
        "Messages behind the end of each topic, per consumer group (summed over partitions).",
        "short",
        (("sum by (group, topic) (tokengov_consumer_lag_messages)", "{{group}} {{topic}}"),),
    ),
    (
        "Latency: event time to alert (p50, p99)",
        "From the event that raised an alert to the alert on tokengov.alerts.",
        "s",
        (
            (
                "histogram_quantile(0.5, sum by (le) (rate(tokengov_event_to_alert_seconds_bucket[5m])))",
                "p50",
            ),
            (
                "histogram_quantile(0.99, sum by (le) (rate(tokengov_event_to_alert_seconds_bucket[5m])))",
                "p99",
            ),
        ),
    ),
    (
        "ClickHouse flushes: latency (p99) and retries",
        "Seconds from a flush's first attempt to its commit; retries and backpressure pauses per second.",
        "s",
        (
            (
                "histogram_quantile(0.99, sum by (le) (rate(tokengov_sink_flush_seconds_bucket[5m])))",
                "flush p99",
            ),
            ("sum(rate(tokengov_sink_flush_retries_total[5m]))", "retries/s"),
            ("sum(rate(tokengov_sink_backpressure_pauses_total[5m]))", "pauses/s"),
        ),
    ),
    (
        "Dead letters",
        "Messages sent to tokengov.deadletter per second, by component and reason.",
        "ops",
        (
            (
                "sum by (component, reason) (rate(tokengov_dead_letters_total[5m]))",
                "{{component}} {{reason}}",
            ),
        ),
    ),
    (
        "Notification delivery",
        "Notifications finished per second by receiver and result (abandoned = delivery "
        "failed after every retry: receiver_failing).",
        "ops",
        (
            (
                "sum by (receiver, result) (rate(tokengov_notifications_total[5m]))",
                "{{receiver}} {{result}}",
            ),
        ),
    ),
    (
        "Alerts and decisions",
        "Alerts published per second by kind, and decisions by action.",
        "ops",
        (
            ("sum by (kind) (rate(tokengov_alerts_published_total[5m]))", "alert {{kind}}"),
            (
                "sum by (action) (rate(tokengov_decisions_published_total[5m]))",
                "decision {{action}}",
            ),
        ),
    ),
    (
        "Budgets: spent fraction",
        "Spent fraction of each budget's limit in its current period (1 = at the limit).",
        "percentunit",
        (("max by (budget, unit) (tokengov_budget_spent_ratio)", "{{budget}} {{unit}}"),),
    ),
    (
        "ClickHouse errors and policy reloads",
        "ClickHouse errors per second by code; policy reloads by result.",
        "ops",
        (
            ("sum by (code) (rate(tokengov_clickhouse_errors_total[5m]))", "ClickHouse {{code}}"),
            (
                "sum by (result) (increase(tokengov_policy_reloads_total[1h]))",
                "reloads {{result}}",
            ),
        ),
    ),
)

EXPRESSIONS: Final[tuple[str, ...]] = tuple(e for *_, queries in PANELS for e, _ in queries)


def _panel(
    title: str, description: str, unit: str, queries: tuple[tuple[str, str], ...]
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS_REF)
        .span(12)
        .height(8)
        .unit(unit)
        .fill_opacity(10)
        .span_nulls(True)
    )
    panel.legend(
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )
    panel.tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    for ref_id, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel.with_target(
            prometheus.Dataquery()
            .ref_id(ref_id)
            .datasource(PROMETHEUS_REF)
            .expr(expr)
            .legend_format(legend)
        )
    return panel


def build() -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard(TITLE)
        .uid(UID)
        .description("tokengov's own health: throughput, lag, latency, dead letters, delivery.")
        .tags([DASHBOARD_TAG, "tokengov-pipeline"])
        .editable()
        .timezone("utc")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for title, description, unit, queries in PANELS:
        board.with_panel(_panel(title, description, unit, queries))
    return board


SPEC = DashboardSpec(UID, TITLE, build)
