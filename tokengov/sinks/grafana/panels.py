"""Typed panel builders on top of grafana-foundation-sdk, bound to the ClickHouse data source.

The SDK has builders for dashboards, panels and variables but no ClickHouse query type, so
:class:`ClickHouseQuery` supplies one (the plugin's SQL-editor query model: ``rawSql``,
``format``, ``editorType``, ``queryType``). Every panel here reads the one provisioned data
source (uid :data:`DATASOURCE_UID`).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from grafana_foundation_sdk.builders import barchart, dashboard, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from tokengov.sinks.grafana.query import PanelQuery, QueryFormat

__all__ = [
    "DATASOURCE_REF",
    "DATASOURCE_UID",
    "PLUGIN_ID",
    "ClickHouseQuery",
    "ClickHouseQueryBuilder",
    "bar_chart",
    "stat_panel",
    "table_panel",
    "time_series",
]

PLUGIN_ID: Final = "grafana-clickhouse-datasource"
DATASOURCE_UID: Final = "tokengov-clickhouse"
DATASOURCE_REF: Final = model.DataSourceRef(type_val=PLUGIN_ID, uid=DATASOURCE_UID)

_QUERY_TYPE = {QueryFormat.TIME_SERIES: "timeseries", QueryFormat.TABLE: "table"}


@dataclass
class ClickHouseQuery(cogvariants.Dataquery):
    """One target of a panel, in the ClickHouse plugin's SQL-editor model."""

    ref_id: str
    raw_sql: str
    format: QueryFormat

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": DATASOURCE_REF.to_json(),
            "editorType": "sql",
            "format": int(self.format),
            "queryType": _QUERY_TYPE[self.format],
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, ref_id: str, query: PanelQuery) -> None:
        self._internal = ClickHouseQuery(ref_id, query.sql.strip(), query.format)

    def build(self) -> ClickHouseQuery:
        return self._internal


P = TypeVar("P", timeseries.Panel, stat.Panel, table.Panel, barchart.Panel)


def _with_queries(panel: P, queries: Sequence[PanelQuery]) -> P:
    if not queries:
        raise ValueError("a panel needs at least one query")
    for ref_id, query in zip(string.ascii_uppercase, queries, strict=False):
        panel.with_target(ClickHouseQueryBuilder(ref_id, query))
        if query.legend:
            panel.override_by_query(
                ref_id, [model.DynamicConfigValue(id_val="displayName", value=query.legend)]
            )
    return panel


def _common(panel: P, title: str, description: str, width: int, height: int) -> P:
    return (
        panel.title(title)
        .description(description)
        .datasource(DATASOURCE_REF)
        .span(width)
        .height(height)
    )


def time_series(
    title: str,
    description: str,
    queries: Sequence[PanelQuery],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    bars: bool = False,
    right_axis: Sequence[tuple[str, str]] = (),
) -> timeseries.Panel:
    """A time series panel. ``right_axis`` lists (query refId, unit) drawn on the right axis —
    used to put the success rate next to each unit-economics metric."""
    panel = _common(timeseries.Panel(), title, description, width, height).unit(unit)
    panel.legend(
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )
    panel.tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    if stacked:
        panel.stacking(
            common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
        ).fill_opacity(60)
    else:
        panel.fill_opacity(10)
    if bars:
        panel.draw_style(common.GraphDrawStyle.BARS)
    panel.span_nulls(True)
    _with_queries(panel, queries)
    for ref_id, axis_unit in right_axis:
        panel.override_by_query(
            ref_id,
            [
                model.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                model.DynamicConfigValue(id_val="unit", value=axis_unit),
                model.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                ),
            ],
        )
    return panel


def stat_panel(
    title: str,
    description: str,
    query: PanelQuery,
    *,
    unit: str,
    width: int = 6,
    height: int = 4,
    decimals: int | None = None,
) -> stat.Panel:
    panel = _common(stat.Panel(), title, description, width, height).unit(unit)
    panel.reduce_options(
        common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
    )
    panel.graph_mode(common.BigValueGraphMode.NONE)
    if decimals is not None:
        panel.decimals(decimals)
    return _with_queries(panel, [query])


def table_panel(
    title: str,
    description: str,
    query: PanelQuery,
    *,
    width: int = 12,
    height: int = 8,
    units: Sequence[tuple[str, str]] = (),
) -> table.Panel:
    """A table; ``units`` maps column names to units (``currencyUSD``, ``percentunit``…)."""
    panel = _common(table.Panel(), title, description, width, height)
    for column, unit in units:
        panel.override_by_name(column, [model.DynamicConfigValue(id_val="unit", value=unit)])
    return _with_queries(panel, [query])


def bar_chart(
    title: str,
    description: str,
    query: PanelQuery,
    *,
    x_field: str,
    unit: str,
    width: int = 8,
    height: int = 8,
) -> barchart.Panel:
    """Bars from a table result: one bar per ``x_field`` value."""
    panel = _common(barchart.Panel(), title, description, width, height).unit(unit)
    panel.x_field(x_field).orientation(common.VizOrientation.HORIZONTAL).show_value(
        common.VisibilityMode.AUTO
    )
    panel.legend(
        common_builders.VizLegendOptions()
        .show_legend(False)
        .display_mode(common.LegendDisplayMode.HIDDEN)
        .placement(common.LegendPlacement.BOTTOM)
    )
    return _with_queries(panel, [query])


def row(title: str) -> dashboard.Row:
    return dashboard.Row(title)
