"""Governance: budgets against limits, alerts, the decisions agents were told to obey, and
whether the owning teams were actually notified."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from tokengov.sinks.grafana import panels as p
from tokengov.sinks.grafana.dashboards.base import DashboardSpec, new_dashboard
from tokengov.sinks.grafana.sql import Governance as q

__all__ = ["SPEC"]

UID = "tokengov-governance"
TITLE = "tokengov · Governance"


def build() -> dashboard.Dashboard:
    return (
        new_dashboard(UID, TITLE, "Budgets, alerts, decisions and notification delivery.")
        .with_row(p.row("Budgets"))
        .with_panel(
            p.table_panel(
                "Spend this period and forecast",
                "UTC day and month to date per team and workflow, with a linear forecast to the "
                "end of the period (independent of the time picker).",
                q.budgets,
                width=12,
                height=9,
                units=[
                    ("today_usd", "currencyUSD"),
                    ("today_forecast_usd", "currencyUSD"),
                    ("month_usd", "currencyUSD"),
                    ("month_forecast_usd", "currencyUSD"),
                ],
            )
        )
        .with_panel(
            p.table_panel(
                "Budget alerts against limits",
                "The latest threshold and forecast alert per budget: observed value and limit.",
                q.budget_alerts,
                width=12,
                height=9,
            )
        )
        .with_row(p.row("Alerts"))
        .with_panel(
            p.time_series(
                "Alerts by kind",
                "Alerts that started in each interval.",
                [q.alerts_by_kind],
                unit="short",
                stacked=True,
                bars=True,
            )
        )
        .with_panel(
            p.table_panel("Alerts by team", "Alerts per owning team and kind.", q.alerts_by_team)
        )
        .with_row(p.row("Decisions"))
        .with_panel(
            p.time_series(
                "Decisions by action",
                "Throttles, fallbacks and pauses published for agents to obey.",
                [q.decisions_by_action],
                unit="short",
                stacked=True,
                bars=True,
            )
        )
        .with_panel(
            p.table_panel(
                "Recent decisions", "Every non-proceed decision, newest first.", q.recent_decisions
            )
        )
        .with_row(p.row("Notification delivery"))
        .with_panel(
            p.table_panel(
                "Delivery by receiver",
                "Attempts, success share and p95 latency per receiver (all teams).",
                q.delivery_by_receiver,
                width=8,
                units=[("success_share", "percentunit"), ("p95_latency_ms", "ms")],
            )
        )
        .with_panel(
            p.time_series(
                "Delivery attempts",
                "Attempts per interval by result.",
                [q.delivery_over_time],
                unit="short",
                stacked=True,
                bars=True,
                width=8,
            )
        )
        .with_panel(
            p.table_panel(
                "Failed deliveries",
                "The latest failed attempts and why.",
                q.delivery_failures,
                width=8,
            )
        )
    )


SPEC = DashboardSpec(UID, TITLE, build)
