"""Token debt: the engineering patterns that waste tokens quietly, and what they cost."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from tokengov.sinks.grafana import panels as p
from tokengov.sinks.grafana.dashboards.base import DashboardSpec, new_dashboard
from tokengov.sinks.grafana.sql import TokenDebt as q

__all__ = ["SPEC"]

UID = "tokengov-token-debt"
TITLE = "tokengov · Token debt"


def build() -> dashboard.Dashboard:
    return (
        new_dashboard(UID, TITLE, "Findings of the token-debt detectors and their estimated waste.")
        .with_row(p.row("Estimated waste"))
        .with_panel(
            p.stat_panel(
                "Estimated waste per day",
                "Sum of the latest estimate of every open finding (USD per day).",
                q.waste_usd_per_day,
                unit="currencyUSD",
                width=6,
                decimals=2,
            )
        )
        .with_panel(
            p.stat_panel(
                "Wasted tokens per day",
                "Sum of the latest estimate of every open finding.",
                q.waste_tokens_per_day,
                unit="short",
                width=6,
            )
        )
        .with_panel(
            p.bar_chart(
                "Waste by area",
                "Estimated USD per day by area of the latest findings.",
                q.findings_by_area,
                x_field="area",
                unit="currencyUSD",
                width=12,
                height=8,
            )
        )
        .with_panel(
            p.time_series(
                "Estimated waste over time",
                "Per interval, the latest estimate per pattern, summed by area.",
                [q.waste_trend],
                unit="currencyUSD",
                stacked=True,
                width=24,
            )
        )
        .with_row(p.row("Findings"))
        .with_panel(
            p.table_panel(
                "Findings",
                "One row per pattern (team, workflow, agent, detector): its latest estimate "
                "and the better pattern to adopt.",
                q.findings,
                width=24,
                height=10,
                units=[("waste_usd_per_day", "currencyUSD"), ("confidence", "percentunit")],
            )
        )
    )


SPEC = DashboardSpec(UID, TITLE, build)
