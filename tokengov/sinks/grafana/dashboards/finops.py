"""FinOps overview: where the money goes — by team, workflow, model, task — and how much of
it is attributed and priced."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from tokengov.sinks.grafana import panels as p
from tokengov.sinks.grafana.dashboards.base import DashboardSpec, new_dashboard
from tokengov.sinks.grafana.sql import FinOps as q

__all__ = ["SPEC"]

UID = "tokengov-finops"
TITLE = "tokengov · FinOps overview"


def build() -> dashboard.Dashboard:
    return (
        new_dashboard(UID, TITLE, "Spend by team, workflow and model; top tasks; attribution.")
        .with_row(p.row("Spend"))
        .with_panel(
            p.stat_panel(
                "Spend",
                "Total cost in the range (USD).",
                q.total_spend,
                unit="currencyUSD",
                decimals=2,
            )
        )
        .with_panel(p.stat_panel("Calls", "Model calls in the range.", q.total_calls, unit="short"))
        .with_panel(
            p.stat_panel(
                "Tokens", "Input + output tokens in the range.", q.total_tokens, unit="short"
            )
        )
        .with_panel(
            p.stat_panel(
                "Attribution coverage",
                "Share of calls with both a team and a workflow (fleet-wide: ignores the team and "
                "workflow filters). Unattributed spend is kept under 'unattributed', never lost.",
                q.attribution_coverage,
                unit="percentunit",
                decimals=1,
            )
        )
        .with_panel(
            p.time_series(
                "Spend over time by team",
                "Cost per interval, stacked by team.",
                [q.spend_by_team_over_time],
                unit="currencyUSD",
                stacked=True,
            )
        )
        .with_panel(
            p.time_series(
                "Spend over time by model",
                "Cost per interval, stacked by model.",
                [q.spend_by_model_over_time],
                unit="currencyUSD",
                stacked=True,
            )
        )
        .with_panel(
            p.bar_chart(
                "Spend by team",
                "Cost in the range per team.",
                q.spend_by_team,
                x_field="team",
                unit="currencyUSD",
            )
        )
        .with_panel(
            p.bar_chart(
                "Spend by workflow",
                "Cost in the range per workflow (top 25).",
                q.spend_by_workflow,
                x_field="workflow",
                unit="currencyUSD",
            )
        )
        .with_panel(
            p.bar_chart(
                "Spend by model",
                "Cost in the range per model.",
                q.spend_by_model,
                x_field="model",
                unit="currencyUSD",
            )
        )
        .with_row(p.row("Tasks"))
        .with_panel(
            p.table_panel(
                "Top tasks by cost",
                "The 20 most expensive tasks in the range: every call with the task's id, across "
                "all its agents.",
                q.top_tasks,
                width=24,
                height=9,
                units=[("task_cost_usd", "currencyUSD")],
            )
        )
        .with_row(p.row("Attribution and pricing"))
        .with_panel(
            p.time_series(
                "Attribution coverage over time",
                "Share of calls attributed to a team and a workflow, per interval (fleet-wide).",
                [q.attribution_over_time],
                unit="percentunit",
                width=10,
            )
        )
        .with_panel(
            p.stat_panel(
                "Unpriced calls",
                "Calls of models with no price in the policy: costed 0 and marked unpriced — add "
                "the model to the policy's prices.",
                q.unpriced_calls,
                unit="short",
                width=4,
                height=8,
            )
        )
        .with_panel(
            p.table_panel(
                "Unpriced models",
                "Models seen without a price in the policy.",
                q.unpriced_models,
                width=10,
            )
        )
    )


SPEC = DashboardSpec(UID, TITLE, build)
