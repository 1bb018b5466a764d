"""Unit economics: what one successful outcome costs, each metric next to the success rate."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, timeseries

from tokengov.sinks.grafana import panels as p
from tokengov.sinks.grafana.dashboards.base import DashboardSpec, new_dashboard
from tokengov.sinks.grafana.query import PanelQuery
from tokengov.sinks.grafana.sql import UnitEconomics as q

__all__ = ["SPEC"]

UID = "tokengov-unit-economics"
TITLE = "tokengov · Unit economics"

_RATE = PanelQuery(q.success_rate.sql, q.success_rate.format, legend="success rate")


def _beside_success_rate(
    title: str, description: str, metric: PanelQuery, legend: str, unit: str
) -> timeseries.Panel:
    return p.time_series(
        title,
        description + " Dashed, right axis: the success rate of the same tasks.",
        [PanelQuery(metric.sql, metric.format, legend=legend), _RATE],
        unit=unit,
        right_axis=[("B", "percentunit")],
    )


def build() -> dashboard.Dashboard:
    return (
        new_dashboard(UID, TITLE, "Tokens and cost per successful outcome, retries, amplification.")
        .with_row(p.row("Per workflow"))
        .with_panel(
            p.table_panel(
                "Unit economics per workflow",
                "Tasks that ended in the range. A task's cost is every call with its id, across "
                "all its agents; failed tasks' spend counts against the successes.",
                q.per_workflow,
                width=24,
                height=8,
                units=[
                    ("success_rate", "percentunit"),
                    ("cost_per_success_usd", "currencyUSD"),
                    ("retry_token_ratio", "percentunit"),
                ],
            )
        )
        .with_row(p.row("Over time"))
        .with_panel(
            _beside_success_rate(
                "Tokens per successful outcome",
                "Tokens of the tasks that ended in each interval ÷ the successful ones.",
                q.tokens_per_success,
                "tokens per success",
                "short",
            )
        )
        .with_panel(
            _beside_success_rate(
                "Cost per successful task",
                "Cost of the tasks that ended in each interval ÷ the successful ones.",
                q.cost_per_success,
                "cost per success",
                "currencyUSD",
            )
        )
        .with_panel(
            _beside_success_rate(
                "Retry token ratio",
                "Tokens spent on retries (attempt > 1) ÷ tokens of first attempts.",
                q.retry_token_ratio,
                "retry token ratio",
                "percentunit",
            )
        )
        .with_panel(
            _beside_success_rate(
                "Amplification factor",
                "A task's tokens ÷ the tokens of its first call, averaged over the tasks that "
                "ended in each interval.",
                q.amplification,
                "amplification",
                "x",
            )
        )
    )


SPEC = DashboardSpec(UID, TITLE, build)
