"""What every tokengov dashboard shares: uid, tags, time range, the team / workflow / model
variables, the alert annotations, links between the dashboards, stable panel ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from tokengov.sinks.grafana import sql
from tokengov.sinks.grafana.panels import DATASOURCE_REF

__all__ = [
    "ALERT_TAG",
    "DASHBOARD_TAG",
    "DashboardSpec",
    "new_dashboard",
    "to_model",
]

DASHBOARD_TAG: Final = "tokengov"
# Every annotation `tokengov grafana sync` posts carries this tag; the dashboards show them.
ALERT_TAG: Final = "tokengov-alert"

_GRAFANA_DS: Final = model.DataSourceRef(type_val="grafana", uid="-- Grafana --")


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard: its stable uid, file name and builder."""

    uid: str
    title: str
    build: Callable[[], dashboard.Dashboard]

    @property
    def filename(self) -> str:
        return f"{self.uid}.json"


def _variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE_REF)
        .query({"refId": f"var-{name}", "queryType": "sql", "rawSql": query.strip()})
        .multi(True)
        .include_all(True)
        .all_value(sql.ALL_VALUE)
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def _alert_annotations() -> dashboard.AnnotationQuery:
    """Organization annotations tagged ``tokengov-alert``: when alerts fired."""
    return (
        dashboard.AnnotationQuery()
        .name("tokengov alerts")
        .datasource(_GRAFANA_DS)
        .enable(True)
        .icon_color("red")
        .target(
            dashboard.AnnotationTarget().type("tags").tags([ALERT_TAG]).match_any(False).limit(500)
        )
    )


def new_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([DASHBOARD_TAG])
        .editable()
        .timezone("utc")
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(_variable("team", "Team", sql.Variables.team))
        .with_variable(_variable("workflow", "Workflow", sql.Variables.workflow))
        .with_variable(_variable("model", "Model", sql.Variables.model))
        .annotation(_alert_annotations())
        .link(
            dashboard.DashboardLink("tokengov")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([DASHBOARD_TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def to_model(builder: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model with stable panel ids (1, 2, 3… in layout order)."""
    # Round-trip through the SDK's encoder so nested SDK objects become plain JSON values.
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for panel_id, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = panel_id
    return data
