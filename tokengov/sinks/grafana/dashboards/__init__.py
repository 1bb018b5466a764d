"""The tokengov dashboards, each built in code with grafana-foundation-sdk."""

from __future__ import annotations

from typing import Final

from tokengov.sinks.grafana.dashboards import finops, governance, token_debt, unit_economics
from tokengov.sinks.grafana.dashboards.base import ALERT_TAG, DASHBOARD_TAG, DashboardSpec, to_model

__all__ = ["ALERT_TAG", "DASHBOARDS", "DASHBOARD_TAG", "DashboardSpec", "to_model"]

DASHBOARDS: Final[tuple[DashboardSpec, ...]] = (
    finops.SPEC,
    unit_economics.SPEC,
    governance.SPEC,
    token_debt.SPEC,
)
